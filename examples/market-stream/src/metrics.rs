//! The example's own counters, which the metrics listener
//! (`portcullis_verify::cli::metrics_router`: `GET /metrics` and `GET /feed`) serves after the
//! verifier's: sessions open (a gauge, also what shutdown waits on), opened, and closed by reason;
//! ticks sent; renewals.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

/// Why a session ended, as this example counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// Its token expired.
    Expired,
    /// Its consent was withdrawn.
    GrantRevoked,
    /// Its token was revoked.
    TokenRevoked,
    /// A recheck found its token bad.
    Unverifiable,
    /// The revocation feed lagged and the token could not be vouched for.
    FeedUnavailable,
    /// The client closed it or went away.
    Client,
    /// The server is shutting down.
    Shutdown,
    /// The client did not read in time, or a protocol error.
    Failed,
}

impl Closed {
    const ALL: [Closed; 8] = [
        Closed::Expired,
        Closed::GrantRevoked,
        Closed::TokenRevoked,
        Closed::Unverifiable,
        Closed::FeedUnavailable,
        Closed::Client,
        Closed::Shutdown,
        Closed::Failed,
    ];

    /// Its label in `/metrics`.
    fn as_str(self) -> &'static str {
        match self {
            Closed::Expired => "expired",
            Closed::GrantRevoked => "grant_revoked",
            Closed::TokenRevoked => "token_revoked",
            Closed::Unverifiable => "unverifiable",
            Closed::FeedUnavailable => "feed_unavailable",
            Closed::Client => "client",
            Closed::Shutdown => "shutdown",
            Closed::Failed => "failed",
        }
    }

    /// How `portcullis_verify::ws` named the end (its `SessionEnd::as_str`).
    #[must_use]
    pub fn from_session_end(label: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == label)
            .unwrap_or(Closed::Failed)
    }
}

/// The example's counters. Shared by every session.
#[derive(Debug)]
pub struct StreamMetrics {
    /// Sessions open now; shutdown waits for it to reach 0.
    open: watch::Sender<u64>,
    opened: AtomicU64,
    closed: [AtomicU64; Closed::ALL.len()],
    ticks_sent: AtomicU64,
    renewals: AtomicU64,
    renewals_refused: AtomicU64,
}

impl Default for StreamMetrics {
    fn default() -> Self {
        Self {
            open: watch::Sender::new(0),
            opened: AtomicU64::new(0),
            closed: Default::default(),
            ticks_sent: AtomicU64::new(0),
            renewals: AtomicU64::new(0),
            renewals_refused: AtomicU64::new(0),
        }
    }
}

/// One open session, counted until dropped.
#[derive(Debug)]
pub struct SessionSlot {
    metrics: Arc<StreamMetrics>,
    closed: Closed,
}

impl SessionSlot {
    /// Records why the session is ending (counted when the slot is dropped).
    pub fn closing(&mut self, why: Closed) {
        self.closed = why;
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let index = Closed::ALL
            .iter()
            .position(|c| *c == self.closed)
            .unwrap_or(Closed::ALL.len() - 1);
        if let Some(counter) = self.metrics.closed.get(index) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        self.metrics
            .open
            .send_modify(|open| *open = open.saturating_sub(1));
    }
}

impl StreamMetrics {
    /// Counts a session opened; it stays open until the slot is dropped.
    #[must_use]
    pub fn open_session(self: &Arc<Self>) -> SessionSlot {
        self.opened.fetch_add(1, Ordering::Relaxed);
        self.open.send_modify(|open| *open += 1);
        SessionSlot {
            metrics: self.clone(),
            closed: Closed::Client,
        }
    }

    /// Sessions open now.
    #[must_use]
    pub fn sessions_open(&self) -> u64 {
        *self.open.borrow()
    }

    /// Waits until no session is open.
    pub async fn all_closed(&self) {
        let mut open = self.open.subscribe();
        let _ = open.wait_for(|n| *n == 0).await.map(|_| ());
    }

    /// Counts a tick sent.
    pub fn tick_sent(&self) {
        self.ticks_sent.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a renewal, accepted or not.
    pub fn renewal(&self, accepted: bool) {
        let counter = if accepted {
            &self.renewals
        } else {
            &self.renewals_refused
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters in the Prometheus text format, prefixed `market_stream_`.
    #[must_use]
    pub fn to_prometheus(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP market_stream_sessions_open WebSocket sessions open now.\n# TYPE market_stream_sessions_open gauge\nmarket_stream_sessions_open {}",
            self.sessions_open()
        );
        let _ = writeln!(
            out,
            "# HELP market_stream_sessions_opened WebSocket sessions opened.\n# TYPE market_stream_sessions_opened counter\nmarket_stream_sessions_opened_total {}",
            get(&self.opened)
        );
        let _ = writeln!(
            out,
            "# HELP market_stream_sessions_closed WebSocket sessions closed, by reason.\n# TYPE market_stream_sessions_closed counter"
        );
        for (why, counter) in Closed::ALL.iter().zip(&self.closed) {
            let _ = writeln!(
                out,
                "market_stream_sessions_closed_total{{reason=\"{}\"}} {}",
                why.as_str(),
                get(counter)
            );
        }
        let _ = writeln!(
            out,
            "# HELP market_stream_ticks_sent Ticks sent to sessions.\n# TYPE market_stream_ticks_sent counter\nmarket_stream_ticks_sent_total {}",
            get(&self.ticks_sent)
        );
        let _ = writeln!(
            out,
            "# HELP market_stream_renewals In-band renewals, by outcome.\n# TYPE market_stream_renewals counter\nmarket_stream_renewals_total{{outcome=\"accepted\"}} {}\nmarket_stream_renewals_total{{outcome=\"refused\"}} {}",
            get(&self.renewals),
            get(&self.renewals_refused)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_counted_open_until_dropped_and_closed_by_reason() {
        let metrics = Arc::new(StreamMetrics::default());
        let mut slot = metrics.open_session();
        let other = metrics.open_session();
        assert_eq!(metrics.sessions_open(), 2);
        slot.closing(Closed::from_session_end("grant_revoked"));
        drop(slot);
        drop(other);
        assert_eq!(metrics.sessions_open(), 0);
        let text = metrics.to_prometheus();
        assert!(text.contains("market_stream_sessions_open 0\n"), "{text}");
        assert!(
            text.contains("market_stream_sessions_opened_total 2\n"),
            "{text}"
        );
        assert!(
            text.contains("market_stream_sessions_closed_total{reason=\"grant_revoked\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("market_stream_sessions_closed_total{reason=\"client\"} 1\n"),
            "{text}"
        );
        assert_eq!(Closed::from_session_end("unknown"), Closed::Failed);
    }
}
