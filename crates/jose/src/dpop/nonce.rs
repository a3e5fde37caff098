//! Server-provided DPoP nonces (RFC 9449 §8, §9): a server that requires them bounds how long a
//! proof made in advance (by an attacker with brief access to the key) can be used. Stateless and
//! shared by every replica: a nonce is a time window and an HMAC of it under a key every replica
//! derives from the KEK, so any replica accepts a nonce another one gave out. A nonce is accepted
//! in its own window and the next, so one stays good for between one and two windows.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// The bytes of the HMAC kept in a nonce.
const TAG_LEN: usize = 16;

/// Makes and recognises nonces.
pub struct DpopNonces {
    key: aws_lc_rs::hmac::Key,
    window_secs: i64,
}

impl std::fmt::Debug for DpopNonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopNonces")
            .field("window_secs", &self.window_secs)
            .finish_non_exhaustive()
    }
}

impl DpopNonces {
    /// Nonces under `key` (the authorization server derives it from the KEK) for windows of `window_secs` (at least 1).
    #[must_use]
    pub fn new(key: &Zeroizing<[u8; 32]>, window_secs: u32) -> Self {
        Self {
            key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key.as_ref()),
            window_secs: i64::from(window_secs.max(1)),
        }
    }

    fn window(&self, now: OffsetDateTime) -> i64 {
        now.unix_timestamp().div_euclid(self.window_secs)
    }

    fn nonce_for(&self, window: i64) -> String {
        let window = window.to_be_bytes();
        let tag = aws_lc_rs::hmac::sign(&self.key, &window);
        let mut bytes = Vec::with_capacity(window.len() + TAG_LEN);
        bytes.extend_from_slice(&window);
        bytes.extend_from_slice(tag.as_ref().get(..TAG_LEN).unwrap_or_default());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The nonce to hand out now (in `DPoP-Nonce`).
    #[must_use]
    pub fn current(&self, now: OffsetDateTime) -> String {
        self.nonce_for(self.window(now))
    }

    /// The nonces a proof may carry now: this window's and the previous one's.
    #[must_use]
    pub fn accepted(&self, now: OffsetDateTime) -> [String; 2] {
        let window = self.window(now);
        [self.nonce_for(window), self.nonce_for(window - 1)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(secs).unwrap()
    }

    #[test]
    fn rfc_9449_8_a_nonce_is_good_for_its_window_and_the_next_then_no_longer() {
        let nonces = DpopNonces::new(&Zeroizing::new([7u8; 32]), 60);
        let t0 = at(1_800_000_020);
        let given = nonces.current(t0);
        assert!(nonces.accepted(t0).contains(&given));
        assert!(nonces.accepted(t0 + Duration::seconds(60)).contains(&given));
        assert!(
            !nonces
                .accepted(t0 + Duration::seconds(120))
                .contains(&given)
        );
        // Unpredictable without the key, and the same on every replica with it.
        let other_key = DpopNonces::new(&Zeroizing::new([8u8; 32]), 60);
        assert_ne!(other_key.current(t0), given);
        let replica = DpopNonces::new(&Zeroizing::new([7u8; 32]), 60);
        assert_eq!(replica.current(t0), given);
        assert_eq!(given.len(), 32);
    }
}
