//! Handler tests of dynamic client registration (RFC 7591) and the client configuration endpoint
//! (RFC 7592): closed by default, initial access tokens, software statements from a trusted
//! directory with the transport certificate that names the software (checklist #63, #64), and the
//! update and delete rules. Requests reach the handlers without TLS: a client certificate is put
//! into the request extensions exactly as the TLS accept loop does. The end-to-end tests over real
//! TLS, with statements signed by another JOSE implementation, are in `tests/e2e/registration.rs`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use portcullis_core::Clock as _;
use portcullis_core::client::ClientId;
use portcullis_core::client::secret::SecretHash;
use portcullis_jose::{Jwks, SigningAlg, SigningKey};
use portcullis_testkit::certs::{ClientIdentity, TestCa};
use rustls_pki_types::CertificateDer;
use serde_json::{Map, Value, json};
use tower::ServiceExt as _;

use super::tests::{Harness, harness_with};
use crate::registration::{DirectoryConfig, RegistrationConfig};
use crate::tls::ListenerKind;
use crate::tls::client_cert::{CertificateSource, ClientCertificate, ConnectionInfo};

const DIRECTORY: &str = "https://directory.example";
const SOFTWARE: &str = "tpp-app-1";
const INITIAL_TOKEN: &str = "initial-access-token-for-the-tests-0123456789";

fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    #[track_caller]
    fn refused(&self, status: StatusCode, error: &str, rule: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.body["error"], error, "{}", self.body);
        let description = self.body["error_description"].as_str().unwrap_or_default();
        assert!(
            description.contains(rule),
            "{description:?} does not name {rule:?}"
        );
        assert_eq!(self.headers[header::CACHE_CONTROL], "no-store");
    }

    #[track_caller]
    fn bad_token(&self, rule: &str) {
        self.refused(StatusCode::UNAUTHORIZED, "invalid_token", rule);
        let challenge = self.headers[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(
            challenge.starts_with("Bearer error=\"invalid_token\""),
            "{challenge}"
        );
    }

    fn str(&self, name: &str) -> String {
        self.body[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {}", self.body))
            .to_owned()
    }
}

/// A server with registration configured by `edit`, a directory key, and a CA for the directory's
/// transport certificates.
struct Dcr {
    h: Harness,
    directory: SigningKey,
    ca: TestCa,
    _files: tempfile::TempDir,
}

async fn dcr(edit: impl FnOnce(&mut RegistrationConfig, &DirectoryConfig)) -> Dcr {
    let files = tempfile::tempdir().unwrap();
    let directory = SigningKey::generate(SigningAlg::Ps256, 2048).unwrap();
    let jwks = Jwks {
        keys: vec![directory.public_jwk().unwrap()],
    };
    let jwks_file = files.path().join("directory.jwks");
    std::fs::write(&jwks_file, serde_json::to_vec(&jwks).unwrap()).unwrap();
    let ca = TestCa::new("Directory transport CA");
    let ca_file = files.path().join("directory-ca.pem");
    std::fs::write(&ca_file, &ca.cert_pem).unwrap();
    let trusted = DirectoryConfig {
        issuer: DIRECTORY.into(),
        jwks_file: Some(jwks_file),
        jwks_uri: None,
        algorithms: Vec::new(),
        profile: None,
        trust_anchor_files: vec![ca_file],
        certificate_match: crate::registration::CertificateMatch::SoftwareId,
    };
    let h = harness_with(|config| edit(&mut config.registration, &trusted)).await;
    Dcr {
        h,
        directory,
        ca,
        _files: files,
    }
}

fn initial_token_hash() -> String {
    URL_SAFE_NO_PAD.encode(SecretHash::of(INITIAL_TOKEN).as_bytes())
}

/// Statement claims for `SOFTWARE`, issued now.
fn claims(d: &Dcr) -> Map<String, Value> {
    json!({
        "iss": DIRECTORY,
        "iat": d.h.clock.now().unix_timestamp(),
        "jti": unique("ssa"),
        "software_id": SOFTWARE,
        "software_client_name": "Example TPP",
        "software_redirect_uris": ["https://tpp.example/cb"],
        "org_id": "org-1"
    })
    .as_object()
    .unwrap()
    .clone()
}

fn sign(d: &Dcr, claims: &Map<String, Value>) -> String {
    d.directory.sign_jwt("JWT", claims).unwrap()
}

/// A FAPI client authenticating with its transport certificate.
fn fapi_body(statement: &str) -> Value {
    json!({
        "software_statement": statement,
        "client_name": "What the client would like to be called",
        "redirect_uris": ["https://tpp.example/cb"],
        "token_endpoint_auth_method": "tls_client_auth",
        "tls_client_auth_subject_dn": format!("CN=tpp transport,UID={SOFTWARE},O=Example TPP"),
        "tls_client_certificate_bound_access_tokens": true,
        "scope": "accounts"
    })
}

fn presented(identity: &ClientIdentity) -> ClientCertificate {
    ClientCertificate::new(
        CertificateDer::from(identity.cert_der.clone()),
        CertificateSource::Handshake,
    )
    .with_intermediates(&[])
}

/// A call: on the mTLS listener with `cert`, else on the main one.
async fn call(
    h: &Harness,
    method: Method,
    path: &str,
    body: Option<&Value>,
    bearer: Option<&str>,
    cert: Option<&ClientIdentity>,
) -> Answer {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(token) = bearer {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let mut request = match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap(),
        None => builder.body(Body::empty()).unwrap(),
    };
    let certificate = cert.map(|c| Arc::new(presented(c)));
    request.extensions_mut().insert(ConnectionInfo {
        remote_addr: SocketAddr::from(([192, 0, 2, 10], 50_000)),
        listener: if certificate.is_some() {
            ListenerKind::Mtls
        } else {
            ListenerKind::Main
        },
        handshake_certificate: certificate.clone(),
    });
    if let Some(certificate) = certificate {
        request.extensions_mut().insert(certificate);
    }
    let response = h.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

async fn register(d: &Dcr, body: &Value, cert: Option<&ClientIdentity>) -> Answer {
    call(&d.h, Method::POST, "/register", Some(body), None, cert).await
}

fn path_of(answer: &Answer) -> String {
    format!("/register/{}", answer.str("client_id"))
}

/// The security events about `client_id`, as `(action, actor)`.
async fn events(h: &Harness, client_id: &str) -> Vec<(String, String)> {
    h.state
        .store
        .events()
        .list(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event.subject.as_deref() == Some(client_id))
        .map(|e| (e.event.action, e.event.actor))
        .collect()
}

fn with_directory(config: &mut RegistrationConfig, directory: &DirectoryConfig) {
    config.directories = vec![directory.clone()];
}

#[tokio::test]
async fn registration_is_closed_until_configured() {
    let d = dcr(|_, _| {}).await;
    let answer = register(
        &d,
        &json!({"redirect_uris": ["https://tpp.example/cb"]}),
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.body["error"], "not_found");
    let (_, _, discovery) =
        super::tests::get(&d.h.router, "/.well-known/openid-configuration").await;
    assert!(discovery.get("registration_endpoint").is_none());
    assert!(
        discovery["mtls_endpoint_aliases"]
            .get("registration_endpoint")
            .is_none()
    );
}

#[tokio::test]
async fn rfc_7591_initial_access_token_registration_and_rfc_7592_management() {
    let d = dcr(|config, _| {
        config.initial_access_token_sha256 = vec![initial_token_hash()];
        config.profile = "oauth".into();
    })
    .await;
    let h = &d.h;
    let body = json!({
        "client_name": "Back office",
        "redirect_uris": ["https://backoffice.example/cb"],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": "accounts"
    });

    // RFC 7591 §3 with RFC 6750: no token, a wrong one, another scheme.
    call(h, Method::POST, "/register", Some(&body), None, None)
        .await
        .bad_token("initial access token is required");
    call(
        h,
        Method::POST,
        "/register",
        Some(&body),
        Some("guess"),
        None,
    )
    .await
    .bad_token("not valid");

    let created = call(
        h,
        Method::POST,
        "/register",
        Some(&body),
        Some(INITIAL_TOKEN),
        None,
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.headers[header::CACHE_CONTROL], "no-store");
    let client_id = created.str("client_id");
    let secret = created.str("client_secret");
    let token = created.str("registration_access_token");
    assert!(token.len() >= 43, "at least 256 bits");
    assert_eq!(created.body["client_secret_expires_at"], 0);
    assert_eq!(
        created.str("registration_client_uri"),
        format!("https://as.example/register/{client_id}")
    );
    assert!(
        created.body.get("profile").is_none(),
        "operator settings are not shown"
    );
    // Only the hash is stored.
    let stored = h
        .state
        .store
        .clients()
        .find_by_id(&ClientId::parse(client_id.clone()).unwrap())
        .await
        .unwrap();
    assert!(stored.registration_token_hash.unwrap().matches(&token));
    assert!(stored.secret_hash.unwrap().matches(&secret));

    let (_, _, discovery) = super::tests::get(&h.router, "/.well-known/openid-configuration").await;
    assert_eq!(
        discovery["registration_endpoint"],
        "https://as.example/register"
    );
    assert_eq!(
        discovery["mtls_endpoint_aliases"]["registration_endpoint"],
        "https://mtls.as.example/register"
    );

    // Operator-only fields and a body that is not JSON.
    let mut widened = body.clone();
    widened["access_token_lifetime_secs"] = json!(86_400);
    call(
        h,
        Method::POST,
        "/register",
        Some(&widened),
        Some(INITIAL_TOKEN),
        None,
    )
    .await
    .refused(
        StatusCode::BAD_REQUEST,
        "invalid_client_metadata",
        "access_token_lifetime_secs",
    );
    let mut request = Request::post("/register")
        .header(header::AUTHORIZATION, format!("Bearer {INITIAL_TOKEN}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("client_name=x"))
        .unwrap();
    request.extensions_mut().insert(ConnectionInfo {
        remote_addr: SocketAddr::from(([192, 0, 2, 10], 50_000)),
        listener: ListenerKind::Main,
        handshake_certificate: None,
    });
    let response = h.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // RFC 7592 §2.1.
    let path = path_of(&created);
    let read = call(h, Method::GET, &path, None, Some(&token), None).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.body["client_name"], "Back office");
    assert_eq!(read.str("registration_access_token"), token);
    assert!(read.body.get("client_secret").is_none());
    call(h, Method::GET, &path, None, Some("wrong"), None)
        .await
        .bad_token("not valid for this client");
    call(h, Method::GET, &path, None, None, None)
        .await
        .bad_token("Bearer");
    call(
        h,
        Method::GET,
        "/register/no-such-client",
        None,
        Some(&token),
        None,
    )
    .await
    .bad_token("not valid for this client");
    // Another client's token does not reach this one.
    let other = call(
        h,
        Method::POST,
        "/register",
        Some(&body),
        Some(INITIAL_TOKEN),
        None,
    )
    .await;
    call(
        h,
        Method::GET,
        &path,
        None,
        Some(&other.str("registration_access_token")),
        None,
    )
    .await
    .bad_token("not valid for this client");

    // RFC 7592 §2.2.
    let mut update = body.clone();
    update["client_name"] = json!("Back office (renamed)");
    call(h, Method::PUT, &path, Some(&update), Some(&token), None)
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_request", "client_id");
    update["client_id"] = json!(client_id);
    for member in ["registration_access_token", "client_id_issued_at"] {
        let mut bad = update.clone();
        bad[member] = json!(token);
        call(h, Method::PUT, &path, Some(&bad), Some(&token), None)
            .await
            .refused(StatusCode::BAD_REQUEST, "invalid_request", member);
    }
    let mut wrong_secret = update.clone();
    wrong_secret["client_secret"] = json!("not-the-secret");
    call(
        h,
        Method::PUT,
        &path,
        Some(&wrong_secret),
        Some(&token),
        None,
    )
    .await
    .refused(StatusCode::BAD_REQUEST, "invalid_request", "client_secret");
    let mut operator = update.clone();
    operator["profile"] = json!("fapi2");
    call(h, Method::PUT, &path, Some(&operator), Some(&token), None)
        .await
        .refused(
            StatusCode::BAD_REQUEST,
            "invalid_client_metadata",
            "profile",
        );
    update["client_secret"] = json!(secret);
    let updated = call(h, Method::PUT, &path, Some(&update), Some(&token), None).await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.body["client_name"], "Back office (renamed)");
    // The secret survives an update that keeps the method.
    let stored = h
        .state
        .store
        .clients()
        .find_by_id(&ClientId::parse(client_id.clone()).unwrap())
        .await
        .unwrap();
    assert!(stored.secret_hash.unwrap().matches(&secret));

    // RFC 7592 §2.3.
    let deleted = call(h, Method::DELETE, &path, None, Some(&token), None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    call(h, Method::GET, &path, None, Some(&token), None)
        .await
        .bad_token("not valid for this client");

    assert_eq!(
        events(h, &client_id).await,
        vec![
            (
                "client.create".into(),
                "registration:initial-access-token".into()
            ),
            ("client.update".into(), format!("client:{client_id}")),
            ("client.delete".into(), format!("client:{client_id}")),
        ]
    );
}

#[tokio::test]
async fn checklist_63_64_software_statement_with_the_transport_certificate() {
    let d = dcr(with_directory).await;
    let h = &d.h;
    let cert = d.ca.issue_for_software("Example TPP", SOFTWARE);

    let statement = sign(&d, &claims(&d));
    let created = register(&d, &fapi_body(&statement), Some(&cert)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let client_id = created.str("client_id");
    // RFC 7591 §2.3: the statement wins; it is kept as registered.
    assert_eq!(created.body["client_name"], "Example TPP");
    assert_eq!(created.body["software_id"], SOFTWARE);
    assert_eq!(created.str("software_statement"), statement);
    assert!(created.body.get("client_secret").is_none());
    assert_eq!(
        created.str("registration_client_uri"),
        format!("https://mtls.as.example/register/{client_id}")
    );
    let stored = h
        .state
        .store
        .clients()
        .find_by_id(&ClientId::parse(client_id.clone()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        stored.profile,
        portcullis_core::client::ClientProfile::Fapi2
    );
    assert_eq!(
        events(h, &client_id).await,
        vec![(
            "client.create".into(),
            format!("registration:{DIRECTORY}:{SOFTWARE}")
        )]
    );
    let (_, _, discovery) = super::tests::get(&h.router, "/.well-known/openid-configuration").await;
    assert_eq!(
        discovery["registration_endpoint"], "https://mtls.as.example/register",
        "every registration needs a certificate, so the endpoint is on the mTLS listener"
    );

    // The same statement again (checklist #63: single-use jti).
    register(&d, &fapi_body(&statement), Some(&cert))
        .await
        .refused(
            StatusCode::BAD_REQUEST,
            "invalid_software_statement",
            "used before",
        );

    // Checklist #63.
    let mut no_statement = fapi_body("");
    no_statement
        .as_object_mut()
        .unwrap()
        .remove("software_statement");
    register(&d, &no_statement, Some(&cert)).await.refused(
        StatusCode::BAD_REQUEST,
        "invalid_software_statement",
        "required",
    );
    let forger = SigningKey::generate(SigningAlg::Ps256, 2048).unwrap();
    // Signed by another key that claims the directory's kid.
    let header = json!({"typ": "JWT", "kid": d.directory.kid()});
    let forged = forger
        .sign_jwt_with_header(header.as_object().unwrap(), &claims(&d))
        .unwrap();
    register(&d, &fapi_body(&forged), Some(&cert))
        .await
        .refused(
            StatusCode::BAD_REQUEST,
            "invalid_software_statement",
            "signature",
        );
    let mut stale = claims(&d);
    stale["iat"] = json!(d.h.clock.now().unix_timestamp() - 301);
    register(&d, &fapi_body(&sign(&d, &stale)), Some(&cert))
        .await
        .refused(
            StatusCode::BAD_REQUEST,
            "invalid_software_statement",
            "more than 300 s ago",
        );
    let mut foreign = claims(&d);
    foreign["iss"] = json!("https://other-directory.example");
    register(&d, &fapi_body(&sign(&d, &foreign)), Some(&cert))
        .await
        .refused(
            StatusCode::BAD_REQUEST,
            "unapproved_software_statement",
            "trust",
        );
    let mut outside = fapi_body(&sign(&d, &claims(&d)));
    outside["redirect_uris"] = json!(["https://tpp.example/elsewhere"]);
    register(&d, &outside, Some(&cert)).await.refused(
        StatusCode::BAD_REQUEST,
        "invalid_redirect_uri",
        "software_redirect_uris",
    );
    let mut by_value = fapi_body(&sign(&d, &claims(&d)));
    by_value["jwks"] = json!({"keys": []});
    register(&d, &by_value, Some(&cert)).await.refused(
        StatusCode::BAD_REQUEST,
        "invalid_client_metadata",
        "jwks by value",
    );
    let mut operator = fapi_body(&sign(&d, &claims(&d)));
    operator["admin_scopes"] = json!(["admin:clients"]);
    register(&d, &operator, Some(&cert)).await.refused(
        StatusCode::BAD_REQUEST,
        "invalid_client_metadata",
        "admin_scopes",
    );

    // Checklist #64: no certificate, another software's, one from a CA the directory does not use.
    register(&d, &fapi_body(&sign(&d, &claims(&d))), None)
        .await
        .refused(
            StatusCode::BAD_REQUEST,
            "unapproved_software_statement",
            "transport certificate",
        );
    let other_software = d.ca.issue_for_software("Example TPP", "tpp-app-2");
    register(
        &d,
        &fapi_body(&sign(&d, &claims(&d))),
        Some(&other_software),
    )
    .await
    .refused(
        StatusCode::BAD_REQUEST,
        "unapproved_software_statement",
        "software_id",
    );
    let rogue = TestCa::new("Rogue CA").issue_for_software("Example TPP", SOFTWARE);
    register(&d, &fapi_body(&sign(&d, &claims(&d))), Some(&rogue))
        .await
        .refused(
            StatusCode::BAD_REQUEST,
            "unapproved_software_statement",
            "does not chain",
        );
    let self_signed = ClientIdentity::self_signed(SOFTWARE);
    register(&d, &fapi_body(&sign(&d, &claims(&d))), Some(&self_signed))
        .await
        .refused(
            StatusCode::BAD_REQUEST,
            "unapproved_software_statement",
            "does not chain",
        );
    // A refused request burns nothing: a fresh statement still registers.
    let again = register(&d, &fapi_body(&sign(&d, &claims(&d))), Some(&cert)).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
}

#[tokio::test]
async fn checklist_64_rfc_7592_calls_need_the_token_and_the_software_certificate() {
    let d = dcr(with_directory).await;
    let h = &d.h;
    let cert = d.ca.issue_for_software("Example TPP", SOFTWARE);
    let created = register(&d, &fapi_body(&sign(&d, &claims(&d))), Some(&cert)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let client_id = created.str("client_id");
    let token = created.str("registration_access_token");
    let path = path_of(&created);

    call(h, Method::GET, &path, None, Some(&token), None)
        .await
        .bad_token("transport certificate");
    let other_software = d.ca.issue_for_software("Example TPP", "tpp-app-2");
    call(
        h,
        Method::GET,
        &path,
        None,
        Some(&token),
        Some(&other_software),
    )
    .await
    .bad_token("software_id");
    let read = call(h, Method::GET, &path, None, Some(&token), Some(&cert)).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);

    // An update needs a fresh statement for the same software (Open Finance Brasil: PUT is
    // validated as a registration is).
    let mut update = fapi_body(&sign(&d, &claims(&d)));
    update["client_id"] = json!(client_id);
    update["contacts"] = json!(["ops@tpp.example"]);
    let mut without = update.clone();
    without
        .as_object_mut()
        .unwrap()
        .remove("software_statement");
    call(
        h,
        Method::PUT,
        &path,
        Some(&without),
        Some(&token),
        Some(&cert),
    )
    .await
    .refused(
        StatusCode::BAD_REQUEST,
        "invalid_software_statement",
        "required",
    );
    let mut elsewhere = claims(&d);
    elsewhere["software_id"] = json!("tpp-app-2");
    let mut other = update.clone();
    other["software_statement"] = json!(sign(&d, &elsewhere));
    call(
        h,
        Method::PUT,
        &path,
        Some(&other),
        Some(&token),
        Some(&cert),
    )
    .await
    .refused(
        StatusCode::BAD_REQUEST,
        "unapproved_software_statement",
        "other software",
    );
    let mut outside = update.clone();
    outside["redirect_uris"] = json!(["https://tpp.example/elsewhere"]);
    call(
        h,
        Method::PUT,
        &path,
        Some(&outside),
        Some(&token),
        Some(&cert),
    )
    .await
    .refused(
        StatusCode::BAD_REQUEST,
        "invalid_redirect_uri",
        "software_redirect_uris",
    );
    let updated = call(
        h,
        Method::PUT,
        &path,
        Some(&update),
        Some(&token),
        Some(&cert),
    )
    .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.body["contacts"], json!(["ops@tpp.example"]));
    assert_eq!(updated.body["client_name"], "Example TPP");

    call(h, Method::DELETE, &path, None, Some(&token), None)
        .await
        .bad_token("transport certificate");
    let deleted = call(h, Method::DELETE, &path, None, Some(&token), Some(&cert)).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(
        h.state
            .store
            .clients()
            .find_by_id(&ClientId::parse(client_id).unwrap())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn an_initial_access_token_can_be_required_on_top_of_the_statement() {
    let d = dcr(|config, directory| {
        with_directory(config, directory);
        config.initial_access_token_sha256 = vec![initial_token_hash()];
        config.require_initial_access_token = true;
    })
    .await;
    let cert = d.ca.issue_for_software("Example TPP", SOFTWARE);
    let body = fapi_body(&sign(&d, &claims(&d)));
    call(
        &d.h,
        Method::POST,
        "/register",
        Some(&body),
        None,
        Some(&cert),
    )
    .await
    .bad_token("initial access token is required");
    let created = call(
        &d.h,
        Method::POST,
        "/register",
        Some(&body),
        Some(INITIAL_TOKEN),
        Some(&cert),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    // With directories configured, the initial access token never replaces the statement.
    let mut without = body.clone();
    without
        .as_object_mut()
        .unwrap()
        .remove("software_statement");
    call(
        &d.h,
        Method::POST,
        "/register",
        Some(&without),
        Some(INITIAL_TOKEN),
        Some(&cert),
    )
    .await
    .refused(
        StatusCode::BAD_REQUEST,
        "invalid_software_statement",
        "required",
    );
}

#[tokio::test]
async fn an_oauth_directory_needs_no_certificate() {
    let d = dcr(|config, directory| {
        let mut directory = directory.clone();
        directory.profile = Some("oauth".into());
        config.directories = vec![directory];
    })
    .await;
    let body = json!({
        "software_statement": sign(&d, &claims(&d)),
        "redirect_uris": ["https://tpp.example/cb"],
        "token_endpoint_auth_method": "client_secret_post"
    });
    let created = register(&d, &body, None).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert!(created.body.get("client_secret").is_some());
    let (_, _, discovery) =
        super::tests::get(&d.h.router, "/.well-known/openid-configuration").await;
    assert_eq!(
        discovery["registration_endpoint"],
        "https://as.example/register"
    );
}

#[tokio::test]
async fn a_statement_is_spent_only_by_a_registration_that_passes_every_rule() {
    let d = dcr(with_directory).await;
    let cert = d.ca.issue_for_software("Example TPP", SOFTWARE);
    // Refused for its metadata (an operator-only field, a rule of the FAPI profile): the same
    // statement still registers once the request is corrected.
    let statement = sign(&d, &claims(&d));
    let mut operator = fapi_body(&statement);
    operator["profile"] = json!("oauth");
    register(&d, &operator, Some(&cert)).await.refused(
        StatusCode::BAD_REQUEST,
        "invalid_client_metadata",
        "profile",
    );
    let mut secret = fapi_body(&statement);
    secret["token_endpoint_auth_method"] = json!("client_secret_basic");
    register(&d, &secret, Some(&cert)).await.refused(
        StatusCode::BAD_REQUEST,
        "invalid_client_metadata",
        "client_secret_basic",
    );
    let created = register(&d, &fapi_body(&statement), Some(&cert)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);

    // A statement without a jti is single-use too, by its hash.
    let mut no_jti = claims(&d);
    no_jti.remove("jti");
    let statement = sign(&d, &no_jti);
    let first = register(&d, &fapi_body(&statement), Some(&cert)).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    register(&d, &fapi_body(&statement), Some(&cert))
        .await
        .refused(
            StatusCode::BAD_REQUEST,
            "invalid_software_statement",
            "used before",
        );
}

#[tokio::test]
async fn the_client_configuration_endpoint_is_closed_with_registration() {
    let d = dcr(|_, _| {}).await;
    let answer = call(
        &d.h,
        Method::GET,
        "/register/AAAAAAAAAAAAAAAAAAAAAA",
        None,
        Some("anything"),
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.body);
}
