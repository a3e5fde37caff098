//! ID tokens (OIDC Core §2, §3.1.3.6): issued by the token endpoint only (FAPI2 SP 5.3.2.3),
//! signed with the client's `id_token_signed_response_alg` (PS256 by default for FAPI). The
//! claims of the `profile`, `email`, `address` and `phone` scopes go to userinfo (OIDC Core
//! §5.4, an access token is issued); the ID token carries the ones the `claims` request asks for
//! under `id_token`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_jose::SigningAlg;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256, Sha512};
use time::{Duration, OffsetDateTime};

/// How long an ID token is valid.
pub const LIFETIME: Duration = Duration::minutes(5);

/// Claims only the server sets; a `claims` request cannot pull user data into them.
const PROTOCOL_CLAIMS: [&str; 11] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "at_hash",
    "azp",
];

/// What an ID token says.
#[derive(Debug, Clone)]
pub struct IdToken<'a> {
    /// Our issuer.
    pub issuer: &'a str,
    /// The customer.
    pub subject: &'a str,
    /// The client.
    pub client_id: &'a str,
    /// The request's `nonce`.
    pub nonce: Option<&'a str>,
    /// When the customer authenticated.
    pub auth_time: OffsetDateTime,
    /// The authentication context reached.
    pub acr: Option<&'a str>,
    /// The authentication methods.
    pub amr: &'a [String],
    /// The access token issued with it, for `at_hash`.
    pub access_token: Option<&'a str>,
    /// When it is issued.
    pub issued_at: OffsetDateTime,
    /// The `claims` request's `id_token` member.
    pub requested: Option<&'a Map<String, Value>>,
    /// The customer's claims (name, email, …).
    pub user_claims: &'a Map<String, Value>,
}

/// OIDC Core §3.1.3.6: the left half of the hash of the access token, with the hash of the JWS
/// algorithm (SHA-256 for PS256 and ES256, SHA-512 for EdDSA with Ed25519).
#[must_use]
pub fn at_hash(access_token: &str, alg: SigningAlg) -> String {
    let digest: Vec<u8> = match alg {
        SigningAlg::EdDsa => Sha512::digest(access_token.as_bytes()).to_vec(),
        _ => Sha256::digest(access_token.as_bytes()).to_vec(),
    };
    URL_SAFE_NO_PAD.encode(digest.get(..digest.len() / 2).unwrap_or_default())
}

impl IdToken<'_> {
    /// The claims, for a key of `alg`.
    #[must_use]
    pub fn claims(&self, alg: SigningAlg) -> Map<String, Value> {
        let mut claims = Map::new();
        claims.insert("iss".into(), self.issuer.into());
        claims.insert("sub".into(), self.subject.into());
        claims.insert("aud".into(), self.client_id.into());
        claims.insert("azp".into(), self.client_id.into());
        claims.insert("iat".into(), self.issued_at.unix_timestamp().into());
        claims.insert(
            "exp".into(),
            (self.issued_at + LIFETIME).unix_timestamp().into(),
        );
        claims.insert("auth_time".into(), self.auth_time.unix_timestamp().into());
        if let Some(nonce) = self.nonce {
            claims.insert("nonce".into(), nonce.into());
        }
        if let Some(acr) = self.acr {
            claims.insert("acr".into(), acr.into());
        }
        if !self.amr.is_empty() {
            claims.insert("amr".into(), self.amr.to_vec().into());
        }
        if let Some(token) = self.access_token {
            claims.insert("at_hash".into(), at_hash(token, alg).into());
        }
        for name in self.requested.into_iter().flat_map(Map::keys) {
            if PROTOCOL_CLAIMS.contains(&name.as_str()) {
                continue;
            }
            if let Some(value) = self.user_claims.get(name) {
                claims.insert(name.clone(), value.clone());
            }
        }
        claims
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn oidc_core_3_1_3_6_at_hash() {
        // OIDC Core appendix A.4's example token and at_hash (RS256 uses SHA-256 as PS256 does).
        assert_eq!(
            at_hash(
                "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y",
                SigningAlg::Ps256
            ),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
        assert_eq!(at_hash("x", SigningAlg::EdDsa).len(), 43);
    }

    #[test]
    fn only_requested_user_claims_and_never_over_protocol_claims() {
        let user = json!({"email": "a@bank.example", "name": "Alice", "sub": "forged"});
        let requested = json!({"email": {"essential": true}, "sub": null, "phone_number": null});
        let amr = vec!["pwd".to_owned(), "otp".to_owned()];
        let t = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let token = IdToken {
            issuer: "https://as.example",
            subject: "user-1",
            client_id: "tpp-1",
            nonce: Some("n-1"),
            auth_time: t - Duration::seconds(30),
            acr: Some("urn:bank:sca"),
            amr: &amr,
            access_token: Some("at"),
            issued_at: t,
            requested: requested.as_object(),
            user_claims: user.as_object().unwrap(),
        };
        let claims = token.claims(SigningAlg::Es256);
        assert_eq!(claims["sub"], "user-1");
        assert_eq!(claims["email"], "a@bank.example");
        assert!(
            !claims.contains_key("name"),
            "profile claims go to userinfo"
        );
        assert!(!claims.contains_key("phone_number"));
        assert_eq!(claims["exp"], 1_800_000_300);
        assert_eq!(claims["auth_time"], 1_799_999_970);
        assert_eq!(claims["amr"], json!(["pwd", "otp"]));
        assert_eq!(claims["nonce"], "n-1");
    }
}
