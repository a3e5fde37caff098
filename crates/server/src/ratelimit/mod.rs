//! Rate limits: token buckets (GCRA, [`portcullis_core::ratelimit`]) checked by several keys at
//! once, kept in this process, in the database or in Redis (`[rate_limits]`).
//!
//! The keys of a request, and when they are checked ([`middleware`]):
//!
//! - **per source address and endpoint**, before anything else: `/token`, `/par`, `/introspect`,
//!   `/revoke`, `POST /register`, the customers' login and second-factor posts (`login`), and one
//!   generous bucket for every other endpoint (`default`). The address is [`SourceIp::bucket`]
//!   (IPv6 by /64; behind a trusted proxy, the client it names). The mTLS aliases are the same
//!   paths on the other listener and count as the same endpoint.
//! - **client-authentication failures per source address** (`auth-failures`), at `/token`,
//!   `/par`, `/introspect`, `/revoke` and `/events`: every failed client assertion, DPoP proof,
//!   secret or certificate spends one token from the address's bucket, and while it is empty the
//!   address gets 429 there before authentication is even tried. The token is *reserved* when the
//!   request arrives and given back as soon as the client has authenticated (or the request ends
//!   without an authentication failure), so that parallel requests cannot all pass the check
//!   before the first failure is counted: an address never has more authentications in progress
//!   than failures left in its budget, and never gets more failures than the budget. A failure
//!   after the reservation was given back (a bad DPoP proof of an authenticated client) is
//!   counted when the answer is known. A failure is never counted against the `client_id` the
//!   request named: whoever can name a client could lock it out.
//! - **per client and endpoint**, with the quota of the client's tier (`rate_limit_tier` in its
//!   settings), only once the client has authenticated ([`admit_client`], called by the handlers
//!   of `/token`, `/par`, `/introspect` and `/revoke` right after authentication). A `client_id`
//!   an attacker merely names never spends or locks that client's quota.
//!
//! The address's buckets of one request are checked together, all or nothing: when one refuses,
//! none is spent. The per-client bucket is checked later, once the client is known, so the
//! address's token of a request that its client's quota then refuses stays spent: the address did
//! send the request, and the address limit is there to bound how much work it can make us do.
//!
//! Over a limit the answer is 429 with `Retry-After`, in the endpoint's own format (OAuth JSON
//! with `Cache-Control: no-store`, or the customers' HTML error page); every answer of a limited
//! endpoint carries `RateLimit-Policy` and `RateLimit` ([`headers`]). A trip is counted in
//! `portcullis_rate_limited_total{endpoint,key}` and recorded as a `rate_limit.exceeded` security
//! event, at most once per bucket per window (across the replicas with a shared backend, on
//! each replica with `memory`), so that a flood does not become a flood of events.
//!
//! When the shared backend (database or Redis) fails or is slower than `backend_timeout_ms`,
//! `on_backend_error` decides: `allow_local` (the default) checks the request against this
//! replica's in-memory buckets instead, so the limits keep holding per replica, and logs and
//! counts the failure; `deny` refuses with 503. After a failure the shared backend is left alone
//! for [`BACKEND_RETRY`], so that an outage does not add a timeout to every request.

pub mod config;
pub mod headers;
pub mod memory;
pub mod middleware;
pub mod redis;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use portcullis_core::Clock;
use portcullis_core::audit::SecurityEvent;
use portcullis_core::client::Client;
use portcullis_core::error::with_causes;
use portcullis_core::ratelimit::{Cell, CellState, Op, Quota, micros};
use portcullis_core::store::Store;

pub use self::config::{BackendKind, OnBackendError, RateLimitsConfig};
use self::config::{DEFAULT_TIER, IpQuotas, TierQuotas};
pub use self::headers::Applied;
pub use self::memory::MemoryBuckets;
pub use self::middleware::{ClientAuthFailed, admit_client, caller_authenticated, layer};
use crate::config::ConfigError;
use crate::metrics::Metrics;
use crate::source_ip::SourceIp;

