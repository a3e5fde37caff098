//! Prometheus metrics, served on their own plain-HTTP listener (loopback by default) so that they
//! are never exposed with the public endpoints. Counters are lock-free atomics; the registry is
//! only locked while `/metrics` is scraped.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, StatusCode, header};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::tls::ListenerKind;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandshakeLabels {
    listener: &'static str,
    reason: &'static str,
}

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram>,
    connections: Family<ListenerLabels, Gauge>,
    handshake_failures: Family<HandshakeLabels, Counter>,
    waiting_polls: Gauge,
}

fn duration_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ])
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered.
    #[must_use]
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("portcullis");
        let requests = Family::<RequestLabels, Counter>::default();
        let durations = Family::<RouteLabels, Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        let connections = Family::<ListenerLabels, Gauge>::default();
        let handshake_failures = Family::<HandshakeLabels, Counter>::default();
        let waiting_polls = Gauge::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            durations.clone(),
        );
        registry.register(
            "open_connections",
            "Open TLS connections by listener",
            connections.clone(),
        );
        registry.register(
            "tls_handshake_failures",
            "Failed or timed-out TLS handshakes",
            handshake_failures.clone(),
        );
        registry.register(
            "event_feed_waiting_polls",
            "Long polls of the revocation event feed (/events) waiting on this replica",
            waiting_polls.clone(),
        );
        Self {
            registry,
            requests,
            durations,
            connections,
            handshake_failures,
            waiting_polls,
        }
    }

    /// Counts a long poll of the event feed while it waits, until the guard drops.
    #[must_use]
    pub fn poll_waiting(&self) -> GaugeGuard {
        self.waiting_polls.inc();
        GaugeGuard(self.waiting_polls.clone())
    }

    /// Counts a failed handshake.
    pub fn tls_handshake_failed(&self, listener: ListenerKind, reason: &'static str) {
        self.handshake_failures
            .get_or_create(&HandshakeLabels {
                listener: listener.as_str(),
                reason,
            })
            .inc();
    }

    /// Counts an open connection until the guard drops.
    #[must_use]
    pub fn connection_opened(&self, listener: ListenerKind) -> ConnectionGuard {
        let gauge = self
            .connections
            .get_or_create(&ListenerLabels {
                listener: listener.as_str(),
            })
            .clone();
        gauge.inc();
        ConnectionGuard(gauge)
    }

    fn observe(&self, method: &str, route: &str, status: StatusCode, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status: status.as_u16(),
            })
            .inc();
        self.durations
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// The text exposition format.
    ///
    /// # Errors
    /// If encoding fails.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// The accept loop reports failed handshakes and open connections here.
impl crate::tls::listener::ListenerObserver for Metrics {
    fn handshake_failed(&self, listener: ListenerKind, reason: &'static str) {
        self.tls_handshake_failed(listener, reason);
    }

    fn connection_opened(&self, listener: ListenerKind) -> Box<dyn Send> {
        Box::new(Metrics::connection_opened(self, listener))
    }
}

/// Decrements the open-connection gauge when the connection ends.
#[derive(Debug)]
pub struct ConnectionGuard(Gauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Decrements a gauge when dropped.
#[derive(Debug)]
pub struct GaugeGuard(Gauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Middleware recording each request's count and latency, labelled by the matched route (never
/// the raw path, which would let clients blow up the label space).
pub async fn record(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let start = std::time::Instant::now();
    let response = next.run(request).await;
    metrics.observe(&method, &route, response.status(), start.elapsed());
    response
}

/// The router of the metrics listener.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(metrics)
}

async fn scrape(State(metrics): State<Arc<Metrics>>) -> Response {
    match metrics.encode() {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            )],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_request_connection_and_handshake_metrics() {
        let metrics = Arc::new(Metrics::new());
        metrics.observe("GET", "/jwks", StatusCode::OK, Duration::from_millis(3));
        metrics.tls_handshake_failed(ListenerKind::Mtls, "timeout");
        let guard = metrics.connection_opened(ListenerKind::Main);
        let text = metrics.encode().unwrap();
        assert!(
            text.contains(
                r#"portcullis_http_requests_total{method="GET",route="/jwks",status="200"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(
            r#"portcullis_tls_handshake_failures_total{listener="mtls",reason="timeout"} 1"#
        ));
        assert!(text.contains(r#"portcullis_open_connections{listener="main"} 1"#));
        let waiting = metrics.poll_waiting();
        assert!(
            metrics
                .encode()
                .unwrap()
                .contains("portcullis_event_feed_waiting_polls 1")
        );
        drop(waiting);
        drop(guard);
        assert!(
            metrics
                .encode()
                .unwrap()
                .contains(r#"portcullis_open_connections{listener="main"} 0"#)
        );
    }
}
