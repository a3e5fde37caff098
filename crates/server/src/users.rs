//! The customer-account operations shared by the `users` CLI now and the admin API later:
//! validate, change the store, and record the change in the security-event trail.
//!
//! Every change is written first and its event second; if the event cannot be written the change
//! is undone, so no change goes unrecorded (as in [`crate::registry`]). Event details carry the
//! before and after of what changed, never a password, hash or TOTP secret (and
//! [`SecurityEvent::new`] scrubs such names again as a last line of defence).

use std::future::Future;

use portcullis_core::audit::SecurityEvent;
use portcullis_core::error::{ErrorCode, OAuthError};
use portcullis_core::keys::KeyEncryptionKey;
use portcullis_core::password::PasswordError;
use portcullis_core::store::{Store, StoreError};
use portcullis_core::totp::{self, TotpSecret};
use portcullis_core::user::{User, Username};
use portcullis_core::{Clock, Rng};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::passwords::{PasswordService, PasswordServiceError};

mod claims;

pub use claims::validate_claims;

/// Why a user operation failed.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// The request breaks a rule: `invalid_request`, naming the field and the rule.
    #[error(transparent)]
    Invalid(OAuthError),
    /// There is no such user.
    #[error("no such user")]
    NotFound,
    /// The username is taken.
    #[error("the username is taken")]
    Conflict,
    /// The store failed.
    #[error("user store: {0}")]
    Store(StoreError),
    /// The password hasher or the random source failed.
    #[error("password hashing or the random number generator is unavailable")]
    Unavailable,
}

impl From<StoreError> for UserError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => UserError::NotFound,
            other => UserError::Store(other),
        }
    }
}

impl From<PasswordServiceError> for UserError {
    fn from(error: PasswordServiceError) -> Self {
        match error {
            PasswordServiceError::Password(PasswordError::Length) => invalid(format!(
                "password: {}; NIST SP 800-63B §5.1.1.2",
                PasswordError::Length
            )),
            PasswordServiceError::Password(_) | PasswordServiceError::Unavailable => {
                UserError::Unavailable
            }
        }
    }
}

fn invalid(description: impl Into<String>) -> UserError {
    UserError::Invalid(OAuthError::new(ErrorCode::InvalidRequest, description))
}

/// The longest TOTP issuer label accepted.
const MAX_ISSUER_LABEL_CHARS: usize = 64;

/// Creates a user with a password and OIDC claims, as `actor`. The id (the `sub` of the user's
/// tokens) is a random UUID drawn from `rng`.
///
/// # Errors
/// [`UserError::Invalid`] for a bad username, password or claim; [`UserError::Conflict`] if the
/// username is taken; [`UserError::Store`] on database failure (the user is then not created);
/// [`UserError::Unavailable`] if hashing or the random source failed.
#[expect(
    clippy::too_many_arguments,
    reason = "every dependency is an explicit parameter (DESIGN.md: time and randomness are parameters)"
)]
pub async fn create_user(
    store: &dyn Store,
    passwords: &PasswordService,
    rng: &dyn Rng,
    clock: &dyn Clock,
    actor: &str,
    username: &str,
    password: Zeroizing<String>,
    claims: Map<String, Value>,
) -> Result<User, UserError> {
    let username = parse_username(username)?;
    validate_claims(&claims).map_err(UserError::Invalid)?;
    let password_hash = passwords.hash(password).await?;
    let mut id = [0u8; 16];
    rng.fill(&mut id).map_err(|_| UserError::Unavailable)?;
    let user = User {
        id: uuid::Builder::from_random_bytes(id).into_uuid(),
        username,
        password_hash,
        created_at: clock.now(),
        disabled_at: None,
        claims,
        totp_secret_encrypted: None,
        totp_last_step: None,
    };
    store.users().add(&user).await.map_err(|e| match e {
        StoreError::Conflict(_) => UserError::Conflict,
        other => UserError::from(other),
    })?;
    let mut details = Map::new();
    details.insert("after".into(), Value::Object(describe(&user)));
    record(
        store,
        event(clock, actor, "user.create", user.id, details),
        || store.users().remove(user.id),
    )
    .await?;
    tracing::info!(user_id = %user.id, %actor, "user created");
    Ok(user)
}

