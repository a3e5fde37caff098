//! The replay cache of DPoP proof `jti`s (RFC 9449 §11.1): a proof is accepted once. A bank that
//! runs several replicas of an API implements [`ReplayCache`] over a store they share (Redis
//! `SET key 1 NX EXAT t`, a database table with a primary key), so that a proof accepted by one
//! replica is refused by every other; [`MemoryReplayCache`] is the bounded default for one process.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};

/// How many shards [`MemoryReplayCache`] splits its entries into, at most; each has its own lock so
/// that concurrent requests rarely wait for one another.
const SHARDS: usize = 16;

/// Where the `jti`s of accepted DPoP proofs are remembered until the proofs are too old anyway.
///
/// Keys are SHA-256 hashes of the proof key's thumbprint and the `jti` (see
/// [`DpopChecker`](super::DpopChecker)), so every stored key is 32 bytes whatever a client sends.
#[async_trait::async_trait]
pub trait ReplayCache: Send + Sync + fmt::Debug {
    /// Records `key` as used until `expires_at` (Unix seconds, inclusive) and says whether this is
    /// its first use: `true` if the key is unknown or its previous record expired before `now`,
    /// `false` while an earlier record is live. A shared implementation must do this as one atomic
    /// operation (insert-if-absent), never a read followed by a write, or two replicas could both
    /// accept the same proof.
    ///
    /// # Errors
    /// [`ReplayCacheError`] when the use cannot be recorded; the proof is then refused, never
    /// accepted unrecorded (fail closed).
    async fn first_use(
        &self,
        key: [u8; 32],
        expires_at: i64,
        now: i64,
    ) -> Result<bool, ReplayCacheError>;
}

/// Why a replay cache could not record a use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayCacheError {
    /// The cache holds as many unexpired entries as it may.
    #[error("the DPoP replay cache is full of unexpired entries")]
    Full,
    /// The store behind the cache failed (for a shared implementation: connection, timeout).
    #[error("the DPoP replay cache failed: {0}")]
    Backend(String),
}

/// A bounded in-memory [`ReplayCache`] for a single process, split into shards each behind a
/// `std` mutex that is held only for a map operation, never across an `.await`.
///
/// When a shard is full, its expired entries are evicted; if it is still full, the use is refused
/// with [`ReplayCacheError::Full`] rather than recorded nowhere. Size it for the proofs accepted
/// in one proof lifetime (requests per second × (max age + future skew)); an entry costs about
/// 60 bytes.
pub struct MemoryReplayCache {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
}

/// One shard: each key's expiry, and a lower bound of the earliest one, so that a full shard with
/// nothing to evict refuses without scanning its entries.
#[derive(Debug)]
struct Shard {
    entries: HashMap<[u8; 32], i64>,
    earliest_expiry: i64,
}

impl MemoryReplayCache {
    /// A cache that holds at most `max_entries` entries (at least 1).
    #[must_use]
    pub fn new(max_entries: usize) -> Self {
        let max_entries = max_entries.max(1);
        let shards = SHARDS.min(max_entries);
        Self {
            shards: (0..shards)
                .map(|_| {
                    Mutex::new(Shard {
                        entries: HashMap::new(),
                        earliest_expiry: i64::MAX,
                    })
                })
                .collect(),
            per_shard: max_entries / shards,
        }
    }

    /// The most entries the cache holds.
    fn capacity(&self) -> usize {
        self.per_shard * self.shards.len()
    }
}

impl fmt::Debug for MemoryReplayCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryReplayCache")
            .field("shards", &self.shards.len())
            .field("capacity", &self.capacity())
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl ReplayCache for MemoryReplayCache {
    async fn first_use(
        &self,
        key: [u8; 32],
        expires_at: i64,
        now: i64,
    ) -> Result<bool, ReplayCacheError> {
        // Keys are SHA-256 outputs, so their first byte spreads them evenly over the shards.
        let [first, ..] = key;
        let shard = self
            .shards
            .get(usize::from(first) % self.shards.len())
            .ok_or_else(|| ReplayCacheError::Backend("no shard for the key".into()))?;
        // A panic while the lock was held cannot leave the map half-updated (we do not panic
        // inside), so a poisoned lock's data is still sound.
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        match shard.entries.get(&key) {
            Some(&live_until) if live_until >= now => return Ok(false),
            Some(_) => {
                // An expired record of the same key: reuse its slot.
                shard.entries.insert(key, expires_at);
                shard.earliest_expiry = shard.earliest_expiry.min(expires_at);
                return Ok(true);
            }
            None => {}
        }
        if shard.entries.len() >= self.per_shard {
            if shard.earliest_expiry < now {
                shard.entries.retain(|_, live_until| *live_until >= now);
                shard.earliest_expiry = shard.entries.values().copied().min().unwrap_or(i64::MAX);
            }
            if shard.entries.len() >= self.per_shard {
                return Err(ReplayCacheError::Full);
            }
        }
        shard.entries.insert(key, expires_at);
        shard.earliest_expiry = shard.earliest_expiry.min(expires_at);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> [u8; 32] {
        [n; 32]
    }

    #[tokio::test]
    async fn a_key_is_new_once_until_its_record_expires() {
        let cache = MemoryReplayCache::new(100);
        assert_eq!(cache.first_use(key(1), 160, 100).await, Ok(true));
        assert_eq!(cache.first_use(key(1), 160, 100).await, Ok(false));
        // Live up to and including its expiry second, gone after.
        assert_eq!(cache.first_use(key(1), 170, 160).await, Ok(false));
        assert_eq!(cache.first_use(key(1), 221, 161).await, Ok(true));
        assert_eq!(cache.first_use(key(1), 221, 162).await, Ok(false));
    }

    #[tokio::test]
    async fn rfc_9449_11_1_a_full_cache_refuses_until_entries_expire() {
        let cache = MemoryReplayCache::new(2);
        assert_eq!(cache.capacity(), 2);
        // Keys 0 and 2 share a shard of the two; keys 1 and 3 the other.
        assert_eq!(cache.first_use(key(0), 160, 100).await, Ok(true));
        assert_eq!(cache.first_use(key(1), 150, 100).await, Ok(true));
        assert_eq!(
            cache.first_use(key(2), 160, 100).await,
            Err(ReplayCacheError::Full)
        );
        assert_eq!(
            cache.first_use(key(3), 160, 140).await,
            Err(ReplayCacheError::Full)
        );
        // Refused uses were not recorded, and recorded ones are still known.
        assert_eq!(cache.first_use(key(0), 160, 100).await, Ok(false));
        // Once key 1 has expired, its slot is free again.
        assert_eq!(cache.first_use(key(3), 211, 151).await, Ok(true));
        assert_eq!(cache.first_use(key(3), 211, 151).await, Ok(false));
        assert_eq!(
            cache.first_use(key(2), 211, 151).await,
            Err(ReplayCacheError::Full)
        );
        assert_eq!(cache.first_use(key(2), 221, 161).await, Ok(true));
    }

    #[test]
    fn capacity_never_exceeds_the_bound() {
        for max in [0, 1, 2, 15, 16, 17, 100, 1_000_000] {
            let cache = MemoryReplayCache::new(max);
            assert!(cache.capacity() <= max.max(1), "{max}");
            assert!(cache.capacity() >= 1, "{max}");
        }
        assert_eq!(MemoryReplayCache::new(1_600).capacity(), 1_600);
    }
}
