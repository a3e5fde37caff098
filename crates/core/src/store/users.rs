//! Storage of customer accounts.

use uuid::Uuid;

use crate::user::{User, Username};

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
}
