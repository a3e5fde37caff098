//! [`Verifier`]: everything a request's access token goes through at this API, in order.
//!
//! 1. The `Authorization` header: exactly one, scheme `Bearer` or `DPoP`, a well-formed token
//!    (never a token from the query string or the body).
//! 2. A JWT (RFC 9068): `typ` `at+jwt`, an allowed algorithm, a signature by a key of the
//!    authorization server's JWKS, then issuer, audience, time and identity claims. An opaque
//!    token: introspection (RFC 7662).
//! 3. The sender constraint: a `cnf.jkt` token needs scheme `DPoP` and a valid, fresh, unreplayed
//!    proof by that key for this method and URL (RFC 9449 §7); a `cnf.x5t#S256` token needs the
//!    same certificate on this connection (RFC 8705 §3). A bound token presented as plain
//!    `Bearer` without its certificate is refused.
//! 4. Revocation: refused if the feed announced its grant or `jti` revoked. When the feed is not
//!    live (or every token is to be introspected) the authorization server is asked.

use std::sync::Arc;

use portcullis_jose::SigningAlg;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use tokio::sync::{broadcast, watch};

use crate::binding::Binding;
use crate::cache::ExpiringMap;
use crate::client::{AsClient, CallError};
use crate::clock::{Clock, SystemClock};
use crate::config::{IntrospectionMode, LagPolicy, SetupError, VerifierConfig};
use crate::dpop::{DpopChecker, MemoryReplayCache, ReplayCache};
use crate::error::{Scheme, VerifyError};
use crate::feed::{Health, Poller, Revocation, Revoked};
use crate::jwks::{self, KeyCache};
use crate::metrics::{FeedState, Metrics, MetricsSnapshot};
use crate::principal::{Principal, TokenSource};
use crate::token::{self, Expectations, JwtError};

/// The longest token accepted, in bytes.
const MAX_TOKEN_LEN: usize = 8 * 1024;
/// How long an inactive answer for an opaque token is remembered, in seconds.
const NEGATIVE_TTL: i64 = 30;

/// What a request presented: its headers, where it was sent, and the certificate of its
/// connection.
#[derive(Debug, Clone, Copy)]
pub struct TokenRequest<'a> {
    /// Every `Authorization` header value.
    pub authorization: &'a [&'a str],
    /// Every `DPoP` header value.
    pub dpop: &'a [&'a str],
    /// The HTTP method (DPoP `htm`).
    pub method: &'a str,
    /// The absolute URL the request was sent to, as this API is published, without query
    /// (DPoP `htu`).
    pub url: &'a str,
    /// The `x5t#S256` of the client certificate presented on the connection (or by a trusted
    /// proxy), if any.
    pub certificate_x5t: Option<&'a str>,
}

/// Cached introspection answer: the active claims, or `None` for an inactive token.
type Answer = Option<Arc<Map<String, Value>>>;

struct Shared {
    config: VerifierConfig,
    dpop_algs: String,
    clock: Arc<dyn Clock>,
    keys: Arc<KeyCache>,
    client: Option<Arc<AsClient>>,
    dpop: DpopChecker,
    revoked: Arc<Revoked>,
    health: Arc<Health>,
    answers: ExpiringMap<[u8; 32], Answer>,
    sessions: broadcast::Sender<Revocation>,
    metrics: Arc<Metrics>,
}

