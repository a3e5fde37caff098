//! Client secrets, for `oauth`-profile clients only (FAPI2 SP 5.3.2.1-6 forbids them for FAPI).
//! The server makes them: 256 random bits, shown once. Only their SHA-256 is stored: the secret
//! has full entropy, so a fast hash is as good as a slow one and keeps the token endpoint fast
//! (DESIGN.md, Secrets). Comparison is constant-time.

use std::fmt;

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use crate::{Rng, RngError};

/// A newly made client secret. Never printed.
pub struct ClientSecret(Zeroizing<String>);

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret([redacted])")
    }
}

impl ClientSecret {
    /// 32 random bytes, base64url.
    ///
    /// # Errors
    /// [`RngError`] if the random source fails.
    pub fn generate(rng: &dyn Rng) -> Result<Self, RngError> {
        Ok(Self(Zeroizing::new(rng.token(32)?)))
    }

    /// The secret, to show the operator once.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its stored form.
    #[must_use]
    pub fn hash(&self) -> SecretHash {
        SecretHash::of(&self.0)
    }
}

/// The SHA-256 of a client secret or another server-made full-entropy token.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash([u8; 32]);

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash([redacted])")
    }
}

impl SecretHash {
    /// The hash of a full-entropy secret or token (a client secret, a registration access token).
    #[must_use]
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// Reads a stored hash.
    #[must_use]
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }

    /// The bytes to store.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Whether `presented` is the secret, compared in constant time.
    #[must_use]
    pub fn matches(&self, presented: &str) -> bool {
        SecretHash::of(presented).0.ct_eq(&self.0).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SystemRng;

    #[test]
    fn secrets_are_256_bit_shown_once_and_checked_by_hash() {
        let secret = ClientSecret::generate(&SystemRng::new()).unwrap();
        assert_eq!(secret.expose().len(), 43);
        let stored = secret.hash();
        assert!(stored.matches(secret.expose()));
        assert!(!stored.matches(&format!("{}x", secret.expose())));
        assert!(!stored.matches(""));
        assert_eq!(
            SecretHash::from_bytes(stored.as_bytes()),
            Some(stored.clone())
        );
        assert_eq!(SecretHash::from_bytes(&[0u8; 31]), None);
        assert!(!format!("{secret:?}{stored:?}").contains(secret.expose()));
    }
}
