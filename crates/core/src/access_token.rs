//! JWT access tokens per RFC 9068: header `typ: at+jwt`, claims `iss`, `exp`, `aud`, `sub`,
//! `client_id`, `iat`, `jti`, and `scope`, `cnf` (RFC 8705 §3.1 `x5t#S256` or RFC 9449 §6.1
//! `jkt`), `authorization_details` when present. FAPI clients only ever get bound tokens, so a
//! token without a binding cannot be built here (SP 5.3.2.1-4).

use portcullis_jose::{JoseError, SigningKey};
use serde_json::{Map, Value, json};
use time::{Duration, OffsetDateTime};

use crate::client::ClientId;
use crate::{Rng, RngError};

/// The JOSE `typ` of an RFC 9068 token (§2.1).
pub const TYP: &str = "at+jwt";

/// What the token is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmation {
    /// RFC 8705 §3.1: the client certificate's SHA-256 thumbprint.
    Certificate {
        /// `x5t#S256`.
        x5t_s256: String,
    },
    /// RFC 9449 §6.1: the DPoP key's RFC 7638 thumbprint.
    DpopKey {
        /// `jkt`.
        jkt: String,
    },
}

impl Confirmation {
    /// The `cnf` claim.
    #[must_use]
    pub fn to_claim(&self) -> Value {
        match self {
            Confirmation::Certificate { x5t_s256 } => json!({ "x5t#S256": x5t_s256 }),
            Confirmation::DpopKey { jkt } => json!({ "jkt": jkt }),
        }
    }

    /// The `token_type` of the token response: `DPoP` for DPoP-bound tokens (RFC 9449 §5),
    /// `Bearer` for certificate-bound ones (RFC 8705 §3).
    #[must_use]
    pub fn token_type(&self) -> &'static str {
        match self {
            Confirmation::Certificate { .. } => "Bearer",
            Confirmation::DpopKey { .. } => "DPoP",
        }
    }
}

/// What an access token says.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessToken {
    /// The issuer identifier.
    pub issuer: String,
    /// The resource server(s) it is for (RFC 8707); at least one.
    pub audience: Vec<String>,
    /// The resource owner, or the client itself for `client_credentials` (RFC 9068 §2.2).
    pub subject: String,
    /// The client it was issued to.
    pub client_id: ClientId,
    /// Granted scopes, space-separated.
    pub scope: Option<String>,
    /// RFC 9396 authorization details.
    pub authorization_details: Option<Value>,
    /// The sender constraint.
    pub confirmation: Confirmation,
    /// Issued at.
    pub issued_at: OffsetDateTime,
    /// Lifetime.
    pub lifetime: Duration,
    /// The grant (consent) it belongs to, for revocation by grant.
    pub grant_id: Option<String>,
    /// How the customer authenticated, for tokens issued under a consent: `auth_time` and
    /// `acr` (RFC 9068 §2.2.1), which resource servers check for step-up.
    pub authentication: Option<Authentication>,
}

/// The customer's authentication behind a token (RFC 9068 §2.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authentication {
    /// When the customer authenticated (seconds since the epoch).
    pub auth_time: i64,
    /// The authentication context class reached.
    pub acr: Option<String>,
}

/// A minted token and its identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintedToken {
    /// The compact JWS. A bearer credential: never log it.
    pub jwt: String,
    /// Its `jti`, the key of the revocation deny list.
    pub jti: String,
    /// When it expires.
    pub expires_at: OffsetDateTime,
}