/// How long a replica leaves a failed shared backend alone before trying it again.
pub const BACKEND_RETRY: Duration = Duration::from_secs(1);

/// An endpoint as the limits see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `/token`.
    Token,
    /// `/par`.
    Par,
    /// `/introspect`.
    Introspect,
    /// `/revoke`.
    Revoke,
    /// `/events`: the address's `default` bucket, and its authentication failures.
    Events,
    /// `POST /register`.
    Register,
    /// The customers' login and second-factor form posts.
    Login,
    /// Everything else, in one bucket per address.
    Other,
}

impl Endpoint {
    /// The endpoint of a request, or `None` for what is never limited: health checks (a load
    /// balancer must always reach them) and the test-only controls.
    #[must_use]
    pub fn classify(method: &http::Method, path: &str) -> Option<Self> {
        let post = method == http::Method::POST;
        Some(match path {
            "/healthz" | "/readyz" => return None,
            p if p.starts_with("/__test/") => return None,
            "/token" => Endpoint::Token,
            "/par" => Endpoint::Par,
            "/introspect" => Endpoint::Introspect,
            "/revoke" => Endpoint::Revoke,
            "/events" => Endpoint::Events,
            "/register" if post => Endpoint::Register,
            "/authorize/login" | "/authorize/totp" | "/account/login" | "/account/totp" if post => {
                Endpoint::Login
            }
            _ => Endpoint::Other,
        })
    }

    /// The name in metrics, events and policy names.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Endpoint::Token => "token",
            Endpoint::Par => "par",
            Endpoint::Introspect => "introspect",
            Endpoint::Revoke => "revoke",
            Endpoint::Events => "events",
            Endpoint::Register => "register",
            Endpoint::Login => "login",
            Endpoint::Other => "other",
        }
    }

    /// Whether client-authentication failures are counted here, and refused before
    /// authentication once the address's budget is spent.
    #[must_use]
    pub const fn counts_auth_failures(self) -> bool {
        matches!(
            self,
            Endpoint::Token
                | Endpoint::Par
                | Endpoint::Introspect
                | Endpoint::Revoke
                | Endpoint::Events
        )
    }

    /// Whether its answers are the customers' HTML pages rather than JSON.
    #[must_use]
    pub fn is_page(self, path: &str) -> bool {
        match self {
            Endpoint::Login => true,
            Endpoint::Other => {
                path == "/authorize"
                    || path.starts_with("/authorize/")
                    || path == "/account"
                    || path.starts_with("/account/")
                    || path == "/logout"
            }
            _ => false,
        }
    }

    /// The address bucket: its key part, policy name and index into [`IpQuotas`].
    const fn ip_policy(self) -> (&'static str, &'static str, usize) {
        match self {
            Endpoint::Token => ("token", "token-ip", 0),
            Endpoint::Par => ("par", "par-ip", 1),
            Endpoint::Introspect => ("introspect", "introspect-ip", 2),
            Endpoint::Revoke => ("revoke", "revoke-ip", 3),
            Endpoint::Register => ("register", "register-ip", 4),
            Endpoint::Login => ("login", "login-ip", 5),
            Endpoint::Events | Endpoint::Other => ("default", "ip", 6),
        }
    }
}

/// The index of the auth-failure quota in [`IpQuotas`].
const AUTH_FAILURES: usize = 7;
/// The auth-failure policy's name.
pub const AUTH_FAILURES_POLICY: &str = "auth-failures";

/// Which kind of key a bucket is, for metrics and events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A source address at an endpoint.
    Ip,
    /// An authenticated client at an endpoint.
    Client,
    /// A source address's client-authentication failures.
    AuthFailures,
}

impl KeyKind {
    /// The label.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            KeyKind::Ip => "ip",
            KeyKind::Client => "client",
            KeyKind::AuthFailures => "auth_failures",
        }
    }
}

