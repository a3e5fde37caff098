//! `bank-api`: the example REST resource server of a bank, built on `portcullis-verify`.
//!
//! It serves the customer's accounts (`GET /accounts…`, scope `accounts`, RFC 9396
//! `account_information`) and initiates payments (`POST /payments`, scope `payments`,
//! `payment_initiation`) for sender-constrained Portcullis access tokens, over HTTPS with client
//! certificates requested (for certificate-bound tokens, RFC 8705). A second, plain-HTTP
//! listener serves `/metrics` and `/feed`. Once both listen and the verifier has read the
//! authorization server's metadata and keys, one line goes to standard output:
//!
//! ```text
//! bank-api ready listen=127.0.0.1:8443 public_url=https://127.0.0.1:8443 metrics_listen=127.0.0.1:40111
//! ```
//!
//! SIGTERM or ctrl-c stops it: the listeners stop accepting, requests in progress finish.

mod accounts;
mod app;
mod body;
mod cli;
mod demo;
mod error;
mod iban;
mod ledger;
mod metrics;
mod money;
mod payments;
#[cfg(test)]
mod tests;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser as _;
use portcullis_core::accounts::DemoDirectory;
use portcullis_verify::Verifier;
use portcullis_verify::axum::ApiAuth;
use portcullis_verify::cli::{ApiListeners, metrics_router, shutdown_signal};
use portcullis_verify::tls::{self, ConnectionLimits, NoObserver};
use tokio::sync::watch;

use crate::app::AppState;
use crate::cli::Cli;
use crate::ledger::ConsentLedger;
use crate::metrics::Counters;

/// The `realm` of this API's challenges.
const REALM: &str = "bank-api";

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli.api.init_logging();
    // DESIGN.md, TLS: the aws-lc-rs provider, first thing.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("bank-api: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bank-api: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Sets everything up, says it is ready, serves until a signal.
async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = cli.api.verifier_config()?;
    config.realm = REALM.into();
    let identity = cli.api.server_identity()?;
    let verifier = Verifier::new(config)
        .await
        .context("cannot set up token verification with the authorization server")?;
    let ApiListeners {
        api: listener,
        metrics: metrics_listener,
        addresses,
    } = cli.api.bind(cli.listen, &identity).await?;

    let counters = Arc::new(Counters::default());
    let state = AppState {
        auth: ApiAuth::new(verifier.clone(), &addresses.public_url),
        directory: Arc::new(DemoDirectory),
        ledger: Arc::new(ConsentLedger::default()),
        counters: counters.clone(),
    };
    let api = app::router(state);
    let metrics = metrics_router(verifier.clone(), move || counters.to_prometheus());

    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("stopping: no new connections, requests in progress finish");
        let _ = stop.send(true);
    });

    let mut metrics_stopped = stopped.clone();
    let metrics_server =
        axum::serve(metrics_listener, metrics).with_graceful_shutdown(async move {
            let _ = metrics_stopped.wait_for(|stop| *stop).await;
        });
    let api_server = tls::serve(
        listener,
        api,
        ConnectionLimits::default(),
        Arc::new(NoObserver),
        stopped,
    );

    tracing::info!(
        listen = %addresses.listen,
        public_url = %addresses.public_url,
        metrics_listen = %addresses.metrics_listen,
        issuer = %cli.api.issuer,
        resource = %cli.api.resource,
        "bank-api ready"
    );
    addresses
        .print_ready_line("bank-api")
        .context("writing the ready line")?;

    let (_, metrics_result) = tokio::join!(api_server, metrics_server);
    metrics_result.context("the metrics listener failed")?;
    Ok(())
}
