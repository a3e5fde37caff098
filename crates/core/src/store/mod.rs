//! The storage traits, one per aggregate. `portcullis-store` implements them for Postgres and
//! SQLite, and one conformance suite runs the same test bodies against both.
//!
//! Rules every implementation keeps:
//! - single-use things are enforced by the database (a UNIQUE constraint, or a conditional
//!   `UPDATE … WHERE consumed_at IS NULL` checked by rows affected), never by read-then-write, so
//!   that several replicas on one database stay correct;
//! - a duplicate key is [`StoreError::Conflict`], a missing row [`StoreError::NotFound`], and
//!   every other database failure [`StoreError::Backend`], which the server logs and answers with
//!   `server_error`.
//!
//! New aggregates (PAR requests, codes, grants, tokens, replay cache, audit) slot in as further
//! traits reached from [`Store`] in the same way.

mod clients;
mod events;
mod grants;
mod keys;
mod login_throttle;
mod pushed;
mod rate_limits;
mod refresh;
mod replay;
mod resources;
mod revocations;
mod sessions;
mod tokens;
mod users;

use std::fmt;

pub use clients::ClientStore;
pub use events::{ChainInfo, EventFilter, SecurityEventStore, Unchained};
pub use grants::{CodeStore, Grant, GrantStore, LAST_USED_RESOLUTION_SECS, Redemption, StoredCode};
pub use keys::SigningKeyStore;
pub use login_throttle::{LoginThrottleStore, StoredThrottle};
pub use pushed::{PushedRequest, PushedRequestStore};
pub use rate_limits::RateLimitStore;
pub use refresh::{RefreshTokenStore, StoredRefreshToken};
pub use replay::{FirstUse, ReplayKey, ReplayKind, ReplayStore};
pub use resources::ResourceServerStore;
pub use revocations::{FeedEvent, NewFeedEvent, Poll, RevocationStore};
pub use sessions::{Interaction, InteractionStore, Session, SessionStore};
pub use tokens::{AccessTokenStore, StoredAccessToken};
pub use users::UserStore;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL, for production and several replicas.
    Postgres,
    /// SQLite, the embedded single-node default.
    Sqlite,
}

impl Backend {
    /// The lower-case name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No row matched.
    #[error("not found")]
    NotFound,
    /// A unique constraint refused the write: the thing exists or was already used.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A stored row could not be read back into its domain type.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The database failed.
    #[error("database error")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The whole store: one handle per aggregate, and a health check.
#[async_trait::async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// Which database this is.
    fn backend(&self) -> Backend;

    /// Checks that the database answers a trivial query.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when it does not.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The signing keys.
    fn signing_keys(&self) -> &dyn SigningKeyStore;

    /// The client registry.
    fn clients(&self) -> &dyn ClientStore;

    /// The customer accounts.
    fn users(&self) -> &dyn UserStore;

    /// The resource-server registry.
    fn resource_servers(&self) -> &dyn ResourceServerStore;

    /// The replay cache of single-use identifiers.
    fn replay(&self) -> &dyn ReplayStore;

    /// The append-only security-event trail.
    fn events(&self) -> &dyn SecurityEventStore;

    /// Pushed authorization requests (RFC 9126).
    fn pushed_requests(&self) -> &dyn PushedRequestStore;

    /// Grants: the customers' consents.
    fn grants(&self) -> &dyn GrantStore;

    /// Authorization codes.
    fn codes(&self) -> &dyn CodeStore;

    /// The customers' browser sessions.
    fn sessions(&self) -> &dyn SessionStore;

    /// Authorizations in progress.
    fn interactions(&self) -> &dyn InteractionStore;

    /// Refresh tokens.
    fn refresh_tokens(&self) -> &dyn RefreshTokenStore;

    /// Opaque access tokens.
    fn access_tokens(&self) -> &dyn AccessTokenStore;

    /// Revocations, the access-token deny list and the revocation event feed.
    fn revocations(&self) -> &dyn RevocationStore;

    /// The login throttle's counters (brute-force protection of the customer's login).
    fn login_throttle(&self) -> &dyn LoginThrottleStore;

    /// Rate-limit buckets shared by the replicas (`[rate_limits] backend = "database"`).
    fn rate_limits(&self) -> &dyn RateLimitStore;
}
