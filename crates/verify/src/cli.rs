//! The command line of a resource server built on this crate (feature `cli`): the options every
//! such API has — which authorization server, which resource, the server certificate, this API's
//! own client, the revocation feed's policy, the metrics listener, the log format — as one
//! [`clap::Args`] struct, [`ApiArgs`], to flatten into the API's own command line, and what turns
//! them into what the API runs with:
//!
//! - [`ApiArgs::verifier_config`]: the [`VerifierConfig`] (this API's own client and the
//!   revocation feed);
//! - [`ApiArgs::server_identity`] (feature `server`): the HTTPS certificate, from PEM files or, for
//!   a local try-out, a self-signed one made in memory;
//! - [`ApiArgs::bind`] (feature `server`): the HTTPS listener (client certificates requested) and
//!   the plain-HTTP metrics listener, bound, with the public URL and the [ready
//!   line](Addresses::ready_line);
//! - [`metrics_router`] (feature `axum`): `GET /metrics` and `GET /feed` for the metrics listener;
//! - [`ApiArgs::init_logging`] and [`shutdown_signal`].
//!
//! Every option also comes from an environment variable `RESOURCE_SERVER_<OPTION>`
//! (`RESOURCE_SERVER_ISSUER`, `RESOURCE_SERVER_CA_FILE`, …). The HTTPS listener's address is the
//! API's own option (its default is the API's own port). Every problem is a [`SetupError`] naming
//! the option (and the file), reported before anything listens.
//!
//! # Example
//! ```no_run
//! # #[cfg(all(feature = "axum", feature = "server"))]
//! # mod example {
//! use std::net::SocketAddr;
//! use std::sync::Arc;
//!
//! use clap::Parser as _;
//! use portcullis_verify::Verifier;
//! use portcullis_verify::axum::ApiAuth;
//! use portcullis_verify::cli::{self, ApiArgs};
//! use portcullis_verify::tls::{self, ConnectionLimits, NoObserver};
//!
//! /// The accounts API of a bank.
//! #[derive(Debug, clap::Parser)]
//! #[command(version, args_override_self = true)]
//! struct Args {
//!     /// The HTTPS listener; port 0 picks a free port.
//!     #[arg(long, env = "RESOURCE_SERVER_LISTEN", default_value = "127.0.0.1:9443")]
//!     listen: SocketAddr,
//!     #[command(flatten)]
//!     api: ApiArgs,
//! }
//!
//! pub async fn run() -> Result<(), Box<dyn std::error::Error>> {
//!     let args = Args::parse();
//!     args.api.init_logging();
//!     let mut config = args.api.verifier_config()?;
//!     config.realm = "accounts-api".into();
//!     let identity = args.api.server_identity()?;
//!     let verifier = Verifier::new(config).await?;
//!     let bound = args.api.bind(args.listen, &identity).await?;
//!     let auth = ApiAuth::new(verifier.clone(), &bound.addresses.public_url);
//!     let api = axum::Router::new(/* the routes */).with_state(auth);
//!
//!     let (stop, stopped) = tokio::sync::watch::channel(false);
//!     tokio::spawn(async move {
//!         cli::shutdown_signal().await;
//!         let _ = stop.send(true);
//!     });
//!     let mut metrics_stopped = stopped.clone();
//!     let metrics = axum::serve(bound.metrics, cli::metrics_router(verifier, String::new))
//!         .with_graceful_shutdown(async move {
//!             let _ = metrics_stopped.wait_for(|stop| *stop).await;
//!         });
//!     let limits = ConnectionLimits::default();
//!     let api = tls::serve(bound.api, api, limits, Arc::new(NoObserver), stopped);
//!     bound.addresses.print_ready_line("accounts-api")?;
//!     let (_, metrics) = tokio::join!(api, metrics);
//!     metrics?;
//!     Ok(())
//! }
//! # }
//! ```

use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{
    ClientAuth, ClientCredentials, FeedConfig, IntrospectionMode, LagPolicy, SetupError,
    VerifierConfig,
};
use crate::http::ClientIdentityPem;

