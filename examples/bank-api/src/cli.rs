//! The command line (shared in shape with `market-stream`): every option can also come from an
//! environment variable `BANK_API_<OPTION>`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Example REST resource server of a bank: accounts and payments for Portcullis access tokens.
///
/// Prints one line to standard output once it is ready:
/// `bank-api ready listen=… public_url=… metrics_listen=…`; logs go to standard error.
#[derive(Debug, Parser)]
#[command(name = "bank-api", version)]
pub struct Cli {
    /// The Portcullis issuer identifier, e.g. https://localhost:8443.
    #[arg(long, env = "BANK_API_ISSUER", value_name = "URL")]
    pub issuer: String,

    /// This API's resource identifier (RFC 8707), which its tokens carry as `aud`.
    #[arg(long, env = "BANK_API_RESOURCE", value_name = "URI")]
    pub resource: String,

    /// The HTTPS listener; port 0 picks a free port.
    #[arg(
        long,
        env = "BANK_API_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:8443"
    )]
    pub listen: SocketAddr,

    /// The URL clients call this API at (the base of DPoP `htu`). Default: https://<bound address>.
    #[arg(long, env = "BANK_API_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,

    /// The server certificate chain (PEM, leaf first). Without it and --tls-key, a self-signed
    /// certificate for localhost and 127.0.0.1 is made in memory.
    #[arg(
        long,
        env = "BANK_API_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// The server certificate's private key (PEM).
    #[arg(
        long,
        env = "BANK_API_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// An extra CA to trust for the authorization server's TLS certificate (e.g.
    /// portcullis-data/tls/ca.pem); repeatable (comma-separated in the environment variable).
    #[arg(
        long = "ca-file",
        env = "BANK_API_CA_FILE",
        value_name = "FILE",
        value_delimiter = ','
    )]
    pub ca_files: Vec<PathBuf>,

    /// This API's own client at the authorization server (introspection, the revocation feed).
    #[arg(
        long,
        env = "BANK_API_CLIENT_ID",
        value_name = "ID",
        allow_hyphen_values = true
    )]
    pub client_id: Option<String>,

    /// The client's certificate (PEM), for tls_client_auth or self_signed_tls_client_auth.
    #[arg(
        long,
        env = "BANK_API_CLIENT_CERT",
        value_name = "FILE",
        requires_all = ["client_key", "client_id"],
        conflicts_with = "client_jwk"
    )]
    pub client_cert: Option<PathBuf>,

    /// The private key of --client-cert (PEM).
    #[arg(
        long,
        env = "BANK_API_CLIENT_KEY",
        value_name = "FILE",
        requires = "client_cert"
    )]
    pub client_key: Option<PathBuf>,

    /// Instead of a certificate: the client's private JWK (JSON) for private_key_jwt.
    #[arg(
        long,
        env = "BANK_API_CLIENT_JWK",
        value_name = "FILE",
        requires = "client_id"
    )]
    pub client_jwk: Option<PathBuf>,

    /// Introspect every token at the authorization server, JWTs too.
    #[arg(long, env = "BANK_API_INTROSPECT_ALL")]
    pub introspect_all: bool,

    /// Do not follow the revocation event feed (revocations are then seen only at expiry,
    /// unless every token is introspected).
    #[arg(long, env = "BANK_API_NO_FEED")]
    pub no_feed: bool,

    /// How long the feed may be silent before cached answers stop being trusted, in seconds.
    #[arg(
        long,
        env = "BANK_API_FEED_MAX_LAG_SECS",
        value_name = "N",
        default_value_t = 45
    )]
    pub feed_max_lag_secs: u64,

    /// What to do while the feed lags: introspect each token, or refuse every token with 503.
    #[arg(long, env = "BANK_API_ON_LAG", value_enum, default_value_t = OnLag::Introspect)]
    pub on_lag: OnLag,

    /// The feed's poll endpoint, when not the one the authorization server's metadata names.
    #[arg(long, env = "BANK_API_EVENTS_URL", value_name = "URL")]
    pub events_url: Option<String>,

    /// The shortest time between two JWKS fetches caused by an unknown key id, in seconds.
    #[arg(
        long,
        env = "BANK_API_JWKS_MIN_REFRESH_SECS",
        value_name = "N",
        default_value_t = 5
    )]
    pub jwks_min_refresh_secs: u64,

    /// The plain-HTTP listener of GET /metrics and GET /feed; port 0 picks a free port.
    #[arg(
        long,
        env = "BANK_API_METRICS_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:0"
    )]
    pub metrics_listen: SocketAddr,

    /// The log format on standard error (the level comes from RUST_LOG, default info).
    #[arg(long, env = "BANK_API_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// `--on-lag`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnLag {
    /// Introspect each token while the feed lags.
    Introspect,
    /// Refuse every token with 503 while the feed lags.
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
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_consistent_and_has_the_contract_defaults() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "bank-api",
            "--issuer",
            "https://localhost:8443",
            "--resource",
            "https://bank.example/api",
            "--ca-file",
            "a.pem",
            "--ca-file",
            "b.pem",
        ])
        .unwrap();
        assert_eq!(cli.listen.to_string(), "127.0.0.1:8443");
        assert_eq!(cli.metrics_listen.port(), 0);
        assert_eq!(cli.ca_files.len(), 2);
        assert_eq!((cli.feed_max_lag_secs, cli.jwks_min_refresh_secs), (45, 5));
        assert_eq!(cli.on_lag, OnLag::Introspect);
        assert!(
            Cli::try_parse_from([
                "bank-api",
                "--issuer",
                "x",
                "--resource",
                "y",
                "--client-id",
                "c",
                "--client-cert",
                "c.pem",
                "--client-key",
                "k.pem",
                "--client-jwk",
                "j.json",
            ])
            .is_err()
        );
    }
}
