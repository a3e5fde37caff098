//! The customer's login steps and browser session, one implementation for every page that logs
//! the customer in: the authorization flow (`authorize.rs`, which keeps its progress in an
//! interaction) and the account page (`account.rs`). How the steps are chained, and how failed
//! attempts are counted within one login, is each page's own; what a step checks and records,
//! and the brute-force protection across logins ([`LoginThrottle`]), is here.
//!
//! - the password: first the login throttle (a delayed or locked attempt is refused before any
//!   check, with the same answer for every username), then argon2id through the password service,
//!   against a dummy hash when there is no such user (the same time either way), a fresh hash
//!   when the parameters changed; the `login.success`, `login.failure` (with the reason, for the
//!   auditors: never the password, nor a username that matches no account) and `login.locked`
//!   events;
//! - the second factor: refused unchecked while the customer's second factor is locked (too many
//!   wrong codes across logins); the user's TOTP secret opened under the KEK, the code checked
//!   with one step of drift, the step used up in the store (single use across replicas); the
//!   `totp.success`, `totp.failure` and `totp.locked` events;
//! - the session: a `__Host-` cookie whose value is stored only as a hash, a fresh random value at
//!   every login (the previous session ends), idle and absolute timeouts.

use http::HeaderMap;
use portcullis_core::audit::SecurityEvent;
use portcullis_core::client::secret::SecretHash;
use portcullis_core::login_throttle::{Refusal, RefusalReason, ThrottleKind};
use portcullis_core::password::PasswordCheck;
use portcullis_core::store::{Session, StoreError};
use portcullis_core::totp;
use portcullis_core::user::User;
use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::authorize::{SESSION_COOKIE, cookie, internal, read_cookie, with_cookie};
use crate::app::AppState;
use crate::login_throttle::LoginThrottle;
use crate::source_ip::SourceIp;

/// How a customer authenticated: what a new session records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Authenticated {
    /// The customer.
    pub user_id: Uuid,
    /// When.
    pub auth_time: OffsetDateTime,
    /// The `acr` reached.
    pub acr: Option<String>,
    /// The methods (`amr`).
    pub amr: Vec<String>,
}

/// Who attempts a login step: the source address the counters key, and the client whose
/// authorization it is (none on the account page), for the audit trail.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attempt<'a> {
    /// Where the request came from.
    pub source: SourceIp,
    /// The client the customer is logging in for, if any.
    pub client_id: Option<&'a str>,
}

impl Attempt<'_> {
    /// An event's details: the source, the client, and `more`.
    fn details(&self, more: Value) -> Map<String, Value> {
        let mut details = match more {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        details.insert("source_ip".into(), self.source.to_string().into());
        if let Some(client_id) = self.client_id {
            details.insert("client_id".into(), client_id.into());
        }
        details
    }
}

/// What a password attempt came to.
#[derive(Debug)]
pub(crate) enum PasswordStep {
    /// An enabled customer whose password matched (`login.success` is recorded).
    Accepted(User),
    /// Anything else, with no hint which part was wrong (`login.failure` is recorded).
    Refused,
    /// Refused before any check: too many failed attempts (see [`LoginThrottle`]).
    Throttled(Refusal),
}

/// Why a checked password was not accepted, for the audit trail only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mismatch {
    UnknownUser,
    Disabled,
    BadCredentials,
}

impl Mismatch {
    fn as_str(self) -> &'static str {
        match self {
            Mismatch::UnknownUser => "unknown_user",
            Mismatch::Disabled => "disabled",
            Mismatch::BadCredentials => "bad_credentials",
        }
    }
}

