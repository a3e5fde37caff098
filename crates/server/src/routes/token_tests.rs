//! Handler tests of `POST /token` with the client-credentials grant: client authentication by
//! every registered method, the sender constraint of the issued token, and the attack cases of
//! `specs/fapi-requirements.md` §4 that this grant can meet (#4, #12–#28, #31–#33, #36, #38).
//!
//! Issued tokens are verified against `/jwks` with `jsonwebtoken`, a JOSE implementation other
//! than ours, and thumbprints are computed here independently (DESIGN.md, JOSE). Requests reach
//! the handler without TLS: a client certificate is put into the request extensions exactly as the
//! TLS accept loop does (`tls/listener.rs`).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::signature::KeyPair as _;
use axum::body::Body;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use portcullis_core::Clock as _;
use portcullis_core::client::ClientProfile;
use portcullis_core::client::register::Registered;
use portcullis_core::client::settings::ClientSettings;
use portcullis_core::resource::{ResourceMetadata, ResourceServer};
use portcullis_jose::{SigningAlg, SigningKey};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::CertificateDer;
use serde_json::{Value, json};
use tower::ServiceExt as _;

use super::tests::{Harness, harness, harness_with};
use crate::client_auth::JWT_BEARER;
use crate::tls::ListenerKind;
use crate::tls::client_cert::{CertificateSource, ClientCertificate, ConnectionInfo};

const ISSUER: &str = "https://as.example";
const TOKEN_URL: &str = "https://as.example/token";
const MTLS_TOKEN_URL: &str = "https://mtls.as.example/token";
const ACCOUNTS: &str = "https://api.bank.example/accounts";
/// The server's default access-token lifetime (`tokens.access_token_lifetime_secs`).
const LIFETIME: i64 = 300;
/// The subject DN registered for the `tls_client_auth` client, RFC 4514 order.
const TPP_DN: &str = "CN=tpp-001,O=Example TPP,C=GB";

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
        metadata.as_object().unwrap().clone(),
        profile,
        settings,
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

/// The RFC 8705 §3.1 `x5t#S256` of a certificate, computed here.
fn x5t_s256(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der))
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

fn presented(der: &CertificateDer<'static>) -> ClientCertificate {
    ClientCertificate::new(der.clone(), CertificateSource::Handshake).with_intermediates(&[])
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

// ---------------------------------------------------------------------------------------------
// private_key_jwt
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn private_key_jwt_with_dpop_gets_a_dpop_bound_token_for_the_resource() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let key = dpop_key();
    let proof = dpop_proof(&h, &key);
    let answer = send(
        &h,
        token_request(
            &with_assertion(&tpp.assertion(&h), &[]),
            &[("dpop", &proof)],
        ),
    )
    .await;

    let token = answer.issued("DPoP", "accounts");
    let claims = verified_claims(&h, &token, ACCOUNTS).await;
    assert_client_token(
        &claims,
        &tpp.id,
        "accounts",
        &json!({ "jkt": thumbprint(&key) }),
    );
    assert_eq!(claims["aud"], ACCOUNTS);
    assert_eq!(claims["iat"], now(&h));
}

#[tokio::test]
async fn checklist_20_replayed_assertion_jti_is_invalid_client() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let assertion = tpp.assertion(&h);
    post_assertion(&h, &assertion, &[])
        .await
        .issued("DPoP", "accounts");
    // A second later, with a fresh DPoP proof: the assertion itself is spent.
    h.clock.advance(time::Duration::seconds(1));
    post_assertion(&h, &assertion, &[])
        .await
        .invalid_client("single-use (OIDC Core §9)");
}

#[tokio::test]
async fn checklist_16_assertion_for_another_server_is_invalid_client() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let assertion = tpp.assertion_with(&h, json!({ "aud": "https://other-bank.example" }));
    post_assertion(&h, &assertion, &[])
        .await
        .invalid_client("aud must be the issuer identifier (FAPI2 SP 5.3.2.1-8)");
}

