//! Public JWKs and JWK sets as they arrive from clients or leave through `/jwks`, with the checks
//! FAPI 2.0 asks of them: key strength (SP 5.4.1-2/3), no private members in a public key, and
//! selection by `kid` and then `kty`/`alg`/`use`/`crv` (SP 5.4.3).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{JoseError, SigningAlg, jwk_thumbprint_sha256};

/// Members that only a private key has; a public JWK carrying any of them is refused.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The smallest RSA modulus FAPI2 SP 5.4.1-2 allows.
pub(crate) const MIN_RSA_BITS: usize = 2048;

/// A public JWK whose shape has been checked: a known `kty`, no private members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Map<String, Value>", into = "Map<String, Value>")]
pub struct PublicJwk(Map<String, Value>);

impl PublicJwk {
    /// Checks a JSON object as a public JWK.
    ///
    /// # Errors
    /// [`JoseError::InvalidKey`] for an unknown `kty`, missing members or private members.
    pub fn parse(members: Map<String, Value>) -> Result<Self, JoseError> {
        if let Some(name) = PRIVATE_MEMBERS.iter().find(|m| members.contains_key(**m)) {
            return Err(JoseError::InvalidKey(format!(
                "public key contains the private member {name:?}"
            )));
        }
        // Computing the thumbprint checks kty and the required members in one place.
        jwk_thumbprint_sha256(&members)?;
        Ok(Self(members))
    }

    /// The JSON members.
    #[must_use]
    pub fn members(&self) -> &Map<String, Value> {
        &self.0
    }

    /// A member that is a string.
    #[must_use]
    pub fn str_member(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(Value::as_str)
    }

    /// `kid`, if present.
    #[must_use]
    pub fn kid(&self) -> Option<&str> {
        self.str_member("kid")
    }

    /// The RFC 7638 thumbprint.
    ///
    /// # Errors
    /// Never for a parsed key; kept fallible because the computation is shared with raw maps.
    pub fn thumbprint(&self) -> Result<String, JoseError> {
        jwk_thumbprint_sha256(&self.0)
    }

    /// Whether this key could verify `alg`: matching `kty` and `crv`, and `alg`/`use` compatible
    /// when present (SP 5.4.3).
    #[must_use]
    pub fn suits(&self, alg: SigningAlg) -> bool {
        self.str_member("kty") == Some(alg.kty())
            && alg
                .crv()
                .is_none_or(|crv| self.str_member("crv") == Some(crv))
            && self.str_member("alg").is_none_or(|a| a == alg.as_str())
            && self.str_member("use").is_none_or(|u| u == "sig")
    }

    /// Checks that the key is strong enough for `alg` (SP 5.4.1-2/3): RSA moduli of at least
    /// 2048 bits; EC and OKP keys on the curve the algorithm names.
    ///
    /// # Errors
    /// [`JoseError::WeakKey`] with the reason.
    pub fn check_strength(&self, alg: SigningAlg) -> Result<(), JoseError> {
        if !self.suits(alg) {
            return Err(JoseError::WeakKey(format!(
                "key of type {:?} cannot be used with {alg}",
                self.str_member("kty").unwrap_or_default()
            )));
        }
        if alg == SigningAlg::Ps256 {
            let bits = self
                .str_member("n")
                .and_then(|n| URL_SAFE_NO_PAD.decode(n).ok())
                .map(|n| modulus_bits(&n))
                .ok_or_else(|| JoseError::InvalidKey("RSA modulus is not base64url".into()))?;
            if bits < MIN_RSA_BITS {
                return Err(JoseError::WeakKey(format!(
                    "RSA key of {bits} bits; at least {MIN_RSA_BITS} are required (FAPI2 SP 5.4.1-2)"
                )));
            }
        }
        Ok(())
    }
}

impl TryFrom<Map<String, Value>> for PublicJwk {
    type Error = JoseError;
    fn try_from(members: Map<String, Value>) -> Result<Self, Self::Error> {
        Self::parse(members)
    }
}

