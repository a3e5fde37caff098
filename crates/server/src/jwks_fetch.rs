//! The client `jwks_uri` fetcher: downloads, checks and caches the public key sets that clients
//! publish for `private_key_jwt` and signed request objects.
//!
//! A fetch is `https` only, over the FAPI TLS profile (TLS 1.3, or TLS 1.2 with the ECDHE-AES-GCM
//! suites), with a total timeout and a body size cap enforced while the body streams in, without
//! redirects or proxies, and only to public addresses (see `address.rs`) unless
//! `client_jwks.allow_private_addresses` is set for development. The document must be a JWK set
//! of public keys: one private member anywhere refuses the whole set.
//!
//! Each URI's set is cached for `client_jwks.cache_ttl_secs` (shorter if the response's
//! `Cache-Control: max-age` asks for it). When a signature names a `kid` the cached set lacks,
//! the caller asks for [`JwksFetcher::refresh`], which refetches at most once per
//! `client_jwks.min_refetch_interval_secs` per URI, so that a client cannot make the server
//! hammer a URI by inventing `kid`s. One fetch per URI is in flight at a time: concurrent callers
//! wait for it and share its outcome. Time comes from the injected [`Clock`].
//!
//! Key selection by `kid` and then `kty`/`alg`/`use`/`crv` (FAPI2 SP 5.4.3), and the curve and
//! strength checks, happen in `portcullis_jose` on the returned [`Jwks`].

mod address;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use portcullis_core::Clock;
use portcullis_jose::{Jwks, PublicJwk};
use serde_json::Value;
use time::{Duration, OffsetDateTime};
use url::{Host, Url};

pub use address::{AddressClass, classify};

use crate::config::{ClientJwksConfig, ConfigError};

/// What we ask for (RFC 7517 §8.5.1 registers `application/jwk-set+json`).
const ACCEPT: &str = "application/jwk-set+json, application/json";

/// The most URIs cached at once; past it, the least recently used entry goes.
const MAX_CACHED_URIS: usize = 10_000;

/// The shortest lifetime a `Cache-Control: max-age` can give a cached set.
const MIN_MAX_AGE_SECS: u64 = 60;

/// Members only a private (or symmetric) JWK has (RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC 8037 §2).
/// `portcullis_jose::PublicJwk::parse` refuses them too; the fetcher checks first because it
/// skips keys that jose cannot parse (RFC 7517 §5), and a private key must refuse the whole set
/// rather than be skipped.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Why a client's JWK set could not be obtained. The `Display` text is for logs and never holds
/// the response body; [`JwksFetchError::describe`] is the text for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksFetchError {
    /// The URI does not parse, has no host, or carries credentials.
    #[error("jwks_uri is not usable: {0}")]
    InvalidUri(&'static str),
    /// The URI is not `https`.
    #[error("jwks_uri is not an https URL")]
    NotHttps,
    /// The host is, or resolves to, an address the server does not contact.
    #[error("jwks_uri host is or resolves to {address}, a {class} address")]
    ForbiddenAddress {
        /// The refused address.
        address: IpAddr,
        /// Why it is refused.
        class: AddressClass,
    },
    /// No complete answer within the timeout (milliseconds).
    #[error("jwks_uri did not answer within {0} ms")]
    Timeout(u64),
    /// The body is larger than the cap (bytes).
    #[error("jwks_uri response is larger than {0} bytes")]
    TooLarge(usize),
    /// The status was not 200 (redirects are not followed, so 3xx lands here too).
    #[error("jwks_uri answered HTTP status {0}")]
    Status(u16),
    /// The body is not a JWK set of public keys; the reason is ours, never body text.
    #[error("jwks_uri document is not a JWK set: {0}")]
    NotAJwks(String),
    /// [`JwksFetcher::refresh`] was asked again within the minimum interval (seconds).
    #[error("jwks_uri was fetched less than {0} s ago; refetch refused")]
    RateLimited(u64),
    /// Connection, DNS or TLS failure; the text is the error chain without the URL.
    #[error("jwks_uri could not be fetched: {0}")]
    Network(String),
}