/// The user with this id.
///
/// # Errors
/// [`UserError::NotFound`] if there is none; [`UserError::Store`] on database failure.
pub async fn get_user(store: &dyn Store, user_id: Uuid) -> Result<User, UserError> {
    Ok(store.users().find_by_id(user_id).await?)
}

/// The user with this username (normalised to lower case first).
///
/// # Errors
/// [`UserError::Invalid`] if `username` cannot be a username; [`UserError::NotFound`] if there
/// is no such user; [`UserError::Store`] on database failure.
pub async fn find_user(store: &dyn Store, username: &str) -> Result<User, UserError> {
    let username = parse_username(username)?;
    Ok(store.users().find_by_username(&username).await?)
}

/// Up to `limit` users (at most 1000) in username order, after `after`.
///
/// # Errors
/// [`UserError::Store`] on database failure.
pub async fn list_users(
    store: &dyn Store,
    after: Option<&Username>,
    limit: u32,
) -> Result<Vec<User>, UserError> {
    Ok(store.users().list(after, limit).await?)
}

/// Replaces a user's claims, as `actor`, and returns the updated user.
///
/// # Errors
/// [`UserError::Invalid`] for a bad claim; [`UserError::NotFound`]; [`UserError::Store`] on
/// database failure (the claims are then unchanged).
pub async fn update_claims(
    store: &dyn Store,
    clock: &dyn Clock,
    actor: &str,
    user_id: Uuid,
    claims: Map<String, Value>,
) -> Result<User, UserError> {
    validate_claims(&claims).map_err(UserError::Invalid)?;
    let before = store.users().find_by_id(user_id).await?;
    store.users().set_claims(user_id, &claims).await?;
    let mut details = Map::new();
    details.insert("before".into(), Value::Object(before.claims.clone()));
    details.insert("after".into(), Value::Object(claims.clone()));
    record(
        store,
        event(clock, actor, "user.update_claims", user_id, details),
        || store.users().set_claims(user_id, &before.claims),
    )
    .await?;
    tracing::info!(%user_id, %actor, "user claims updated");
    Ok(User { claims, ..before })
}

/// Sets a user's password, as `actor`.
///
/// # Errors
/// [`UserError::Invalid`] for a password out of bounds; [`UserError::NotFound`];
/// [`UserError::Store`] on database failure (the password is then unchanged);
/// [`UserError::Unavailable`] if hashing failed.
pub async fn set_password(
    store: &dyn Store,
    passwords: &PasswordService,
    clock: &dyn Clock,
    actor: &str,
    user_id: Uuid,
    password: Zeroizing<String>,
) -> Result<(), UserError> {
    let before = store.users().find_by_id(user_id).await?;
    let hash = passwords.hash(password).await?;
    store.users().set_password_hash(user_id, &hash).await?;
    // Only the fact of the change: never the password or either hash.
    let mut details = Map::new();
    details.insert("username".into(), before.username.as_str().into());
    record(
        store,
        event(clock, actor, "user.set_password", user_id, details),
        || {
            store
                .users()
                .set_password_hash(user_id, &before.password_hash)
        },
    )
    .await?;
    tracing::info!(%user_id, %actor, "user password set");
    Ok(())
}

