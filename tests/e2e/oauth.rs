//! The client side of OAuth for the end-to-end modules, written with `jsonwebtoken` (a JOSE
//! implementation independent of the server's josekit) and keys made by `aws-lc-rs`: client keys,
//! `private_key_jwt` assertions (RFC 7523), DPoP proofs (RFC 9449), token requests, the first
//! admin client (`portcullis admin bootstrap`) and admin API calls with a DPoP-bound token.
//!
//! Proofs and assertions are dated by the server's clock (read through the test hook), so tests
//! that move that clock still make proofs it accepts.

use std::path::Path;

use aws_lc_rs::rand::SecureRandom as _;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use portcullis_testkit::app::{App, Build, CliOutput, run_cli};
use portcullis_testkit::certs::ClientIdentity;
use portcullis_testkit::db::Backend;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::Fixture;

/// The client-assertion type of RFC 7523 §2.2.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Every admin scope the bootstrap client may ask for that the admin API has routes for.
pub const ADMIN_SCOPE: &str = "admin:clients admin:users admin:keys admin:resources admin:audit";

/// A fresh random identifier (128 bits, base64url), for `jti`s.
#[must_use]
pub fn random_id() -> String {
    let mut bytes = [0_u8; 16];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .unwrap();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// base64url(SHA-256(data)): the `ath` of RFC 9449 §4.2 and the `x5t#S256` of RFC 8705 §3.1.
#[must_use]
pub fn sha256_b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data))
}

/// One DER element at the start of `input`: (tag, contents, rest).
fn der_element(input: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = input[0];
    let (len, header) = match input[1] {
        short if short < 0x80 => (usize::from(short), 2),
        long => {
            let count = usize::from(long & 0x7f);
            let len = input[2..2 + count]
                .iter()
                .fold(0_usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, 2 + count)
        }
    };
    (tag, &input[header..header + len], &input[header + len..])
}

/// The RFC 8017 `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo` (RFC 5208): what
/// `jsonwebtoken` signs RSA with.
fn pkcs1_from_pkcs8(pkcs8: &[u8]) -> Vec<u8> {
    let (tag, info, _) = der_element(pkcs8);
    assert_eq!(tag, 0x30, "PrivateKeyInfo is a SEQUENCE");
    let (_, _, rest) = der_element(info); // version
    let (_, _, rest) = der_element(rest); // privateKeyAlgorithm
    let (tag, key, _) = der_element(rest);
    assert_eq!(tag, 0x04, "privateKey is an OCTET STRING");
    key.to_vec()
}

/// A client's signing key: the private half for `jsonwebtoken`, the public JWK to register.
#[derive(Clone)]
pub struct ClientKey {
    key: EncodingKey,
    /// The algorithm it signs with.
    pub alg: Algorithm,
    /// Its public JWK (`kty`, key members, `alg`, `use` sig and, if given, `kid`).
    pub public: Jwk,
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKey")
            .field("alg", &self.alg)
            .field("kid", &self.public.common.key_id)
            .finish_non_exhaustive()
    }
}

impl ClientKey {
    fn new(key: EncodingKey, alg: Algorithm, kid: Option<&str>) -> Self {
        let mut public = Jwk::from_encoding_key(&key, alg).unwrap();
        public.common.key_id = kid.map(str::to_owned);
        public.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
        Self { key, alg, public }
    }

    /// A fresh P-256 key for ES256.
    #[must_use]
    pub fn es256(kid: Option<&str>) -> Self {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let der = pair.to_pkcs8v1().unwrap();
        Self::new(
            EncodingKey::from_ec_der(der.as_ref()),
            Algorithm::ES256,
            kid,
        )
    }

    /// A fresh 2048-bit RSA key for PS256.
    #[must_use]
    pub fn ps256(kid: Option<&str>) -> Self {
        use aws_lc_rs::encoding::AsDer as _;
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let pkcs8 = pair.as_der().unwrap();
        Self::new(
            EncodingKey::from_rsa_der(&pkcs1_from_pkcs8(pkcs8.as_ref())),
            Algorithm::PS256,
            kid,
        )
    }

