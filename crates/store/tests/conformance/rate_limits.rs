//! The rate-limit buckets (`RateLimitStore`) on both backends: GCRA checks of several buckets
//! at once are all or nothing, a probe never writes, concurrent spends of one bucket let exactly
//! its quota through, and purging removes only the buckets that are full again.

use std::sync::Arc;

use std::collections::HashMap;

use portcullis_core::ratelimit::{Cell, CellState, Op, Quota, check_all};
use portcullis_core::store::Store;

async fn rate_limit_buckets_are_checked_all_or_nothing_and_purged_when_full(store: Arc<dyn Store>) {
    let buckets = store.rate_limits();
    let now = 1_800_000_000_000_000_i64;
    let quota = |q, secs| Quota::new(q, std::time::Duration::from_secs(secs)).unwrap();
    let narrow = Cell::new("narrow", quota(2, 60), Op::Spend);
    let wide = Cell::new("wide", quota(100, 60), Op::Spend);
    let probe = Cell::new("narrow", quota(2, 60), Op::Probe);
    // The narrow bucket's burst, then a refusal that spends nothing from the wide one.
    for _ in 0..2 {
        let states = buckets
            .check(&[wide.clone(), narrow.clone()], now)
            .await
            .unwrap();
        assert!(states.iter().all(|s| s.allowed));
    }
    let states = buckets
        .check(&[wide.clone(), narrow.clone(), probe.clone()], now)
        .await
        .unwrap();
    assert!(states[0].allowed && !states[1].allowed && !states[2].allowed);
    assert_eq!(
        states[0].tat_us,
        now + 2 * wide.emission_us,
        "nothing spent"
    );
    assert_eq!(states[1].tat_us, now + 60_000_000);
    // Thirty seconds on, one token is back.
    let later = now + 30_000_000;
    let once = std::slice::from_ref(&narrow);
    assert!(buckets.check(once, later).await.unwrap()[0].allowed);
    assert!(!buckets.check(once, later).await.unwrap()[0].allowed);
    // Concurrent spends from one bucket: exactly its quota passes.
    let shared = Cell::new("shared", quota(10, 3600), Op::Spend);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..30 {
        let (store, cell) = (store.clone(), shared.clone());
        tasks.spawn(
            async move { store.rate_limits().check(&[cell], now).await.unwrap()[0].allowed },
        );
    }
    let mut passed = 0;
    while let Some(allowed) = tasks.join_next().await {
        passed += usize::from(allowed.unwrap());
    }
    assert_eq!(passed, 10);
    // Buckets full again are purged (a probe never made one); the others stay.
    assert_eq!(buckets.purge_idle(now).await.unwrap(), 0);
    assert_eq!(buckets.purge_idle(now + 3_600_000_000).await.unwrap(), 3);
    assert_eq!(buckets.purge_idle(now + 3_600_000_000).await.unwrap(), 0);
}

/// A reserved token comes back with a refund, which is written even when another bucket of the
/// same check refuses, and never makes a bucket fuller than full.
async fn a_refund_gives_back_a_reserved_token(store: Arc<dyn Store>) {
    let buckets = store.rate_limits();
    let now = 1_800_000_000_000_000_i64;
    let quota = Quota::new(2, std::time::Duration::from_secs(60)).unwrap();
    let reserve = Cell::new("af", quota, Op::Spend);
    let refund = reserve.with_op(Op::Refund);
    let once = std::slice::from_ref(&reserve);
    assert!(buckets.check(once, now).await.unwrap()[0].allowed);
    assert!(buckets.check(once, now).await.unwrap()[0].allowed);
    assert!(!buckets.check(once, now).await.unwrap()[0].allowed);
    // Given back alongside a spend that is refused: the refund holds.
    let empty = Cell::new(
        "empty",
        Quota::new(1, std::time::Duration::from_secs(60)).unwrap(),
        Op::Spend,
    );
    assert!(
        buckets
            .check(std::slice::from_ref(&empty), now)
            .await
            .unwrap()[0]
            .allowed
    );
    let states = buckets.check(&[empty, refund.clone()], now).await.unwrap();
    assert!(!states[0].allowed && states[1].allowed);
    assert_eq!(states[1].tat_us, now + 30_000_000);
    assert!(buckets.check(once, now).await.unwrap()[0].allowed);
    assert!(!buckets.check(once, now).await.unwrap()[0].allowed);
    // Refunds on a full bucket, or on none, leave it full.
    for _ in 0..5 {
        buckets
            .check(std::slice::from_ref(&refund), now)
            .await
            .unwrap();
    }
    let never = Cell::new("never", quota, Op::Refund);
    assert_eq!(buckets.check(&[never], now).await.unwrap()[0].tat_us, now);
    assert_eq!(
        buckets.check(once, now).await.unwrap()[0].tat_us,
        now + 30_000_000
    );
    assert!(buckets.check(once, now).await.unwrap()[0].allowed);
    assert!(!buckets.check(once, now).await.unwrap()[0].allowed);
}

