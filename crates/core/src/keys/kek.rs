//! The key-encryption key (KEK): AES-256-GCM over the private parts of our signing keys, so a copy
//! of the database alone does not yield them. A ciphertext starts with a version byte and the
//! first eight bytes of SHA-256 of the KEK, so opening with the wrong KEK says so plainly.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::Rng;

const VERSION: u8 = 1;
const KEK_ID_LEN: usize = 8;
const KEK_LEN: usize = 32;

/// Why a KEK could not be loaded or a ciphertext opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KekError {
    /// The KEK material is not 32 bytes of base64.
    #[error("a key-encryption key is 32 bytes, base64-encoded")]
    BadKek,
    /// The ciphertext was made under a different KEK.
    #[error("the stored key was encrypted under a different key-encryption key")]
    WrongKek,
    /// The ciphertext is malformed or fails authentication.
    #[error("the stored key is corrupt or was tampered with")]
    Corrupt,
    /// The decrypted key does not belong to the row it came from.
    #[error("the stored key does not match its key id")]
    Mismatch,
    /// The random source failed.
    #[error("the random number generator failed")]
    Rng,
}

/// An AES-256-GCM key-encryption key.
pub struct KeyEncryptionKey {
    bytes: Zeroizing<[u8; KEK_LEN]>,
    id: [u8; KEK_ID_LEN],
}

impl fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyEncryptionKey")
            .field("id", &hex::encode(self.id))
            .finish_non_exhaustive()
    }
}

impl KeyEncryptionKey {
    /// A fresh random KEK.
    ///
    /// # Errors
    /// [`KekError::Rng`] if the random source fails.
    pub fn generate(rng: &dyn Rng) -> Result<Self, KekError> {
        let mut bytes = Zeroizing::new([0u8; KEK_LEN]);
        rng.fill(bytes.as_mut()).map_err(|_| KekError::Rng)?;
        Ok(Self::from_bytes(bytes))
    }

    /// Parses a base64 KEK, as stored in the KEK file or given in configuration.
    ///
    /// # Errors
    /// [`KekError::BadKek`] unless the text is base64 of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, KekError> {
        let mut decoded = STANDARD.decode(text.trim()).map_err(|_| KekError::BadKek)?;
        let result = <[u8; KEK_LEN]>::try_from(decoded.as_slice()).map_err(|_| KekError::BadKek);
        decoded.zeroize();
        Ok(Self::from_bytes(Zeroizing::new(result?)))
    }

    fn from_bytes(bytes: Zeroizing<[u8; KEK_LEN]>) -> Self {
        let digest = Sha256::digest(bytes.as_ref());
        let mut id = [0u8; KEK_ID_LEN];
        for (d, s) in id.iter_mut().zip(digest.iter()) {
            *d = *s;
        }
        Self { bytes, id }
    }

    /// The KEK as base64, for writing the development KEK file. Zeroed when dropped.
    #[must_use]
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.bytes.as_ref()))
    }

    /// A short public identifier of this KEK (hex of the first 8 bytes of its SHA-256).
    #[must_use]
    pub fn id(&self) -> String {
        hex::encode(self.id)
    }

    /// A key for another purpose, derived from this KEK (HMAC-SHA256 of the label, HKDF-Expand
    /// style): every replica with the same KEK derives the same key, and it reveals nothing of
    /// the KEK. Used for keys that must be shared across replicas but never stored, such as the
    /// DPoP nonce key.
    #[must_use]
    pub fn derive_key(&self, label: &str) -> Zeroizing<[u8; 32]> {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, self.bytes.as_ref());
        let tag = aws_lc_rs::hmac::sign(&key, format!("portcullis/derive/{label}").as_bytes());
        let mut derived = Zeroizing::new([0u8; 32]);
        derived.copy_from_slice(tag.as_ref());
        derived
    }

    fn aead(&self) -> Result<LessSafeKey, KekError> {
        UnboundKey::new(&AES_256_GCM, self.bytes.as_ref())
            .map(LessSafeKey::new)
            .map_err(|_| KekError::BadKek)
    }

    /// Encrypts `plaintext`, binding it to `aad`.
    ///
    /// # Errors
    /// [`KekError::Rng`] if no nonce can be drawn.
    pub fn encrypt(
        &self,
        rng: &dyn Rng,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, KekError> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce).map_err(|_| KekError::Rng)?;
        let mut in_out = plaintext.to_vec();
        self.aead()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut in_out,
            )
            .map_err(|_| KekError::Corrupt)?;
        let mut out = Vec::with_capacity(1 + KEK_ID_LEN + NONCE_LEN + in_out.len());
        out.push(VERSION);
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&in_out);
        in_out.zeroize();
        Ok(out)
    }

    /// Opens a ciphertext made by [`KeyEncryptionKey::encrypt`] with the same `aad`.
    ///
    /// # Errors
    /// [`KekError::WrongKek`] for another KEK's ciphertext, [`KekError::Corrupt`] if it fails
    /// authentication, which includes a different `aad`.
    pub fn decrypt(&self, ciphertext: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, KekError> {
        let (&version, rest) = ciphertext.split_first().ok_or(KekError::Corrupt)?;
        if version != VERSION {
            return Err(KekError::Corrupt);
        }
        let (id, rest) = rest.split_at_checked(KEK_ID_LEN).ok_or(KekError::Corrupt)?;
        if id != self.id {
            return Err(KekError::WrongKek);
        }
        let (nonce, sealed) = rest.split_at_checked(NONCE_LEN).ok_or(KekError::Corrupt)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KekError::Corrupt)?;
        let mut in_out = Zeroizing::new(sealed.to_vec());
        let plain_len = self
            .aead()?
            .open_in_place(nonce, Aad::from(aad), in_out.as_mut())
            .map_err(|_| KekError::Corrupt)?
            .len();
        in_out.truncate(plain_len);
        Ok(in_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SeededRng;

    #[test]
    fn round_trips_and_authenticates_the_associated_data() {
        let rng = SeededRng::new(3);
        let kek = KeyEncryptionKey::generate(&rng).unwrap();
        let sealed = kek.encrypt(&rng, b"private jwk", b"kid-1").unwrap();
        assert_eq!(
            kek.decrypt(&sealed, b"kid-1").unwrap().as_slice(),
            b"private jwk"
        );
        assert_eq!(kek.decrypt(&sealed, b"kid-2"), Err(KekError::Corrupt));

        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(kek.decrypt(&flipped, b"kid-1"), Err(KekError::Corrupt));
        assert_eq!(kek.decrypt(&sealed[..10], b"kid-1"), Err(KekError::Corrupt));
        assert_eq!(kek.decrypt(&[], b"kid-1"), Err(KekError::Corrupt));
    }

    #[test]
    fn base64_form_round_trips_and_rejects_wrong_lengths() {
        let kek = KeyEncryptionKey::generate(&SeededRng::new(4)).unwrap();
        let again = KeyEncryptionKey::from_base64(&kek.to_base64()).unwrap();
        assert_eq!(again.id(), kek.id());
        assert_eq!(
            KeyEncryptionKey::from_base64("c2hvcnQ=").unwrap_err(),
            KekError::BadKek
        );
        assert_eq!(
            KeyEncryptionKey::from_base64("not base64!").unwrap_err(),
            KekError::BadKek
        );
        assert!(!format!("{kek:?}").contains(kek.to_base64().as_str()));
    }
}
