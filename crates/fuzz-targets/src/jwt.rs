//! The JWTs a client or a directory sends: client assertions (RFC 7523), request objects (RFC
//! 9101), DPoP proofs (RFC 9449) and software statements (RFC 7591 §2.3). Each target reads
//! its input as a [`JwtInput`], so both the parsing in front of the signature and the claim checks
//! behind it are fuzzed, and then takes the accepted value one step further, as the server does.

use portcullis_core::assertion::{AssertionPolicy, verify_client_assertion};
use portcullis_core::authz::request;
use portcullis_core::authz::request_object::{self, MAX_VALIDITY, RequestObjectPolicy};
use portcullis_core::client::ClientProfile;
use portcullis_core::client::metadata::ClientMetadata;
use portcullis_core::software_statement::{self, StatementPolicy};
use portcullis_jose::dpop::{self, DpopPolicy, DpopRequest};
use portcullis_jose::{
    SigningAlg, SigningKey, decode_unverified_claims, decode_unverified_header,
    jwk_thumbprint_sha256,
};
use serde_json::{Map, Value};
use time::Duration;

use crate::fixture::{
    self, ACCESS_TOKEN, CLIENT_ID, DIRECTORY, DPOP_NONCE, Fixture, ISSUER, JwtInput, TOKEN_URL, now,
};
use crate::invariant::{assert_stores, independently_verified};

/// The profiles a client may have.
pub(crate) const PROFILES: [ClientProfile; 3] = [
    ClientProfile::Fapi2,
    ClientProfile::Fapi2MessageSigning,
    ClientProfile::Oauth,
];

/// Whether one of the client's keys (by the token's `kid`) verifies `token` independently.
fn client_signed(f: &Fixture, token: &str, alg: SigningAlg, kid: Option<&str>) -> bool {
    f.client_jwks
        .candidates(kid, alg)
        .iter()
        .any(|key| independently_verified(token, alg, key.members()))
}

fn header_alg(token: &str) -> Option<SigningAlg> {
    decode_unverified_header(token)
        .ok()?
        .get("alg")
        .and_then(Value::as_str)
        .and_then(|a| SigningAlg::parse(a).ok())
}

/// A `private_key_jwt` client assertion, verified for the fixture client with the FAPI policy
/// and with RFC 7523's lenient audience.
///
/// Invariants: an accepted assertion verifies independently; it names the client as `iss` and
/// `sub`; its `jti` is 1 to 256 bytes; its expiry is after `NOW` and within the policy's lifetime.
pub fn client_assertion(data: &[u8]) {
    let Some(f) = fixture::fixture() else { return };
    let Some(token) = JwtInput::read(data).and_then(|i| i.token(|k| f.client_key(k))) else {
        return;
    };
    let fapi = AssertionPolicy::fapi(ISSUER);
    let mut lenient = AssertionPolicy::fapi(ISSUER);
    lenient.allow_audience_array = true;
    lenient.audiences.push(format!("{ISSUER}/token"));
    for policy in [fapi, lenient] {
        let Ok(v) = verify_client_assertion(&token, &f.client_id, &f.client_jwks, &policy, now())
        else {
            continue;
        };
        assert!(!v.jti.is_empty() && v.jti.len() <= 256, "jti bounds");
        assert!(
            v.expires_at > now() && v.expires_at <= now() + policy.max_lifetime,
            "assertion lifetime"
        );
        let claims = decode_unverified_claims(&token).unwrap_or_default();
        for name in ["iss", "sub"] {
            assert_eq!(
                claims.get(name).and_then(Value::as_str),
                Some(CLIENT_ID),
                "{name}"
            );
        }
        assert!(
            header_alg(&token).is_some_and(|alg| client_signed(f, &token, alg, v.kid.as_deref())),
            "an assertion was accepted that does not verify independently"
        );
    }
}

/// A request object (JAR) at PAR, verified for the fixture client, then its parameters checked
/// as the authorization request for every profile, as `/par` does.
///
/// Invariants: an accepted object verifies independently; its parameters hold none of the JWT
/// envelope; it is unexpired and valid for at most 60 minutes; a request made from it is stored
/// and reads back.
pub fn request_object(data: &[u8]) {
    let Some(f) = fixture::fixture() else { return };
    let Some(token) = JwtInput::read(data).and_then(|i| i.token(|k| f.client_key(k))) else {
        return;
    };
    let policy = RequestObjectPolicy {
        algorithms: SigningAlg::ALL.to_vec(),
        issuer: ISSUER.into(),
        max_future_skew: Duration::seconds(10),
    };
    let Ok(v) = request_object::verify(&token, &f.client_id, &f.client_jwks, &policy, now()) else {
        return;
    };
    assert!(
        header_alg(&token).is_some_and(|alg| client_signed(f, &token, alg, v.kid.as_deref())),
        "a request object was accepted that does not verify independently"
    );
    for envelope in ["iss", "aud", "exp", "nbf", "iat", "jti", "sub"] {
        assert!(!v.parameters.contains_key(envelope), "{envelope} kept");
    }
    assert!(
        v.expires_at > now() && v.expires_at <= now() + MAX_VALIDITY + policy.max_future_skew,
        "request object lifetime"
    );
    authorization_request(f, &v.parameters);
}

