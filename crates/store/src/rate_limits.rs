//! What the PostgreSQL and SQLite rate-limit stores share: the order in which a request's
//! buckets are visited, and the all-or-nothing bookkeeping of [`portcullis_core::ratelimit`].
//!
//! Order: the buckets that spend, by key (so that two transactions lock rows in one order and
//! cannot deadlock), then the ones only probed. With at most one spending bucket no transaction
//! is needed: the probes are read first, and the one conditional upsert runs only when they all
//! allowed, so a refused request still writes nothing.

use portcullis_core::ratelimit::{Cell, CellState};
use portcullis_core::store::StoreError;

/// The cells' indices in visiting order.
pub(crate) fn order(cells: &[Cell]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..cells.len()).collect();
    order.sort_by_key(|&i| cells.get(i).map(|c| (!c.spend, c.key.as_str())));
    order
}

/// Whether the cells need a transaction: more than one of them spends.
pub(crate) fn needs_transaction(cells: &[Cell]) -> bool {
    cells.iter().filter(|c| c.spend).count() > 1
}

/// The states in the cells' order, from each cell's state and whether it was written. When
/// `all` is false, the spends that were written and rolled back are reported as not made, as
/// [`portcullis_core::ratelimit::check_all`] does.
pub(crate) fn finish(
    cells: &[Cell],
    states: Vec<Option<(CellState, bool)>>,
    all: bool,
) -> Result<Vec<CellState>, StoreError> {
    cells
        .iter()
        .zip(states)
        .map(|(cell, state)| {
            let (mut state, written) = state.ok_or_else(|| {
                StoreError::Corrupt("rate_limits: a bucket was not checked".into())
            })?;
            if !all && written {
                state.tat_us = state.tat_us.saturating_sub(cell.emission_us);
            }
            Ok(state)
        })
        .collect()
}