/// Disables a user (from now) or enables them again, as `actor`, and returns the user. A user
/// already in the requested state is returned unchanged and no event is written.
///
/// # Errors
/// [`UserError::NotFound`]; [`UserError::Store`] on database failure (the state is then
/// unchanged).
pub async fn set_disabled(
    store: &dyn Store,
    clock: &dyn Clock,
    actor: &str,
    user_id: Uuid,
    disabled: bool,
) -> Result<User, UserError> {
    let before = store.users().find_by_id(user_id).await?;
    if before.disabled_at.is_some() == disabled {
        return Ok(before);
    }
    let disabled_at = disabled.then(|| clock.now());
    store.users().set_disabled(user_id, disabled_at).await?;
    let state = |at: Option<OffsetDateTime>| {
        let mut state = Map::new();
        state.insert("disabled_at".into(), at.map_or(Value::Null, timestamp));
        Value::Object(state)
    };
    let mut details = Map::new();
    details.insert("before".into(), state(before.disabled_at));
    details.insert("after".into(), state(disabled_at));
    let action = if disabled {
        "user.disable"
    } else {
        "user.enable"
    };
    record(store, event(clock, actor, action, user_id, details), || {
        store.users().set_disabled(user_id, before.disabled_at)
    })
    .await?;
    tracing::info!(%user_id, %actor, disabled, "user state changed");
    Ok(User {
        disabled_at,
        ..before
    })
}

/// Enrols a fresh TOTP secret for a user, replacing any earlier one, as `actor`. The secret is
/// stored sealed under `kek` and bound to the user's id; it leaves this function only inside the
/// returned `otpauth://` URI (labelled `issuer_label:username`), which is shown to the user once.
///
/// # Errors
/// [`UserError::Invalid`] for an empty or overlong issuer label; [`UserError::NotFound`];
/// [`UserError::Store`] on database failure (the earlier secret is then kept);
/// [`UserError::Unavailable`] if the random source failed.
pub async fn enrol_totp(
    store: &dyn Store,
    kek: &KeyEncryptionKey,
    rng: &dyn Rng,
    clock: &dyn Clock,
    actor: &str,
    user_id: Uuid,
    issuer_label: &str,
) -> Result<(User, Zeroizing<String>), UserError> {
    let label_chars = issuer_label.chars().count();
    if label_chars == 0
        || label_chars > MAX_ISSUER_LABEL_CHARS
        || issuer_label.chars().any(char::is_control)
    {
        return Err(invalid(format!(
            "issuer_label: 1 to {MAX_ISSUER_LABEL_CHARS} printable characters"
        )));
    }
    let before = store.users().find_by_id(user_id).await?;
    let secret = TotpSecret::generate(rng).map_err(|_| UserError::Unavailable)?;
    let sealed = totp::seal(&secret, user_id, kek, rng).map_err(|_| UserError::Unavailable)?;
    store
        .users()
        .set_totp_secret(user_id, Some(&sealed))
        .await?;
    let details = totp_details(before.totp_secret_encrypted.is_some(), true);
    record(
        store,
        event(clock, actor, "user.enrol_totp", user_id, details),
        || {
            store
                .users()
                .set_totp_secret(user_id, before.totp_secret_encrypted.as_deref())
        },
    )
    .await?;
    tracing::info!(%user_id, %actor, "user enrolled a TOTP second factor");
    let uri = secret.otpauth_uri(issuer_label, before.username.as_str());
    let user = User {
        totp_secret_encrypted: Some(sealed),
        totp_last_step: None,
        ..before
    };
    Ok((user, uri))
}

/// Removes a user's TOTP secret, as `actor`, and returns the user. A user without one is
/// returned unchanged and no event is written.
///
/// # Errors
/// [`UserError::NotFound`]; [`UserError::Store`] on database failure (the secret is then kept).
pub async fn remove_totp(
    store: &dyn Store,
    clock: &dyn Clock,
    actor: &str,
    user_id: Uuid,
) -> Result<User, UserError> {
    let before = store.users().find_by_id(user_id).await?;
    let Some(sealed) = before.totp_secret_encrypted.as_deref() else {
        return Ok(before);
    };
    store.users().set_totp_secret(user_id, None).await?;
    record(
        store,
        event(
            clock,
            actor,
            "user.remove_totp",
            user_id,
            totp_details(true, false),
        ),
        || store.users().set_totp_secret(user_id, Some(sealed)),
    )
    .await?;
    tracing::info!(%user_id, %actor, "user's TOTP second factor removed");
    Ok(User {
        totp_secret_encrypted: None,
        totp_last_step: None,
        ..before
    })
}