/// Verifies access tokens for one API. Cheap to clone; clones share their caches, the JWKS and
/// the feed. The background tasks (feed polling, JWKS refresh) stop when the last clone is
/// dropped.
#[derive(Clone)]
pub struct Verifier {
    shared: Arc<Shared>,
    _stop: Arc<watch::Sender<()>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.shared.config.issuer)
            .field("resource", &self.shared.config.resource)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// Reads the authorization server's metadata and JWKS, and starts the revocation feed.
    /// Must run inside a Tokio runtime.
    ///
    /// # Errors
    /// [`SetupError`] when the metadata or the JWKS cannot be read, or the configuration is
    /// inconsistent (a feed or opaque tokens without a client).
    pub async fn new(config: VerifierConfig) -> Result<Self, SetupError> {
        Self::with_parts(
            config,
            Arc::new(SystemClock),
            Arc::new(MemoryReplayCache::new(100_000)),
        )
        .await
    }

    /// [`Verifier::new`] with a clock and a DPoP replay cache of the caller's (one shared by
    /// every replica of the API, for instance).
    ///
    /// # Errors
    /// As [`Verifier::new`].
    pub async fn with_parts(
        config: VerifierConfig,
        clock: Arc<dyn Clock>,
        replay: Arc<dyn ReplayCache>,
    ) -> Result<Self, SetupError> {
        if config.algorithms.is_empty() {
            return Err(SetupError::new("algorithms", "at least one is needed"));
        }
        if url::Url::parse(&config.resource).is_err() {
            return Err(SetupError::new(
                "resource",
                "must be an absolute URI (RFC 8707)",
            ));
        }
        let metrics = Arc::new(Metrics::default());
        let http = crate::http::client(&config.ca_files, None, config.http_timeout)?;
        let metadata = jwks::discover(&http, &config.issuer, config.http_timeout).await?;
        let keys = Arc::new(
            KeyCache::load(
                http,
                metadata.jwks_uri.clone(),
                config.http_timeout,
                config.jwks_min_refresh,
                config.jwks_max_age,
                metrics.clone(),
            )
            .await?,
        );
        let client = match &config.client {
            Some(credentials) => Some(Arc::new(AsClient::new(
                credentials.clone(),
                &metadata,
                &config.ca_files,
                config.http_timeout,
                clock.clone(),
                config.feed.as_ref().and_then(|f| f.endpoint.clone()),
            )?)),
            None => None,
        };
        let introspects = client.as_ref().is_some_and(|c| c.has_introspection());
        if config.introspection == IntrospectionMode::Always && !introspects {
            return Err(SetupError::new(
                "introspection",
                "introspecting every token needs a client and an introspection endpoint",
            ));
        }
        let feed = match (&config.feed, &client) {
            (Some(feed), Some(client)) if client.has_feed() => Some((feed.clone(), client.clone())),
            (Some(_), Some(_)) => {
                return Err(SetupError::new(
                    "feed",
                    "the authorization server's metadata names no token or events endpoint",
                ));
            }
            (Some(_), None) => {
                return Err(SetupError::new(
                    "feed",
                    "the revocation feed needs this API's client (VerifierConfig::client)",
                ));
            }
            (None, _) => None,
        };
        if let Some((feed, _)) = &feed
            && feed.on_lag == LagPolicy::Introspect
            && !introspects
        {
            return Err(SetupError::new(
                "feed",
                "LagPolicy::Introspect needs an introspection endpoint",
            ));
        }
        let health = Arc::new(Health::new(
            feed.is_some(),
            feed.as_ref().map(|(f, _)| f.max_lag).unwrap_or_default(),
        ));
        let revoked = Arc::new(Revoked::new(config.cache_entries));
        let (sessions, _) = broadcast::channel(1024);
        let dpop_algs = config
            .dpop
            .algorithms
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let shared = Arc::new(Shared {
            dpop: DpopChecker::new(config.dpop.clone(), replay),
            answers: ExpiringMap::new(config.cache_entries),
            dpop_algs,
            clock: clock.clone(),
            keys: keys.clone(),
            client,
            revoked: revoked.clone(),
            health: health.clone(),
            sessions: sessions.clone(),
            metrics: metrics.clone(),
            config,
        });
        let (stop, stopped) = watch::channel(());
        if let Some((feed, client)) = feed {
            let poller = Poller {
                client,
                keys: keys.clone(),
                issuer: shared.config.issuer.clone(),
                algorithms: shared.config.algorithms.clone(),
                revoked,
                health,
                sessions,
                metrics,
                clock,
                max_events: feed.max_events,
                max_token_lifetime: i64::try_from(shared.config.max_token_lifetime.as_secs())
                    .unwrap_or(i64::MAX / 2),
                skew: shared.config.clock_skew_secs,
            };
            tokio::spawn(poller.run(stopped.clone()));
        }
        if shared.config.feed.is_some() {
            tokio::spawn(watch_lag(shared.health.clone(), stopped.clone()));
        }
        tokio::spawn(refresh_keys(keys, stopped));
        Ok(Self {
            shared,
            _stop: Arc::new(stop),
        })
    }

    /// The configuration in use.
    #[must_use]
    pub fn config(&self) -> &VerifierConfig {
        &self.shared.config
    }

    /// The DPoP algorithms this API accepts, space separated (for `WWW-Authenticate`).
    #[must_use]
    pub fn dpop_algs(&self) -> &str {
        &self.shared.dpop_algs
    }

    /// The current DPoP nonce, when this API requires nonces (for a `DPoP-Nonce` header).
    #[must_use]
    pub fn dpop_nonce(&self) -> Option<String> {
        self.shared.dpop.current_nonce(self.shared.clock.now())
    }

    /// The state of the revocation feed.
    #[must_use]
    pub fn feed_state(&self) -> FeedState {
        self.shared.health.state()
    }

    /// The counters.
    #[must_use]
    pub fn metrics(&self) -> MetricsSnapshot {
        let state = self.feed_state();
        self.shared
            .metrics
            .snapshot(state, self.shared.health.lag_ms())
    }

    /// Revocations as the feed announces them (for long-lived sessions).
    #[must_use]
    pub fn revocations(&self) -> broadcast::Receiver<Revocation> {
        self.shared.sessions.subscribe()
    }

    /// Changes of the feed's state.
    #[must_use]
    pub fn feed_states(&self) -> watch::Receiver<FeedState> {
        self.shared.health.subscribe()
    }

    /// The time now, by this verifier's clock.
    #[must_use]
    pub fn now(&self) -> i64 {
        self.shared.clock.now()
    }

    /// Counts a WebSocket session closed because its token died (`ws::SessionGuard`).
    #[cfg(feature = "axum")]
    pub(crate) fn session_closed(&self) {
        self.shared.metrics.session_closed();
    }

    /// The revocation the feed recorded for `principal`'s token or grant, if any (for a session
    /// that may have missed the announcement).
    #[cfg(feature = "axum")]
    pub(crate) fn revocation_of(&self, principal: &Principal) -> Option<Revocation> {
        let now = self.now();
        let revoked = &self.shared.revoked;
        if revoked.is_revoked(&principal.token_id, None, now) {
            return Some(Revocation::Token(principal.token_id.clone()));
        }
        principal
            .grant_id
            .as_ref()
            .filter(|grant| revoked.is_revoked(&principal.token_id, Some(grant), now))
            .map(|grant| Revocation::Grant(grant.clone()))
    }

    /// Verifies the token of a request. See the module documentation for the order of checks.
    ///
    /// # Errors
    /// A [`VerifyError`] ready to be answered (status, challenge, description).
    pub async fn verify(&self, request: &TokenRequest<'_>) -> Result<Principal, VerifyError> {
        let result = self.verify_inner(request).await;
        match &result {
            Ok(_) => self.shared.metrics.accepted(),
            Err(_) => self.shared.metrics.refused(),
        }
        result
    }

    /// Whether a principal verified earlier is still good: not expired, not revoked, and, when
    /// the feed is not live, still active at the authorization server. For long-lived sessions.
    ///
    /// # Errors
    /// The reason it is not.
    pub async fn recheck(&self, principal: &Principal, token: &str) -> Result<(), VerifyError> {
        let now = self.now();
        if now >= principal.expires_at {
            return Err(VerifyError::invalid_token(
                principal.scheme,
                "the access token has expired",
            ));
        }
        let trusted = self.trusted(now);
        self.check_liveness(principal, token, now, trusted, false)
            .await
    }

    async fn verify_inner(&self, request: &TokenRequest<'_>) -> Result<Principal, VerifyError> {
        let s = &self.shared;
        let (scheme, token) = presented(request.authorization)?;
        let now = s.clock.now();
        let expect = Expectations {
            issuer: &s.config.issuer,
            resource: &s.config.resource,
            skew: s.config.clock_skew_secs,
            allow_unbound: s.config.allow_unbound_tokens,
        };
        let invalid = |d: String| VerifyError::invalid_token(scheme, d);
        let trusted = self.trusted(now);
        self.refuse_if_lagging(trusted)?;
        let looks_like_jwt = token.bytes().filter(|b| *b == b'.').count() == 2;
        let principal = if looks_like_jwt {
            let algs: &[SigningAlg] = &s.config.algorithms;
            match token::check_jwt(token, &s.keys.current(), algs, &expect, now, scheme) {
                // A key we do not hold: the authorization server may have rotated (at most one
                // fetch per interval, whatever the token says).
                Err(JwtError::UnknownKey) => {
                    token::check_jwt(token, &*s.keys.refresh().await, algs, &expect, now, scheme)
                }
                other => other,
            }
            .map_err(|e| match e {
                JwtError::UnknownKey => invalid(
                    "the access token was signed with a key the authorization server does not publish"
                        .into(),
                ),
                JwtError::Invalid(description) => invalid(description),
            })?
        } else {
            // An opaque reference: only the authorization server knows it.
            let answer = self.introspect(token, now, trusted).await?;
            let Some(claims) = answer else {
                return Err(invalid("the access token is not active".into()));
            };
            token::principal(
                (*claims).clone(),
                &expect,
                now,
                scheme,
                TokenSource::Introspection,
                token,
            )
            .map_err(invalid)?
        };
        self.check_binding(&principal, request, token, now).await?;
        // An opaque token's answer was just fetched (fresh when the feed cannot vouch for the
        // cache); a JWT is asked about when the feed cannot vouch for it.
        let answered_now = principal.source == TokenSource::Introspection;
        self.check_liveness(&principal, token, now, trusted, answered_now)
            .await?;
        Ok(principal)
    }

    async fn check_binding(
        &self,
        principal: &Principal,
        request: &TokenRequest<'_>,
        token: &str,
        now: i64,
    ) -> Result<(), VerifyError> {
        match (&principal.binding, principal.scheme) {
            (Some(Binding::DpopKey(_)), Scheme::Bearer) => Err(VerifyError::invalid_token(
                Scheme::Dpop,
                "a DPoP-bound access token must be presented with the DPoP scheme (RFC 9449 §7.1)",
            )),
            (Some(binding @ Binding::DpopKey(_)), Scheme::Dpop) => {
                let proof = self
                    .shared
                    .dpop
                    .check(request.dpop, request.method, request.url, token, now)
                    .await
                    .map_err(|failure| dpop_error(failure, self))?;
                binding
                    .check(None, Some(&proof.jkt))
                    .map_err(|e| VerifyError::invalid_token(Scheme::Dpop, e.to_string()))
            }
            (Some(Binding::Certificate(_)), Scheme::Dpop) => Err(VerifyError::invalid_token(
                Scheme::Bearer,
                "a certificate-bound access token is presented with the Bearer scheme (RFC 8705 §3)",
            )),
            (Some(binding @ Binding::Certificate(_)), Scheme::Bearer) => binding
                .check(request.certificate_x5t, None)
                .map_err(|e| VerifyError::invalid_token(Scheme::Bearer, e.to_string())),
            (None, Scheme::Dpop) => Err(VerifyError::invalid_token(
                Scheme::Dpop,
                "the access token is not DPoP-bound (no cnf.jkt)",
            )),
            (None, Scheme::Bearer) => Ok(()),
        }
    }

    /// Whether the feed vouches for what this replica knows and cached.
    fn trusted(&self, now: i64) -> bool {
        match self.shared.health.state() {
            FeedState::Live => !self.shared.revoked.overflowing(now),
            // Without a feed the operator chose to learn of revocations only by expiry (or by
            // introspecting every token).
            FeedState::Off => true,
            FeedState::Starting | FeedState::Lagging => false,
        }
    }

    /// With an untrusted feed and the policy to refuse: 503.
    fn refuse_if_lagging(&self, trusted: bool) -> Result<(), VerifyError> {
        let s = &self.shared;
        let policy = s.config.feed.as_ref().map(|f| f.on_lag).unwrap_or_default();
        if !trusted && policy == LagPolicy::Refuse {
            s.metrics.refused_lagging();
            return Err(VerifyError::Unavailable(
                "the authorization server's revocation feed is behind; tokens cannot be checked now"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Revoked? And when the feed cannot vouch for the token (or every token is to be
    /// introspected), asks the authorization server, unless its answer was just fetched.
    async fn check_liveness(
        &self,
        principal: &Principal,
        token: &str,
        now: i64,
        trusted: bool,
        answered_now: bool,
    ) -> Result<(), VerifyError> {
        let s = &self.shared;
        if s.revoked
            .is_revoked(&principal.token_id, principal.grant_id.as_deref(), now)
        {
            return Err(VerifyError::invalid_token(
                principal.scheme,
                "the access token has been revoked",
            ));
        }
        self.refuse_if_lagging(trusted)?;
        let must_ask = !answered_now
            && (s.config.introspection == IntrospectionMode::Always
                || !trusted
                || principal.source == TokenSource::Introspection);
        if !must_ask {
            return Ok(());
        }
        match self.introspect(token, now, trusted).await? {
            None => Err(VerifyError::invalid_token(
                principal.scheme,
                "the access token is not active",
            )),
            Some(claims) => {
                let same = claims.get("sub").and_then(Value::as_str)
                    == Some(principal.subject.as_str())
                    && claims.get("client_id").and_then(Value::as_str)
                        == Some(principal.client_id.as_str());
                if same {
                    Ok(())
                } else {
                    Err(VerifyError::invalid_token(
                        principal.scheme,
                        "the introspection answer does not match the access token",
                    ))
                }
            }
        }
    }

    /// The introspection answer for `token`, from the cache when `use_cache`.
    async fn introspect(
        &self,
        token: &str,
        now: i64,
        use_cache: bool,
    ) -> Result<Answer, VerifyError> {
        let s = &self.shared;
        let Some(client) = s.client.as_ref().filter(|c| c.has_introspection()) else {
            return Err(VerifyError::invalid_token(
                Scheme::Bearer,
                "opaque access tokens are not accepted here",
            ));
        };
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if use_cache && let Some(answer) = s.answers.get(&key, now) {
            s.metrics.introspection_cache_hit();
            return Ok(answer);
        }
        s.metrics.introspected();
        let signed = s
            .config
            .signed_introspection
            .then(|| (&*s.keys, s.config.algorithms.as_slice()));
        match client.introspect(token, signed).await {
            Ok(Some(claims)) => {
                let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(now);
                let answer = Some(Arc::new(claims));
                s.answers.insert_evicting(key, answer.clone(), exp, now);
                Ok(answer)
            }
            Ok(None) => {
                s.answers
                    .insert_evicting(key, None, now + NEGATIVE_TTL, now);
                Ok(None)
            }
            Err(CallError::Refused(e) | CallError::Unavailable(e)) => {
                s.metrics.introspection_failed();
                tracing::warn!(error = %e, "introspection failed; refusing the token");
                Err(VerifyError::Unavailable(
                    "the authorization server could not be asked about the token".into(),
                ))
            }
        }
    }
}

/// The scheme and token of the one `Authorization` header (RFC 6750 §2.1, RFC 9449 §7.1).
fn presented<'a>(values: &[&'a str]) -> Result<(Scheme, &'a str), VerifyError> {
    let value = match values {
        [] => return Err(VerifyError::Missing),
        [one] => *one,
        _ => {
            return Err(VerifyError::InvalidRequest(
                "more than one Authorization header".into(),
            ));
        }
    };
    let (scheme, token) = value.split_once(' ').ok_or_else(|| {
        VerifyError::InvalidRequest("the Authorization header has no scheme and token".into())
    })?;
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else {
        return Err(VerifyError::InvalidRequest(
            "the Authorization scheme must be Bearer or DPoP".into(),
        ));
    };
    let token = token.trim_start_matches(' ');
    // token68 (RFC 9110 §11.2).
    let token68 = !token.is_empty()
        && token.len() <= MAX_TOKEN_LEN
        && token
            .trim_end_matches('=')
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
    if !token68 {
        return Err(VerifyError::invalid_token(
            scheme,
            "the access token is malformed",
        ));
    }
    Ok((scheme, token))
}

fn dpop_error(failure: crate::dpop::DpopFailure, verifier: &Verifier) -> VerifyError {
    use crate::dpop::DpopFailure;
    match failure {
        DpopFailure::UseNonce => match verifier.dpop_nonce() {
            Some(nonce) => VerifyError::UseDpopNonce { nonce },
            None => VerifyError::InvalidDpopProof("the DPoP proof's nonce is not accepted".into()),
        },
        DpopFailure::Unavailable(e) => {
            // Our fault, not the client's: 503, and the proof is not accepted unrecorded.
            tracing::warn!(error = %e, "the DPoP replay cache failed; refusing the proof");
            VerifyError::Unavailable("the DPoP proof cannot be checked for replay right now".into())
        }
        other => VerifyError::InvalidDpopProof(other.to_string()),
    }
}

/// Looks at the feed's lag four times a second, so a feed that falls behind is announced
/// ([`Verifier::feed_states`], the log) when it happens, not at the next request.
async fn watch_lag(health: Arc<Health>, mut stop: watch::Receiver<()>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        health.state();
    }
}

/// Fetches the JWKS whenever the set in hand reaches its max-age (the answer's `Cache-Control`,
/// within the configured bounds): the authorization server publishes a new key at least that
/// long before it signs with it, so a rotation is in hand before its first token; and keys the
/// authorization server dropped are dropped here.
async fn refresh_keys(keys: Arc<KeyCache>, mut stop: watch::Receiver<()>) {
    loop {
        let wait = keys.fresh_for().max(std::time::Duration::from_millis(100));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        if keys.stale() {
            keys.refresh().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6750_2_1_exactly_one_authorization_header_with_a_known_scheme_and_token68() {
        assert_eq!(presented(&[]), Err(VerifyError::Missing));
        assert!(matches!(
            presented(&["Bearer a", "Bearer b"]),
            Err(VerifyError::InvalidRequest(_))
        ));
        assert!(matches!(
            presented(&["Basic abc"]),
            Err(VerifyError::InvalidRequest(_))
        ));
        assert!(matches!(
            presented(&["Bearer"]),
            Err(VerifyError::InvalidRequest(_))
        ));
        assert_eq!(
            presented(&["bearer abc.def-_~+/=="]).unwrap(),
            (Scheme::Bearer, "abc.def-_~+/==")
        );
        assert_eq!(presented(&["DPoP x"]).unwrap(), (Scheme::Dpop, "x"));
        assert!(matches!(
            presented(&["Bearer a b"]),
            Err(VerifyError::InvalidToken { .. })
        ));
        assert!(matches!(
            presented(&["Bearer a\"b"]),
            Err(VerifyError::InvalidToken { .. })
        ));
        let long = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1));
        assert!(matches!(
            presented(&[&long]),
            Err(VerifyError::InvalidToken { .. })
        ));
    }
}
