//! Dynamic client registration (RFC 7591) and client management (RFC 7592) with software
//! statements, against the real binary over real TLS: a directory's signed statement (made with
//! `jsonwebtoken`, not the server's josekit) and a transport certificate naming the software admit
//! a FAPI 2.0 client that then gets certificate-bound tokens; the registration access token
//! manages it; every refusal of checklist #63 and #64 gets its RFC 7591 §3.2.2 or RFC 6750 error.
//!
//! One server serves the whole registration story (each spawn costs a second); a second one,
//! without `[registration]`, shows the endpoint closed by default.

use portcullis_testkit::app::App;
use portcullis_testkit::certs::{ClientIdentity, TestCa};
use portcullis_testkit::db::{Backend, TestDatabase};
use reqwest::Method;
use serde_json::{Value, json};

use crate::oauth::{
    AdminSession, ClientKey, Credentials, Reply, bootstrap, client_credentials_form, post_form,
    random_id, server_now,
};
use crate::support::{Fixture, options, verify_independently};

/// The `iss` of the trusted directory's statements.
const DIRECTORY: &str = "https://directory.example";

/// The one redirect URI the directory allows the software.
const REDIRECT: &str = "https://tpp.example/cb";

/// The name the directory gives the software: it wins over the request's `client_name`.
const SOFTWARE_NAME: &str = "Example TPP app";

/// The resource server that serves scope `accounts`.
const RESOURCE: &str = "https://api.bank.example/accounts";

/// The organisation in the transport certificates.
const ORGANISATION: &str = "Example TPP";

/// A server that trusts one directory, whose key signs statements here, and one CA, that issues
/// the software's transport certificates.
struct DcrServer {
    f: Fixture,
    ca: TestCa,
    directory: ClientKey,
}

impl DcrServer {
    async fn start() -> DcrServer {
        let ca = TestCa::new("Portcullis e2e directory CA");
        let directory = ClientKey::ps256(Some("dir-1"));
        let dir = tempfile::tempdir().unwrap();
        let db = TestDatabase::new(Backend::Sqlite).await;
        let ca_file = dir.path().join("directory-ca.pem");
        std::fs::write(&ca_file, &ca.cert_pem).unwrap();
        let jwks_file = dir.path().join("directory-jwks.json");
        std::fs::write(&jwks_file, directory.jwks().to_string()).unwrap();
        // A JSON string is a TOML basic string. These tests register far more than the default
        // ten clients an hour from one address (rate_limits.ip.register).
        let quoted = |p: &std::path::Path| serde_json::to_string(p.to_str().unwrap()).unwrap();
        let config = dir.path().join("portcullis.toml");
        std::fs::write(
            &config,
            format!(
                "[client_auth]\ntrust_anchor_files = [{ca}]\n\n\
                 [registration]\nstatement_max_age_secs = 300\n\n\
                 [[registration.directories]]\nissuer = \"{DIRECTORY}\"\njwks_file = {jwks}\n\n\
                 [rate_limits.ip]\nregister = {{ quota = 1000, window_secs = 60 }}\n",
                ca = quoted(&ca_file),
                jwks = quoted(&jwks_file),
            ),
        )
        .unwrap();
        let mut options = options(&dir, &db);
        options.args = vec!["--config".into(), config.to_str().unwrap().to_owned()];
        let app = App::spawn(options).await;
        DcrServer {
            f: Fixture { app, dir, db },
            ca,
            directory,
        }
    }

    fn app(&self) -> &App {
        &self.f.app
    }

    /// A fresh piece of software: its id and a transport certificate from the CA naming it.
    fn software(&self) -> Software {
        let id = format!("tpp-app-{}", random_id());
        let certificate = self.ca.issue_for_software(ORGANISATION, &id);
        Software { id, certificate }
    }

    /// Valid statement claims for `software_id`, issued now by the server's clock.
    async fn claims(&self, software_id: &str) -> Value {
        json!({
            "iss": DIRECTORY,
            "iat": server_now(self.app()).await,
            "jti": random_id(),
            "software_id": software_id,
            "software_client_name": SOFTWARE_NAME,
            "software_redirect_uris": [REDIRECT],
        })
    }

    /// A valid statement for `software_id`, signed by the directory.
    async fn statement(&self, software_id: &str) -> String {
        self.directory.sign(&self.claims(software_id).await)
    }

    /// `POST /register` with `body`, on the mTLS listener with `certificate`, or on the main
    /// listener without one.
    async fn register(&self, certificate: Option<&ClientIdentity>, body: &Value) -> Reply {
        let url = if certificate.is_some() {
            self.app().mtls_url("/register")
        } else {
            self.app().url("/register")
        };
        Reply::send(self.app().client(certificate).post(url).json(body)).await
    }
}

