//! Counters of what the verifier did, readable as a [`MetricsSnapshot`] or in the Prometheus text
//! format for an API's own `/metrics`. Plain atomics: no lock on the request path.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// The counters.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    accepted: AtomicU64,
    refused: AtomicU64,
    introspections: AtomicU64,
    introspection_cache_hits: AtomicU64,
    introspection_failures: AtomicU64,
    jwks_fetches: AtomicU64,
    jwks_failures: AtomicU64,
    feed_polls: AtomicU64,
    feed_failures: AtomicU64,
    feed_events: AtomicU64,
    refused_while_lagging: AtomicU64,
    sessions_closed: AtomicU64,
}

macro_rules! counter {
    ($($method:ident => $field:ident),* $(,)?) => {
        impl Metrics {
            $(pub(crate) fn $method(&self) {
                self.$field.fetch_add(1, Ordering::Relaxed);
            })*
        }
    };
}

counter! {
    accepted => accepted,
    refused => refused,
    introspected => introspections,
    introspection_cache_hit => introspection_cache_hits,
    introspection_failed => introspection_failures,
    jwks_fetched => jwks_fetches,
    jwks_failed => jwks_failures,
    feed_polled => feed_polls,
    feed_failed => feed_failures,
    refused_lagging => refused_while_lagging,
}

impl Metrics {
    /// A WebSocket session closed because its token died (only the `axum` feature has sessions).
    #[cfg(feature = "axum")]
    pub(crate) fn session_closed(&self) {
        self.sessions_closed.fetch_add(1, Ordering::Relaxed);
    }
}

impl Metrics {
    pub(crate) fn feed_events(&self, n: u64) {
        self.feed_events.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, feed: FeedState, feed_lag_ms: Option<u64>) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            accepted: get(&self.accepted),
            refused: get(&self.refused),
            introspections: get(&self.introspections),
            introspection_cache_hits: get(&self.introspection_cache_hits),
            introspection_failures: get(&self.introspection_failures),
            jwks_fetches: get(&self.jwks_fetches),
            jwks_failures: get(&self.jwks_failures),
            feed_polls: get(&self.feed_polls),
            feed_failures: get(&self.feed_failures),
            feed_events: get(&self.feed_events),
            refused_while_lagging: get(&self.refused_while_lagging),
            sessions_closed: get(&self.sessions_closed),
            feed,
            feed_lag_ms,
        }
    }
}

/// The state of the revocation event feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedState {
    /// No feed is configured.
    Off,
    /// Not yet heard from since start-up.
    Starting,
    /// Heard from within the allowed lag: cached answers are trusted.
    Live,
    /// Not heard from for longer than the allowed lag: cached answers are not trusted.
    Lagging,
}

impl FeedState {
    /// Its name in logs and metrics.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            FeedState::Off => "off",
            FeedState::Starting => "starting",
            FeedState::Live => "live",
            FeedState::Lagging => "lagging",
        }
    }
}

/// The counters at one moment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MetricsSnapshot {
    /// Requests whose token was accepted.
    pub accepted: u64,
    /// Requests refused (any reason).
    pub refused: u64,
    /// Introspection calls made to the authorization server.
    pub introspections: u64,
    /// Introspection answers served from the cache.
    pub introspection_cache_hits: u64,
    /// Introspection calls that failed (network, status, bad answer).
    pub introspection_failures: u64,
    /// Successful JWKS fetches.
    pub jwks_fetches: u64,
    /// Failed JWKS fetches.
    pub jwks_failures: u64,
    /// Successful polls of the revocation feed.
    pub feed_polls: u64,
    /// Failed polls of the revocation feed.
    pub feed_failures: u64,
    /// Revocation events received.
    pub feed_events: u64,
    /// Requests refused because the feed lagged and the policy is to refuse.
    pub refused_while_lagging: u64,
    /// WebSocket sessions closed because their token died.
    pub sessions_closed: u64,
    /// The feed's state.
    pub feed: FeedState,
    /// Milliseconds since the feed was last heard from, if it ever was.
    pub feed_lag_ms: Option<u64>,
}

impl MetricsSnapshot {
    /// The counters in the Prometheus text exposition format, prefixed `portcullis_verify_`.
    #[must_use]
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP portcullis_verify_{name}_total {help}\n# TYPE portcullis_verify_{name}_total counter\nportcullis_verify_{name}_total {value}"
            );
        };
        counter(
            "accepted",
            "Requests whose token was accepted.",
            self.accepted,
        );
        counter("refused", "Requests whose token was refused.", self.refused);
        counter(
            "introspections",
            "Introspection calls to the authorization server.",
            self.introspections,
        );
        counter(
            "introspection_cache_hits",
            "Introspection answers served from the cache.",
            self.introspection_cache_hits,
        );
        counter(
            "introspection_failures",
            "Introspection calls that failed.",
            self.introspection_failures,
        );
        counter("jwks_fetches", "JWKS fetches.", self.jwks_fetches);
        counter("jwks_failures", "Failed JWKS fetches.", self.jwks_failures);
        counter("feed_polls", "Revocation feed polls.", self.feed_polls);
        counter(
            "feed_failures",
            "Failed revocation feed polls.",
            self.feed_failures,
        );
        counter(
            "feed_events",
            "Revocation events received.",
            self.feed_events,
        );
        counter(
            "refused_while_lagging",
            "Requests refused because the revocation feed lagged.",
            self.refused_while_lagging,
        );
        counter(
            "sessions_closed",
            "WebSocket sessions closed because their token died.",
            self.sessions_closed,
        );
        let _ = writeln!(
            out,
            "# HELP portcullis_verify_feed_lagging Whether the revocation feed is behind its allowed lag (cached answers untrusted).\n# TYPE portcullis_verify_feed_lagging gauge\nportcullis_verify_feed_lagging {}",
            u8::from(self.feed == FeedState::Lagging)
        );
        if let Some(lag) = self.feed_lag_ms {
            let _ = writeln!(
                out,
                "# HELP portcullis_verify_feed_lag_seconds Time since the revocation feed was last heard from.\n# TYPE portcullis_verify_feed_lag_seconds gauge\nportcullis_verify_feed_lag_seconds {:.3}",
                lag as f64 / 1000.0
            );
        }
        out
    }
}