impl JwksFetchError {
    /// A description for `error_description` in the `invalid_client` answer: says what failed
    /// without addresses, body text or internal error detail (which would turn the fetcher into
    /// a network probe for the client).
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::InvalidUri(reason) => format!("the client's jwks_uri is not usable: {reason}"),
            Self::NotHttps => "the client's jwks_uri must be an https URL".into(),
            Self::ForbiddenAddress { class, .. } => format!(
                "the client's jwks_uri resolves to a {class} address, which the authorization server does not contact"
            ),
            Self::Timeout(ms) => format!("the client's jwks_uri did not answer within {ms} ms"),
            Self::TooLarge(max) => {
                format!("the client's jwks_uri document is larger than {max} bytes")
            }
            Self::Status(status) if (300..400).contains(status) => {
                format!("the client's jwks_uri answered HTTP {status}; redirects are not followed")
            }
            Self::Status(status) => format!("the client's jwks_uri answered HTTP {status}"),
            Self::NotAJwks(reason) => {
                format!("the client's jwks_uri document is not a JWK set: {reason}")
            }
            Self::RateLimited(secs) => format!(
                "no matching key, and the client's jwks_uri was fetched less than {secs} s ago; try again later"
            ),
            Self::Network(_) => {
                "the client's jwks_uri could not be reached (connection or TLS failure)".into()
            }
        }
    }
}

/// Fetches and caches client JWK sets. Share one per process (it holds the HTTP connection
/// pool and the cache); it is `Send + Sync`.
pub struct JwksFetcher {
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    timeout: std::time::Duration,
    max_bytes: usize,
    cache_ttl: Duration,
    min_refetch_interval: Duration,
    allow_private_addresses: bool,
    max_entries: usize,
    /// One entry per URI. Locked only to find or insert an entry, never across a fetch.
    entries: Mutex<HashMap<String, Arc<Entry>>>,
    /// A counter that orders uses of entries, for least-recently-used eviction.
    uses: AtomicU64,
}

impl std::fmt::Debug for JwksFetcher {
    // By hand: the cached URIs may carry query strings, which are not for logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksFetcher")
            .field("timeout", &self.timeout)
            .field("max_bytes", &self.max_bytes)
            .field("cache_ttl", &self.cache_ttl)
            .field("min_refetch_interval", &self.min_refetch_interval)
            .field("allow_private_addresses", &self.allow_private_addresses)
            .field("cached_uris", &self.lock_entries().len())
            .finish_non_exhaustive()
    }
}

/// The cache entry of one URI.
#[derive(Debug, Default)]
struct Entry {
    /// Held by the one task fetching this URI, for the whole fetch; others queue on it and then
    /// use its outcome.
    fetching: tokio::sync::Mutex<()>,
    /// What is known; locked briefly, never across an await.
    state: Mutex<EntryState>,
    /// The fetcher's `uses` counter at this entry's last use.
    last_used: AtomicU64,
}

impl Entry {
    fn state(&self) -> MutexGuard<'_, EntryState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug, Default)]
struct EntryState {
    /// The last set fetched successfully.
    jwks: Option<Arc<Jwks>>,
    /// When `jwks` goes stale.
    expires_at: Option<OffsetDateTime>,
    /// When the last fetch (successful or not) started.
    last_attempt: Option<OffsetDateTime>,
    /// The outcome of the last fetch, if it failed.
    last_error: Option<JwksFetchError>,
    /// How many fetches have completed; lets a waiter see that a fetch happened while it waited.
    attempts: u64,
}

impl EntryState {
    fn fresh(&self, now: OffsetDateTime) -> Option<Arc<Jwks>> {
        match (&self.jwks, self.expires_at) {
            (Some(jwks), Some(expires_at)) if now < expires_at => Some(Arc::clone(jwks)),
            _ => None,
        }
    }

    fn fetched_within(&self, now: OffsetDateTime, interval: Duration) -> bool {
        self.last_attempt.is_some_and(|at| now - at < interval)
    }

