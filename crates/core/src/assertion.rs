//! `private_key_jwt` client assertions (RFC 7523 §3, OIDC Core §9), checked as FAPI 2.0 asks.
//! Pure: the caller supplies the client's JWK set and the time, and must then record the returned
//! `jti` as used until [`VerifiedAssertion::expires_at`] in the shared replay store, so that an
//! assertion is accepted once across every replica (checklist #20). Every refusal is
//! `invalid_client`, with a description naming the rule.

use portcullis_jose::{JoseError, Jwks, SigningAlg, verify_jwt};
use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime};

use crate::client::ClientId;
use crate::error::{ErrorCode, OAuthError};

/// The most bytes a `jti` may have; it is stored.
const MAX_JTI_LEN: usize = 256;

/// What an endpoint accepts.
#[derive(Debug, Clone)]
pub struct AssertionPolicy {
    /// Signing algorithms (FAPI2 SP 5.4.1: PS256, ES256, EdDSA).
    pub algorithms: Vec<SigningAlg>,
    /// The accepted `aud` values. FAPI profiles: exactly the issuer (SP 5.3.2.1-8).
    pub audiences: Vec<String>,
    /// Whether `aud` may be an array containing an accepted value. Never for FAPI profiles
    /// (SP 5.3.2.1-8, checklist #17); RFC 7523 allows it for others.
    pub allow_audience_array: bool,
    /// How far in the future `iat` and `nbf` may be (SP 5.3.2.1-13: 10 s must pass, more than
    /// 60 s must fail).
    pub max_future_skew: Duration,
    /// How far ahead `exp` may be: a bound on how long a stolen assertion would stay usable and
    /// on how long its `jti` is stored.
    pub max_lifetime: Duration,
}

impl AssertionPolicy {
    /// The FAPI 2.0 policy: the issuer as a plain string and nothing else.
    #[must_use]
    pub fn fapi(issuer: &str) -> Self {
        Self {
            algorithms: SigningAlg::ALL.to_vec(),
            audiences: vec![issuer.to_owned()],
            allow_audience_array: false,
            max_future_skew: Duration::seconds(10),
            max_lifetime: Duration::minutes(10),
        }
    }
}

/// An assertion that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAssertion {
    /// Its identifier, to record as used.
    pub jti: String,
    /// Its expiry: the `jti` must be remembered until then.
    pub expires_at: OffsetDateTime,
    /// The `kid` of the key that verified it, if the header named one.
    pub kid: Option<String>,
}

fn refuse(description: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClient, description)
}

/// Verifies a client assertion for `client_id` against the client's keys.
///
/// # Errors
/// `invalid_client` naming the failed rule.
pub fn verify_client_assertion(
    assertion: &str,
    client_id: &ClientId,
    client_keys: &Jwks,
    policy: &AssertionPolicy,
    now: OffsetDateTime,
) -> Result<VerifiedAssertion, OAuthError> {
    let verified = verify_jwt(assertion, client_keys, &policy.algorithms).map_err(|e| match e {
        // Checklist #22, #23, #24: none, HS256 (algorithm confusion) and RS256 never get a verifier.
        JoseError::UnsupportedAlgorithm(alg) => refuse(format!(
            "client assertion algorithm {alg:?} is not allowed (FAPI2 SP 5.4.1: PS256, ES256 or EdDSA)"
        )),
        // Checklist #25.
        JoseError::KeyNotFound(m) => refuse(format!("client assertion: {m} of the client")),
        JoseError::BadSignature => refuse("client assertion signature does not verify with the client's keys"),
        JoseError::WeakKey(m) => refuse(format!("client assertion key rejected: {m}")),
        other => refuse(format!("client assertion is not a valid JWS: {other}")),
    })?;
    let claims = &verified.claims;

    // Checklist #21: iss and sub are the client.
    for name in ["iss", "sub"] {
        if claims.get(name).and_then(Value::as_str) != Some(client_id.as_str()) {
            return Err(refuse(format!(
                "client assertion {name} must be the client_id (RFC 7523 §3)"
            )));
        }
    }
    check_audience(claims, policy)?;

    // Checklist #18: exp required, not past, not far ahead.
    let exp = timestamp(claims, "exp")?
        .ok_or_else(|| refuse("client assertion exp is required (RFC 7523 §3)"))?;
    if exp <= now {
        return Err(refuse("client assertion has expired"));
    }
    if exp > now + policy.max_lifetime {
        return Err(refuse(format!(
            "client assertion exp is more than {} s ahead",
            policy.max_lifetime.whole_seconds()
        )));
    }
    // Checklist #19: iat and nbf no further ahead than the allowed skew.
    for name in ["iat", "nbf"] {
        if let Some(at) = timestamp(claims, name)?
            && at > now + policy.max_future_skew
        {
            return Err(refuse(format!(
                "client assertion {name} is in the future (FAPI2 SP 5.3.2.1-13)"
            )));
        }
    }
    // OIDC Core §9: jti required, for single use.
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty())
        .ok_or_else(|| refuse("client assertion jti is required (OIDC Core §9)"))?;
    if jti.len() > MAX_JTI_LEN {
        return Err(refuse(format!(
            "client assertion jti is longer than {MAX_JTI_LEN} bytes"
        )));
    }
    let kid = verified
        .header
        .get("kid")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(VerifiedAssertion {
        jti: jti.to_owned(),
        expires_at: exp,
        kid,
    })
}