/// A user as shown to operators and recorded in events: everything but the password hash and the
/// TOTP secret, of which only the presence (`totp_enrolled`) is shown.
#[must_use]
pub fn describe(user: &User) -> Map<String, Value> {
    let mut shown = Map::new();
    shown.insert("id".into(), user.id.hyphenated().to_string().into());
    shown.insert("username".into(), user.username.as_str().into());
    shown.insert("created_at".into(), timestamp(user.created_at));
    shown.insert(
        "disabled_at".into(),
        user.disabled_at.map_or(Value::Null, timestamp),
    );
    shown.insert("claims".into(), Value::Object(user.claims.clone()));
    shown.insert(
        "totp_enrolled".into(),
        user.totp_secret_encrypted.is_some().into(),
    );
    shown
}

fn parse_username(username: &str) -> Result<Username, UserError> {
    Username::parse(username).map_err(|e| invalid(format!("username: {e}")))
}

fn event(
    clock: &dyn Clock,
    actor: &str,
    action: &str,
    user_id: Uuid,
    details: Map<String, Value>,
) -> SecurityEvent {
    SecurityEvent::new(
        clock.now(),
        actor,
        action,
        Some(user_id.hyphenated().to_string()),
        details,
    )
}

fn totp_details(before: bool, after: bool) -> Map<String, Value> {
    let state = |enrolled: bool| {
        let mut state = Map::new();
        state.insert("totp_enrolled".into(), enrolled.into());
        Value::Object(state)
    };
    let mut details = Map::new();
    details.insert("before".into(), state(before));
    details.insert("after".into(), state(after));
    details
}

/// Appends the event of a change already written; if it cannot be appended, undoes the change.
async fn record<F, Fut>(store: &dyn Store, event: SecurityEvent, undo: F) -> Result<(), UserError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(), StoreError>>,
{
    let Err(e) = store.events().append(&event).await else {
        return Ok(());
    };
    // Fail closed: a change that cannot be recorded is undone.
    if let Err(undo) = undo().await {
        tracing::error!(
            action = %event.action,
            user_id = event.subject.as_deref().unwrap_or("-"),
            error = %undo,
            "could not undo an unrecorded user change"
        );
    }
    Err(UserError::Store(e))
}

