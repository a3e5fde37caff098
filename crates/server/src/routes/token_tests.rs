//! Handler tests of `POST /token` with the client-credentials grant: client authentication by
//! every registered method, the sender constraint of the issued token, and the attack cases of
//! `specs/fapi-requirements.md` §4 that this grant can meet (#4, #12–#28, #31–#33, #36, #38).
//!
//! Issued tokens are verified against `/jwks` with `jsonwebtoken`, a JOSE implementation other
//! than ours, and thumbprints are computed here independently (DESIGN.md, JOSE). Requests reach
//! the handler without TLS: a client certificate is put into the request extensions exactly as the
//! TLS accept loop does (`tls/listener.rs`).
//!
//! This file holds the fixtures; the tests are in `authentication` (assertions and secrets),
//! `certificates` (RFC 8705 client authentication) and `grant` (what the grant checks once the
//! client is known, and the proof of possession).

mod account;
mod audit;
mod authentication;
mod certificates;
mod code;
mod events;
mod flow;
mod grant;
mod grants;
mod limits;
mod par;
mod revoke;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use portcullis_core::Clock as _;
use portcullis_core::client::ClientProfile;
use portcullis_core::client::register::Registered;
use portcullis_core::client::settings::ClientSettings;
use portcullis_core::resource::{ResourceMetadata, ResourceServer};
use portcullis_jose::{SigningAlg, SigningKey};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use super::tests::{Harness, harness};
use crate::client_auth::JWT_BEARER;
use crate::tls::ListenerKind;
use crate::tls::client_cert::{ClientCertificate, ConnectionInfo};

const ISSUER: &str = "https://as.example";
const TOKEN_URL: &str = "https://as.example/token";
const MTLS_TOKEN_URL: &str = "https://mtls.as.example/token";
const ACCOUNTS: &str = "https://api.bank.example/accounts";
/// The server's default access-token lifetime (`tokens.access_token_lifetime_secs`).
const LIFETIME: i64 = 300;

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// A fresh identifier for assertion and proof `jti`s.
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn now(h: &Harness) -> i64 {
    h.clock.now().unix_timestamp()
}

/// Registers the accounts API, which serves the `accounts` scope.
async fn serve_accounts(h: &Harness) {
    let now = h.clock.now();
    h.state
        .store
        .resource_servers()
        .add(&ResourceServer {
            resource: ACCOUNTS.into(),
            metadata: ResourceMetadata {
                name: Some("Accounts API".into()),
                scopes: vec!["accounts".into()],
                ..ResourceMetadata::default()
            },
            client_id: None,
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap();
}

async fn register(
    h: &Harness,
    metadata: Value,
    profile: ClientProfile,
    settings: ClientSettings,
) -> Registered {
    crate::registry::create_client(
        h.state.store.as_ref(),
        h.rng.as_ref(),
        h.clock.as_ref(),
        "test",
        crate::registry::NewClient {
            request: metadata.as_object().unwrap().clone(),
            profile,
            settings,
            registration_token: None,
        },
    )
    .await
    .unwrap()
}

/// The metadata of a machine client: client credentials only, scope `accounts`.
fn machine_client(method: &str) -> Value {
    json!({
        "client_name": "Example TPP",
        "token_endpoint_auth_method": method,
        "grant_types": ["client_credentials"],
        "response_types": [],
        "scope": "accounts",
    })
}

fn jwks_of(keys: &[Value]) -> Value {
    json!({ "keys": keys })
}

fn public_jwk(key: &SigningKey) -> Value {
    Value::Object(key.public_jwk().unwrap().into())
}

/// A `private_key_jwt` client and its signing key.
struct Tpp {
    id: String,
    key: SigningKey,
}

async fn private_key_jwt_client_with(
    h: &Harness,
    profile: ClientProfile,
    settings: ClientSettings,
) -> Tpp {
    let key = SigningKey::generate(SigningAlg::Es256, 2048).unwrap();
    let mut metadata = machine_client("private_key_jwt");
    metadata["jwks"] = jwks_of(&[public_jwk(&key)]);
    let registered = register(h, metadata, profile, settings).await;
    Tpp {
        id: registered.client.client_id.to_string(),
        key,
    }
}

async fn private_key_jwt_client(h: &Harness) -> Tpp {
    private_key_jwt_client_with(h, ClientProfile::Fapi2, ClientSettings::default()).await
}

/// The claims of a good assertion for `client_id` (RFC 7523 §3).
fn assertion_claims(h: &Harness, client_id: &str) -> Value {
    let now = now(h);
    json!({
        "iss": client_id,
        "sub": client_id,
        "aud": ISSUER,
        "jti": unique("assertion"),
        "iat": now,
        "exp": now + 60,
    })
}

fn sign_with_kid(key: &SigningKey, kid: &str, claims: &Value) -> String {
    key.sign_jwt_with_header(
        json!({ "kid": kid }).as_object().unwrap(),
        claims.as_object().unwrap(),
    )
    .unwrap()
}

fn sign(key: &SigningKey, claims: &Value) -> String {
    sign_with_kid(key, key.kid(), claims)
}

impl Tpp {
    fn assertion(&self, h: &Harness) -> String {
        sign(&self.key, &assertion_claims(h, &self.id))
    }

    /// An assertion whose claims `change` edits; a `null` removes the claim.
    fn assertion_with(&self, h: &Harness, change: Value) -> String {
        let mut claims = assertion_claims(h, &self.id);
        for (name, value) in change.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(name);
            } else {
                claims[name] = value.clone();
            }
        }
        sign(&self.key, &claims)
    }
}

