//! The operator's admin API (`/admin/v1`) and the client-credentials grant that feeds it, against
//! the real binary over real TLS: `admin bootstrap`, admin tokens and the scopes of routes,
//! clients of every authentication method registered through the API and getting
//! sender-constrained tokens for a resource, the security-event trail and secret rotation. Client
//! authentication attacks (checklist #14–#28) are in [`client_auth`], admin-token attacks
//! (#29–#35) in [`admin_tokens`], the OpenAPI document in [`openapi`], users in [`users`].

mod admin_tokens;
mod client_auth;
mod openapi;
mod round_trips;
mod users;

use std::collections::BTreeSet;

use portcullis_testkit::app::App;
use portcullis_testkit::certs::{ClientIdentity, TestCa};
use portcullis_testkit::db::{Backend, TestDatabase};
use reqwest::Method;
use serde_json::{Value, json};

use crate::oauth::{
    ADMIN_SCOPE, AdminClient, AdminSession, ClientKey, Credentials, Reply, assertion_claims,
    assertion_form, bootstrap, bootstrap_cli, claims_of, client_credentials_dpop,
    client_credentials_form, dpop_proof, header_of, post_form, server_now,
};
use crate::support::{Fixture, options, verify_independently};

/// The resource server the clients get tokens for.
const RESOURCE: &str = "https://api.bank.example/accounts";

/// The subject DN the CA-issued client certificate carries (RFC 4514 order).
const TLS_CLIENT_DN: &str = "CN=tpp-mtls,O=Example TPP";

/// A server that trusts a test CA for `tls_client_auth`, with its first admin client and a session
/// holding every admin scope.
struct Bank {
    f: Fixture,
    ca: TestCa,
    admin: AdminClient,
    session: AdminSession,
}

impl Bank {
    /// A fresh server on SQLite whose `client_auth.trust_anchor_files` names a fresh CA.
    async fn start() -> Bank {
        let ca = TestCa::new("Portcullis e2e client CA");
        let dir = tempfile::tempdir().unwrap();
        let db = TestDatabase::new(Backend::Sqlite).await;
        let ca_file = dir.path().join("client-ca.pem");
        std::fs::write(&ca_file, &ca.cert_pem).unwrap();
        let config = dir.path().join("portcullis.toml");
        // A JSON string is a TOML basic string.
        let anchor = serde_json::to_string(ca_file.to_str().unwrap()).unwrap();
        std::fs::write(
            &config,
            format!("[client_auth]\ntrust_anchor_files = [{anchor}]\n"),
        )
        .unwrap();
        let mut options = options(&dir, &db);
        options.args = vec!["--config".into(), config.to_str().unwrap().to_owned()];
        let app = App::spawn(options).await;
        let f = Fixture { app, dir, db };
        let admin = bootstrap(&f).await;
        let session = AdminSession::open(&f.app, &admin, ADMIN_SCOPE).await;
        Bank {
            f,
            ca,
            admin,
            session,
        }
    }

    fn app(&self) -> &App {
        &self.f.app
    }

    /// Registers the accounts API, serving scope `accounts`.
    async fn add_resource(&self) -> Value {
        let body = json!({"resource": RESOURCE, "name": "Accounts API", "scopes": ["accounts"]});
        self.session
            .create(self.app(), "/admin/v1/resources", &body)
            .await
    }

    /// Registers a client through the admin API; the created client.
    async fn add_client(&self, body: &Value) -> Value {
        self.session
            .create(self.app(), "/admin/v1/clients", body)
            .await
    }

