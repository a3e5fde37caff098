//! Software statements (RFC 7591 §2.3): JWTs in which a trusted directory (UK Open Banking, Open
//! Finance Brasil, a bank's own) vouches for a piece of client software. Pure: the caller picks
//! the directory by [`unverified_issuer`], supplies its keys and the time, and must then record
//! the returned `jti` as used until [`VerifiedStatement::replay_until`] in the shared replay
//! store.
//!
//! [`apply`] merges a verified statement into a registration request: the statement's values win
//! over the request's (RFC 7591 §2.3, §3.1.1), the directory conventions (`software_client_name`,
//! `software_jwks_uri`, `software_redirect_uris`…) map to their metadata, `redirect_uris` must be
//! a subset of `software_redirect_uris`, and a `software_jwks_uri` pins the client's keys
//! (checklist #63).

use portcullis_jose::{JoseError, Jwks, SigningAlg, decode_unverified_claims, verify_jwt};
use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime};

use crate::error::{ErrorCode, OAuthError};

/// The most bytes a `jti` may have; it is stored.
const MAX_JTI_LEN: usize = 256;

/// What a directory's statements must satisfy.
#[derive(Debug, Clone)]
pub struct StatementPolicy {
    /// The directory's issuer: the statement's `iss`.
    pub issuer: String,
    /// The algorithms the directory signs with.
    pub algorithms: Vec<SigningAlg>,
    /// How long after its `iat` a statement is still accepted (Open Finance Brasil: 5 minutes).
    pub max_age: Duration,
    /// How far in the future `iat` and `nbf` may be (clock skew).
    pub max_future_skew: Duration,
}

/// A statement whose signature and times checked out.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedStatement {
    /// Its claims.
    pub claims: Map<String, Value>,
    /// Its `jti`, to record as used, when it has one.
    pub jti: Option<String>,
    /// Until when the `jti` must be remembered: past that, the statement is too old anyway.
    pub replay_until: OffsetDateTime,
}

impl VerifiedStatement {
    /// The `software_id` it vouches for.
    #[must_use]
    pub fn software_id(&self) -> Option<&str> {
        software_id(&self.claims)
    }
}

/// The `software_id` claim of a statement's claims.
#[must_use]
pub fn software_id(claims: &Map<String, Value>) -> Option<&str> {
    claims
        .get("software_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn invalid(description: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidSoftwareStatement, description)
}

/// The `iss` of a statement, read without verifying anything, to choose the directory whose keys
/// then verify it.
///
/// # Errors
/// `invalid_software_statement` when it is not a JWT with a string `iss`.
pub fn unverified_issuer(statement: &str) -> Result<String, OAuthError> {
    let claims = decode_unverified_claims(statement)
        .map_err(|e| invalid(format!("software_statement is not a signed JWT: {e}")))?;
    claims
        .get("iss")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| invalid("software_statement has no iss (RFC 7591 §2.3)"))
}

/// Verifies a statement against its directory's keys and policy.
///
/// # Errors
/// `invalid_software_statement` naming the failed rule.
pub fn verify(
    statement: &str,
    directory_keys: &Jwks,
    policy: &StatementPolicy,
    now: OffsetDateTime,
) -> Result<VerifiedStatement, OAuthError> {
    let verified =
        verify_jwt(statement, directory_keys, &policy.algorithms).map_err(|e| match e {
            JoseError::UnsupportedAlgorithm(alg) => invalid(format!(
                "software_statement algorithm {alg:?} is not one the directory signs with"
            )),
            JoseError::KeyNotFound(m) => {
                invalid(format!("software_statement: {m} of the directory"))
            }
            JoseError::BadSignature => {
                invalid("software_statement signature does not verify with the directory's keys")
            }
            JoseError::WeakKey(m) => invalid(format!("software_statement key rejected: {m}")),
            other => invalid(format!("software_statement is not a valid JWS: {other}")),
        })?;
    let claims = verified.claims;
    if claims.get("iss").and_then(Value::as_str) != Some(policy.issuer.as_str()) {
        return Err(invalid(
            "software_statement iss is not the directory whose keys verified it",
        ));
    }
    let iat =
        timestamp(&claims, "iat")?.ok_or_else(|| invalid("software_statement iat is required"))?;
    if iat > now + policy.max_future_skew {
        return Err(invalid("software_statement iat is in the future"));
    }
    if now - iat > policy.max_age {
        return Err(invalid(format!(
            "software_statement was issued more than {} s ago: ask the directory for a fresh one",
            policy.max_age.whole_seconds()
        )));
    }
    if let Some(exp) = timestamp(&claims, "exp")?
        && exp <= now
    {
        return Err(invalid("software_statement has expired"));
    }
    if let Some(nbf) = timestamp(&claims, "nbf")?
        && nbf > now + policy.max_future_skew
    {
        return Err(invalid("software_statement is not valid yet (nbf)"));
    }
    let jti = match claims.get("jti") {
        None => None,
        Some(Value::String(jti)) if !jti.is_empty() && jti.len() <= MAX_JTI_LEN => {
            Some(jti.clone())
        }
        Some(_) => {
            return Err(invalid(format!(
                "software_statement jti must be a string of 1 to {MAX_JTI_LEN} bytes"
            )));
        }
    };
    for name in ["software_id", "software_jwks_uri"] {
        if let Some(value) = claims.get(name)
            && value.as_str().is_none_or(str::is_empty)
        {
            return Err(invalid(format!(
                "software_statement {name} must be a non-empty string"
            )));
        }
    }
    Ok(VerifiedStatement {
        claims,
        jti,
        replay_until: iat + policy.max_age + policy.max_future_skew,
    })
}