#[tokio::test]
async fn checklist_17_fapi_assertion_aud_is_the_issuer_string_not_an_endpoint_or_an_array() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    for aud in [
        json!(TOKEN_URL),
        json!(MTLS_TOKEN_URL),
        json!("https://as.example/par"),
    ] {
        let assertion = tpp.assertion_with(&h, json!({ "aud": aud }));
        post_assertion(&h, &assertion, &[])
            .await
            .invalid_client("aud must be the issuer identifier (FAPI2 SP 5.3.2.1-8)");
    }
    for aud in [json!([ISSUER]), json!([ISSUER, TOKEN_URL])] {
        let assertion = tpp.assertion_with(&h, json!({ "aud": aud }));
        post_assertion(&h, &assertion, &[])
            .await
            .invalid_client("not an array (FAPI2 SP 5.3.2.1-8)");
    }
}

/// The FAPI rule is the profile's: an `oauth`-profile client may address the token endpoint or
/// use an array (RFC 7523 §3), as `client_auth.oauth_accept_endpoint_audiences` allows by default.
#[tokio::test]
async fn oauth_profile_assertion_may_name_the_token_endpoint_or_an_array() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp =
        private_key_jwt_client_with(&h, ClientProfile::Oauth, ClientSettings::default()).await;
    for aud in [json!(TOKEN_URL), json!(["https://other.example", ISSUER])] {
        let assertion = tpp.assertion_with(&h, json!({ "aud": aud }));
        post_assertion(&h, &assertion, &[])
            .await
            .issued("DPoP", "accounts");
    }
    let assertion = tpp.assertion_with(&h, json!({ "aud": "https://other.example" }));
    post_assertion(&h, &assertion, &[])
        .await
        .invalid_client("aud");
}

#[tokio::test]
async fn checklist_18_expired_assertion_is_invalid_client() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let t = now(&h);
    let assertion = tpp.assertion_with(&h, json!({ "iat": t - 360, "exp": t - 300 }));
    post_assertion(&h, &assertion, &[])
        .await
        .invalid_client("client assertion has expired");
}

#[tokio::test]
async fn checklist_19_assertion_iat_or_nbf_61_s_ahead_is_refused_and_8_s_ahead_passes() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let t = now(&h);
    for claim in ["iat", "nbf"] {
        let ahead = tpp.assertion_with(&h, json!({ claim: t + 61, "exp": t + 120 }));
        post_assertion(&h, &ahead, &[])
            .await
            .invalid_client(&format!("{claim} is in the future (FAPI2 SP 5.3.2.1-13)"));
        let skewed = tpp.assertion_with(&h, json!({ claim: t + 8 }));
        post_assertion(&h, &skewed, &[])
            .await
            .issued("DPoP", "accounts");
    }
}

#[tokio::test]
async fn checklist_21_assertion_without_sub_or_naming_another_client_is_invalid_client() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let other = private_key_jwt_client(&h).await;

    let no_sub = tpp.assertion_with(&h, json!({ "sub": null }));
    post_assertion(&h, &no_sub, &[])
        .await
        .invalid_client("no sub naming the client (RFC 7523 §3)");
    post_assertion(&h, &no_sub, &[("client_id", &tpp.id)])
        .await
        .invalid_client("no sub naming the client (RFC 7523 §3)");

    // sub names another client than the one the request is for.
    let other_sub = tpp.assertion_with(&h, json!({ "sub": other.id }));
    post_assertion(&h, &other_sub, &[("client_id", &tpp.id)])
        .await
        .invalid_client("does not name the client that authenticated");
    // sub names another client, which did not sign it.
    post_assertion(&h, &other_sub, &[])
        .await
        .invalid_client("client assertion");

    let other_iss = tpp.assertion_with(&h, json!({ "iss": other.id }));
    post_assertion(&h, &other_iss, &[])
        .await
        .invalid_client("iss must be the client_id (RFC 7523 §3)");
}

#[tokio::test]
async fn checklist_22_alg_none_assertion_is_invalid_client() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let claims = assertion_claims(&h, &tpp.id);
    for header in [
        json!({ "alg": "none", "kid": tpp.key.kid() }),
        json!({ "alg": "none" }),
    ] {
        let unsigned = format!("{}.", signing_input(&header, &claims));
        post_assertion(&h, &unsigned, &[])
            .await
            .invalid_client("\"none\" is not allowed (FAPI2 SP 5.4.1");
    }
}

