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
mod setup;
#[cfg(test)]
mod tests;

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser as _;
use portcullis_core::accounts::DemoDirectory;
use portcullis_verify::Verifier;
use portcullis_verify::axum::ApiAuth;
use portcullis_verify::tls::{self, ConnectionLimits, ListenerKind, NoObserver, TlsListener};
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

use crate::app::AppState;
use crate::cli::{Cli, LogFormat};
use crate::ledger::ConsentLedger;
use crate::metrics::Counters;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
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

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Sets everything up, says it is ready, serves until a signal.
async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = setup::verifier_config(&cli)?;
    let identity = setup::server_identity(&cli)?;
    let verifier = Verifier::new(config)
        .await
        .context("cannot set up token verification with the authorization server")?;

    let listener = TlsListener::bind(cli.listen, ListenerKind::Mtls, &identity)
        .await
        .context("--listen")?;
    let listen = listener.local_addr().context("--listen")?;
    let metrics_listener = tokio::net::TcpListener::bind(cli.metrics_listen)
        .await
        .with_context(|| format!("--metrics-listen: cannot listen on {}", cli.metrics_listen))?;
    let metrics_listen = metrics_listener.local_addr().context("--metrics-listen")?;
    let public_url = setup::public_url(&cli, listen)?;

    let counters = Arc::new(Counters::default());
    let state = AppState {
        auth: ApiAuth::new(verifier.clone(), &public_url),
        directory: Arc::new(DemoDirectory),
        ledger: Arc::new(ConsentLedger::default()),
        counters: counters.clone(),
    };
    let api = app::router(state);
    let metrics = metrics::router(verifier.clone(), counters);

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

    tracing::info!(%listen, %public_url, %metrics_listen, issuer = %cli.issuer, resource = %cli.resource, "bank-api ready");
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "bank-api ready listen={listen} public_url={public_url} metrics_listen={metrics_listen}"
    )
    .and_then(|()| stdout.flush())
    .context("writing the ready line")?;
    drop(stdout);

    let (_, metrics_result) = tokio::join!(api_server, metrics_server);
    metrics_result.context("the metrics listener failed")?;
    Ok(())
}

/// Resolves on ctrl-c (SIGINT) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
