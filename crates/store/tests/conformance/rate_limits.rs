//! The rate-limit buckets (`RateLimitStore`) on both backends: GCRA checks of several buckets
//! at once are all or nothing, a probe never writes, concurrent spends of one bucket let exactly
//! its quota through, and purging removes only the buckets that are full again.

use std::sync::Arc;

use portcullis_core::ratelimit::{Cell, Quota};
use portcullis_core::store::Store;

async fn rate_limit_buckets_are_checked_all_or_nothing_and_purged_when_full(store: Arc<dyn Store>) {
    let buckets = store.rate_limits();
    let now = 1_800_000_000_000_000_i64;
    let quota = |q, secs| Quota::new(q, std::time::Duration::from_secs(secs)).unwrap();
    let narrow = Cell::new("narrow", quota(2, 60), true);
    let wide = Cell::new("wide", quota(100, 60), true);
    let probe = Cell::new("narrow", quota(2, 60), false);
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
    let shared = Cell::new("shared", quota(10, 3600), true);
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

mod postgres {
    #[tokio::test]
    async fn rate_limit_buckets_are_checked_all_or_nothing_and_purged_when_full() {
        let (_db, store) = super::super::open(super::super::Backend::Postgres).await;
        super::rate_limit_buckets_are_checked_all_or_nothing_and_purged_when_full(store).await;
    }
}

mod sqlite {
    #[tokio::test]
    async fn rate_limit_buckets_are_checked_all_or_nothing_and_purged_when_full() {
        let (_db, store) = super::super::open(super::super::Backend::Sqlite).await;
        super::rate_limit_buckets_are_checked_all_or_nothing_and_purged_when_full(store).await;
    }
}
