//! Storage of opaque access tokens (DESIGN.md, Tokens: for clients or resource servers that
//! ask for them): only the hash of the token, and what it stands for.

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::client::ClientId;
use crate::client::secret::SecretHash;

use super::StoreError;

/// An opaque access token as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAccessToken {
    /// The SHA-256 of the token.
    pub handle: SecretHash,
    /// The client it was issued to.
    pub client_id: ClientId,
    /// The grant it belongs to, if any (`client_credentials` tokens have none).
    pub grant_id: Option<String>,
    /// Its claims, as a JWT access token would carry them (RFC 9068 §2.2, with `cnf`).
    pub claims: Map<String, Value>,
    /// When it was issued.
    pub created_at: OffsetDateTime,
    /// When it stops working.
    pub expires_at: OffsetDateTime,
    /// When it was revoked.
    pub revoked_at: Option<OffsetDateTime>,
}

/// The opaque access tokens.
#[async_trait::async_trait]
pub trait AccessTokenStore: Send + Sync {
    /// Stores a new token.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if the handle is taken, or the client (or grant, when given) is
    /// unknown.
    async fn add(&self, token: &StoredAccessToken) -> Result<(), StoreError>;

    /// The token with this handle, whatever its state (the caller judges expiry and revocation).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is none.
    async fn find(&self, handle: &SecretHash) -> Result<StoredAccessToken, StoreError>;

    /// Revokes one token at `now`; returns whether this call revoked it.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such token.
    async fn revoke(&self, handle: &SecretHash, now: OffsetDateTime) -> Result<bool, StoreError>;

    /// Revokes every unrevoked token of a grant at `now`; returns how many.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on database failure.
    async fn revoke_for_grant(
        &self,
        grant_id: &str,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError>;

    /// Deletes tokens that expired at or before `now`; returns how many.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on database failure.
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError>;
}
