//! Authorization codes (RFC 6749 §4.1.2, FAPI2 SP 5.3.2.1-11): what a code carries from the
//! completed authorization to the token endpoint, and the PKCE check (RFC 7636 §4.6) made there.
//! The code itself is a random 256-bit value; only its hash is stored.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::error::{ErrorCode, OAuthError};

/// The longest a code lives (SP 5.3.2.1-11: CS redeems after 60 s and expects a refusal).
pub const MAX_LIFETIME: Duration = Duration::seconds(60);

/// What a code stands for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodeContent {
    /// The customer.
    pub subject: Uuid,
    /// The redirect URI of the authorization request: the token request must repeat it.
    pub redirect_uri: String,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// RFC 9449 §10: the DPoP key the code is bound to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// RFC 8707 resources asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Granted RFC 9396 details (with the accounts the customer chose).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization_details: Vec<Value>,
    /// The OIDC `nonce`, for the ID token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The OIDC `claims` request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claims: Option<Map<String, Value>>,
    /// When the customer authenticated.
    pub auth_time: i64,
    /// The authentication context reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// The authentication methods used (RFC 8176).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
}

impl CodeContent {
    /// As stored.
    #[must_use]
    pub fn to_map(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }

    /// Reads a stored code's content.
    ///
    /// # Errors
    /// A description of what does not read.
    pub fn from_map(map: Map<String, Value>) -> Result<Self, String> {
        serde_json::from_value(Value::Object(map)).map_err(|e| e.to_string())
    }

    /// When the customer authenticated.
    #[must_use]
    pub fn auth_time(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(self.auth_time).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

fn invalid_grant(description: &str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidGrant, description)
}

/// RFC 7636 §4.6: the verifier (43 to 128 unreserved characters, §4.1) hashes to the challenge.
/// Compared in constant time.
///
/// # Errors
/// `invalid_grant` for a missing, malformed or wrong verifier (checklist #5, #6, #8).
pub fn check_pkce(verifier: Option<&str>, challenge: &str) -> Result<(), OAuthError> {
    let verifier = verifier.ok_or_else(|| {
        invalid_grant("code_verifier is required: the authorization used PKCE (RFC 7636 §4.5)")
    })?;
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    if !(43..=128).contains(&verifier.len()) || !verifier.bytes().all(unreserved) {
        return Err(invalid_grant(
            "code_verifier must be 43 to 128 unreserved characters (RFC 7636 §4.1)",
        ));
    }
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    if bool::from(computed.as_bytes().ct_eq(challenge.as_bytes())) {
        Ok(())
    } else {
        Err(invalid_grant(
            "code_verifier does not match the code_challenge (RFC 7636 §4.6)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc_7636_appendix_b_and_checklist_5_6_8() {
        assert!(check_pkce(Some(VERIFIER), CHALLENGE).is_ok());
        for (verifier, needle) in [
            (None, "required"),
            (
                Some("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj"),
                "does not match",
            ),
            (Some("short"), "43 to 128"),
            (Some(&*"a".repeat(129)), "43 to 128"),
            (
                Some("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjX+"),
                "unreserved",
            ),
        ] {
            let error = check_pkce(verifier, CHALLENGE).unwrap_err();
            assert_eq!(error.error, ErrorCode::InvalidGrant);
            assert!(
                error.error_description.contains(needle),
                "{}",
                error.error_description
            );
        }
    }

    #[test]
    fn content_round_trips_through_storage() {
        let content = CodeContent {
            subject: Uuid::nil(),
            redirect_uri: "https://tpp.example/cb".into(),
            code_challenge: CHALLENGE.into(),
            dpop_jkt: Some("jkt".into()),
            scopes: vec!["openid".into()],
            resources: vec![],
            authorization_details: vec![serde_json::json!({"type": "account_information"})],
            nonce: Some("n".into()),
            claims: None,
            auth_time: 1_800_000_000,
            acr: Some("urn:bank:sca".into()),
            amr: vec!["pwd".into(), "otp".into()],
        };
        assert_eq!(CodeContent::from_map(content.to_map()).unwrap(), content);
    }
}
