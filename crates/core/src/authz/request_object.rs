//! Signed request objects (JAR, RFC 9101) as FAPI 2.0 Message Signing requires them at PAR
//! (MS 5.3.1): signed by the client with an allowed algorithm, for this issuer, briefly valid,
//! naming the client, and never pointing elsewhere. Pure: the caller supplies the client's keys
//! and the time, and records the returned `jti` (when there is one) as used until the object
//! expires. Every refusal is `invalid_request_object` naming the rule (checklist #58–#60).

use portcullis_jose::{JoseError, Jwks, SigningAlg, verify_jwt};
use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime};

use crate::client::ClientId;
use crate::error::{ErrorCode, OAuthError};

/// The longest a request object may be valid, and the oldest its `nbf` may be (MS 5.3.1-3/4).
pub const MAX_VALIDITY: Duration = Duration::minutes(60);

/// The JWT claims of the object itself, which are not authorization parameters.
const ENVELOPE: [&str; 7] = ["iss", "aud", "exp", "nbf", "iat", "jti", "sub"];

/// What a request object must satisfy.
#[derive(Debug, Clone)]
pub struct RequestObjectPolicy {
    /// The algorithms accepted: the client's `request_object_signing_alg`, or FAPI's three.
    pub algorithms: Vec<SigningAlg>,
    /// Our issuer identifier: `aud` is it, or an array containing it (MS 5.3.1-2).
    pub issuer: String,
    /// How far in the future `nbf`/`iat` may be (SP 5.3.2.1-13).
    pub max_future_skew: Duration,
}

/// A request object that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedRequestObject {
    /// The authorization parameters it carries: its claims without the JWT envelope.
    pub parameters: Map<String, Value>,
    /// Its `jti`, to record as used until `expires_at`.
    pub jti: Option<String>,
    /// Its `exp`.
    pub expires_at: OffsetDateTime,
    /// The `kid` of the key that verified it.
    pub kid: Option<String>,
}

fn refuse(description: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidRequestObject, description)
}

fn timestamp(claims: &Map<String, Value>, name: &str) -> Result<OffsetDateTime, OAuthError> {
    crate::claims::numeric_date(claims, name)
        .map_err(|()| refuse(format!("request object {name} is not a NumericDate")))?
        .ok_or_else(|| {
            refuse(format!(
                "request object {name} is required (FAPI2 MS 5.3.1)"
            ))
        })
}