#[tokio::test]
async fn checklist_23_hs256_assertion_keyed_with_the_public_key_is_invalid_client() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let claims = assertion_claims(&h, &tpp.id);
    let header = json!({ "alg": "HS256", "kid": tpp.key.kid() });
    let input = signing_input(&header, &claims);
    // Algorithm confusion (RFC 8725 §2.1): the "secret" is the client's public key as registered.
    let secret = serde_json::to_vec(&public_jwk(&tpp.key)).unwrap();
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret);
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    let forged = format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
    post_assertion(&h, &forged, &[])
        .await
        .invalid_client("\"HS256\" is not allowed (FAPI2 SP 5.4.1");
}

#[tokio::test]
async fn checklist_24_rs256_assertion_is_invalid_client_though_ps256_with_the_same_key_passes() {
    let h = harness().await;
    serve_accounts(&h).await;
    let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let public = rsa.public_key();
    let jwk = json!({
        "kty": "RSA",
        "kid": "rsa-1",
        "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
        "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
    });
    let mut metadata = machine_client("private_key_jwt");
    metadata["jwks"] = jwks_of(&[jwk]);
    let client_id = register(
        &h,
        metadata,
        ClientProfile::Fapi2,
        ClientSettings::default(),
    )
    .await
    .client
    .client_id
    .to_string();
    let rsa_sign = |alg: &str, padding: &'static dyn aws_lc_rs::signature::RsaEncoding| {
        let input = signing_input(
            &json!({ "alg": alg, "kid": "rsa-1" }),
            &assertion_claims(&h, &client_id),
        );
        let mut signature = vec![0; rsa.public_modulus_len()];
        rsa.sign(
            padding,
            &aws_lc_rs::rand::SystemRandom::new(),
            input.as_bytes(),
            &mut signature,
        )
        .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    };

    // The key is good: signed with PS256 it authenticates the client.
    let ps256 = rsa_sign("PS256", &aws_lc_rs::signature::RSA_PSS_SHA256);
    post_assertion(&h, &ps256, &[])
        .await
        .issued("DPoP", "accounts");
    let rs256 = rsa_sign("RS256", &aws_lc_rs::signature::RSA_PKCS1_SHA256);
    post_assertion(&h, &rs256, &[])
        .await
        .invalid_client("\"RS256\" is not allowed (FAPI2 SP 5.4.1");
}

#[tokio::test]
async fn checklist_25_assertion_from_a_key_outside_the_clients_jwks_is_invalid_client() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let stranger = SigningKey::generate(SigningAlg::Es256, 2048).unwrap();
    let claims = assertion_claims(&h, &tpp.id);
    post_assertion(&h, &sign(&stranger, &claims), &[])
        .await
        .invalid_client(&format!("no ES256 key with kid {:?}", stranger.kid()));
    // The client's kid on a stranger's signature.
    let claims = assertion_claims(&h, &tpp.id);
    post_assertion(&h, &sign_with_kid(&stranger, tpp.key.kid(), &claims), &[])
        .await
        .invalid_client("signature does not verify with the client's keys");
    // The client's own key under a kid it never registered.
    let claims = assertion_claims(&h, &tpp.id);
    post_assertion(&h, &sign_with_kid(&tpp.key, "unknown-kid", &claims), &[])
        .await
        .invalid_client("no ES256 key with kid \"unknown-kid\"");
}

#[tokio::test]
async fn checklist_4_client_id_other_than_the_assertions_client_is_invalid_client() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let other = private_key_jwt_client(&h).await;
    post_assertion(&h, &tpp.assertion(&h), &[("client_id", &other.id)])
        .await
        .invalid_client("the client_id parameter does not name the client that authenticated");
    // The same request naming the right client passes.
    post_assertion(&h, &tpp.assertion(&h), &[("client_id", &tpp.id)])
        .await
        .issued("DPoP", "accounts");
}

