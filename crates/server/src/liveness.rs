//! Whether one of our access tokens is live: issued here, signed by our keys (or an opaque
//! reference in the store), unexpired, its grant standing and its `jti` not on the deny list.
//! Introspection and every protected resource of this server ask here.
//!
//! The answer for a live token is cached per replica, and a cached answer is trusted only while
//! the store's revocation epoch (see `portcullis_core::store::RevocationStore`) is the one it was
//! computed under. Every request reads the epoch, so a revocation committed on any replica
//! before a request arrives is seen by that request; the epoch read is shared between concurrent
//! requests ([`EpochReader`]), so it costs one database round trip per batch of requests, not
//! one per request. Expiry (of the token and of its grant) is checked on every hit.
//!
//! Only live tokens are cached, so a flood of forged tokens cannot fill the cache, and the
//! cache is bounded: when a generation is full, further answers are simply not cached.

use std::collections::HashMap;
use std::hash::BuildHasher as _;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use portcullis_core::client::secret::SecretHash;
use portcullis_core::store::{Store, StoreError};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use tokio::sync::oneshot;

use crate::app::AppState;

/// Reads the revocation epoch, sharing reads between concurrent callers without ever giving a
/// caller an epoch read before it asked: callers queue, and one task at a time takes the whole
/// queue and reads once for all of it. A caller that arrives while a read is in flight waits
/// for the next one.
#[derive(Debug)]
pub struct EpochReader {
    store: Arc<dyn Store>,
    queue: Mutex<Queue>,
}

#[derive(Debug, Default)]
struct Queue {
    reading: bool,
    waiting: Vec<oneshot::Sender<Result<i64, String>>>,
}

impl EpochReader {
    /// A reader of `store`'s epoch.
    #[must_use]
    pub fn new(store: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(Self {
            store,
            queue: Mutex::new(Queue::default()),
        })
    }

    /// The epoch, as read after this call began.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the read fails.
    pub async fn read(self: &Arc<Self>) -> Result<i64, StoreError> {
        let (sender, receiver) = oneshot::channel();
        let lead = {
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            queue.waiting.push(sender);
            !std::mem::replace(&mut queue.reading, true)
        };
        if lead {
            let reader = Arc::clone(self);
            tokio::spawn(async move { reader.serve().await });
        }
        match receiver.await {
            Ok(Ok(epoch)) => Ok(epoch),
            Ok(Err(message)) => Err(StoreError::Backend(message.into())),
            Err(_) => Err(StoreError::Backend("the epoch reader stopped".into())),
        }
    }

    /// Reads for whoever is queued, until nobody is.
    async fn serve(&self) {
        loop {
            let batch = {
                let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                if queue.waiting.is_empty() {
                    queue.reading = false;
                    return;
                }
                std::mem::take(&mut queue.waiting)
            };
            let epoch = self.store.revocations().epoch().await;
            let epoch = epoch.map_err(|e| e.to_string());
            for waiter in batch {
                // A waiter that went away does not matter.
                let _ = waiter.send(epoch.clone());
            }
        }
    }
}

const SHARDS: usize = 16;

/// Answers computed under one epoch.
#[derive(Debug)]
struct Generation<K, V> {
    epoch: i64,
    shards: Vec<Mutex<HashMap<K, V>>>,
}

/// A per-replica cache whose entries hold only while the revocation epoch they were computed
/// under is current: each lookup names the epoch its request read, and a newer epoch starts an
/// empty generation. Sharded, so that concurrent requests seldom wait on one another; bounded,
/// so that when a shard is full further answers are simply not cached.
#[derive(Debug)]
pub struct EpochCache<K, V> {
    current: ArcSwap<Generation<K, V>>,
    per_shard: usize,
    hasher: std::hash::RandomState,
}

