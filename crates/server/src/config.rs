//! Configuration: defaults, then a TOML file (`--config`), then `PORTCULLIS_*` environment
//! variables (nested keys joined by `__`, e.g. `PORTCULLIS_LISTEN__MAIN`), then command-line flags.
//! Unknown keys are errors, and every check names the key it applies to, so a typo stops start-up
//! instead of being silently ignored.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format as _, Serialized, Toml};
use ipnet::IpNet;
use portcullis_jose::SigningAlg;
use serde::{Deserialize, Serialize};

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {key}: {message}")]
pub struct ConfigError {
    /// The offending key, dotted (`tls.cert_file`).
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The whole configuration. Every value has a default: `portcullis serve` runs without any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The issuer identifier: an `https` URL without path, query or fragment. Defaults to
    /// `https://localhost:<main port>`.
    pub issuer: Option<String>,
    /// Where the embedded default keeps its database, development certificates and KEK.
    pub data_dir: PathBuf,
    /// `postgres://…` or `sqlite:…`. Defaults to `<data_dir>/portcullis.db` (SQLite, WAL).
    pub database_url: Option<String>,
    /// Database pool settings.
    pub database: DatabaseConfig,
    /// Listener addresses.
    pub listen: ListenConfig,
    /// Server certificate and handshake settings.
    pub tls: TlsConfig,
    /// Connection and request limits.
    pub limits: LimitsConfig,
    /// TLS-terminating proxies trusted to pass the client certificate (RFC 9440).
    pub proxy: ProxyConfig,
    /// Signing keys and their lifecycle.
    pub keys: KeysConfig,
    /// The Prometheus endpoint.
    pub metrics: MetricsConfig,
    /// Logging.
    pub log: LogConfig,
    /// Customer password hashing.
    pub passwords: PasswordsConfig,
    /// Fetching clients' `jwks_uri` documents.
    pub client_jwks: ClientJwksConfig,
    /// Client authentication.
    pub client_auth: crate::client_auth::ClientAuthConfig,
    /// Access tokens.
    pub tokens: TokensConfig,
    /// DPoP proofs (RFC 9449).
    pub dpop: DpopConfig,
    /// The authorization code flow.
    pub authorization: AuthorizationConfig,
    /// Dynamic client registration (RFC 7591/7592); closed unless configured.
    pub registration: crate::registration::RegistrationConfig,
    /// The revocation event feed (`/events`, RFC 8936).
    pub events: crate::feed::EventsConfig,
    /// Rate limits per source address, per client tier and per endpoint, and their backend.
    pub rate_limits: crate::ratelimit::RateLimitsConfig,
    /// Brute-force protection of the customer's login: delays and temporary locks per account
    /// and source, per source, per account, and per customer's second factor.
    pub login_protection: crate::login_throttle::LoginProtectionConfig,
    /// The tamper-evident audit trail: sealing of the chain heads.
    pub audit: crate::audit::AuditConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            issuer: None,
            data_dir: PathBuf::from("./portcullis-data"),
            database_url: None,
            database: DatabaseConfig::default(),
            listen: ListenConfig::default(),
            tls: TlsConfig::default(),
            limits: LimitsConfig::default(),
            proxy: ProxyConfig::default(),
            keys: KeysConfig::default(),
            metrics: MetricsConfig::default(),
            log: LogConfig::default(),
            passwords: PasswordsConfig::default(),
            client_jwks: ClientJwksConfig::default(),
            client_auth: crate::client_auth::ClientAuthConfig::default(),
            tokens: TokensConfig::default(),
            dpop: DpopConfig::default(),
            authorization: AuthorizationConfig::default(),
            registration: crate::registration::RegistrationConfig::default(),
            events: crate::feed::EventsConfig::default(),
            rate_limits: crate::ratelimit::RateLimitsConfig::default(),
            login_protection: crate::login_throttle::LoginProtectionConfig::default(),
            audit: crate::audit::AuditConfig::default(),
        }
    }
}

/// Database pool settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Most pooled connections.
    pub max_connections: u32,
    /// Seconds to wait for a pooled connection.
    pub acquire_timeout_secs: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout_secs: 5,
        }
    }
}

