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
//! `portcullis-load introspect` drives token introspection (RFC 7662) as a resource server does
//! it: a hot set of access tokens fetched up front, then `token=…` requests on keep-alive mTLS
//! connections authenticated by the resource server's client certificate, optionally with one
//! token revoked under load to show that the revocation is seen at once.
//!
//! `portcullis-load keygen` writes a fresh ES256 key pair for a client to register;
//! `portcullis-load admin` makes one admin API call, for setting a load up.
//!
//! HTTP/1.1 with keep-alive, one connection per worker: with HTTP/2 the client would multiplex
//! every worker over one connection, which is not what many independent clients look like.

mod admin;
mod conn;
mod cpu;
mod flow;
mod introspect;
mod key;
mod report;
mod token;
mod window;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;

use crate::key::ClientKey;
use crate::token::Target;
use crate::window::Load;

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
    /// POST /introspect (RFC 7662) as a resource server: fetch a hot set of access tokens with
    /// a client's client_credentials grant, then introspect them round-robin on keep-alive
    /// HTTP/1.1 connections to the mTLS listener, authenticated by the resource server's client
    /// certificate; then report throughput and latency. Every answer must be 200 with
    /// "active":true; exits 1 if any was not.
    Introspect(IntrospectArgs),
    /// Write a fresh ES256 key pair for a client: DIR/client.jwk (the private JWK, for
    /// --key-file) and DIR/client.jwks.json (the public JWK Set, for the client's "jwks").
    Keygen(KeygenArgs),
    /// Call the admin API once with a DPoP-bound token of an admin client (e.g. to register a
    /// resource server, which has no CLI command); prints the answer. Exits 1 unless it is 2xx.
    Admin(AdminArgs),
}

/// The server.
#[derive(Debug, clap::Args)]
struct ServerArgs {
    /// The issuer identifier, exactly as the server publishes it: the assertions' `aud`, and the
    /// base of the endpoints (`<issuer>/token`, its metadata at
    /// `<issuer>/.well-known/openid-configuration`, and so on).
    #[arg(long, value_name = "URL")]
    issuer: String,
    /// PEM file of the CA that issued the server's certificate (the only trusted root).
    #[arg(long, value_name = "PEM")]
    ca_file: PathBuf,
}

/// The server and the client, for `token`, `flow` and `admin`.
#[derive(Debug, clap::Args)]
struct ClientArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The client's client_id, e.g. as `portcullis admin bootstrap` or `portcullis clients
    /// create` prints it.
    #[arg(long, value_name = "ID", allow_hyphen_values = true)]
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

/// Options of `portcullis-load introspect`.
#[derive(Debug, clap::Args)]
struct IntrospectArgs {
    /// The server; its metadata names the introspection endpoint on the mTLS listener
    /// (`mtls_endpoint_aliases`) and the token and revocation endpoints.
    #[command(flatten)]
    server: ServerArgs,
    /// The resource server's client: the client_id that a registered resource server names.
    /// It introspects with no per-request credentials: its TLS client certificate is checked
    /// (self_signed_tls_client_auth or tls_client_auth, RFC 8705 §2).
    #[arg(long, value_name = "ID", allow_hyphen_values = true)]
    client_id: String,
    /// For a self_signed_tls_client_auth client: its private EC P-256 JWK (as `portcullis-load
    /// keygen` writes it), whose public JWK it registered; a self-signed certificate is made
    /// from it.
    #[arg(long, value_name = "JWK", required_unless_present = "cert_file")]
    key_file: Option<PathBuf>,
    /// For a tls_client_auth client: its certificate (PEM, the chain from the end entity up).
    #[arg(
        long,
        value_name = "PEM",
        requires = "cert_key_file",
        conflicts_with = "key_file"
    )]
    cert_file: Option<PathBuf>,
    /// The private key of --cert-file (PEM).
    #[arg(long, value_name = "PEM", requires = "cert_file")]
    cert_key_file: Option<PathBuf>,
    /// The client that gets the hot set of access tokens (client_credentials with a fresh
    /// private_key_jwt assertion and DPoP proof each), and that revokes one of them for
    /// --revoke-check.
    #[arg(
        long,
        value_name = "ID",
        allow_hyphen_values = true,
        required_unless_present = "ceiling"
    )]
    tpp_client_id: Option<String>,
    /// That client's private EC P-256 JWK.
    #[arg(long, value_name = "JWK", required_unless_present = "ceiling")]
    tpp_key_file: Option<PathBuf>,
    /// The scope of the tokens: one the resource server serves.
    #[arg(long, default_value = "accounts")]
    scope: String,
    /// The resource the tokens are for (RFC 8707), when the scope alone does not say.
    #[arg(long, value_name = "URI")]
    resource: Option<String>,
    /// How many tokens the hot set holds; the workers go round it.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    tokens: u32,
    /// Revoke one token of the set at /revoke half-way through the measured window, and check
    /// that every introspection of it started after the revocation was answered says
    /// "active":false (any that does not is a failure).
    #[arg(long, conflicts_with = "ceiling")]
    revoke_check: bool,
    /// Instead of introspecting, GET this path (e.g. /healthz) on the same listener with the
    /// same client certificate and connections, expecting 200: the TLS and HTTP ceiling of the
    /// same load, for comparison.
    #[arg(long, value_name = "PATH")]
    ceiling: Option<String>,
    #[command(flatten)]
    load: LoadArgs,
}

