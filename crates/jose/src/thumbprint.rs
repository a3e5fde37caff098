//! RFC 7638 JWK thumbprints and RFC 8705 certificate thumbprints. josekit has neither. The JWK
//! thumbprint is the `kid` of our own keys and the `jkt` of DPoP keys (RFC 9449 §6.1); the
//! certificate thumbprint is `x5t#S256` (RFC 8705 §3.1).

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::JoseError;

/// The RFC 7638 SHA-256 thumbprint of a public JWK, base64url without padding.
///
/// Only the required members of the key type take part (RFC 7638 §3.2), in lexicographic order
/// and without whitespace, so private members and metadata such as `kid` never change it.
///
/// # Errors
/// [`JoseError::InvalidKey`] when `kty` is unknown or a required member is missing or not a string.
pub fn jwk_thumbprint_sha256(jwk: &Map<String, Value>) -> Result<String, JoseError> {
    let kty = string_member(jwk, "kty")?;
    let required: &[&str] = match kty {
        "RSA" => &["e", "kty", "n"],
        "EC" => &["crv", "kty", "x", "y"],
        "OKP" => &["crv", "kty", "x"],
        other => return Err(JoseError::InvalidKey(format!("unsupported kty {other:?}"))),
    };
    let mut members = BTreeMap::new();
    for name in required {
        members.insert(*name, string_member(jwk, name)?);
    }
    // serde_json writes a BTreeMap in key order with no whitespace, and escapes strings the way
    // RFC 7638 §3 asks (the members are base64url and curve names, so there is nothing to escape).
    let canonical = serde_json::to_vec(&members).map_err(|e| JoseError::Internal(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(Sha256::digest(&canonical)))
}

/// The RFC 8705 §3.1 `x5t#S256` of a DER-encoded certificate: base64url SHA-256 of the DER.
#[must_use]
pub fn x5t_sha256(certificate_der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(certificate_der))
}

fn string_member<'a>(jwk: &'a Map<String, Value>, name: &str) -> Result<&'a str, JoseError> {
    jwk.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| JoseError::InvalidKey(format!("member {name:?} missing or not a string")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of RFC 7638 §3.1.
    #[test]
    fn rfc_7638_example_thumbprint() {
        let jwk: Map<String, Value> = serde_json::from_str(
            r#"{"kty":"RSA",
            "n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#,
        )
        .unwrap();
        assert_eq!(
            jwk_thumbprint_sha256(&jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn thumbprint_ignores_optional_members_and_rejects_incomplete_keys() {
        let base: Map<String, Value> = serde_json::from_str(
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
        )
        .unwrap();
        let mut with_kid = base.clone();
        with_kid.insert("kid".into(), "anything".into());
        assert_eq!(
            jwk_thumbprint_sha256(&base).unwrap(),
            jwk_thumbprint_sha256(&with_kid).unwrap()
        );

        let mut missing = base.clone();
        missing.remove("x");
        assert!(matches!(
            jwk_thumbprint_sha256(&missing),
            Err(JoseError::InvalidKey(_))
        ));
        let mut odd = base;
        odd.insert("kty".into(), "oct".into());
        assert!(matches!(
            jwk_thumbprint_sha256(&odd),
            Err(JoseError::InvalidKey(_))
        ));
    }

    #[test]
    fn x5t_is_base64url_sha256_of_der() {
        // SHA-256 of the empty string, base64url.
        assert_eq!(
            x5t_sha256(b""),
            "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
        );
    }
}
