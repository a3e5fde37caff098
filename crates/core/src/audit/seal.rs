//! Seals of chain heads. At intervals (and at shutdown) each replica writes a seal of its chain's
//! head: the chain, the head's `chain_seq` and hash, when, and the MAC of the chain's previous
//! seal, all under an HMAC-SHA-256 whose key is derived from the key-encryption key
//! ([`SEAL_KEY_LABEL`]), which is never in the database. The seals of a chain are chained in turn
//! through `prev_mac`. So someone who can write to the database but does not hold the KEK can
//! rewrite rows and recompute their hashes, but cannot make a seal that agrees with the result:
//! every sealed event is fixed. Events after the last seal are not, until the next one.
//!
//! The MAC covers, after the domain `"portcullis/audit-seal/v1"`, length-prefixed as in
//! [`super::chain`]: the chain id (16 bytes), `chain_seq` (i64 BE), the head hash, `sealed_at`
//! (i64 BE microseconds since the Unix epoch) and `prev_mac` (32 zero bytes for a chain's first
//! seal).

use time::OffsetDateTime;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::chain::{self, ChainHead, Digest, GENESIS};
use crate::keys::KeyEncryptionKey;

/// The label the seal key is derived from the KEK with.
pub const SEAL_KEY_LABEL: &str = "audit-seal";

const DOMAIN: &[u8] = b"portcullis/audit-seal/v1";

/// A seal of a chain's head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seal {
    /// The chain.
    pub chain_id: Uuid,
    /// The head's position when sealed.
    pub chain_seq: i64,
    /// The head's hash when sealed.
    pub head_hash: Digest,
    /// When (whole microseconds).
    pub sealed_at: OffsetDateTime,
    /// The MAC of the chain's previous seal; [`GENESIS`] for its first.
    pub prev_mac: Digest,
    /// HMAC-SHA-256 of all the above under the seal key.
    pub mac: Digest,
}

/// Makes and checks seals. The key is derived from the KEK, so every replica and
/// `portcullis audit verify` agree on it without storing it.
pub struct SealKey {
    key: aws_lc_rs::hmac::Key,
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealKey").finish_non_exhaustive()
    }
}

impl SealKey {
    /// Seals under `key`.
    #[must_use]
    pub fn new(key: &Zeroizing<[u8; 32]>) -> Self {
        Self {
            key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key.as_ref()),
        }
    }

    /// The seal key of a deployment: derived from its KEK with [`SEAL_KEY_LABEL`].
    #[must_use]
    pub fn from_kek(kek: &KeyEncryptionKey) -> Self {
        Self::new(&kek.derive_key(SEAL_KEY_LABEL))
    }

    /// A seal of `head` at `sealed_at`, following on from `previous`, the chain's last seal.
    #[must_use]
    pub fn seal(
        &self,
        head: &ChainHead,
        sealed_at: OffsetDateTime,
        previous: Option<&Seal>,
    ) -> Seal {
        let sealed_at = sealed_at
            .replace_nanosecond(sealed_at.nanosecond() / 1_000 * 1_000)
            .unwrap_or(sealed_at);
        let prev_mac = previous.map_or(GENESIS, |p| p.mac);
        let message = message(
            head.chain_id,
            head.chain_seq,
            &head.hash,
            sealed_at,
            &prev_mac,
        );
        let mut mac = [0u8; 32];
        let tag = aws_lc_rs::hmac::sign(&self.key, &message);
        mac.copy_from_slice(tag.as_ref());
        Seal {
            chain_id: head.chain_id,
            chain_seq: head.chain_seq,
            head_hash: head.hash,
            sealed_at,
            prev_mac,
            mac,
        }
    }

    /// Whether `seal`'s MAC is right, compared in constant time.
    #[must_use]
    pub fn verify(&self, seal: &Seal) -> bool {
        let message = message(
            seal.chain_id,
            seal.chain_seq,
            &seal.head_hash,
            seal.sealed_at,
            &seal.prev_mac,
        );
        aws_lc_rs::hmac::verify(&self.key, &message, &seal.mac).is_ok()
    }
}

fn message(
    chain_id: Uuid,
    chain_seq: i64,
    head_hash: &Digest,
    sealed_at: OffsetDateTime,
    prev_mac: &Digest,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(DOMAIN.len() + 5 * 8 + 16 + 8 + 32 + 8 + 32);
    out.extend_from_slice(DOMAIN);
    for part in [
        chain_id.as_bytes().as_slice(),
        &chain_seq.to_be_bytes(),
        head_hash,
        &chain::micros(sealed_at).to_be_bytes(),
        prev_mac,
    ] {
        let len = u64::try_from(part.len()).unwrap_or(u64::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SealKey {
        SealKey::new(&Zeroizing::new([byte; 32]))
    }

    #[test]
    fn a_seal_verifies_only_unchanged_and_under_its_key() {
        let head = ChainHead {
            chain_id: Uuid::from_u128(3),
            chain_seq: 9,
            hash: [7; 32],
        };
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_800_000_000_000_001_999).unwrap();
        let first = key(1).seal(&head, at, None);
        assert_eq!(first.prev_mac, GENESIS);
        assert_eq!(first.sealed_at.nanosecond(), 1_000);
        assert!(key(1).verify(&first));
        assert!(!key(2).verify(&first));
        let second = key(1).seal(
            &ChainHead {
                chain_seq: 10,
                hash: [8; 32],
                ..head
            },
            at,
            Some(&first),
        );
        assert_eq!(second.prev_mac, first.mac);
        assert!(key(1).verify(&second));
        let tampered = [
            Seal {
                chain_seq: 8,
                ..first
            },
            Seal {
                head_hash: [0; 32],
                ..first
            },
            Seal {
                chain_id: Uuid::from_u128(4),
                ..first
            },
            Seal {
                sealed_at: at + time::Duration::seconds(1),
                ..first
            },
            Seal {
                prev_mac: [1; 32],
                ..first
            },
        ];
        for seal in tampered {
            assert!(!key(1).verify(&seal), "{seal:?}");
        }
    }

    #[test]
    fn the_key_comes_from_the_kek_and_differs_per_kek() {
        let rng = crate::SeededRng::new(5);
        let kek = KeyEncryptionKey::generate(&rng).unwrap();
        let other = KeyEncryptionKey::generate(&rng).unwrap();
        let head = ChainHead::genesis(Uuid::from_u128(1));
        let seal = SealKey::from_kek(&kek).seal(&head, OffsetDateTime::UNIX_EPOCH, None);
        assert!(SealKey::from_kek(&kek).verify(&seal));
        assert!(!SealKey::from_kek(&other).verify(&seal));
    }
}
