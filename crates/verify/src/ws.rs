//! WebSocket sessions (feature `axum`): a session is authenticated once, at its upgrade request,
//! and then lives for as long as its access token does. [`SessionAuth`] verifies the upgrade like
//! any request (the `Authorization` header, and for a DPoP-bound token a `DPoP` proof for `GET`
//! and the upgrade URL; never a token in the query string, FAPI2 SP 5.3.4), and
//! [`SessionGuard`] then watches the token for the rest of the session:
//!
//! - its `exp`, by the [`Verifier`](crate::Verifier)'s clock;
//! - the revocation feed: a [`Revocation`] of its grant (consent withdrawn) or of its `jti`;
//! - while the feed is not live ([`FeedState::Starting`] or [`FeedState::Lagging`]), a
//!   [`Verifier::recheck`](crate::Verifier::recheck) every [`RECHECK_INTERVAL`], which asks the
//!   authorization server or, under [`LagPolicy::Refuse`](crate::LagPolicy::Refuse), ends the
//!   session (fail closed); a session that missed feed messages (a lagged receiver) is rechecked
//!   at once.
//!
//! Without a feed ([`FeedState::Off`]) a session learns of nothing but its token's expiry.
//!
//! [`SessionGuard::ended`] resolves with the [`SessionEnd`] to close the socket with; it is
//! cancel-safe, so it sits in a `tokio::select!` beside the socket's `recv`. A client renews
//! in-band with [`SessionGuard::renew`]: a fresh token of the same client and subject, verified
//! exactly as a `GET` of the upgrade URL on the same connection.
//!
//! ```no_run
//! # use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
//! # use axum::response::Response;
//! # use portcullis_verify::ws::{SessionAuth, SessionGuard};
//! async fn stream(session: SessionAuth, ws: WebSocketUpgrade) -> Response {
//!     let guard = session.into_guard();
//!     ws.on_upgrade(move |socket| run(socket, guard))
//! }
//!
//! async fn run(mut socket: WebSocket, mut guard: SessionGuard) {
//!     loop {
//!         tokio::select! {
//!             end = guard.ended() => {
//!                 let frame = CloseFrame { code: end.close_code(), reason: end.reason().into() };
//!                 let _ = socket.send(Message::Close(Some(frame))).await;
//!                 return;
//!             }
//!             message = socket.recv() => match message {
//!                 Some(Ok(_message)) => { /* answer it */ }
//!                 _ => return,
//!             },
//!         }
//!     }
//! }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRef, FromRequestParts};
use http::Uri;
use http::request::Parts;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::{Instant, Interval, MissedTickBehavior, Sleep};

use crate::axum::{ApiAuth, Rejection, Token, Verified};
use crate::certificate::ClientCertificate;
use crate::error::VerifyError;
use crate::feed::Revocation;
use crate::metrics::FeedState;
use crate::principal::Principal;
use crate::verifier::TokenRequest;

/// How often a session checks the feed's state and, while the feed is not live, rechecks its
/// token with the authorization server.
pub const RECHECK_INTERVAL: Duration = Duration::from_secs(2);

/// The longest close reason a WebSocket Close frame can carry: its payload is at most 125 bytes,
/// two of which are the code (RFC 6455 §5.5).
pub const MAX_CLOSE_REASON: usize = 123;

/// The longest the expiry timer sleeps at once before looking at the clock again (tokens live an
/// hour at most; this only keeps the deadline arithmetic in range).
const MAX_EXPIRY_SLEEP: Duration = Duration::from_secs(24 * 60 * 60);

/// Why a session ends. Each has a WebSocket close code and reason ([`Self::close_code`],
/// [`Self::reason`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// The access token reached its `exp` without being renewed.
    Expired,
    /// The revocation feed announced the token's grant revoked: the customer withdrew consent, or
    /// the client or the bank revoked it.
    GrantRevoked,
    /// The revocation feed announced the token itself (`jti`) revoked.
    TokenRevoked,
    /// A recheck found the token no longer good (for instance, introspection says it is not
    /// active); the text says why, without the token.
    Unverifiable(String),
    /// The revocation feed is behind and the token cannot be vouched for: the policy is to refuse
    /// ([`LagPolicy::Refuse`](crate::LagPolicy::Refuse)), or the authorization server could not
    /// be asked either.
    FeedUnavailable,
}

