//! Storage of the server's signing keys.

use crate::keys::StoredSigningKey;

use super::StoreError;

/// The signing keys. Rows are immutable once written: lifecycle follows from their timestamps.
#[async_trait::async_trait]
pub trait SigningKeyStore: Send + Sync {
    /// Adds a key.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if the `kid` exists.
    async fn add(&self, key: &StoredSigningKey) -> Result<(), StoreError>;

    /// Every key, ordered by `activates_at` then `kid`.
    ///
    /// # Errors
    /// [`StoreError`] on database failure or an unreadable row.
    async fn list(&self) -> Result<Vec<StoredSigningKey>, StoreError>;

    /// Deletes a key that is no longer published or used.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such key.
    async fn remove(&self, kid: &str) -> Result<(), StoreError>;
}
