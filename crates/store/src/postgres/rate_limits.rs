//! Rate-limit buckets on PostgreSQL (see `portcullis_core::store::RateLimitStore`): every bucket
//! of a request in one round trip, through the `rate_limit_check` function (migration 18), which
//! does the GCRA step of [`portcullis_core::ratelimit`] in one statement: the rows that may change
//! are locked in key order, the spends are written only when every bucket allows, and refunds
//! are written either way.

use portcullis_core::ratelimit::{Cell, CellState};
use portcullis_core::store::{RateLimitStore, StoreError};
use sqlx::PgPool;

use crate::error::from_sqlx;

#[derive(Debug, Clone)]
pub(crate) struct PgRateLimits(pub(crate) PgPool);

const CHECK: &str = "SELECT allowed, tat_us FROM rate_limit_check($1, $2, $3, $4, $5)";

#[async_trait::async_trait]
impl RateLimitStore for PgRateLimits {
    async fn check(&self, cells: &[Cell], now_us: i64) -> Result<Vec<CellState>, StoreError> {
        if cells.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<&str> = cells.iter().map(|c| c.key.as_str()).collect();
        let emission: Vec<i64> = cells.iter().map(|c| c.emission_us).collect();
        let tolerance: Vec<i64> = cells.iter().map(|c| c.tolerance_us).collect();
        let ops: Vec<i16> = cells.iter().map(|c| c.op.code()).collect();
        let rows: Vec<(bool, i64)> = sqlx::query_as(CHECK)
            .bind(&keys)
            .bind(&emission)
            .bind(&tolerance)
            .bind(&ops)
            .bind(now_us)
            .fetch_all(&self.0)
            .await
            .map_err(from_sqlx)?;
        if rows.len() != cells.len() {
            return Err(StoreError::Corrupt(format!(
                "rate_limit_check answered {} rows for {} buckets",
                rows.len(),
                cells.len()
            )));
        }
        Ok(rows
            .into_iter()
            .map(|(allowed, tat_us)| CellState { allowed, tat_us })
            .collect())
    }

    async fn purge_idle(&self, now_us: i64) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM rate_limits WHERE tat_us <= $1")
            .bind(now_us)
            .execute(&self.0)
            .await
            .map(|done| done.rows_affected())
            .map_err(from_sqlx)
    }
}
