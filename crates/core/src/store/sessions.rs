//! Storage of the customer's browser sessions and of the authorizations in progress
//! ("interactions"), so that every replica sees them. Only hashes of the cookie values are kept.

use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::client::ClientId;
use crate::client::secret::SecretHash;

use super::StoreError;

/// A logged-in customer's session (OIDC Core `prompt`/`max_age` read it).
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// The SHA-256 of the session cookie's value.
    pub handle: SecretHash,
    /// The customer.
    pub user_id: Uuid,
    /// When the customer authenticated.
    pub auth_time: OffsetDateTime,
    /// The authentication context reached (`acr`).
    pub acr: Option<String>,
    /// The authentication methods (`amr`), e.g. `pwd`, `otp`.
    pub amr: Vec<String>,
    /// When it began.
    pub created_at: OffsetDateTime,
    /// When the customer was last seen (idle timeout).
    pub last_seen_at: OffsetDateTime,
    /// When it ends whatever happens (absolute timeout).
    pub expires_at: OffsetDateTime,
}

/// The sessions.
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if the handle is taken.
    async fn add(&self, session: &Session) -> Result<(), StoreError>;

    /// The session with this handle if it has not expired at `now` (`expires_at > now`); idle
    /// time is the caller's to judge from `last_seen_at`.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is none or it expired.
    async fn find(&self, handle: &SecretHash, now: OffsetDateTime) -> Result<Session, StoreError>;

    /// Sets `last_seen_at` to `now`.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such session.
    async fn touch(&self, handle: &SecretHash, now: OffsetDateTime) -> Result<(), StoreError>;

    /// Ends a session (logout); ending an unknown one is not an error.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on database failure.
    async fn remove(&self, handle: &SecretHash) -> Result<(), StoreError>;

    /// Ends every session of a customer (logout everywhere, a disabled account).
    ///
    /// # Errors
    /// [`StoreError::Backend`] on database failure.
    async fn remove_for_user(&self, user_id: Uuid) -> Result<u64, StoreError>;

    /// Deletes sessions that expired at or before `now`; returns how many.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on database failure.
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError>;
}

/// An authorization in progress: from `/authorize` through login, second factor and consent.
#[derive(Debug, Clone, PartialEq)]
pub struct Interaction {
    /// The SHA-256 of the interaction's identifier (carried in a cookie and in each form).
    pub handle: SecretHash,
    /// The handle of the pushed request it completes.
    pub request_handle: SecretHash,
    /// The client.
    pub client_id: ClientId,
    /// Progress, as JSON: the stage, the customer once identified, how they authenticated,
    /// failed attempts.
    pub state: Map<String, Value>,
    /// When it began.
    pub created_at: OffsetDateTime,
    /// When it is abandoned.
    pub expires_at: OffsetDateTime,
}

/// The interactions.
#[async_trait::async_trait]
pub trait InteractionStore: Send + Sync {
    /// Stores a new interaction.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if the handle is taken or the client is unknown.
    async fn add(&self, interaction: &Interaction) -> Result<(), StoreError>;

    /// The interaction with this handle if it has not expired at `now`.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is none or it expired.
    async fn find(
        &self,
        handle: &SecretHash,
        now: OffsetDateTime,
    ) -> Result<Interaction, StoreError>;

    /// Moves an interaction on: replaces its state with `state` only if its current state is
    /// still `expected` (compare-and-set, so two tabs or replicas cannot both advance it).
    /// Returns whether it changed.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such interaction.
    async fn advance(
        &self,
        handle: &SecretHash,
        expected: &Map<String, Value>,
        state: &Map<String, Value>,
    ) -> Result<bool, StoreError>;

    /// Ends an interaction; returns whether it existed (so exactly one of concurrent callers
    /// finishes it).
    ///
    /// # Errors
    /// [`StoreError::Backend`] on database failure.
    async fn remove(&self, handle: &SecretHash) -> Result<bool, StoreError>;

    /// Deletes interactions that expired at or before `now`; returns how many.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on database failure.
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError>;
}