/// `base64url(header).base64url(claims)`: the JWS signing input, for hand-made tokens.
fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
    )
}

/// A DPoP proof (RFC 9449 §4.2) by `key` for `htm` and `htu`, made `age` seconds ago.
fn dpop_proof_at(h: &Harness, key: &SigningKey, htm: &str, htu: &str, age: i64) -> String {
    let header = json!({ "typ": "dpop+jwt", "jwk": public_jwk(key) });
    let claims = json!({ "jti": unique("dpop"), "htm": htm, "htu": htu, "iat": now(h) - age });
    key.sign_jwt_with_header(header.as_object().unwrap(), claims.as_object().unwrap())
        .unwrap()
}

fn dpop_proof(h: &Harness, key: &SigningKey) -> String {
    dpop_proof_at(h, key, "POST", TOKEN_URL, 0)
}

fn dpop_key() -> SigningKey {
    SigningKey::generate(SigningAlg::Es256, 2048).unwrap()
}

/// The RFC 7638 thumbprint of `key`, computed by `jsonwebtoken`.
fn thumbprint(key: &SigningKey) -> String {
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(public_jwk(key)).unwrap();
    jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Requests and answers
// ---------------------------------------------------------------------------------------------

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// The parameters of a client-credentials request authenticated by `assertion`, then `extra`.
fn with_assertion<'a>(assertion: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut pairs = vec![
        ("grant_type", "client_credentials"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion),
    ];
    pairs.extend_from_slice(extra);
    pairs
}

/// A token request with a form body and the given headers.
fn token_request(pairs: &[(&str, &str)], headers: &[(&str, &str)]) -> Request<Body> {
    let mut builder =
        Request::post("/token").header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::from(form(pairs))).unwrap()
}

/// What the TLS accept loop attaches to a request on the mTLS listener.
fn over_mtls(mut request: Request<Body>, certificate: Option<ClientCertificate>) -> Request<Body> {
    let certificate = certificate.map(Arc::new);
    let info = ConnectionInfo {
        remote_addr: SocketAddr::from(([192, 0, 2, 10], 50_000)),
        listener: ListenerKind::Mtls,
        handshake_certificate: certificate.clone(),
    };
    request.extensions_mut().insert(info);
    if let Some(certificate) = certificate {
        request.extensions_mut().insert(certificate);
    }
    request
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    /// Asserts an error answer: its status, its RFC code, that the description names `rule`, and
    /// `Cache-Control: no-store` (RFC 6749 §5.2).
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
    fn invalid_client(&self, rule: &str) {
        self.refused(StatusCode::UNAUTHORIZED, "invalid_client", rule);
    }

    /// Asserts a token response (RFC 6749 §5.1) and returns the access token.
    #[track_caller]
    fn issued(&self, token_type: &str, scope: &str) -> String {
        assert_eq!(self.status, StatusCode::OK, "{}", self.body);
        assert_eq!(self.body["token_type"], token_type);
        assert_eq!(self.body["expires_in"], LIFETIME);
        assert_eq!(self.body["scope"], scope);
        assert_eq!(self.headers[header::CACHE_CONTROL], "no-store");
        assert_eq!(self.headers[header::PRAGMA], "no-cache");
        self.body["access_token"].as_str().unwrap().to_owned()
    }
}

async fn send(h: &Harness, request: Request<Body>) -> Answer {
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

/// A client-credentials request authenticated by `assertion`, with a fresh DPoP proof.
async fn post_assertion(h: &Harness, assertion: &str, extra: &[(&str, &str)]) -> Answer {
    let proof = dpop_proof(h, &dpop_key());
    send(
        h,
        token_request(&with_assertion(assertion, extra), &[("dpop", &proof)]),
    )
    .await
}

/// The claims of an access token whose signature `jsonwebtoken` verified against `/jwks`, with
/// `iss`, `aud`, `exp` and `sub` checked, after checking `typ: at+jwt` (RFC 9068 §2.1).
async fn verified_claims(h: &Harness, jwt: &str, audience: &str) -> Value {
    let (_, _, jwks) = super::tests::get(&h.router, "/jwks").await;
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).unwrap();
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"), "RFC 9068 §2.1");
    let jwk = set.find(header.kid.as_deref().unwrap()).unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[ISSUER]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<Value>(jwt, &key, &validation)
        .unwrap()
        .claims
}

/// RFC 9068 §2.2 claims of a client-credentials token: the client is the subject.
#[track_caller]
fn assert_client_token(claims: &Value, client_id: &str, scope: &str, cnf: &Value) {
    assert_eq!(claims["client_id"], client_id);
    assert_eq!(claims["sub"], client_id);
    assert_eq!(claims["scope"], scope);
    assert_eq!(&claims["cnf"], cnf);
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 22));
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, LIFETIME);
}
