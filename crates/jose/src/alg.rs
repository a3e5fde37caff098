//! The signing algorithms Portcullis accepts and produces. FAPI2 SP 5.4.1 allows PS256, ES256 and
//! EdDSA (Ed25519) only; `none`, RS256 and every HMAC algorithm are refused by `parse`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::JoseError;

/// A JWS algorithm that FAPI 2.0 allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SigningAlg {
    /// RSASSA-PSS with SHA-256, RSA keys of at least 2048 bits.
    Ps256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// EdDSA on Ed25519.
    EdDsa,
}

impl SigningAlg {
    /// Every allowed algorithm, in the order metadata lists them.
    pub const ALL: [SigningAlg; 3] = [SigningAlg::Ps256, SigningAlg::Es256, SigningAlg::EdDsa];

    /// The JOSE name (`alg` header value).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            SigningAlg::Ps256 => "PS256",
            SigningAlg::Es256 => "ES256",
            SigningAlg::EdDsa => "EdDSA",
        }
    }

    /// The JWK `kty` a key for this algorithm has.
    #[must_use]
    pub const fn kty(self) -> &'static str {
        match self {
            SigningAlg::Ps256 => "RSA",
            SigningAlg::Es256 => "EC",
            SigningAlg::EdDsa => "OKP",
        }
    }

    /// The JWK `crv` a key for this algorithm must have, if the key type has curves.
    #[must_use]
    pub const fn crv(self) -> Option<&'static str> {
        match self {
            SigningAlg::Ps256 => None,
            SigningAlg::Es256 => Some("P-256"),
            SigningAlg::EdDsa => Some("Ed25519"),
        }
    }

    /// Parses a JOSE algorithm name, refusing everything FAPI 2.0 does not allow.
    ///
    /// # Errors
    /// [`JoseError::UnsupportedAlgorithm`] for any other name, including `none`, `RS256` and `HS256`.
    pub fn parse(name: &str) -> Result<Self, JoseError> {
        match name {
            "PS256" => Ok(SigningAlg::Ps256),
            "ES256" => Ok(SigningAlg::Es256),
            "EdDSA" => Ok(SigningAlg::EdDsa),
            other => Err(JoseError::UnsupportedAlgorithm(other.to_owned())),
        }
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SigningAlg {
    type Err = JoseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for SigningAlg {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SigningAlg {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Self::parse(&name).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sp_5_4_1_refuses_none_rs256_and_hmac() {
        for name in ["none", "RS256", "HS256", "HS512", "ES384", "ps256", ""] {
            assert_eq!(
                SigningAlg::parse(name),
                Err(JoseError::UnsupportedAlgorithm(name.to_owned())),
                "{name} must be refused"
            );
        }
    }

    #[test]
    fn parses_the_three_allowed_algorithms_and_round_trips_through_serde() {
        for alg in SigningAlg::ALL {
            assert_eq!(SigningAlg::parse(alg.as_str()), Ok(alg));
            let json = serde_json::to_string(&alg).unwrap();
            assert_eq!(serde_json::from_str::<SigningAlg>(&json).unwrap(), alg);
        }
        assert!(serde_json::from_str::<SigningAlg>("\"RS256\"").is_err());
    }
}