/// Options of `portcullis-load admin`.
#[derive(Debug, clap::Args)]
struct AdminArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The admin scope the call needs, e.g. admin:resources.
    #[arg(long)]
    scope: String,
    /// The HTTP method.
    #[arg(long, default_value = "POST")]
    method: String,
    /// The path under the issuer, e.g. /admin/v1/resources.
    #[arg(long, value_name = "PATH")]
    path: String,
    /// A file holding the JSON body, or - for standard input.
    #[arg(long, value_name = "FILE")]
    body: Option<PathBuf>,
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
        &ca_certificate(&client.server.ca_file)?,
        usize::from(load_args.concurrency),
        Duration::from_secs(load_args.timeout_secs),
    )?;
    let token_url = format!("{}/token", client.server.issuer.trim_end_matches('/'));
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
        issuer: client.server.issuer,
        token_url,
        client_id: client.client_id,
        scope,
        resource: None,
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
    let ca = ca_certificate(&client.server.ca_file)?;
    let timeout = Duration::from_secs(load_args.timeout_secs);
    let load = load_args.load();
    let issuer = client.server.issuer.trim_end_matches('/');
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
        issuer: client.server.issuer,
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

/// The members of the server's metadata (`/.well-known/openid-configuration`).
async fn discover(http: &reqwest::Client, issuer: &str) -> anyhow::Result<Value> {
    let url = format!("{issuer}/.well-known/openid-configuration");
    let response = http
        .get(&url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    if !response.status().is_success() {
        bail!("GET {url}: {}", response.status());
    }
    response
        .json()
        .await
        .with_context(|| format!("the metadata at {url}"))
}

/// The endpoint `name` of the metadata: its mTLS alias (RFC 8705 §5) when `mtls` and there is
/// one, else the plain one.
fn endpoint_of(metadata: &Value, name: &str, mtls: bool) -> anyhow::Result<String> {
    let alias = metadata
        .get("mtls_endpoint_aliases")
        .and_then(|aliases| aliases.get(name))
        .filter(|_| mtls);
    alias
        .or_else(|| metadata.get(name))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("the server's metadata names no {name}"))
}

/// The resource server's TLS client certificate and key: read from PEM files, or self-signed
/// for its JWK.
fn identity(
    args: &IntrospectArgs,
) -> anyhow::Result<(CertificateDer<'static>, PrivateKeyDer<'static>)> {
    if let (Some(cert), Some(key)) = (&args.cert_file, &args.cert_key_file) {
        let certificate = CertificateDer::from_pem_file(cert)
            .with_context(|| format!("the certificate in {}", cert.display()))?;
        let key = PrivateKeyDer::from_pem_file(key)
            .with_context(|| format!("the private key in {}", key.display()))?;
        return Ok((certificate, key));
    }
    let Some(path) = &args.key_file else {
        bail!("--key-file or --cert-file is needed");
    };
    ClientKey::from_jwk_file(path)?.self_signed_certificate()
}

