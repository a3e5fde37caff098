//! `portcullis-load`: a load generator for a running Portcullis over real TLS.
//!
//! `portcullis-load token` drives the token endpoint the way a population of FAPI 2.0 clients
//! does: every request is a client-credentials grant authenticated with a freshly signed
//! `private_key_jwt` assertion (RFC 7523) and sender-constrained with a freshly signed DPoP proof
//! (RFC 9449), each with its own `jti`. The server therefore runs its whole hot path on every
//! request: two signature checks, two single-use `jti` records, and a signed access token.
//!
//! `portcullis-load flow` drives complete FAPI 2.0 authorization code flows, as a TPP and its
//! customer's browser do them: PAR, the authorization endpoint, login, consent, and the code
//! redeemed at `/token` with PKCE and DPoP; it times each of the five steps.
//!
//! `portcullis-load keygen` writes a fresh ES256 key pair for a client to register.
//!
//! HTTP/1.1 with keep-alive, one connection per worker: with HTTP/2 the client would multiplex
//! every worker over one connection, which is not what many independent clients look like.

mod cpu;
mod flow;
mod key;
mod report;
mod token;

use std::io::Write as _;
use std::path::{Path, PathBuf};
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
    /// Complete FAPI 2.0 authorization code flows (PAR, authorize, login, consent, token with
    /// PKCE and DPoP), each worker a customer's browser with its own cookies and connection;
    /// then report complete flows per second and each step's latency. Exits 1 if any flow failed.
    Flow(FlowArgs),
    /// Write a fresh ES256 key pair for a client: DIR/client.jwk (the private JWK, for
    /// --key-file) and DIR/client.jwks.json (the public JWK Set, for the client's "jwks").
    Keygen(KeygenArgs),
}

/// The server and the client, for `token` and `flow`.
#[derive(Debug, clap::Args)]
struct ClientArgs {
    /// The issuer identifier, exactly as the server publishes it (the assertion's `aud`); the
    /// endpoints are `<issuer>/token` and so on.
    #[arg(long, value_name = "URL")]
    issuer: String,
    /// PEM file of the CA that issued the server's certificate (the only trusted root).
    #[arg(long, value_name = "PEM")]
    ca_file: PathBuf,
    /// The client's client_id, e.g. as `portcullis admin bootstrap` or `portcullis clients
    /// create` prints it.
    #[arg(long, value_name = "ID")]
    client_id: String,
    /// The client's private EC P-256 JWK, as `portcullis admin bootstrap --key-file` or
    /// `portcullis-load keygen` writes it.
    #[arg(long, value_name = "JWK")]
    key_file: PathBuf,
}

/// How hard and how long, for `token` and `flow`.
#[derive(Debug, clap::Args)]
struct LoadArgs {
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

impl LoadArgs {
    fn load(&self) -> Load {
        Load {
            concurrency: usize::from(self.concurrency),
            warmup: Duration::from_secs(self.warmup_secs),
            duration: Duration::from_secs(self.duration_secs),
        }
    }
}

/// Options of `portcullis-load token`.
#[derive(Debug, clap::Args)]
struct TokenArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The scope to ask for.
    #[arg(long, default_value = "admin:keys")]
    scope: String,
    #[command(flatten)]
    load: LoadArgs,
}

/// Options of `portcullis-load flow`.
#[derive(Debug, clap::Args)]
struct FlowArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// A redirect URI registered for the client (nothing is ever sent to it).
    #[arg(long, value_name = "URL", default_value = "https://tpp.example/cb")]
    redirect_uri: String,
    /// The scope to ask for (registered for the client; with openid the token answer must
    /// hold an ID token).
    #[arg(long, default_value = "openid accounts")]
    scope: String,
    /// The customer's username (`portcullis users create`); without a second factor.
    #[arg(long, value_name = "NAME")]
    username: String,
    /// The customer's password. Prefer the environment variable: arguments are visible to
    /// other users of the machine.
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "PORTCULLIS_LOAD_PASSWORD",
        hide_env_values = true
    )]
    password: String,
    /// Keep each worker's session cookie: its first flow logs in, later flows go from
    /// /authorize straight to consent (a returning customer). By default the session cookie
    /// is discarded and every flow logs in.
    #[arg(long)]
    reuse_session: bool,
    #[command(flatten)]
    load: LoadArgs,
}

/// Options of `portcullis-load keygen`.
#[derive(Debug, clap::Args)]
struct KeygenArgs {
    /// The directory to write client.jwk and client.jwks.json into (created if missing;
    /// existing files are not overwritten).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// The CA certificate that is the clients' only trusted root.
fn ca_certificate(path: &Path) -> anyhow::Result<reqwest::Certificate> {
    let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    reqwest::Certificate::from_pem(&pem)
        .with_context(|| format!("{} is not a PEM certificate", path.display()))
}

/// An HTTPS client that trusts only `ca` and speaks HTTP/1.1 with keep-alive, keeping up to
/// `idle` idle connections, never following redirects.
fn http_client(
    ca: &reqwest::Certificate,
    idle: usize,
    timeout: Duration,
) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .tls_certs_only([ca.clone()])
        .https_only(true)
        .http1_only()
        .pool_max_idle_per_host(idle)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .build()
        .context("building the HTTP client")
}