/// The options every resource server built on this crate has, to flatten into its command line
/// (`#[command(flatten)] api: ApiArgs`). Only the HTTPS listener's address (`--listen`) is left
/// to the API, for its own default port.
///
/// Each option also comes from `RESOURCE_SERVER_<OPTION>`. The API's command should set
/// `args_override_self = true` so that an option given twice takes the last value.
#[derive(Debug, Clone, clap::Args)]
// This documentation is not the API's `about`, which its own command's documentation gives.
#[command(about = None, long_about = None)]
pub struct ApiArgs {
    /// The Portcullis issuer identifier, e.g. https://localhost:8443; its metadata and JWKS are
    /// read at start.
    #[arg(long, env = "RESOURCE_SERVER_ISSUER", value_name = "URL")]
    pub issuer: String,

    /// This API's resource identifier (RFC 8707): the `aud` its tokens must carry.
    #[arg(long, env = "RESOURCE_SERVER_RESOURCE", value_name = "URI")]
    pub resource: String,

    /// The URL clients call this API at, the base of DPoP proofs' `htu` (default:
    /// `https://<bound address>`).
    #[arg(long, env = "RESOURCE_SERVER_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,

    /// The server certificate chain (PEM, leaf first). Without it and --tls-key, a self-signed
    /// certificate for localhost and 127.0.0.1 is made in memory.
    #[arg(
        long,
        env = "RESOURCE_SERVER_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// The server certificate's private key (PEM).
    #[arg(
        long,
        env = "RESOURCE_SERVER_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// An extra CA to trust for the authorization server's TLS certificate (e.g.
    /// portcullis-data/tls/ca.pem); repeatable (comma-separated in the environment variable).
    #[arg(
        long = "ca-file",
        env = "RESOURCE_SERVER_CA_FILE",
        value_name = "FILE",
        value_delimiter = ','
    )]
    pub ca_files: Vec<PathBuf>,

    /// This API's own client at the authorization server (introspection, the revocation feed).
    #[arg(
        long,
        env = "RESOURCE_SERVER_CLIENT_ID",
        value_name = "ID",
        allow_hyphen_values = true
    )]
    pub client_id: Option<String>,

    /// The client's certificate (PEM), for tls_client_auth or self_signed_tls_client_auth.
    #[arg(
        long,
        env = "RESOURCE_SERVER_CLIENT_CERT",
        value_name = "FILE",
        requires_all = ["client_key", "client_id"],
        conflicts_with = "client_jwk"
    )]
    pub client_cert: Option<PathBuf>,

    /// The private key of --client-cert (PEM).
    #[arg(
        long,
        env = "RESOURCE_SERVER_CLIENT_KEY",
        value_name = "FILE",
        requires = "client_cert"
    )]
    pub client_key: Option<PathBuf>,

    /// Instead of a certificate: the client's private JWK (JSON), for private_key_jwt.
    #[arg(
        long,
        env = "RESOURCE_SERVER_CLIENT_JWK",
        value_name = "FILE",
        requires = "client_id"
    )]
    pub client_jwk: Option<PathBuf>,

    /// Introspect every token at the authorization server, JWTs too.
    #[arg(long, env = "RESOURCE_SERVER_INTROSPECT_ALL")]
    pub introspect_all: bool,

    /// Do not read the revocation event feed: revocations are then seen only at expiry (or by
    /// introspection with --introspect-all).
    #[arg(long, env = "RESOURCE_SERVER_NO_FEED")]
    pub no_feed: bool,

    /// How long the feed may go unheard before cached answers are no longer trusted, in seconds.
    #[arg(
        long,
        env = "RESOURCE_SERVER_FEED_MAX_LAG_SECS",
        value_name = "N",
        default_value_t = 45,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub feed_max_lag_secs: u64,

    /// What to do while the feed lags: introspect each token, or refuse every token (503).
    #[arg(
        long,
        env = "RESOURCE_SERVER_ON_LAG",
        value_enum,
        default_value = "introspect"
    )]
    pub on_lag: LagPolicy,

    /// The feed's poll endpoint, instead of the one the authorization server's metadata names.
    #[arg(long, env = "RESOURCE_SERVER_EVENTS_URL", value_name = "URL")]
    pub events_url: Option<String>,

    /// The shortest time between two JWKS fetches caused by an unknown key id, in seconds.
    #[arg(
        long,
        env = "RESOURCE_SERVER_JWKS_MIN_REFRESH_SECS",
        value_name = "N",
        default_value_t = 5
    )]
    pub jwks_min_refresh_secs: u64,

    /// The plain-HTTP metrics listener (GET /metrics, GET /feed); port 0 picks a free port.
    #[arg(
        long,
        env = "RESOURCE_SERVER_METRICS_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:0"
    )]
    pub metrics_listen: SocketAddr,

    /// The log format on standard error; the level comes from RUST_LOG (default info).
    #[arg(
        long,
        env = "RESOURCE_SERVER_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl ApiArgs {
    /// The verifier's configuration: issuer, resource, CA files, JWKS refresh, this API's own
    /// client, introspection and the revocation feed. The `realm` is left at its default; set
    /// it to the API's name.
    ///
    /// # Errors
    /// [`SetupError`] when a client file cannot be read or is not usable, when `--client-id`
    /// comes without credentials, or when the feed is on without a client (it needs one).
    pub fn verifier_config(&self) -> Result<VerifierConfig, SetupError> {
        let mut config = VerifierConfig::new(&self.issuer, &self.resource);
        config.ca_files.clone_from(&self.ca_files);
        config.jwks_min_refresh = Duration::from_secs(self.jwks_min_refresh_secs);
        config.client = self.client()?;
        if self.introspect_all {
            config.introspection = IntrospectionMode::Always;
        }
        config.feed = if self.no_feed {
            None
        } else {
            if config.client.is_none() {
                return Err(SetupError::new(
                    "the revocation feed",
                    "it needs this API's own client: give --client-id with --client-cert and \
                     --client-key (or --client-jwk), or pass --no-feed",
                ));
            }
            Some(FeedConfig {
                max_lag: Duration::from_secs(self.feed_max_lag_secs),
                on_lag: self.on_lag,
                endpoint: self.events_url.clone(),
                ..FeedConfig::default()
            })
        };
        Ok(config)
    }

    /// This API's client at the authorization server, if one is given.
    fn client(&self) -> Result<Option<ClientCredentials>, SetupError> {
        let auth = match (&self.client_cert, &self.client_key, &self.client_jwk) {
            (Some(cert), Some(key), None) => {
                let cert_pem = read(cert, "--client-cert")?;
                let key_pem = zeroize::Zeroizing::new(read(key, "--client-key")?);
                let identity = ClientIdentityPem::from_pem(&cert_pem, &key_pem).map_err(|e| {
                    let files = format!(
                        "--client-cert {} / --client-key {}",
                        cert.display(),
                        key.display()
                    );
                    SetupError::new(&files, e)
                })?;
                ClientAuth::Certificate(identity)
            }
            (None, None, Some(jwk)) => {
                let json = zeroize::Zeroizing::new(read(jwk, "--client-jwk")?);
                ClientAuth::private_key_jwt_from_jwk_json(&json)
                    .map_err(|e| SetupError::new(&format!("--client-jwk {}", jwk.display()), e))?
            }
            (None, None, None) => {
                if self.client_id.is_some() {
                    return Err(SetupError::new(
                        "--client-id",
                        "needs --client-cert and --client-key, or --client-jwk",
                    ));
                }
                return Ok(None);
            }
            _ => {
                return Err(SetupError::new(
                    "the client's credentials",
                    "give either --client-cert with --client-key, or --client-jwk",
                ));
            }
        };
        let client_id = self.client_id.clone().ok_or_else(|| {
            SetupError::new("--client-id", "is needed with the client's credentials")
        })?;
        Ok(Some(ClientCredentials { client_id, auth }))
    }

    /// The public base URL: `--public-url` without a trailing slash, or `https://<bound>`.
    ///
    /// # Errors
    /// [`SetupError`] when `--public-url` is not an https URL with a host and without query or
    /// fragment.
    pub fn public_url(&self, bound: SocketAddr) -> Result<String, SetupError> {
        let Some(url) = &self.public_url else {
            return Ok(format!("https://{bound}"));
        };
        let uri: http::Uri = url
            .parse()
            .map_err(|e| SetupError::new("--public-url", format!("{url:?} is not a URL: {e}")))?;
        if uri.scheme_str() != Some("https")
            || uri.host().is_none()
            || uri.query().is_some()
            || url.contains('#')
        {
            return Err(SetupError::new(
                "--public-url",
                format!("{url:?} must be an https URL without query or fragment"),
            ));
        }
        Ok(url.trim_end_matches('/').to_owned())
    }

    /// Logs to standard error in `--log-format`, at the level `RUST_LOG` names (default `info`),
    /// in colour only on a terminal. Does nothing when a global tracing subscriber is already
    /// set.
    pub fn init_logging(&self) {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr);
        let _ = match self.log_format {
            LogFormat::Text => builder.try_init(),
            LogFormat::Json => builder.json().try_init(),
        };
    }
}