async fn introspect(args: IntrospectArgs) -> anyhow::Result<bool> {
    let timeout = Duration::from_secs(args.load.timeout_secs);
    let http = http_client(&ca_certificate(&args.server.ca_file)?, 16, timeout)?;
    let issuer = args.server.issuer.trim_end_matches('/').to_owned();
    let metadata = discover(&http, &issuer).await?;
    let introspection_url = endpoint_of(&metadata, "introspection_endpoint", true)?;
    let tls = conn::tls_config(&args.server.ca_file, Some(identity(&args)?))?;
    let endpoint = conn::Endpoint::new(&introspection_url, tls)?;
    let load = args.load.load();
    let ask = match (&args.ceiling, &args.tpp_client_id, &args.tpp_key_file) {
        (Some(path), _, _) => {
            println!(
                "portcullis-load introspect --ceiling: GET {path} on the listener of {introspection_url}"
            );
            introspect::Ask::Ceiling(endpoint.with_path(path)?)
        }
        (None, Some(tpp), Some(tpp_key_file)) => {
            let tpp_key = ClientKey::from_jwk_file(tpp_key_file)?;
            let target = Target {
                issuer: issuer.clone(),
                token_url: endpoint_of(&metadata, "token_endpoint", false)?,
                client_id: tpp.clone(),
                scope: args.scope.clone(),
                resource: args.resource.clone(),
                key: tpp_key.clone(),
            };
            let count = usize::try_from(args.tokens).unwrap_or(usize::MAX);
            let started = std::time::Instant::now();
            let tokens = token::fetch(target, http.clone(), count, 16)
                .await
                .context("fetching the hot set")?;
            let jwts = tokens.iter().filter(|t| t.split('.').count() == 3).count();
            println!("portcullis-load introspect: POST {introspection_url}");
            println!(
                "  hot set: {} access tokens ({jwts} JWT, {} opaque) of client {tpp}, scope {:?}{}, fetched in {:.1} s",
                tokens.len(),
                tokens.len() - jwts,
                args.scope,
                args.resource
                    .as_deref()
                    .map_or_else(String::new, |r| format!(", resource {r}")),
                started.elapsed().as_secs_f64()
            );
            let revocation = args
                .revoke_check
                .then(|| -> anyhow::Result<_> {
                    Ok(Box::new(introspect::Revocation {
                        url: endpoint_of(&metadata, "revocation_endpoint", false)?,
                        issuer: issuer.clone(),
                        client_id: tpp.clone(),
                        key: tpp_key,
                        http: http.clone(),
                    }))
                })
                .transpose()?;
            introspect::Ask::Introspect { tokens, revocation }
        }
        _ => bail!("--tpp-client-id and --tpp-key-file are needed, unless --ceiling"),
    };
    println!(
        "  as resource server client {} by its TLS client certificate ({}), no per-request credentials",
        args.client_id,
        if args.cert_file.is_some() {
            "tls_client_auth"
        } else {
            "self-signed, self_signed_tls_client_auth"
        }
    );
    println!(
        "  HTTP/1.1 keep-alive over TLS, {} workers = {} connections, round-robin over the set; {} s warmup, {} s measured{}",
        load.concurrency,
        load.concurrency,
        args.load.warmup_secs,
        args.load.duration_secs,
        if args.revoke_check {
            "; token #0 revoked half-way"
        } else {
            ""
        }
    );
    let target = introspect::Target {
        endpoint,
        client_id: args.client_id,
        ask,
        timeout,
    };
    let outcome = introspect::run(target, load, args.load.server_pid).await?;
    print!("{}", report::render_introspect(&outcome));
    let revoked = outcome
        .revocation
        .as_ref()
        .is_none_or(|r| r.failure.is_none());
    Ok(revoked && outcome.run.warmup.answers.errors() + outcome.run.measured.answers.errors() == 0)
}

async fn admin_call(args: AdminArgs) -> anyhow::Result<bool> {
    let AdminArgs {
        client,
        scope,
        method,
        path,
        body,
    } = args;
    let body = match body {
        None => None,
        Some(file) => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading standard input")?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
            };
            Some(serde_json::from_str::<Value>(&text).context("the body is not JSON")?)
        }
    };
    let http = http_client(
        &ca_certificate(&client.server.ca_file)?,
        1,
        Duration::from_secs(30),
    )?;
    let target = Target {
        token_url: format!("{}/token", client.server.issuer.trim_end_matches('/')),
        issuer: client.server.issuer,
        client_id: client.client_id,
        scope,
        resource: None,
        key: ClientKey::from_jwk_file(&client.key_file)?,
    };
    let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .context("--method is not an HTTP method")?;
    let call = admin::Call { method, path, body };
    let (status, text) = admin::call(target, http, call).await?;
    if !status.is_success() {
        eprintln!("portcullis-load admin: {status}");
    }
    println!("{text}");
    Ok(status.is_success())
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
        Command::Introspect(args) => introspect(args).await,
        Command::Keygen(args) => keygen(&args),
        Command::Admin(args) => admin_call(args).await,
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