#[tokio::test]
async fn checklist_14_request_without_client_authentication_is_invalid_client() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let proof = dpop_proof(&h, &dpop_key());
    let answer = send(
        &h,
        token_request(&[("grant_type", "client_credentials")], &[("dpop", &proof)]),
    )
    .await;
    answer.invalid_client("client authentication is required (FAPI2 SP 5.3.2.2-4)");
    assert!(!answer.headers.contains_key(header::WWW_AUTHENTICATE));

    let proof = dpop_proof(&h, &dpop_key());
    send(
        &h,
        token_request(
            &[("grant_type", "client_credentials"), ("client_id", &tpp.id)],
            &[("dpop", &proof)],
        ),
    )
    .await
    .invalid_client("this client authenticates with private_key_jwt (client_assertion)");
}

#[tokio::test]
async fn checklist_15_client_secret_from_a_fapi_client_is_invalid_client() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let basic = format!("Basic {}", STANDARD.encode(format!("{}:guessed", tpp.id)));
    let proof = dpop_proof(&h, &dpop_key());
    let answer = send(
        &h,
        token_request(
            &[("grant_type", "client_credentials")],
            &[("authorization", &basic), ("dpop", &proof)],
        ),
    )
    .await;
    answer.invalid_client("client secrets are not allowed for FAPI clients (FAPI2 SP 5.3.2.1-6)");
    // RFC 6749 §5.2: the client tried the Authorization header, so it gets a challenge.
    let challenge = answer.headers[header::WWW_AUTHENTICATE].to_str().unwrap();
    assert!(challenge.starts_with("Basic "), "{challenge}");

    let proof = dpop_proof(&h, &dpop_key());
    let answer = send(
        &h,
        token_request(
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &tpp.id),
                ("client_secret", "guessed"),
            ],
            &[("dpop", &proof)],
        ),
    )
    .await;
    answer.invalid_client("client secrets are not allowed for FAPI clients (FAPI2 SP 5.3.2.1-6)");
}

// ---------------------------------------------------------------------------------------------
// tls_client_auth and self_signed_tls_client_auth
// ---------------------------------------------------------------------------------------------

fn distinguished_name(cn: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CountryName, "GB");
    name.push(DnType::OrganizationName, "Example TPP");
    name.push(DnType::CommonName, cn);
    name
}

/// A client certificate's parameters: the subject, for client authentication.
fn leaf_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(cn);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params
}

/// A CA that issues client certificates, its PEM written to `dir` for the configuration.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem_file: std::path::PathBuf,
}

impl Ca {
    fn new(dir: &Path) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "Example Open Banking Issuing CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let certificate = params.self_signed(&key).unwrap();
        let pem_file = dir.join("client-ca.pem");
        std::fs::write(&pem_file, certificate.pem()).unwrap();
        Self {
            issuer: Issuer::new(params, key),
            pem_file,
        }
    }

    fn issue(&self, cn: &str) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        leaf_params(cn)
            .signed_by(&key, &self.issuer)
            .unwrap()
            .der()
            .clone()
    }
}

/// A harness trusting a fresh CA, and a `tls_client_auth` client registered with [`TPP_DN`].
async fn tls_client_auth_setup() -> (Harness, Ca, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let anchors = vec![ca.pem_file.clone()];
    let h = harness_with(|config| config.client_auth.trust_anchor_files = anchors).await;
    serve_accounts(&h).await;
    let mut metadata = machine_client("tls_client_auth");
    metadata["tls_client_auth_subject_dn"] = json!(TPP_DN);
    metadata["tls_client_certificate_bound_access_tokens"] = json!(true);
    let client_id = register(
        &h,
        metadata,
        ClientProfile::Fapi2,
        ClientSettings::default(),
    )
    .await
    .client
    .client_id
    .to_string();
    (h, ca, client_id, dir)
}

fn certificate_request(
    client_id: &str,
    certificate: Option<&CertificateDer<'static>>,
) -> Request<Body> {
    over_mtls(
        token_request(
            &[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
            ],
            &[],
        ),
        certificate.map(presented),
    )
}