fn read(path: &Path, option: &str) -> Result<Vec<u8>, SetupError> {
    std::fs::read(path).map_err(|e| SetupError::new(&format!("{option} {}", path.display()), e))
}

/// Where a started API can be reached: what its ready line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addresses {
    /// The HTTPS listener's bound address.
    pub listen: SocketAddr,
    /// The URL clients use ([`ApiArgs::public_url`]), without a trailing slash.
    pub public_url: String,
    /// The metrics listener's bound address.
    pub metrics_listen: SocketAddr,
}

impl Addresses {
    /// The line an API prints once it is ready, which scripts and tests wait for:
    ///
    /// ```text
    /// <name> ready listen=127.0.0.1:8443 public_url=https://127.0.0.1:8443 metrics_listen=127.0.0.1:40111
    /// ```
    #[must_use]
    pub fn ready_line(&self, name: &str) -> String {
        format!(
            "{name} ready listen={} public_url={} metrics_listen={}",
            self.listen, self.public_url, self.metrics_listen
        )
    }

    /// Writes the [ready line](Self::ready_line) to standard output and flushes it (standard
    /// output carries nothing else; logs go to standard error).
    ///
    /// # Errors
    /// When standard output cannot be written.
    pub fn print_ready_line(&self, name: &str) -> std::io::Result<()> {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{}", self.ready_line(name))?;
        stdout.flush()
    }
}

