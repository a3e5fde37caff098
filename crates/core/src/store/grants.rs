//! Storage of grants (the customer's consents, FAPI Grant Management) and of the authorization
//! codes issued under them.
//!
//! A grant is revoked only by
//! [`RevocationStore::revoke_grant`](super::RevocationStore::revoke_grant), which revokes its
//! tokens with it and moves the revocation epoch in the same transaction.

use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::client::ClientId;
use crate::client::secret::SecretHash;

use super::StoreError;

/// A consent: what a customer allowed a client, under a `grant_id` the client may later query,
/// extend or revoke.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    /// The grant's identifier (random, at least 128 bits).
    pub grant_id: String,
    /// The client it was given to.
    pub client_id: ClientId,
    /// The customer who gave it.
    pub subject: Uuid,
    /// What was granted: scopes, `authorization_details` (with the accounts chosen), claims and
    /// resources, as JSON.
    pub content: Map<String, Value>,
    /// When it was given.
    pub created_at: OffsetDateTime,
    /// When it last changed (merge, replace) or was used.
    pub updated_at: OffsetDateTime,
    /// When it lapses, if it does.
    pub expires_at: Option<OffsetDateTime>,
    /// When it was revoked, if it was, by
    /// [`RevocationStore::revoke_grant`](super::RevocationStore::revoke_grant).
    pub revoked_at: Option<OffsetDateTime>,
    /// When tokens were last issued under it (code redemption or refresh), to within a minute:
    /// see [`GrantStore::touch`]. `None` until the first use.
    pub last_used_at: Option<OffsetDateTime>,
}

impl Grant {
    /// Whether the consent still stands at `now`: not revoked and not lapsed. Every token
    /// issued under it lives only as long as this holds.
    #[must_use]
    pub fn stands(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }
}

/// The grants. Revoking one is not this store's job but
/// [`RevocationStore::revoke_grant`](super::RevocationStore::revoke_grant)'s.
#[async_trait::async_trait]
pub trait GrantStore: Send + Sync {
    /// Stores a new grant.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if the `grant_id` is taken or the client is unknown.
    async fn add(&self, grant: &Grant) -> Result<(), StoreError>;

    /// The grant with this identifier, revoked or not.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is none.
    async fn find(&self, grant_id: &str) -> Result<Grant, StoreError>;

    /// Replaces a grant's content, `updated_at` and `expires_at` (Grant Management merge or
    /// replace). A revoked grant is not changed.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such unrevoked grant.
    async fn update(&self, grant: &Grant) -> Result<(), StoreError>;

    /// A customer's grants, newest first (the consent page).
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    async fn list_for_subject(&self, subject: Uuid) -> Result<Vec<Grant>, StoreError>;

    /// Records that tokens were issued under a grant at `now`: sets `last_used_at` only when it
    /// is unset or more than [`LAST_USED_RESOLUTION_SECS`] before `now`, in one conditional
    /// write, so that frequent refreshes do not write every time. Returns whether it wrote; an
    /// unknown grant is not an error (nothing is written).
    ///
    /// # Errors
    /// [`StoreError::Backend`] on database failure.
    async fn touch(&self, grant_id: &str, now: OffsetDateTime) -> Result<bool, StoreError>;
}

/// How precisely [`Grant::last_used_at`] is kept, in seconds.
pub const LAST_USED_RESOLUTION_SECS: i64 = 60;

/// An authorization code as stored: only the hash of the code itself.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCode {
    /// The SHA-256 of the code.
    pub handle: SecretHash,
    /// The client it was issued to.
    pub client_id: ClientId,
    /// The grant it was issued under.
    pub grant_id: String,
    /// Everything the token endpoint checks and puts in tokens: redirect URI, PKCE challenge,
    /// DPoP key, scopes, details, resources, nonce, authentication time and methods, as JSON.
    pub content: Map<String, Value>,
    /// When it was issued.
    pub created_at: OffsetDateTime,
    /// When it stops being redeemable (SP 5.3.2.1-11: at most 60 s).
    pub expires_at: OffsetDateTime,
}

/// What redeeming a code found.
#[derive(Debug, Clone, PartialEq)]
pub enum Redemption {
    /// First redemption: the code, now used up.
    Redeemed(StoredCode),
    /// The code was redeemed before: a replay (checklist #1); the caller revokes its grant.
    Reused(StoredCode),
}

/// The authorization codes.
#[async_trait::async_trait]
pub trait CodeStore: Send + Sync {
    /// Stores a new code.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if the handle is taken, or the client or grant is unknown.
    async fn add(&self, code: &StoredCode) -> Result<(), StoreError>;

    /// The code with this handle, used or not, without using it up: the token endpoint checks
    /// everything about a code before it redeems it, so that the one request that redeems it
    /// also gets the tokens.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such code.
    async fn find(&self, handle: &SecretHash) -> Result<StoredCode, StoreError>;

    /// Uses a code up, at `now`. Atomic: of concurrent calls with one handle exactly one gets
    /// [`Redemption::Redeemed`]; the others, and every later call, get [`Redemption::Reused`].
    /// Expiry is the caller's to check on the returned code.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such code.
    async fn redeem(
        &self,
        handle: &SecretHash,
        now: OffsetDateTime,
    ) -> Result<Redemption, StoreError>;

    /// Deletes codes that expired before `now`; returns how many.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on database failure.
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError>;
}
