//! The server's signing keys: how they are stored (encrypted under a key-encryption key, see
//! [`kek`]) and how their lifecycle next → active → retired follows from their timestamps (see
//! [`lifecycle`]). State is derived from `activates_at` rather than stored, so every replica that
//! reads the same rows at the same time draws the same conclusion without coordination.

pub mod kek;
pub mod lifecycle;

use std::fmt;

use portcullis_jose::{PublicJwk, SigningAlg, SigningKey};
use time::OffsetDateTime;

pub use kek::{KekError, KeyEncryptionKey};
pub use lifecycle::{KeyState, RetentionPolicy, classify};

/// A signing key as the store holds it.
#[derive(Clone, PartialEq)]
pub struct StoredSigningKey {
    /// The RFC 7638 thumbprint of the public key.
    pub kid: String,
    /// The algorithm it signs with.
    pub alg: SigningAlg,
    /// The public JWK, as published.
    pub public_jwk: PublicJwk,
    /// The private JWK, encrypted by [`KeyEncryptionKey::encrypt`] with the `kid` as associated data.
    pub encrypted_private_jwk: Vec<u8>,
    /// When it was created, and so first published.
    pub created_at: OffsetDateTime,
    /// When it starts to sign. At least the JWKS cache lifetime after `created_at`, except for the
    /// very first keys of an installation, which nobody can have cached the absence of.
    pub activates_at: OffsetDateTime,
}

impl fmt::Debug for StoredSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredSigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("created_at", &self.created_at)
            .field("activates_at", &self.activates_at)
            .finish_non_exhaustive()
    }
}

/// Why a key could not be made or opened.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Generation or parsing failed in the JOSE layer.
    #[error(transparent)]
    Jose(#[from] portcullis_jose::JoseError),
    /// Encryption or decryption failed.
    #[error(transparent)]
    Kek(#[from] KekError),
}

impl StoredSigningKey {
    /// Generates a new key for `alg` and encrypts its private part under `kek`.
    ///
    /// # Errors
    /// [`KeyError`] if generation or encryption fails.
    pub fn generate(
        alg: SigningAlg,
        rsa_bits: u32,
        kek: &KeyEncryptionKey,
        rng: &dyn crate::Rng,
        created_at: OffsetDateTime,
        activates_at: OffsetDateTime,
    ) -> Result<(Self, SigningKey), KeyError> {
        let key = SigningKey::generate(alg, rsa_bits)?;
        let private = key.private_jwk_json()?;
        let encrypted_private_jwk = kek.encrypt(rng, &private, key.kid().as_bytes())?;
        let stored = Self {
            kid: key.kid().to_owned(),
            alg,
            public_jwk: key.public_jwk()?,
            encrypted_private_jwk,
            created_at,
            activates_at,
        };
        Ok((stored, key))
    }

    /// Decrypts the private key. The `kid` is authenticated data, so a ciphertext moved to another
    /// row does not open.
    ///
    /// # Errors
    /// [`KeyError`] if the ciphertext does not open under `kek` or the key inside is unusable.
    pub fn open(&self, kek: &KeyEncryptionKey) -> Result<SigningKey, KeyError> {
        let private = kek.decrypt(&self.encrypted_private_jwk, self.kid.as_bytes())?;
        let key = SigningKey::from_private_jwk_json(self.alg, &private)?;
        if key.kid() != self.kid {
            return Err(KeyError::Kek(KekError::Mismatch));
        }
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SeededRng;

    #[test]
    fn generated_keys_open_with_their_kek_and_not_with_another_or_another_kid() {
        let rng = SeededRng::new(1);
        let kek = KeyEncryptionKey::generate(&rng).unwrap();
        let now = OffsetDateTime::UNIX_EPOCH;
        let (stored, key) =
            StoredSigningKey::generate(SigningAlg::Es256, 2048, &kek, &rng, now, now).unwrap();
        assert_eq!(stored.open(&kek).unwrap().kid(), key.kid());

        let other = KeyEncryptionKey::generate(&rng).unwrap();
        assert!(matches!(
            stored.open(&other),
            Err(KeyError::Kek(KekError::WrongKek))
        ));

        let mut moved = stored.clone();
        moved.kid = "someone-else".into();
        assert!(matches!(
            moved.open(&kek),
            Err(KeyError::Kek(KekError::Corrupt))
        ));
        assert!(!format!("{stored:?}").contains("encrypted"));
    }
}