/// Resolves on ctrl-c (SIGINT) or, on Unix, SIGTERM: the signal to stop accepting and finish
/// what is in progress. A signal that cannot be listened for is logged and never fires.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

#[cfg(feature = "server")]
mod server {
    use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    use super::{Addresses, ApiArgs};
    use crate::config::SetupError;
    use crate::tls::{ListenerKind, ServerIdentity, TlsError, TlsListener};

    /// The two listeners of an API, bound by [`ApiArgs::bind`].
    #[derive(Debug)]
    pub struct ApiListeners {
        /// The HTTPS listener ([`ListenerKind::Mtls`]: client certificates requested, not
        /// required), for [`tls::serve`](crate::tls::serve).
        pub api: TlsListener,
        /// The plain-HTTP metrics listener, e.g. for `axum::serve` with
        /// [`metrics_router`](super::metrics_router).
        pub metrics: tokio::net::TcpListener,
        /// Their addresses and the public URL.
        pub addresses: Addresses,
    }

    impl ApiArgs {
        /// The HTTPS identity: `--tls-cert` and `--tls-key`, or else a self-signed certificate
        /// for `localhost`, `127.0.0.1` and `::1` made in memory (with a warning: clients will
        /// not trust it; for development only).
        ///
        /// # Errors
        /// [`SetupError`] naming `--tls-cert` or `--tls-key` when a file cannot be read or holds
        /// no PEM certificate or key; or when the self-signed certificate cannot be made.
        pub fn server_identity(&self) -> Result<ServerIdentity, SetupError> {
            if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
                return ServerIdentity::from_pem_files(cert, key).map_err(|e| match e {
                    TlsError::File { key, message } => {
                        let option = if key == "tls.key_file" {
                            "--tls-key"
                        } else {
                            "--tls-cert"
                        };
                        SetupError::new(option, message)
                    }
                    other => SetupError::new("--tls-cert/--tls-key", other),
                });
            }
            tracing::warn!(
                "no --tls-cert/--tls-key: serving a self-signed certificate for localhost and \
                 127.0.0.1, made in memory (clients will not trust it; for development only)"
            );
            self_signed()
        }

