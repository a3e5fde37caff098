//! Rate-limit buckets in the database, shared by every replica (`[rate_limits] backend =
//! "database"`): one row per bucket holding its theoretical arrival time, checked and advanced by
//! one atomic `INSERT … ON CONFLICT DO UPDATE … WHERE allowed … RETURNING` per bucket that
//! spends, which does the GCRA arithmetic of [`crate::ratelimit`] in SQL. Several buckets of one
//! request are checked in one transaction, rolled back when any refuses, so that a refused request
//! spends nothing.

use crate::ratelimit::{Cell, CellState};

use super::StoreError;

/// The rate-limit buckets.
#[async_trait::async_trait]
pub trait RateLimitStore: Send + Sync {
    /// Checks `cells` at `now_us` (microseconds since the Unix epoch), all or nothing: when every
    /// cell allows, the spending ones advance; when one refuses, no bucket changes. Returns each
    /// cell's state in the order given, as [`crate::ratelimit::check_all`] would.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on database failure.
    async fn check(&self, cells: &[Cell], now_us: i64) -> Result<Vec<CellState>, StoreError>;

    /// Deletes the buckets that are full again at `now_us` (their TAT has passed): they mean the
    /// same as no bucket. Returns how many.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on database failure.
    async fn purge_idle(&self, now_us: i64) -> Result<u64, StoreError>;
}
