//! Revocation: the one place where a live token or grant dies, the revocation epoch every
//! replica's caches are checked against, the `jti` deny list of access tokens, and the durable
//! feed of Security Event Tokens (RFC 8417) the resource servers poll (RFC 8936).
//!
//! Every revoking call does all of its work in one transaction: it marks what it revokes, bumps
//! the epoch, and enqueues the event for its recipients. So a revocation is either wholly seen
//! (by introspection, userinfo, refresh and the feed, on every replica) or not at all, and an
//! event is never lost to a crash between the revocation and its announcement.
//!
//! The epoch is a single counter row: a revoking transaction increments it under its row lock,
//! so epochs are committed in increasing order. A replica that caches an answer remembers the
//! epoch it read *before* reading the store; a later request that reads a different epoch does
//! not trust the cached answer.

use time::OffsetDateTime;

use crate::client::ClientId;
use crate::client::secret::SecretHash;

use super::StoreError;

/// A Security Event Token to enqueue with a revocation.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFeedEvent {
    /// The SET's `jti`: unique, and what recipients acknowledge.
    pub jti: String,
    /// What happened, short (`grant-revoked`, `token-revoked`): for the operator's listing.
    pub kind: String,
    /// The grant concerned, if any.
    pub grant_id: Option<String>,
    /// The revoked access token's `jti`, if the event is about one.
    pub token_jti: Option<String>,
    /// The signed SET, compact JWS.
    pub set: String,
    /// The resource-server clients that receive it.
    pub recipients: Vec<ClientId>,
    /// When it was made.
    pub created_at: OffsetDateTime,
}

/// An event in the feed.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEvent {
    /// Its position in the feed (increasing; gaps possible).
    pub seq: i64,
    /// The SET's `jti`.
    pub jti: String,
    /// What happened.
    pub kind: String,
    /// The grant concerned, if any.
    pub grant_id: Option<String>,
    /// The revoked access token's `jti`, if any.
    pub token_jti: Option<String>,
    /// The signed SET.
    pub set: String,
    /// When it was made.
    pub created_at: OffsetDateTime,
    /// How many recipients have not acknowledged it yet.
    pub pending: i64,
}

/// What a poll found for one recipient.
#[derive(Debug, Clone, PartialEq)]
pub struct Poll {
    /// Its unacknowledged events, oldest first.
    pub events: Vec<FeedEvent>,
    /// Whether more are waiting beyond the ones returned.
    pub more: bool,
}

/// Revocations, the deny list and the event feed.
#[async_trait::async_trait]
pub trait RevocationStore: Send + Sync {
    /// The current revocation epoch: it changes whenever anything that was live is revoked.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on database failure.
    async fn epoch(&self) -> Result<i64, StoreError>;

    /// Bumps the epoch without revoking anything here: for changes elsewhere that end tokens
    /// (a client or user removed or disabled). Returns the new epoch.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on database failure.
    async fn bump(&self) -> Result<i64, StoreError>;

    /// Revokes a grant at `now` with every refresh token and opaque access token issued under
    /// it, bumps the epoch and enqueues `event`, in one transaction. Returns whether this call
    /// revoked the grant: when it was revoked already, nothing changes and no event is queued.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such grant; [`StoreError::Conflict`] if the
    /// event's `jti` is taken.
    async fn revoke_grant(
        &self,
        grant_id: &str,
        now: OffsetDateTime,
        event: &NewFeedEvent,
    ) -> Result<bool, StoreError>;

    /// Puts an access token's `jti` on the deny list until `expires_at`, revokes its stored row
    /// when it is opaque (`handle`), bumps the epoch and enqueues `event`, in one transaction.
    /// Returns whether this call denied it: when it was denied already, nothing changes and no
    /// event is queued.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if the event's `jti` is taken.
    async fn deny_access_token(
        &self,
        jti: &str,
        handle: Option<&SecretHash>,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
        event: &NewFeedEvent,
    ) -> Result<bool, StoreError>;

    /// Whether an access token's `jti` is on the deny list (expired entries may linger until
    /// purged; the token's own `exp` has ended it by then).
    ///
    /// # Errors
    /// [`StoreError::Backend`] on database failure.
    async fn is_denied(&self, jti: &str) -> Result<bool, StoreError>;

    /// Up to `max` of a recipient's unacknowledged events, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on database failure.
    async fn poll(&self, recipient: &ClientId, max: u32) -> Result<Poll, StoreError>;

    /// Acknowledges events for a recipient; unknown or already acknowledged `jti`s are ignored.
    /// Returns how many were acknowledged by this call.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on database failure.
    async fn acknowledge(&self, recipient: &ClientId, jtis: &[String]) -> Result<u64, StoreError>;

    /// The highest `seq` in the feed (0 when empty): a cheap change check for long polls.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on database failure.
    async fn latest_seq(&self) -> Result<i64, StoreError>;

    /// Up to `limit` events after `after_seq`, oldest first, acknowledged or not (the
    /// operator's view).
    ///
    /// # Errors
    /// [`StoreError::Backend`] on database failure.
    async fn list(&self, after_seq: i64, limit: u32) -> Result<Vec<FeedEvent>, StoreError>;

    /// Removes deny-list entries that expired before `now`, deliveries nobody acknowledged
    /// before `undelivered_before`, and events that every recipient has acknowledged (or has no
    /// recipient) and were made before `acknowledged_before`. Returns how many rows went. Safe
    /// to run on every replica at once.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on database failure.
    async fn purge(
        &self,
        now: OffsetDateTime,
        acknowledged_before: OffsetDateTime,
        undelivered_before: OffsetDateTime,
    ) -> Result<u64, StoreError>;
}
