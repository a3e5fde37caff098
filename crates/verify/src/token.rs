//! The checks of an access token that need no network: a JWT's signature against a key set in
//! hand ([`check_jwt`], RFC 9068 §4), and the claim checks shared with introspection answers
//! (RFC 7662 §2.2): issuer, audience, time window, identity, binding. Pure: the caller passes the
//! keys and the time. [`Verifier`](crate::Verifier) adds the JWKS fetching, the sender-constraint
//! proof and revocation.

use std::sync::Arc;

use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use crate::binding::Binding;
use crate::error::Scheme;
use crate::principal::{Principal, TokenSource};

/// What a token must satisfy.
#[derive(Debug, Clone)]
pub struct Expectations<'a> {
    /// The authorization server's issuer (`iss`).
    pub issuer: &'a str,
    /// This API's resource identifier (`aud`).
    pub resource: &'a str,
    /// The allowed clock skew, in seconds.
    pub skew: i64,
    /// Whether a token without `cnf` is accepted.
    pub allow_unbound: bool,
}

/// Why [`check_jwt`] refused a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtError {
    /// No key of the set can have signed it (an unknown `kid`): fetch the set again, then retry.
    UnknownKey,
    /// Anything else, described for an `error_description`.
    Invalid(String),
}

/// Verifies a JWT access token against `jwks`, a key set prepared once (RFC 9068 §4): `typ` `at+jwt`, an algorithm of
/// `algorithms`, the signature, then the claims as [`Expectations`] say, at `now` (seconds since
/// the epoch). The sender constraint is read into [`Principal::binding`] but not checked: that
/// needs the request.
///
/// # Errors
/// [`JwtError`].
pub fn check_jwt(
    token: &str,
    jwks: &portcullis_jose::PreparedJwks,
    algorithms: &[portcullis_jose::SigningAlg],
    expect: &Expectations<'_>,
    now: i64,
    scheme: Scheme,
) -> Result<Principal, JwtError> {
    use portcullis_jose::JoseError;
    let header = portcullis_jose::decode_unverified_header(token)
        .map_err(|_| JwtError::Invalid("the access token is not a valid JWT".into()))?;
    if !is_access_token_typ(&header) {
        return Err(JwtError::Invalid(
            "the JWT is not an access token (typ must be at+jwt, RFC 9068 §2.1)".into(),
        ));
    }
    let verified = match portcullis_jose::verify_jwt_prepared(token, jwks, algorithms) {
        Ok(verified) => verified,
        Err(JoseError::KeyNotFound(_)) => return Err(JwtError::UnknownKey),
        Err(JoseError::UnsupportedAlgorithm(alg)) => {
            return Err(JwtError::Invalid(format!(
                "the access token's algorithm {alg:?} is not accepted (FAPI2 SP 5.4.1)"
            )));
        }
        Err(JoseError::BadSignature) => {
            return Err(JwtError::Invalid(
                "the access token's signature does not verify".into(),
            ));
        }
        Err(e) => {
            return Err(JwtError::Invalid(format!(
                "the access token is not a valid JWS: {e}"
            )));
        }
    };
    principal(
        verified.claims,
        expect,
        now,
        scheme,
        TokenSource::Jwt,
        token,
    )
    .map_err(JwtError::Invalid)
}

/// Whether a JWT's `typ` header says it is an access token (RFC 9068 §2.1: `at+jwt`, or its
/// full media type; media types compare case-insensitively).
pub(crate) fn is_access_token_typ(header: &Map<String, Value>) -> bool {
    header.get("typ").and_then(Value::as_str).is_some_and(|t| {
        t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
    })
}

fn int(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, String> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| format!("{name} is not a number of seconds")),
        Some(_) => Err(format!("{name} is not a number")),
    }
}

fn string<'a>(claims: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("the access token has no {name}"))
}