/// Listener addresses. Port 0 picks a free port; the chosen one is printed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenConfig {
    /// The main listener: browsers and every client. Never asks for a client certificate.
    pub main: SocketAddr,
    /// The mTLS listener, published as `mtls_endpoint_aliases` (RFC 8705 §5): asks for a client
    /// certificate but does not require one.
    pub mtls: SocketAddr,
    /// The public base URL of the mTLS listener. Defaults to the issuer's host on the mTLS port.
    pub mtls_base_url: Option<String>,
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            main: SocketAddr::from(([127, 0, 0, 1], 8443)),
            mtls: SocketAddr::from(([127, 0, 0, 1], 8444)),
            mtls_base_url: None,
        }
    }
}

/// The server certificate. Both files or neither: with neither, a development CA and a
/// certificate for `localhost` are generated in `<data_dir>/tls`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// Seconds a client has to finish the TLS handshake.
    pub handshake_timeout_secs: u64,
    /// Whether `Strict-Transport-Security` carries `preload` (FAPI2 SP 5.2.3-1/2). Set it only
    /// for an issuer domain, and all its subdomains, submitted to the browsers' preload list.
    pub hsts_preload: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert_file: None,
            key_file: None,
            handshake_timeout_secs: 10,
            hsts_preload: false,
        }
    }
}

/// Connection and request limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Most open connections per listener; further connections wait in the accept queue.
    pub max_connections: usize,
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Largest request head (HTTP/1.1 buffer, HTTP/2 header list) in bytes.
    pub max_header_bytes: usize,
    /// Seconds a client has to send a request's headers.
    pub header_read_timeout_secs: u64,
    /// Seconds a request may take from start to response.
    pub request_timeout_secs: u64,
    /// Most concurrent HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// Seconds open connections get to finish after SIGTERM/SIGINT.
    pub shutdown_grace_secs: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_body_bytes: 64 * 1024,
            max_header_bytes: 16 * 1024,
            header_read_timeout_secs: 10,
            request_timeout_secs: 30,
            max_concurrent_streams: 100,
            shutdown_grace_secs: 10,
        }
    }
}

/// TLS-terminating proxies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyConfig {
    /// Addresses (or networks) whose `Client-Cert` header (RFC 9440) is believed. From anyone
    /// else the header is ignored and logged.
    pub trusted_addresses: Vec<IpNet>,
}

/// A secret from configuration. Never printed.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret value.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// Signing keys and their lifecycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeysConfig {
    /// The key-encryption key, base64 of 32 bytes. Prefer `kek_file` or the environment.
    pub kek: Option<Secret>,
    /// A file holding the key-encryption key. Defaults to `<data_dir>/kek.key`, generated on
    /// first start with a warning.
    pub kek_file: Option<PathBuf>,
    /// The algorithms the server keeps an active key for.
    pub algorithms: Vec<SigningAlg>,
    /// RSA modulus size for PS256 keys (at least 2048).
    pub rsa_bits: u32,
    /// `Cache-Control: max-age` of `/jwks`, in seconds. A new key is published at least this
    /// long (plus `refresh_interval_secs`) before it signs.
    pub jwks_max_age_secs: u64,
    /// How often each replica re-reads the keys from the database, in seconds.
    pub refresh_interval_secs: u64,
    /// How long a retired key stays published, in seconds: at least the longest lifetime of
    /// anything it signed plus the JWKS cache lifetime.
    pub keep_retired_secs: u64,
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self {
            kek: None,
            kek_file: None,
            algorithms: SigningAlg::ALL.to_vec(),
            rsa_bits: 2048,
            jwks_max_age_secs: 300,
            refresh_interval_secs: 10,
            keep_retired_secs: 86_400,
        }
    }
}

/// The Prometheus endpoint, on its own plain-HTTP listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Whether to serve `/metrics` at all.
    pub enabled: bool,
    /// Where. Loopback by default; exposing it wider is a deliberate choice.
    pub listen: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
        }
    }
}

/// Customer password hashing (argon2id at OWASP parameters, 19 MiB per hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordsConfig {
    /// Most password hashes computed at once, on the blocking pool; further logins queue. Bounds
    /// the memory a burst of logins can take (19 MiB each). 1 to 256; defaults to the number of
    /// CPUs.
    pub max_concurrent_hashes: usize,
}

