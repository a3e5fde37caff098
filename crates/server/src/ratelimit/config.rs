//! The `[rate_limits]` configuration: which backend keeps the buckets, what happens when a
//! shared backend fails, and the quotas per source address and endpoint, per client tier and
//! endpoint, and for client-authentication failures. Every quota is `quota` requests per
//! `window_secs` with a burst of `quota`. The defaults are meant for a bank and are listed in the
//! README ("Rate limits").

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use portcullis_core::ratelimit::Quota;
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, Secret};

/// Where the buckets live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// In this process: sharded, bounded. N replicas allow N times the limits.
    Memory,
    /// In the database (`rate_limits` table): shared by every replica, one round trip per
    /// bucket a request spends from.
    Database,
    /// In Redis (`redis_url`): shared by every replica, one script call per check.
    Redis,
}

impl BackendKind {
    /// The lower-case name, for logs and metrics.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            BackendKind::Memory => "memory",
            BackendKind::Database => "database",
            BackendKind::Redis => "redis",
        }
    }
}

/// What a check does when the shared backend (database or Redis) fails or times out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnBackendError {
    /// Refuse the request (503 `temporarily_unavailable`): nothing passes unlimited, and nothing
    /// passes at all.
    Deny,
    /// Check the request against this replica's own in-memory buckets instead, logging and
    /// counting the failure: the limits keep holding per replica.
    AllowLocal,
}

/// One limit: `quota` requests per `window_secs` seconds, with a burst of `quota`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// Requests per window, and the most allowed at once (1 to 1000000).
    pub quota: u32,
    /// The window in seconds (1 to 86400).
    pub window_secs: u64,
}

impl Limit {
    const fn new(quota: u32, window_secs: u64) -> Self {
        Self { quota, window_secs }
    }

    /// As a quota.
    ///
    /// # Errors
    /// [`ConfigError`] naming `key` when the quota or window is out of bounds.
    pub fn quota(self, key: &str) -> Result<Quota, ConfigError> {
        if !(1..=1_000_000).contains(&self.quota) {
            return Err(ConfigError::new(
                format!("{key}.quota"),
                "must be 1 to 1000000",
            ));
        }
        if !(1..=86_400).contains(&self.window_secs) {
            return Err(ConfigError::new(
                format!("{key}.window_secs"),
                "must be 1 to 86400",
            ));
        }
        Quota::new(self.quota, Duration::from_secs(self.window_secs))
            .map_err(|e| ConfigError::new(key, e.to_string()))
    }
}

/// Per source address and endpoint (checked before any authentication), and for
/// client-authentication failures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IpLimits {
    /// `/token`.
    pub token: Limit,
    /// `/par`.
    pub par: Limit,
    /// `/introspect`.
    pub introspect: Limit,
    /// `/revoke`.
    pub revoke: Limit,
    /// `POST /register` (dynamic client registration).
    pub register: Limit,
    /// The customers' login and second-factor form posts (`/authorize/login`,
    /// `/authorize/totp`, `/account/login`, `/account/totp`).
    pub login: Limit,
    /// Every other endpoint together (health checks and test controls excepted).
    pub default: Limit,
    /// Client-authentication failures (a bad client assertion, DPoP proof, secret or
    /// certificate) at `/token`, `/par`, `/introspect`, `/revoke` and `/events`: when spent, the
    /// address gets 429 there before authentication is tried. Each request reserves one until
    /// its client has authenticated, so the quota also bounds how many client authentications
    /// one address can have in progress at once.
    pub auth_failures: Limit,
}

impl Default for IpLimits {
    fn default() -> Self {
        Self {
            token: Limit::new(6000, 60),
            par: Limit::new(3000, 60),
            introspect: Limit::new(30_000, 60),
            revoke: Limit::new(3000, 60),
            register: Limit::new(10, 3600),
            login: Limit::new(20, 60),
            default: Limit::new(3000, 60),
            auth_failures: Limit::new(30, 300),
        }
    }
}

/// A client tier's quotas per endpoint, checked once the client has authenticated. A member left
/// out is the `default` tier's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TierLimits {
    /// `/token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<Limit>,
    /// `/par`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub par: Option<Limit>,
    /// `/introspect`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub introspect: Option<Limit>,
    /// `/revoke`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoke: Option<Limit>,
}