impl<K: std::hash::Hash + Eq, V: Clone> EpochCache<K, V> {
    /// A cache of about `capacity` entries (0: nothing is cached).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            current: ArcSwap::from_pointee(Generation::new(i64::MIN)),
            per_shard: capacity.div_ceil(SHARDS),
            hasher: std::hash::RandomState::new(),
        }
    }

    /// The generation for `epoch`: the current one, or a fresh one when the epoch moved on.
    /// `None` when `epoch` is older than the current generation (a slower concurrent read):
    /// the caller then neither trusts nor fills the cache.
    fn generation(&self, epoch: i64) -> Option<Arc<Generation<K, V>>> {
        let current = self.current.load_full();
        if current.epoch == epoch {
            return Some(current);
        }
        if epoch < current.epoch {
            return None;
        }
        let fresh = Arc::new(Generation::new(epoch));
        let previous = self.current.compare_and_swap(&current, Arc::clone(&fresh));
        if Arc::ptr_eq(&previous, &current) {
            Some(fresh)
        } else {
            // Another request swapped first; use its generation if it is ours.
            let now = self.current.load_full();
            (now.epoch == epoch).then_some(now)
        }
    }

    fn shard<'a>(
        &self,
        generation: &'a Generation<K, V>,
        key: &K,
    ) -> Option<&'a Mutex<HashMap<K, V>>> {
        let index = usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0);
        generation.shards.get(index)
    }

    /// The entry for `key` computed under `epoch`, if any.
    pub fn get(&self, epoch: i64, key: &K) -> Option<V> {
        let generation = self.generation(epoch)?;
        let shard = self.shard(&generation, key)?;
        let entries = shard.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(key).cloned()
    }

    /// Remembers `value` for `key`, computed under `epoch` (read before the computation began).
    pub fn insert(&self, epoch: i64, key: K, value: V) {
        let Some(generation) = self.generation(epoch) else {
            return;
        };
        let Some(shard) = self.shard(&generation, &key) else {
            return;
        };
        let mut entries = shard.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() < self.per_shard {
            entries.insert(key, value);
        }
    }
}

