//! Opaque access tokens on SQLite. Revoking one is a single
//! `UPDATE … SET revoked_at WHERE revoked_at IS NULL`; SQLite serialises writers, so of
//! concurrent revocations of one token exactly one finds it unrevoked. Revoking per grant works
//! the same way.

use portcullis_core::client::secret::SecretHash;
use portcullis_core::store::{AccessTokenStore, StoreError, StoredAccessToken};
use sqlx::SqlitePool;
use time::OffsetDateTime;

use super::{from_micros, json, to_json, to_micros};
use crate::convert;
use crate::error::from_sqlx;

#[derive(Debug, Clone)]
pub(crate) struct SqliteAccessTokens(pub(crate) SqlitePool);

#[derive(sqlx::FromRow)]
struct Row {
    handle: Vec<u8>,
    client_id: String,
    grant_id: Option<String>,
    claims: String,
    created_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
}

impl TryFrom<Row> for StoredAccessToken {
    type Error = StoreError;
    fn try_from(row: Row) -> Result<Self, StoreError> {
        Ok(Self {
            handle: convert::access_handle(&row.handle)?,
            client_id: convert::client_id(row.client_id)?,
            grant_id: row.grant_id,
            claims: convert::access_claims(json("access_tokens.claims", &row.claims)?)?,
            created_at: from_micros("access_tokens.created_at", row.created_at)?,
            expires_at: from_micros("access_tokens.expires_at", row.expires_at)?,
            revoked_at: row
                .revoked_at
                .map(|at| from_micros("access_tokens.revoked_at", at))
                .transpose()?,
        })
    }
}

const COLUMNS: &str = "handle, client_id, grant_id, claims, created_at, expires_at, revoked_at";

#[async_trait::async_trait]
impl AccessTokenStore for SqliteAccessTokens {
    async fn add(&self, token: &StoredAccessToken) -> Result<(), StoreError> {
        sqlx::query(
            r#"INSERT INTO access_tokens (handle, client_id, grant_id, claims, created_at,
                                          expires_at, revoked_at)
               VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"#,
        )
        .bind(token.handle.as_bytes().as_slice())
        .bind(token.client_id.as_str())
        .bind(token.grant_id.as_deref())
        .bind(to_json(&token.claims)?)
        .bind(to_micros(token.created_at))
        .bind(to_micros(token.expires_at))
        .bind(token.revoked_at.map(to_micros))
        .execute(&self.0)
        .await
        .map(drop)
        .map_err(from_sqlx)
    }

    async fn find(&self, handle: &SecretHash) -> Result<StoredAccessToken, StoreError> {
        sqlx::query_as::<_, Row>(&format!(
            "SELECT {COLUMNS} FROM access_tokens WHERE handle = ?1"
        ))
        .bind(handle.as_bytes().as_slice())
        .fetch_one(&self.0)
        .await
        .map_err(from_sqlx)?
        .try_into()
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM access_tokens WHERE expires_at <= ?1")
            .bind(to_micros(now))
            .execute(&self.0)
            .await
            .map(|done| done.rows_affected())
            .map_err(from_sqlx)
    }
}