#[tokio::test]
async fn tls_client_auth_with_the_registered_subject_gets_a_certificate_bound_token() {
    let (h, ca, client_id, _dir) = tls_client_auth_setup().await;
    let leaf = ca.issue("tpp-001");
    let answer = send(&h, certificate_request(&client_id, Some(&leaf))).await;
    let token = answer.issued("Bearer", "accounts");
    let claims = verified_claims(&h, &token, ACCOUNTS).await;
    assert_client_token(
        &claims,
        &client_id,
        "accounts",
        &json!({ "x5t#S256": x5t_s256(&leaf) }),
    );
}

#[tokio::test]
async fn checklist_26_tls_client_auth_certificate_with_another_subject_is_invalid_client() {
    let (h, ca, client_id, _dir) = tls_client_auth_setup().await;
    let other = ca.issue("tpp-002");
    send(&h, certificate_request(&client_id, Some(&other)))
        .await
        .invalid_client(
            "does not carry the registered tls_client_auth_subject_dn (RFC 8705 §2.1.2)",
        );
}

#[tokio::test]
async fn tls_client_auth_self_signed_certificate_with_the_registered_subject_is_invalid_client() {
    let (h, _ca, client_id, _dir) = tls_client_auth_setup().await;
    let key = KeyPair::generate().unwrap();
    let forged = leaf_params("tpp-001")
        .self_signed(&key)
        .unwrap()
        .der()
        .clone();
    send(&h, certificate_request(&client_id, Some(&forged)))
        .await
        .invalid_client("does not chain to a trusted CA (RFC 8705 §2.1)");
}

#[tokio::test]
async fn tls_client_auth_without_a_certificate_is_invalid_client() {
    let (h, _ca, client_id, _dir) = tls_client_auth_setup().await;
    send(&h, certificate_request(&client_id, None))
        .await
        .invalid_client("authenticates with a client certificate");
    // Nor on the main listener, where no certificate is ever asked for.
    let plain = token_request(
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
        ],
        &[],
    );
    send(&h, plain)
        .await
        .invalid_client("authenticates with a client certificate");
}

/// A self-signed certificate and its public key as a JWK.
fn self_signed(cn: &str) -> (CertificateDer<'static>, Value) {
    let key = KeyPair::generate().unwrap();
    let der = leaf_params(cn).self_signed(&key).unwrap().der().clone();
    // An uncompressed P-256 point: 0x04 || x || y.
    let point = key.public_key_raw();
    let (x, y) = point[1..].split_at(32);
    let jwk = json!({
        "kty": "EC",
        "crv": "P-256",
        "x": URL_SAFE_NO_PAD.encode(x),
        "y": URL_SAFE_NO_PAD.encode(y),
    });
    (der, jwk)
}

async fn self_signed_client(h: &Harness, jwk: Value) -> String {
    let mut metadata = machine_client("self_signed_tls_client_auth");
    metadata["jwks"] = jwks_of(&[jwk]);
    metadata["tls_client_certificate_bound_access_tokens"] = json!(true);
    register(h, metadata, ClientProfile::Fapi2, ClientSettings::default())
        .await
        .client
        .client_id
        .to_string()
}

#[tokio::test]
async fn self_signed_tls_client_auth_with_the_registered_key_gets_a_certificate_bound_token() {
    let h = harness().await;
    serve_accounts(&h).await;
    let (der, jwk) = self_signed("tpp-self");
    let client_id = self_signed_client(&h, jwk).await;
    let token = send(&h, certificate_request(&client_id, Some(&der)))
        .await
        .issued("Bearer", "accounts");
    let claims = verified_claims(&h, &token, ACCOUNTS).await;
    assert_client_token(
        &claims,
        &client_id,
        "accounts",
        &json!({ "x5t#S256": x5t_s256(&der) }),
    );
}

#[tokio::test]
async fn checklist_27_self_signed_certificate_not_in_the_jwks_is_invalid_client() {
    let h = harness().await;
    serve_accounts(&h).await;
    let (_, jwk) = self_signed("tpp-self");
    let client_id = self_signed_client(&h, jwk).await;
    let (other, _) = self_signed("tpp-self");
    send(&h, certificate_request(&client_id, Some(&other)))
        .await
        .invalid_client("not in the client's registered JWK set (RFC 8705 §2.2)");
}