/// A piece of software the directory knows.
struct Software {
    id: String,
    certificate: ClientIdentity,
}

impl Software {
    /// The subject of its certificate, RFC 4514 order (most significant last; the DER order is
    /// O, UID, CN).
    fn subject_dn(&self) -> String {
        format!("CN=tpp transport,UID={},O={ORGANISATION}", self.id)
    }

    /// A FAPI 2.0 client-credentials registration with `statement`, authenticating with its
    /// certificate, whose own `client_name` the statement must override.
    fn registration(&self, statement: &str) -> Value {
        json!({
            "software_statement": statement,
            "client_name": "A name the client chose",
            "redirect_uris": [REDIRECT],
            "grant_types": ["client_credentials"],
            "response_types": [],
            "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_subject_dn": self.subject_dn(),
            "tls_client_certificate_bound_access_tokens": true,
            "scope": "accounts",
        })
    }
}

/// `body` with `changes` applied (`null` removes a member).
fn with(mut body: Value, changes: &Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            body.as_object_mut().unwrap().remove(k);
        } else {
            body[k] = v.clone();
        }
    }
    body
}

/// Asserts an RFC 7591 §3.2.2 error: the status, the code, `no-store`, and a description that
/// contains `rule`.
fn assert_refused(reply: &Reply, status: u16, code: &str, rule: &str) {
    reply.assert_error(status, code);
    let description = reply.body["error_description"].as_str().unwrap();
    assert!(
        description.contains(rule),
        "{description:?} does not name {rule:?}"
    );
}

/// A client-credentials request for `accounts` on the mTLS listener, authenticated by
/// `certificate` (`tls_client_auth`).
async fn mtls_token(app: &App, certificate: &ClientIdentity, client_id: &str) -> Reply {
    let mut form = client_credentials_form("accounts");
    form.push(("client_id".into(), client_id.into()));
    post_form(
        &app.client(Some(certificate)),
        &app.mtls_url("/token"),
        &form,
        &Credentials::default(),
    )
    .await
}

/// A registered client: what its owner keeps from the registration response.
struct Registered {
    client_id: String,
    token: String,
    uri: String,
}

