//! Rate-limit buckets on PostgreSQL (see `portcullis_core::store::RateLimitStore`): a spending
//! check is one `INSERT … ON CONFLICT DO UPDATE … WHERE allowed … RETURNING tat_us`, doing the
//! GCRA step in SQL under the row's lock. No row back means refused: the bucket is then read for
//! its retry time, and nothing is written. Several spending buckets share a transaction that is
//! rolled back when one refuses.

use portcullis_core::ratelimit::{Cell, CellState};
use portcullis_core::store::{RateLimitStore, StoreError};
use sqlx::{PgConnection, PgPool};

use crate::error::from_sqlx;
use crate::rate_limits::{finish, needs_transaction, order};

#[derive(Debug, Clone)]
pub(crate) struct PgRateLimits(pub(crate) PgPool);

/// `$1` key, `$2` now, `$3` T, `$4` τ. A new bucket starts full, so its first request is allowed
/// (T ≤ τ always holds).
const SPEND: &str = r#"INSERT INTO rate_limits (key, tat_us) VALUES ($1, $2 + $3)
   ON CONFLICT (key) DO UPDATE SET tat_us = GREATEST(rate_limits.tat_us, $2) + $3
   WHERE GREATEST(rate_limits.tat_us, $2) + $3 - $2 <= $4
   RETURNING tat_us"#;

const READ: &str = "SELECT tat_us FROM rate_limits WHERE key = $1";

async fn read(conn: &mut PgConnection, cell: &Cell, now_us: i64) -> Result<CellState, StoreError> {
    let tat: Option<i64> = sqlx::query_scalar(READ)
        .bind(&cell.key)
        .fetch_optional(conn)
        .await
        .map_err(from_sqlx)?;
    // A probe never writes; a refused spend reads the bucket as it stands.
    Ok(Cell {
        spend: false,
        ..cell.clone()
    }
    .decide(tat, now_us))
}

async fn spend(conn: &mut PgConnection, cell: &Cell, now_us: i64) -> Result<CellState, StoreError> {
    let tat: Option<i64> = sqlx::query_scalar(SPEND)
        .bind(&cell.key)
        .bind(now_us)
        .bind(cell.emission_us)
        .bind(cell.tolerance_us)
        .fetch_optional(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    match tat {
        Some(tat_us) => Ok(CellState {
            allowed: true,
            tat_us,
        }),
        None => {
            let mut state = read(conn, cell, now_us).await?;
            state.allowed = false;
            Ok(state)
        }
    }
}

/// Visits the cells in `order`: probes are read, spends are tried until one refuses; after a
/// refusal the rest are only read. Returns the states by cell, each with whether it was written,
/// and whether all allowed.
async fn visit(
    conn: &mut PgConnection,
    cells: &[Cell],
    now_us: i64,
) -> Result<(Vec<Option<(CellState, bool)>>, bool), StoreError> {
    let mut states: Vec<Option<(CellState, bool)>> = vec![None; cells.len()];
    let mut all = true;
    // Without a transaction the probes go first, so that a refusing probe stops the one spend.
    let mut visiting = order(cells);
    if !needs_transaction(cells) {
        visiting.reverse();
    }
    for index in visiting {
        let Some(cell) = cells.get(index) else {
            continue;
        };
        let (state, written) = if cell.spend && all {
            let state = spend(conn, cell, now_us).await?;
            (state, state.allowed)
        } else {
            (read(conn, cell, now_us).await?, false)
        };
        all &= state.allowed;
        if let Some(slot) = states.get_mut(index) {
            *slot = Some((state, written));
        }
    }
    Ok((states, all))
}

#[async_trait::async_trait]
impl RateLimitStore for PgRateLimits {
    async fn check(&self, cells: &[Cell], now_us: i64) -> Result<Vec<CellState>, StoreError> {
        if needs_transaction(cells) {
            let mut tx = self.0.begin().await.map_err(from_sqlx)?;
            let (states, all) = visit(&mut tx, cells, now_us).await?;
            if all {
                tx.commit().await.map_err(from_sqlx)?;
            } else {
                tx.rollback().await.map_err(from_sqlx)?;
            }
            finish(cells, states, all)
        } else {
            let mut conn = self.0.acquire().await.map_err(from_sqlx)?;
            let (states, all) = visit(&mut conn, cells, now_us).await?;
            finish(cells, states, all)
        }
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