impl SessionEnd {
    /// The close code (RFC 6455 §7.4.2, private use range): 4401 for a token that died (the
    /// WebSocket analogue of HTTP 401), 4503 when it cannot be checked now (of 503).
    #[must_use]
    pub fn close_code(&self) -> u16 {
        match self {
            SessionEnd::Expired
            | SessionEnd::GrantRevoked
            | SessionEnd::TokenRevoked
            | SessionEnd::Unverifiable(_) => 4401,
            SessionEnd::FeedUnavailable => 4503,
        }
    }

    /// The close reason, at most [`MAX_CLOSE_REASON`] bytes: "access token expired", "consent
    /// withdrawn", "access token revoked", "revocation feed unavailable", or for
    /// [`SessionEnd::Unverifiable`] its text, shortened on a character boundary if need be.
    #[must_use]
    pub fn reason(&self) -> &str {
        match self {
            SessionEnd::Expired => "access token expired",
            SessionEnd::GrantRevoked => "consent withdrawn",
            SessionEnd::TokenRevoked => "access token revoked",
            SessionEnd::Unverifiable(why) => truncate(why, MAX_CLOSE_REASON),
            SessionEnd::FeedUnavailable => "revocation feed unavailable",
        }
    }

    /// A short label for logs and metrics: `expired`, `grant_revoked`, `token_revoked`,
    /// `unverifiable` or `feed_unavailable`.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            SessionEnd::Expired => "expired",
            SessionEnd::GrantRevoked => "grant_revoked",
            SessionEnd::TokenRevoked => "token_revoked",
            SessionEnd::Unverifiable(_) => "unverifiable",
            SessionEnd::FeedUnavailable => "feed_unavailable",
        }
    }
}

impl std::fmt::Display for SessionEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

/// Refuses a request that carries an access token in its query string (FAPI2 SP 5.3.4; RFC 6750
/// §2.3 is not supported): a WebSocket client that cannot set headers must not fall back to a
/// URL that ends up in logs and histories.
///
/// # Errors
/// [`VerifyError::InvalidRequest`] (400) when the query has an `access_token` parameter.
pub fn refuse_query_token(uri: &Uri) -> Result<(), VerifyError> {
    let Some(query) = uri.query() else {
        return Ok(());
    };
    if url::form_urlencoded::parse(query.as_bytes()).any(|(name, _)| name == "access_token") {
        return Err(VerifyError::InvalidRequest(
            "access tokens are not accepted in the query string; send them in the \
             Authorization header (FAPI2 SP 5.3.4)"
                .into(),
        ));
    }
    Ok(())
}

/// The verified upgrade request of a WebSocket session: an extractor that refuses a token in the
/// query string (400 `invalid_request`), verifies the `Authorization` and `DPoP` headers with
/// [`ApiAuth::verify_parts`] (unless [`ApiAuth::layer`] already did), and keeps the path and the
/// connection's certificate for the session's renewals. Turn it into a [`SessionGuard`] with
/// [`Self::into_guard`] before upgrading.
#[derive(Debug, Clone)]
pub struct SessionAuth {
    auth: ApiAuth,
    /// The verified token of the upgrade.
    pub verified: Verified,
    path: String,
    certificate_x5t: Option<String>,
}

impl SessionAuth {
    /// Who the session's token speaks for.
    #[must_use]
    pub fn principal(&self) -> &Principal {
        &self.verified.principal
    }

    /// The guard of the session.
    #[must_use]
    pub fn into_guard(self) -> SessionGuard {
        SessionGuard::new(
            &self.auth,
            self.verified,
            &self.path,
            self.certificate_x5t.as_deref(),
        )
    }
}