        /// Binds the HTTPS listener at `listen` (the API's own option, `--listen`) with
        /// `identity`, and the metrics listener at `--metrics-listen`; port 0 picks a free port.
        /// The public URL is `--public-url`, or `https://<the bound address>`.
        ///
        /// # Errors
        /// [`SetupError`] naming `--listen` or `--metrics-listen` when an address cannot be
        /// bound, `--tls-cert/--tls-key` when rustls refuses the certificate or key, or
        /// `--public-url` when it is not a usable URL.
        pub async fn bind(
            &self,
            listen: std::net::SocketAddr,
            identity: &ServerIdentity,
        ) -> Result<ApiListeners, SetupError> {
            let api = TlsListener::bind(listen, ListenerKind::Mtls, identity)
                .await
                .map_err(|e| match e {
                    TlsError::Rustls(_) => SetupError::new("--tls-cert/--tls-key", e),
                    _ => SetupError::new("--listen", e),
                })?;
            let listen = api
                .local_addr()
                .map_err(|e| SetupError::new("--listen", e))?;
            let metrics = tokio::net::TcpListener::bind(self.metrics_listen)
                .await
                .map_err(|e| {
                    let reason = format!("cannot listen on {}: {e}", self.metrics_listen);
                    SetupError::new("--metrics-listen", reason)
                })?;
            let metrics_listen = metrics
                .local_addr()
                .map_err(|e| SetupError::new("--metrics-listen", e))?;
            let public_url = self.public_url(listen)?;
            Ok(ApiListeners {
                api,
                metrics,
                addresses: Addresses {
                    listen,
                    public_url,
                    metrics_listen,
                },
            })
        }
    }

    /// A self-signed certificate for `localhost`, `127.0.0.1` and `::1`.
    pub(super) fn self_signed() -> Result<ServerIdentity, SetupError> {
        let names = ["localhost", "127.0.0.1", "::1"]
            .map(str::to_owned)
            .to_vec();
        let certified = rcgen::generate_simple_self_signed(names)
            .map_err(|e| SetupError::new("a self-signed certificate", e))?;
        Ok(ServerIdentity {
            chain: vec![certified.cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                certified.signing_key.serialize_der(),
            )),
        })
    }
}

#[cfg(feature = "server")]
pub use server::ApiListeners;

#[cfg(feature = "axum")]
mod metrics {
    use std::sync::Arc;

    use axum::Router;
    use axum::extract::State;
    use axum::response::{IntoResponse as _, Response};
    use axum::routing::get;
    use http::{HeaderValue, header};
    use serde_json::json;

    use crate::verifier::Verifier;

    /// The API's own counters, appended to the verifier's.
    type Extra = Arc<dyn Fn() -> String + Send + Sync>;

    #[derive(Clone)]
    struct MetricsState {
        verifier: Verifier,
        extra: Extra,
    }

    /// The routes of a metrics listener (plain HTTP; bind it to loopback or a private network):
    ///
    /// - `GET /metrics`: the verifier's counters ([`MetricsSnapshot::to_prometheus`]) followed
    ///   by what `extra` returns (the API's own counters, in the Prometheus text format 0.0.4;
    ///   `String::new` for none);
    /// - `GET /feed`: the revocation feed's state as JSON, `{"feed": "live", "lag_ms": 812}`
    ///   ([`FeedState::as_str`]; `lag_ms` is null until the feed was heard from), for scripts
    ///   and tests that wait for it.
    ///
    /// [`MetricsSnapshot::to_prometheus`]: crate::MetricsSnapshot::to_prometheus
    /// [`FeedState::as_str`]: crate::FeedState::as_str
    pub fn metrics_router<F>(verifier: Verifier, extra: F) -> Router
    where
        F: Fn() -> String + Send + Sync + 'static,
    {
        Router::new()
            .route("/metrics", get(metrics))
            .route("/feed", get(feed))
            .with_state(MetricsState {
                verifier,
                extra: Arc::new(extra),
            })
    }

