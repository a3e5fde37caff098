//! DPoP proofs (RFC 9449): validating them (§4.3), as the authorization server's endpoints and
//! `portcullis-verify` at a resource server both must, and making them (§4.2), as a client does.
//! Pure: the caller passes the request's `DPoP` header values, method and URL, the time, and what
//! it accepts; the result is the key's thumbprint (`jkt`) and the proof's `jti`, which the caller
//! must record as used until [`DpopProof::replay_until`] (RFC 9449 §11.1) in a shared replay store.
//! Server-provided nonces (RFC 9449 §8, §9) are [`DpopNonces`].

mod nonce;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use time::{Duration, OffsetDateTime};

use crate::{JoseError, SigningAlg, SigningKey, verify_with_embedded_jwk};

pub use nonce::DpopNonces;

/// The most bytes a `jti` may have; a proof's `jti` is stored, so it is bounded.
const MAX_JTI_LEN: usize = 256;

/// What the server accepts.
#[derive(Debug, Clone)]
pub struct DpopPolicy {
    /// Signing algorithms (FAPI2 SP 5.4.1: PS256, ES256, EdDSA).
    pub algorithms: Vec<SigningAlg>,
    /// How far in the future `iat` may be (SP 5.3.2.1-13: at least 10 s must pass; more than 60 s
    /// must fail).
    pub max_future_skew: Duration,
    /// How old a proof may be (RFC 9449 §11.1: a short window limits replay exposure).
    pub max_age: Duration,
}

impl Default for DpopPolicy {
    fn default() -> Self {
        Self {
            algorithms: SigningAlg::ALL.to_vec(),
            max_future_skew: Duration::seconds(10),
            max_age: Duration::seconds(60),
        }
    }
}

/// The request a proof must match.
#[derive(Debug, Clone, Copy)]
pub struct DpopRequest<'a> {
    /// Every `DPoP` header value of the request (there must be exactly one).
    pub headers: &'a [&'a str],
    /// The HTTP method.
    pub method: &'a str,
    /// The absolute URL the request was sent to (`htu`), as the server is published.
    pub url: &'a str,
    /// At a resource: the access token the proof accompanies (`ath`, RFC 9449 §4.3 step 12).
    pub access_token: Option<&'a str>,
    /// When the server requires nonces: the nonces it currently accepts (RFC 9449 §8).
    pub accepted_nonces: Option<&'a [String]>,
}

/// A valid proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopProof {
    /// The RFC 7638 thumbprint of the proof key: `cnf.jkt` of the tokens it obtains.
    pub jkt: String,
    /// The proof's unique identifier, to be recorded as used.
    pub jti: String,
    /// When the proof was made.
    pub issued_at: OffsetDateTime,
    /// Until when the `jti` must be remembered: after that the proof is too old anyway.
    pub replay_until: OffsetDateTime,
}

/// Why a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpopError {
    /// RFC 9449 §7.1: `invalid_dpop_proof`, naming the failed check.
    #[error("{0}")]
    Invalid(String),
    /// RFC 9449 §8: the server requires a (fresh) nonce; answer `use_dpop_nonce` with a
    /// `DPoP-Nonce` header.
    #[error("a fresh DPoP nonce is required (RFC 9449 §8)")]
    UseNonce,
}

fn invalid(description: impl Into<String>) -> DpopError {
    DpopError::Invalid(description.into())
}

