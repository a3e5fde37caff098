//! The login throttle's counters (`LoginThrottleStore`) on both backends: rows round-trip, every
//! write is a compare-and-set on the version, concurrent writers on one version let exactly one
//! through, a compare-and-set loop counts every one of many concurrent failures once, and purging
//! removes only expired rows.

use std::sync::Arc;

use portcullis_core::login_throttle::{LoginPolicy, ThrottleKey, ThrottleKind, ThrottleState};
use portcullis_core::store::Store;
use time::{Duration, OffsetDateTime};

use super::at;

fn key(kind: ThrottleKind, id: &str) -> ThrottleKey {
    ThrottleKey {
        kind,
        id: id.to_owned(),
    }
}

fn state(failures: u32, start: OffsetDateTime) -> ThrottleState {
    ThrottleState {
        failures,
        window_started_at: start,
        last_failure_at: start + Duration::microseconds(123_457),
        locked_until: Some(start + Duration::minutes(15)),
        trusted_until: None,
    }
}

/// One failure counted the way the server counts it: read, apply the policy, write if nobody
/// wrote in between, else read again.
async fn count_failure(store: &dyn Store, key: &ThrottleKey, now: OffsetDateTime) -> u32 {
    let policy = LoginPolicy::default().pair;
    loop {
        let found = store.login_throttle().find(key).await.unwrap();
        let next = policy.count(found.as_ref().map(|f| &f.state), now);
        let written = store
            .login_throttle()
            .put(
                key,
                found.map(|f| f.version),
                &next,
                policy.expires_at(&next),
            )
            .await
            .unwrap();
        if written {
            return next.failures;
        }
    }
}

pub async fn login_throttle_counters_round_trip_and_change_by_compare_and_set(
    store: Arc<dyn Store>,
) {
    let counters = store.login_throttle();
    let pair = key(ThrottleKind::Pair, "mac-of-alice-from-192.0.2.1");
    assert_eq!(counters.find(&pair).await.unwrap(), None);
    let first = state(1, at(0));
    assert!(counters.put(&pair, None, &first, at(3600)).await.unwrap());
    // A second insert, or a write naming a version that is not the row's, loses.
    assert!(!counters.put(&pair, None, &first, at(3600)).await.unwrap());
    let found = counters.find(&pair).await.unwrap().unwrap();
    assert_eq!(found.state, first, "microseconds and absent times survive");
    assert!(
        !counters
            .put(&pair, Some(found.version + 1), &first, at(3600))
            .await
            .unwrap()
    );
    let second = ThrottleState {
        failures: 2,
        locked_until: None,
        trusted_until: Some(at(86_400)),
        ..first.clone()
    };
    assert!(
        counters
            .put(&pair, Some(found.version), &second, at(86_400))
            .await
            .unwrap()
    );
    assert!(
        !counters
            .put(&pair, Some(found.version), &first, at(3600))
            .await
            .unwrap(),
        "a version is written once"
    );
    let again = counters.find(&pair).await.unwrap().unwrap();
    assert_eq!(again.state, second);
    assert!(again.version > found.version);
    // The same id under another kind is another counter.
    assert_eq!(
        counters
            .find(&key(ThrottleKind::Account, "mac-of-alice-from-192.0.2.1"))
            .await
            .unwrap(),
        None
    );
}

pub async fn login_throttle_lets_one_of_many_concurrent_writes_of_a_version_through(
    store: Arc<dyn Store>,
) {
    let ip = key(ThrottleKind::Ip, "mac-of-198.51.100.7");
    let inserts: Vec<_> = (0..16)
        .map(|n| {
            let (store, ip) = (store.clone(), ip.clone());
            tokio::spawn(async move {
                store
                    .login_throttle()
                    .put(&ip, None, &state(n, at(0)), at(3600))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut won = 0;
    for insert in inserts {
        won += usize::from(insert.await.unwrap());
    }
    assert_eq!(won, 1);
    let version = store
        .login_throttle()
        .find(&ip)
        .await
        .unwrap()
        .unwrap()
        .version;
    let updates: Vec<_> = (0..16)
        .map(|n| {
            let (store, ip) = (store.clone(), ip.clone());
            tokio::spawn(async move {
                store
                    .login_throttle()
                    .put(&ip, Some(version), &state(100 + n, at(0)), at(3600))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut won = 0;
    for update in updates {
        won += usize::from(update.await.unwrap());
    }
    assert_eq!(won, 1);
}

pub async fn login_throttle_counts_each_of_many_concurrent_failures_once(store: Arc<dyn Store>) {
    let account = key(ThrottleKind::Account, "mac-of-alice");
    let failures: Vec<_> = (0..12)
        .map(|_| {
            let (store, account) = (store.clone(), account.clone());
            tokio::spawn(async move { count_failure(store.as_ref(), &account, at(5)).await })
        })
        .collect();
    let mut seen = Vec::new();
    for failure in failures {
        seen.push(failure.await.unwrap());
    }
    seen.sort_unstable();
    // Each attempt saw its own count: none was lost, none counted twice.
    assert_eq!(seen, (1..=12).collect::<Vec<_>>());
    let stored = store
        .login_throttle()
        .find(&account)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.state.failures, 12);
    // The 10th locked the key for 15 minutes from then.
    assert_eq!(
        stored.state.locked_until,
        Some(at(5) + Duration::minutes(15))
    );
}

pub async fn login_throttle_purge_removes_only_expired_counters(store: Arc<dyn Store>) {
    let counters = store.login_throttle();
    let (short, long) = (
        key(ThrottleKind::Totp, "short"),
        key(ThrottleKind::Totp, "long"),
    );
    assert!(
        counters
            .put(&short, None, &state(1, at(0)), at(900))
            .await
            .unwrap()
    );
    assert!(
        counters
            .put(&long, None, &state(1, at(0)), at(3600))
            .await
            .unwrap()
    );
    assert_eq!(counters.purge_expired(at(899)).await.unwrap(), 0);
    assert_eq!(counters.purge_expired(at(900)).await.unwrap(), 1);
    assert_eq!(counters.find(&short).await.unwrap(), None);
    assert!(counters.find(&long).await.unwrap().is_some());
    // A purged counter starts again from nothing.
    assert!(
        counters
            .put(&short, None, &state(1, at(901)), at(1800))
            .await
            .unwrap()
    );
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let (_db, store) = super::super::open(super::super::Backend::Postgres).await;
                    super::$name(store).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let (_db, store) = super::super::open(super::super::Backend::Sqlite).await;
                    super::$name(store).await;
                }
            )*
        }
    };
}

both_backends!(
    login_throttle_counters_round_trip_and_change_by_compare_and_set,
    login_throttle_lets_one_of_many_concurrent_writes_of_a_version_through,
    login_throttle_counts_each_of_many_concurrent_failures_once,
    login_throttle_purge_removes_only_expired_counters,
);
