//! Refresh tokens on SQLite. Rotating one is a transaction whose first statement is
//! `UPDATE … SET rotated_at WHERE rotated_at IS NULL`, so that it takes the write lock before it
//! reads anything, and then stores the new token; SQLite serialises writers, so of concurrent
//! rotations of one token exactly one finds it unrotated (if it rolls back instead, the next
//! writer gets the unrotated row). Revoking works the same way, per grant.

use portcullis_core::client::secret::SecretHash;
use portcullis_core::store::{RefreshTokenStore, StoreError, StoredRefreshToken};
use sqlx::query::Query;
use sqlx::sqlite::SqliteArguments;
use sqlx::{Sqlite, SqlitePool};
use time::OffsetDateTime;

use super::{from_micros, json, to_json, to_micros};
use crate::convert;
use crate::error::from_sqlx;

#[derive(Debug, Clone)]
pub(crate) struct SqliteRefreshTokens(pub(crate) SqlitePool);

#[derive(sqlx::FromRow)]
struct Row {
    handle: Vec<u8>,
    client_id: String,
    grant_id: String,
    content: String,
    created_at: i64,
    expires_at: i64,
    rotated_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl TryFrom<Row> for StoredRefreshToken {
    type Error = StoreError;
    fn try_from(row: Row) -> Result<Self, StoreError> {
        Ok(Self {
            handle: convert::refresh_handle(&row.handle)?,
            client_id: convert::client_id(row.client_id)?,
            grant_id: row.grant_id,
            content: convert::refresh_content(json("refresh_tokens.content", &row.content)?)?,
            created_at: from_micros("refresh_tokens.created_at", row.created_at)?,
            expires_at: from_micros("refresh_tokens.expires_at", row.expires_at)?,
            rotated_at: row
                .rotated_at
                .map(|at| from_micros("refresh_tokens.rotated_at", at))
                .transpose()?,
            revoked_at: row
                .revoked_at
                .map(|at| from_micros("refresh_tokens.revoked_at", at))
                .transpose()?,
        })
    }
}

const COLUMNS: &str =
    "handle, client_id, grant_id, content, created_at, expires_at, rotated_at, revoked_at";

/// The statement storing a token, for `add` and for the second half of `rotate`.
fn insert(
    token: &StoredRefreshToken,
) -> Result<Query<'_, Sqlite, SqliteArguments<'_>>, StoreError> {
    Ok(sqlx::query(
        r#"INSERT INTO refresh_tokens (handle, client_id, grant_id, content, created_at,
                                       expires_at, rotated_at, revoked_at)
           VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"#,
    )
    .bind(token.handle.as_bytes().as_slice())
    .bind(token.client_id.as_str())
    .bind(token.grant_id.as_str())
    .bind(to_json(&token.content)?)
    .bind(to_micros(token.created_at))
    .bind(to_micros(token.expires_at))
    .bind(token.rotated_at.map(to_micros))
    .bind(token.revoked_at.map(to_micros)))
}

#[async_trait::async_trait]
impl RefreshTokenStore for SqliteRefreshTokens {
    async fn add(&self, token: &StoredRefreshToken) -> Result<(), StoreError> {
        insert(token)?
            .execute(&self.0)
            .await
            .map(drop)
            .map_err(from_sqlx)
    }

    async fn find(&self, handle: &SecretHash) -> Result<StoredRefreshToken, StoreError> {
        sqlx::query_as::<_, Row>(&format!(
            "SELECT {COLUMNS} FROM refresh_tokens WHERE handle = ?1"
        ))
        .bind(handle.as_bytes().as_slice())
        .fetch_one(&self.0)
        .await
        .map_err(from_sqlx)?
        .try_into()
    }

    async fn rotate(
        &self,
        old: &SecretHash,
        new: &StoredRefreshToken,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        // Built before the transaction starts, so that a value that cannot be stored fails
        // without touching `old`.
        let insert_new = insert(new)?;
        let mut tx = self.0.begin().await.map_err(from_sqlx)?;
        let done = sqlx::query(
            "UPDATE refresh_tokens SET rotated_at = ?2 WHERE handle = ?1 AND rotated_at IS NULL",
        )
        .bind(old.as_bytes().as_slice())
        .bind(to_micros(now))
        .execute(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        if done.rows_affected() == 0 {
            // Nothing changed: either rotated before, or not there at all. Nothing is stored.
            let exists: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM refresh_tokens WHERE handle = ?1)",
            )
            .bind(old.as_bytes().as_slice())
            .fetch_one(&mut *tx)
            .await
            .map_err(from_sqlx)?;
            tx.rollback().await.map_err(from_sqlx)?;
            return if exists {
                Ok(false)
            } else {
                Err(StoreError::NotFound)
            };
        }
        if let Err(error) = insert_new.execute(&mut *tx).await {
            // The new token cannot be stored: the old one stays unrotated. Should the rollback
            // itself fail, dropping the transaction rolls it back; the insert's error is the one
            // to report.
            if let Err(rollback) = tx.rollback().await {
                tracing::warn!(error = %rollback, "rolling back a failed rotation failed");
            }
            return Err(from_sqlx(error));
        }
        tx.commit().await.map_err(from_sqlx)?;
        Ok(true)
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM refresh_tokens WHERE expires_at <= ?1")
            .bind(to_micros(now))
            .execute(&self.0)
            .await
            .map(|done| done.rows_affected())
            .map_err(from_sqlx)
    }
}