/// RFC 7592 call on the client configuration endpoint `uri` with `token` as a Bearer token.
async fn manage(
    app: &App,
    certificate: Option<&ClientIdentity>,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Reply {
    let mut request = app.client(certificate).request(method, uri);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    Reply::send(request).await
}

#[tokio::test]
async fn checklist_63_64_software_statement_registration_management_and_refusals_over_mtls() {
    let server = DcrServer::start().await;
    let tpp = server.software();
    let registered = registers_over_mtls_and_gets_a_certificate_bound_token(&server, &tpp).await;
    manages_the_client_with_its_registration_access_token(&server, &tpp, &registered).await;
    refuses_registrations_that_break_a_rule(&server).await;
}

/// Checklist #63/#64, RFC 7591 §3.2.1: the happy path, then the client gets a token.
async fn registers_over_mtls_and_gets_a_certificate_bound_token(
    server: &DcrServer,
    tpp: &Software,
) -> Registered {
    let app = server.app();

    // Discovery advertises the endpoint on the mTLS listener: every registration here needs the
    // software's certificate (RFC 8414 §2, RFC 8705 §5).
    let (status, _, metadata) = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(status, 200);
    assert_eq!(metadata["registration_endpoint"], app.mtls_url("/register"));
    assert_eq!(
        metadata["mtls_endpoint_aliases"]["registration_endpoint"],
        app.mtls_url("/register")
    );

    let statement = server.statement(&tpp.id).await;
    let reply = server
        .register(Some(&tpp.certificate), &tpp.registration(&statement))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let client_id = reply.body["client_id"].as_str().unwrap().to_owned();
    let token = reply.body["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(token.len() >= 32, "{token}");
    let uri = reply.body["registration_client_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(uri.starts_with(&app.mtls_url("/register/")), "{uri}");
    assert_eq!(uri, app.mtls_url(&format!("/register/{client_id}")));
    assert!(reply.body["client_id_issued_at"].is_i64(), "{}", reply.body);
    // RFC 7591 §2.3: the statement's values win over the request's.
    assert_eq!(reply.body["client_name"], SOFTWARE_NAME, "{}", reply.body);
    assert_eq!(reply.body["software_id"], tpp.id.as_str());
    assert_eq!(reply.body["software_statement"], statement.as_str());
    assert_eq!(reply.body["token_endpoint_auth_method"], "tls_client_auth");
    assert_eq!(reply.body["redirect_uris"], json!([REDIRECT]));
    assert!(
        reply.body.get("client_secret").is_none(),
        "a FAPI client has no secret: {}",
        reply.body
    );
    for operator_only in ["profile", "access_token_lifetime_secs"] {
        assert!(reply.body.get(operator_only).is_none(), "{}", reply.body);
    }

    // The registered client gets a certificate-bound token at the mTLS token endpoint for the
    // accounts API (registered by the operator through the admin API).
    let admin = bootstrap(&server.f).await;
    let session = AdminSession::open(app, &admin, "admin:resources").await;
    session
        .create(
            app,
            "/admin/v1/resources",
            &json!({"resource": RESOURCE, "name": "Accounts API", "scopes": ["accounts"]}),
        )
        .await;
    let reply = mtls_token(app, &tpp.certificate, &client_id).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["token_type"], "Bearer");
    assert_eq!(reply.body["scope"], "accounts");
    let jwks = app.get_json("/jwks").await.2;
    let claims = verify_independently(reply.body["access_token"].as_str().unwrap(), &jwks).unwrap();
    assert_eq!(claims["client_id"], client_id.as_str());
    assert_eq!(claims["aud"], RESOURCE);
    assert_eq!(
        claims["cnf"],
        json!({"x5t#S256": tpp.certificate.x5t_s256()})
    );

    Registered {
        client_id,
        token,
        uri,
    }
}

/// RFC 7592 §2 and checklist #64: read, update and delete with the registration access token,
/// presented with the software's certificate.
async fn manages_the_client_with_its_registration_access_token(
    server: &DcrServer,
    tpp: &Software,
    client: &Registered,
) {
    let app = server.app();
    let cert = Some(&tpp.certificate);

    // Read (RFC 7592 §2.1).
    let reply = manage(
        app,
        cert,
        Method::GET,
        &client.uri,
        Some(&client.token),
        None,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.body["client_id"], client.client_id.as_str());
    assert_eq!(reply.body["client_name"], SOFTWARE_NAME);
    assert_eq!(reply.body["registration_client_uri"], client.uri.as_str());
    assert_eq!(
        reply.body["registration_access_token"],
        client.token.as_str()
    );

    // Checklist #64: a wrong token, no token, the right token without the software's certificate
    // (main listener), or with another software's certificate: 401 with a Bearer challenge
    // (RFC 6750 §3).
    let wrong = format!("{}x", client.token);
    let other = server.software();
    let refusals = [
        (cert, Some(wrong.as_str()), &client.uri, "not valid"),
        (cert, None, &client.uri, "required"),
        (
            None,
            Some(client.token.as_str()),
            &app.url(&format!("/register/{}", client.client_id)),
            "transport certificate",
        ),
        (
            Some(&other.certificate),
            Some(client.token.as_str()),
            &client.uri,
            "UID or CN",
        ),
    ];
    for (certificate, token, uri, rule) in refusals {
        let reply = manage(app, certificate, Method::GET, uri, token, None).await;
        assert_refused(&reply, 401, "invalid_token", rule);
        let challenge = reply.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\""),
            "{challenge:?}"
        );
        assert!(
            reply.body.get("client_name").is_none(),
            "nothing of the client leaks: {}",
            reply.body
        );
    }
    // Another client's id with this client's token is refused alike.
    let reply = manage(
        app,
        cert,
        Method::GET,
        &app.mtls_url("/register/no-such-client"),
        Some(&client.token),
        None,
    )
    .await;
    assert_refused(&reply, 401, "invalid_token", "not valid");

    // Update (RFC 7592 §2.2): a fresh statement, the client_id, a changed member.
    let update = |statement: &str| {
        with(
            tpp.registration(statement),
            &json!({"client_id": client.client_id, "contacts": ["ops@tpp.example"]}),
        )
    };
    let statement = server.statement(&tpp.id).await;
    let reply = manage(
        app,
        cert,
        Method::PUT,
        &client.uri,
        Some(&client.token),
        Some(&update(&statement)),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.body["client_id"], client.client_id.as_str());
    assert_eq!(reply.body["contacts"], json!(["ops@tpp.example"]));
    assert_eq!(reply.body["client_name"], SOFTWARE_NAME, "statement wins");
    assert_eq!(reply.body["software_statement"], statement.as_str());
    let read = manage(
        app,
        cert,
        Method::GET,
        &client.uri,
        Some(&client.token),
        None,
    )
    .await;
    assert_eq!(read.body["contacts"], json!(["ops@tpp.example"]));

    // An update without client_id, or carrying a server-assigned member, is invalid_request.
    let statement = server.statement(&tpp.id).await;
    let reply = manage(
        app,
        cert,
        Method::PUT,
        &client.uri,
        Some(&client.token),
        Some(&with(update(&statement), &json!({"client_id": null}))),
    )
    .await;
    assert_refused(&reply, 400, "invalid_request", "client_id");
    let reply = manage(
        app,
        cert,
        Method::PUT,
        &client.uri,
        Some(&client.token),
        Some(&with(
            update(&statement),
            &json!({"registration_access_token": client.token}),
        )),
    )
    .await;
    assert_refused(&reply, 400, "invalid_request", "registration_access_token");
    // An update needs a statement, as the registration did (Brazil: PUT validated the same way).
    let reply = manage(
        app,
        cert,
        Method::PUT,
        &client.uri,
        Some(&client.token),
        Some(&with(
            update(&statement),
            &json!({"software_statement": null}),
        )),
    )
    .await;
    assert_refused(&reply, 400, "invalid_software_statement", "required");

    // The updated client still gets tokens.
    let reply = mtls_token(app, &tpp.certificate, &client.client_id).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    // Delete (RFC 7592 §2.3): 204; the client and its registration access token are gone.
    let reply = manage(
        app,
        cert,
        Method::DELETE,
        &client.uri,
        Some(&client.token),
        None,
    )
    .await;
    assert_eq!(reply.status, 204, "{:?}", reply.headers);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let reply = manage(
        app,
        cert,
        Method::GET,
        &client.uri,
        Some(&client.token),
        None,
    )
    .await;
    assert_refused(&reply, 401, "invalid_token", "not valid");
    let reply = manage(
        app,
        cert,
        Method::DELETE,
        &client.uri,
        Some(&client.token),
        None,
    )
    .await;
    assert_refused(&reply, 401, "invalid_token", "not valid");
    let reply = mtls_token(app, &tpp.certificate, &client.client_id).await;
    reply.assert_error(401, "invalid_client");
}