impl From<PublicJwk> for Map<String, Value> {
    fn from(jwk: PublicJwk) -> Self {
        jwk.0
    }
}

/// The number of significant bits of a big-endian unsigned integer.
pub(crate) fn modulus_bits(be: &[u8]) -> usize {
    let mut rest = be.iter().skip_while(|b| **b == 0);
    match rest.next() {
        None => 0,
        Some(first) => (8 - first.leading_zeros() as usize) + 8 * rest.count(),
    }
}

/// A JWK set (RFC 7517 §5).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys, in publication order.
    pub keys: Vec<PublicJwk>,
}

impl Jwks {
    /// The keys that may have signed a JWS with this `kid` and `alg`, per SP 5.4.3: keys with the
    /// `kid` when one is given, then those whose `kty`/`alg`/`use`/`crv` suit the algorithm.
    #[must_use]
    pub fn candidates(&self, kid: Option<&str>, alg: SigningAlg) -> Vec<&PublicJwk> {
        self.keys
            .iter()
            .filter(|k| kid.is_none_or(|kid| k.kid() == Some(kid)))
            .filter(|k| k.suits(alg))
            .collect()
    }

    /// Whether any `kid` appears twice (SP 5.4.2 forbids that for our own set).
    #[must_use]
    pub fn has_duplicate_kids(&self) -> bool {
        let mut seen = std::collections::HashSet::new();
        self.keys
            .iter()
            .filter_map(PublicJwk::kid)
            .any(|kid| !seen.insert(kid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwk(json: &str) -> Result<PublicJwk, JoseError> {
        PublicJwk::parse(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn refuses_private_members_in_a_public_key() {
        let err = jwk(r#"{"kty":"OKP","crv":"Ed25519","x":"AA","d":"AA"}"#).unwrap_err();
        assert!(matches!(err, JoseError::InvalidKey(m) if m.contains("\"d\"")));
    }

    #[test]
    fn sp_5_4_1_2_refuses_rsa_keys_under_2048_bits() {
        let n_1024 = URL_SAFE_NO_PAD.encode([0xffu8; 128]);
        let key = jwk(&format!(r#"{{"kty":"RSA","e":"AQAB","n":"{n_1024}"}}"#)).unwrap();
        assert!(matches!(
            key.check_strength(SigningAlg::Ps256),
            Err(JoseError::WeakKey(_))
        ));
        let n_2048 = URL_SAFE_NO_PAD.encode([0x80u8; 256]);
        let key = jwk(&format!(r#"{{"kty":"RSA","e":"AQAB","n":"{n_2048}"}}"#)).unwrap();
        assert_eq!(key.check_strength(SigningAlg::Ps256), Ok(()));
    }

    #[test]
    fn sp_5_4_3_selects_by_kid_then_type_and_curve() {
        let set: Jwks = serde_json::from_str(
            r#"{"keys":[
              {"kid":"a","kty":"EC","crv":"P-384","x":"AA","y":"AA"},
              {"kid":"a","kty":"EC","crv":"P-256","x":"AQ","y":"AQ","use":"sig"},
              {"kid":"a","kty":"EC","crv":"P-256","x":"Ag","y":"Ag","use":"enc"},
              {"kid":"b","kty":"OKP","crv":"Ed25519","x":"AA"}]}"#,
        )
        .unwrap();
        let found = set.candidates(Some("a"), SigningAlg::Es256);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].str_member("x"), Some("AQ"));
        assert!(set.candidates(Some("b"), SigningAlg::Es256).is_empty());
        assert_eq!(set.candidates(None, SigningAlg::EdDsa).len(), 1);
        assert!(set.has_duplicate_kids());
    }

    #[test]
    fn modulus_bits_counts_from_the_first_set_bit() {
        assert_eq!(modulus_bits(&[0, 0x01, 0xff]), 9);
        assert_eq!(modulus_bits(&[0x80, 0]), 16);
        assert_eq!(modulus_bits(&[]), 0);
    }
}
