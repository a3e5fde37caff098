//! The customer's login steps and browser session, one implementation for every page that logs
//! the customer in: the authorization flow (`authorize.rs`, which keeps its progress in an
//! interaction) and the account page (`account.rs`). How the steps are chained, and how failed
//! attempts are counted, is each page's own; what a step checks and records is here.
//!
//! - the password: argon2id through the password service, against a dummy hash when there is no
//!   such user (the same time either way), a fresh hash when the parameters changed, the
//!   `login.password` event;
//! - the second factor: the user's TOTP secret opened under the KEK, the code checked with one
//!   step of drift, the step used up in the store (single use across replicas);
//! - the session: a `__Host-` cookie whose value is stored only as a hash, a fresh random value at
//!   every login (the previous session ends), idle and absolute timeouts.

use http::HeaderMap;
use portcullis_core::audit::SecurityEvent;
use portcullis_core::client::secret::SecretHash;
use portcullis_core::password::PasswordCheck;
use portcullis_core::store::{Session, StoreError};
use portcullis_core::totp;
use portcullis_core::user::User;
use serde_json::Map;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::authorize::{SESSION_COOKIE, cookie, internal, read_cookie, with_cookie};
use crate::app::AppState;

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

/// Checks a username and password. `Ok(Some(user))` for an enabled customer whose password
/// matched (the `login.password` event is recorded); `Ok(None)` for anything else, with no hint
/// which part was wrong (the caller counts the failure, see [`record_failure`]).
///
/// # Errors
/// The error page to answer with when the password service or the store fails.
pub(crate) async fn check_password(
    state: &AppState,
    username: &str,
    password: Zeroizing<String>,
    now: OffsetDateTime,
) -> Result<Option<User>, axum::response::Response> {
    let user = crate::users::find_user(state.store.as_ref(), username)
        .await
        .ok()
        .filter(|u| u.disabled_at.is_none());
    // A check against a dummy hash when there is no such user: the same time either way.
    let check = state
        .passwords
        .verify(
            password.clone(),
            user.as_ref().map(|u| u.password_hash.clone()),
        )
        .await;
    let user = match (check, user) {
        (Ok(PasswordCheck::Match { rehash }), Some(user)) => {
            if rehash && let Ok(hash) = state.passwords.hash(password).await {
                // Parameters changed since this hash was made: store a fresh one.
                if let Err(e) = state.store.users().set_password_hash(user.id, &hash).await {
                    tracing::warn!(error = %e, "could not store a rehashed password");
                }
            }
            user
        }
        (Err(e), _) => return Err(internal(state, "login: password check", &e)),
        _ => return Ok(None),
    };
    let event = SecurityEvent::new(
        now,
        format!("user:{}", user.id),
        "login.password",
        Some(user.id.to_string()),
        Map::new(),
    );
    if let Err(e) = state.store.events().append(&event).await {
        return Err(internal(state, "login: events", &e));
    }
    Ok(Some(user))
}

/// What a second-factor code came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SecondFactor {
    /// The code was right, and its step is now used up.
    Accepted,
    /// The code was wrong, or its step was used before.
    Refused,
    /// The customer is gone or disabled since the password step.
    UserGone,
}

/// Checks a TOTP code of the customer `user_id` at `now`; a code is accepted once (the store
/// records its step only if it is newer than the last one used, across replicas).
///
/// # Errors
/// The error page to answer with when the store fails.
pub(crate) async fn check_second_factor(
    state: &AppState,
    user_id: Uuid,
    code: &str,
    now: OffsetDateTime,
) -> Result<SecondFactor, axum::response::Response> {
    let user = match state.store.users().find_by_id(user_id).await {
        Ok(u) if u.disabled_at.is_none() => u,
        Ok(_) | Err(StoreError::NotFound) => return Ok(SecondFactor::UserGone),
        Err(e) => return Err(internal(state, "login: users", &e)),
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
    Ok(if accepted {
        SecondFactor::Accepted
    } else {
        SecondFactor::Refused
    })
}

/// Records a failed password or code (`login.failure`; the customer when known).
pub(crate) async fn record_failure(state: &AppState, user_id: Option<Uuid>, now: OffsetDateTime) {
    let event = SecurityEvent::new(
        now,
        "anonymous",
        "login.failure",
        user_id.map(|u| u.to_string()),
        Map::new(),
    );
    if let Err(e) = state.store.events().append(&event).await {
        tracing::warn!(error = %e, "could not record a failed login");
    }
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
