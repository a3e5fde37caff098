//! Storage of the login throttle's counters ([`crate::login_throttle`]), shared by every replica.
//! A counter changes by compare-and-set on its version: the server reads it, applies the policy,
//! and writes the result only if nobody wrote in between (else it reads again), so concurrent
//! attempts on one key are each counted once and each decided on the state the previous one
//! left. Keys are HMACs: the table holds no username or address in clear.

use time::OffsetDateTime;

use crate::login_throttle::{ThrottleKey, ThrottleState};

use super::StoreError;

/// A counter as stored, with the version its next write must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredThrottle {
    /// The counter.
    pub state: ThrottleState,
    /// Increases with every write.
    pub version: i64,
}

/// The login throttle's counters.
#[async_trait::async_trait]
pub trait LoginThrottleStore: Send + Sync {
    /// The counter of `key`, if it has a row (expired rows included: the policy reads their
    /// times, and housekeeping deletes them).
    ///
    /// # Errors
    /// [`StoreError::Backend`] on database failure (the caller then refuses: fail closed);
    /// [`StoreError::Corrupt`] for a row that does not read back.
    async fn find(&self, key: &ThrottleKey) -> Result<Option<StoredThrottle>, StoreError>;

    /// Writes `state` as the counter of `key`, kept until `expires_at`, if the row is still at
    /// `expected` (its version; `None`: there is no row). `false`, and nothing written, when
    /// another write came first.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on database failure.
    async fn put(
        &self,
        key: &ThrottleKey,
        expected: Option<i64>,
        state: &ThrottleState,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Deletes the counters that expired by `now`; returns how many.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on database failure.
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError>;
}