/// The tier of clients whose settings name none.
pub const DEFAULT_TIER: &str = "default";

/// The built-in quotas of the `default` tier, under whatever the configuration leaves out.
const DEFAULT_TIER_LIMITS: [Limit; 4] = [
    Limit::new(600, 60),
    Limit::new(300, 60),
    Limit::new(3000, 60),
    Limit::new(300, 60),
];

fn default_tiers() -> BTreeMap<String, TierLimits> {
    let [token, par, introspect, revoke] = DEFAULT_TIER_LIMITS;
    BTreeMap::from([
        (
            DEFAULT_TIER.to_owned(),
            TierLimits {
                token: Some(token),
                par: Some(par),
                introspect: Some(introspect),
                revoke: Some(revoke),
            },
        ),
        (
            "partner".to_owned(),
            TierLimits {
                token: Some(Limit::new(3000, 60)),
                par: Some(Limit::new(1500, 60)),
                introspect: Some(Limit::new(15_000, 60)),
                revoke: Some(Limit::new(1500, 60)),
            },
        ),
    ])
}

/// Rate limits (`[rate_limits]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitsConfig {
    /// Whether requests are limited at all.
    pub enabled: bool,
    /// Where the buckets live: `memory`, `database` or `redis`.
    pub backend: BackendKind,
    /// `redis://[user:password@]host[:port][/db]` for `backend = "redis"`, or `rediss://…` for
    /// TLS (the server's certificate checked against `redis_ca_file`, else the system's roots).
    /// Never logged.
    pub redis_url: Option<Secret>,
    /// PEM file of the CA(s) that issue the Redis server's certificate, for a `rediss://` URL.
    pub redis_ca_file: Option<PathBuf>,
    /// Prefix of every Redis key, so that several deployments can share one Redis.
    pub redis_key_prefix: String,
    /// Milliseconds a check may wait for the shared backend before it counts as failed (1 to
    /// 10000).
    pub backend_timeout_ms: u64,
    /// `deny` or `allow_local`: what a check does when the shared backend fails.
    pub on_backend_error: OnBackendError,
    /// Most buckets the in-memory limiter keeps (the backend itself with `memory`, the fallback
    /// of `allow_local`); beyond it, full and then least-used buckets are dropped (1000 to
    /// 100000000).
    pub memory_max_keys: usize,
    /// Per source address.
    pub ip: IpLimits,
    /// Per client, by the tier in its settings (`rate_limit_tier`): `default`, `partner` and any
    /// tier named here.
    pub tiers: BTreeMap<String, TierLimits>,
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            backend: BackendKind::Memory,
            redis_url: None,
            redis_ca_file: None,
            redis_key_prefix: "portcullis:rl:".into(),
            backend_timeout_ms: 500,
            on_backend_error: OnBackendError::AllowLocal,
            memory_max_keys: 1_000_000,
            ip: IpLimits::default(),
            tiers: default_tiers(),
        }
    }
}

/// A tier's quotas per client endpoint: `/token`, `/par`, `/introspect`, `/revoke`.
pub(crate) type TierQuotas = [Quota; 4];

/// The quotas per source address: the endpoints of [`IpLimits`] in order.
pub(crate) type IpQuotas = [Quota; 8];