/// The most concurrent password hashes allowed (256 × 19 MiB is already close to 5 GiB).
pub const MAX_CONCURRENT_HASHES: usize = 256;

impl Default for PasswordsConfig {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        Self {
            max_concurrent_hashes: cpus.clamp(1, MAX_CONCURRENT_HASHES),
        }
    }
}

/// Fetching clients' `jwks_uri` documents (see `crate::jwks_fetch`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientJwksConfig {
    /// Milliseconds a whole fetch may take: connect, TLS, request and body. 1 to 60000.
    pub timeout_ms: u64,
    /// Largest accepted document, in bytes, enforced while it streams in. 1024 to 1048576.
    pub max_bytes: usize,
    /// Seconds a fetched set is used before it is fetched again; a response's
    /// `Cache-Control: max-age` may shorten it. 1 to 86400.
    pub cache_ttl_secs: u64,
    /// Fewest seconds between two fetches of one URI when a signature names an unknown `kid`,
    /// and how long a failed fetch is remembered. 1 to 3600.
    pub min_refetch_interval_secs: u64,
    /// Whether `jwks_uri`s may point at loopback, private, link-local and other non-public
    /// addresses. For development and tests only: in production it lets any client make the
    /// server request internal services.
    pub allow_private_addresses: bool,
    /// PEM files of CA certificates trusted for `jwks_uri`s besides the Mozilla root set, for
    /// clients in a private PKI.
    pub extra_ca_files: Vec<PathBuf>,
}

impl Default for ClientJwksConfig {
    fn default() -> Self {
        Self {
            timeout_ms: 3000,
            max_bytes: 64 * 1024,
            cache_ttl_secs: 300,
            min_refetch_interval_secs: 30,
            allow_private_addresses: false,
            extra_ca_files: Vec::new(),
        }
    }
}

impl ClientJwksConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let ranges: [(&str, u64, std::ops::RangeInclusive<u64>); 4] = [
            ("client_jwks.timeout_ms", self.timeout_ms, 1..=60_000),
            (
                "client_jwks.max_bytes",
                self.max_bytes as u64,
                1024..=1024 * 1024,
            ),
            (
                "client_jwks.cache_ttl_secs",
                self.cache_ttl_secs,
                1..=86_400,
            ),
            (
                "client_jwks.min_refetch_interval_secs",
                self.min_refetch_interval_secs,
                1..=3600,
            ),
        ];
        for (key, value, range) in ranges {
            if !range.contains(&value) {
                return Err(ConfigError::new(
                    key,
                    format!("must be {} to {}", range.start(), range.end()),
                ));
            }
        }
        for path in &self.extra_ca_files {
            std::fs::File::open(path).map_err(|e| {
                ConfigError::new(
                    "client_jwks.extra_ca_files",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
        }
        Ok(())
    }
}

/// Access tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokensConfig {
    /// Access-token lifetime in seconds, unless the client's settings say otherwise. 60 to 3600.
    pub access_token_lifetime_secs: u32,
    /// The algorithm access tokens are signed with. Defaults to the first of `keys.algorithms`.
    pub signing_alg: Option<SigningAlg>,
    /// Refresh-token lifetime in seconds, unless the client's settings say otherwise; never
    /// beyond the consent it comes from.
    pub refresh_token_lifetime_secs: u32,
    /// How long a rotated refresh token of an `oauth` client still works, in seconds, so that a
    /// client whose answer was lost can retry (FAPI2 SP 5.3.2.1-9). FAPI clients' tokens are not
    /// rotated.
    pub refresh_rotation_grace_secs: u32,
    /// How long a replica uses its snapshot of the resource servers, in seconds (0 to 60; 0
    /// reads them for every token). Changes made on another replica are seen within this time.
    pub resource_cache_secs: u32,
    /// How many live access tokens a replica remembers for introspection and its own protected
    /// resources, and how many registered clients it remembers for client authentication (0
    /// turns both caches off). A remembered answer is trusted only while no revocation and no
    /// client change has happened anywhere since, so neither cache outlives one.
    pub liveness_cache_entries: usize,
}

impl Default for TokensConfig {
    fn default() -> Self {
        Self {
            access_token_lifetime_secs: 300,
            signing_alg: None,
            refresh_token_lifetime_secs: 30 * 86_400,
            refresh_rotation_grace_secs: 60,
            resource_cache_secs: 5,
            liveness_cache_entries: 100_000,
        }
    }
}

