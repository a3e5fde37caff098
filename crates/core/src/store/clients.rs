//! Storage of the client registry.

use crate::client::{Client, ClientId};

use super::StoreError;

/// The registered clients.
#[async_trait::async_trait]
pub trait ClientStore: Send + Sync {
    /// Registers a client.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if the `client_id` is taken.
    async fn add(&self, client: &Client) -> Result<(), StoreError>;

    /// The client with this identifier.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is none.
    async fn find_by_id(&self, client_id: &ClientId) -> Result<Client, StoreError>;

    /// Up to `limit` clients ordered by `client_id`, starting after `after` (keyset pagination).
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    async fn list(&self, after: Option<&ClientId>, limit: u32) -> Result<Vec<Client>, StoreError>;

    /// Replaces the profile and metadata of an existing client and sets `updated_at`.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such client.
    async fn update(&self, client: &Client) -> Result<(), StoreError>;

    /// Deletes a client.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such client.
    async fn remove(&self, client_id: &ClientId) -> Result<(), StoreError>;
}