// ---------------------------------------------------------------------------------------------
// oauth profile: client secrets
// ---------------------------------------------------------------------------------------------

fn basic(client_id: &str, secret: &str) -> String {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", encode(client_id), encode(secret)))
    )
}

#[tokio::test]
async fn oauth_client_secret_basic_with_dpop_gets_a_dpop_bound_token() {
    let h = harness().await;
    serve_accounts(&h).await;
    let registered = register(
        &h,
        machine_client("client_secret_basic"),
        ClientProfile::Oauth,
        ClientSettings::default(),
    )
    .await;
    let client_id = registered.client.client_id.to_string();
    let secret = registered.secret.unwrap();
    let key = dpop_key();
    let proof = dpop_proof(&h, &key);
    let authorization = basic(&client_id, secret.expose());
    let token = send(
        &h,
        token_request(
            &[("grant_type", "client_credentials")],
            &[("authorization", &authorization), ("dpop", &proof)],
        ),
    )
    .await
    .issued("DPoP", "accounts");
    let claims = verified_claims(&h, &token, ACCOUNTS).await;
    assert_client_token(
        &claims,
        &client_id,
        "accounts",
        &json!({ "jkt": thumbprint(&key) }),
    );
}

#[tokio::test]
async fn oauth_client_with_a_wrong_secret_is_401_with_a_basic_challenge() {
    let h = harness().await;
    serve_accounts(&h).await;
    let registered = register(
        &h,
        machine_client("client_secret_basic"),
        ClientProfile::Oauth,
        ClientSettings::default(),
    )
    .await;
    let client_id = registered.client.client_id.to_string();
    let proof = dpop_proof(&h, &dpop_key());
    let authorization = basic(&client_id, "not-the-secret");
    let answer = send(
        &h,
        token_request(
            &[("grant_type", "client_credentials")],
            &[("authorization", &authorization), ("dpop", &proof)],
        ),
    )
    .await;
    answer.invalid_client("the client secret is not correct");
    let challenge = answer.headers[header::WWW_AUTHENTICATE].to_str().unwrap();
    assert!(challenge.starts_with("Basic "), "{challenge}");
}

// ---------------------------------------------------------------------------------------------
// The grant, scope, resource and form
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn checklist_12_password_grant_is_unsupported_grant_type() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let assertion = tpp.assertion(&h);
    let proof = dpop_proof(&h, &dpop_key());
    let pairs = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", "secret"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", &assertion),
    ];
    send(&h, token_request(&pairs, &[("dpop", &proof)]))
        .await
        .refused(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "the password grant is not supported (FAPI2 SP 5.3.2.1-2)",
        );
}

#[tokio::test]
async fn checklist_13_client_not_registered_for_client_credentials_is_unauthorized_client() {
    let h = harness().await;
    serve_accounts(&h).await;
    let key = SigningKey::generate(SigningAlg::Es256, 2048).unwrap();
    let mut metadata = machine_client("private_key_jwt");
    metadata["jwks"] = jwks_of(&[public_jwk(&key)]);
    metadata["grant_types"] = json!(["authorization_code"]);
    metadata["response_types"] = json!(["code"]);
    metadata["redirect_uris"] = json!(["https://tpp.example/cb"]);
    let registered = register(
        &h,
        metadata,
        ClientProfile::Fapi2,
        ClientSettings::default(),
    )
    .await;
    let tpp = Tpp {
        id: registered.client.client_id.to_string(),
        key,
    };
    post_assertion(&h, &tpp.assertion(&h), &[]).await.refused(
        StatusCode::BAD_REQUEST,
        "unauthorized_client",
        "not registered for the client_credentials grant (RFC 6749 §5.2)",
    );
}

