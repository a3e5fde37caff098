//! The revocation event feed (RFC 8936 poll delivery of RFC 8417 Security Event Tokens): a task
//! that long-polls the authorization server's `/events` with this API's own sender-constrained
//! token, verifies each SET against the JWKS, remembers revoked grants and tokens, tells live
//! sessions, and acknowledges.
//!
//! Its health decides what cached answers are worth: while the feed was heard from within
//! [`max_lag`](crate::FeedConfig::max_lag) they are trusted; after that they are not, and the
//! verifier introspects each token or refuses it (fail closed), logging the change once and
//! counting it in the metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use crate::cache::ExpiringMap;
use crate::client::{AsClient, CallError, FeedToken};
use crate::clock::Clock;
use crate::jwks::KeyCache;
use crate::metrics::{FeedState, Metrics};

/// The SET event type of a revoked grant.
pub const GRANT_REVOKED: &str = "urn:portcullis:secevent:grant-revoked";
/// The SET event type of a revoked access token.
pub const TOKEN_REVOKED: &str = "urn:portcullis:secevent:token-revoked";

/// Something the feed announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// Every token of this grant (`grant_id`) is dead: the customer withdrew consent, or the
    /// client or the bank revoked it.
    Grant(String),
    /// This access token (`jti`) is dead.
    Token(String),
}

/// What has been revoked, for as long as it matters.
#[derive(Debug)]
pub(crate) struct Revoked {
    grants: ExpiringMap<String, ()>,
    tokens: ExpiringMap<String, ()>,
    /// Set when a revocation could not be remembered (the set is full): until then nothing cached
    /// is trusted.
    overflow_until: AtomicU64,
}

impl Revoked {
    pub fn new(capacity: usize) -> Self {
        Self {
            grants: ExpiringMap::new(capacity),
            tokens: ExpiringMap::new(capacity),
            overflow_until: AtomicU64::new(0),
        }
    }

    pub fn grant(&self, grant_id: &str, until: i64, now: i64) {
        if !self.grants.insert(grant_id.to_owned(), (), until, now) {
            self.overflowed(until);
        }
    }

    pub fn token(&self, jti: &str, until: i64, now: i64) {
        if !self.tokens.insert(jti.to_owned(), (), until, now) {
            self.overflowed(until);
        }
    }

    fn overflowed(&self, until: i64) {
        tracing::error!("the revoked-token set is full; trusting no cached answer until it drains");
        self.overflow_until
            .fetch_max(u64::try_from(until).unwrap_or(0), Ordering::Relaxed);
    }

    /// Whether something could not be remembered and is still within its lifetime.
    pub fn overflowing(&self, now: i64) -> bool {
        self.overflow_until.load(Ordering::Relaxed) > u64::try_from(now).unwrap_or(0)
    }

    /// Whether the token `jti` of grant `grant_id` was revoked.
    pub fn is_revoked(&self, jti: &str, grant_id: Option<&str>, now: i64) -> bool {
        self.tokens.contains(jti, now) || grant_id.is_some_and(|g| self.grants.contains(g, now))
    }

    pub fn purge(&self, now: i64) {
        self.grants.purge(now);
        self.tokens.purge(now);
    }
}

/// When the feed was last heard from.
#[derive(Debug)]
pub(crate) struct Health {
    configured: bool,
    max_lag: Duration,
    started: Instant,
    /// Milliseconds after `started` of the last successful poll, plus one; 0 = never.
    last_ok: AtomicU64,
    lagging_logged: AtomicBool,
    state: watch::Sender<FeedState>,
}

impl Health {
    pub fn new(configured: bool, max_lag: Duration) -> Self {
        let initial = if configured {
            FeedState::Starting
        } else {
            FeedState::Off
        };
        Self {
            configured,
            max_lag,
            started: Instant::now(),
            last_ok: AtomicU64::new(0),
            lagging_logged: AtomicBool::new(false),
            state: watch::Sender::new(initial),
        }
    }

    fn heard(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ok.store(ms.saturating_add(1), Ordering::Relaxed);
        if self.lagging_logged.swap(false, Ordering::Relaxed) {
            tracing::info!("the revocation feed is back; cached answers are trusted again");
        }
        self.state.send_if_modified(|s| {
            let changed = *s != FeedState::Live;
            *s = FeedState::Live;
            changed
        });
    }

    /// Milliseconds since the feed was last heard from.
    pub fn lag_ms(&self) -> Option<u64> {
        match self.last_ok.load(Ordering::Relaxed) {
            0 => None,
            at => Some(
                u64::try_from(self.started.elapsed().as_millis())
                    .unwrap_or(u64::MAX)
                    .saturating_sub(at - 1),
            ),
        }
    }

    /// The state now.
    pub fn state(&self) -> FeedState {
        if !self.configured {
            return FeedState::Off;
        }
        let max = u64::try_from(self.max_lag.as_millis()).unwrap_or(u64::MAX);
        let state = match self.lag_ms() {
            None if self.started.elapsed() < self.max_lag => FeedState::Starting,
            Some(lag) if lag <= max => FeedState::Live,
            _ => FeedState::Lagging,
        };
        if state == FeedState::Lagging {
            if !self.lagging_logged.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    max_lag_ms = max,
                    lag_ms = ?self.lag_ms(),
                    "the revocation feed has not been heard from within its allowed lag; cached answers are no longer trusted"
                );
            }
            self.state.send_if_modified(|s| {
                let changed = *s != FeedState::Lagging;
                *s = FeedState::Lagging;
                changed
            });
        }
        state
    }

    /// Changes of state (sent when noticed).
    pub fn subscribe(&self) -> watch::Receiver<FeedState> {
        self.state.subscribe()
    }
}