/// Why a token could not be minted.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// No random `jti` could be drawn.
    #[error(transparent)]
    Rng(#[from] RngError),
    /// Signing failed.
    #[error(transparent)]
    Jose(#[from] JoseError),
    /// The token would have no audience.
    #[error("an access token needs at least one audience")]
    NoAudience,
}

impl AccessToken {
    /// The claims (RFC 9068 §2.2), with a fresh 128-bit `jti`.
    ///
    /// # Errors
    /// [`MintError`] if no `jti` can be drawn or there is no audience.
    pub fn claims(&self, rng: &dyn Rng) -> Result<(Map<String, Value>, String), MintError> {
        let aud = match self.audience.as_slice() {
            [] => return Err(MintError::NoAudience),
            [one] => Value::String(one.clone()),
            many => json!(many),
        };
        let jti = rng.token(16)?;
        let iat = self.issued_at.unix_timestamp();
        let mut claims = Map::new();
        claims.insert("iss".into(), self.issuer.clone().into());
        claims.insert("aud".into(), aud);
        claims.insert("sub".into(), self.subject.clone().into());
        claims.insert("client_id".into(), self.client_id.as_str().into());
        claims.insert("iat".into(), iat.into());
        claims.insert("nbf".into(), iat.into());
        claims.insert(
            "exp".into(),
            (self.issued_at + self.lifetime).unix_timestamp().into(),
        );
        claims.insert("jti".into(), jti.clone().into());
        claims.insert("cnf".into(), self.confirmation.to_claim());
        if let Some(scope) = &self.scope {
            claims.insert("scope".into(), scope.clone().into());
        }
        if let Some(details) = &self.authorization_details {
            claims.insert("authorization_details".into(), details.clone());
        }
        if let Some(grant_id) = &self.grant_id {
            claims.insert("grant_id".into(), grant_id.clone().into());
        }
        if let Some(authentication) = &self.authentication {
            claims.insert("auth_time".into(), authentication.auth_time.into());
            if let Some(acr) = &authentication.acr {
                claims.insert("acr".into(), acr.clone().into());
            }
        }
        Ok((claims, jti))
    }

    /// Signs the token with `key`.
    ///
    /// # Errors
    /// [`MintError`] if the claims cannot be made or signing fails.
    pub fn mint(&self, key: &SigningKey, rng: &dyn Rng) -> Result<MintedToken, MintError> {
        let (claims, jti) = self.claims(rng)?;
        let jwt = key.sign_jwt(TYP, &claims)?;
        Ok(MintedToken {
            jwt,
            jti,
            expires_at: self.issued_at + self.lifetime,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SeededRng;
    use portcullis_jose::{Jwks, SigningAlg, decode_unverified_header, verify_jwt};

    fn token(confirmation: Confirmation) -> AccessToken {
        AccessToken {
            issuer: "https://as.example".into(),
            audience: vec!["https://api.bank.example".into()],
            subject: "tpp-1".into(),
            client_id: ClientId::parse("tpp-1").unwrap(),
            scope: Some("accounts payments".into()),
            authorization_details: None,
            confirmation,
            issued_at: OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
            lifetime: Duration::minutes(5),
            grant_id: None,
            authentication: None,
        }
    }

    #[test]
    fn rfc_9068_header_and_claims_with_a_binding() {
        let key = SigningKey::generate(SigningAlg::Es256, 2048).unwrap();
        let rng = SeededRng::new(8);
        let minted = token(Confirmation::DpopKey {
            jkt: "thumb".into(),
        })
        .mint(&key, &rng)
        .unwrap();
        let header = decode_unverified_header(&minted.jwt).unwrap();
        assert_eq!(header["typ"], TYP);
        assert_eq!(header["kid"], key.kid());
        let jwks = Jwks {
            keys: vec![key.public_jwk().unwrap()],
        };
        let claims = verify_jwt(&minted.jwt, &jwks, &SigningAlg::ALL)
            .unwrap()
            .claims;
        for name in ["iss", "exp", "aud", "sub", "client_id", "iat", "jti"] {
            assert!(claims.contains_key(name), "RFC 9068 §2.2 requires {name}");
        }
        assert_eq!(claims["aud"], "https://api.bank.example");
        assert_eq!(claims["cnf"], json!({"jkt": "thumb"}));
        assert_eq!(claims["exp"], 1_800_000_300);
        assert_eq!(claims["jti"], minted.jti.as_str());
        // SP 5.4.1-4: at least 128 bits of entropy in the jti.
        assert_eq!(minted.jti.len(), 22);
    }

    #[test]
    fn certificate_binding_and_token_types() {
        let c = Confirmation::Certificate {
            x5t_s256: "x5t".into(),
        };
        assert_eq!(c.to_claim(), json!({"x5t#S256": "x5t"}));
        assert_eq!(c.token_type(), "Bearer");
        assert_eq!(
            Confirmation::DpopKey { jkt: "k".into() }.token_type(),
            "DPoP"
        );
        let mut t = token(c);
        t.audience = vec!["a".into(), "b".into()];
        assert_eq!(
            t.claims(&SeededRng::new(1)).unwrap().0["aud"],
            json!(["a", "b"])
        );
        t.audience.clear();
        assert!(matches!(
            t.claims(&SeededRng::new(1)),
            Err(MintError::NoAudience)
        ));
    }
}