async fn token(args: TokenArgs) -> anyhow::Result<bool> {
    let TokenArgs {
        client,
        scope,
        load: load_args,
    } = args;
    let key = ClientKey::from_jwk_file(&client.key_file)?;
    // One client for all workers, keeping one idle connection per worker.
    let http = http_client(
        &ca_certificate(&client.ca_file)?,
        usize::from(load_args.concurrency),
        Duration::from_secs(load_args.timeout_secs),
    )?;
    let token_url = format!("{}/token", client.issuer.trim_end_matches('/'));
    let load = load_args.load();
    println!("portcullis-load token: POST {token_url}");
    println!(
        "  grant client_credentials, scope {:?}, client {}",
        scope, client.client_id
    );
    println!(
        "  per request: fresh private_key_jwt assertion + fresh DPoP proof (ES256, unique jtis)"
    );
    println!(
        "  HTTP/1.1 keep-alive over TLS, {} workers = up to {} connections; {} s warmup, {} s measured",
        load.concurrency, load.concurrency, load_args.warmup_secs, load_args.duration_secs
    );
    let target = Target {
        issuer: client.issuer,
        token_url,
        client_id: client.client_id,
        scope,
        key,
    };
    let outcome = token::run(target, http, load, load_args.server_pid).await?;
    print!("{}", report::render(&outcome));
    Ok(outcome.warmup.errors() + outcome.measured.errors() == 0)
}

async fn flow(args: FlowArgs) -> anyhow::Result<bool> {
    let FlowArgs {
        client,
        redirect_uri,
        scope,
        username,
        password,
        reuse_session,
        load: load_args,
    } = args;
    let key = ClientKey::from_jwk_file(&client.key_file)?;
    let ca = ca_certificate(&client.ca_file)?;
    let timeout = Duration::from_secs(load_args.timeout_secs);
    let load = load_args.load();
    let issuer = client.issuer.trim_end_matches('/');
    println!("portcullis-load flow: complete FAPI 2.0 authorization code flows at {issuer}");
    println!(
        "  client {}, scope {scope:?}, redirect_uri {redirect_uri}, customer {username:?}",
        client.client_id
    );
    println!(
        "  per flow: POST /par (private_key_jwt, PKCE S256) -> GET /authorize -> POST /authorize/login"
    );
    println!(
        "    -> POST /authorize/consent (303 with code) -> POST /token (code + verifier, fresh assertion + DPoP proof)"
    );
    println!(
        "  each worker a browser with its own cookies and its own HTTP client: HTTP/1.1 keep-alive over TLS,"
    );
    println!(
        "  {} workers = {} connections; session cookie {}; {} s warmup, {} s measured",
        load.concurrency,
        load.concurrency,
        if reuse_session {
            "kept (log in once per worker, then consent only)"
        } else {
            "discarded (every flow logs in)"
        },
        load_args.warmup_secs,
        load_args.duration_secs
    );
    let target = flow::Target {
        issuer: client.issuer,
        client_id: client.client_id,
        key,
        redirect_uri,
        scope,
        username,
        password,
        reuse_session,
    };
    // One client per worker: its own connection, as each customer's browser has.
    let outcome = flow::run(
        target,
        || http_client(&ca, 1, timeout),
        load,
        load_args.server_pid,
    )
    .await?;
    print!("{}", report::render_flow(&outcome));
    Ok(outcome.warmup.errors() + outcome.measured.errors() == 0)
}

/// Writes `contents` to a new file at `path` (never over an existing one), readable only by its
/// owner when `private`.
fn write_new(path: &Path, contents: &str, private: bool) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .with_context(|| format!("writing {}", path.display()))
}

fn keygen(args: &KeygenArgs) -> anyhow::Result<bool> {
    let (private, public) = key::generate_jwks()?;
    // The key must load as the tool will load it.
    ClientKey::from_private_jwk(&private)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let private_path = args.out.join("client.jwk");
    let public_path = args.out.join("client.jwks.json");
    write_new(&private_path, &serde_json::to_string(&private)?, true)?;
    write_new(&public_path, &serde_json::to_string(&public)?, false)?;
    let kid = private
        .get("kid")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    println!("kid {kid}");
    println!("private JWK  {}", private_path.display());
    println!("public JWKS  {}", public_path.display());
    Ok(true)
}

#[tokio::main]
async fn main() -> ExitCode {
    // DESIGN.md, TLS: rustls with the aws-lc-rs provider, installed first. An error means one is
    // installed already, which is as good.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Token(args) => token(args).await,
        Command::Flow(args) => flow(args).await,
        Command::Keygen(args) => keygen(&args),
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
