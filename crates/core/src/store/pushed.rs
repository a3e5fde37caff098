//! Storage of pushed authorization requests (RFC 9126): what a client pushed to `/par`, kept
//! under the hash of the `request_uri` handed back, until the authorization completes or the
//! request expires.

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::client::ClientId;
use crate::client::secret::SecretHash;

use super::StoreError;

/// A pushed authorization request as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct PushedRequest {
    /// The SHA-256 of the random part of its `request_uri`: the `request_uri` itself is never
    /// stored.
    pub handle: SecretHash,
    /// The client that pushed it; only that client may use it (RFC 9126 §4).
    pub client_id: ClientId,
    /// The validated authorization request, as JSON.
    pub parameters: Map<String, Value>,
    /// When it was pushed.
    pub created_at: OffsetDateTime,
    /// When it stops being usable (RFC 9126 §2.2 `expires_in`).
    pub expires_at: OffsetDateTime,
}

/// The pushed authorization requests.
#[async_trait::async_trait]
pub trait PushedRequestStore: Send + Sync {
    /// Stores a pushed request.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if the handle is taken.
    async fn add(&self, request: &PushedRequest) -> Result<(), StoreError>;

    /// The request with this handle, if it has not expired at `now` (a page load of the
    /// authorization endpoint reads it without using it up).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is none, or it expired.
    async fn find(
        &self,
        handle: &SecretHash,
        now: OffsetDateTime,
    ) -> Result<PushedRequest, StoreError>;

    /// Uses the request up: deletes it and returns it, if it has not expired at `now`. Atomic:
    /// of concurrent calls with one handle, exactly one gets the request (RFC 9126 §7.3).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is none, it expired, or another call consumed it.
    async fn consume(
        &self,
        handle: &SecretHash,
        now: OffsetDateTime,
    ) -> Result<PushedRequest, StoreError>;

    /// Deletes the requests that expired before `now`; returns how many.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on database failure.
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError>;
}