#[tokio::test]
async fn checklist_28_token_request_without_dpop_or_certificate_is_invalid_request() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let assertion = tpp.assertion(&h);
    send(&h, token_request(&with_assertion(&assertion, &[]), &[]))
        .await
        .refused(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "sender-constrained",
        );
    // On the mTLS listener without a certificate it is the same.
    let assertion = tpp.assertion(&h);
    send(
        &h,
        over_mtls(token_request(&with_assertion(&assertion, &[]), &[]), None),
    )
    .await
    .refused(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "(FAPI2 SP 5.3.2.1-4)",
    );
}

#[tokio::test]
async fn checklist_31_replayed_dpop_proof_is_invalid_dpop_proof() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let proof = dpop_proof(&h, &dpop_key());
    let first = tpp.assertion(&h);
    send(
        &h,
        token_request(&with_assertion(&first, &[]), &[("dpop", &proof)]),
    )
    .await
    .issued("DPoP", "accounts");
    let second = tpp.assertion(&h);
    send(
        &h,
        token_request(&with_assertion(&second, &[]), &[("dpop", &proof)]),
    )
    .await
    .refused(
        StatusCode::BAD_REQUEST,
        "invalid_dpop_proof",
        "single-use (RFC 9449 §11.1)",
    );
}

#[tokio::test]
async fn checklist_32_dpop_htu_of_another_url_is_invalid_dpop_proof() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let key = dpop_key();
    for htu in [
        "https://as.example/par",
        "https://evil.example/token",
        // The mTLS alias is another URL than the one this request was sent to.
        MTLS_TOKEN_URL,
    ] {
        let proof = dpop_proof_at(&h, &key, "POST", htu, 0);
        let assertion = tpp.assertion(&h);
        send(
            &h,
            token_request(&with_assertion(&assertion, &[]), &[("dpop", &proof)]),
        )
        .await
        .refused(
            StatusCode::BAD_REQUEST,
            "invalid_dpop_proof",
            "htu does not match the request URL (RFC 9449 §4.3 step 9)",
        );
    }
    // Query and fragment do not count.
    let proof = dpop_proof_at(&h, &key, "POST", "https://as.example/token?x=1#f", 0);
    let assertion = tpp.assertion(&h);
    send(
        &h,
        token_request(&with_assertion(&assertion, &[]), &[("dpop", &proof)]),
    )
    .await
    .issued("DPoP", "accounts");
    // On the mTLS listener the proof names the alias.
    let proof = dpop_proof_at(&h, &key, "POST", MTLS_TOKEN_URL, 0);
    let assertion = tpp.assertion(&h);
    let request = over_mtls(
        token_request(&with_assertion(&assertion, &[]), &[("dpop", &proof)]),
        None,
    );
    send(&h, request).await.issued("DPoP", "accounts");
}

#[tokio::test]
async fn checklist_33_dpop_htm_get_is_invalid_dpop_proof() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let proof = dpop_proof_at(&h, &dpop_key(), "GET", TOKEN_URL, 0);
    send(
        &h,
        token_request(
            &with_assertion(&tpp.assertion(&h), &[]),
            &[("dpop", &proof)],
        ),
    )
    .await
    .refused(
        StatusCode::BAD_REQUEST,
        "invalid_dpop_proof",
        "htm does not match the request method (RFC 9449 §4.3 step 8)",
    );
}

#[tokio::test]
async fn checklist_36_two_dpop_headers_are_invalid_dpop_proof() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let (a, b) = (dpop_proof(&h, &dpop_key()), dpop_proof(&h, &dpop_key()));
    send(
        &h,
        token_request(
            &with_assertion(&tpp.assertion(&h), &[]),
            &[("dpop", &a), ("dpop", &b)],
        ),
    )
    .await
    .refused(
        StatusCode::BAD_REQUEST,
        "invalid_dpop_proof",
        "more than one DPoP header (RFC 9449 §4.3 step 1)",
    );
}