    /// The key of a private EC P-256 JWK (`d`, `x`, `y`), as `admin bootstrap` prints it.
    #[must_use]
    pub fn from_private_jwk(jwk: &Value) -> Self {
        assert_eq!(jwk["kty"], "EC", "{jwk}");
        assert_eq!(jwk["crv"], "P-256", "{jwk}");
        let member = |name: &str| {
            URL_SAFE_NO_PAD
                .decode(
                    jwk[name]
                        .as_str()
                        .unwrap_or_else(|| panic!("no {name} in {jwk}")),
                )
                .unwrap()
        };
        let mut point = vec![0x04];
        point.extend(member("x"));
        point.extend(member("y"));
        let pair = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &member("d"),
            &point,
        )
        .unwrap();
        let der = pair.to_pkcs8v1().unwrap();
        Self::new(
            EncodingKey::from_ec_der(der.as_ref()),
            Algorithm::ES256,
            jwk["kid"].as_str(),
        )
    }

    /// The key of a client certificate (a P-256 PKCS#8 key, as the testkit makes them).
    #[must_use]
    pub fn from_identity(identity: &ClientIdentity, kid: Option<&str>) -> Self {
        let key = rustls_pemfile::private_key(&mut identity.key_pem.as_bytes())
            .unwrap()
            .unwrap();
        Self::new(
            EncodingKey::from_ec_der(key.secret_der()),
            Algorithm::ES256,
            kid,
        )
    }

    /// The public JWK as JSON.
    #[must_use]
    pub fn public_jwk(&self) -> Value {
        serde_json::to_value(&self.public).unwrap()
    }

    /// A JWK set holding only this key.
    #[must_use]
    pub fn jwks(&self) -> Value {
        json!({"keys": [self.public_jwk()]})
    }

    /// The RFC 7638 SHA-256 thumbprint: the `cnf.jkt` of tokens bound to it.
    #[must_use]
    pub fn thumbprint(&self) -> String {
        self.public.thumbprint(ThumbprintHash::SHA256).unwrap()
    }

    /// Signs `claims` under `header`, whose `alg` must be of this key's family.
    #[must_use]
    pub fn sign_with_header(&self, header: &Header, claims: &Value) -> String {
        jsonwebtoken::encode(header, claims, &self.key).unwrap()
    }

    /// Signs `claims` with the key's algorithm, `typ` JWT and its `kid`.
    #[must_use]
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = self.public.common.key_id.clone();
        self.sign_with_header(&header, claims)
    }
}

/// The server's current time (Unix seconds), read through the test-only clock control.
pub async fn server_now(app: &App) -> i64 {
    let (status, body) = app
        .post_json("/__test/clock", &json!({"advance_secs": 0}))
        .await;
    assert!(status.is_success(), "clock control failed: {status} {body}");
    body["now"].as_i64().unwrap()
}

/// The claims of a valid client assertion (RFC 7523 §3) for `client_id`, addressed to
/// `audience` (for FAPI: exactly the issuer), valid for a minute from `now`.
#[must_use]
pub fn assertion_claims(client_id: &str, audience: &str, now: i64) -> Value {
    json!({
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": random_id(),
        "iat": now,
        "exp": now + 60,
    })
}

/// The form members of `private_key_jwt` with `assertion`.
#[must_use]
pub fn assertion_form(assertion: &str) -> Vec<(String, String)> {
    vec![
        ("client_assertion_type".into(), JWT_BEARER.into()),
        ("client_assertion".into(), assertion.into()),
    ]
}

/// A DPoP proof (RFC 9449 §4.2) by `key` for `method` on `url`, with `ath` when it accompanies
/// `access_token`.
#[must_use]
pub fn dpop_proof(
    key: &ClientKey,
    method: &str,
    url: &str,
    access_token: Option<&str>,
    now: i64,
) -> String {
    let mut header = Header::new(key.alg);
    header.typ = Some("dpop+jwt".into());
    let mut jwk = key.public.clone();
    jwk.common.key_id = None;
    header.jwk = Some(jwk);
    let mut claims = json!({"jti": random_id(), "htm": method, "htu": url, "iat": now});
    if let Some(token) = access_token {
        claims["ath"] = sha256_b64(token.as_bytes()).into();
    }
    key.sign_with_header(&header, &claims)
}

/// An HTTP answer: status, headers and JSON body (`Null` when there is none).
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body as JSON; `Null` when empty or not JSON.
    pub body: Value,
}

impl Reply {
    /// Sends `request` and reads the answer.
    pub async fn send(request: reqwest::RequestBuilder) -> Reply {
        Reply::read(request.send().await.unwrap()).await
    }

    async fn read(response: reqwest::Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }

    /// A header as a string, if present.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an OAuth error answer: the status, the code, a description, and `Cache-Control:
    /// no-store` (RFC 6749 §5.2).
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status.as_u16(), self.body["error"].as_str()),
            (status, Some(code)),
            "{:?} {}",
            self.headers,
            self.body
        );
        assert!(
            self.body["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "an error names the rule it applied: {}",
            self.body
        );
        assert_eq!(self.header("cache-control"), Some("no-store"));
    }
}

/// What a token request carries besides its form.
#[derive(Debug, Default, Clone)]
pub struct Credentials {
    /// The `DPoP` header.
    pub dpop: Option<String>,
    /// HTTP Basic client id and secret (RFC 6749 §2.3.1).
    pub basic: Option<(String, String)>,
}

/// `POST url` with a form body through `http`.
pub async fn post_form(
    http: &reqwest::Client,
    url: &str,
    form: &[(String, String)],
    credentials: &Credentials,
) -> Reply {
    let mut request = http.post(url).form(form);
    if let Some(proof) = &credentials.dpop {
        request = request.header("DPoP", proof);
    }
    if let Some((id, secret)) = &credentials.basic {
        // Server-made ids and secrets are base64url: form-encoding leaves them as they are.
        request = request.basic_auth(id, Some(secret));
    }
    Reply::read(request.send().await.unwrap()).await
}