    async fn metrics(State(state): State<MetricsState>) -> Response {
        let mut text = state.verifier.metrics().to_prometheus();
        text.push_str(&(state.extra)());
        let mut response = text.into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        response
    }

    async fn feed(State(state): State<MetricsState>) -> Response {
        let snapshot = state.verifier.metrics();
        let mut response =
            axum::Json(json!({"feed": snapshot.feed.as_str(), "lag_ms": snapshot.feed_lag_ms}))
                .into_response();
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

#[cfg(feature = "axum")]
pub use metrics::metrics_router;

#[cfg(test)]
mod tests {
    use clap::{CommandFactory as _, Parser};

    use super::*;

    /// An API's command line: its own `--listen`, then the shared options.
    #[derive(Debug, Parser)]
    #[command(name = "test-api", args_override_self = true)]
    struct Cli {
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        #[command(flatten)]
        api: ApiArgs,
    }

    const BASE: [&str; 5] = [
        "test-api",
        "--issuer",
        "https://localhost:8443",
        "--resource",
        "https://localhost:9443/bank",
    ];

    fn try_parse(extra: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(BASE.iter().chain(extra).copied())
    }

    fn api(extra: &[&str]) -> ApiArgs {
        try_parse(extra).unwrap().api
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_flag_given_twice_takes_the_last_value_and_the_defaults_match_the_contract() {
        let cli = try_parse(&["--listen", "127.0.0.1:0", "--listen", "127.0.0.1:9000"]).unwrap();
        assert_eq!(cli.listen.port(), 9000);
        let api = cli.api;
        assert_eq!(api.metrics_listen.to_string(), "127.0.0.1:0");
        assert_eq!((api.feed_max_lag_secs, api.jwks_min_refresh_secs), (45, 5));
        assert_eq!(api.on_lag, LagPolicy::Introspect);
        assert_eq!(api.log_format, LogFormat::Text);
        assert!(!api.no_feed && !api.introspect_all);
        assert!(api.ca_files.is_empty() && api.public_url.is_none());
    }

    #[test]
    fn certificate_files_come_in_pairs_and_ca_files_repeat() {
        assert!(try_parse(&["--tls-cert", "a.pem"]).is_err());
        assert!(try_parse(&["--tls-cert", "a.pem", "--tls-key", "k.pem"]).is_ok());
        assert!(try_parse(&["--client-cert", "c.pem", "--client-key", "k.pem"]).is_err());
        let cert = [
            "--client-id",
            "rs",
            "--client-cert",
            "c.pem",
            "--client-key",
            "k.pem",
        ];
        assert!(try_parse(&cert).is_ok());
        let both = [&cert[..], &["--client-jwk", "j.json"][..]].concat();
        assert!(try_parse(&both).is_err());
        assert!(try_parse(&["--client-jwk", "j.json"]).is_err());
        assert!(try_parse(&["--feed-max-lag-secs", "0"]).is_err());
        let repeated = api(&["--ca-file", "a.pem", "--ca-file", "b.pem"]);
        assert_eq!(repeated.ca_files.len(), 2, "--ca-file is repeatable");
    }

    #[test]
    fn the_feed_needs_a_client_unless_turned_off() {
        let error = api(&[]).verifier_config().unwrap_err();
        assert!(error.to_string().contains("--no-feed"), "{error}");
        let config = api(&["--no-feed", "--jwks-min-refresh-secs", "1"])
            .verifier_config()
            .unwrap();
        assert!(config.feed.is_none() && config.client.is_none());
        assert_eq!(config.jwks_min_refresh, Duration::from_secs(1));
        assert_eq!(config.introspection, IntrospectionMode::OpaqueOnly);
        let error = api(&["--no-feed", "--client-id", "rs"])
            .verifier_config()
            .unwrap_err();
        assert!(error.to_string().contains("--client-id"), "{error}");
    }

    #[test]
    fn a_private_jwk_client_gets_the_feed_with_the_chosen_policy() {
        use portcullis_jose::{SigningAlg, SigningKey};
        let key = SigningKey::generate(SigningAlg::Es256, 2048).unwrap();
        let dir =
            std::env::temp_dir().join(format!("portcullis-verify-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("client.jwk.json");
        std::fs::write(&file, &*key.private_jwk_json().unwrap()).unwrap();
        let config = api(&[
            "--client-id",
            "rs-1",
            "--client-jwk",
            file.to_str().unwrap(),
            "--on-lag",
            "refuse",
            "--feed-max-lag-secs",
            "30",
            "--events-url",
            "https://localhost:8444/events",
            "--introspect-all",
            "--ca-file",
            "ca.pem",
        ])
        .verifier_config();
        let _ = std::fs::remove_dir_all(&dir);
        let config = config.unwrap();
        let feed = config.feed.unwrap();
        assert_eq!(feed.on_lag, LagPolicy::Refuse);
        assert_eq!(feed.max_lag, Duration::from_secs(30));
        assert_eq!(
            feed.endpoint.as_deref(),
            Some("https://localhost:8444/events")
        );
        assert_eq!(config.introspection, IntrospectionMode::Always);
        assert_eq!(config.ca_files, [PathBuf::from("ca.pem")]);
        let client = config.client.unwrap();
        assert_eq!(client.client_id, "rs-1");
        assert!(matches!(client.auth, ClientAuth::PrivateKeyJwt(_)));
    }

    #[test]
    fn missing_files_are_named() {
        let error = api(&[
            "--client-id",
            "rs-1",
            "--client-cert",
            "/nonexistent/c.pem",
            "--client-key",
            "/nonexistent/k.pem",
        ])
        .verifier_config()
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("--client-cert /nonexistent/c.pem"),
            "{error}"
        );
    }

    #[test]
    fn the_public_url_defaults_to_the_bound_address() {
        let bound: SocketAddr = "127.0.0.1:4321".parse().unwrap();
        assert_eq!(
            api(&[]).public_url(bound).unwrap(),
            "https://127.0.0.1:4321"
        );
        let given = api(&["--public-url", "https://api.bank.example/"]);
        assert_eq!(given.public_url(bound).unwrap(), "https://api.bank.example");
        for bad in ["http://x", "https://x/?a=b", "https://x/#top", "not a url"] {
            assert!(
                api(&["--public-url", bad]).public_url(bound).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_ready_line_has_the_contract_shape() {
        let addresses = Addresses {
            listen: "127.0.0.1:8443".parse().unwrap(),
            public_url: "https://127.0.0.1:8443".into(),
            metrics_listen: "127.0.0.1:40111".parse().unwrap(),
        };
        assert_eq!(
            addresses.ready_line("bank-api"),
            "bank-api ready listen=127.0.0.1:8443 public_url=https://127.0.0.1:8443 \
             metrics_listen=127.0.0.1:40111"
        );
    }

    #[cfg(feature = "server")]
    #[test]
    fn without_certificate_files_a_self_signed_certificate_is_made() {
        let identity = api(&[]).server_identity().unwrap();
        assert_eq!(identity.chain.len(), 1);
        crate::tls::server_config(&identity, crate::tls::ListenerKind::Mtls).unwrap();
        let error = api(&["--tls-cert", "/nonexistent/c.pem", "--tls-key", "k.pem"])
            .server_identity()
            .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("--tls-cert: /nonexistent/c.pem"),
            "{error}"
        );
    }

    #[cfg(feature = "server")]
    #[tokio::test]
    async fn both_listeners_are_bound_and_named_in_the_ready_line() {
        let api = api(&["--no-feed"]);
        let identity = server::self_signed().unwrap();
        let bound = api
            .bind("127.0.0.1:0".parse().unwrap(), &identity)
            .await
            .unwrap();
        let addresses = &bound.addresses;
        assert_ne!(addresses.listen.port(), 0);
        assert_ne!(addresses.metrics_listen.port(), 0);
        assert_eq!(
            addresses.public_url,
            format!("https://{}", addresses.listen)
        );
        let taken = api.bind(addresses.listen, &identity).await.unwrap_err();
        assert!(taken.to_string().starts_with("--listen: "), "{taken}");
    }
}