impl<S> FromRequestParts<S> for SessionAuth
where
    ApiAuth: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Rejection> {
        let auth = ApiAuth::from_ref(state);
        refuse_query_token(&parts.uri).map_err(|e| auth.reject(e))?;
        let verified = match parts.extensions.get::<Verified>() {
            Some(verified) => verified.clone(),
            None => {
                let verified = auth.verify_parts(parts).await?;
                parts.extensions.insert(verified.clone());
                verified
            }
        };
        let certificate_x5t = parts
            .extensions
            .get::<Arc<ClientCertificate>>()
            .map(|c| c.x5t_s256().to_owned());
        Ok(Self {
            auth,
            verified,
            path: parts.uri.path().to_owned(),
            certificate_x5t,
        })
    }
}

/// A recheck in flight, owned by the guard so that cancelling [`SessionGuard::ended`] does not
/// lose it.
type Recheck = Pin<Box<dyn Future<Output = Result<(), VerifyError>> + Send>>;

/// Watches the access token of one WebSocket session: see the module documentation. Owned by the
/// session's task; dropping it stops watching.
pub struct SessionGuard {
    auth: ApiAuth,
    principal: Principal,
    token: Token,
    /// The upgrade's path: renewals are verified as a `GET` of it.
    path: String,
    /// The `x5t#S256` of the connection's client certificate, if one was presented.
    certificate_x5t: Option<String>,
    /// Fires at the token's `exp` (re-armed if the clock says it is not yet time).
    expiry: Pin<Box<Sleep>>,
    /// What the feed announces.
    revocations: broadcast::Receiver<Revocation>,
    /// Looks at the feed's state, and at the clock, every [`RECHECK_INTERVAL`].
    ticks: Interval,
    /// A [`Verifier::recheck`](crate::Verifier::recheck) in flight.
    recheck: Option<Recheck>,
    /// Set once the session has ended; [`Self::ended`] then returns it at once.
    end: Option<SessionEnd>,
}

impl std::fmt::Debug for SessionGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionGuard")
            .field("client_id", &self.principal.client_id)
            .field("subject", &self.principal.subject)
            .field("expires_at", &self.principal.expires_at)
            .field("path", &self.path)
            .field("rechecking", &self.recheck.is_some())
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

/// What woke [`SessionGuard::ended`].
enum Wake {
    Rechecked(Result<(), VerifyError>),
    ExpiryTimer,
    Feed(Result<Revocation, RecvError>),
    Tick,
}

impl SessionGuard {
    /// Starts watching `verified`, the token of a session upgraded at `path` (the upgrade
    /// request's path, e.g. `/stream`) on a connection that presented the client certificate
    /// with thumbprint `certificate_x5t`, if any. [`SessionAuth::into_guard`] calls this.
    ///
    /// Must be called inside a Tokio runtime (it arms timers).
    #[must_use]
    pub fn new(
        auth: &ApiAuth,
        verified: Verified,
        path: &str,
        certificate_x5t: Option<&str>,
    ) -> Self {
        let verifier = auth.verifier();
        // Subscribe before looking at what is already revoked, so that nothing announced in
        // between is missed (the feed records a revocation before it announces it).
        let revocations = verifier.revocations();
        let mut ticks =
            tokio::time::interval_at(Instant::now() + RECHECK_INTERVAL, RECHECK_INTERVAL);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut guard = Self {
            auth: auth.clone(),
            expiry: Box::pin(tokio::time::sleep_until(expiry_deadline(
                verified.principal.expires_at,
                verifier.now(),
            ))),
            principal: verified.principal,
            token: verified.token,
            path: path.to_owned(),
            certificate_x5t: certificate_x5t.map(str::to_owned),
            revocations,
            ticks,
            recheck: None,
            end: None,
        };
        if let Some(end) = guard.dead_by_clock_or_feed() {
            guard.finish(end);
        }
        guard
    }

    /// Who the session's current token speaks for.
    #[must_use]
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The current token's `exp`, in seconds since the epoch.
    #[must_use]
    pub fn expires_at(&self) -> i64 {
        self.principal.expires_at
    }