#[tokio::test]
async fn checklist_38_dpop_proof_an_hour_off_is_invalid_and_10_s_either_way_passes() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let key = dpop_key();
    for (age, rule) in [
        (3600, "too old (RFC 9449 §11.1)"),
        (-3600, "in the future (FAPI2 SP 5.3.2.1-13)"),
    ] {
        let proof = dpop_proof_at(&h, &key, "POST", TOKEN_URL, age);
        send(
            &h,
            token_request(
                &with_assertion(&tpp.assertion(&h), &[]),
                &[("dpop", &proof)],
            ),
        )
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_dpop_proof", rule);
    }
    for age in [10, -10] {
        let proof = dpop_proof_at(&h, &key, "POST", TOKEN_URL, age);
        send(
            &h,
            token_request(
                &with_assertion(&tpp.assertion(&h), &[]),
                &[("dpop", &proof)],
            ),
        )
        .await
        .issued("DPoP", "accounts");
    }
}

#[tokio::test]
async fn scope_not_registered_for_the_client_is_invalid_scope() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    post_assertion(&h, &tpp.assertion(&h), &[("scope", "accounts payments")])
        .await
        .refused(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "scope payments is not registered for the client",
        );
}

#[tokio::test]
async fn unknown_resource_is_invalid_target_and_a_known_one_is_the_audience() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    post_assertion(
        &h,
        &tpp.assertion(&h),
        &[("resource", "https://api.bank.example/unknown")],
    )
    .await
    .refused(
        StatusCode::BAD_REQUEST,
        "invalid_target",
        "resource names no registered resource server (RFC 8707 §2)",
    );
    let token = post_assertion(&h, &tpp.assertion(&h), &[("resource", ACCOUNTS)])
        .await
        .issued("DPoP", "accounts");
    assert_eq!(verified_claims(&h, &token, ACCOUNTS).await["aud"], ACCOUNTS);
}

#[tokio::test]
async fn repeated_parameter_is_invalid_request() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    // RFC 6749 §3.2 and STYLE.md: a duplicated grant_type must be rejected.
    post_assertion(
        &h,
        &tpp.assertion(&h),
        &[("grant_type", "client_credentials")],
    )
    .await
    .refused(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "parameter grant_type is repeated (RFC 6749 §3.2)",
    );
    post_assertion(
        &h,
        &tpp.assertion(&h),
        &[("scope", "accounts"), ("scope", "accounts")],
    )
    .await
    .refused(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "parameter scope is repeated (RFC 6749 §3.2)",
    );
}

#[tokio::test]
async fn wrong_content_type_is_invalid_request() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let assertion = tpp.assertion(&h);
    let proof = dpop_proof(&h, &dpop_key());
    let body = json!({
        "grant_type": "client_credentials",
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion,
    });
    let request = Request::post("/token")
        .header(header::CONTENT_TYPE, "application/json")
        .header("dpop", proof)
        .body(Body::from(body.to_string()))
        .unwrap();
    send(&h, request).await.refused(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "must be application/x-www-form-urlencoded (RFC 6749 §3.2)",
    );
}

// ---------------------------------------------------------------------------------------------
// Admin scopes
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn admin_scope_granted_by_the_operator_gets_a_token_for_the_admin_api() {
    let h = harness().await;
    serve_accounts(&h).await;
    let settings = ClientSettings {
        admin_scopes: vec!["admin:clients".into()],
        ..ClientSettings::default()
    };
    let tpp = private_key_jwt_client_with(&h, ClientProfile::Fapi2, settings).await;
    let key = dpop_key();
    let proof = dpop_proof(&h, &key);
    let assertion = tpp.assertion(&h);
    let token = send(
        &h,
        token_request(
            &with_assertion(&assertion, &[("scope", "admin:clients")]),
            &[("dpop", &proof)],
        ),
    )
    .await
    .issued("DPoP", "admin:clients");
    let admin = "https://as.example/admin/v1";
    let claims = verified_claims(&h, &token, admin).await;
    assert_eq!(claims["aud"], admin);
    assert_client_token(
        &claims,
        &tpp.id,
        "admin:clients",
        &json!({ "jkt": thumbprint(&key) }),
    );
}

#[tokio::test]
async fn admin_scope_without_the_operators_grant_is_invalid_scope() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    post_assertion(&h, &tpp.assertion(&h), &[("scope", "admin:clients")])
        .await
        .refused(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "the client may not ask for admin:clients",
        );
}