/// A password attempt: first the login throttle (a refused attempt is answered without any
/// check, the same for every username), then the password. Unknown usernames are counted like
/// known ones and checked against a dummy hash, so neither the answer nor its time says whether
/// an account exists.
///
/// # Errors
/// The error page to answer with when the password service or the store fails (the login is
/// refused: fail closed).
pub(crate) async fn password_step(
    state: &AppState,
    who: Attempt<'_>,
    username: &str,
    password: Zeroizing<String>,
    now: OffsetDateTime,
) -> Result<PasswordStep, axum::response::Response> {
    let throttle = LoginThrottle::new(state);
    let attempt = match throttle.admit_password(username, who.source, now).await {
        Ok(Ok(attempt)) => attempt,
        Ok(Err(refusal)) => {
            state.metrics.login_attempt(match refusal.reason {
                RefusalReason::Delayed => "throttled",
                RefusalReason::Locked => "locked",
            });
            return Ok(PasswordStep::Throttled(refusal));
        }
        Err(e) => return Err(internal(state, "login: throttle", &e)),
    };
    match check_password(state, username, password).await? {
        Ok(user) => {
            if let Err(e) = throttle.password_succeeded(&attempt, now).await {
                return Err(internal(state, "login: throttle", &e));
            }
            state.metrics.login_attempt("success");
            let details = who.details(serde_json::json!({
                "second_factor": if user.totp_secret_encrypted.is_some() { "pending" } else { "none" },
            }));
            let event = SecurityEvent::new(
                now,
                format!("user:{}", user.id),
                "login.success",
                Some(user.id.to_string()),
                details,
            );
            if let Err(e) = state.store.events().append(&event).await {
                return Err(internal(state, "login: events", &e));
            }
            Ok(PasswordStep::Accepted(user))
        }
        Err((mismatch, user_id)) => {
            state.metrics.login_attempt(match mismatch {
                Mismatch::UnknownUser => "unknown_user",
                Mismatch::Disabled | Mismatch::BadCredentials => "bad_credentials",
            });
            let details = who.details(serde_json::json!({ "reason": mismatch.as_str() }));
            record(state, "anonymous", "login.failure", user_id, details).await;
            for lock in &attempt.locks {
                record_lock(state, who, "login.locked", user_id, lock).await;
            }
            Ok(PasswordStep::Refused)
        }
    }
}

/// Checks a username and password: the enabled customer whose password matched, or why not and
/// the customer when there is one. Always one password hash: against a dummy hash when there is
/// no such (enabled) customer, the same time either way.
async fn check_password(
    state: &AppState,
    username: &str,
    password: Zeroizing<String>,
) -> Result<Result<User, (Mismatch, Option<Uuid>)>, axum::response::Response> {
    let found = crate::users::find_user(state.store.as_ref(), username)
        .await
        .ok();
    let user = found.clone().filter(|u| u.disabled_at.is_none());
    let check = state
        .passwords
        .verify(
            password.clone(),
            user.as_ref().map(|u| u.password_hash.clone()),
        )
        .await;
    match (check, user) {
        (Ok(PasswordCheck::Match { rehash }), Some(user)) => {
            if rehash && let Ok(hash) = state.passwords.hash(password).await {
                // Parameters changed since this hash was made: store a fresh one.
                if let Err(e) = state.store.users().set_password_hash(user.id, &hash).await {
                    tracing::warn!(error = %e, "could not store a rehashed password");
                }
            }
            Ok(Ok(user))
        }
        (Err(e), _) => Err(internal(state, "login: password check", &e)),
        _ => Ok(Err(match found {
            None => (Mismatch::UnknownUser, None),
            Some(u) if u.disabled_at.is_some() => (Mismatch::Disabled, Some(u.id)),
            Some(u) => (Mismatch::BadCredentials, Some(u.id)),
        })),
    }
}

/// What a second-factor code came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SecondFactor {
    /// The code was right, and its step is now used up.
    Accepted,
    /// The code was wrong, or its step was used before.
    Refused,
    /// Refused without looking at the code: the customer's second factor is locked after too
    /// many wrong codes.
    Locked(Refusal),
    /// The customer is gone or disabled since the password step.
    UserGone,
}

/// Checks a TOTP code of the customer `user_id` at `now`, unless their second factor is locked
/// (too many wrong codes, across logins and replicas); a code is accepted once (the store
/// records its step only if it is newer than the last one used, across replicas).
///
/// # Errors
/// The error page to answer with when the store fails.
pub(crate) async fn check_second_factor(
    state: &AppState,
    who: Attempt<'_>,
    user_id: Uuid,
    code: &str,
    now: OffsetDateTime,
) -> Result<SecondFactor, axum::response::Response> {
    let user = match state.store.users().find_by_id(user_id).await {
        Ok(u) if u.disabled_at.is_none() => u,
        Ok(_) | Err(StoreError::NotFound) => return Ok(SecondFactor::UserGone),
        Err(e) => return Err(internal(state, "login: users", &e)),
    };
    let throttle = LoginThrottle::new(state);
    let attempt = match throttle.admit_totp(user.id, now).await {
        Ok(Ok(attempt)) => attempt,
        Ok(Err(refusal)) => {
            state.metrics.login_attempt("totp_locked");
            return Ok(SecondFactor::Locked(refusal));
        }
        Err(e) => return Err(internal(state, "login: throttle", &e)),
    };
    let step = user
        .totp_secret_encrypted
        .as_deref()
        .and_then(|sealed| totp::open(sealed, user.id, &state.kek).ok())
        .and_then(|secret| secret.verify(code, now, user.totp_last_step));
    // Single use, across replicas: the store records the step only if it is newer.
    let accepted = match step {
        Some(step) => match state.store.users().use_totp_step(user.id, step).await {
            Ok(accepted) => accepted,
            Err(e) => return Err(internal(state, "login: totp", &e)),
        },
        None => false,
    };
    if !accepted {
        state.metrics.login_attempt("totp_failed");
        let details = who.details(Value::Null);
        record(state, "anonymous", "totp.failure", Some(user.id), details).await;
        if let Some(lock) = &attempt.lock {
            record_lock(state, who, "totp.locked", Some(user.id), lock).await;
        }
        return Ok(SecondFactor::Refused);
    }
    if let Err(e) = throttle.totp_succeeded(&attempt, now).await {
        return Err(internal(state, "login: throttle", &e));
    }
    state.metrics.login_attempt("totp_success");
    let event = SecurityEvent::new(
        now,
        format!("user:{}", user.id),
        "totp.success",
        Some(user.id.to_string()),
        who.details(Value::Null),
    );
    if let Err(e) = state.store.events().append(&event).await {
        return Err(internal(state, "login: events", &e));
    }
    Ok(SecondFactor::Accepted)
}