/// The authorization code flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthorizationConfig {
    /// How long a pushed authorization request can be used, in seconds (RFC 9126 `expires_in`;
    /// 10 to 599: FAPI2 SP 5.3.2.2-12 wants under 600).
    pub request_lifetime_secs: u32,
    /// How long a code can be redeemed, in seconds (10 to 60: FAPI2 SP 5.3.2.1-11).
    pub code_lifetime_secs: u32,
    /// How long a customer has to log in and consent, in seconds.
    pub interaction_lifetime_secs: u32,
    /// A session ends after this many seconds without use.
    pub session_idle_secs: u32,
    /// A session ends this many seconds after login, whatever happens.
    pub session_absolute_secs: u32,
    /// The bank's name on the customer's pages.
    pub service_name: String,
}

impl Default for AuthorizationConfig {
    fn default() -> Self {
        Self {
            request_lifetime_secs: 90,
            code_lifetime_secs: 60,
            interaction_lifetime_secs: 600,
            session_idle_secs: 900,
            session_absolute_secs: 8 * 3600,
            service_name: "Portcullis Bank".into(),
        }
    }
}

/// DPoP proofs (RFC 9449).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DpopConfig {
    /// Require a server-provided nonce in every proof (RFC 9449 §8 at `/token`, §9 at the admin
    /// API): a proof made in advance stops working within two nonce windows.
    pub require_nonce: bool,
    /// How long a nonce window lasts, in seconds (10 to 600); a nonce is good for its window and
    /// the next.
    pub nonce_window_secs: u32,
}

impl Default for DpopConfig {
    fn default() -> Self {
        Self {
            require_nonce: false,
            nonce_window_secs: 60,
        }
    }
}

/// Log output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `json` (one object a line) or `text`.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `portcullis_server=debug,info`. `RUST_LOG` overrides.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Json,
            level: "info".into(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Structured JSON, one object a line.
    Json,
    /// Human-readable text.
    Text,
}