    /// The outcome of the last fetch.
    fn outcome(&self) -> Option<Result<Arc<Jwks>, JwksFetchError>> {
        match (&self.last_error, &self.jwks) {
            (Some(error), _) => Some(Err(error.clone())),
            (None, Some(jwks)) => Some(Ok(Arc::clone(jwks))),
            (None, None) => None,
        }
    }
}

/// A successful download.
struct Fetched {
    jwks: Jwks,
    max_age_secs: Option<u64>,
}

impl JwksFetcher {
    /// Builds the fetcher: its HTTP client (trusting the Mozilla root set from `webpki-roots`
    /// plus `extra_ca_files`), and an empty cache.
    ///
    /// # Errors
    /// [`ConfigError`] naming `client_jwks.extra_ca_files` when a CA file cannot be read or holds
    /// no usable certificate, or `client_jwks` when the HTTP client cannot be built.
    pub fn new(config: &ClientJwksConfig, clock: Arc<dyn Clock>) -> Result<Self, ConfigError> {
        let timeout = std::time::Duration::from_millis(config.timeout_ms);
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(client_tls_config(&config.extra_ca_files)?)
            .https_only(true)
            .http1_only()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve the host itself, out of reach of the address guard.
            .no_proxy()
            .dns_resolver(address::GuardedResolver {
                allow_private: config.allow_private_addresses,
            })
            .connect_timeout(timeout)
            .timeout(timeout)
            .user_agent(concat!("Portcullis/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::new("client_jwks", format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            clock,
            timeout,
            max_bytes: config.max_bytes,
            cache_ttl: seconds(config.cache_ttl_secs),
            min_refetch_interval: seconds(config.min_refetch_interval_secs),
            allow_private_addresses: config.allow_private_addresses,
            max_entries: MAX_CACHED_URIS,
            entries: Mutex::new(HashMap::new()),
            uses: AtomicU64::new(0),
        })
    }

    /// The JWK set at `uri`: the cached one while fresh, else a new fetch. A fetch that failed
    /// less than `min_refetch_interval_secs` ago is not repeated; its error is returned again.
    ///
    /// # Errors
    /// [`JwksFetchError`]: a refused URI, or the failure of the fetch.
    pub async fn get(&self, uri: &str) -> Result<Arc<Jwks>, JwksFetchError> {
        let url = self.check_uri(uri)?;
        let entry = self.entry(uri);
        let seen = {
            let state = entry.state();
            if let Some(jwks) = state.fresh(self.clock.now()) {
                return Ok(jwks);
            }
            state.attempts
        };
        let _fetching = entry.fetching.lock().await;
        {
            let state = entry.state();
            let now = self.clock.now();
            if let Some(jwks) = state.fresh(now) {
                return Ok(jwks);
            }
            // A fetch failed while we waited, or recently enough that we do not try again.
            if (state.attempts != seen || state.fetched_within(now, self.min_refetch_interval))
                && let Some(error) = &state.last_error
            {
                return Err(error.clone());
            }
        }
        self.fetch_into(&entry, &url).await
    }

    /// Refetches the set at `uri` because a JWS names a `kid` that the cached set lacks. Only
    /// one fetch per `min_refetch_interval_secs`: a caller that waited while another fetch of the
    /// URI ran gets that fetch's outcome.
    ///
    /// # Errors
    /// [`JwksFetchError::RateLimited`] within the interval, else as [`JwksFetcher::get`].
    pub async fn refresh(&self, uri: &str) -> Result<Arc<Jwks>, JwksFetchError> {
        let url = self.check_uri(uri)?;
        let entry = self.entry(uri);
        let seen = entry.state().attempts;
        let _fetching = entry.fetching.lock().await;
        {
            let state = entry.state();
            if state.attempts != seen
                && let Some(outcome) = state.outcome()
            {
                return outcome;
            }
            if state.fetched_within(self.clock.now(), self.min_refetch_interval) {
                return Err(JwksFetchError::RateLimited(
                    self.min_refetch_interval.whole_seconds().unsigned_abs(),
                ));
            }
        }
        self.fetch_into(&entry, &url).await
    }