impl<K, V> Generation<K, V> {
    fn new(epoch: i64) -> Self {
        Self {
            epoch,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

/// A live token as cached.
#[derive(Debug)]
struct Entry {
    claims: Arc<Map<String, Value>>,
    /// The earlier of the token's `exp` and its grant's expiry (seconds since the epoch).
    valid_until: i64,
}

/// The liveness checks, with their per-replica cache.
#[derive(Debug)]
pub struct Liveness {
    epochs: Arc<EpochReader>,
    cache: EpochCache<[u8; 32], Arc<Entry>>,
}

impl Liveness {
    /// Checks with `epochs`, caching up to about `capacity` live tokens.
    #[must_use]
    pub fn new(epochs: Arc<EpochReader>, capacity: usize) -> Self {
        Self {
            epochs,
            cache: EpochCache::new(capacity),
        }
    }
}

/// The claims of `token` if it is one of our access tokens and live at `now`; `Ok(None)` for
/// anything else (not ours, tampered, expired, revoked, its grant withdrawn or lapsed).
///
/// # Errors
/// [`StoreError`] when the store fails.
pub async fn live_claims(
    state: &AppState,
    token: &str,
    now: OffsetDateTime,
) -> Result<Option<Arc<Map<String, Value>>>, StoreError> {
    Ok(judge_under(state, token, now, None).await?.ok())
}

/// As [`live_claims`], under an epoch this request has read already (after it arrived), when
/// it has one: the client authentication of the same request reads it.
///
/// # Errors
/// [`StoreError`] when the store fails.
pub async fn live_claims_under(
    state: &AppState,
    token: &str,
    now: OffsetDateTime,
    epoch: Option<i64>,
) -> Result<Option<Arc<Map<String, Value>>>, StoreError> {
    Ok(judge_under(state, token, now, epoch).await?.ok())
}

/// As [`live_claims`], with the reason a token is not live, for a resource's error description.
///
/// # Errors
/// [`StoreError`] when the store fails.
pub async fn judge(
    state: &AppState,
    token: &str,
    now: OffsetDateTime,
) -> Result<Result<Arc<Map<String, Value>>, &'static str>, StoreError> {
    judge_under(state, token, now, None).await
}

async fn judge_under(
    state: &AppState,
    token: &str,
    now: OffsetDateTime,
    epoch: Option<i64>,
) -> Result<Result<Arc<Map<String, Value>>, &'static str>, StoreError> {
    let liveness = &state.liveness;
    let key = *SecretHash::of(token).as_bytes();
    let epoch = match epoch {
        Some(epoch) => epoch,
        None => liveness.epochs.read().await?,
    };
    if let Some(entry) = liveness.cache.get(epoch, &key) {
        return Ok(if entry.valid_until > now.unix_timestamp() {
            Ok(Arc::clone(&entry.claims))
        } else {
            Err(EXPIRED)
        });
    }
    let (claims, valid_until) = match check(state, token, now).await? {
        Ok(live) => live,
        Err(why) => return Ok(Err(why)),
    };
    let claims = Arc::new(claims);
    liveness.cache.insert(
        epoch,
        key,
        Arc::new(Entry {
            claims: Arc::clone(&claims),
            valid_until,
        }),
    );
    Ok(Ok(claims))
}

const EXPIRED: &str = "the access token has expired";

/// The uncached check: the token's claims and until when they hold, if it is live.
async fn check(
    state: &AppState,
    token: &str,
    now: OffsetDateTime,
) -> Result<Result<(Map<String, Value>, i64), &'static str>, StoreError> {
    let claims = match crate::protected::access_token_claims(state, token).await? {
        Ok(claims) => claims,
        Err(why) => return Ok(Err(why)),
    };
    if claims.get("iss").and_then(Value::as_str) != Some(state.urls.issuer.as_str()) {
        return Ok(Err("the token was not issued here"));
    }
    let Some(exp) = claims.get("exp").and_then(Value::as_i64) else {
        return Ok(Err("the access token has no expiry"));
    };
    if exp <= now.unix_timestamp() {
        return Ok(Err(EXPIRED));
    }
    let mut valid_until = exp;
    if let Some(grant_id) = claims.get("grant_id").and_then(Value::as_str) {
        match state.store.grants().find(grant_id).await {
            Ok(grant) if grant.stands(now) => {
                if let Some(at) = grant.expires_at {
                    valid_until = valid_until.min(at.unix_timestamp());
                }
            }
            Ok(_) | Err(StoreError::NotFound) => {
                return Ok(Err(
                    "the consent behind the token has been withdrawn or has lapsed",
                ));
            }
            Err(e) => return Err(e),
        }
    }
    // Every token we issue has a jti; without one it is not ours.
    let Some(jti) = claims.get("jti").and_then(Value::as_str) else {
        return Ok(Err("the access token is not valid"));
    };
    if state.store.revocations().is_denied(jti).await? {
        return Ok(Err("the access token has been revoked"));
    }
    Ok(Ok((claims, valid_until)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_testkit::db::TestDatabase;

    async fn store() -> (TestDatabase, Arc<dyn Store>) {
        let db = TestDatabase::sqlite();
        let store = portcullis_store::connect_and_migrate(
            db.url(),
            &portcullis_store::PoolOptions::default(),
        )
        .await
        .unwrap();
        (db, store)
    }

    #[tokio::test]
    async fn concurrent_epoch_reads_never_answer_with_an_epoch_older_than_the_call() {
        let (_db, store) = store().await;
        let reader = EpochReader::new(store.clone());
        for _ in 0..5 {
            let current = store.revocations().bump().await.unwrap();
            // Every read that begins after the bump committed sees it, however many share it.
            let reads: Vec<_> = (0..200)
                .map(|_| {
                    let reader = Arc::clone(&reader);
                    tokio::spawn(async move { reader.read().await.unwrap() })
                })
                .collect();
            for read in reads {
                assert_eq!(read.await.unwrap(), current);
            }
        }
        // And the reader goes idle once nobody waits.
        assert!(!reader.queue.lock().unwrap().reading);
    }

    #[test]
    fn an_epoch_cache_holds_only_for_its_epoch_and_within_its_bound() {
        let cache: EpochCache<u32, u32> = EpochCache::new(SHARDS);
        cache.insert(7, 1, 10);
        assert_eq!(cache.get(7, &1), Some(10));
        // A newer epoch starts empty; an older one (a slow read) neither sees nor fills it.
        assert_eq!(cache.get(8, &1), None);
        cache.insert(7, 2, 20);
        assert_eq!(cache.get(8, &2), None);
        assert_eq!(cache.get(7, &1), None, "the old generation is gone");
        // Bounded: one entry per shard here, so most of many keys are simply not kept.
        for key in 0..1000 {
            cache.insert(8, key, key);
        }
        let kept = (0..1000).filter(|k| cache.get(8, k).is_some()).count();
        assert!(kept <= SHARDS, "{kept}");
        // Capacity 0 keeps nothing.
        let off: EpochCache<u32, u32> = EpochCache::new(0);
        off.insert(1, 1, 1);
        assert_eq!(off.get(1, &1), None);
    }
}