/// The form of a client-credentials request for `scope`.
#[must_use]
pub fn client_credentials_form(scope: &str) -> Vec<(String, String)> {
    vec![
        ("grant_type".into(), "client_credentials".into()),
        ("scope".into(), scope.into()),
    ]
}

/// A client-credentials request on the main listener authenticated with `private_key_jwt` by
/// `key`, with a DPoP proof by `dpop`.
pub async fn client_credentials_dpop(
    app: &App,
    client_id: &str,
    key: &ClientKey,
    dpop: &ClientKey,
    scope: &str,
) -> Reply {
    let now = server_now(app).await;
    let token_url = app.url("/token");
    let mut form = client_credentials_form(scope);
    form.extend(assertion_form(&key.sign(&assertion_claims(
        client_id,
        &app.issuer,
        now,
    ))));
    let credentials = Credentials {
        dpop: Some(dpop_proof(dpop, "POST", &token_url, None, now)),
        basic: None,
    };
    post_form(&app.client(None), &token_url, &form, &credentials).await
}

/// An admin client: its id and key.
#[derive(Debug, Clone)]
pub struct AdminClient {
    /// Its `client_id`.
    pub client_id: String,
    /// Its `private_key_jwt` key.
    pub key: ClientKey,
}

/// `portcullis admin bootstrap <extra>` on the fixture's store.
pub async fn bootstrap_cli(f: &Fixture, extra: &[&str]) -> CliOutput {
    bootstrap_cli_on(
        f.dir.path(),
        (f.db.backend() == Backend::Postgres).then(|| f.db.url()),
        extra,
    )
    .await
}

/// `portcullis admin bootstrap <extra>` on the store of `data_dir` (or `database_url`).
pub async fn bootstrap_cli_on(
    data_dir: &Path,
    database_url: Option<&str>,
    extra: &[&str],
) -> CliOutput {
    let mut args = vec![
        "admin",
        "bootstrap",
        "--data-dir",
        data_dir.to_str().unwrap(),
    ];
    if let Some(url) = database_url {
        args.extend(["--database-url", url]);
    }
    args.extend_from_slice(extra);
    run_cli(Build::Plain, &args, &[]).await
}

/// The first admin client of the fixture's store, made by `admin bootstrap`.
pub async fn bootstrap(f: &Fixture) -> AdminClient {
    let out = bootstrap_cli(f, &[]).await;
    assert!(
        out.status.success(),
        "admin bootstrap failed: {}",
        out.stderr
    );
    let shown: Value = serde_json::from_str(&out.stdout).unwrap();
    AdminClient {
        client_id: shown["client_id"].as_str().unwrap().to_owned(),
        key: ClientKey::from_private_jwk(&shown["private_jwk"]),
    }
}

/// A DPoP-bound admin access token and the key it is bound to; each call sends a fresh proof
/// with `ath` (RFC 9449 §7.1).
#[derive(Debug, Clone)]
pub struct AdminSession {
    /// The access token.
    pub token: String,
    /// The DPoP key it is bound to.
    pub dpop: ClientKey,
}

impl AdminSession {
    /// Gets a token for `scope` with the client-credentials grant, bound to a fresh key.
    pub async fn open(app: &App, admin: &AdminClient, scope: &str) -> AdminSession {
        let dpop = ClientKey::es256(None);
        let reply = client_credentials_dpop(app, &admin.client_id, &admin.key, &dpop, scope).await;
        assert_eq!(reply.status, 200, "admin token: {}", reply.body);
        AdminSession {
            token: reply.body["access_token"].as_str().unwrap().to_owned(),
            dpop,
        }
    }

    /// `method path` on the main listener with the token, a fresh proof and, if given, a JSON body.
    pub async fn call(&self, app: &App, method: Method, path: &str, body: Option<&Value>) -> Reply {
        let url = app.url(path);
        let now = server_now(app).await;
        let proof = dpop_proof(&self.dpop, method.as_str(), &url, Some(&self.token), now);
        let mut request = app
            .client(None)
            .request(method, &url)
            .header("Authorization", format!("DPoP {}", self.token))
            .header("DPoP", proof);
        if let Some(body) = body {
            request = request.json(body);
        }
        Reply::read(request.send().await.unwrap()).await
    }

    /// `POST path` with a JSON body, expecting 201 Created; the created object.
    pub async fn create(&self, app: &App, path: &str, body: &Value) -> Value {
        let reply = self.call(app, Method::POST, path, Some(body)).await;
        assert_eq!(reply.status, 201, "POST {path}: {}", reply.body);
        reply.body
    }
}

/// The payload of a JWT, read without verifying it.
#[must_use]
pub fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// The protected header of a JWT.
#[must_use]
pub fn header_of(jwt: &str) -> Value {
    let header = jwt.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()
}
