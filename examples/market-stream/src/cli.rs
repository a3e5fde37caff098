//! The command line (the contract shared with `bank-api` and the end-to-end tests): every flag
//! also comes from an environment variable `MARKET_STREAM_<FLAG>`; a flag given twice takes the
//! last value (the tests put defaults first and override them).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// A WebSocket resource server of market data built on portcullis-verify: ticks of EURUSD,
/// GBPUSD, USDJPY, BTCEUR and XAUUSD at wss://<public-url>/stream for tokens with the scopes
/// ticks:<INSTRUMENT>, sessions closed when their token expires or is revoked.
#[derive(Debug, Parser)]
#[command(name = "market-stream", version, about, args_override_self = true)]
pub struct Args {
    /// The Portcullis issuer identifier; its metadata and JWKS are read at start.
    #[arg(long, env = "MARKET_STREAM_ISSUER", value_name = "URL")]
    pub issuer: String,

    /// This API's resource identifier (RFC 8707): the `aud` its tokens must carry.
    #[arg(long, env = "MARKET_STREAM_RESOURCE", value_name = "URI")]
    pub resource: String,

    /// The HTTPS listener; port 0 picks a free port (printed in the ready line).
    #[arg(
        long,
        env = "MARKET_STREAM_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:8444"
    )]
    pub listen: SocketAddr,

    /// The URL clients use, the base of DPoP proofs' `htu` (default: https://<bound address>).
    #[arg(long, env = "MARKET_STREAM_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,

    /// The server certificate chain (PEM, leaf first). Without it and --tls-key, a self-signed
    /// certificate for localhost and 127.0.0.1 is made in memory.
    #[arg(
        long,
        env = "MARKET_STREAM_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// The server certificate's private key (PEM).
    #[arg(
        long,
        env = "MARKET_STREAM_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// An extra CA to trust for the authorization server's TLS certificate (e.g.
    /// portcullis-data/tls/ca.pem); repeatable (comma-separated in the environment).
    #[arg(
        long = "ca-file",
        env = "MARKET_STREAM_CA_FILE",
        value_name = "FILE",
        value_delimiter = ','
    )]
    pub ca_files: Vec<PathBuf>,

    /// This API's own client at the authorization server (introspection, the revocation feed).
    #[arg(
        long,
        env = "MARKET_STREAM_CLIENT_ID",
        value_name = "ID",
        allow_hyphen_values = true
    )]
    pub client_id: Option<String>,

    /// Its certificate (PEM), for tls_client_auth or self_signed_tls_client_auth.
    #[arg(
        long,
        env = "MARKET_STREAM_CLIENT_CERT",
        value_name = "FILE",
        requires_all = ["client_key", "client_id"],
        conflicts_with = "client_jwk"
    )]
    pub client_cert: Option<PathBuf>,

    /// The private key of --client-cert (PEM).
    #[arg(
        long,
        env = "MARKET_STREAM_CLIENT_KEY",
        value_name = "FILE",
        requires = "client_cert"
    )]
    pub client_key: Option<PathBuf>,

    /// Alternatively, its private JWK (JSON), for private_key_jwt.
    #[arg(
        long,
        env = "MARKET_STREAM_CLIENT_JWK",
        value_name = "FILE",
        requires = "client_id"
    )]
    pub client_jwk: Option<PathBuf>,

    /// Introspect every token at the authorization server, JWTs too.
    #[arg(long, env = "MARKET_STREAM_INTROSPECT_ALL")]
    pub introspect_all: bool,

    /// Do not read the revocation event feed: revocations are then seen only by expiry (or by
    /// introspection with --introspect-all).
    #[arg(long, env = "MARKET_STREAM_NO_FEED")]
    pub no_feed: bool,

    /// How long the feed may go unheard before cached answers are no longer trusted.
    #[arg(
        long,
        env = "MARKET_STREAM_FEED_MAX_LAG_SECS",
        value_name = "N",
        default_value_t = 45,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub feed_max_lag_secs: u64,

    /// What to do when the feed lags: introspect each token (and recheck sessions every 2 s),
    /// or refuse (requests 503, sessions closed with 4503).
    #[arg(
        long,
        env = "MARKET_STREAM_ON_LAG",
        value_enum,
        default_value = "introspect"
    )]
    pub on_lag: OnLag,

    /// The feed's poll endpoint, instead of the one the authorization server's metadata names.
    #[arg(long, env = "MARKET_STREAM_EVENTS_URL", value_name = "URL")]
    pub events_url: Option<String>,

    /// The shortest time between two JWKS fetches caused by an unknown key id.
    #[arg(
        long,
        env = "MARKET_STREAM_JWKS_MIN_REFRESH_SECS",
        value_name = "N",
        default_value_t = 5
    )]
    pub jwks_min_refresh_secs: u64,

    /// The plain-HTTP metrics listener: GET /metrics (Prometheus) and GET /feed.
    #[arg(
        long,
        env = "MARKET_STREAM_METRICS_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:0"
    )]
    pub metrics_listen: SocketAddr,

    /// Log format on standard error; the level comes from RUST_LOG (default info).
    #[arg(
        long,
        env = "MARKET_STREAM_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
}

/// `--on-lag`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnLag {
    /// Introspect each token while the feed lags.
    Introspect,
    /// Refuse every token while the feed lags.
    Refuse,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn a_flag_given_twice_takes_the_last_value_and_the_defaults_match_the_contract() {
        let args = Args::try_parse_from([
            "market-stream",
            "--listen",
            "127.0.0.1:0",
            "--issuer",
            "https://as.example",
            "--resource",
            "https://stream.example/ticks",
            "--listen",
            "127.0.0.1:9000",
        ])
        .unwrap();
        assert_eq!(args.listen.port(), 9000);
        assert_eq!(args.metrics_listen.to_string(), "127.0.0.1:0");
        assert_eq!(args.feed_max_lag_secs, 45);
        assert_eq!(args.on_lag, OnLag::Introspect);
        assert_eq!(args.jwks_min_refresh_secs, 5);
        assert_eq!(args.log_format, LogFormat::Text);
        assert!(!args.no_feed && !args.introspect_all);
    }

    #[test]
    fn certificate_files_come_in_pairs() {
        let base = [
            "market-stream",
            "--issuer",
            "https://as",
            "--resource",
            "https://r",
        ];
        let with = |extra: &[&str]| {
            Args::try_parse_from(base.iter().chain(extra.iter()).copied()).map(|_| ())
        };
        assert!(with(&["--tls-cert", "a.pem"]).is_err());
        assert!(with(&["--tls-cert", "a.pem", "--tls-key", "k.pem"]).is_ok());
        assert!(with(&["--client-cert", "c.pem", "--client-key", "k.pem"]).is_err());
        assert!(
            with(&[
                "--client-id",
                "rs",
                "--client-cert",
                "c.pem",
                "--client-key",
                "k.pem"
            ])
            .is_ok()
        );
        assert!(
            with(&[
                "--client-id",
                "rs",
                "--client-cert",
                "c.pem",
                "--client-key",
                "k.pem",
                "--client-jwk",
                "j.json"
            ])
            .is_err()
        );
        let repeated = Args::try_parse_from(
            base.iter()
                .chain(["--ca-file", "a.pem", "--ca-file", "b.pem"].iter())
                .copied(),
        )
        .unwrap();
        assert_eq!(repeated.ca_files.len(), 2, "--ca-file is repeatable");
    }
}