    /// Registers a client and returns its `client_id`.
    async fn add_client_id(&self, body: &Value) -> String {
        self.add_client(body).await["client_id"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// Client metadata for a machine-to-machine client of `method` with scope `accounts`, plus `extra`.
fn m2m(method: &str, extra: &Value) -> Value {
    let mut body = json!({
        "client_name": format!("TPP {method}"),
        "grant_types": ["client_credentials"],
        "response_types": [],
        "token_endpoint_auth_method": method,
        "scope": "accounts",
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// A client-credentials request on the mTLS listener with `identity`'s certificate.
async fn mtls_token(
    app: &App,
    identity: Option<&ClientIdentity>,
    client_id: &str,
    scope: &str,
) -> Reply {
    let mut form = client_credentials_form(scope);
    form.push(("client_id".into(), client_id.into()));
    post_form(
        &app.client(identity),
        &app.mtls_url("/token"),
        &form,
        &Credentials::default(),
    )
    .await
}

/// Checks a token response for a client-credentials token for the accounts API: signed by a key
/// of the server's JWKS (verified with `jsonwebtoken`), RFC 9068 claims, and the binding `cnf`.
async fn assert_accounts_token(
    app: &App,
    reply: &Reply,
    client_id: &str,
    token_type: &str,
    cnf: &Value,
) {
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.body["token_type"], token_type, "{}", reply.body);
    assert_eq!(reply.body["scope"], "accounts");
    assert!(reply.body["expires_in"].as_u64().unwrap() > 0);
    let token = reply.body["access_token"].as_str().unwrap();
    assert_eq!(header_of(token)["typ"], "at+jwt");
    let jwks = app.get_json("/jwks").await.2;
    let claims = verify_independently(token, &jwks).unwrap();
    assert_eq!(claims["iss"], app.issuer.as_str());
    assert_eq!(claims["aud"], RESOURCE);
    assert_eq!(claims["client_id"], client_id);
    assert_eq!(claims["sub"], client_id);
    assert_eq!(claims["scope"], "accounts");
    assert_eq!(&claims["cnf"], cnf);
}

async fn bootstrap_and_get_an_admin_token(backend: Backend) {
    let f = Fixture::start(backend).await;
    let out = bootstrap_cli(&f, &[]).await;
    assert!(out.status.success(), "{}", out.stderr);
    let shown: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(shown["profile"], "fapi2");
    assert_eq!(shown["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(shown["dpop_bound_access_tokens"], true);
    assert!(
        shown["private_jwk"]["d"].is_string(),
        "the private key is shown once"
    );
    let admin = AdminClient {
        client_id: shown["client_id"].as_str().unwrap().to_owned(),
        key: ClientKey::from_private_jwk(&shown["private_jwk"]),
    };
    assert!(
        out.stderr.contains(&admin.client_id) && out.stderr.contains("admin:clients"),
        "{}",
        out.stderr
    );

    let dpop = ClientKey::es256(None);
    let reply =
        client_credentials_dpop(&f.app, &admin.client_id, &admin.key, &dpop, ADMIN_SCOPE).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["token_type"], "DPoP");
    assert_eq!(reply.body["scope"], ADMIN_SCOPE);
    let token = reply.body["access_token"].as_str().unwrap();
    let claims = verify_independently(token, &f.app.get_json("/jwks").await.2).unwrap();
    assert_eq!(claims["aud"], format!("{}/admin/v1", f.app.issuer));
    assert_eq!(claims["cnf"], json!({"jkt": dpop.thumbprint()}));
    assert_eq!(claims["client_id"], admin.client_id.as_str());

    // The token works at once on the admin API.
    let session = AdminSession {
        token: token.to_owned(),
        dpop,
    };
    let listed = session
        .call(&f.app, Method::GET, "/admin/v1/clients", None)
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let items = listed.body["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .any(|c| c["client_id"] == admin.client_id.as_str())
    );
    assert!(
        !listed.body.to_string().contains("\"d\""),
        "no private key member is ever stored or listed"
    );
}

#[tokio::test]
async fn admin_bootstrap_client_gets_a_dpop_bound_token_for_the_admin_api_on_sqlite() {
    bootstrap_and_get_an_admin_token(Backend::Sqlite).await;
}

#[tokio::test]
async fn admin_bootstrap_client_gets_a_dpop_bound_token_for_the_admin_api_on_postgres() {
    bootstrap_and_get_an_admin_token(Backend::Postgres).await;
}

#[tokio::test]
async fn admin_bootstrap_refuses_a_second_admin_client_unless_additional() {
    let f = Fixture::start(Backend::Sqlite).await;
    let first = bootstrap(&f).await;
    let out = bootstrap_cli(&f, &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("an admin client exists already")
            && out.stderr.contains(&first.client_id)
            && out.stderr.contains("--additional"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "{}", out.stdout);

    // --additional with --key-file: the private key goes to a file only its owner can read.
    let key_file = f.dir.path().join("second-admin.jwk");
    let out = bootstrap_cli(
        &f,
        &["--additional", "--key-file", key_file.to_str().unwrap()],
    )
    .await;
    assert!(out.status.success(), "{}", out.stderr);
    let shown: Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(shown.get("private_jwk").is_none(), "{shown}");
    assert_eq!(shown["private_jwk_file"], key_file.to_str().unwrap());
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let jwk: Value = serde_json::from_slice(&std::fs::read(&key_file).unwrap()).unwrap();
    let second = AdminClient {
        client_id: shown["client_id"].as_str().unwrap().to_owned(),
        key: ClientKey::from_private_jwk(&jwk),
    };
    assert_ne!(second.client_id, first.client_id);
    AdminSession::open(&f.app, &second, "admin:keys").await;

    // An existing key file is never overwritten.
    let out = bootstrap_cli(
        &f,
        &["--additional", "--key-file", key_file.to_str().unwrap()],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("the file exists"), "{}", out.stderr);
}

#[tokio::test]
async fn admin_api_registers_a_resource_and_clients_of_every_method_that_get_sender_constrained_tokens()
 {
    let bank = Bank::start().await;
    let app = bank.app();
    let resource = bank.add_resource().await;
    assert_eq!(resource["resource"], RESOURCE);
    assert_eq!(resource["scopes"], json!(["accounts"]));
    let (status, _, metadata) = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(status, 200);
    assert_eq!(
        metadata["mtls_endpoint_aliases"]["token_endpoint"],
        app.mtls_url("/token")
    );

    // FAPI 2.0, private_key_jwt, DPoP on the main listener.
    let key = ClientKey::es256(Some("tpp-1"));
    let pkjwt = bank
        .add_client_id(&m2m(
            "private_key_jwt",
            &json!({"jwks": key.jwks(), "dpop_bound_access_tokens": true}),
        ))
        .await;
    let dpop = ClientKey::es256(None);
    let reply = client_credentials_dpop(app, &pkjwt, &key, &dpop, "accounts").await;
    assert_accounts_token(
        app,
        &reply,
        &pkjwt,
        "DPoP",
        &json!({"jkt": dpop.thumbprint()}),
    )
    .await;

    // FAPI 2.0, tls_client_auth with a certificate from the configured CA, on the mTLS listener.
    let ca_issued = bank.ca.issue("Example TPP", "tpp-mtls");
    let tls = bank
        .add_client(&m2m(
            "tls_client_auth",
            &json!({"tls_client_auth_subject_dn": TLS_CLIENT_DN, "tls_client_certificate_bound_access_tokens": true}),
        ))
        .await;
    assert_eq!(tls["profile"], "fapi2");
    let tls = tls["client_id"].as_str().unwrap();
    let reply = mtls_token(app, Some(&ca_issued), tls, "accounts").await;
    assert_accounts_token(
        app,
        &reply,
        tls,
        "Bearer",
        &json!({"x5t#S256": ca_issued.x5t_s256()}),
    )
    .await;

    // FAPI 2.0, self_signed_tls_client_auth: the certificate's key is in the client's JWKS.
    let self_signed = ClientIdentity::self_signed("tpp-self-signed");
    let cert_key = ClientKey::from_identity(&self_signed, Some("cert"));
    let ss = bank
        .add_client_id(&m2m(
            "self_signed_tls_client_auth",
            &json!({"jwks": cert_key.jwks(), "tls_client_certificate_bound_access_tokens": true}),
        ))
        .await;
    let reply = mtls_token(app, Some(&self_signed), &ss, "accounts").await;
    assert_accounts_token(
        app,
        &reply,
        &ss,
        "Bearer",
        &json!({"x5t#S256": self_signed.x5t_s256()}),
    )
    .await;

    // FAPI 2.0 Message Signing, private_key_jwt with PS256, DPoP sent to the mTLS listener
    // (without a certificate): the proof's htu is that listener's URL (RFC 9449 §4.3 step 9).
    let rsa = ClientKey::ps256(Some("tpp-ms"));
    let ms = bank
        .add_client(&m2m(
            "private_key_jwt",
            &json!({
                "profile": "fapi2-message-signing",
                "jwks": rsa.jwks(),
                "token_endpoint_auth_signing_alg": "PS256",
                "require_signed_request_object": true,
                "dpop_bound_access_tokens": true,
            }),
        ))
        .await;
    assert_eq!(ms["profile"], "fapi2-message-signing");
    let ms = ms["client_id"].as_str().unwrap();
    let now = server_now(app).await;
    let mtls_token_url = app.mtls_url("/token");
    let mut form = client_credentials_form("accounts");
    form.extend(assertion_form(&rsa.sign(&assertion_claims(
        ms,
        &app.issuer,
        now,
    ))));
    let dpop = ClientKey::es256(None);
    let credentials = Credentials {
        dpop: Some(dpop_proof(&dpop, "POST", &mtls_token_url, None, now)),
        basic: None,
    };
    let reply = post_form(&app.client(None), &mtls_token_url, &form, &credentials).await;
    assert_accounts_token(app, &reply, ms, "DPoP", &json!({"jkt": dpop.thumbprint()})).await;

    // OAuth 2.1 profile, client_secret_basic: the secret is shown once, in the create response.
    let created = bank
        .add_client(&m2m("client_secret_basic", &json!({"profile": "oauth"})))
        .await;
    let oauth = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 43, "256 random bits");
    let read = bank
        .session
        .call(
            app,
            Method::GET,
            &format!("/admin/v1/clients/{oauth}"),
            None,
        )
        .await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert!(!read.body.to_string().contains(&secret), "{}", read.body);
    let token_url = app.url("/token");
    let now = server_now(app).await;
    let dpop = ClientKey::es256(None);
    let credentials = Credentials {
        dpop: Some(dpop_proof(&dpop, "POST", &token_url, None, now)),
        basic: Some((oauth.clone(), secret)),
    };
    let reply = post_form(
        &app.client(None),
        &token_url,
        &client_credentials_form("accounts"),
        &credentials,
    )
    .await;
    assert_accounts_token(
        app,
        &reply,
        &oauth,
        "DPoP",
        &json!({"jkt": dpop.thumbprint()}),
    )
    .await;

    // Every one of them is listed.
    let listed = bank
        .session
        .call(app, Method::GET, "/admin/v1/clients", None)
        .await;
    let ids: BTreeSet<&str> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    for id in [
        pkjwt.as_str(),
        tls,
        ss.as_str(),
        ms,
        oauth.as_str(),
        bank.admin.client_id.as_str(),
    ] {
        assert!(ids.contains(id), "{id} not in {ids:?}");
    }
}

#[tokio::test]
async fn admin_api_needs_a_token_for_it_with_the_scope_of_the_route() {
    let bank = Bank::start().await;
    let app = bank.app();

    // No token: 401 with a challenge for both schemes (RFC 6750 §3, RFC 9449 §7.1).
    let reply = Reply::send(app.client(None).get(app.url("/admin/v1/clients"))).await;
    reply.assert_error(401, "invalid_token");
    let challenge = reply.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.contains("DPoP") && challenge.contains("Bearer"),
        "{challenge}"
    );

    // A token for admin:keys only: keys yes, clients no (403 insufficient_scope, RFC 6750 §3.1).
    let keys_only = AdminSession::open(app, &bank.admin, "admin:keys").await;
    let reply = keys_only
        .call(app, Method::GET, "/admin/v1/keys", None)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply
            .body
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["public_jwk"]["d"].is_null())
    );
    let reply = keys_only
        .call(app, Method::GET, "/admin/v1/clients", None)
        .await;
    reply.assert_error(403, "insufficient_scope");
    assert!(
        reply
            .header("www-authenticate")
            .is_some_and(|c| c.contains("insufficient_scope") && c.contains("admin:clients")),
        "{:?}",
        reply.headers
    );

    // A client without admin scopes cannot ask for them.
    bank.add_resource().await;
    let key = ClientKey::es256(Some("k"));
    let tpp = bank
        .add_client_id(&m2m("private_key_jwt", &json!({"jwks": key.jwks()})))
        .await;
    let dpop = ClientKey::es256(None);
    let reply = client_credentials_dpop(app, &tpp, &key, &dpop, "admin:clients").await;
    reply.assert_error(400, "invalid_scope");

    // Its token for the accounts API is not a token for the admin API (aud), even with a valid
    // proof of its key.
    let reply = client_credentials_dpop(app, &tpp, &key, &dpop, "accounts").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let resource_token = AdminSession {
        token: reply.body["access_token"].as_str().unwrap().to_owned(),
        dpop,
    };
    let reply = resource_token
        .call(app, Method::GET, "/admin/v1/clients", None)
        .await;
    reply.assert_error(401, "invalid_token");
    assert!(
        reply.body["error_description"]
            .as_str()
            .unwrap()
            .contains("not for the admin API"),
        "{}",
        reply.body
    );
}

/// The whole security-event trail through `GET /admin/v1/events`, page by page (two events a
/// page, so paging is exercised): (actor, action, subject, details as JSON text).
async fn security_events(bank: &Bank) -> Vec<(String, String, Option<String>, String)> {
    let mut events = Vec::new();
    let mut last_seq = 0;
    let mut path = "/admin/v1/events?limit=2".to_owned();
    loop {
        let page = bank
            .session
            .call(bank.app(), Method::GET, &path, None)
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        for item in page.body["items"].as_array().unwrap() {
            let seq = item["seq"].as_i64().unwrap();
            assert!(seq > last_seq, "events come oldest first");
            last_seq = seq;
            events.push((
                item["actor"].as_str().unwrap().to_owned(),
                item["action"].as_str().unwrap().to_owned(),
                item["subject"].as_str().map(str::to_owned),
                item["details"].to_string(),
            ));
        }
        match page.body["next"].as_str() {
            Some(next) => path = format!("/admin/v1/events?limit=2&after={next}"),
            None => return events,
        }
    }
}

#[tokio::test]
async fn admin_changes_are_recorded_in_the_security_event_trail() {
    let bank = Bank::start().await;
    let app = bank.app();
    let actor = format!("admin-client:{}", bank.admin.client_id);
    bank.add_resource().await;
    let created = bank
        .add_client(&m2m("client_secret_basic", &json!({"profile": "oauth"})))
        .await;
    let client_id = created["client_id"].as_str().unwrap();
    let secret = created["client_secret"].as_str().unwrap();
    let rotated = bank
        .session
        .call(
            app,
            Method::POST,
            &format!("/admin/v1/clients/{client_id}/secret"),
            None,
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new_secret = rotated.body["client_secret"].as_str().unwrap();

    let events = security_events(&bank).await;
    // Reading the trail needs admin:audit; a bad cursor is the caller's error.
    let narrow = AdminSession::open(app, &bank.admin, "admin:clients").await;
    let refused = narrow
        .call(app, Method::GET, "/admin/v1/events", None)
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(refused.body["error"], "insufficient_scope");
    let bad = bank
        .session
        .call(app, Method::GET, "/admin/v1/events?after=yesterday", None)
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    let find = |action: &str, subject: &str| {
        events
            .iter()
            .find(|(_, a, s, _)| a == action && s.as_deref() == Some(subject))
            .unwrap_or_else(|| panic!("no {action} event for {subject}: {events:?}"))
    };
    assert_eq!(
        find("client.create", &bank.admin.client_id).0,
        "cli:admin-bootstrap"
    );
    assert_eq!(find("resource.create", RESOURCE).0, actor);
    let (who, _, _, details) = find("client.create", client_id);
    assert_eq!(who, &actor);
    assert!(details.contains(client_id), "{details}");
    assert_eq!(find("client.rotate_secret", client_id).0, actor);
    for (_, action, _, details) in &events {
        assert!(
            !details.contains(secret) && !details.contains(new_secret),
            "{action} records a secret: {details}"
        );
    }
}

#[tokio::test]
async fn admin_secret_rotation_makes_the_old_secret_stop_working() {
    let bank = Bank::start().await;
    let app = bank.app();
    bank.add_resource().await;
    let created = bank
        .add_client(&m2m("client_secret_basic", &json!({"profile": "oauth"})))
        .await;
    let client_id = created["client_id"].as_str().unwrap().to_owned();
    let old = created["client_secret"].as_str().unwrap().to_owned();

    let token = |secret: String| {
        let client_id = client_id.clone();
        async move {
            let token_url = app.url("/token");
            let now = server_now(app).await;
            let credentials = Credentials {
                dpop: Some(dpop_proof(
                    &ClientKey::es256(None),
                    "POST",
                    &token_url,
                    None,
                    now,
                )),
                basic: Some((client_id, secret)),
            };
            post_form(
                &app.client(None),
                &token_url,
                &client_credentials_form("accounts"),
                &credentials,
            )
            .await
        }
    };
    assert_eq!(token(old.clone()).await.status, 200);

    let rotated = bank
        .session
        .call(
            app,
            Method::POST,
            &format!("/admin/v1/clients/{client_id}/secret"),
            None,
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new = rotated.body["client_secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(new.len(), 43);

    let reply = token(old).await;
    reply.assert_error(401, "invalid_client");
    assert!(
        reply
            .header("www-authenticate")
            .is_some_and(|c| c.starts_with("Basic")),
        "RFC 6749 §5.2: Basic was tried, so a Basic challenge: {:?}",
        reply.headers
    );
    let reply = token(new).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        claims_of(reply.body["access_token"].as_str().unwrap())["client_id"],
        client_id.as_str()
    );

    // A client without a secret has none to rotate.
    let key = ClientKey::es256(Some("k"));
    let fapi = bank
        .add_client_id(&m2m("private_key_jwt", &json!({"jwks": key.jwks()})))
        .await;
    let reply = bank
        .session
        .call(
            app,
            Method::POST,
            &format!("/admin/v1/clients/{fapi}/secret"),
            None,
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
}
