//! Storage of customer accounts.

use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::user::{PasswordHash, User, Username};

use super::StoreError;

/// The customer accounts.
#[async_trait::async_trait]
pub trait UserStore: Send + Sync {
    /// Adds a user.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if the id or username is taken.
    async fn add(&self, user: &User) -> Result<(), StoreError>;

    /// The user with this id.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is none.
    async fn find_by_id(&self, id: Uuid) -> Result<User, StoreError>;

    /// The user with this (normalised) username.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is none.
    async fn find_by_username(&self, username: &Username) -> Result<User, StoreError>;

    /// Up to `limit` users ordered by username, starting after `after`.
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    async fn list(&self, after: Option<&Username>, limit: u32) -> Result<Vec<User>, StoreError>;

    /// Replaces the password hash (a password change, or a rehash with new parameters).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such user.
    async fn set_password_hash(&self, id: Uuid, hash: &PasswordHash) -> Result<(), StoreError>;

    /// Replaces the claims.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such user.
    async fn set_claims(&self, id: Uuid, claims: &Map<String, Value>) -> Result<(), StoreError>;

    /// Enrols (or, with `None`, removes) the encrypted TOTP secret and forgets the last used step.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such user.
    async fn set_totp_secret(&self, id: Uuid, encrypted: Option<&[u8]>) -> Result<(), StoreError>;

    /// Records TOTP `step` as used if it is later than the last used one. Of concurrent calls
    /// with the same step exactly one gets `true`: a code works once.
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    async fn use_totp_step(&self, id: Uuid, step: i64) -> Result<bool, StoreError>;

    /// Deletes the user: only to undo a creation that could not be recorded in the security-event
    /// trail. Accounts are otherwise disabled, never deleted.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such user.
    async fn remove(&self, id: Uuid) -> Result<(), StoreError>;

    /// Disables the account from `at`, or re-enables it with `None`.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such user.
    async fn set_disabled(&self, id: Uuid, at: Option<OffsetDateTime>) -> Result<(), StoreError>;
}
