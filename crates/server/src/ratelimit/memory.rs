//! The in-process buckets: the whole backend with `backend = "memory"`, and the fallback of
//! `on_backend_error = "allow_local"`.
//!
//! A fixed number of shards, each a `HashMap` from key to TAT under its own mutex, chosen by a
//! keyed SipHash of the key (so that nobody can aim many keys at one shard). There is no global
//! lock: a check locks only the shards of its keys, in ascending shard order so that two checks
//! cannot deadlock, and never across an `.await`. The size is bounded: a shard that is full when
//! a new key arrives first drops its full buckets (a TAT in the past means the same as no
//! bucket), and if none is full drops the bucket nearest to full, which loses the least.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard, PoisonError};

use portcullis_core::ratelimit::{Cell, CellState, Op, check_all};

/// How many shards: enough that the two to a few dozen cores a replica has rarely meet on one.
const SHARDS: usize = 64;

type Shard = HashMap<String, i64>;

/// Sharded, bounded in-memory buckets.
#[derive(Debug)]
pub struct MemoryBuckets {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    per_shard: usize,
}

impl MemoryBuckets {
    /// Buckets for at most about `max_keys` keys.
    #[must_use]
    pub fn new(max_keys: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::new())).collect(),
            hasher: RandomState::new(),
            per_shard: max_keys.div_ceil(SHARDS).max(1),
        }
    }

    fn shard_of(&self, key: &str) -> usize {
        // The modulus keeps the index below SHARDS, so the cast cannot truncate a meaningful bit.
        (self.hasher.hash_one(key) % SHARDS as u64) as usize
    }

    /// Checks `cells` at `now_us`, all or nothing (see `portcullis_core::ratelimit::check_all`).
    pub fn check(&self, cells: &[Cell], now_us: i64) -> Vec<CellState> {
        let shard_of: Vec<usize> = cells.iter().map(|c| self.shard_of(&c.key)).collect();
        let mut wanted = shard_of.clone();
        wanted.sort_unstable();
        wanted.dedup();
        // Ascending shard order: every check locks in the same order.
        let mut guards: Vec<(usize, MutexGuard<'_, Shard>)> = wanted
            .iter()
            .filter_map(|&i| {
                self.shards
                    .get(i)
                    .map(|m| (i, m.lock().unwrap_or_else(PoisonError::into_inner)))
            })
            .collect();
        let position = |guards: &[(usize, MutexGuard<'_, Shard>)], shard: usize| {
            guards.binary_search_by_key(&shard, |(i, _)| *i).ok()
        };
        let stored: Vec<Option<i64>> = cells
            .iter()
            .zip(&shard_of)
            .map(|(cell, &shard)| {
                position(&guards, shard)
                    .and_then(|p| guards.get(p))
                    .and_then(|(_, g)| g.get(&cell.key).copied())
            })
            .collect();
        let (states, all) = check_all(cells, &stored, now_us);
        for ((cell, state), &shard) in cells.iter().zip(&states).zip(&shard_of) {
            let Some((_, guard)) = position(&guards, shard).and_then(|p| guards.get_mut(p)) else {
                continue;
            };
            match cell.op {
                Op::Spend if all => insert(guard, &cell.key, state.tat_us, now_us, self.per_shard),
                // A refunded bucket that is full again is the same as none.
                Op::Refund if state.tat_us <= now_us => {
                    guard.remove(&cell.key);
                }
                Op::Refund => {
                    if let Some(slot) = guard.get_mut(&cell.key) {
                        *slot = state.tat_us;
                    }
                }
                Op::Spend | Op::Probe => {}
            }
        }
        states
    }

    /// How many buckets are held (for tests and the benchmark).
    #[must_use]
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|m| m.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// Whether no bucket is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Stores `tat` under `key`, making room first when the shard is full: the full buckets go
/// (they mean the same as none), and if that is not enough, the buckets nearest to full, down
/// to seven eighths of the cap in one pass, so that a flood of new keys costs one scan of the
/// shard per eighth of its size rather than one per key.
fn insert(shard: &mut Shard, key: &str, tat: i64, now_us: i64, cap: usize) {
    if let Some(slot) = shard.get_mut(key) {
        *slot = tat;
        return;
    }
    if shard.len() >= cap {
        shard.retain(|_, t| *t > now_us);
        let keep = cap - (cap / 8).max(1);
        let excess = shard.len().saturating_sub(keep);
        if excess > 0 {
            // The TAT at or below which `excess` buckets lie: those nearest to full.
            let mut tats: Vec<i64> = shard.values().copied().collect();
            let (_, cutoff, _) = tats.select_nth_unstable(excess - 1);
            let cutoff = *cutoff;
            let mut dropped = 0;
            shard.retain(|_, t| {
                let drop = *t <= cutoff && dropped < excess;
                dropped += usize::from(drop);
                !drop
            });
        }
    }
    shard.insert(key.to_owned(), tat);
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use std::time::Duration;

    use portcullis_core::ratelimit::Quota;

    use super::*;

    const NOW: i64 = 1_800_000_000_000_000;

    #[test]
    fn the_size_stays_bounded_and_full_buckets_go_first() {
        let buckets = MemoryBuckets::new(SHARDS * 4);
        let quota = Quota::new(10, Duration::from_secs(60)).unwrap();
        for i in 0..10_000 {
            let cell = Cell::new(format!("k{i}"), quota, Op::Spend);
            assert!(buckets.check(&[cell], NOW)[0].allowed);
        }
        assert!(buckets.len() <= SHARDS * 4, "{}", buckets.len());
        // An hour later every bucket is full again; new keys push them all out.
        let later = NOW + 3_600_000_000;
        for i in 0..10_000 {
            let cell = Cell::new(format!("n{i}"), quota, Op::Spend);
            buckets.check(&[cell], later);
        }
        assert!(buckets.len() <= SHARDS * 4);
    }

    #[test]
    fn a_flood_of_new_keys_evicts_the_buckets_nearest_to_full_and_keeps_a_spent_one() {
        let buckets = MemoryBuckets::new(SHARDS * 16);
        let quota = Quota::new(10, Duration::from_secs(3600)).unwrap();
        // A bucket that is empty: its TAT is an hour ahead, the farthest from full of all.
        let hot = Cell::new("hot", quota, Op::Spend);
        for _ in 0..10 {
            assert!(buckets.check(std::slice::from_ref(&hot), NOW)[0].allowed);
        }
        // Many times the cap of new keys, each spending one token (six minutes ahead).
        for i in 0..SHARDS * 16 * 20 {
            let cell = Cell::new(format!("flood{i}"), quota, Op::Spend);
            assert!(buckets.check(&[cell], NOW)[0].allowed);
        }
        assert!(buckets.len() <= SHARDS * 16, "{}", buckets.len());
        // The spent bucket was never the one evicted: it still refuses.
        assert!(!buckets.check(std::slice::from_ref(&hot), NOW)[0].allowed);
    }

    #[test]
    fn concurrent_checks_of_one_key_let_exactly_the_quota_through() {
        let buckets = std::sync::Arc::new(MemoryBuckets::new(10_000));
        let quota = Quota::new(1000, Duration::from_secs(60)).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let buckets = buckets.clone();
                std::thread::spawn(move || {
                    let mut passed = 0;
                    for _ in 0..500 {
                        // Two keys per check, in an order that differs between threads.
                        let mut cells = vec![
                            Cell::new("shared", quota, Op::Spend),
                            Cell::new(format!("own{t}"), quota, Op::Spend),
                        ];
                        if t % 2 == 1 {
                            cells.reverse();
                        }
                        if buckets.check(&cells, NOW).iter().all(|s| s.allowed) {
                            passed += 1;
                        }
                    }
                    passed
                })
            })
            .collect();
        let passed: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(passed, 1000);
    }
}
