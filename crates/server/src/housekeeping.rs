//! Background upkeep of a running server: the replay cache (client assertion, DPoP proof and
//! software statement identifiers) keeps each entry only while the thing it guards could still be
//! accepted; pushed requests, codes, interactions, sessions and refresh tokens expire; all are
//! purged here so that the tables stay the size of their live contents. So are the access-token
//! deny list (once the tokens it names have expired) and the revocation event feed (events every
//! recipient acknowledged, and deliveries nobody fetched), and the login throttle's counters once
//! nothing they hold matters any more. Every replica runs it; the deletes are
//! idempotent. Each replica also seals its audit chain's head at intervals ([`run_seals`]).

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::Clock;
use portcullis_core::store::{Store, StoreError};
use tokio::sync::watch;

/// How long an expired authorization code is kept to recognise its replay.
pub const CODE_REPLAY_WINDOW: time::Duration = time::Duration::hours(1);

/// How long a revocation event every recipient has acknowledged stays in the feed, for the
/// operator's view (`GET /admin/v1/revocation-events`).
pub const ACKNOWLEDGED_EVENT_RETENTION: time::Duration = time::Duration::hours(1);

/// How long a revocation event waits for a recipient that does not fetch it. By then the tokens
/// it announces have long expired (access tokens live at most an hour), so a resource server
/// that has been away this long has nothing left to learn from it.
pub const UNDELIVERED_EVENT_RETENTION: time::Duration = time::Duration::days(7);

/// How often expired replay entries are deleted.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(60);

/// Deletes the replay entries and pushed requests that have expired; returns how many.
///
/// # Errors
/// [`StoreError`] on database failure.
pub async fn purge(store: &dyn Store, clock: &dyn Clock) -> Result<u64, StoreError> {
    let now = clock.now();
    let replay = store.replay().purge_expired(now).await?;
    let pushed = store.pushed_requests().purge_expired(now).await?;
    // Codes stay a while after they expire, so that a replay is still recognised as one and
    // revokes its grant (checklist #1) rather than looking like an unknown code.
    let codes = store
        .codes()
        .purge_expired(now - CODE_REPLAY_WINDOW)
        .await?;
    let refresh = store.refresh_tokens().purge_expired(now).await?;
    let access = store.access_tokens().purge_expired(now).await?;
    let sessions = store.sessions().purge_expired(now).await?;
    let interactions = store.interactions().purge_expired(now).await?;
    let revocations = store
        .revocations()
        .purge(
            now,
            now - ACKNOWLEDGED_EVENT_RETENTION,
            now - UNDELIVERED_EVENT_RETENTION,
        )
        .await?;
    // Rate-limit buckets that are full again mean the same as none (crate::ratelimit).
    let buckets = store
        .rate_limits()
        .purge_idle(portcullis_core::ratelimit::micros(now))
        .await?;
    // Login-throttle counters whose window, wait, lock and trust are all over.
    let throttle = store.login_throttle().purge_expired(now).await?;
    Ok(replay
        + pushed
        + codes
        + refresh
        + access
        + sessions
        + interactions
        + revocations
        + buckets
        + throttle)
}

/// Purges every [`PURGE_INTERVAL`] until `stop` turns true. Failures are logged and retried at
/// the next tick: a replay cache that grows for a while is harmless, a stopped server is not.
pub async fn run(store: Arc<dyn Store>, clock: Arc<dyn Clock>, mut stop: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(PURGE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => match purge(store.as_ref(), clock.as_ref()).await {
                Ok(0) => {}
                Ok(purged) => tracing::debug!(purged, "expired replay entries deleted"),
                Err(error) => tracing::warn!(%error, "could not purge the replay cache"),
            },
            () = async {
                let _ = stop.wait_for(|s| *s).await;
            } => return,
        }
    }
}

/// Seals this replica's audit chain head every `interval` (`audit.seal_interval_secs`) until
/// `stop` turns true; the last seal at shutdown is [`crate::serve::Running::shutdown`]'s, after the
/// listeners have drained. Failures are logged and retried at the next tick: until then the
/// unsealed tail of the chain grows, which `portcullis audit verify` reports.
pub async fn run_seals(
    sealer: crate::audit::Sealer,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate: there is nothing to seal at start.
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = ticks.tick() => match sealer.seal().await {
                Ok(Some(seal)) => tracing::debug!(chain_seq = seal.chain_seq, "audit chain sealed"),
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "could not seal the audit chain"),
            },
            () = async {
                let _ = stop.wait_for(|s| *s).await;
            } => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::ManualClock;
    use portcullis_core::store::{FirstUse, ReplayKey, ReplayKind};
    use time::{Duration as TimeDuration, OffsetDateTime};

    #[tokio::test]
    async fn purge_deletes_only_what_has_expired_and_run_stops_when_told() {
        let dir = tempfile::tempdir().unwrap();
        let store = portcullis_store::connect_and_migrate(
            &format!("sqlite:{}", dir.path().join("t.db").display()),
            &portcullis_store::PoolOptions::default(),
        )
        .await
        .unwrap();
        let clock = Arc::new(ManualClock::new(
            OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
        ));
        let now = clock.now();
        for (id, lifetime) in [("short", 10), ("long", 600)] {
            let key = ReplayKey {
                kind: ReplayKind::DpopProof,
                issuer: "jkt",
                id,
            };
            let first = store
                .replay()
                .record(key, now + TimeDuration::seconds(lifetime), now)
                .await
                .unwrap();
            assert_eq!(first, FirstUse::First);
        }
        assert_eq!(purge(store.as_ref(), clock.as_ref()).await.unwrap(), 0);
        clock.advance(TimeDuration::seconds(11));
        assert_eq!(purge(store.as_ref(), clock.as_ref()).await.unwrap(), 1);
        // The unexpired entry still guards its identifier.
        let again = store
            .replay()
            .record(
                ReplayKey {
                    kind: ReplayKind::DpopProof,
                    issuer: "jkt",
                    id: "long",
                },
                clock.now() + TimeDuration::seconds(600),
                clock.now(),
            )
            .await
            .unwrap();
        assert_eq!(again, FirstUse::Replayed);

        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(store.clone(), clock.clone(), stopped));
        stop.send(true).unwrap();
        task.await.unwrap();
    }
}