    /// Refuses URIs the fetcher never requests: not `https`, no host, credentials, or an
    /// IP-literal host that is not public (reqwest does not resolve IP literals, so the guard in
    /// the resolver would not see them).
    fn check_uri(&self, uri: &str) -> Result<Url, JwksFetchError> {
        let url = Url::parse(uri).map_err(|_| JwksFetchError::InvalidUri("not an absolute URL"))?;
        if url.scheme() != "https" {
            return Err(JwksFetchError::NotHttps);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(JwksFetchError::InvalidUri("it must not carry credentials"));
        }
        match url.host() {
            None => return Err(JwksFetchError::InvalidUri("it has no host")),
            Some(Host::Ipv4(ip)) => address::check(IpAddr::V4(ip), self.allow_private_addresses)?,
            Some(Host::Ipv6(ip)) => address::check(IpAddr::V6(ip), self.allow_private_addresses)?,
            Some(Host::Domain(_)) => {}
        }
        Ok(url)
    }

    /// The entry for `uri`, created if needed; evicts the least recently used entry when full.
    fn entry(&self, uri: &str) -> Arc<Entry> {
        let use_number = self.uses.fetch_add(1, Ordering::Relaxed);
        let mut entries = self.lock_entries();
        if let Some(entry) = entries.get(uri) {
            entry.last_used.store(use_number, Ordering::Relaxed);
            return Arc::clone(entry);
        }
        if entries.len() >= self.max_entries {
            // A linear scan, only when a new URI arrives at a full cache.
            let oldest = entries
                .iter()
                .min_by_key(|(_, entry)| entry.last_used.load(Ordering::Relaxed))
                .map(|(uri, _)| uri.clone());
            if let Some(oldest) = oldest {
                entries.remove(&oldest);
            }
        }
        let entry = Arc::new(Entry {
            last_used: AtomicU64::new(use_number),
            ..Entry::default()
        });
        entries.insert(uri.to_owned(), Arc::clone(&entry));
        entry
    }

    fn lock_entries(&self) -> MutexGuard<'_, HashMap<String, Arc<Entry>>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Fetches `url` into `entry`. The caller holds `entry.fetching`.
    async fn fetch_into(&self, entry: &Entry, url: &Url) -> Result<Arc<Jwks>, JwksFetchError> {
        let started = self.clock.now();
        let result = self.fetch(url).await;
        let mut state = entry.state();
        state.attempts = state.attempts.wrapping_add(1);
        state.last_attempt = Some(started);
        match result {
            Ok(fetched) => {
                let jwks = Arc::new(fetched.jwks);
                state.jwks = Some(Arc::clone(&jwks));
                state.expires_at = Some(started + self.ttl(fetched.max_age_secs));
                state.last_error = None;
                tracing::debug!(
                    host = url.host_str().unwrap_or_default(),
                    path = url.path(),
                    keys = jwks.keys.len(),
                    "fetched a client JWK set"
                );
                Ok(jwks)
            }
            Err(error) => {
                // A failed refetch keeps the previous set until it expires.
                state.last_error = Some(error.clone());
                tracing::warn!(
                    host = url.host_str().unwrap_or_default(),
                    path = url.path(),
                    error = %error,
                    "client jwks_uri fetch failed"
                );
                Err(error)
            }
        }
    }

    /// How long a fetched set stays fresh. `Cache-Control: max-age` can shorten the configured
    /// lifetime (to no less than a minute) but never lengthen it: the operator's setting bounds
    /// how long a key the client has withdrawn still verifies.
    fn ttl(&self, max_age_secs: Option<u64>) -> Duration {
        match max_age_secs {
            Some(max_age) => seconds(max_age.max(MIN_MAX_AGE_SECS)).min(self.cache_ttl),
            None => self.cache_ttl,
        }
    }

    /// One download, under the total timeout.
    async fn fetch(&self, url: &Url) -> Result<Fetched, JwksFetchError> {
        let timeout_ms = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX);
        tokio::time::timeout(self.timeout, self.download(url, timeout_ms))
            .await
            .map_err(|_| JwksFetchError::Timeout(timeout_ms))?
    }