/// Checklist #16, #17: `aud` is one accepted value, as a string (or, where allowed, an array
/// containing one).
fn check_audience(claims: &Map<String, Value>, policy: &AssertionPolicy) -> Result<(), OAuthError> {
    let accepted = |v: &Value| {
        v.as_str()
            .is_some_and(|s| policy.audiences.iter().any(|a| a == s))
    };
    match claims.get("aud") {
        Some(aud @ Value::String(_)) if accepted(aud) => Ok(()),
        Some(Value::Array(values))
            if policy.allow_audience_array && values.iter().any(accepted) =>
        {
            Ok(())
        }
        Some(Value::Array(_)) if !policy.allow_audience_array => Err(refuse(
            "client assertion aud must be the issuer as a single string, not an array (FAPI2 SP 5.3.2.1-8)",
        )),
        _ => Err(refuse(
            "client assertion aud must be the issuer identifier (FAPI2 SP 5.3.2.1-8)",
        )),
    }
}

fn timestamp(
    claims: &Map<String, Value>,
    name: &str,
) -> Result<Option<OffsetDateTime>, OAuthError> {
    crate::claims::numeric_date(claims, name)
        .map_err(|()| refuse(format!("client assertion {name} is not a NumericDate")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use portcullis_jose::SigningKey;
    use serde_json::json;

    const ISSUER: &str = "https://as.example";

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    struct Client {
        id: ClientId,
        key: SigningKey,
        jwks: Jwks,
    }

    fn client(alg: SigningAlg) -> Client {
        let key = SigningKey::generate(alg, 2048).unwrap();
        let jwks = Jwks {
            keys: vec![key.public_jwk().unwrap()],
        };
        Client {
            id: ClientId::parse("tpp-1").unwrap(),
            key,
            jwks,
        }
    }

    fn claims() -> Value {
        let t = now().unix_timestamp();
        json!({"iss": "tpp-1", "sub": "tpp-1", "aud": ISSUER, "jti": "a-1", "iat": t, "exp": t + 60})
    }

    fn sign(c: &Client, claims: Value) -> String {
        c.key
            .sign_jwt_with_header(
                json!({"kid": c.key.kid()}).as_object().unwrap(),
                claims.as_object().unwrap(),
            )
            .unwrap()
    }

    fn check(c: &Client, assertion: &str) -> Result<VerifiedAssertion, OAuthError> {
        verify_client_assertion(
            assertion,
            &c.id,
            &c.jwks,
            &AssertionPolicy::fapi(ISSUER),
            now(),
        )
    }

    fn assert_refused(result: Result<VerifiedAssertion, OAuthError>, needle: &str) {
        match result {
            Err(e) => {
                assert_eq!(e.error, ErrorCode::InvalidClient);
                assert!(
                    e.error_description.contains(needle),
                    "{:?} lacks {needle:?}",
                    e.error_description
                );
            }
            Ok(v) => panic!("accepted {v:?}, expected a refusal naming {needle:?}"),
        }
    }

    fn with(field: &str, value: Value) -> Value {
        let mut c = claims();
        if value.is_null() {
            c.as_object_mut().unwrap().remove(field);
        } else {
            c[field] = value;
        }
        c
    }

    #[test]
    fn a_valid_assertion_returns_its_jti_and_expiry_for_every_allowed_algorithm() {
        for alg in SigningAlg::ALL {
            let c = client(alg);
            let v = check(&c, &sign(&c, claims())).unwrap();
            assert_eq!(v.jti, "a-1");
            assert_eq!(v.expires_at, now() + Duration::seconds(60));
            assert_eq!(v.kid.as_deref(), Some(c.key.kid()));
        }
    }

    /// Checklist #16, #17 (SP 5.3.2.1-8).
    #[test]
    fn sp_5_3_2_1_8_aud_is_the_issuer_as_a_string_only() {
        let c = client(SigningAlg::Es256);
        for aud in [
            json!("https://other.example"),
            json!(format!("{ISSUER}/token")),
            json!(format!("{ISSUER}/par")),
        ] {
            assert_refused(check(&c, &sign(&c, with("aud", aud))), "aud");
        }
        assert_refused(
            check(&c, &sign(&c, with("aud", json!([ISSUER])))),
            "not an array",
        );
        assert_refused(check(&c, &sign(&c, with("aud", Value::Null))), "aud");
        // An oauth-profile policy may accept arrays.
        let mut lenient = AssertionPolicy::fapi(ISSUER);
        lenient.allow_audience_array = true;
        let a = sign(&c, with("aud", json!(["x", ISSUER])));
        assert!(verify_client_assertion(&a, &c.id, &c.jwks, &lenient, now()).is_ok());
    }

    /// Checklist #18, #19 (SP 5.3.2.1-13: +8 s passes, > 60 s fails).
    #[test]
    fn exp_iat_and_nbf_windows() {
        let c = client(SigningAlg::EdDsa);
        let t = now().unix_timestamp();
        assert_refused(check(&c, &sign(&c, with("exp", json!(t - 300)))), "expired");
        assert_refused(
            check(&c, &sign(&c, with("exp", Value::Null))),
            "exp is required",
        );
        assert_refused(check(&c, &sign(&c, with("exp", json!(t + 3600)))), "ahead");
        assert_refused(
            check(&c, &sign(&c, with("exp", json!("soon")))),
            "NumericDate",
        );
        for claim in ["iat", "nbf"] {
            assert!(
                check(&c, &sign(&c, with(claim, json!(t + 8)))).is_ok(),
                "{claim} +8 s"
            );
            assert_refused(check(&c, &sign(&c, with(claim, json!(t + 61)))), "future");
        }
    }

    /// Checklist #21 and OIDC Core §9.
    #[test]
    fn iss_sub_and_jti_are_required() {
        let c = client(SigningAlg::Ps256);
        assert_refused(check(&c, &sign(&c, with("sub", Value::Null))), "sub");
        assert_refused(check(&c, &sign(&c, with("sub", json!("tpp-2")))), "sub");
        assert_refused(check(&c, &sign(&c, with("iss", json!("tpp-2")))), "iss");
        assert_refused(check(&c, &sign(&c, with("jti", Value::Null))), "jti");
        assert_refused(
            check(&c, &sign(&c, with("jti", json!("x".repeat(300))))),
            "jti",
        );
    }

    /// Checklist #22, #23, #24, #25.
    #[test]
    fn none_hmac_rs256_and_foreign_keys_are_refused() {
        let c = client(SigningAlg::Es256);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims()).unwrap());
        for alg in ["none", "HS256", "RS256"] {
            let header = URL_SAFE_NO_PAD
                .encode(serde_json::to_vec(&json!({"alg": alg, "kid": c.key.kid()})).unwrap());
            // For HS256 the "signature" is an HMAC keyed with the public key: it must never be tried.
            let token = format!("{header}.{payload}.c2lnbmF0dXJl");
            assert_refused(check(&c, &token), "not allowed");
        }
        let stranger = client(SigningAlg::Es256);
        assert_refused(check(&c, &sign(&stranger, claims())), "no ES256 key");
        // Same kid as the client's key, different key: the signature fails.
        let forged = stranger
            .key
            .sign_jwt_with_header(
                json!({"kid": c.key.kid()}).as_object().unwrap(),
                claims().as_object().unwrap(),
            )
            .unwrap();
        assert_refused(check(&c, &forged), "signature");
    }
}
