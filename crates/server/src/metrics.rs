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
use http::{HeaderValue, Method, StatusCode, header};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::tls::ListenerKind;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    endpoint: String,
    status: u16,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    grant_type: &'static str,
    binding: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClientAuthFailureLabels {
    reason: &'static str,
}

/// The protocol outcome of an error answer: its OAuth error code (or the admin API's
/// `not_found`, `conflict`), a response extension the error types set so that the request
/// metrics count by code, a bounded set, rather than only by status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome(pub &'static str);

impl Outcome {
    /// Marks `response` with the outcome `code`.
    pub fn mark(response: &mut Response, code: &'static str) {
        response.extensions_mut().insert(Outcome(code));
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RateLimitedLabels {
    endpoint: &'static str,
    key: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RateLimitBackendLabels {
    backend: &'static str,
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoginLabels {
    outcome: &'static str,
}

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<EndpointLabels, Histogram>,
    tokens_issued: Family<TokenLabels, Counter>,
    client_auth_failures: Family<ClientAuthFailureLabels, Counter>,
    connections: Family<ListenerLabels, Gauge>,
    handshake_failures: Family<HandshakeLabels, Counter>,
    waiting_polls: Gauge,
    rate_limited: Family<RateLimitedLabels, Counter>,
    rate_limit_backend_errors: Family<RateLimitBackendLabels, Counter>,
    login_attempts: Family<LoginLabels, Counter>,
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
        let durations = Family::<EndpointLabels, Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        let tokens_issued = Family::<TokenLabels, Counter>::default();
        let client_auth_failures = Family::<ClientAuthFailureLabels, Counter>::default();
        let connections = Family::<ListenerLabels, Gauge>::default();
        let handshake_failures = Family::<HandshakeLabels, Counter>::default();
        let waiting_polls = Gauge::default();
        let rate_limited = Family::<RateLimitedLabels, Counter>::default();
        let rate_limit_backend_errors = Family::<RateLimitBackendLabels, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests refused by a rate limit (429), by endpoint and key (ip, client, auth_failures)",
            rate_limited.clone(),
        );
        registry.register(
            "rate_limit_backend_errors",
            "Failures and timeouts of the shared rate-limit backend (database, redis); on_backend_error decides what the request gets",
            rate_limit_backend_errors.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by method, endpoint (the matched route), status and outcome (status class, or the OAuth error code of an error answer)",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by endpoint and outcome",
            durations.clone(),
        );
        registry.register(
            "tokens_issued",
            "Access tokens issued by grant type and binding (mtls, dpop, none)",
            tokens_issued.clone(),
        );
        registry.register(
            "client_auth_failures",
            "Refused client authentications by reason",
            client_auth_failures.clone(),
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
        let login_attempts = Family::<LoginLabels, Counter>::default();
        registry.register(
            "login_attempts",
            "Customer login steps by outcome: success, bad_credentials, unknown_user, throttled (a delay refused it unchecked), locked (a lock did), totp_success, totp_failed, totp_locked",
            login_attempts.clone(),
        );
        Self {
            registry,
            requests,
            durations,
            tokens_issued,
            client_auth_failures,
            connections,
            handshake_failures,
            waiting_polls,
            rate_limited,
            rate_limit_backend_errors,
            login_attempts,
        }
    }

    /// Counts a customer's login step by its `outcome` (see the metric's help).
    pub fn login_attempt(&self, outcome: &'static str) {
        self.login_attempts
            .get_or_create(&LoginLabels { outcome })
            .inc();
    }

    /// Counts a request a rate limit refused at `endpoint` by a bucket of `key` kind.
    pub fn rate_limited(&self, endpoint: &'static str, key: &'static str) {
        self.rate_limited
            .get_or_create(&RateLimitedLabels { endpoint, key })
            .inc();
    }

    /// Counts a failure or timeout of the shared rate-limit `backend`.
    pub fn rate_limit_backend_error(&self, backend: &'static str) {
        self.rate_limit_backend_errors
            .get_or_create(&RateLimitBackendLabels { backend })
            .inc();
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

    /// Counts an access token issued with `grant_type` (one of the token endpoint's grant
    /// names), bound by `confirmation` (`None`: unbound, which no client gets today).
    pub fn token_issued(
        &self,
        grant_type: &'static str,
        confirmation: Option<&portcullis_core::access_token::Confirmation>,
    ) {
        use portcullis_core::access_token::Confirmation;
        let binding = match confirmation {
            Some(Confirmation::Certificate { .. }) => "mtls",
            Some(Confirmation::DpopKey { .. }) => "dpop",
            None => "none",
        };
        self.tokens_issued
            .get_or_create(&TokenLabels {
                grant_type,
                binding,
            })
            .inc();
    }

    /// Counts a refused client authentication, by its bounded reason.
    pub fn client_auth_failed(&self, reason: crate::client_auth::FailureReason) {
        self.client_auth_failures
            .get_or_create(&ClientAuthFailureLabels {
                reason: reason.as_str(),
            })
            .inc();
    }

    fn observe(
        &self,
        method: &Method,
        endpoint: &str,
        status: StatusCode,
        outcome: Option<Outcome>,
        elapsed: Duration,
    ) {
        let outcome = outcome.map_or_else(|| status_class(status), |o| o.0);
        self.requests
            .get_or_create(&RequestLabels {
                method: method_label(method),
                endpoint: endpoint.to_owned(),
                status: status.as_u16(),
                outcome,
            })
            .inc();
        self.durations
            .get_or_create(&EndpointLabels {
                endpoint: endpoint.to_owned(),
                outcome,
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

/// The method as a label: the ones we serve, and `other` for anything a client makes up.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// `2xx`, `4xx`…: the outcome of an answer that carries no protocol error code.
fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Middleware recording each request's count and latency, labelled by the matched route (never
/// the raw path, which would let clients blow up the label space), a bounded method, the status
/// and the outcome: every label value comes from a bounded set.
pub async fn record(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().clone();
    let start = std::time::Instant::now();
    let response = next.run(request).await;
    metrics.observe(
        &method,
        &endpoint,
        response.status(),
        response.extensions().get::<Outcome>().copied(),
        start.elapsed(),
    );
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
        metrics.observe(
            &Method::GET,
            "/jwks",
            StatusCode::OK,
            None,
            Duration::from_millis(3),
        );
        metrics.tls_handshake_failed(ListenerKind::Mtls, "timeout");
        let guard = metrics.connection_opened(ListenerKind::Main);
        let text = metrics.encode().unwrap();
        assert!(
            text.contains(
                r#"portcullis_http_requests_total{method="GET",endpoint="/jwks",status="200",outcome="2xx"} 1"#
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

    #[test]
    fn counts_tokens_by_grant_and_binding_auth_failures_by_reason_and_errors_by_code() {
        use portcullis_core::access_token::Confirmation;
        let metrics = Metrics::new();
        let dpop = Confirmation::DpopKey { jkt: "k".into() };
        metrics.token_issued("authorization_code", Some(&dpop));
        metrics.token_issued("authorization_code", Some(&dpop));
        metrics.token_issued("client_credentials", None);
        metrics.client_auth_failed(crate::client_auth::FailureReason::InvalidAssertion);
        metrics.observe(
            &Method::POST,
            "/token",
            StatusCode::BAD_REQUEST,
            Some(Outcome("invalid_grant")),
            Duration::from_millis(1),
        );
        let made_up = Method::from_bytes(b"BREW").unwrap();
        metrics.observe(
            &made_up,
            "unmatched",
            StatusCode::NOT_FOUND,
            None,
            Duration::from_millis(1),
        );
        let text = metrics.encode().unwrap();
        for line in [
            r#"portcullis_tokens_issued_total{grant_type="authorization_code",binding="dpop"} 2"#,
            r#"portcullis_tokens_issued_total{grant_type="client_credentials",binding="none"} 1"#,
            r#"portcullis_client_auth_failures_total{reason="invalid_assertion"} 1"#,
            r#"portcullis_http_requests_total{method="POST",endpoint="/token",status="400",outcome="invalid_grant"} 1"#,
            r#"portcullis_http_requests_total{method="other",endpoint="unmatched",status="404",outcome="4xx"} 1"#,
            r#"portcullis_http_request_duration_seconds_count{endpoint="/token",outcome="invalid_grant"} 1"#,
        ] {
            assert!(text.contains(line), "{line} not in:\n{text}");
        }
    }
}
