//! `portcullis-load`: a load generator for a running Portcullis over real TLS.
//!
//! `portcullis-load token` drives the token endpoint the way a population of FAPI 2.0 clients
//! does: every request is a client-credentials grant authenticated with a freshly signed
//! `private_key_jwt` assertion (RFC 7523) and sender-constrained with a freshly signed DPoP proof
//! (RFC 9449), each with its own `jti`. The server therefore runs its whole hot path on every
//! request: two signature checks, two single-use `jti` records, and a signed access token.
//!
//! HTTP/1.1 with keep-alive, one connection per worker: with HTTP/2 the client would multiplex
//! every worker over one connection, which is not what many independent clients look like.

mod cpu;
mod key;
mod report;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::key::ClientKey;
use crate::token::{Load, Target};

/// Load generator for a running Portcullis.
#[derive(Debug, Parser)]
#[command(name = "portcullis-load", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What to load.
#[derive(Debug, Subcommand)]
enum Command {
    /// POST /token with client_credentials, a fresh private_key_jwt assertion and a fresh DPoP
    /// proof per request; then report throughput and latency. Exits 1 if any request failed.
    Token(TokenArgs),
}

/// Options of `portcullis-load token`.
#[derive(Debug, clap::Args)]
struct TokenArgs {
    /// The issuer identifier, exactly as the server publishes it (the assertion's `aud`); the
    /// token endpoint is `<issuer>/token`.
    #[arg(long, value_name = "URL")]
    issuer: String,
    /// PEM file of the CA that issued the server's certificate (the only trusted root).
    #[arg(long, value_name = "PEM")]
    ca_file: PathBuf,
    /// The client's client_id, e.g. as `portcullis admin bootstrap` prints it.
    #[arg(long, value_name = "ID")]
    client_id: String,
    /// The client's private EC P-256 JWK, as `portcullis admin bootstrap --key-file` writes it.
    #[arg(long, value_name = "JWK")]
    key_file: PathBuf,
    /// The scope to ask for.
    #[arg(long, default_value = "admin:keys")]
    scope: String,
    /// Concurrent workers (connections), each with one request in flight at a time.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// Length of the measured window, in seconds.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    duration_secs: u64,
    /// Warmup before the measured window (connections opened, caches filled), in seconds.
    #[arg(long, default_value_t = 3)]
    warmup_secs: u64,
    /// Per-request timeout, in seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    timeout_secs: u64,
    /// The server's process id, to report its CPU use over the measured window (Linux).
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
}

/// An HTTPS client that trusts only the CA in `ca_file` and speaks HTTP/1.1 with keep-alive,
/// keeping up to `connections` idle connections so that each worker reuses one.
fn http_client(args: &TokenArgs) -> anyhow::Result<reqwest::Client> {
    let pem = std::fs::read(&args.ca_file)
        .with_context(|| format!("reading {}", args.ca_file.display()))?;
    let ca = reqwest::Certificate::from_pem(&pem)
        .with_context(|| format!("{} is not a PEM certificate", args.ca_file.display()))?;
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .https_only(true)
        .http1_only()
        .pool_max_idle_per_host(usize::from(args.concurrency))
        .timeout(Duration::from_secs(args.timeout_secs))
        .build()
        .context("building the HTTP client")
}

async fn token(args: TokenArgs) -> anyhow::Result<bool> {
    let key = ClientKey::from_jwk_file(&args.key_file)?;
    let http = http_client(&args)?;
    let token_url = format!("{}/token", args.issuer.trim_end_matches('/'));
    let load = Load {
        concurrency: usize::from(args.concurrency),
        warmup: Duration::from_secs(args.warmup_secs),
        duration: Duration::from_secs(args.duration_secs),
    };
    println!("portcullis-load token: POST {token_url}");
    println!(
        "  grant client_credentials, scope {:?}, client {}",
        args.scope, args.client_id
    );
    println!(
        "  per request: fresh private_key_jwt assertion + fresh DPoP proof (ES256, unique jtis)"
    );
    println!(
        "  HTTP/1.1 keep-alive over TLS, {} workers = up to {} connections; {} s warmup, {} s measured",
        load.concurrency, load.concurrency, args.warmup_secs, args.duration_secs
    );
    let target = Target {
        issuer: args.issuer,
        token_url,
        client_id: args.client_id,
        scope: args.scope,
        key,
    };
    let outcome = token::run(target, http, load, args.server_pid).await?;
    print!("{}", report::render(&outcome));
    Ok(outcome.warmup.errors() + outcome.measured.errors() == 0)
}

#[tokio::main]
async fn main() -> ExitCode {
    // DESIGN.md, TLS: rustls with the aws-lc-rs provider, installed first. An error means one is
    // installed already, which is as good.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Token(args) => token(args).await,
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("portcullis-load: some requests failed (see errors by kind)");
            ExitCode::from(1)
        }
        Err(error) => {
            eprintln!("portcullis-load: {error:#}");
            ExitCode::from(2)
        }
    }
}
