//! Waking the long polls of the revocation event feed (`/events`, RFC 8936 §2.4) when something
//! may have arrived for them, on this replica and from the others.
//!
//! Each replica holds one [`FeedWatcher`]: a `tokio::sync::watch` of the last revocation epoch
//! this replica has seen. A long poll subscribes *before* it first reads its events, then waits
//! for the value to change (or for its deadline) and reads again. Two things change it:
//!
//! - a revocation made on this replica calls [`FeedWatcher::notify`] once its transaction has
//!   committed, so the local pollers wake at once;
//! - while at least one poll waits, a background task reads the epoch every
//!   [`STORE_CHECK_INTERVAL`], so revocations committed by other replicas wake the pollers
//!   within that time. When nobody waits the task ends, and nothing is read.
//!
//! The change check reads the revocation *epoch*, not the feed's highest `seq`: every revoking
//! transaction bumps the epoch as its last write under the epoch row's lock, so epochs become
//! visible in increasing order, whereas on PostgreSQL a `seq` is drawn before that lock and two
//! concurrent revocations can commit their events out of `seq` order (the highest `seq` would
//! then not change when the lower one lands). The epoch also moves for changes that enqueue
//! nothing (a client removed, a revocation without recipients): the pollers then read once for
//! nothing, which is harmless.
//!
//! A wake-up only says "read again": what a poller gets is always what the store says, so a
//! spurious wake-up costs one read and a missed one (never expected) costs latency, not events.
//! At shutdown [`FeedWatcher::close`] makes every waiting poll answer at once, so that open
//! connections can drain within `limits.shutdown_grace_secs`.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use portcullis_core::store::Store;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::ConfigError;

/// How often a replica with waiting pollers checks the store for revocations made elsewhere:
/// an event reaches a poller on another replica within this time (plus one poll).
pub const STORE_CHECK_INTERVAL: Duration = Duration::from_millis(200);

/// The longest configurable long poll, in seconds.
pub const MAX_LONG_POLL_SECS: u64 = 300;

/// The revocation event feed (`/events`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// How long a poll that finds nothing waits for an event before answering empty, in seconds
    /// (RFC 8936 §2.4 `returnImmediately: false`). 0 answers at once. Less than
    /// `limits.request_timeout_secs`, which would otherwise cut the poll off.
    pub long_poll_secs: u64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self { long_poll_secs: 20 }
    }
}

impl EventsConfig {
    /// Checks the long poll against its bound and the request timeout.
    ///
    /// # Errors
    /// [`ConfigError`] naming `events.long_poll_secs`.
    pub fn validate(&self, request_timeout_secs: u64) -> Result<(), ConfigError> {
        if self.long_poll_secs > MAX_LONG_POLL_SECS || self.long_poll_secs >= request_timeout_secs {
            return Err(ConfigError::new(
                "events.long_poll_secs",
                format!(
                    "must be 0 to {MAX_LONG_POLL_SECS} and less than limits.request_timeout_secs ({request_timeout_secs}), which would cut long polls off"
                ),
            ));
        }
        Ok(())
    }
}

/// This replica's wake-up signal for long polls of the event feed.
#[derive(Debug)]
pub struct FeedWatcher {
    store: Arc<dyn Store>,
    check_interval: Duration,
    /// The last revocation epoch seen; sending wakes every subscribed poll.
    latest: watch::Sender<i64>,
    /// How many polls wait now (a watch, so that tests can wait for a poll to be waiting).
    waiting: watch::Sender<usize>,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The background check, while it runs.
    task: Option<JoinHandle<()>>,
    /// Shutting down: waiting polls answer at once.
    closed: bool,
}

impl FeedWatcher {
    /// A watcher of `store` that checks it every [`STORE_CHECK_INTERVAL`] while polls wait.
    #[must_use]
    pub fn new(store: Arc<dyn Store>) -> Arc<Self> {
        Self::with_interval(store, STORE_CHECK_INTERVAL)
    }

    /// A watcher with another check interval (tests).
    #[must_use]
    pub fn with_interval(store: Arc<dyn Store>, check_interval: Duration) -> Arc<Self> {
        Arc::new(Self {
            store,
            check_interval,
            latest: watch::Sender::new(0),
            waiting: watch::Sender::new(0),
            inner: Mutex::new(Inner::default()),
        })
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts waiting: call before reading the store, so that nothing committed after that read
    /// can be missed. The background check runs while any [`Waiter`] lives.
    #[must_use]
    pub fn subscribe(self: &Arc<Self>) -> Waiter {
        let changes = self.latest.subscribe();
        let mut inner = self.inner();
        self.waiting.send_modify(|n| *n += 1);
        if inner.task.as_ref().is_none_or(JoinHandle::is_finished) {
            inner.task = Some(tokio::spawn(Arc::clone(self).check_store()));
        }
        drop(inner);
        Waiter {
            feed: Arc::clone(self),
            changes,
        }
    }

    /// An event was just committed on this replica: wakes the local polls now. Reads the epoch
    /// only when a poll waits here.
    pub async fn notify(&self) {
        if self.waiting() == 0 {
            return;
        }
        match self.store.revocations().epoch().await {
            Ok(epoch) => self.advance(epoch),
            Err(error) => {
                // Wake them anyway: they read the store themselves.
                tracing::debug!(%error, "event feed: reading the revocation epoch");
                self.latest.send_modify(|_| {});
            }
        }
    }

    /// Shutting down: every waiting poll answers now, and later ones do not wait.
    pub fn close(&self) {
        self.inner().closed = true;
        self.latest.send_modify(|_| {});
    }

    /// Whether the server is shutting down.
    #[must_use]
    pub fn closing(&self) -> bool {
        self.inner().closed
    }

    /// How many polls wait on this replica now.
    #[must_use]
    pub fn waiting(&self) -> usize {
        *self.waiting.borrow()
    }

    /// The number of waiting polls as it changes (tests wait on it for a poll to be waiting).
    #[must_use]
    pub fn waiting_changes(&self) -> watch::Receiver<usize> {
        self.waiting.subscribe()
    }

    /// Records `epoch`, waking the polls when it is newer than the last seen.
    fn advance(&self, epoch: i64) {
        self.latest.send_if_modified(|seen| {
            let newer = epoch > *seen;
            if newer {
                *seen = epoch;
            }
            newer
        });
    }

    /// Reads the epoch every `check_interval` until nobody waits.
    async fn check_store(self: Arc<Self>) {
        // The first check comes one interval after the first poll subscribed: that poll has
        // just read the store itself.
        let period = self.check_interval;
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            {
                let mut inner = self.inner();
                if self.waiting() == 0 {
                    // Decided under the lock: a poll that subscribes after this sees the task
                    // finished (or gone) and starts another.
                    inner.task = None;
                    return;
                }
            }
            match self.store.revocations().epoch().await {
                Ok(epoch) => self.advance(epoch),
                Err(error) => tracing::warn!(%error, "event feed: reading the revocation epoch"),
            }
        }
    }

