//! Helpers shared by the end-to-end modules.

use portcullis_testkit::app::{App, Options};
use portcullis_testkit::db::{Backend, TestDatabase};
use serde_json::Value;

/// A server on a fresh database of `backend`, with the data directory it owns.
pub struct Fixture {
    pub app: App,
    pub dir: tempfile::TempDir,
    pub db: TestDatabase,
}

impl Fixture {
    pub async fn start(backend: Backend) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let db = TestDatabase::new(backend).await;
        let app = App::spawn(options(&dir, &db)).await;
        Fixture { app, dir, db }
    }
}

/// Options for a server on `db` (SQLite: the embedded default inside `dir`).
pub fn options(dir: &tempfile::TempDir, db: &TestDatabase) -> Options {
    let mut options = Options::new(dir.path());
    if db.backend() == Backend::Postgres {
        options.database_url = Some(db.url().to_owned());
    }
    options
}

/// The `kid`s of a JWKS, in order.
pub fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// Signs claims with the server's active key for `alg` through the test control.
pub async fn sign(app: &App, alg: &str) -> (String, String) {
    let claims = serde_json::json!({"iss": app.issuer, "sub": "e2e", "exp": 4_102_444_800_u64});
    let (status, body) = app
        .post_json(
            "/__test/sign",
            &serde_json::json!({"alg": alg, "claims": claims}),
        )
        .await;
    assert!(status.is_success(), "sign failed: {body}");
    (
        body["jwt"].as_str().unwrap().to_owned(),
        body["kid"].as_str().unwrap().to_owned(),
    )
}

/// Verifies a JWT against a JWKS with `jsonwebtoken`, a JOSE implementation independent of ours.
pub fn verify_independently(jwt: &str, jwks: &Value) -> Result<Value, String> {
    verify_with(jwt, jwks, true)
}

/// [`verify_independently`] for a JWT that need not expire (an RFC 9701 introspection answer,
/// which has `iat` but no `exp`).
pub fn verify_unexpiring(jwt: &str, jwks: &Value) -> Result<Value, String> {
    verify_with(jwt, jwks, false)
}

fn verify_with(jwt: &str, jwks: &Value, expiring: bool) -> Result<Value, String> {
    let set: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(jwks.clone()).map_err(|e| e.to_string())?;
    let header = jsonwebtoken::decode_header(jwt).map_err(|e| e.to_string())?;
    let kid = header.kid.ok_or("no kid")?;
    let jwk = set
        .find(&kid)
        .ok_or_else(|| format!("kid {kid} is not in the JWKS"))?;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.validate_aud = false;
    if !expiring {
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
    }
    jsonwebtoken::decode::<Value>(jwt, &key, &validation)
        .map(|d| d.claims)
        .map_err(|e| e.to_string())
}