/// Validates a DPoP proof against the request (RFC 9449 §4.3 steps 1–12).
///
/// # Errors
/// [`DpopError::Invalid`] naming the check that failed, or [`DpopError::UseNonce`].
pub fn validate(
    request: &DpopRequest<'_>,
    policy: &DpopPolicy,
    now: OffsetDateTime,
) -> Result<DpopProof, DpopError> {
    // Step 1: exactly one DPoP header.
    let proof = match request.headers {
        [one] => *one,
        [] => return Err(invalid("the DPoP header is missing")),
        _ => return Err(invalid("more than one DPoP header (RFC 9449 §4.3 step 1)")),
    };
    // Steps 2–7: a JWT, an allowed asymmetric alg, a public `jwk`, a valid signature.
    let (verified, jwk) = verify_with_embedded_jwk(proof, &policy.algorithms).map_err(|e| match e {
        JoseError::UnsupportedAlgorithm(alg) => invalid(format!(
            "DPoP proof algorithm {alg:?} is not allowed (FAPI2 SP 5.4.1: PS256, ES256 or EdDSA)"
        )),
        JoseError::InvalidKey(m) => invalid(format!("DPoP proof jwk: {m} (RFC 9449 §4.3 step 7)")),
        JoseError::WeakKey(m) => invalid(format!("DPoP proof jwk: {m}")),
        JoseError::BadSignature => invalid("DPoP proof signature does not verify with its jwk"),
        other => invalid(format!("DPoP proof is not a valid JWS: {other}")),
    })?;
    // Step 4: typ.
    if verified.header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err(invalid(
            "DPoP proof typ must be dpop+jwt (RFC 9449 §4.3 step 4)",
        ));
    }
    let claims = &verified.claims;
    let jti = string_claim(claims, "jti")?;
    if jti.len() > MAX_JTI_LEN {
        return Err(invalid(format!(
            "DPoP proof jti is longer than {MAX_JTI_LEN} bytes"
        )));
    }
    // Step 8: htm.
    if string_claim(claims, "htm")? != request.method {
        return Err(invalid(
            "DPoP proof htm does not match the request method (RFC 9449 §4.3 step 8)",
        ));
    }
    // Step 9: htu, without query and fragment.
    if !same_target(string_claim(claims, "htu")?, request.url) {
        return Err(invalid(
            "DPoP proof htu does not match the request URL (RFC 9449 §4.3 step 9)",
        ));
    }
    // Step 11: iat within the window (SP 5.3.2.1-13).
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or_else(|| invalid("DPoP proof iat is missing or not a number"))?;
    let issued_at = OffsetDateTime::from_unix_timestamp(iat)
        .map_err(|_| invalid("DPoP proof iat is out of range"))?;
    if issued_at > now + policy.max_future_skew {
        return Err(invalid(
            "DPoP proof iat is in the future (FAPI2 SP 5.3.2.1-13)",
        ));
    }
    if issued_at < now - policy.max_age {
        return Err(invalid("DPoP proof is too old (RFC 9449 §11.1)"));
    }
    // Step 10: nonce, when the server requires one.
    if let Some(accepted) = request.accepted_nonces {
        let nonce = claims.get("nonce").and_then(Value::as_str);
        if !nonce.is_some_and(|n| {
            accepted
                .iter()
                .any(|a| constant_time_eq(a.as_bytes(), n.as_bytes()))
        }) {
            return Err(DpopError::UseNonce);
        }
    }
    // Step 12: ath, when the proof accompanies an access token.
    if let Some(token) = request.access_token {
        let expected = access_token_hash(token);
        let ath = claims
            .get("ath")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !constant_time_eq(ath.as_bytes(), expected.as_bytes()) {
            return Err(invalid(
                "DPoP proof ath does not match the access token (RFC 9449 §4.3 step 12)",
            ));
        }
    }
    let jkt = jwk
        .thumbprint()
        .map_err(|e| invalid(format!("DPoP proof jwk: {e}")))?;
    Ok(DpopProof {
        jkt,
        jti: jti.to_owned(),
        issued_at,
        replay_until: issued_at + policy.max_age,
    })
}

/// Makes a DPoP proof (RFC 9449 §4.2), as a client sends it in the `DPoP` header: the header
/// carries `typ` `dpop+jwt`, the key's `alg` and its public `jwk`; the claims are `jti`, `htm`,
/// `htu` and `iat`, with `ath` (the base64url SHA-256 of `access_token`, §4.2) when the proof
/// accompanies an access token and `nonce` when the server gave one (§8, §9).
///
/// `htu` should be the target URL without query and fragment; `jti` must be unique per proof
/// (at least 96 bits of randomness, RFC 9449 §4.2) and `iat` is the current Unix time.
///
/// # Errors
/// [`JoseError::Internal`] if signing fails, or whatever reading the key's public part returns.
pub fn make_proof(
    key: &SigningKey,
    htm: &str,
    htu: &str,
    access_token: Option<&str>,
    nonce: Option<&str>,
    iat: i64,
    jti: &str,
) -> Result<String, JoseError> {
    let mut jwk: Map<String, Value> = key.public_jwk()?.into();
    // `kid` and `use` describe the key's place in our published JWKS, not the proof key.
    jwk.remove("kid");
    jwk.remove("use");
    let mut header = Map::new();
    header.insert("typ".into(), "dpop+jwt".into());
    header.insert("alg".into(), key.alg().as_str().into());
    header.insert("jwk".into(), Value::Object(jwk));
    let mut claims = Map::new();
    claims.insert("jti".into(), jti.into());
    claims.insert("htm".into(), htm.into());
    claims.insert("htu".into(), htu.into());
    claims.insert("iat".into(), iat.into());
    if let Some(token) = access_token {
        claims.insert("ath".into(), access_token_hash(token).into());
    }
    if let Some(nonce) = nonce {
        claims.insert("nonce".into(), nonce.into());
    }
    key.sign_jwt_with_header(&header, &claims)
}

/// RFC 9449 §4.2 `ath`: the base64url SHA-256 of the access token's ASCII bytes.
fn access_token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

fn string_claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Result<&'a str, DpopError> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| invalid(format!("DPoP proof {name} is missing (RFC 9449 §4.2)")))
}