/// Records an event whose loss must not stop the answer (a failure: the counters have it).
async fn record(
    state: &AppState,
    actor: &str,
    action: &str,
    user_id: Option<Uuid>,
    details: Map<String, Value>,
) {
    let event = SecurityEvent::new(
        state.clock.now(),
        actor,
        action,
        user_id.map(|u| u.to_string()),
        details,
    );
    if let Err(e) = state.store.events().append(&event).await {
        tracing::warn!(error = %e, action, "could not record a login event");
    }
}

/// Records that an attempt locked a counter: which (`pair`, `ip`, `account`, `totp`) and until
/// when. The customer is the subject when known, except for a source's lock, which is about no
/// one account.
async fn record_lock(
    state: &AppState,
    who: Attempt<'_>,
    action: &str,
    user_id: Option<Uuid>,
    lock: &Refusal,
) {
    let until = lock
        .until
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| lock.until.unix_timestamp().to_string());
    let details = who.details(serde_json::json!({ "kind": lock.kind.as_str(), "until": until }));
    let subject = user_id.filter(|_| lock.kind != ThrottleKind::Ip);
    record(state, "system", action, subject, details).await;
}

/// The customer's session from the browser's cookie, if it exists, has not reached its absolute
/// timeout, and has not been idle too long. It is not touched: see [`touch_session`].
pub(crate) async fn find_session(
    state: &AppState,
    headers: &HeaderMap,
    now: OffsetDateTime,
) -> Option<Session> {
    let id = read_cookie(headers, SESSION_COOKIE)?;
    let session = state
        .store
        .sessions()
        .find(&SecretHash::of(id), now)
        .await
        .ok()?;
    let idle = Duration::seconds(i64::from(state.config.authorization.session_idle_secs));
    if now - session.last_seen_at > idle {
        return None;
    }
    Some(session)
}

/// Marks a session in use: its idle timeout starts again.
pub(crate) async fn touch_session(state: &AppState, session: &Session, now: OffsetDateTime) {
    if let Err(e) = state.store.sessions().touch(&session.handle, now).await {
        tracing::warn!(error = %e, "could not touch a session");
    }
}

/// A fresh session for the customer just authenticated, its cookie set on `page` (a new random
/// id at every login; the old session, if any, ends).
pub(crate) async fn start_session(
    state: &AppState,
    headers: &HeaderMap,
    login: &Authenticated,
    page: axum::response::Response,
) -> axum::response::Response {
    if let Some(old) = read_cookie(headers, SESSION_COOKIE)
        && let Err(e) = state.store.sessions().remove(&SecretHash::of(old)).await
    {
        tracing::warn!(error = %e, "could not end the previous session");
    }
    let Ok(id) = state.rng.token(32) else {
        return internal(state, "login: random", &"the random source failed");
    };
    let now = state.clock.now();
    let absolute = i64::from(state.config.authorization.session_absolute_secs);
    let session = Session {
        handle: SecretHash::of(&id),
        user_id: login.user_id,
        auth_time: login.auth_time,
        acr: login.acr.clone(),
        amr: login.amr.clone(),
        created_at: now,
        last_seen_at: now,
        expires_at: now + Duration::seconds(absolute),
    };
    if let Err(e) = state.store.sessions().add(&session).await {
        return internal(state, "login: sessions", &e);
    }
    with_cookie(page, cookie(SESSION_COOKIE, &id, absolute))
}