    /// Whether, and why, the session has ended.
    #[must_use]
    pub fn end(&self) -> Option<&SessionEnd> {
        self.end.as_ref()
    }

    /// Resolves when the session must end, with the reason; at once, and with the same reason,
    /// once it has ended. Counted in the verifier's `sessions_closed` metric, once.
    ///
    /// Cancel-safe: dropping the future loses nothing (a recheck in flight is kept by the
    /// guard and resumed by the next call), so it can sit in a `tokio::select!` with the
    /// socket's `recv` and other events.
    pub async fn ended(&mut self) -> SessionEnd {
        loop {
            if let Some(end) = &self.end {
                return end.clone();
            }
            let recheck = &mut self.recheck;
            let expiry = &mut self.expiry;
            let revocations = &mut self.revocations;
            let ticks = &mut self.ticks;
            let wake = tokio::select! {
                biased;
                result = async {
                    match recheck.as_mut() {
                        Some(running) => running.as_mut().await,
                        None => std::future::pending().await,
                    }
                } => Wake::Rechecked(result),
                () = expiry.as_mut() => Wake::ExpiryTimer,
                message = revocations.recv() => Wake::Feed(message),
                _ = ticks.tick() => Wake::Tick,
            };
            if let Some(end) = self.on_wake(wake) {
                self.finish(end);
            }
        }
    }

    /// Replaces the session's token with a fresh one: verified exactly as a `GET` of the upgrade
    /// URL on this connection would be (`Authorization: DPoP <token>` with `dpop_proof` when a
    /// proof is given, else `Bearer <token>`; the connection's certificate), and required to
    /// be of the same client and subject. On success the expiry timer restarts from the new
    /// token's `exp`; on failure the session goes on under the old token.
    ///
    /// # Errors
    /// The [`VerifyError`] of the new token (its code and text are fit for the client), or
    /// `invalid_token` when it is of another client or subject, or the session has ended.
    pub async fn renew(
        &mut self,
        access_token: &str,
        dpop_proof: Option<&str>,
    ) -> Result<&Principal, VerifyError> {
        let scheme = self.principal.scheme;
        if self.end.is_some() {
            return Err(VerifyError::invalid_token(scheme, "the session has ended"));
        }
        let authorization = match dpop_proof {
            Some(_) => format!("DPoP {access_token}"),
            None => format!("Bearer {access_token}"),
        };
        let authorization = [authorization.as_str()];
        let proofs: Vec<&str> = dpop_proof.into_iter().collect();
        let url = self.auth.url_of(&self.path);
        let request = TokenRequest {
            authorization: &authorization,
            dpop: &proofs,
            method: "GET",
            url: &url,
            certificate_x5t: self.certificate_x5t.as_deref(),
        };
        let principal = self.auth.verifier().verify(&request).await?;
        if principal.client_id != self.principal.client_id
            || principal.subject != self.principal.subject
        {
            return Err(VerifyError::invalid_token(
                principal.scheme,
                "the new access token is not of the session's client and subject",
            ));
        }
        let now = self.auth.verifier().now();
        self.expiry
            .as_mut()
            .reset(expiry_deadline(principal.expires_at, now));
        // A recheck in flight was about the old token.
        self.recheck = None;
        self.principal = principal;
        self.token = Token::new(access_token);
        tracing::debug!(
            client_id = %self.principal.client_id,
            expires_at = self.principal.expires_at,
            "WebSocket session renewed"
        );
        Ok(&self.principal)
    }