/// One bucket to check for a request, with what names it.
#[derive(Debug, Clone)]
pub struct Check {
    /// The bucket.
    pub cell: Cell,
    /// Its quota.
    pub quota: Quota,
    /// Its policy's name.
    pub policy: &'static str,
    /// Its kind.
    pub kind: KeyKind,
}

/// The shared backend failed and `on_backend_error = "deny"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the rate-limit backend is unavailable")]
pub struct Unavailable;

/// Where the buckets are.
#[derive(Debug)]
enum Shared {
    Memory,
    Database,
    Redis(self::redis::RedisBuckets),
}

/// The rate limiter of a replica: configuration, backend, the local buckets, and the
/// bookkeeping of trips. One per process, shared by every request.
#[derive(Debug)]
pub struct RateLimiter {
    enabled: bool,
    backend: BackendKind,
    shared: Shared,
    on_error: OnBackendError,
    timeout: Duration,
    ip: IpQuotas,
    tiers: BTreeMap<String, TierQuotas>,
    /// The `default` tier's quotas, for clients whose tier is not configured.
    default_tier: TierQuotas,
    /// The buckets with `backend = "memory"`, and the fallback of `allow_local`.
    local: MemoryBuckets,
    /// One bucket per tripped bucket (one token per window): a trip is recorded as an event only
    /// when this allows it.
    trips: MemoryBuckets,
    /// Until when (nanoseconds after `started`) the shared backend is left alone.
    backend_down_until: AtomicU64,
    started: Instant,
    warned_tiers: Mutex<HashSet<String>>,
    clock: Arc<dyn Clock>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl RateLimiter {
    /// The limiter `config` describes, on `store` (events, and the buckets with `database`).
    /// Must be called inside the tokio runtime (the Redis connection is made there, lazily).
    ///
    /// # Errors
    /// [`ConfigError`] for a bad quota or Redis URL.
    pub fn new(
        config: &RateLimitsConfig,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, ConfigError> {
        let shared = match config.backend {
            BackendKind::Memory => Shared::Memory,
            BackendKind::Database => Shared::Database,
            BackendKind::Redis => {
                let url = config.redis_url.as_ref().ok_or_else(|| {
                    ConfigError::new("rate_limits.redis_url", "required with backend = \"redis\"")
                })?;
                Shared::Redis(
                    self::redis::RedisBuckets::new(
                        config.redis_client(url.expose())?,
                        &config.redis_key_prefix,
                        Duration::from_millis(config.backend_timeout_ms),
                    )
                    .map_err(|e| ConfigError::new("rate_limits.redis_url", e.to_string()))?,
                )
            }
        };
        let tiers = config.tier_quotas()?;
        let default_tier = *tiers.get(DEFAULT_TIER).ok_or_else(|| {
            ConfigError::new("rate_limits.tiers.default", "the default tier is missing")
        })?;
        Ok(Self {
            enabled: config.enabled,
            backend: config.backend,
            shared,
            on_error: config.on_backend_error,
            timeout: Duration::from_millis(config.backend_timeout_ms),
            ip: config.ip_quotas()?,
            tiers,
            default_tier,
            local: MemoryBuckets::new(config.memory_max_keys),
            trips: MemoryBuckets::new(config.memory_max_keys / 10),
            backend_down_until: AtomicU64::new(0),
            started: Instant::now(),
            warned_tiers: Mutex::new(HashSet::new()),
            clock,
            store,
            metrics,
        })
    }

    /// Whether requests are limited at all.
    #[must_use]
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The address bucket of `endpoint` for `source`.
    #[must_use]
    pub fn ip_check(&self, endpoint: Endpoint, source: &SourceIp) -> Check {
        let (part, policy, index) = endpoint.ip_policy();
        let quota = self.ip_quota(index);
        Check {
            cell: Cell::new(format!("ip:{part}:{}", source.bucket()), quota, Op::Spend),
            quota,
            policy,
            kind: KeyKind::Ip,
        }
    }

    /// The auth-failure bucket of `source`, doing `op`: a spend reserves a failure before the
    /// request could fail (or counts one that happened), a refund gives the reservation back when
    /// the client authenticated (see [`middleware`]).
    #[must_use]
    pub fn auth_failure_check(&self, source: &SourceIp, op: Op) -> Check {
        let quota = self.ip_quota(AUTH_FAILURES);
        Check {
            cell: Cell::new(format!("af:{}", source.bucket()), quota, op),
            quota,
            policy: AUTH_FAILURES_POLICY,
            kind: KeyKind::AuthFailures,
        }
    }

    /// The bucket of an authenticated `client` at `endpoint`, with its tier's quota. A tier the
    /// configuration does not define counts as `default`, and is logged once per replica.
    #[must_use]
    pub fn client_check(&self, client: &Client, endpoint: crate::client_auth::Endpoint) -> Check {
        let (part, policy, index) = match endpoint {
            crate::client_auth::Endpoint::Token => ("token", "token-client", 0),
            crate::client_auth::Endpoint::Par => ("par", "par-client", 1),
            crate::client_auth::Endpoint::Introspect => ("introspect", "introspect-client", 2),
            crate::client_auth::Endpoint::Revoke => ("revoke", "revoke-client", 3),
        };
        let tier = client
            .settings
            .rate_limit_tier
            .as_deref()
            .unwrap_or(DEFAULT_TIER);
        let quotas = match self.tiers.get(tier) {
            Some(quotas) => quotas,
            None => {
                let mut warned = self
                    .warned_tiers
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if !warned.contains(tier) && warned.insert(tier.to_owned()) {
                    tracing::warn!(
                        tier,
                        client_id = %client.client_id,
                        "a client's rate_limit_tier is not configured in [rate_limits.tiers]: it gets the default tier's limits"
                    );
                }
                &self.default_tier
            }
        };
        let [token, par, introspect, revoke] = *quotas;
        let quota = match index {
            0 => token,
            1 => par,
            2 => introspect,
            _ => revoke,
        };
        Check {
            cell: Cell::new(
                format!("client:{part}:{}", client.client_id.as_str()),
                quota,
                Op::Spend,
            ),
            quota,
            policy,
            kind: KeyKind::Client,
        }
    }

    fn ip_quota(&self, index: usize) -> Quota {
        let [
            token,
            par,
            introspect,
            revoke,
            register,
            login,
            default,
            auth_failures,
        ] = self.ip;
        match index {
            0 => token,
            1 => par,
            2 => introspect,
            3 => revoke,
            4 => register,
            5 => login,
            AUTH_FAILURES => auth_failures,
            _ => default,
        }
    }

    /// Checks `checks` now, all or nothing: what each bucket says, in order.
    ///
    /// # Errors
    /// [`Unavailable`] when the shared backend failed and `on_backend_error = "deny"`.
    pub async fn check(&self, checks: &[Check]) -> Result<Vec<Applied>, Unavailable> {
        let now_us = micros(self.clock.now());
        let cells: Vec<Cell> = checks.iter().map(|c| c.cell.clone()).collect();
        let states = self.states(&cells, now_us).await?;
        Ok(checks
            .iter()
            .zip(states)
            .map(|(check, state)| Applied {
                policy: check.policy,
                quota: check.quota,
                outcome: check.cell.outcome(state, now_us),
            })
            .collect())
    }

    async fn states(&self, cells: &[Cell], now_us: i64) -> Result<Vec<CellState>, Unavailable> {
        let shared = match &self.shared {
            Shared::Memory => return Ok(self.local.check(cells, now_us)),
            _ if self.backend_resting() => return self.fallback(cells, now_us),
            Shared::Database => {
                tokio::time::timeout(self.timeout, self.store.rate_limits().check(cells, now_us))
                    .await
                    .map_err(|_| format!("no answer within {:?}", self.timeout))
                    .and_then(|r| r.map_err(|e| with_causes(&e)))
            }
            Shared::Redis(buckets) => buckets
                .check(cells, now_us)
                .await
                .map_err(|e| with_causes(&e)),
        };
        match shared {
            Ok(states) if states.len() == cells.len() => Ok(states),
            Ok(states) => {
                self.backend_failed(&format!(
                    "{} answers for {} buckets",
                    states.len(),
                    cells.len()
                ));
                self.fallback(cells, now_us)
            }
            Err(error) => {
                self.backend_failed(&error);
                self.fallback(cells, now_us)
            }
        }
    }

    fn backend_resting(&self) -> bool {
        let now = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        now < self.backend_down_until.load(Ordering::Relaxed)
    }

    fn backend_failed(&self, error: &str) {
        let now = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let until = now.saturating_add(u64::try_from(BACKEND_RETRY.as_nanos()).unwrap_or(0));
        self.backend_down_until.store(until, Ordering::Relaxed);
        self.metrics.rate_limit_backend_error(self.backend.as_str());
        tracing::warn!(
            backend = self.backend.as_str(),
            %error,
            on_backend_error = ?self.on_error,
            "the rate-limit backend failed"
        );
    }

    fn fallback(&self, cells: &[Cell], now_us: i64) -> Result<Vec<CellState>, Unavailable> {
        match self.on_error {
            OnBackendError::Deny => Err(Unavailable),
            OnBackendError::AllowLocal => Ok(self.local.check(cells, now_us)),
        }
    }

    /// Counts a request refused by `check` and, at most once per bucket per window, records a
    /// `rate_limit.exceeded` security event naming the endpoint, the kind of key, the source
    /// address and, for a client's bucket, the client. "Once" is decided on this replica first
    /// (no I/O), then, with a shared backend, across the replicas: only a replica's first trip
    /// of a bucket in a window asks the backend, so a flood of refusals adds at most one backend
    /// call per bucket per window per replica. Only the first refusal waits for the event's
    /// write; a failed write is logged, and the request refused anyway.
    pub async fn tripped(
        &self,
        endpoint: Endpoint,
        check: &Check,
        source: &SourceIp,
        client_id: Option<&str>,
        request_id: Option<&str>,
    ) {
        self.metrics
            .rate_limited(endpoint.as_str(), check.kind.as_str());
        let now = self.clock.now();
        let once = Cell::new(
            check.cell.key.clone(),
            Quota::new(1, check.quota.window()).unwrap_or(check.quota),
            Op::Spend,
        );
        let now_us = micros(now);
        let first_here = self
            .trips
            .check(std::slice::from_ref(&once), now_us)
            .first()
            .is_some_and(|s| s.allowed);
        if !first_here {
            return;
        }
        if !matches!(self.shared, Shared::Memory) {
            let across = Cell {
                key: format!("trip:{}", once.key),
                ..once
            };
            // When the backend cannot say, the event is recorded: a duplicate beats a gap.
            let first_anywhere = self
                .states(std::slice::from_ref(&across), now_us)
                .await
                .map_or(true, |s| s.first().is_some_and(|s| s.allowed));
            if !first_anywhere {
                return;
            }
        }
        let mut details = serde_json::Map::new();
        details.insert("endpoint".into(), endpoint.as_str().into());
        details.insert("key".into(), check.kind.as_str().into());
        details.insert("policy".into(), check.policy.into());
        details.insert("quota".into(), check.quota.quota().into());
        details.insert("window_secs".into(), check.quota.window().as_secs().into());
        details.insert("source".into(), source.bucket().into());
        let subject = match client_id {
            Some(id) => {
                details.insert("client_id".into(), id.into());
                id.to_owned()
            }
            None => source.bucket(),
        };
        let mut event =
            SecurityEvent::new(now, "system", "rate_limit.exceeded", Some(subject), details);
        if let Some(id) = request_id {
            event = event.with_request_id(id);
        }
        if let Err(error) = self.store.events().append(&event).await {
            tracing::warn!(error = %with_causes(&error), "could not record a rate-limit trip");
        }
    }

    /// Whether `tier` may be set on a client: `default` and the configured tiers may.
    #[must_use]
    pub fn defines_tier(&self, tier: &str) -> bool {
        self.tiers.contains_key(tier)
    }
}
