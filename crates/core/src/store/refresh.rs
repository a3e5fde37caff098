//! Storage of refresh tokens: only the hash of the token, the grant it belongs to, and what a
//! refresh may give.
//!
//! Refresh tokens are revoked with their grant, by
//! [`RevocationStore::revoke_grant`](super::RevocationStore::revoke_grant), never here.

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::client::ClientId;
use crate::client::secret::SecretHash;

use super::StoreError;

/// A refresh token as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRefreshToken {
    /// The SHA-256 of the token.
    pub handle: SecretHash,
    /// The client it was issued to; no other client may use it (checklist #42).
    pub client_id: ClientId,
    /// The grant it belongs to: a revoked grant kills it.
    pub grant_id: String,
    /// What a refresh gives (subject, scopes, details, resources, authentication), as JSON.
    pub content: Map<String, Value>,
    /// When it was issued.
    pub created_at: OffsetDateTime,
    /// When it stops working.
    pub expires_at: OffsetDateTime,
    /// When it was replaced by a newer token (rotation, `oauth` clients only).
    pub rotated_at: Option<OffsetDateTime>,
    /// When it was revoked, with its grant, by
    /// [`RevocationStore::revoke_grant`](super::RevocationStore::revoke_grant).
    pub revoked_at: Option<OffsetDateTime>,
}

/// The refresh tokens.
#[async_trait::async_trait]
pub trait RefreshTokenStore: Send + Sync {
    /// Stores a new token.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if the handle is taken, or the client or grant is unknown.
    async fn add(&self, token: &StoredRefreshToken) -> Result<(), StoreError>;

    /// The token with this handle, whatever its state (the caller judges expiry, revocation and
    /// rotation).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is none.
    async fn find(&self, handle: &SecretHash) -> Result<StoredRefreshToken, StoreError>;

    /// Replaces `old` by `new`: marks `old` rotated at `now` and stores `new`, in one
    /// transaction, only if `old` was not rotated yet. Returns whether it did (of concurrent
    /// rotations of one token exactly one succeeds).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if `old` does not exist; [`StoreError::Conflict`] as for `add`.
    async fn rotate(
        &self,
        old: &SecretHash,
        new: &StoredRefreshToken,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Deletes tokens that expired at or before `now`; returns how many.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on database failure.
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError>;
}
