//! A bounded map whose entries expire: sharded, with a plain mutex per shard that is never held
//! across an `.await`, so the request path has no global lock.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::Mutex;

const SHARDS: usize = 16;

/// Entries `K → V`, each until a time (seconds since the epoch).
#[derive(Debug)]
pub(crate) struct ExpiringMap<K, V> {
    shards: Vec<Mutex<HashMap<K, (V, i64)>>>,
    per_shard: usize,
    hasher: RandomState,
}

impl<K: Hash + Eq + Clone, V: Clone> ExpiringMap<K, V> {
    /// A map of at most about `capacity` entries (0 keeps nothing).
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS),
            hasher: RandomState::new(),
        }
    }

    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> Option<&Mutex<HashMap<K, (V, i64)>>> {
        let index = usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0);
        self.shards.get(index)
    }

    /// The live value of `key`.
    pub fn get(&self, key: &K, now: i64) -> Option<V> {
        let shard = self.shard(key)?.lock().ok()?;
        shard
            .get(key)
            .filter(|(_, until)| *until > now)
            .map(|(v, _)| v.clone())
    }

    /// Whether `key` is live (looked up by any borrowed form, so a `&str` needs no `String`).
    pub fn contains<Q>(&self, key: &Q, now: i64) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shard(key)
            .and_then(|s| s.lock().ok())
            .is_some_and(|s| s.get(key).is_some_and(|(_, until)| *until > now))
    }

    /// Keeps `key → value` until `until`. When the shard is full, expired entries go first; when
    /// it is still full, `false` and nothing is kept (the caller decides what that means).
    pub fn insert(&self, key: K, value: V, until: i64, now: i64) -> bool {
        if self.per_shard == 0 || until <= now {
            return false;
        }
        let Some(mut shard) = self.shard(&key).and_then(|s| s.lock().ok()) else {
            return false;
        };
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            shard.retain(|_, (_, u)| *u > now);
            if shard.len() >= self.per_shard {
                return false;
            }
        }
        let until = match shard.get(&key) {
            Some((_, existing)) => until.max(*existing),
            None => until,
        };
        shard.insert(key, (value, until));
        true
    }

    /// Keeps `key → value` until `until`, making room by dropping an arbitrary live entry when
    /// the shard is full (for caches, where forgetting only costs a lookup).
    pub fn insert_evicting(&self, key: K, value: V, until: i64, now: i64) {
        if self.insert(key.clone(), value.clone(), until, now) || self.per_shard == 0 {
            return;
        }
        if let Some(mut shard) = self.shard(&key).and_then(|s| s.lock().ok()) {
            if let Some(victim) = shard.keys().next().cloned() {
                shard.remove(&victim);
            }
            shard.insert(key, (value, until));
        }
    }

    /// Drops every expired entry.
    pub fn purge(&self, now: i64) {
        for shard in &self.shards {
            if let Ok(mut shard) = shard.lock() {
                shard.retain(|_, (_, until)| *until > now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_a_full_map_refuses_rather_than_forgets() {
        let map: ExpiringMap<u32, &str> = ExpiringMap::new(16);
        assert!(map.insert(1, "a", 100, 0));
        assert_eq!(map.get(&1, 50), Some("a"));
        assert_eq!(map.get(&1, 100), None);
        assert!(!map.insert(2, "b", 10, 10), "already expired");
        // Fill every shard with live entries: at some point an insert is refused.
        let refused = (10..1000).any(|k| !map.insert(k, "x", 1_000, 0));
        assert!(refused);
        // Once they expire, there is room again.
        assert!(map.insert(5000, "y", 3_000, 2_000));
        map.insert_evicting(6000, "z", 3_000, 0);
        assert_eq!(map.get(&6000, 1), Some("z"));
        // An insert never shortens a revocation already held. (At 3_000 "y" and "z" have
        // expired too: with one entry per shard, 7000 may share a shard with either.)
        assert!(map.insert(7000, "w", 5_000, 3_000));
        assert!(map.insert(7000, "w", 3_500, 3_000));
        assert!(map.contains(&7000, 4_000));
        map.purge(5_000);
        assert!(!map.contains(&7000, 4_000));
    }

    #[test]
    fn a_zero_capacity_map_keeps_nothing() {
        let map: ExpiringMap<u32, ()> = ExpiringMap::new(0);
        assert!(!map.insert(1, (), 10, 0));
        map.insert_evicting(1, (), 10, 0);
        assert!(!map.contains(&1, 0));
    }
}
