//! What the targets check besides "no panic": a second, independent signature check of every
//! JWS a verifier accepted (aws-lc-rs directly, not josekit), and that what the server stores
//! reads back. A broken invariant is an `assert!`, which the fuzzer reports as a crash like any
//! panic of the code under test.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_jose::SigningAlg;
use serde_json::{Map, Value};

/// Whether `token`'s signature verifies with the public JWK `jwk` under `alg`, checked with
/// aws-lc-rs over the token's own first two parts: the signing input of RFC 7515 §5.2. A JWS
/// that our verifier accepts and this refuses is a forgery our verifier let through.
#[must_use]
pub fn independently_verified(token: &str, alg: SigningAlg, jwk: &Map<String, Value>) -> bool {
    use aws_lc_rs::signature::{self, UnparsedPublicKey};
    let Some((signing_input, signature)) = token.rsplit_once('.') else {
        return false;
    };
    let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else {
        return false;
    };
    let member = |name: &str| {
        jwk.get(name)
            .and_then(Value::as_str)
            .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
    };
    let message = signing_input.as_bytes();
    match alg {
        SigningAlg::EdDsa => member("x").is_some_and(|x| {
            UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(message, &signature)
                .is_ok()
        }),
        SigningAlg::Es256 => match (member("x"), member("y")) {
            (Some(x), Some(y)) => {
                let mut point = vec![0x04];
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, &signature)
                    .is_ok()
            }
            _ => false,
        },
        SigningAlg::Ps256 => match (member("n"), member("e")) {
            (Some(n), Some(e)) => signature::RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PSS_2048_8192_SHA256, message, &signature)
                .is_ok(),
            _ => false,
        },
    }
}

/// Writes `value` as JSON text and reads it back, as both storage backends do with every JSON
/// column (and a resource server with a token's payload): what the server accepted must read
/// back, or the request fails later, at `/authorize` or at the API.
#[must_use]
pub fn reads_back(value: &Value) -> Option<Value> {
    let text = serde_json::to_string(value).ok()?;
    serde_json::from_str(&text).ok()
}

/// Asserts that `document`, stored as a JSON column holds it, reads back equal.
pub fn assert_stores(what: &str, document: &Map<String, Value>) {
    let column = Value::Object(document.clone());
    let back = reads_back(&column);
    assert!(
        back.as_ref().is_some_and(|b| equivalent(b, &column)),
        "{what} was accepted but does not read back from storage"
    );
}

/// JSON equality in which numbers compare by value: integers exactly, floats to within the
/// last bits serde_json's text round trip may change.
#[must_use]
pub fn equivalent(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                return x == y;
            }
            if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                return x == y;
            }
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => x == y || (x - y).abs() <= f64::EPSILON * 4.0 * x.abs(),
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| equivalent(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| equivalent(v, w)))
        }
        _ => a == b,
    }
}
