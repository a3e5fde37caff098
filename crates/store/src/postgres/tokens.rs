//! Opaque access tokens on PostgreSQL. Revoking one is a single
//! `UPDATE … SET revoked_at WHERE revoked_at IS NULL`: of concurrent revocations of one token,
//! the first takes the row lock and the others, once it commits, re-check the condition on the
//! new row version, find it revoked and update nothing. Revoking per grant works the same way.

use portcullis_core::client::secret::SecretHash;
use portcullis_core::store::{AccessTokenStore, StoreError, StoredAccessToken};
use sqlx::PgPool;
use sqlx::types::Json;
use time::OffsetDateTime;

use crate::convert;
use crate::error::from_sqlx;

#[derive(Debug, Clone)]
pub(crate) struct PgAccessTokens(pub(crate) PgPool);

#[derive(sqlx::FromRow)]
struct Row {
    handle: Vec<u8>,
    client_id: String,
    grant_id: Option<String>,
    claims: Json<serde_json::Value>,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    revoked_at: Option<OffsetDateTime>,
}

impl TryFrom<Row> for StoredAccessToken {
    type Error = StoreError;
    fn try_from(row: Row) -> Result<Self, StoreError> {
        Ok(Self {
            handle: convert::access_handle(&row.handle)?,
            client_id: convert::client_id(row.client_id)?,
            grant_id: row.grant_id,
            claims: convert::access_claims(row.claims.0)?,
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
        })
    }
}

const COLUMNS: &str = "handle, client_id, grant_id, claims, created_at, expires_at, revoked_at";

#[async_trait::async_trait]
impl AccessTokenStore for PgAccessTokens {
    async fn add(&self, token: &StoredAccessToken) -> Result<(), StoreError> {
        sqlx::query(
            r#"INSERT INTO access_tokens (handle, client_id, grant_id, claims, created_at,
                                          expires_at, revoked_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7)"#,
        )
        .bind(token.handle.as_bytes().as_slice())
        .bind(token.client_id.as_str())
        .bind(token.grant_id.as_deref())
        .bind(Json(&token.claims))
        .bind(token.created_at)
        .bind(token.expires_at)
        .bind(token.revoked_at)
        .execute(&self.0)
        .await
        .map(drop)
        .map_err(from_sqlx)
    }

    async fn find(&self, handle: &SecretHash) -> Result<StoredAccessToken, StoreError> {
        sqlx::query_as::<_, Row>(&format!(
            "SELECT {COLUMNS} FROM access_tokens WHERE handle = $1"
        ))
        .bind(handle.as_bytes().as_slice())
        .fetch_one(&self.0)
        .await
        .map_err(from_sqlx)?
        .try_into()
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM access_tokens WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.0)
            .await
            .map(|done| done.rows_affected())
            .map_err(from_sqlx)
    }
}
