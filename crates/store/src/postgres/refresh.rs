//! Refresh tokens on PostgreSQL. Rotating one is a transaction that starts with
//! `UPDATE … SET rotated_at WHERE rotated_at IS NULL` and then stores the new token: of
//! concurrent rotations of one token, the first takes the row lock and the others, once it
//! commits, re-check the condition on the new row version, find it rotated and update nothing
//! (if it rolls back instead, the next one in line gets the unrotated row). Revoking works the
//! same way, per grant.

use portcullis_core::client::secret::SecretHash;
use portcullis_core::store::{RefreshTokenStore, StoreError, StoredRefreshToken};
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::types::Json;
use sqlx::{PgPool, Postgres};
use time::OffsetDateTime;

use crate::convert;
use crate::error::from_sqlx;

#[derive(Debug, Clone)]
pub(crate) struct PgRefreshTokens(pub(crate) PgPool);

#[derive(sqlx::FromRow)]
struct Row {
    handle: Vec<u8>,
    client_id: String,
    grant_id: String,
    content: Json<serde_json::Value>,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    rotated_at: Option<OffsetDateTime>,
    revoked_at: Option<OffsetDateTime>,
}

impl TryFrom<Row> for StoredRefreshToken {
    type Error = StoreError;
    fn try_from(row: Row) -> Result<Self, StoreError> {
        Ok(Self {
            handle: convert::refresh_handle(&row.handle)?,
            client_id: convert::client_id(row.client_id)?,
            grant_id: row.grant_id,
            content: convert::refresh_content(row.content.0)?,
            created_at: row.created_at,
            expires_at: row.expires_at,
            rotated_at: row.rotated_at,
            revoked_at: row.revoked_at,
        })
    }
}

const COLUMNS: &str =
    "handle, client_id, grant_id, content, created_at, expires_at, rotated_at, revoked_at";

/// The statement storing a token, for `add` and for the second half of `rotate`.
fn insert(token: &StoredRefreshToken) -> Query<'_, Postgres, PgArguments> {
    sqlx::query(
        r#"INSERT INTO refresh_tokens (handle, client_id, grant_id, content, created_at,
                                       expires_at, rotated_at, revoked_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"#,
    )
    .bind(token.handle.as_bytes().as_slice())
    .bind(token.client_id.as_str())
    .bind(token.grant_id.as_str())
    .bind(Json(&token.content))
    .bind(token.created_at)
    .bind(token.expires_at)
    .bind(token.rotated_at)
    .bind(token.revoked_at)
}

#[async_trait::async_trait]
impl RefreshTokenStore for PgRefreshTokens {
    async fn add(&self, token: &StoredRefreshToken) -> Result<(), StoreError> {
        insert(token)
            .execute(&self.0)
            .await
            .map(drop)
            .map_err(from_sqlx)
    }

    async fn find(&self, handle: &SecretHash) -> Result<StoredRefreshToken, StoreError> {
        sqlx::query_as::<_, Row>(&format!(
            "SELECT {COLUMNS} FROM refresh_tokens WHERE handle = $1"
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
        let mut tx = self.0.begin().await.map_err(from_sqlx)?;
        let done = sqlx::query(
            "UPDATE refresh_tokens SET rotated_at = $2 WHERE handle = $1 AND rotated_at IS NULL",
        )
        .bind(old.as_bytes().as_slice())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        if done.rows_affected() == 0 {
            // Nothing changed: either rotated before, or not there at all. Nothing is stored.
            let exists: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM refresh_tokens WHERE handle = $1)",
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
        if let Err(error) = insert(new).execute(&mut *tx).await {
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
        sqlx::query("DELETE FROM refresh_tokens WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.0)
            .await
            .map(|done| done.rows_affected())
            .map_err(from_sqlx)
    }
}