impl RateLimitsConfig {
    /// Checks every value and that the tiers are well named.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.ip_quotas()?;
        self.tier_quotas()?;
        if !(1..=10_000).contains(&self.backend_timeout_ms) {
            return Err(ConfigError::new(
                "rate_limits.backend_timeout_ms",
                "must be 1 to 10000",
            ));
        }
        if !(1000..=100_000_000).contains(&self.memory_max_keys) {
            return Err(ConfigError::new(
                "rate_limits.memory_max_keys",
                "must be 1000 to 100000000",
            ));
        }
        if self.redis_key_prefix.len() > 64 {
            return Err(ConfigError::new(
                "rate_limits.redis_key_prefix",
                "must be at most 64 bytes",
            ));
        }
        match (&self.redis_url, self.backend) {
            (None, BackendKind::Redis) => Err(ConfigError::new(
                "rate_limits.redis_url",
                "required with backend = \"redis\"",
            )),
            (Some(url), _) => self.redis_client(url.expose()).map(drop),
            (None, _) => Ok(()),
        }
    }

    /// The Redis client of `url`: over TLS for `rediss://`, trusting `redis_ca_file` when set.
    ///
    /// # Errors
    /// [`ConfigError`] for a URL that is not a Redis URL (the message never holds the URL, and so
    /// its password), a CA file with a `redis://` URL, or a CA file that cannot be read.
    pub(crate) fn redis_client(&self, url: &str) -> Result<redis::Client, ConfigError> {
        let not_redis = |e: redis::RedisError| {
            ConfigError::new(
                "rate_limits.redis_url",
                format!("not a Redis URL ({:?})", e.kind()),
            )
        };
        let Some(ca_file) = &self.redis_ca_file else {
            return redis::Client::open(url).map_err(not_redis);
        };
        if !url.starts_with("rediss://") {
            return Err(ConfigError::new(
                "rate_limits.redis_ca_file",
                "is for a TLS connection: the redis_url must be rediss://",
            ));
        }
        let pem = std::fs::read(ca_file).map_err(|e| {
            ConfigError::new(
                "rate_limits.redis_ca_file",
                format!("cannot read {}: {e}", ca_file.display()),
            )
        })?;
        // The client would take a file without certificates and fail every handshake later.
        let certificates = rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .unwrap_or_default();
        if certificates.is_empty() {
            return Err(ConfigError::new(
                "rate_limits.redis_ca_file",
                format!("{} holds no PEM certificate", ca_file.display()),
            ));
        }
        let certificates = redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem),
        };
        redis::Client::build_with_tls(url, certificates).map_err(|e| match e.kind() {
            redis::ErrorKind::InvalidClientConfig => ConfigError::new(
                "rate_limits.redis_ca_file",
                format!("not usable as a CA ({:?})", e.kind()),
            ),
            _ => not_redis(e),
        })
    }

    /// The quotas per source address, in [`IpLimits`] order.
    pub(crate) fn ip_quotas(&self) -> Result<IpQuotas, ConfigError> {
        let ip = &self.ip;
        Ok([
            ip.token.quota("rate_limits.ip.token")?,
            ip.par.quota("rate_limits.ip.par")?,
            ip.introspect.quota("rate_limits.ip.introspect")?,
            ip.revoke.quota("rate_limits.ip.revoke")?,
            ip.register.quota("rate_limits.ip.register")?,
            ip.login.quota("rate_limits.ip.login")?,
            ip.default.quota("rate_limits.ip.default")?,
            ip.auth_failures.quota("rate_limits.ip.auth_failures")?,
        ])
    }

    /// Every tier's quotas, members left out taken from the `default` tier (and the `default`
    /// tier's from the built-in defaults).
    pub(crate) fn tier_quotas(&self) -> Result<BTreeMap<String, TierQuotas>, ConfigError> {
        let base = self.tiers.get(DEFAULT_TIER).cloned().unwrap_or_default();
        let [token, par, introspect, revoke] = DEFAULT_TIER_LIMITS;
        let resolve = |name: &str, tier: &TierLimits| -> Result<TierQuotas, ConfigError> {
            let key = |endpoint: &str| format!("rate_limits.tiers.{name}.{endpoint}");
            Ok([
                tier.token
                    .or(base.token)
                    .unwrap_or(token)
                    .quota(&key("token"))?,
                tier.par.or(base.par).unwrap_or(par).quota(&key("par"))?,
                tier.introspect
                    .or(base.introspect)
                    .unwrap_or(introspect)
                    .quota(&key("introspect"))?,
                tier.revoke
                    .or(base.revoke)
                    .unwrap_or(revoke)
                    .quota(&key("revoke"))?,
            ])
        };
        let mut tiers = BTreeMap::new();
        tiers.insert(DEFAULT_TIER.to_owned(), resolve(DEFAULT_TIER, &base)?);
        for (name, tier) in &self.tiers {
            if !portcullis_core::client::settings::valid_tier_name(name) {
                return Err(ConfigError::new(
                    format!("rate_limits.tiers.{name}"),
                    "a tier name is 1 to 64 characters of A-Z, a-z, 0-9, '-' or '_'",
                ));
            }
            tiers.insert(name.clone(), resolve(name, tier)?);
        }
        Ok(tiers)
    }

    /// Whether `tier` is defined (the `default` tier always is).
    #[must_use]
    pub fn defines_tier(&self, tier: &str) -> bool {
        tier == DEFAULT_TIER || self.tiers.contains_key(tier)
    }
}