/// Checks `claims` and makes the principal. `token` is the presented token (for the identifier
/// of an opaque token without `jti`).
pub(crate) fn principal(
    claims: Map<String, Value>,
    expect: &Expectations<'_>,
    now: i64,
    scheme: Scheme,
    source: TokenSource,
    token: &str,
) -> Result<Principal, String> {
    // RFC 9068 §4: iss must be exactly the authorization server's issuer.
    match claims.get("iss").and_then(Value::as_str) {
        Some(iss) if iss == expect.issuer => {}
        // RFC 7662 answers may leave iss out; JWTs must carry it.
        None if source == TokenSource::Introspection => {}
        _ => return Err("the access token was not issued by the trusted issuer (iss)".into()),
    }
    // RFC 9068 §4: aud must name this resource.
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => aud == expect.resource,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(expect.resource)),
        _ => false,
    };
    if !audience_ok {
        return Err("the access token is not for this resource (aud)".into());
    }
    let exp = int(&claims, "exp")?.ok_or("the access token has no exp")?;
    if now >= exp.saturating_add(expect.skew) {
        return Err("the access token has expired (exp)".into());
    }
    if let Some(nbf) = int(&claims, "nbf")?
        && nbf > now.saturating_add(expect.skew)
    {
        return Err("the access token is not valid yet (nbf)".into());
    }
    let iat = int(&claims, "iat")?;
    match iat {
        Some(iat) if iat > now.saturating_add(expect.skew) => {
            return Err("the access token was issued in the future (iat)".into());
        }
        None if source == TokenSource::Jwt => {
            return Err("the access token has no iat (RFC 9068 §2.2)".into());
        }
        _ => {}
    }
    let subject = string(&claims, "sub")?.to_owned();
    let client_id = string(&claims, "client_id")?.to_owned();
    let token_id = match (source, claims.get("jti").and_then(Value::as_str)) {
        (_, Some(jti)) if !jti.is_empty() => jti.to_owned(),
        (TokenSource::Jwt, _) => return Err("the access token has no jti".into()),
        (TokenSource::Introspection, _) => {
            let digest = Sha256::digest(token.as_bytes());
            format!("sha256:{}", hex::encode(digest))
        }
    };
    let scopes = match claims.get("scope") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        Some(_) => return Err("the access token's scope is not a string".into()),
    };
    let authorization_details = match claims.get("authorization_details") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(entries)) if entries.iter().all(Value::is_object) => entries.clone(),
        Some(_) => {
            return Err(
                "the access token's authorization_details is not an array of objects".into(),
            );
        }
    };
    let binding = match Binding::from_claims(&claims) {
        Ok(binding) => Some(binding),
        Err(crate::binding::BindingError::Unbound) if expect.allow_unbound => None,
        Err(e) => return Err(e.to_string()),
    };
    let grant_id = claims
        .get("grant_id")
        .and_then(Value::as_str)
        .filter(|g| !g.is_empty())
        .map(str::to_owned);
    let acr = claims.get("acr").and_then(Value::as_str).map(str::to_owned);
    let auth_time = int(&claims, "auth_time")?;
    Ok(Principal {
        subject,
        client_id,
        scopes,
        authorization_details,
        grant_id,
        token_id,
        expires_at: exp,
        issued_at: iat,
        binding,
        scheme,
        acr,
        auth_time,
        source,
        claims: Arc::new(claims),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    fn expect() -> Expectations<'static> {
        Expectations {
            issuer: "https://as.example",
            resource: "https://api.example/accounts",
            skew: 10,
            allow_unbound: false,
        }
    }

    fn claims(change: Value) -> Map<String, Value> {
        let mut base = json!({
            "iss": "https://as.example",
            "aud": "https://api.example/accounts",
            "sub": "user-1",
            "client_id": "tpp-1",
            "iat": NOW - 5,
            "nbf": NOW - 5,
            "exp": NOW + 300,
            "jti": "jti-1",
            "scope": "openid accounts",
            "grant_id": "g-1",
            "cnf": {"jkt": "abc"},
            "authorization_details": [{"type": "account_information", "accounts": ["acc-1"]}]
        });
        for (k, v) in change.as_object().unwrap() {
            if v.is_null() {
                base.as_object_mut().unwrap().remove(k);
            } else {
                base[k] = v.clone();
            }
        }
        base.as_object().unwrap().clone()
    }

    fn check(change: Value) -> Result<Principal, String> {
        principal(
            claims(change),
            &expect(),
            NOW,
            Scheme::Dpop,
            TokenSource::Jwt,
            "t",
        )
    }

    #[test]
    fn rfc_9068_4_a_good_token_makes_a_principal() {
        let p = check(json!({})).unwrap();
        assert_eq!(p.subject, "user-1");
        assert_eq!(p.client_id, "tpp-1");
        assert_eq!(p.scopes, ["openid", "accounts"]);
        assert_eq!(p.grant_id.as_deref(), Some("g-1"));
        assert_eq!(p.binding, Some(Binding::DpopKey("abc".into())));
        assert_eq!(p.authorization_details.len(), 1);
        assert!(check(json!({"aud": ["https://other", "https://api.example/accounts"]})).is_ok());
    }

    #[test]
    fn rfc_9068_4_issuer_audience_and_time_are_enforced() {
        for (change, expected) in [
            (json!({"iss": "https://evil.example"}), "iss"),
            (json!({"iss": null}), "iss"),
            (json!({"aud": "https://api.example/payments"}), "aud"),
            (json!({"aud": null}), "aud"),
            (json!({"exp": NOW - 11}), "expired"),
            (json!({"exp": null}), "exp"),
            (json!({"exp": "soon"}), "exp"),
            (json!({"nbf": NOW + 60}), "nbf"),
            (json!({"iat": NOW + 60}), "iat"),
            (json!({"iat": null}), "iat"),
            (json!({"sub": null}), "sub"),
            (json!({"client_id": ""}), "client_id"),
            (json!({"jti": null}), "jti"),
            (json!({"scope": ["accounts"]}), "scope"),
            (
                json!({"authorization_details": {"type": "x"}}),
                "authorization_details",
            ),
        ] {
            let err = check(change.clone()).unwrap_err();
            assert!(err.contains(expected), "{change}: {err}");
        }
        // Within the skew.
        assert!(check(json!({"exp": NOW - 5})).is_ok());
        assert!(check(json!({"iat": NOW + 5, "nbf": NOW + 5})).is_ok());
    }

    #[test]
    fn sp_5_3_2_1_4_unbound_tokens_only_when_allowed() {
        let err = check(json!({"cnf": null})).unwrap_err();
        assert!(err.contains("not sender-constrained"), "{err}");
        let mut lenient = expect();
        lenient.allow_unbound = true;
        let p = principal(
            claims(json!({"cnf": null})),
            &lenient,
            NOW,
            Scheme::Bearer,
            TokenSource::Jwt,
            "t",
        )
        .unwrap();
        assert_eq!(p.binding, None);
        let err = check(json!({"cnf": {"jkt": "a", "x5t#S256": "b"}})).unwrap_err();
        assert!(err.contains("ambiguous"), "{err}");
    }

    #[test]
    fn introspection_answers_may_omit_iss_iat_and_jti() {
        let p = principal(
            claims(json!({"iss": null, "iat": null, "jti": null})),
            &expect(),
            NOW,
            Scheme::Bearer,
            TokenSource::Introspection,
            "opaque-token",
        )
        .unwrap();
        assert!(p.token_id.starts_with("sha256:"));
        assert!(!p.token_id.contains("opaque-token"));
        assert!(is_access_token_typ(
            &json!({"typ": "application/AT+JWT"})
                .as_object()
                .unwrap()
                .clone()
        ));
        assert!(!is_access_token_typ(
            &json!({"typ": "JWT"}).as_object().unwrap().clone()
        ));
    }
}
