//! Storage of opaque access tokens (DESIGN.md, Tokens: for clients or resource servers that
//! ask for them): only the hash of the token, and what it stands for.
//!
//! They are revoked only through [`RevocationStore`](super::RevocationStore): one at a time by
//! [`deny_access_token`](super::RevocationStore::deny_access_token), or with their grant by
//! [`revoke_grant`](super::RevocationStore::revoke_grant), each moving the revocation epoch.

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
    /// When it was revoked, by
    /// [`RevocationStore::deny_access_token`](super::RevocationStore::deny_access_token) or, with
    /// its grant, [`RevocationStore::revoke_grant`](super::RevocationStore::revoke_grant).
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

    /// Deletes tokens that expired at or before `now`; returns how many.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on database failure.
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError>;
}