    /// The background check's task, if it runs (tests).
    #[cfg(test)]
    fn take_task(&self) -> Option<JoinHandle<()>> {
        self.inner().task.take()
    }
}

/// One waiting poll. Dropping it stops waiting.
#[derive(Debug)]
pub struct Waiter {
    feed: Arc<FeedWatcher>,
    changes: watch::Receiver<i64>,
}

impl Waiter {
    /// Resolves when something may have arrived for any poller (or at shutdown): read again.
    pub async fn changed(&mut self) {
        if self.changes.changed().await.is_err() {
            // The sender lives as long as the watcher this waiter holds: never here.
            std::future::pending::<()>().await;
        }
    }

    /// Whether the server is shutting down, so the poll should answer now.
    #[must_use]
    pub fn closing(&self) -> bool {
        self.feed.closing()
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.feed.waiting.send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bounds a wait that must end well before it; not a delay.
    const PATIENCE: Duration = Duration::from_secs(10);

    async fn store() -> (Arc<dyn Store>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = portcullis_store::connect_and_migrate(
            &format!("sqlite:{}?mode=rwc", dir.path().join("t.db").display()),
            &portcullis_store::PoolOptions::default(),
        )
        .await
        .unwrap();
        (store, dir)
    }

    #[tokio::test]
    async fn a_local_notify_wakes_waiting_polls_at_once() {
        let (store, _dir) = store().await;
        // A background check that would not come round during the test.
        let feed = FeedWatcher::with_interval(store.clone(), Duration::from_secs(3600));
        let mut waiter = feed.subscribe();
        assert_eq!(feed.waiting(), 1);

        store.revocations().bump().await.unwrap();
        feed.notify().await;
        tokio::time::timeout(PATIENCE, waiter.changed())
            .await
            .expect("woken by the notification");
        assert!(!waiter.closing());
        drop(waiter);
        assert_eq!(feed.waiting(), 0);
        // Nobody waits: a notification reads nothing and wakes nobody.
        feed.notify().await;
    }

    #[tokio::test]
    async fn another_replicas_revocation_wakes_polls_through_the_store_check() {
        let (store, _dir) = store().await;
        let here = FeedWatcher::new(store.clone());
        let elsewhere = FeedWatcher::new(store.clone());
        let mut waiter = here.subscribe();
        let start = store.revocations().epoch().await.unwrap();

        // Another replica revokes; only it is notified.
        store.revocations().bump().await.unwrap();
        elsewhere.notify().await;
        tokio::time::timeout(PATIENCE, waiter.changed())
            .await
            .expect("the store check sees the other replica's revocation");
        assert_eq!(*waiter.changes.borrow(), start + 1);

        // Once nobody waits, the check stops.
        let task = here.take_task().expect("the check runs while a poll waits");
        drop(waiter);
        tokio::time::timeout(PATIENCE, task)
            .await
            .expect("the check stops when nobody waits")
            .unwrap();
        // And a new poller starts it again.
        let _waiter = here.subscribe();
        assert!(here.take_task().is_some());
    }

    #[tokio::test]
    async fn closing_wakes_every_poll() {
        let (store, _dir) = store().await;
        let feed = FeedWatcher::new(store);
        let mut first = feed.subscribe();
        let mut second = feed.subscribe();
        first.changes.mark_unchanged();
        second.changes.mark_unchanged();
        feed.close();
        tokio::time::timeout(PATIENCE, first.changed())
            .await
            .unwrap();
        tokio::time::timeout(PATIENCE, second.changed())
            .await
            .unwrap();
        assert!(first.closing() && second.closing() && feed.closing());
    }

    #[test]
    fn the_long_poll_stays_under_the_request_timeout() {
        assert!(EventsConfig::default().validate(30).is_ok());
        assert!(EventsConfig { long_poll_secs: 0 }.validate(1).is_ok());
        for (long_poll_secs, timeout) in [(30, 30), (31, 30), (301, 1000)] {
            let err = EventsConfig { long_poll_secs }
                .validate(timeout)
                .unwrap_err();
            assert_eq!(err.key, "events.long_poll_secs");
        }
    }
}
