//! Rate-limit buckets on SQLite (see `portcullis_core::store::RateLimitStore`): a spending
//! check is one `INSERT … ON CONFLICT DO UPDATE … WHERE allowed … RETURNING tat_us`, doing the
//! GCRA step in SQL (SQLite serialises writers, so the step is atomic). No row back means
//! refused: the bucket is then read for its retry time, and nothing is written. Several spending
//! buckets share a transaction that is rolled back when one refuses. Refunds go first, each one
//! atomic `UPDATE`, and are kept whatever the rest says.
//!
//! Order: the buckets that spend, by key (so that two transactions lock in one order), then the
//! ones only probed. With at most one spending bucket no transaction is needed: the probes are
//! read first, and the one conditional upsert runs only when they all allowed, so a refused
//! request still writes nothing.

use portcullis_core::ratelimit::{Cell, CellState, Op};
use portcullis_core::store::{RateLimitStore, StoreError};
use sqlx::{SqliteConnection, SqlitePool};

use crate::error::from_sqlx;

#[derive(Debug, Clone)]
pub(crate) struct SqliteRateLimits(pub(crate) SqlitePool);

/// `?1` key, `?2` now, `?3` T, `?4` τ. A new bucket starts full, so its first request is allowed
/// (T ≤ τ always holds).
const SPEND: &str = r#"INSERT INTO rate_limits (key, tat_us) VALUES (?1, ?2 + ?3)
   ON CONFLICT (key) DO UPDATE SET tat_us = max(rate_limits.tat_us, ?2) + ?3
   WHERE max(rate_limits.tat_us, ?2) + ?3 - ?2 <= ?4
   RETURNING tat_us"#;

const READ: &str = "SELECT tat_us FROM rate_limits WHERE key = ?1";

/// `?1` key, `?2` now, `?3` T: one token back, never fuller than full.
const REFUND: &str = r#"UPDATE rate_limits SET tat_us = max(max(tat_us, ?2) - ?3, ?2)
   WHERE key = ?1 RETURNING tat_us"#;

/// The cells' indices in visiting order.
fn order(cells: &[Cell]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..cells.len()).collect();
    order.sort_by_key(|&i| cells.get(i).map(|c| (c.op != Op::Spend, c.key.as_str())));
    order
}

/// Whether the cells need a transaction: more than one of them spends.
fn needs_transaction(cells: &[Cell]) -> bool {
    cells.iter().filter(|c| c.op == Op::Spend).count() > 1
}

/// The states in the cells' order, from each cell's state and whether it was spent. When `all`
/// is false, the spends that were written and rolled back are reported as not made, as
/// [`portcullis_core::ratelimit::check_all`] does.
fn finish(
    cells: &[Cell],
    states: Vec<Option<(CellState, bool)>>,
    all: bool,
) -> Result<Vec<CellState>, StoreError> {
    cells
        .iter()
        .zip(states)
        .map(|(cell, state)| {
            let (mut state, spent) = state.ok_or_else(|| {
                StoreError::Corrupt("rate_limits: a bucket was not checked".into())
            })?;
            if !all && spent {
                state.tat_us = state.tat_us.saturating_sub(cell.emission_us);
            }
            Ok(state)
        })
        .collect()
}

async fn refund(pool: &SqlitePool, cell: &Cell, now_us: i64) -> Result<CellState, StoreError> {
    let tat: Option<i64> = sqlx::query_scalar(REFUND)
        .bind(&cell.key)
        .bind(now_us)
        .bind(cell.emission_us)
        .fetch_optional(pool)
        .await
        .map_err(from_sqlx)?;
    Ok(CellState {
        allowed: true,
        tat_us: tat.map_or(now_us, |t| t.max(now_us)),
    })
}

async fn read(
    conn: &mut SqliteConnection,
    cell: &Cell,
    now_us: i64,
) -> Result<CellState, StoreError> {
    let tat: Option<i64> = sqlx::query_scalar(READ)
        .bind(&cell.key)
        .fetch_optional(conn)
        .await
        .map_err(from_sqlx)?;
    // A probe never writes; a refused spend reads the bucket as it stands.
    Ok(cell.with_op(Op::Probe).decide(tat, now_us))
}

async fn spend(
    conn: &mut SqliteConnection,
    cell: &Cell,
    now_us: i64,
) -> Result<CellState, StoreError> {
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

/// Visits the cells in `order` (the refunds are already in `states`): probes are read, spends
/// are tried until one refuses; after a refusal the rest are only read. Returns the states by
/// cell, each with whether it was spent, and whether all allowed.
async fn visit(
    conn: &mut SqliteConnection,
    cells: &[Cell],
    mut states: Vec<Option<(CellState, bool)>>,
    now_us: i64,
) -> Result<(Vec<Option<(CellState, bool)>>, bool), StoreError> {
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
        if cell.op == Op::Refund {
            continue;
        }
        let (state, written) = if cell.op == Op::Spend && all {
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
impl RateLimitStore for SqliteRateLimits {
    async fn check(&self, cells: &[Cell], now_us: i64) -> Result<Vec<CellState>, StoreError> {
        let mut states: Vec<Option<(CellState, bool)>> = vec![None; cells.len()];
        for (cell, slot) in cells.iter().zip(states.iter_mut()) {
            if cell.op == Op::Refund {
                *slot = Some((refund(&self.0, cell, now_us).await?, false));
            }
        }
        if needs_transaction(cells) {
            let mut tx = self.0.begin().await.map_err(from_sqlx)?;
            let (states, all) = visit(&mut tx, cells, states, now_us).await?;
            if all {
                tx.commit().await.map_err(from_sqlx)?;
            } else {
                tx.rollback().await.map_err(from_sqlx)?;
            }
            finish(cells, states, all)
        } else {
            let mut conn = self.0.acquire().await.map_err(from_sqlx)?;
            let (states, all) = visit(&mut conn, cells, states, now_us).await?;
            finish(cells, states, all)
        }
    }

    async fn purge_idle(&self, now_us: i64) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM rate_limits WHERE tat_us <= ?1")
            .bind(now_us)
            .execute(&self.0)
            .await
            .map(|done| done.rows_affected())
            .map_err(from_sqlx)
    }
}