    async fn download(&self, url: &Url, timeout_ms: u64) -> Result<Fetched, JwksFetchError> {
        let network = |e| network_error(e, timeout_ms);
        let mut response = self
            .http
            .get(url.clone())
            .header(http::header::ACCEPT, ACCEPT)
            .send()
            .await
            .map_err(network)?;
        let status = response.status();
        if status != http::StatusCode::OK {
            return Err(JwksFetchError::Status(status.as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|length| length > self.max_bytes as u64)
        {
            return Err(JwksFetchError::TooLarge(self.max_bytes));
        }
        let max_age_secs = cache_max_age(response.headers());
        // The cap holds while the body streams in, so an endless body costs at most max_bytes.
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(network)? {
            if body.len().saturating_add(chunk.len()) > self.max_bytes {
                return Err(JwksFetchError::TooLarge(self.max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        let jwks = parse_jwks(&body)?;
        Ok(Fetched { jwks, max_age_secs })
    }
}

/// The rustls client configuration: the FAPI cipher suites and protocol versions of our own
/// listeners (SP 5.2.2-1), the Mozilla roots, the configured extra CAs, HTTP/1.1 by ALPN.
fn client_tls_config(extra_ca_files: &[PathBuf]) -> Result<rustls::ClientConfig, ConfigError> {
    const KEY: &str = "client_jwks.extra_ca_files";
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for path in extra_ca_files {
        let error =
            |e: &dyn std::fmt::Display| ConfigError::new(KEY, format!("{}: {e}", path.display()));
        let pem = std::fs::read(path).map_err(|e| error(&e))?;
        let certs = rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| error(&e))?;
        if certs.is_empty() {
            return Err(error(&"no PEM certificate in the file"));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| error(&e))?;
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ConfigError::new("client_jwks", e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Maps a reqwest failure: the address guard's refusal comes back out of the error chain as
/// itself; everything else becomes `Timeout` or `Network` with the chain, without the URL.
fn network_error(error: reqwest::Error, timeout_ms: u64) -> JwksFetchError {
    if error.is_timeout() {
        return JwksFetchError::Timeout(timeout_ms);
    }
    let error = error.without_url();
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<JwksFetchError>() {
            return refused.clone();
        }
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    JwksFetchError::Network(message)
}

/// `max-age` from `Cache-Control`; `no-store` and `no-cache` count as zero.
fn cache_max_age(headers: &http::HeaderMap) -> Option<u64> {
    let mut max_age = None;
    for directive in headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
    {
        let directive = directive.to_ascii_lowercase();
        if directive == "no-store" || directive == "no-cache" {
            return Some(0);
        }
        if let Some(value) = directive.strip_prefix("max-age=") {
            max_age = value.trim_matches('"').parse().ok().or(max_age);
        }
    }
    max_age
}

/// Parses a JWK set document. Keys of an unknown `kty` or missing required members are skipped
/// (RFC 7517 §5: "Implementations SHOULD ignore JWKs within a JWK Set that use "kty" values that
/// are not understood by them, that are missing required members…"); a key with a private
/// member refuses the whole set, since a client that publishes its private key has lost it.
///
/// # Errors
/// [`JwksFetchError::NotAJwks`] with a reason that quotes nothing from the document.
pub fn parse_jwks(body: &[u8]) -> Result<Jwks, JwksFetchError> {
    let document: Value = serde_json::from_slice(body).map_err(|e| {
        JwksFetchError::NotAJwks(format!(
            "not JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let keys = document
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| JwksFetchError::NotAJwks("not an object with a \"keys\" array".into()))?;
    let mut parsed = Vec::with_capacity(keys.len());
    for (index, key) in keys.iter().enumerate() {
        let Value::Object(members) = key else {
            return Err(JwksFetchError::NotAJwks(format!(
                "key {index} is not a JSON object"
            )));
        };
        if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| members.contains_key(**m)) {
            return Err(JwksFetchError::NotAJwks(format!(
                "key {index} has the private member {member:?}; a client's JWK set must hold public keys only"
            )));
        }
        match PublicJwk::parse(members.clone()) {
            Ok(jwk) => parsed.push(jwk),
            // Not logged with the error: jose's messages may quote the key's members.
            Err(_) => tracing::debug!(index, "skipped a JWK the server cannot use"),
        }
    }
    Ok(Jwks { keys: parsed })
}

fn seconds(secs: u64) -> Duration {
    Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests;