/// Verifies a request object of `client_id` against the client's keys.
///
/// # Errors
/// `invalid_request_object` naming the failed rule.
pub fn verify(
    jwt: &str,
    client_id: &ClientId,
    client_keys: &Jwks,
    policy: &RequestObjectPolicy,
    now: OffsetDateTime,
) -> Result<VerifiedRequestObject, OAuthError> {
    let verified = verify_jwt(jwt, client_keys, &policy.algorithms).map_err(|e| match e {
        JoseError::UnsupportedAlgorithm(alg) => refuse(format!(
            "request object algorithm {alg:?} is not allowed (FAPI2 SP 5.4.1: PS256, ES256 or EdDSA, or the client's request_object_signing_alg)"
        )),
        JoseError::KeyNotFound(m) => refuse(format!("request object: {m} of the client")),
        JoseError::BadSignature => {
            refuse("request object signature does not verify with the client's keys")
        }
        JoseError::WeakKey(m) => refuse(format!("request object key rejected: {m}")),
        other => refuse(format!("request object is not a valid JWS: {other}")),
    })?;
    // MS 5.3.1-5: typ oauth-authz-req+jwt is accepted; a JWT made for something else is not.
    if let Some(typ) = verified.header.get("typ") {
        let typ = typ.as_str().unwrap_or_default().to_ascii_lowercase();
        if typ != "oauth-authz-req+jwt" && typ != "jwt" && typ != "application/oauth-authz-req+jwt"
        {
            return Err(refuse(format!(
                "request object typ {typ:?} is not oauth-authz-req+jwt (RFC 9101 §10.8)"
            )));
        }
    }
    let claims = verified.claims;

    // Checklist #60: it names the authenticated client and does not point elsewhere.
    if claims.get("client_id").and_then(Value::as_str) != Some(client_id.as_str()) {
        return Err(refuse(
            "request object client_id must be the authenticated client (RFC 9126 §3)",
        ));
    }
    if let Some(iss) = claims.get("iss")
        && iss.as_str() != Some(client_id.as_str())
    {
        return Err(refuse(
            "request object iss must be the client_id (RFC 9101 §4)",
        ));
    }
    if claims.contains_key("request_uri") || claims.contains_key("request") {
        return Err(refuse(
            "a request object must not carry request_uri or request (RFC 9126 §3)",
        ));
    }

    // MS 5.3.1-2: aud is the issuer, or an array containing it.
    let aud_ok = match claims.get("aud") {
        Some(Value::String(aud)) => *aud == policy.issuer,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(&policy.issuer)),
        _ => false,
    };
    if !aud_ok {
        return Err(refuse(
            "request object aud must be the issuer identifier, or an array containing it (FAPI2 MS 5.3.1-2)",
        ));
    }

    // Checklist #59, MS 5.3.1-3/4, SP 5.3.2.1-13.
    let exp = timestamp(&claims, "exp")?;
    let nbf = timestamp(&claims, "nbf")?;
    if exp <= now {
        return Err(refuse("request object has expired"));
    }
    if nbf > now + policy.max_future_skew {
        return Err(refuse(
            "request object nbf is in the future (FAPI2 SP 5.3.2.1-13)",
        ));
    }
    if now - nbf > MAX_VALIDITY {
        return Err(refuse(
            "request object nbf is more than 60 minutes in the past (FAPI2 MS 5.3.1-3)",
        ));
    }
    if exp - nbf > MAX_VALIDITY {
        return Err(refuse(
            "request object is valid for more than 60 minutes: exp - nbf (FAPI2 MS 5.3.1-4)",
        ));
    }
    if let Ok(Some(iat)) = crate::claims::numeric_date(&claims, "iat")
        && iat > now + policy.max_future_skew
    {
        return Err(refuse(
            "request object iat is in the future (FAPI2 SP 5.3.2.1-13)",
        ));
    }
    let jti = match claims.get("jti") {
        None => None,
        Some(Value::String(j)) if !j.is_empty() && j.len() <= 256 => Some(j.clone()),
        Some(_) => {
            return Err(refuse(
                "request object jti must be a string of 1 to 256 bytes",
            ));
        }
    };
    let kid = verified
        .header
        .get("kid")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let parameters = claims
        .into_iter()
        .filter(|(name, _)| !ENVELOPE.contains(&name.as_str()))
        .collect();
    Ok(VerifiedRequestObject {
        parameters,
        jti,
        expires_at: exp,
        kid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_jose::SigningKey;
    use serde_json::json;

    const ISSUER: &str = "https://as.example";

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    fn policy() -> RequestObjectPolicy {
        RequestObjectPolicy {
            algorithms: SigningAlg::ALL.to_vec(),
            issuer: ISSUER.into(),
            max_future_skew: Duration::seconds(10),
        }
    }

    fn client() -> ClientId {
        ClientId::parse("tpp-1").unwrap()
    }

    fn claims() -> Value {
        let t = now().unix_timestamp();
        json!({
            "iss": "tpp-1", "aud": ISSUER, "client_id": "tpp-1",
            "nbf": t - 10, "exp": t + 300, "iat": t - 10, "jti": "ro-1",
            "response_type": "code", "scope": "openid accounts", "state": "inner",
            "max_age": 300
        })
    }

    fn sign(key: &SigningKey, claims: &Value, typ: &str) -> String {
        key.sign_jwt_with_header(
            json!({"typ": typ, "kid": key.kid()}).as_object().unwrap(),
            claims.as_object().unwrap(),
        )
        .unwrap()
    }

    fn keys(key: &SigningKey) -> Jwks {
        Jwks {
            keys: vec![key.public_jwk().unwrap()],
        }
    }

    fn check(key: &SigningKey, claims: &Value) -> Result<VerifiedRequestObject, OAuthError> {
        verify(
            &sign(key, claims, "oauth-authz-req+jwt"),
            &client(),
            &keys(key),
            &policy(),
            now(),
        )
    }

    fn with(change: Value) -> Value {
        let mut c = claims();
        for (k, v) in change.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    }

    fn refused(result: Result<VerifiedRequestObject, OAuthError>, needle: &str) {
        let error = result.expect_err("must be refused");
        assert_eq!(error.error, ErrorCode::InvalidRequestObject);
        assert!(
            error.error_description.contains(needle),
            "{:?} should mention {needle:?}",
            error.error_description
        );
    }

    #[test]
    fn ms_5_3_1_a_good_object_gives_its_parameters_without_the_envelope() {
        let key = SigningKey::generate(SigningAlg::Ps256, 2048).unwrap();
        let verified = check(&key, &claims()).unwrap();
        assert_eq!(verified.jti.as_deref(), Some("ro-1"));
        assert_eq!(verified.parameters["state"], "inner");
        assert_eq!(verified.parameters["max_age"], 300);
        assert_eq!(verified.parameters["client_id"], "tpp-1");
        assert!(!verified.parameters.contains_key("aud"));
        assert!(!verified.parameters.contains_key("exp"));
        // MS 5.3.1-2: an array containing the issuer.
        assert!(
            check(
                &key,
                &with(json!({"aud": ["https://other.example", ISSUER]}))
            )
            .is_ok()
        );
        // typ JWT and none are fine too.
        let plain = sign(&key, &claims(), "JWT");
        assert!(verify(&plain, &client(), &keys(&key), &policy(), now()).is_ok());
    }

    #[test]
    fn checklist_58_signatures_algorithms_and_keys() {
        let key = SigningKey::generate(SigningAlg::Es256, 2048).unwrap();
        let other = SigningKey::generate(SigningAlg::Es256, 2048).unwrap();
        // Signed by a key that is not the client's.
        let foreign = sign(&other, &claims(), "oauth-authz-req+jwt");
        refused(
            verify(&foreign, &client(), &keys(&key), &policy(), now()),
            "of the client",
        );
        // alg none.
        let payload = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            claims().to_string(),
        );
        let unsigned = format!("eyJhbGciOiJub25lIn0.{payload}.");
        refused(
            verify(&unsigned, &client(), &keys(&key), &policy(), now()),
            "algorithm",
        );
        // Only the client's registered algorithm, when it has one.
        let only_ps256 = RequestObjectPolicy {
            algorithms: vec![SigningAlg::Ps256],
            ..policy()
        };
        let es256 = sign(&key, &claims(), "oauth-authz-req+jwt");
        refused(
            verify(&es256, &client(), &keys(&key), &only_ps256, now()),
            "algorithm",
        );
        // A JWT of another kind.
        let dpop = sign(&key, &claims(), "dpop+jwt");
        refused(
            verify(&dpop, &client(), &keys(&key), &policy(), now()),
            "typ",
        );
    }

    #[test]
    fn checklist_59_60_times_audience_and_client() {
        let key = SigningKey::generate(SigningAlg::Es256, 2048).unwrap();
        let t = now().unix_timestamp();
        refused(check(&key, &with(json!({"exp": null}))), "exp is required");
        refused(check(&key, &with(json!({"nbf": null}))), "nbf is required");
        refused(check(&key, &with(json!({"exp": t}))), "expired");
        refused(
            check(&key, &with(json!({"nbf": t + 61}))),
            "nbf is in the future",
        );
        assert!(check(&key, &with(json!({"nbf": t + 8}))).is_ok());
        refused(
            check(&key, &with(json!({"nbf": t - 3601, "exp": t + 10}))),
            "60 minutes in the past",
        );
        refused(
            check(&key, &with(json!({"nbf": t, "exp": t + 3601}))),
            "exp - nbf",
        );
        assert!(check(&key, &with(json!({"nbf": t, "exp": t + 3600}))).is_ok());
        refused(
            check(&key, &with(json!({"aud": "https://other.example"}))),
            "aud",
        );
        refused(check(&key, &with(json!({"aud": null}))), "aud");
        refused(
            check(&key, &with(json!({"client_id": "tpp-2"}))),
            "client_id",
        );
        refused(check(&key, &with(json!({"client_id": null}))), "client_id");
        refused(check(&key, &with(json!({"iss": "tpp-2"}))), "iss");
        refused(
            check(&key, &with(json!({"request_uri": "urn:x"}))),
            "request_uri",
        );
        refused(check(&key, &with(json!({"exp": "later"}))), "NumericDate");
    }
}
