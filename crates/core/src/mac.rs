//! Keyed MACs (HMAC-SHA-256) for values the server hands a browser and must recognise later on
//! any replica without storing them: the account page's per-session CSRF tokens and a login that
//! waits for its second factor. The key is derived from the KEK with a label per use
//! ([`crate::keys::KeyEncryptionKey::derive_key`]), so every replica agrees and uses do not mix.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use zeroize::Zeroizing;

/// Makes and checks tags under one key.
pub struct Mac {
    key: aws_lc_rs::hmac::Key,
}

impl std::fmt::Debug for Mac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mac").finish_non_exhaustive()
    }
}

impl Mac {
    /// Tags under `key` (derive it from the KEK).
    #[must_use]
    pub fn new(key: &Zeroizing<[u8; 32]>) -> Self {
        Self {
            key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key.as_ref()),
        }
    }

    /// The tag of `message`, base64url without padding (43 characters).
    #[must_use]
    pub fn tag(&self, message: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(aws_lc_rs::hmac::sign(&self.key, message).as_ref())
    }

    /// Whether `tag` is the tag of `message`, compared in constant time.
    #[must_use]
    pub fn verify(&self, message: &[u8], tag: &str) -> bool {
        URL_SAFE_NO_PAD
            .decode(tag)
            .is_ok_and(|tag| aws_lc_rs::hmac::verify(&self.key, message, &tag).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_verifies_only_for_its_message_and_key() {
        let mac = Mac::new(&Zeroizing::new([1u8; 32]));
        let other = Mac::new(&Zeroizing::new([2u8; 32]));
        let tag = mac.tag(b"session");
        assert_eq!(tag.len(), 43);
        assert!(mac.verify(b"session", &tag));
        assert!(!mac.verify(b"sessions", &tag));
        assert!(!other.verify(b"session", &tag));
        assert!(!mac.verify(b"session", ""));
        assert!(!mac.verify(b"session", "not base64!"));
        assert!(!mac.verify(b"session", &tag[..42]));
    }
}