/// Values given on the command line, which override file and environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--database-url`.
    pub database_url: Option<String>,
    /// `--issuer`.
    pub issuer: Option<String>,
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--mtls-listen`.
    pub mtls_listen: Option<SocketAddr>,
    /// `--metrics-listen`.
    pub metrics_listen: Option<SocketAddr>,
}

impl Config {
    /// The algorithm access tokens are signed with.
    #[must_use]
    pub fn access_token_alg(&self) -> SigningAlg {
        self.tokens
            .signing_alg
            .or_else(|| self.keys.algorithms.first().copied())
            .unwrap_or(SigningAlg::Es256)
    }

    /// Loads defaults, the file (if given), the environment and the overrides, then validates.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first bad key.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        Self::load_from(file, Env::prefixed("PORTCULLIS_").split("__"), overrides)
    }

    fn load_from(
        file: Option<&Path>,
        env: Env,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            std::fs::metadata(path).map_err(|e| {
                ConfigError::new("--config", format!("cannot read {}: {e}", path.display()))
            })?;
            figment = figment.merge(Toml::file_exact(path));
        }
        let mut config: Config = figment.merge(env).extract().map_err(figment_error)?;
        if let Some(v) = &overrides.data_dir {
            config.data_dir.clone_from(v);
        }
        if let Some(v) = &overrides.database_url {
            config.database_url = Some(v.clone());
        }
        if let Some(v) = &overrides.issuer {
            config.issuer = Some(v.clone());
        }
        if let Some(v) = overrides.listen {
            config.listen.main = v;
        }
        if let Some(v) = overrides.mtls_listen {
            config.listen.mtls = v;
        }
        if let Some(v) = overrides.metrics_listen {
            config.metrics.listen = v;
        }
        config.validate()?;
        Ok(config)
    }

    /// The database URL, defaulting to SQLite in the data directory.
    #[must_use]
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("portcullis.db").display()
            )
        })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(issuer) = &self.issuer {
            check_base_url("issuer", issuer)?;
        }
        if let Some(url) = &self.listen.mtls_base_url {
            check_base_url("listen.mtls_base_url", url)?;
        }
        portcullis_store::check_url(&self.database_url()).map_err(|e| {
            ConfigError::new(
                "database_url",
                e.to_string().trim_start_matches("database_url: "),
            )
        })?;
        if self.listen.main == self.listen.mtls && self.listen.main.port() != 0 {
            return Err(ConfigError::new(
                "listen.mtls",
                "must differ from listen.main",
            ));
        }
        match (&self.tls.cert_file, &self.tls.key_file) {
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "tls.key_file",
                    "required with tls.cert_file",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "tls.cert_file",
                    "required with tls.key_file",
                ));
            }
            _ => {}
        }
        for (key, path) in [
            ("tls.cert_file", &self.tls.cert_file),
            ("tls.key_file", &self.tls.key_file),
        ] {
            if let Some(path) = path {
                std::fs::File::open(path).map_err(|e| {
                    ConfigError::new(key, format!("cannot read {}: {e}", path.display()))
                })?;
            }
        }
        if self.keys.kek.is_some() && self.keys.kek_file.is_some() {
            return Err(ConfigError::new(
                "keys.kek",
                "set keys.kek or keys.kek_file, not both",
            ));
        }
        if let Some(kek) = &self.keys.kek {
            portcullis_core::keys::KeyEncryptionKey::from_base64(kek.expose())
                .map_err(|e| ConfigError::new("keys.kek", e.to_string()))?;
        }
        if self.keys.algorithms.is_empty() {
            return Err(ConfigError::new(
                "keys.algorithms",
                "at least one algorithm is required",
            ));
        }
        if self.keys.rsa_bits < 2048 || self.keys.rsa_bits > 8192 {
            return Err(ConfigError::new(
                "keys.rsa_bits",
                "must be 2048 to 8192 (FAPI2 SP 5.4.1-2)",
            ));
        }
        if self.keys.keep_retired_secs < self.keys.jwks_max_age_secs {
            return Err(ConfigError::new(
                "keys.keep_retired_secs",
                "must be at least keys.jwks_max_age_secs, or caches could miss a key still in use",
            ));
        }
        let positive: [(&str, u64); 8] = [
            (
                "keys.refresh_interval_secs",
                self.keys.refresh_interval_secs,
            ),
            (
                "tls.handshake_timeout_secs",
                self.tls.handshake_timeout_secs,
            ),
            (
                "limits.header_read_timeout_secs",
                self.limits.header_read_timeout_secs,
            ),
            (
                "limits.request_timeout_secs",
                self.limits.request_timeout_secs,
            ),
            ("limits.max_connections", self.limits.max_connections as u64),
            ("limits.max_body_bytes", self.limits.max_body_bytes as u64),
            (
                "limits.max_concurrent_streams",
                u64::from(self.limits.max_concurrent_streams),
            ),
            (
                "database.max_connections",
                u64::from(self.database.max_connections),
            ),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::new(*key, "must be greater than zero"));
        }
        if self.limits.max_header_bytes < 8192 {
            return Err(ConfigError::new(
                "limits.max_header_bytes",
                "must be at least 8192",
            ));
        }
        if !(1..=MAX_CONCURRENT_HASHES).contains(&self.passwords.max_concurrent_hashes) {
            return Err(ConfigError::new(
                "passwords.max_concurrent_hashes",
                format!("must be 1 to {MAX_CONCURRENT_HASHES}"),
            ));
        }
        self.client_jwks.validate()?;
        self.client_auth.validate()?;
        self.client_auth.trust_anchors()?;
        self.registration.validate()?;
        self.events.validate(self.limits.request_timeout_secs)?;
        self.rate_limits.validate()?;
        self.login_protection.validate()?;
        self.audit.validate()?;
        if !(60..=3600).contains(&self.tokens.access_token_lifetime_secs) {
            return Err(ConfigError::new(
                "tokens.access_token_lifetime_secs",
                "must be 60 to 3600",
            ));
        }
        let a = &self.authorization;
        for (key, value, range) in [
            (
                "authorization.code_lifetime_secs",
                a.code_lifetime_secs,
                10..=60,
            ),
            (
                "authorization.interaction_lifetime_secs",
                a.interaction_lifetime_secs,
                60..=3600,
            ),
            (
                "authorization.session_idle_secs",
                a.session_idle_secs,
                60..=86_400,
            ),
            (
                "authorization.session_absolute_secs",
                a.session_absolute_secs,
                60..=7 * 86_400,
            ),
        ] {
            if !range.contains(&value) {
                return Err(ConfigError::new(
                    key,
                    format!("must be {} to {}", range.start(), range.end()),
                ));
            }
        }
        if a.service_name.trim().is_empty() || a.service_name.len() > 100 {
            return Err(ConfigError::new(
                "authorization.service_name",
                "must be 1 to 100 characters",
            ));
        }
        if !(10..=599).contains(&self.authorization.request_lifetime_secs) {
            return Err(ConfigError::new(
                "authorization.request_lifetime_secs",
                "must be 10 to 599",
            ));
        }
        if !(10..=600).contains(&self.dpop.nonce_window_secs) {
            return Err(ConfigError::new(
                "dpop.nonce_window_secs",
                "must be 10 to 600",
            ));
        }
        if self.tokens.liveness_cache_entries > 10_000_000 {
            return Err(ConfigError::new(
                "tokens.liveness_cache_entries",
                "must be at most 10000000",
            ));
        }
        if self.tokens.resource_cache_secs > 60 {
            return Err(ConfigError::new(
                "tokens.resource_cache_secs",
                "must be 0 to 60",
            ));
        }
        if let Some(alg) = self.tokens.signing_alg
            && !self.keys.algorithms.contains(&alg)
        {
            return Err(ConfigError::new(
                "tokens.signing_alg",
                format!("{alg} is not one of keys.algorithms"),
            ));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| ConfigError::new("log.level", e.to_string()))?;
        Ok(())
    }
}

/// Checks an `https` URL with a host and no path, query, fragment or credentials. OIDC
/// Discovery §3 and RFC 8414 §2 compare the issuer as an exact string, so we keep it canonical.
fn check_base_url(key: &str, value: &str) -> Result<(), ConfigError> {
    let url =
        url::Url::parse(value).map_err(|e| ConfigError::new(key, format!("not a URL: {e}")))?;
    if url.scheme() != "https" {
        return Err(ConfigError::new(
            key,
            "must be an https URL (FAPI2 SP 5.2.1)",
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::new(key, "must have a host"));
    }
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(ConfigError::new(
            key,
            "must not have a query, fragment or credentials",
        ));
    }
    if url.path() != "/" || value.ends_with('/') {
        return Err(ConfigError::new(
            key,
            "must not have a path or a trailing slash",
        ));
    }
    Ok(())
}

fn figment_error(error: figment::Error) -> ConfigError {
    let key = if error.path.is_empty() {
        "configuration".to_owned()
    } else {
        error.path.join(".")
    };
    let message = match &error.kind {
        figment::error::Kind::UnknownField(field, _) => {
            // figment's path ends with the unknown field itself, except at the top level.
            let full = if error.path.last() == Some(field) {
                key
            } else if error.path.is_empty() {
                field.clone()
            } else {
                format!("{key}.{field}")
            };
            return ConfigError::new(full, "unknown key");
        }
        _ => error.to_string(),
    };
    ConfigError::new(key, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("portcullis.toml");
        std::fs::write(&path, toml).unwrap();
        Config::load_from(
            Some(&path),
            Env::prefixed("PORTCULLIS_TEST_NOTHING_"),
            &Overrides::default(),
        )
    }

    #[test]
    fn defaults_need_no_file_and_no_environment() {
        let config = Config::load_from(
            None,
            Env::prefixed("PORTCULLIS_TEST_NOTHING_"),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(
            config.database_url(),
            "sqlite://./portcullis-data/portcullis.db?mode=rwc"
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = load("issuer = \"https://as.example\"\nlisen = 1\n").unwrap_err();
        assert_eq!(err.key, "lisen");
        let err = load("[tls]\ncert = \"x\"\n").unwrap_err();
        assert_eq!(err.key, "tls.cert");
    }

    #[test]
    fn bad_values_are_named() {
        assert_eq!(
            load("database_url = \"mysql://x\"").unwrap_err().key,
            "database_url"
        );
        assert_eq!(
            load("issuer = \"http://as.example\"").unwrap_err().key,
            "issuer"
        );
        assert_eq!(
            load("issuer = \"https://as.example/\"").unwrap_err().key,
            "issuer"
        );
        assert_eq!(
            load(
                "[tls]\ncert_file = \"/nonexistent/cert.pem\"\nkey_file = \"/nonexistent/key.pem\""
            )
            .unwrap_err()
            .key,
            "tls.cert_file"
        );
        let err = load("[keys]\nalgorithms = [\"RS256\"]").unwrap_err();
        assert!(err.key.starts_with("keys.algorithms"), "{err}");
        assert_eq!(
            load("[keys]\nrsa_bits = 1024").unwrap_err().key,
            "keys.rsa_bits"
        );
        assert_eq!(load("[keys]\nkek = \"short\"").unwrap_err().key, "keys.kek");
        assert_eq!(
            load("[limits]\nmax_body_bytes = \"lots\"").unwrap_err().key,
            "limits.max_body_bytes"
        );
    }

    #[test]
    #[allow(
        clippy::result_large_err,
        reason = "figment::Jail fixes the closure type"
    )]
    fn environment_overrides_the_file_and_flags_override_both() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("portcullis.toml");
        std::fs::write(
            &path,
            "issuer = \"https://file.example\"\n[listen]\nmain = \"127.0.0.1:1\"\n",
        )
        .unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("PORTCULLIS_JAILED_LISTEN__MAIN", "127.0.0.1:2");
            jail.set_env("PORTCULLIS_JAILED_KEYS__JWKS_MAX_AGE_SECS", "60");
            let env = || Env::prefixed("PORTCULLIS_JAILED_").split("__");
            let config = Config::load_from(Some(&path), env(), &Overrides::default()).unwrap();
            assert_eq!(config.issuer.as_deref(), Some("https://file.example"));
            assert_eq!(config.listen.main.port(), 2);
            assert_eq!(config.keys.jwks_max_age_secs, 60);
            let flags = Overrides {
                listen: Some("127.0.0.1:3".parse().unwrap()),
                ..Overrides::default()
            };
            assert_eq!(
                Config::load_from(Some(&path), env(), &flags)
                    .unwrap()
                    .listen
                    .main
                    .port(),
                3
            );
            Ok(())
        });
    }

    #[test]
    fn password_hash_concurrency_is_bounded_and_defaults_to_the_cpus() {
        for bad in ["0", "257"] {
            let err = load(&format!("[passwords]\nmax_concurrent_hashes = {bad}")).unwrap_err();
            assert_eq!(err.key, "passwords.max_concurrent_hashes", "{bad}");
        }
        assert_eq!(
            load("[passwords]\nmax_concurrent_hashes = 3")
                .unwrap()
                .passwords
                .max_concurrent_hashes,
            3
        );
        assert_eq!(
            load("[passwords]\nmax_hashes = 3").unwrap_err().key,
            "passwords.max_hashes"
        );
        let default = PasswordsConfig::default().max_concurrent_hashes;
        assert!((1..=MAX_CONCURRENT_HASHES).contains(&default));
    }

    #[test]
    fn client_jwks_limits_are_named() {
        for (toml, key) in [
            ("timeout_ms = 0", "client_jwks.timeout_ms"),
            ("timeout_ms = 60001", "client_jwks.timeout_ms"),
            ("max_bytes = 10", "client_jwks.max_bytes"),
            ("cache_ttl_secs = 0", "client_jwks.cache_ttl_secs"),
            (
                "min_refetch_interval_secs = 0",
                "client_jwks.min_refetch_interval_secs",
            ),
            (
                "extra_ca_files = [\"/nonexistent/ca.pem\"]",
                "client_jwks.extra_ca_files",
            ),
            ("allow_private = true", "client_jwks.allow_private"),
        ] {
            assert_eq!(
                load(&format!("[client_jwks]\n{toml}")).unwrap_err().key,
                key
            );
        }
        let config =
            load("[client_jwks]\nallow_private_addresses = true\ntimeout_ms = 500").unwrap();
        assert!(config.client_jwks.allow_private_addresses);
        assert_eq!(config.client_jwks.timeout_ms, 500);
        assert_eq!(config.client_jwks.max_bytes, 65_536);
    }

    #[test]
    fn the_kek_never_prints() {
        let secret = Secret("c2VjcmV0".into());
        assert_eq!(format!("{secret:?}"), "[redacted]");
    }
}