/// RFC 9449 §4.3 step 9 with RFC 3986 §6.2.2–6.2.3 normalisation: scheme and host compared
/// case-insensitively, default ports implied, query and fragment ignored.
fn same_target(htu: &str, url: &str) -> bool {
    let (Ok(a), Ok(b)) = (url::Url::parse(htu), url::Url::parse(url)) else {
        return false;
    };
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
        && a.path() == b.path()
        && a.username().is_empty()
        && a.password().is_none()
}

/// Compares secrets without an early exit on the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const URL: &str = "https://as.example/token";

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    fn key() -> SigningKey {
        SigningKey::generate(SigningAlg::Es256, 2048).unwrap()
    }

    /// A proof signed by `key` with the given header changes and claims.
    fn proof_with(key: &SigningKey, header: Value, claims: Value) -> String {
        let mut h =
            json!({"typ": "dpop+jwt", "jwk": Value::Object(key.public_jwk().unwrap().into())});
        for (k, v) in header.as_object().unwrap() {
            if v.is_null() {
                h.as_object_mut().unwrap().remove(k);
            } else {
                h[k] = v.clone();
            }
        }
        key.sign_jwt_with_header(h.as_object().unwrap(), claims.as_object().unwrap())
            .unwrap()
    }

    fn claims() -> Value {
        json!({"jti": "proof-1", "htm": "POST", "htu": URL, "iat": now().unix_timestamp()})
    }

    fn check(proof: &str) -> Result<DpopProof, DpopError> {
        validate(
            &DpopRequest {
                headers: &[proof],
                method: "POST",
                url: URL,
                access_token: None,
                accepted_nonces: None,
            },
            &DpopPolicy::default(),
            now(),
        )
    }

    fn assert_invalid(result: Result<DpopProof, DpopError>, needle: &str) {
        match result {
            Err(DpopError::Invalid(m)) => assert!(m.contains(needle), "{m:?} lacks {needle:?}"),
            other => panic!("expected invalid_dpop_proof ({needle}), got {other:?}"),
        }
    }

    #[test]
    fn a_valid_proof_yields_the_key_thumbprint_and_its_replay_window() {
        let key = key();
        let proof = check(&proof_with(&key, json!({}), claims())).unwrap();
        assert_eq!(proof.jkt, key.kid());
        assert_eq!(proof.jti, "proof-1");
        assert_eq!(proof.replay_until, now() + Duration::seconds(60));
    }

    /// Checklist #36.
    #[test]
    fn rfc_9449_4_3_refuses_wrong_typ_missing_claims_two_headers_and_non_jwts() {
        let key = key();
        assert_invalid(
            check(&proof_with(&key, json!({"typ": "JWT"}), claims())),
            "typ",
        );
        for missing in ["jti", "htm", "htu"] {
            let mut c = claims();
            c.as_object_mut().unwrap().remove(missing);
            assert_invalid(check(&proof_with(&key, json!({}), c)), missing);
        }
        let mut c = claims();
        c.as_object_mut().unwrap().remove("iat");
        assert_invalid(check(&proof_with(&key, json!({}), c)), "iat");
        assert_invalid(
            check(&proof_with(&key, json!({"jwk": null}), claims())),
            "jwk",
        );
        let p = proof_with(&key, json!({}), claims());
        let two = validate(
            &DpopRequest {
                headers: &[&p, &p],
                method: "POST",
                url: URL,
                access_token: None,
                accepted_nonces: None,
            },
            &DpopPolicy::default(),
            now(),
        );
        assert_invalid(two, "more than one");
        assert_invalid(check("not-a-jwt"), "not a valid JWS");
    }

    /// Checklist #37.
    #[test]
    fn rfc_9449_4_3_refuses_none_bad_signatures_and_private_keys() {
        let key = key();
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&json!({"typ":"dpop+jwt","alg":"none","jwk": Value::Object(key.public_jwk().unwrap().into())})).unwrap()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims()).unwrap())
        );
        assert_invalid(check(&none), "not allowed");
        let other = self::key();
        let forged = proof_with(
            &other,
            json!({"jwk": Value::Object(key.public_jwk().unwrap().into())}),
            claims(),
        );
        assert_invalid(check(&forged), "signature");
        let private: Value = serde_json::from_slice(&key.private_jwk_json().unwrap()).unwrap();
        assert_invalid(
            check(&proof_with(&key, json!({"jwk": private}), claims())),
            "private",
        );
    }

    /// Checklist #32, #33.
    #[test]
    fn rfc_9449_4_3_htm_and_htu_must_match_but_query_and_fragment_do_not_count() {
        let key = key();
        let mut c = claims();
        c["htm"] = json!("GET");
        assert_invalid(check(&proof_with(&key, json!({}), c)), "htm");
        c = claims();
        c["htu"] = json!("https://as.example/par");
        assert_invalid(check(&proof_with(&key, json!({}), c.clone())), "htu");
        c["htu"] = json!("https://evil.example/token");
        assert_invalid(check(&proof_with(&key, json!({}), c.clone())), "htu");
        for same in [
            "https://AS.example:443/token?x=1#f",
            "https://as.example/token",
        ] {
            c["htu"] = json!(same);
            assert!(
                check(&proof_with(&key, json!({}), c.clone())).is_ok(),
                "{same}"
            );
        }
    }

    /// Checklist #38 and SP 5.3.2.1-13: ±10 s pass; an hour either way, or > 60 s ahead, fails.
    #[test]
    fn sp_5_3_2_1_13_iat_window() {
        let key = key();
        for (offset, ok) in [
            (-10, true),
            (10, true),
            (-59, true),
            (11, false),
            (61, false),
            (-3600, false),
            (3600, false),
        ] {
            let mut c = claims();
            c["iat"] = json!(now().unix_timestamp() + offset);
            assert_eq!(
                check(&proof_with(&key, json!({}), c)).is_ok(),
                ok,
                "iat offset {offset}"
            );
        }
    }

    /// Checklist #34 and #39.
    #[test]
    fn ath_and_nonce_are_checked_when_required() {
        let key = key();
        let token = "access-token-value";
        let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
        let nonces = vec!["n-1".to_owned()];
        let run = |c: Value| {
            let p = proof_with(&key, json!({}), c);
            validate(
                &DpopRequest {
                    headers: &[&p],
                    method: "POST",
                    url: URL,
                    access_token: Some(token),
                    accepted_nonces: Some(&nonces),
                },
                &DpopPolicy::default(),
                now(),
            )
        };
        let mut c = claims();
        c["ath"] = json!(ath);
        assert_eq!(run(c.clone()), Err(DpopError::UseNonce));
        c["nonce"] = json!("stale");
        assert_eq!(run(c.clone()), Err(DpopError::UseNonce));
        c["nonce"] = json!("n-1");
        assert!(run(c.clone()).is_ok());
        c["ath"] = json!("wrong");
        assert_invalid(run(c.clone()), "ath");
        c.as_object_mut().unwrap().remove("ath");
        assert_invalid(run(c), "ath");
    }

    /// RFC 9449 §4.2: a proof made for a client passes validation, with `ath` and `nonce`, for
    /// every allowed algorithm; changing any byte of its payload breaks the signature.
    #[test]
    fn rfc_9449_4_2_a_made_proof_validates_and_a_tampered_one_does_not() {
        let token = "access-token-value";
        let nonces = vec!["n-1".to_owned()];
        for alg in SigningAlg::ALL {
            let key = SigningKey::generate(alg, 2048).unwrap();
            let proof = make_proof(
                &key,
                "GET",
                "https://rs.example/accounts",
                Some(token),
                Some("n-1"),
                now().unix_timestamp(),
                "made-1",
            )
            .unwrap();
            let run = |proof: &str| {
                validate(
                    &DpopRequest {
                        headers: &[proof],
                        method: "GET",
                        url: "https://rs.example/accounts?page=2",
                        access_token: Some(token),
                        accepted_nonces: Some(&nonces),
                    },
                    &DpopPolicy::default(),
                    now(),
                )
            };
            let valid = run(&proof).unwrap();
            assert_eq!(valid.jkt, key.kid(), "{alg}");
            assert_eq!(valid.jti, "made-1");
            assert_eq!(valid.issued_at, now());

            let header = crate::decode_unverified_header(&proof).unwrap();
            assert_eq!(header["typ"], "dpop+jwt");
            assert_eq!(header["alg"], alg.as_str());
            assert!(header["jwk"].get("d").is_none());
            assert!(header.get("kid").is_none());

            let mut parts: Vec<&str> = proof.split('.').collect();
            let mut claims = crate::decode_unverified_claims(&proof).unwrap();
            claims.insert("htm".into(), "POST".into());
            let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
            parts[1] = &forged_payload;
            assert_invalid(run(&parts.join(".")), "signature");
        }
    }

    /// A proof we make verifies with an independent JOSE implementation.
    #[test]
    fn made_proofs_verify_with_jsonwebtoken() {
        let key = key();
        let proof = make_proof(&key, "POST", URL, None, None, now().unix_timestamp(), "j").unwrap();
        let header = crate::decode_unverified_header(&proof).unwrap();
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(header["jwk"].clone()).unwrap();
        let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<Value>(&proof, &decoding, &validation).unwrap();
        assert_eq!(data.claims["htu"], URL);
        assert!(data.claims.get("ath").is_none() && data.claims.get("nonce").is_none());
    }
}