fn timestamp(
    claims: &Map<String, Value>,
    name: &str,
) -> Result<Option<OffsetDateTime>, OAuthError> {
    crate::claims::numeric_date(claims, name)
        .map_err(|()| invalid(format!("software_statement {name} is not a NumericDate")))
}

/// Statement claims that are client metadata and replace the request's values.
const METADATA_CLAIMS: [&str; 14] = [
    "client_name",
    "client_uri",
    "logo_uri",
    "tos_uri",
    "policy_uri",
    "redirect_uris",
    "software_id",
    "software_version",
    "contacts",
    "grant_types",
    "response_types",
    "scope",
    "token_endpoint_auth_method",
    "token_endpoint_auth_signing_alg",
];

/// Directory conventions (UK Open Banking, Open Finance Brasil): the statement's `software_*`
/// claim and the metadata member it sets.
const DIRECTORY_CLAIMS: [(&str, &str); 5] = [
    ("software_client_name", "client_name"),
    ("software_client_uri", "client_uri"),
    ("software_logo_uri", "logo_uri"),
    ("software_tos_uri", "tos_uri"),
    ("software_policy_uri", "policy_uri"),
];

fn metadata_error(description: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClientMetadata, description)
}

/// Merges a verified statement's claims into a registration request body (which must no longer
/// hold the `software_statement` member itself).
///
/// # Errors
/// `invalid_client_metadata` for keys by value or a `jwks_uri` other than the statement's,
/// `invalid_redirect_uri` for a redirect URI outside `software_redirect_uris`,
/// `invalid_software_statement` for a statement claim of the wrong type.
pub fn apply(
    mut body: Map<String, Value>,
    statement: &Map<String, Value>,
) -> Result<Map<String, Value>, OAuthError> {
    // Checklist #63, CS brazil-dcr-invalid-jwks-by-value: the directory publishes the keys, so
    // they rotate where the directory controls them.
    if body.contains_key("jwks") {
        return Err(metadata_error(
            "jwks by value is not accepted with a software statement: register the directory's jwks_uri",
        ));
    }
    for name in METADATA_CLAIMS {
        if let Some(value) = statement.get(name) {
            body.insert(name.to_owned(), value.clone());
        }
    }
    for (claim, member) in DIRECTORY_CLAIMS {
        if let Some(value) = statement.get(claim) {
            if !value.is_string() {
                return Err(invalid(format!(
                    "software_statement {claim} must be a string"
                )));
            }
            body.insert(member.to_owned(), value.clone());
        }
    }
    // A software_jwks_uri (or a plain jwks_uri claim) pins the client's keys (CS
    // brazil-dcr-invalid-jwks-uri).
    let pinned = statement
        .get("software_jwks_uri")
        .or_else(|| statement.get("jwks_uri"));
    if let Some(pinned) = pinned {
        let Some(uri) = pinned.as_str() else {
            return Err(invalid(
                "software_statement software_jwks_uri must be a string",
            ));
        };
        match body.get("jwks_uri") {
            Some(asked) if asked.as_str() != Some(uri) => {
                return Err(metadata_error(
                    "jwks_uri must be the software statement's software_jwks_uri",
                ));
            }
            _ => {
                body.insert("jwks_uri".into(), uri.into());
            }
        }
    }
    if let Some(allowed) = statement.get("software_redirect_uris") {
        let Some(allowed) = allowed.as_array() else {
            return Err(invalid(
                "software_statement software_redirect_uris must be an array of strings",
            ));
        };
        let allowed: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
        if let Some(Value::Array(asked)) = body.get("redirect_uris") {
            for uri in asked {
                // Checklist #63, CS brazil-dcr-invalid-redirect-uri: exact match only.
                if !uri.as_str().is_some_and(|u| allowed.contains(&u)) {
                    return Err(OAuthError::new(
                        ErrorCode::InvalidRedirectUri,
                        format!(
                            "redirect_uris must be among the software statement's software_redirect_uris; {uri} is not"
                        ),
                    ));
                }
            }
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_jose::SigningKey;
    use serde_json::json;

    const DIRECTORY: &str = "https://directory.example";

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    fn policy() -> StatementPolicy {
        StatementPolicy {
            issuer: DIRECTORY.into(),
            algorithms: SigningAlg::ALL.to_vec(),
            max_age: Duration::minutes(5),
            max_future_skew: Duration::seconds(30),
        }
    }

    fn key() -> SigningKey {
        SigningKey::generate(SigningAlg::Es256, 2048).unwrap()
    }

    fn keys(key: &SigningKey) -> Jwks {
        Jwks {
            keys: vec![key.public_jwk().unwrap()],
        }
    }

    fn claims(iat: i64) -> Map<String, Value> {
        json!({
            "iss": DIRECTORY,
            "iat": iat,
            "jti": "ssa-1",
            "software_id": "tpp-app-1",
            "software_client_name": "Example TPP",
            "software_redirect_uris": ["https://tpp.example/cb", "https://tpp.example/cb2"],
            "software_jwks_uri": "https://keystore.directory.example/tpp/app.jwks",
            "org_id": "org-1"
        })
        .as_object()
        .unwrap()
        .clone()
    }

    fn with(mut claims: Map<String, Value>, name: &str, value: Value) -> Map<String, Value> {
        if value.is_null() {
            claims.remove(name);
        } else {
            claims.insert(name.into(), value);
        }
        claims
    }

    fn refused(result: Result<VerifiedStatement, OAuthError>, needle: &str) {
        let error = result.expect_err("the statement must be refused");
        assert_eq!(error.error, ErrorCode::InvalidSoftwareStatement);
        assert!(
            error.error_description.contains(needle),
            "{:?} should mention {needle:?}",
            error.error_description
        );
    }

    #[test]
    fn a_fresh_statement_verifies_and_keeps_its_claims_and_jti() {
        let key = key();
        let t = now().unix_timestamp();
        let statement = key.sign_jwt("JWT", &claims(t - 10)).unwrap();
        assert_eq!(unverified_issuer(&statement).unwrap(), DIRECTORY);
        let verified = verify(&statement, &keys(&key), &policy(), now()).unwrap();
        assert_eq!(verified.software_id(), Some("tpp-app-1"));
        assert_eq!(verified.jti.as_deref(), Some("ssa-1"));
        assert_eq!(
            verified.replay_until,
            now() - Duration::seconds(10) + Duration::minutes(5) + Duration::seconds(30)
        );
    }

    #[test]
    fn checklist_63_bad_signature_foreign_key_and_alg_none_are_refused() {
        let key = key();
        let t = now().unix_timestamp();
        let statement = key.sign_jwt("JWT", &claims(t)).unwrap();
        // Signed by someone else.
        let other = SigningKey::generate(SigningAlg::Es256, 2048).unwrap();
        let forged = other.sign_jwt("JWT", &claims(t)).unwrap();
        let error = verify(&forged, &keys(&key), &policy(), now()).unwrap_err();
        assert_eq!(error.error, ErrorCode::InvalidSoftwareStatement);
        // A tampered payload.
        let mut parts: Vec<&str> = statement.split('.').collect();
        let tampered_claims = with(claims(t), "software_id", json!("someone-else"));
        let payload = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            serde_json::to_vec(&tampered_claims).unwrap(),
        );
        parts[1] = &payload;
        refused(
            verify(&parts.join("."), &keys(&key), &policy(), now()),
            "signature",
        );
        // Unsigned.
        let header = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            br#"{"alg":"none"}"#,
        );
        let unsigned = format!("{header}.{payload}.");
        refused(
            verify(&unsigned, &keys(&key), &policy(), now()),
            "algorithm",
        );
        assert!(unverified_issuer("not a jwt").is_err());
    }

    #[test]
    fn checklist_63_times_stale_future_expired_and_not_yet_valid() {
        let key = key();
        let t = now().unix_timestamp();
        let check = |claims: Map<String, Value>| {
            let statement = key.sign_jwt("JWT", &claims).unwrap();
            verify(&statement, &keys(&key), &policy(), now())
        };
        refused(check(claims(t - 301)), "more than 300 s ago");
        assert!(check(claims(t - 299)).is_ok());
        refused(check(claims(t + 31)), "iat is in the future");
        assert!(check(claims(t + 29)).is_ok());
        refused(
            check(with(claims(t), "iat", Value::Null)),
            "iat is required",
        );
        refused(
            check(with(claims(t), "iat", json!("yesterday"))),
            "NumericDate",
        );
        refused(check(with(claims(t), "exp", json!(t))), "expired");
        assert!(check(with(claims(t), "exp", json!(t + 60))).is_ok());
        refused(
            check(with(claims(t), "nbf", json!(t + 60))),
            "not valid yet",
        );
        refused(
            check(with(claims(t), "iss", json!("https://elsewhere.example"))),
            "iss",
        );
        refused(check(with(claims(t), "jti", json!(""))), "jti");
        refused(
            check(with(claims(t), "software_id", json!(7))),
            "software_id",
        );
        let no_jti = check(with(claims(t), "jti", Value::Null)).unwrap();
        assert_eq!(no_jti.jti, None);
    }

    fn body(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn rfc_7591_2_3_statement_values_win_and_directory_claims_map_to_metadata() {
        let merged = apply(
            body(json!({
                "client_name": "Chosen by the client",
                "software_id": "spoofed",
                "redirect_uris": ["https://tpp.example/cb"],
                "token_endpoint_auth_method": "private_key_jwt"
            })),
            &claims(0),
        )
        .unwrap();
        assert_eq!(merged["client_name"], "Example TPP");
        assert_eq!(merged["software_id"], "tpp-app-1");
        assert_eq!(
            merged["jwks_uri"],
            "https://keystore.directory.example/tpp/app.jwks"
        );
        assert_eq!(merged["token_endpoint_auth_method"], "private_key_jwt");
        assert!(
            !merged.contains_key("org_id"),
            "directory claims stay in the statement"
        );
        // The same jwks_uri as the statement's is fine.
        assert!(
            apply(
                body(json!({"jwks_uri": "https://keystore.directory.example/tpp/app.jwks"})),
                &claims(0)
            )
            .is_ok()
        );
    }

    #[test]
    fn checklist_63_redirect_outside_the_statement_jwks_by_value_and_another_jwks_uri() {
        let outside = apply(
            body(json!({"redirect_uris": ["https://tpp.example/cb", "https://evil.example/cb"]})),
            &claims(0),
        )
        .unwrap_err();
        assert_eq!(outside.error, ErrorCode::InvalidRedirectUri);
        assert!(
            outside
                .error_description
                .contains("https://evil.example/cb")
        );
        // A prefix is not a match.
        let prefix = apply(
            body(json!({"redirect_uris": ["https://tpp.example/cb/extra"]})),
            &claims(0),
        )
        .unwrap_err();
        assert_eq!(prefix.error, ErrorCode::InvalidRedirectUri);

        let by_value = apply(body(json!({"jwks": {"keys": []}})), &claims(0)).unwrap_err();
        assert_eq!(by_value.error, ErrorCode::InvalidClientMetadata);
        assert!(by_value.error_description.contains("jwks by value"));

        let other_uri = apply(
            body(json!({"jwks_uri": "https://tpp.example/my-keys.jwks"})),
            &claims(0),
        )
        .unwrap_err();
        assert_eq!(other_uri.error, ErrorCode::InvalidClientMetadata);
        assert!(other_uri.error_description.contains("software_jwks_uri"));

        let bad_type = apply(
            body(json!({})),
            &with(
                claims(0),
                "software_redirect_uris",
                json!("https://tpp.example/cb"),
            ),
        )
        .unwrap_err();
        assert_eq!(bad_type.error, ErrorCode::InvalidSoftwareStatement);
    }
}