/// The store's arithmetic is the core's: a long pseudo-random run of spends, probes and refunds
/// over a few buckets, with time moving on, gets the same answer from the store as from
/// `portcullis_core::ratelimit::check_all` over a map, call by call.
async fn the_store_decides_as_the_core_does(store: Arc<dyn Store>) {
    let buckets = store.rate_limits();
    let mut now = 1_800_000_000_000_000_i64;
    let quotas = [(3, 10), (5, 60), (1, 7), (20, 1)];
    let keys = ["a", "b", "c", "d"];
    let mut model: HashMap<&str, i64> = HashMap::new();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m
    };
    let (mut refusals, mut admitted) = (0, 0);
    for step in 0..400 {
        now += i64::try_from(next(3_000_000)).unwrap();
        let mut cells = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            if next(2) == 0 {
                continue;
            }
            let (q, w) = quotas[i];
            let op = match next(5) {
                0 => Op::Probe,
                1 => Op::Refund,
                _ => Op::Spend,
            };
            cells.push(Cell::new(
                *key,
                Quota::new(q, std::time::Duration::from_secs(w)).unwrap(),
                op,
            ));
        }
        if cells.is_empty() {
            continue;
        }
        let stored: Vec<Option<i64>> = cells
            .iter()
            .map(|c| model.get(c.key.as_str()).copied())
            .collect();
        let (expected, all): (Vec<CellState>, bool) = check_all(&cells, &stored, now);
        for (cell, state) in cells.iter().zip(&expected) {
            let key = keys.iter().find(|k| **k == cell.key).unwrap();
            // Spends land when all allow; a refund changes only a bucket that exists.
            let writes = match cell.op {
                Op::Spend => all,
                Op::Refund => model.contains_key(key),
                Op::Probe => false,
            };
            if writes {
                model.insert(key, state.tat_us);
            }
        }
        let got = buckets.check(&cells, now).await.unwrap();
        assert_eq!(got, expected, "step {step}: {cells:?}");
        refusals += usize::from(!all);
        admitted += usize::from(all);
    }
    // The run met both answers often, so it compared refusals too.
    assert!(
        refusals > 50 && admitted > 50,
        "{refusals} refused, {admitted} allowed"
    );
}

mod postgres {
    #[tokio::test]
    async fn a_refund_gives_back_a_reserved_token() {
        let (_db, store) = super::super::open(super::super::Backend::Postgres).await;
        super::a_refund_gives_back_a_reserved_token(store).await;
    }

    #[tokio::test]
    async fn the_store_decides_as_the_core_does() {
        let (_db, store) = super::super::open(super::super::Backend::Postgres).await;
        super::the_store_decides_as_the_core_does(store).await;
    }

    #[tokio::test]
    async fn rate_limit_buckets_are_checked_all_or_nothing_and_purged_when_full() {
        let (_db, store) = super::super::open(super::super::Backend::Postgres).await;
        super::rate_limit_buckets_are_checked_all_or_nothing_and_purged_when_full(store).await;
    }
}

mod sqlite {
    #[tokio::test]
    async fn a_refund_gives_back_a_reserved_token() {
        let (_db, store) = super::super::open(super::super::Backend::Sqlite).await;
        super::a_refund_gives_back_a_reserved_token(store).await;
    }

    #[tokio::test]
    async fn the_store_decides_as_the_core_does() {
        let (_db, store) = super::super::open(super::super::Backend::Sqlite).await;
        super::the_store_decides_as_the_core_does(store).await;
    }

    #[tokio::test]
    async fn rate_limit_buckets_are_checked_all_or_nothing_and_purged_when_full() {
        let (_db, store) = super::super::open(super::super::Backend::Sqlite).await;
        super::rate_limit_buckets_are_checked_all_or_nothing_and_purged_when_full(store).await;
    }
}
