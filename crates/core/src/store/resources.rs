//! Storage of the resource-server registry.

use crate::client::ClientId;
use crate::resource::ResourceServer;

use super::StoreError;

/// The registered resource servers.
#[async_trait::async_trait]
pub trait ResourceServerStore: Send + Sync {
    /// Registers a resource server.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if the identifier is taken or the client already stands for
    /// another resource server; [`StoreError::NotFound`] if the client does not exist.
    async fn add(&self, server: &ResourceServer) -> Result<(), StoreError>;

    /// The resource server with this identifier.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is none.
    async fn find(&self, resource: &str) -> Result<ResourceServer, StoreError>;

    /// The resource server that authenticates as this client.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is none.
    async fn find_by_client(&self, client_id: &ClientId) -> Result<ResourceServer, StoreError>;

    /// Up to `limit` resource servers ordered by identifier, starting after `after`.
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    async fn list(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ResourceServer>, StoreError>;

    /// Replaces the metadata and client of an existing resource server.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is none; [`StoreError::Conflict`] as for `add`.
    async fn update(&self, server: &ResourceServer) -> Result<(), StoreError>;

    /// Deletes a resource server.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is none.
    async fn remove(&self, resource: &str) -> Result<(), StoreError>;
}