    /// Handles what woke [`Self::ended`]; the end, if it is one.
    fn on_wake(&mut self, wake: Wake) -> Option<SessionEnd> {
        let verifier = self.auth.verifier();
        match wake {
            Wake::Rechecked(result) => {
                self.recheck = None;
                result.err().map(|error| self.classify(error))
            }
            Wake::ExpiryTimer => {
                let now = verifier.now();
                if now >= self.principal.expires_at {
                    return Some(SessionEnd::Expired);
                }
                self.expiry
                    .as_mut()
                    .reset(expiry_deadline(self.principal.expires_at, now));
                None
            }
            Wake::Feed(Ok(revocation)) => ends_session(&revocation, &self.principal),
            Wake::Feed(Err(RecvError::Lagged(missed))) => {
                // Announcements were lost: fail closed by asking again about this token.
                tracing::warn!(
                    missed,
                    "a WebSocket session missed revocation announcements; rechecking its token"
                );
                if let Some(end) = self.dead_by_clock_or_feed() {
                    return Some(end);
                }
                self.start_recheck();
                None
            }
            Wake::Feed(Err(RecvError::Closed)) => {
                // The verifier owns the sender, and this guard holds the verifier: not expected.
                // Without announcements the session cannot be watched; fail closed.
                Some(SessionEnd::FeedUnavailable)
            }
            Wake::Tick => {
                // The clock may have moved faster than the timer (a step of the system clock, a
                // test clock).
                if let Some(end) = self.dead_by_clock_or_feed() {
                    return Some(end);
                }
                match verifier.feed_state() {
                    FeedState::Starting | FeedState::Lagging => self.start_recheck(),
                    FeedState::Live | FeedState::Off => {}
                }
                None
            }
        }
    }

    /// Expired by the clock, or already known revoked.
    fn dead_by_clock_or_feed(&self) -> Option<SessionEnd> {
        let verifier = self.auth.verifier();
        if verifier.now() >= self.principal.expires_at {
            return Some(SessionEnd::Expired);
        }
        verifier
            .revocation_of(&self.principal)
            .and_then(|revocation| ends_session(&revocation, &self.principal))
    }

    /// The end a failed recheck means, as precisely as the verifier can tell.
    fn classify(&self, error: VerifyError) -> SessionEnd {
        if let Some(end) = self.dead_by_clock_or_feed() {
            return end;
        }
        match error {
            VerifyError::Unavailable(_) => SessionEnd::FeedUnavailable,
            other => SessionEnd::Unverifiable(other.to_string()),
        }
    }

    /// Starts a recheck of the current token unless one is in flight.
    fn start_recheck(&mut self) {
        if self.recheck.is_some() {
            return;
        }
        let verifier = self.auth.verifier().clone();
        let principal = self.principal.clone();
        let token = self.token.clone();
        self.recheck = Some(Box::pin(async move {
            verifier.recheck(&principal, token.expose()).await
        }));
    }

    /// Records the end, counts it, and logs it.
    fn finish(&mut self, end: SessionEnd) {
        tracing::info!(
            client_id = %self.principal.client_id,
            grant_id = self.principal.grant_id.as_deref().unwrap_or(""),
            reason = end.as_str(),
            "WebSocket session ended by its token"
        );
        self.auth.verifier().session_closed();
        self.recheck = None;
        self.end = Some(end);
    }
}

/// The session end that `revocation` means for a session of `principal`, if any.
fn ends_session(revocation: &Revocation, principal: &Principal) -> Option<SessionEnd> {
    match revocation {
        Revocation::Grant(grant) if principal.grant_id.as_deref() == Some(grant.as_str()) => {
            Some(SessionEnd::GrantRevoked)
        }
        Revocation::Token(jti) if *jti == principal.token_id => Some(SessionEnd::TokenRevoked),
        Revocation::Grant(_) | Revocation::Token(_) => None,
    }
}

/// When to wake for a token expiring at `exp` (seconds) when the clock says `now`: whole seconds
/// ahead, so at or up to a second after `exp`, and at most [`MAX_EXPIRY_SLEEP`] ahead.
fn expiry_deadline(exp: i64, now: i64) -> Instant {
    deadline_from(Instant::now(), exp, now)
}