/// RFC 3339 in UTC, whole seconds, as every operator-facing timestamp.
fn timestamp(at: OffsetDateTime) -> Value {
    at.replace_nanosecond(0)
        .unwrap_or(at)
        .format(&time::format_description::well_known::Rfc3339)
        .map_or_else(|_| at.unix_timestamp().into(), Value::String)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use portcullis_core::audit::RecordedEvent;
    use portcullis_core::password::PasswordParams;
    use portcullis_core::store::{
        Backend, ClientStore, ReplayStore, ResourceServerStore, SecurityEventStore,
        SigningKeyStore, UserStore,
    };
    use portcullis_core::{ManualClock, SeededRng};
    use portcullis_testkit::db::TestDatabase;
    use serde_json::json;

    use super::*;

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    /// A store whose event trail refuses every append, to check that changes fail closed.
    #[derive(Debug)]
    struct NoTrail(Arc<dyn Store>);

    #[async_trait::async_trait]
    impl SecurityEventStore for NoTrail {
        async fn append(&self, _event: &SecurityEvent) -> Result<i64, StoreError> {
            Err(StoreError::Backend("the trail is down".into()))
        }
        async fn list(&self, _after: i64, _limit: u32) -> Result<Vec<RecordedEvent>, StoreError> {
            Ok(Vec::new())
        }
        async fn find(
            &self,
            filter: &portcullis_core::store::EventFilter,
            after: i64,
            limit: u32,
        ) -> Result<Vec<RecordedEvent>, StoreError> {
            self.0.events().find(filter, after, limit).await
        }
        fn head(&self) -> Option<portcullis_core::audit::chain::ChainHead> {
            self.0.events().head()
        }
        async fn add_seal(
            &self,
            seal: &portcullis_core::audit::seal::Seal,
        ) -> Result<(), StoreError> {
            self.0.events().add_seal(seal).await
        }
        async fn last_seal(
            &self,
            chain_id: uuid::Uuid,
        ) -> Result<Option<portcullis_core::audit::seal::Seal>, StoreError> {
            self.0.events().last_seal(chain_id).await
        }
        async fn chains(&self) -> Result<Vec<portcullis_core::store::ChainInfo>, StoreError> {
            self.0.events().chains().await
        }
        async fn chain_events(
            &self,
            chain_id: uuid::Uuid,
            after: (i64, i64),
            limit: u32,
        ) -> Result<Vec<RecordedEvent>, StoreError> {
            self.0.events().chain_events(chain_id, after, limit).await
        }
        async fn seals(
            &self,
            chain_id: uuid::Uuid,
        ) -> Result<Vec<portcullis_core::audit::seal::Seal>, StoreError> {
            self.0.events().seals(chain_id).await
        }
        async fn unchained(&self) -> Result<portcullis_core::store::Unchained, StoreError> {
            self.0.events().unchained().await
        }
    }

    #[async_trait::async_trait]
    impl Store for NoTrail {
        fn backend(&self) -> Backend {
            self.0.backend()
        }
        async fn ping(&self) -> Result<(), StoreError> {
            self.0.ping().await
        }
        fn signing_keys(&self) -> &dyn SigningKeyStore {
            self.0.signing_keys()
        }
        fn clients(&self) -> &dyn ClientStore {
            self.0.clients()
        }
        fn users(&self) -> &dyn UserStore {
            self.0.users()
        }
        fn resource_servers(&self) -> &dyn ResourceServerStore {
            self.0.resource_servers()
        }
        fn replay(&self) -> &dyn ReplayStore {
            self.0.replay()
        }
        fn events(&self) -> &dyn SecurityEventStore {
            self
        }
        fn pushed_requests(&self) -> &dyn portcullis_core::store::PushedRequestStore {
            self.0.pushed_requests()
        }
        fn grants(&self) -> &dyn portcullis_core::store::GrantStore {
            self.0.grants()
        }
        fn codes(&self) -> &dyn portcullis_core::store::CodeStore {
            self.0.codes()
        }
        fn sessions(&self) -> &dyn portcullis_core::store::SessionStore {
            self.0.sessions()
        }
        fn interactions(&self) -> &dyn portcullis_core::store::InteractionStore {
            self.0.interactions()
        }
        fn refresh_tokens(&self) -> &dyn portcullis_core::store::RefreshTokenStore {
            self.0.refresh_tokens()
        }
        fn access_tokens(&self) -> &dyn portcullis_core::store::AccessTokenStore {
            self.0.access_tokens()
        }
        fn revocations(&self) -> &dyn portcullis_core::store::RevocationStore {
            self.0.revocations()
        }
        fn rate_limits(&self) -> &dyn portcullis_core::store::RateLimitStore {
            self.0.rate_limits()
        }
        fn login_throttle(&self) -> &dyn portcullis_core::store::LoginThrottleStore {
            self.0.login_throttle()
        }
    }

    struct Fixture {
        _db: TestDatabase,
        store: Arc<dyn Store>,
        passwords: PasswordService,
        rng: SeededRng,
        clock: ManualClock,
        kek: KeyEncryptionKey,
    }

    async fn fixture() -> Fixture {
        let db = TestDatabase::sqlite();
        let store = portcullis_store::connect_and_migrate(
            db.url(),
            &portcullis_store::PoolOptions::default(),
        )
        .await
        .unwrap();
        // Cheap parameters keep the tests fast; the mechanism is the same.
        let params = PasswordParams {
            m_cost: 64,
            t_cost: 1,
            p_cost: 1,
        };
        let rng = SeededRng::new(11);
        let kek = KeyEncryptionKey::generate(&rng).unwrap();
        Fixture {
            _db: db,
            store,
            passwords: PasswordService::new(1, params, Arc::new(SeededRng::new(12))),
            rng,
            clock: ManualClock::new(OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()),
            kek,
        }
    }

    async fn alice(f: &Fixture, store: &dyn Store) -> Result<User, UserError> {
        create_user(
            store,
            &f.passwords,
            &f.rng,
            &f.clock,
            "cli",
            "Alice",
            Zeroizing::new("correct horse battery".into()),
            claims(json!({"name": "Alice", "email": "alice@bank.example"})),
        )
        .await
    }

    async fn trail(store: &dyn Store) -> Vec<SecurityEvent> {
        let events = store.events().list(0, 100).await.unwrap();
        events.into_iter().map(|e| e.event).collect()
    }

    #[tokio::test]
    async fn every_change_is_recorded_without_secrets() {
        let f = fixture().await;
        let store = f.store.as_ref();
        let user = alice(&f, store).await.unwrap();
        assert_eq!(user.username.as_str(), "alice");
        assert_eq!(find_user(store, "ALICE").await.unwrap(), user);

        let user = update_claims(
            store,
            &f.clock,
            "cli",
            user.id,
            claims(json!({"name": "A"})),
        )
        .await
        .unwrap();
        assert_eq!(get_user(store, user.id).await.unwrap(), user);
        set_password(
            store,
            &f.passwords,
            &f.clock,
            "cli",
            user.id,
            Zeroizing::new("staple battery horse".into()),
        )
        .await
        .unwrap();
        let disabled = set_disabled(store, &f.clock, "cli", user.id, true)
            .await
            .unwrap();
        assert!(disabled.disabled_at.is_some());
        set_disabled(store, &f.clock, "cli", user.id, true)
            .await
            .unwrap();
        set_disabled(store, &f.clock, "cli", user.id, false)
            .await
            .unwrap();
        let (enrolled, uri) =
            enrol_totp(store, &f.kek, &f.rng, &f.clock, "cli", user.id, "Bank Ltd")
                .await
                .unwrap();
        assert!(
            uri.starts_with("otpauth://totp/Bank%20Ltd:alice?secret="),
            "{}",
            uri.as_str()
        );
        let stored = get_user(store, user.id).await.unwrap();
        assert_eq!(stored.totp_secret_encrypted, enrolled.totp_secret_encrypted);
        let secret = totp::open(
            stored.totp_secret_encrypted.as_deref().unwrap(),
            user.id,
            &f.kek,
        )
        .unwrap();
        remove_totp(store, &f.clock, "cli", user.id).await.unwrap();
        assert_eq!(
            get_user(store, user.id)
                .await
                .unwrap()
                .totp_secret_encrypted,
            None
        );

        let events = trail(store).await;
        let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(
            actions,
            [
                "user.create",
                "user.update_claims",
                "user.set_password",
                "user.disable",
                "user.enable",
                "user.enrol_totp",
                "user.remove_totp"
            ],
            "repeating a state change records nothing"
        );
        let subject = user.id.hyphenated().to_string();
        assert!(
            events
                .iter()
                .all(|e| e.subject.as_deref() == Some(subject.as_str()) && e.actor == "cli")
        );
        assert_eq!(
            events[0].details["after"]["claims"]["email"],
            "alice@bank.example"
        );
        assert_eq!(events[1].details["before"]["name"], "Alice");
        assert_eq!(events[1].details["after"]["name"], "A");
        assert_eq!(events[5].details["after"]["totp_enrolled"], true);
        let text =
            serde_json::to_string(&events.iter().map(|e| &e.details).collect::<Vec<_>>()).unwrap();
        let base32_secret = uri
            .split("secret=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap();
        for secret_text in [
            "argon2",
            "correct horse",
            "staple battery",
            base32_secret,
            "password_hash",
            "totp_secret",
        ] {
            assert!(!text.contains(secret_text), "{secret_text} in {text}");
        }
        drop(secret);
    }

    #[tokio::test]
    async fn bad_input_is_invalid_request_naming_the_field() {
        let f = fixture().await;
        let store = f.store.as_ref();
        let create = |username: &'static str, password: &'static str, claims: Value| {
            create_user(
                store,
                &f.passwords,
                &f.rng,
                &f.clock,
                "cli",
                username,
                Zeroizing::new(password.into()),
                claims.as_object().unwrap().clone(),
            )
        };
        for (outcome, field) in [
            (
                create("a b", "correct horse", json!({})).await,
                "username: ",
            ),
            (create("bob", "short", json!({})).await, "password: "),
            (
                create("bob", "correct horse", json!({"sub": "x"})).await,
                "claims.sub ",
            ),
        ] {
            let Err(UserError::Invalid(e)) = outcome else {
                panic!("{field}: {outcome:?}")
            };
            assert_eq!(e.error, ErrorCode::InvalidRequest);
            assert!(
                e.error_description.starts_with(field),
                "{}",
                e.error_description
            );
        }
        alice(&f, store).await.unwrap();
        assert!(matches!(alice(&f, store).await, Err(UserError::Conflict)));
        assert!(matches!(
            find_user(store, "nobody").await,
            Err(UserError::NotFound)
        ));
        let nobody = Uuid::from_u128(7);
        assert!(matches!(
            enrol_totp(store, &f.kek, &f.rng, &f.clock, "cli", nobody, "Bank").await,
            Err(UserError::NotFound)
        ));
        assert!(matches!(
            enrol_totp(store, &f.kek, &f.rng, &f.clock, "cli", nobody, "").await,
            Err(UserError::Invalid(_))
        ));
        assert_eq!(
            trail(store).await.len(),
            1,
            "only the one creation is recorded"
        );
    }

    #[tokio::test]
    async fn a_change_that_cannot_be_recorded_is_undone() {
        let f = fixture().await;
        let broken = NoTrail(f.store.clone());
        assert!(matches!(alice(&f, &broken).await, Err(UserError::Store(_))));
        assert!(
            matches!(
                find_user(f.store.as_ref(), "alice").await,
                Err(UserError::NotFound)
            ),
            "the unrecorded creation was undone"
        );

        let user = alice(&f, f.store.as_ref()).await.unwrap();
        let (enrolled, _) = enrol_totp(
            f.store.as_ref(),
            &f.kek,
            &f.rng,
            &f.clock,
            "cli",
            user.id,
            "Bank",
        )
        .await
        .unwrap();
        assert!(matches!(
            update_claims(
                &broken,
                &f.clock,
                "cli",
                user.id,
                claims(json!({"name": "B"}))
            )
            .await,
            Err(UserError::Store(_))
        ));
        assert!(matches!(
            set_disabled(&broken, &f.clock, "cli", user.id, true).await,
            Err(UserError::Store(_))
        ));
        assert!(matches!(
            enrol_totp(&broken, &f.kek, &f.rng, &f.clock, "cli", user.id, "Bank").await,
            Err(UserError::Store(_))
        ));
        assert!(matches!(
            set_password(
                &broken,
                &f.passwords,
                &f.clock,
                "cli",
                user.id,
                Zeroizing::new("staple battery horse".into())
            )
            .await,
            Err(UserError::Store(_))
        ));
        assert_eq!(get_user(f.store.as_ref(), user.id).await.unwrap(), enrolled);
    }
}