/// What the poller needs.
pub(crate) struct Poller {
    pub client: Arc<AsClient>,
    pub keys: Arc<KeyCache>,
    pub issuer: String,
    pub algorithms: Vec<portcullis_jose::SigningAlg>,
    pub revoked: Arc<Revoked>,
    pub health: Arc<Health>,
    pub sessions: broadcast::Sender<Revocation>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    pub max_events: u32,
    pub max_token_lifetime: i64,
    pub skew: i64,
}

impl Poller {
    /// Polls until `stop` is dropped.
    pub async fn run(self, mut stop: watch::Receiver<()>) {
        let mut token: Option<FeedToken> = None;
        let mut ack: Vec<String> = Vec::new();
        let mut errs = Map::new();
        let mut more = true;
        let mut backoff = Duration::from_millis(100);
        loop {
            let step = async {
                let now = self.clock.now();
                let current = match &token {
                    Some(t) if t.expires_at - now > 30 => t.clone(),
                    _ => {
                        let fresh = self.client.feed_token().await?;
                        token = Some(fresh.clone());
                        fresh
                    }
                };
                let wait = ack.is_empty() && errs.is_empty() && !more;
                let answer = self
                    .client
                    .poll(&current, &ack, self.max_events, wait, &errs)
                    .await?;
                Ok::<Value, CallError>(answer)
            };
            let result = tokio::select! {
                result = step => result,
                _ = stop.changed() => return,
            };
            match result {
                Ok(answer) => {
                    self.metrics.feed_polled();
                    self.health.heard();
                    ack.clear();
                    errs.clear();
                    more = answer
                        .get("moreAvailable")
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    if let Some(sets) = answer.get("sets").and_then(Value::as_object) {
                        self.metrics.feed_events(sets.len() as u64);
                        for (jti, set) in sets {
                            match self.apply(set.as_str().unwrap_or_default()).await {
                                Ok(()) => ack.push(jti.clone()),
                                Err((err, description)) => {
                                    tracing::warn!(set = %jti, error = %description, "refused a revocation event");
                                    errs.insert(
                                        jti.clone(),
                                        json!({"err": err, "description": description}),
                                    );
                                }
                            }
                        }
                    }
                    self.revoked.purge(self.clock.now());
                    backoff = Duration::from_millis(100);
                }
                Err(error) => {
                    self.metrics.feed_failed();
                    if matches!(error, CallError::Refused(_)) {
                        token = None;
                    }
                    tracing::warn!(error = %error, "revocation feed poll failed");
                    more = true;
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Verifies one SET and applies its events; on failure the RFC 8936 §2.4.1 error code and a
    /// description.
    async fn apply(&self, set: &str) -> Result<(), (&'static str, String)> {
        let verified = self
            .keys
            .verify(set, &self.algorithms)
            .await
            .map_err(|e| ("invalid_key", format!("the SET does not verify: {e}")))?;
        let typ = verified
            .header
            .get("typ")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !typ.eq_ignore_ascii_case("secevent+jwt")
            && !typ.eq_ignore_ascii_case("application/secevent+jwt")
        {
            return Err((
                "invalid_request",
                "the SET's typ is not secevent+jwt (RFC 8417 §2.3)".into(),
            ));
        }
        let claims = verified.claims;
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(("invalid_issuer", "the SET is from another issuer".into()));
        }
        let client_id = &self.client.credentials.client_id;
        let for_us = match claims.get("aud") {
            Some(Value::String(a)) => a == client_id,
            Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(client_id)),
            _ => false,
        };
        if !for_us {
            return Err((
                "invalid_audience",
                "the SET is not for this client (aud)".into(),
            ));
        }
        let events = claims.get("events").and_then(Value::as_object).ok_or((
            "invalid_request",
            "the SET has no events (RFC 8417 §2.2)".to_owned(),
        ))?;
        let now = self.clock.now();
        for (kind, event) in events {
            match kind.as_str() {
                GRANT_REVOKED => {
                    let Some(grant) = event.get("grant_id").and_then(Value::as_str) else {
                        return Err((
                            "invalid_request",
                            "a grant-revoked event without grant_id".into(),
                        ));
                    };
                    self.revoked
                        .grant(grant, now + self.max_token_lifetime + self.skew, now);
                    tracing::info!(grant_id = grant, "grant revoked");
                    let _ = self.sessions.send(Revocation::Grant(grant.to_owned()));
                }
                TOKEN_REVOKED => {
                    let Some(jti) = event.get("jti").and_then(Value::as_str) else {
                        return Err((
                            "invalid_request",
                            "a token-revoked event without jti".into(),
                        ));
                    };
                    let exp = event
                        .get("exp")
                        .and_then(Value::as_i64)
                        .unwrap_or(now + self.max_token_lifetime);
                    self.revoked.token(jti, exp + self.skew, now);
                    tracing::info!(jti, "access token revoked");
                    let _ = self.sessions.send(Revocation::Token(jti.to_owned()));
                }
                // Other event types are not ours to act on (RFC 8417 §2.2).
                _ => {}
            }
        }
        Ok(())
    }
}