fn deadline_from(start: Instant, exp: i64, now: i64) -> Instant {
    let ahead = u64::try_from(exp.saturating_sub(now)).unwrap_or(0);
    let wait = Duration::from_secs(ahead).min(MAX_EXPIRY_SLEEP);
    start.checked_add(wait).unwrap_or(start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Scheme;
    use crate::principal::TokenSource;

    fn principal(grant_id: Option<&str>, jti: &str) -> Principal {
        Principal {
            subject: "customer".into(),
            client_id: "tpp".into(),
            scopes: vec!["ticks:EURUSD".into()],
            authorization_details: Vec::new(),
            grant_id: grant_id.map(str::to_owned),
            token_id: jti.into(),
            expires_at: 0,
            issued_at: None,
            binding: None,
            scheme: Scheme::Dpop,
            acr: None,
            auth_time: None,
            source: TokenSource::Jwt,
            claims: Arc::default(),
        }
    }

    #[test]
    fn a_dead_token_closes_with_4401_and_an_unavailable_feed_with_4503() {
        let cases = [
            (SessionEnd::Expired, 4401, "access token expired", "expired"),
            (
                SessionEnd::GrantRevoked,
                4401,
                "consent withdrawn",
                "grant_revoked",
            ),
            (
                SessionEnd::TokenRevoked,
                4401,
                "access token revoked",
                "token_revoked",
            ),
            (
                SessionEnd::Unverifiable("the access token is not active".into()),
                4401,
                "the access token is not active",
                "unverifiable",
            ),
            (
                SessionEnd::FeedUnavailable,
                4503,
                "revocation feed unavailable",
                "feed_unavailable",
            ),
        ];
        for (end, code, reason, label) in cases {
            assert_eq!(end.close_code(), code, "{end:?}");
            assert_eq!(end.reason(), reason);
            assert_eq!(end.to_string(), reason);
            assert_eq!(end.as_str(), label);
            assert!(end.reason().len() <= MAX_CLOSE_REASON);
        }
    }

    #[test]
    fn rfc_6455_5_5_a_long_reason_is_cut_to_123_bytes_on_a_character_boundary() {
        let long = format!("a{}", "é".repeat(100));
        let end = SessionEnd::Unverifiable(long.clone());
        let reason = end.reason();
        assert_eq!(reason.len(), 123);
        assert!(long.starts_with(reason));
        let odd = "é".repeat(100);
        let end = SessionEnd::Unverifiable(odd);
        assert_eq!(end.reason().len(), 122);
    }

    #[test]
    fn sp_5_3_4_a_token_in_the_query_string_is_refused_with_invalid_request() {
        for uri in [
            "/stream?access_token=abc",
            "/stream?x=1&access_token=",
            "/stream?access%5Ftoken=abc",
        ] {
            let error = refuse_query_token(&uri.parse().unwrap()).unwrap_err();
            assert_eq!(error.status(), 400, "{uri}");
            assert_eq!(error.code(), Some("invalid_request"));
        }
        for uri in [
            "/stream",
            "/stream?",
            "/stream?token=abc",
            "/stream?x=access_token",
        ] {
            assert!(refuse_query_token(&uri.parse().unwrap()).is_ok(), "{uri}");
        }
    }

    #[test]
    fn only_the_sessions_own_grant_or_jti_ends_it() {
        let p = principal(Some("grant-1"), "jti-1");
        assert_eq!(
            ends_session(&Revocation::Grant("grant-1".into()), &p),
            Some(SessionEnd::GrantRevoked)
        );
        assert_eq!(
            ends_session(&Revocation::Token("jti-1".into()), &p),
            Some(SessionEnd::TokenRevoked)
        );
        assert_eq!(ends_session(&Revocation::Grant("grant-2".into()), &p), None);
        assert_eq!(ends_session(&Revocation::Token("jti-2".into()), &p), None);
        let no_grant = principal(None, "jti-1");
        assert_eq!(
            ends_session(&Revocation::Grant(String::new()), &no_grant),
            None
        );
    }

    #[test]
    fn the_expiry_timer_wakes_at_exp_and_never_overflows() {
        let start = Instant::now();
        assert_eq!(
            deadline_from(start, 1_000, 990),
            start + Duration::from_secs(10)
        );
        assert_eq!(deadline_from(start, 1_000, 2_000), start);
        assert_eq!(
            deadline_from(start, i64::MAX, i64::MIN),
            start + MAX_EXPIRY_SLEEP
        );
    }
}
