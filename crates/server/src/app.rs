//! The application state every handler shares, and the router of the two TLS listeners with its
//! middleware: request ids, sensitive-header marking, tracing, metrics, body and time limits,
//! security headers and the per-endpoint hardening of [`crate::hardening`].

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use http::{HeaderName, Request, StatusCode, header};
use portcullis_core::keys::KeyEncryptionKey;
use portcullis_core::store::Store;
use portcullis_core::{Clock, Rng};
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::client_auth::ClientAuthenticator;
use crate::config::Config;
use crate::keys::KeyService;
use crate::metrics::Metrics;
use crate::passwords::PasswordService;
use crate::routes;

/// The public base URLs of this deployment.
#[derive(Debug, Clone)]
pub struct Urls {
    /// The issuer identifier, exactly as configured or derived; endpoints hang off it.
    pub issuer: String,
    /// The base URL of the mTLS listener (RFC 8705 §5 aliases hang off it).
    pub mtls_base: String,
}

impl Urls {
    /// An endpoint on the main listener.
    #[must_use]
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// An endpoint on the mTLS listener.
    #[must_use]
    pub fn mtls_endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.mtls_base)
    }
}

/// Everything handlers share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Configuration as loaded.
    pub config: Arc<Config>,
    /// Public URLs.
    pub urls: Arc<Urls>,
    /// The store.
    pub store: Arc<dyn Store>,
    /// Signing keys.
    pub keys: Arc<KeyService>,
    /// The clock every time-dependent decision reads.
    pub clock: Arc<dyn Clock>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The random source for identifiers, secrets and tokens.
    pub rng: Arc<dyn Rng>,
    /// The key-encryption key (TOTP secrets are sealed with it).
    pub kek: Arc<KeyEncryptionKey>,
    /// Client authentication.
    pub client_auth: Arc<ClientAuthenticator>,
    /// Password hashing.
    pub passwords: Arc<PasswordService>,
    /// DPoP nonces, when `dpop.require_nonce` is set.
    pub dpop_nonces: Option<Arc<portcullis_core::dpop_nonce::DpopNonces>>,
    /// Where the customers' accounts come from (the consent page's choices).
    pub accounts: Arc<dyn portcullis_core::accounts::AccountDirectory>,
    /// The resource servers `/token` reads, cached per replica.
    pub resources: Arc<crate::resources::ResourceCache>,
    /// Dynamic client registration's admission rules.
    pub registration: Arc<crate::registration::Registrar>,
    /// Whether our access tokens are live, cached per replica under the revocation epoch.
    pub liveness: Arc<crate::liveness::Liveness>,
    /// Wakes the long polls of the revocation event feed (`/events`).
    pub feed: Arc<crate::feed::FeedWatcher>,
    /// Rate limits (`[rate_limits]`): the buckets and their backend.
    pub rate_limits: Arc<crate::ratelimit::RateLimiter>,
    /// Seals this replica's audit chain (the housekeeping timer, shutdown, the test control).
    pub sealer: crate::audit::Sealer,
    /// The test-only clock control.
    #[cfg(feature = "test-hooks")]
    pub test_clock: Arc<portcullis_core::OffsetClock>,
}

/// The DPoP nonces `config` asks for, keyed by a key derived from the KEK so every replica agrees.
#[must_use]
pub fn dpop_nonces(
    config: &Config,
    kek: &KeyEncryptionKey,
) -> Option<Arc<portcullis_core::dpop_nonce::DpopNonces>> {
    config.dpop.require_nonce.then(|| {
        Arc::new(portcullis_core::dpop_nonce::DpopNonces::new(
            &kek.derive_key("dpop-nonce"),
            config.dpop.nonce_window_secs,
        ))
    })
}

/// Headers whose values never reach a log (DESIGN.md, Secrets).
pub const SENSITIVE_HEADERS: [HeaderName; 5] = [
    header::AUTHORIZATION,
    header::COOKIE,
    header::SET_COOKIE,
    HeaderName::from_static("dpop"),
    HeaderName::from_static("client-cert"),
];

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The router of both TLS listeners.
pub fn router(state: AppState) -> Router {
    let limits = &state.config.limits;
    let timeout = Duration::from_secs(limits.request_timeout_secs);
    let body_limit = limits.max_body_bytes;
    let metrics = state.metrics.clone();

    let routes = routes::router();
    #[cfg(feature = "test-hooks")]
    let routes = routes.merge(routes::test_hooks::router());

    let trusted_proxies: Arc<[ipnet::IpNet]> =
        Arc::from(state.config.proxy.trusted_addresses.as_slice());
    let limits_state = state.clone();
    let guard = Arc::new(crate::hardening::Guard::new(state.clone()));
    let security_headers = Arc::new(crate::hardening::HeaderSettings::new(
        state.config.tls.hsts_preload,
    ));

    routes
        .with_state(state)
        .layer(DefaultBodyLimit::max(body_limit))
        // Inside the source-address layer, whose SourceIp it keys by (crate::ratelimit).
        .layer(axum::middleware::from_fn_with_state(
            limits_state,
            crate::ratelimit::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            guard,
            crate::hardening::guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            trusted_proxies,
            crate::source_ip::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            crate::metrics::record,
        ))
        .layer(
            ServiceBuilder::new()
                .layer(SetSensitiveRequestHeadersLayer::new(SENSITIVE_HEADERS))
                // The request id is always ours: a client's own `X-Request-Id` would otherwise
                // reach the logs and the audit trail as whatever the client chose.
                .map_request(|mut request: Request<axum::body::Body>| {
                    request.headers_mut().remove(REQUEST_ID);
                    request
                })
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(make_span)
                        .on_request(())
                        .on_response(
                            |response: &http::Response<_>,
                             latency: Duration,
                             _span: &tracing::Span| {
                                tracing::info!(
                                    status = response.status().as_u16(),
                                    latency_ms = latency.as_millis() as u64,
                                    "request"
                                );
                            },
                        ),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    timeout,
                )),
        )
        // Outermost, so that every answer carries the security headers (crate::hardening).
        .layer(axum::middleware::from_fn_with_state(
            security_headers,
            crate::hardening::headers,
        ))
}

/// The request span: method, path (never the query, which can carry codes) and request id;
/// `source_ip` and `client_id` are recorded later, by the hardening guard and by the client
/// authenticator once a client has proved who it is, so every later line of the request has them.
fn make_span<B>(request: &Request<B>) -> tracing::Span {
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "http",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id,
        source_ip = tracing::field::Empty,
        client_id = tracing::field::Empty,
    )
}
