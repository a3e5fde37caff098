//! `market-stream`: an example WebSocket resource server built on `portcullis-verify`. It streams
//! demo ticks of five instruments at `wss://<public-url>/stream` to clients whose access token
//! (from Portcullis, sender-constrained by DPoP or a client certificate) has the scope
//! `ticks:<INSTRUMENT>`, and closes a session when its token expires (4401 "access token
//! expired"), its consent is withdrawn or the token revoked (4401, seen through the revocation
//! feed), or the feed lags under the refuse policy (4503). The README's "Example: market-stream"
//! has the protocol and how to run it against a local Portcullis.
//!
//! Start-up: the TLS listener (client certificates requested, not required) and the plain-HTTP
//! metrics listener are bound, the verifier reads the authorization server's metadata and JWKS
//! and starts the revocation feed, then one ready line goes to standard output. SIGTERM or
//! ctrl-c: the listener stops accepting, sessions are closed with 1001, and the process exits.

mod cli;
mod market;
mod metrics;
mod protocol;
mod session;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::FromRef;
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use clap::Parser as _;
use http::{HeaderValue, StatusCode, header};
use portcullis_verify::Verifier;
use portcullis_verify::axum::ApiAuth;
use portcullis_verify::cli::{ApiListeners, metrics_router, shutdown_signal};
use portcullis_verify::tls::{self, ConnectionLimits, NoObserver};
use serde_json::json;
use tokio::sync::watch;

use crate::cli::Args;
use crate::market::Market;
use crate::metrics::StreamMetrics;

/// The `realm` of this API's `WWW-Authenticate` challenges.
const REALM: &str = "market-stream";

/// How long open sessions get to close after shutdown starts.
const SESSION_DRAIN: Duration = Duration::from_secs(5);

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The verifier and this API's public URL.
    auth: ApiAuth,
    /// The ticks.
    market: Market,
    /// The example's counters.
    stream_metrics: Arc<StreamMetrics>,
    /// Turns true when the server stops; sessions then close.
    shutdown: watch::Receiver<bool>,
}

impl FromRef<AppState> for ApiAuth {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    args.api.init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("market-stream: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "market-stream could not start");
            eprintln!("market-stream: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    // DESIGN.md, TLS: the aws-lc-rs provider, installed first.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    let mut config = args.api.verifier_config()?;
    config.realm = REALM.into();
    let identity = args.api.server_identity()?;
    let ApiListeners {
        api: listener,
        metrics: metrics_listener,
        addresses,
    } = args.api.bind(args.listen, &identity).await?;

    let verifier = Verifier::new(config).await.with_context(|| {
        format!(
            "cannot set up token verification against {}",
            args.api.issuer
        )
    })?;

    let (stop, shutdown) = watch::channel(false);
    let stream_metrics = Arc::new(StreamMetrics::default());
    let state = AppState {
        auth: ApiAuth::new(verifier.clone(), &addresses.public_url),
        market: Market::start(&shutdown),
        stream_metrics: stream_metrics.clone(),
        shutdown: shutdown.clone(),
    };
    let api = tokio::spawn(tls::serve(
        listener,
        router(state),
        ConnectionLimits::default(),
        Arc::new(NoObserver),
        shutdown.clone(),
    ));
    let counters = stream_metrics.clone();
    let metrics_app = metrics_router(verifier, move || counters.to_prometheus());
    let mut metrics_shutdown = shutdown.clone();
    let metrics = tokio::spawn(async move {
        let stopped = async move {
            let _ = metrics_shutdown.wait_for(|stop| *stop).await.map(|_| ());
        };
        axum::serve(metrics_listener, metrics_app)
            .with_graceful_shutdown(stopped)
            .await
    });

    addresses
        .print_ready_line("market-stream")
        .context("writing the ready line")?;
    tracing::info!(
        listen = %addresses.listen,
        public_url = %addresses.public_url,
        metrics_listen = %addresses.metrics_listen,
        "market-stream serving wss://…/stream"
    );

    shutdown_signal().await;
    tracing::info!("shutting down: closing sessions");
    let _ = stop.send(true);
    if tokio::time::timeout(SESSION_DRAIN, stream_metrics.all_closed())
        .await
        .is_err()
    {
        tracing::warn!(
            open = stream_metrics.sessions_open(),
            "sessions still open after the drain period"
        );
    }
    let _ = tokio::time::timeout(SESSION_DRAIN, async {
        let _ = api.await;
        let _ = metrics.await;
    })
    .await;
    Ok(())
}

/// The main listener's routes: `/stream`, and JSON answers for anything else.
fn router(state: AppState) -> Router {
    Router::new()
        .route("/stream", get(session::upgrade))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::map_response(no_store))
        .with_state(state)
}

async fn not_found() -> Response {
    let body = json!({
        "error": "not_found",
        "error_description": "this API serves only GET /stream (a WebSocket)",
    });
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

async fn method_not_allowed() -> Response {
    let body = json!({
        "error": "invalid_request",
        "error_description": "/stream is a WebSocket: GET with an upgrade",
    });
    (StatusCode::METHOD_NOT_ALLOWED, axum::Json(body)).into_response()
}

/// `Cache-Control: no-store` on every answer (answers about tokens are never to be cached).
async fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