/// Checklist #63 (the statement and the metadata) and #64 (the certificate): each request is
/// valid but for one defect.
async fn refuses_registrations_that_break_a_rule(server: &DcrServer) {
    let tpp = server.software();
    let cert = Some(&tpp.certificate);

    // #63: no statement.
    let reply = server
        .register(
            cert,
            &with(tpp.registration(""), &json!({"software_statement": null})),
        )
        .await;
    assert_refused(
        &reply,
        400,
        "invalid_software_statement",
        "software_statement signed by a trusted directory is required",
    );

    // #63: a statement that is not a JWT.
    let reply = server.register(cert, &tpp.registration("not-a-jwt")).await;
    assert_refused(
        &reply,
        400,
        "invalid_software_statement",
        "not a signed JWT",
    );

    // #63: signed by another key under the directory's kid.
    let forger = ClientKey::ps256(Some("dir-1"));
    let forged = forger.sign(&server.claims(&tpp.id).await);
    let reply = server.register(cert, &tpp.registration(&forged)).await;
    assert_refused(&reply, 400, "invalid_software_statement", "signature");

    // #63: signed by a key the directory does not have.
    let stranger = ClientKey::es256(Some("dir-2"));
    let unknown_kid = stranger.sign(&server.claims(&tpp.id).await);
    let reply = server.register(cert, &tpp.registration(&unknown_kid)).await;
    reply.assert_error(400, "invalid_software_statement");

    // #63: expired.
    let now = server_now(server.app()).await;
    let expired = server.directory.sign(&with(
        server.claims(&tpp.id).await,
        &json!({"exp": now - 1}),
    ));
    let reply = server.register(cert, &tpp.registration(&expired)).await;
    assert_refused(&reply, 400, "invalid_software_statement", "expired");

    // #63: issued more than statement_max_age_secs ago (Brazil: iat at most 5 minutes old).
    let now = server_now(server.app()).await;
    let stale = server.directory.sign(&with(
        server.claims(&tpp.id).await,
        &json!({"iat": now - 400}),
    ));
    let reply = server.register(cert, &tpp.registration(&stale)).await;
    assert_refused(
        &reply,
        400,
        "invalid_software_statement",
        "more than 300 s ago",
    );

    // #63: iat in the future, past the skew.
    let now = server_now(server.app()).await;
    let future = server.directory.sign(&with(
        server.claims(&tpp.id).await,
        &json!({"iat": now + 120}),
    ));
    let reply = server.register(cert, &tpp.registration(&future)).await;
    assert_refused(&reply, 400, "invalid_software_statement", "in the future");

    // #63: a redirect URI the statement does not list.
    let statement = server.statement(&tpp.id).await;
    let reply = server
        .register(
            cert,
            &with(
                tpp.registration(&statement),
                &json!({"redirect_uris": [REDIRECT, "https://evil.example/cb"]}),
            ),
        )
        .await;
    assert_refused(
        &reply,
        400,
        "invalid_redirect_uri",
        "https://evil.example/cb",
    );

    // #63: keys by value.
    let statement = server.statement(&tpp.id).await;
    let reply = server
        .register(
            cert,
            &with(
                tpp.registration(&statement),
                &json!({"jwks": ClientKey::es256(Some("k")).jwks()}),
            ),
        )
        .await;
    assert_refused(&reply, 400, "invalid_client_metadata", "jwks by value");

    // The operator's settings are not the client's to choose.
    for (member, value) in [
        ("access_token_lifetime_secs", json!(3600)),
        ("profile", json!("oauth")),
    ] {
        let statement = server.statement(&tpp.id).await;
        let reply = server
            .register(
                cert,
                &with(tpp.registration(&statement), &json!({member: value})),
            )
            .await;
        assert_refused(&reply, 400, "invalid_client_metadata", member);
    }

    // A FAPI client must still be one (FAPI2 SP 5.3.2.1-6): the statement does not relax that.
    let statement = server.statement(&tpp.id).await;
    let reply = server
        .register(
            cert,
            &with(
                tpp.registration(&statement),
                &json!({"token_endpoint_auth_method": "client_secret_basic", "tls_client_auth_subject_dn": null}),
            ),
        )
        .await;
    assert_refused(&reply, 400, "invalid_client_metadata", "FAPI2 SP 5.3.2.1-6");

    // #64: no certificate (the main listener does not ask for one).
    let statement = server.statement(&tpp.id).await;
    let reply = server.register(None, &tpp.registration(&statement)).await;
    assert_refused(
        &reply,
        400,
        "unapproved_software_statement",
        "transport certificate",
    );

    // #64: a certificate from the directory's CA, for other software.
    let other = server.software();
    let statement = server.statement(&tpp.id).await;
    let reply = server
        .register(Some(&other.certificate), &tpp.registration(&statement))
        .await;
    assert_refused(
        &reply,
        400,
        "unapproved_software_statement",
        "is not the software_statement's software_id",
    );

    // #64: a certificate naming the software that no trusted CA issued.
    let self_signed = ClientIdentity::self_signed(&tpp.id);
    let statement = server.statement(&tpp.id).await;
    let reply = server
        .register(Some(&self_signed), &tpp.registration(&statement))
        .await;
    assert_refused(
        &reply,
        400,
        "unapproved_software_statement",
        "does not chain",
    );

    // A statement from a directory this server does not trust, even signed with a known key.
    let rogue = server.directory.sign(&with(
        server.claims(&tpp.id).await,
        &json!({"iss": "https://rogue-directory.example"}),
    ));
    let reply = server.register(cert, &tpp.registration(&rogue)).await;
    assert_refused(
        &reply,
        400,
        "unapproved_software_statement",
        "not from a directory this server trusts",
    );

    // A statement's jti is single-use: the same statement registers once.
    let statement = server.statement(&tpp.id).await;
    let first = server.register(cert, &tpp.registration(&statement)).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let second = server.register(cert, &tpp.registration(&statement)).await;
    assert_refused(&second, 400, "invalid_software_statement", "used before");
}

/// RFC 7591 §3 / RFC 8414 §2: closed unless the operator opens it.
#[tokio::test]
async fn registration_is_closed_and_not_advertised_without_registration_config() {
    let f = Fixture::start(Backend::Sqlite).await;
    let app = &f.app;
    let (status, _, metadata) = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(status, 200);
    assert!(
        metadata.get("registration_endpoint").is_none(),
        "{metadata}"
    );
    assert!(
        metadata["mtls_endpoint_aliases"]
            .get("registration_endpoint")
            .is_none(),
        "{metadata}"
    );
    for url in [app.url("/register"), app.mtls_url("/register")] {
        let reply = Reply::send(
            app.client(None)
                .post(&url)
                .json(&json!({"redirect_uris": [REDIRECT]})),
        )
        .await;
        assert_refused(&reply, 404, "not_found", "not enabled");
    }
}