/// Checks `parameters` as a pushed authorization request for every profile; an accepted one
/// must be stored and read back unchanged.
pub(crate) fn authorization_request(f: &Fixture, parameters: &Map<String, Value>) {
    for profile in PROFILES {
        let Ok(checked) = request::check(parameters, &f.client_id, &f.metadata, profile) else {
            continue;
        };
        assert!(
            f.metadata.redirect_uris.contains(&checked.redirect_uri),
            "unregistered redirect_uri accepted"
        );
        assert_eq!(checked.code_challenge.len(), 43, "code_challenge");
        let stored = checked.to_map();
        assert_stores("an authorization request", &stored);
        let back = request::AuthorizationRequest::from_map(stored.clone()).map(|r| r.to_map());
        assert!(
            back.is_ok_and(|b| crate::invariant::equivalent(
                &Value::Object(b),
                &Value::Object(stored)
            )),
            "an accepted authorization request does not read back as itself"
        );
    }
}

/// The key a DPoP proof is signed with, for a selector: the client's DPoP key or one of its
/// other keys.
fn dpop_key(f: &'static Fixture, selector: u8) -> Option<&'static SigningKey> {
    match selector % 4 {
        0 => Some(&f.dpop_key),
        other => f.client_key(other - 1),
    }
}

/// A DPoP proof at the token endpoint, validated with and without an access token (`ath`) and
/// with and without required nonces. In signing mode a header without `jwk` gets the signing
/// key's, as a client's proof carries it.
///
/// Invariants: an accepted proof verifies independently with its own `jwk`; `jkt` is that key's
/// thumbprint; its `jti` is 1 to 256 bytes; its `iat` is within the window.
pub fn dpop_proof(data: &[u8]) {
    let Some(f) = fixture::fixture() else { return };
    let input = match JwtInput::read(data) {
        Some(JwtInput::Sign {
            mut header,
            claims,
            key,
        }) => {
            if !header.contains_key("jwk")
                && let Some(public) = dpop_key(f, key).and_then(|k| k.public_jwk().ok())
            {
                let mut jwk: Map<String, Value> = public.into();
                jwk.remove("kid");
                jwk.remove("use");
                header.insert("jwk".into(), Value::Object(jwk));
            }
            JwtInput::Sign {
                header,
                claims,
                key,
            }
        }
        Some(raw) => raw,
        None => return,
    };
    let Some(token) = input.token(|k| dpop_key(f, k)) else {
        return;
    };
    let policy = DpopPolicy::default();
    let nonces = [DPOP_NONCE.to_owned()];
    for access_token in [None, Some(ACCESS_TOKEN)] {
        for accepted_nonces in [None, Some(&nonces[..])] {
            let request = DpopRequest {
                headers: &[&token],
                method: "POST",
                url: TOKEN_URL,
                access_token,
                accepted_nonces,
            };
            let Ok(proof) = dpop::validate(&request, &policy, now()) else {
                continue;
            };
            let header = decode_unverified_header(&token).unwrap_or_default();
            let jwk = header
                .get("jwk")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            assert_eq!(
                jwk_thumbprint_sha256(&jwk).ok().as_deref(),
                Some(proof.jkt.as_str()),
                "jkt is not the proof key's thumbprint"
            );
            assert!(
                header_alg(&token).is_some_and(|alg| independently_verified(&token, alg, &jwk)),
                "a DPoP proof was accepted that does not verify independently"
            );
            assert!(
                !proof.jti.is_empty() && proof.jti.len() <= 256,
                "jti bounds"
            );
            assert!(
                proof.issued_at <= now() + policy.max_future_skew
                    && proof.issued_at >= now() - policy.max_age,
                "iat window"
            );
        }
    }
}

/// A software statement at registration: its unverified issuer, verification with the
/// directory's keys, then applied to a registration request and the result checked as client
/// metadata for every profile, as `/register` does.
///
/// Invariants: an accepted statement verifies independently with the directory's key and is
/// issued by the directory; metadata made from it is stored and reads back.
pub fn software_statement(data: &[u8]) {
    let Some(f) = fixture::fixture() else { return };
    let Some(token) = JwtInput::read(data).and_then(|i| {
        i.token(|k| match k % 2 {
            0 => Some(&f.directory_key),
            _ => f.client_key(k >> 1),
        })
    }) else {
        return;
    };
    let _ = software_statement::unverified_issuer(&token);
    let policy = StatementPolicy {
        issuer: DIRECTORY.into(),
        algorithms: SigningAlg::ALL.to_vec(),
        max_age: Duration::minutes(5),
        max_future_skew: Duration::seconds(30),
    };
    let Ok(verified) = software_statement::verify(&token, &f.directory_jwks, &policy, now()) else {
        return;
    };
    assert_eq!(
        verified.claims.get("iss").and_then(Value::as_str),
        Some(DIRECTORY)
    );
    assert!(
        header_alg(&token).is_some_and(|alg| f
            .directory_jwks
            .keys
            .iter()
            .any(|k| independently_verified(&token, alg, k.members()))),
        "a software statement was accepted that does not verify independently"
    );
    let body = serde_json::json!({
        "redirect_uris": ["https://tpp.example/cb"],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks_uri": "https://keystore.directory.example/tpp/app.jwks",
    });
    let Some(body) = body.as_object().cloned() else {
        return;
    };
    let Ok(merged) = software_statement::apply(body, &verified.claims) else {
        return;
    };
    crate::metadata::registration(&merged);
    let _ = ClientMetadata::from_request(merged);
}
