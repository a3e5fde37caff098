//! The JOSE layer itself: compact JWS parsing and verification, JWK and JWK Set parsing with
//! thumbprints, and the resource server's access-token check built on them.

use portcullis_jose::{
    Jwks, PreparedJwks, PublicJwk, SigningAlg, decode_unverified_claims, decode_unverified_header,
    jwk_thumbprint_sha256, verify_jwt, verify_jwt_prepared, verify_with_embedded_jwk,
};
use portcullis_verify::Scheme;
use portcullis_verify::token::{Expectations, check_jwt};
use serde_json::{Map, Value};

use crate::fixture::{self, ISSUER, JwtInput, NOW, RESOURCE};
use crate::invariant::{equivalent, independently_verified};

/// A compact JWS (raw, or header and claims signed by a client key: see [`JwtInput`]) through
/// the unverified header and claims readers, [`verify_jwt`] against the client's keys,
/// [`verify_jwt_prepared`] (which must give the same answer), and [`verify_with_embedded_jwk`].
///
/// Invariants: an accepted token's signature verifies independently with the key that accepted
/// it; its header and claims are what the unverified readers read; an algorithm outside the
/// allowlist is never accepted.
pub fn jws_compact(data: &[u8]) {
    let Some(f) = fixture::fixture() else { return };
    let Some(token) = JwtInput::read(data).and_then(|i| i.token(|k| f.client_key(k))) else {
        return;
    };
    let header = decode_unverified_header(&token);
    let claims = decode_unverified_claims(&token);
    assert!(
        header.is_ok() || claims.is_err(),
        "claims read from a token whose header does not read"
    );

    let verified = verify_jwt(&token, &f.client_jwks, &SigningAlg::ALL);
    assert_eq!(
        verified,
        verify_jwt_prepared(&token, &f.prepared, &SigningAlg::ALL),
        "verify_jwt and verify_jwt_prepared disagree"
    );
    if let Ok(v) = &verified {
        assert_eq!(header.as_ref().ok(), Some(&v.header), "verified header");
        assert_eq!(claims.as_ref().ok(), Some(&v.claims), "verified claims");
        let kid = v.header.get("kid").and_then(Value::as_str);
        assert!(
            f.client_jwks
                .candidates(kid, v.alg)
                .iter()
                .any(|key| independently_verified(&token, v.alg, key.members())),
            "verify_jwt accepted a signature that does not verify independently"
        );
        for alg in SigningAlg::ALL {
            let only = verify_jwt(&token, &f.client_jwks, &[alg]);
            assert_eq!(only.is_ok(), alg == v.alg, "allowlist of {alg} not applied");
        }
    }

    if let Ok((v, jwk)) = verify_with_embedded_jwk(&token, &SigningAlg::ALL) {
        assert!(
            independently_verified(&token, v.alg, jwk.members()),
            "verify_with_embedded_jwk accepted a signature that does not verify independently"
        );
        let embedded = v.header.get("jwk").and_then(Value::as_object);
        assert_eq!(
            embedded,
            Some(jwk.members()),
            "the embedded key is the header's"
        );
        assert!(jwk.thumbprint().is_ok(), "a verified key has a thumbprint");
    }
}

/// A JWK or a JWK Set as JSON: [`PublicJwk::parse`], its thumbprint and strength checks, and a
/// set's key selection and preparation into verifiers (josekit and OpenSSL read the key
/// material there).
///
/// Invariants: a parsed key has a thumbprint, the same every time, unchanged by `kid`, `alg` and
/// `use`; it has no private members; it serialises and parses back to the same key; a set
/// serialises and parses back to the same set.
pub fn jwk(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let Value::Object(members) = &value {
        one_key(members);
    }
    if let Ok(set) = serde_json::from_value::<Jwks>(value) {
        for alg in SigningAlg::ALL {
            for kid in [None, Some("k1")] {
                for key in set.candidates(kid, alg) {
                    assert!(key.suits(alg), "a candidate that does not suit {alg}");
                }
            }
        }
        let _ = set.has_duplicate_kids();
        let text = serde_json::to_string(&set);
        let back = text
            .ok()
            .and_then(|t| serde_json::from_str::<Jwks>(&t).ok());
        assert!(
            back.is_some_and(|b| b.keys.len() == set.keys.len()
                && b.keys.iter().zip(&set.keys).all(|(a, b)| {
                    equivalent(
                        &Value::Object(a.members().clone()),
                        &Value::Object(b.members().clone()),
                    )
                })),
            "a JWK set does not read back"
        );
        let _ = PreparedJwks::new(set);
    }
}

fn one_key(members: &Map<String, Value>) {
    let Ok(key) = PublicJwk::parse(members.clone()) else {
        return;
    };
    let thumbprint = key.thumbprint();
    assert!(thumbprint.is_ok(), "a parsed key without a thumbprint");
    assert_eq!(key.thumbprint(), thumbprint, "the thumbprint is not stable");
    let mut relabelled = members.clone();
    relabelled.insert("kid".into(), "relabelled".into());
    relabelled.insert("alg".into(), "EdDSA".into());
    relabelled.remove("use");
    assert_eq!(
        jwk_thumbprint_sha256(&relabelled),
        thumbprint,
        "kid, alg or use changed the RFC 7638 thumbprint"
    );
    for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
        assert!(
            key.members().get(private).is_none(),
            "a public key with {private}"
        );
    }
    for alg in SigningAlg::ALL {
        if key.check_strength(alg).is_ok() {
            assert!(key.suits(alg), "strong enough for {alg} without suiting it");
        }
    }
    let back = serde_json::to_string(&key)
        .ok()
        .and_then(|t| serde_json::from_str::<PublicJwk>(&t).ok());
    assert!(
        back.is_some_and(|b| b.thumbprint() == thumbprint
            && equivalent(
                &Value::Object(b.members().clone()),
                &Value::Object(members.clone())
            )),
        "a JWK does not read back"
    );
}

/// An access token at a resource server: `portcullis_verify::token::check_jwt` against the
/// prepared client key set (standing in for the authorization server's), with and without
/// unbound tokens allowed.
///
/// Invariants: an accepted token verifies independently, is unexpired at `NOW` within the skew,
/// and is for the issuer and resource expected.
pub fn access_token(data: &[u8]) {
    let Some(f) = fixture::fixture() else { return };
    let Some(token) = JwtInput::read(data).and_then(|i| i.token(|k| f.client_key(k))) else {
        return;
    };
    for allow_unbound in [false, true] {
        let expect = Expectations {
            issuer: ISSUER,
            resource: RESOURCE,
            skew: 10,
            allow_unbound,
        };
        let Ok(principal) = check_jwt(
            &token,
            &f.prepared,
            &SigningAlg::ALL,
            &expect,
            NOW,
            Scheme::Dpop,
        ) else {
            continue;
        };
        assert!(
            principal.expires_at.saturating_add(10) > NOW,
            "an expired token was accepted"
        );
        assert_eq!(
            principal.claims.get("iss").and_then(Value::as_str),
            Some(ISSUER)
        );
        assert!(
            allow_unbound || principal.binding.is_some(),
            "unbound token"
        );
        let verified = verify_jwt(&token, &f.client_jwks, &SigningAlg::ALL);
        assert!(
            verified.is_ok_and(|v| f
                .client_jwks
                .candidates(v.header.get("kid").and_then(Value::as_str), v.alg)
                .iter()
                .any(|key| independently_verified(&token, v.alg, key.members()))),
            "check_jwt accepted a token that does not verify independently"
        );
    }
}
