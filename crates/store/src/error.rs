//! Mapping sqlx errors onto [`StoreError`]: unique violations become conflicts, missing rows
//! `NotFound`, and everything else a backend error the server logs.

use portcullis_core::store::StoreError;

pub(crate) fn from_sqlx(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.constraint().unwrap_or("unique constraint").to_owned())
        }
        // A row another one refers to, or a reference to a row that is not there.
        // SQLite reports ON DELETE RESTRICT as a trigger constraint (extended code 1811), not as
        // a foreign-key violation.
        sqlx::Error::Database(db)
            if db.is_foreign_key_violation()
                || db.message().contains("FOREIGN KEY constraint failed") =>
        {
            StoreError::Conflict(db.constraint().unwrap_or("foreign key").to_owned())
        }
        other => StoreError::Backend(Box::new(other)),
    }
}

pub(crate) fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {detail}"))
}

/// Checks that a write touched exactly one row; zero means the row did not exist.
pub(crate) fn one_row(rows_affected: u64) -> Result<(), StoreError> {
    if rows_affected == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}
