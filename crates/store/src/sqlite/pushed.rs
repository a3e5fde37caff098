//! Pushed authorization requests on SQLite. Consuming one is a single
//! `DELETE … WHERE unexpired RETURNING`; SQLite serialises writers, so of concurrent consumes of
//! one handle exactly one deletes the row and gets it back.

use portcullis_core::client::secret::SecretHash;
use portcullis_core::store::{PushedRequest, PushedRequestStore, StoreError};
use sqlx::SqlitePool;
use time::OffsetDateTime;

use super::{from_micros, json, to_json, to_micros};
use crate::convert;
use crate::error::from_sqlx;

#[derive(Debug, Clone)]
pub(crate) struct SqlitePushed(pub(crate) SqlitePool);

#[derive(sqlx::FromRow)]
struct Row {
    handle: Vec<u8>,
    client_id: String,
    parameters: String,
    created_at: i64,
    expires_at: i64,
}

impl TryFrom<Row> for PushedRequest {
    type Error = StoreError;
    fn try_from(row: Row) -> Result<Self, StoreError> {
        Ok(Self {
            handle: convert::pushed_handle(&row.handle)?,
            client_id: convert::client_id(row.client_id)?,
            parameters: convert::pushed_parameters(json(
                "pushed_requests.parameters",
                &row.parameters,
            )?)?,
            created_at: from_micros("pushed_requests.created_at", row.created_at)?,
            expires_at: from_micros("pushed_requests.expires_at", row.expires_at)?,
        })
    }
}

const COLUMNS: &str = "handle, client_id, parameters, created_at, expires_at";

#[async_trait::async_trait]
impl PushedRequestStore for SqlitePushed {
    async fn add(&self, request: &PushedRequest) -> Result<(), StoreError> {
        sqlx::query(
            r#"INSERT INTO pushed_requests (handle, client_id, parameters, created_at, expires_at)
               VALUES (?1, ?2, ?3, ?4, ?5)"#,
        )
        .bind(request.handle.as_bytes().as_slice())
        .bind(request.client_id.as_str())
        .bind(to_json(&request.parameters)?)
        .bind(to_micros(request.created_at))
        .bind(to_micros(request.expires_at))
        .execute(&self.0)
        .await
        .map(drop)
        .map_err(from_sqlx)
    }

    async fn find(
        &self,
        handle: &SecretHash,
        now: OffsetDateTime,
    ) -> Result<PushedRequest, StoreError> {
        sqlx::query_as::<_, Row>(&format!(
            "SELECT {COLUMNS} FROM pushed_requests WHERE handle = ?1 AND expires_at > ?2"
        ))
        .bind(handle.as_bytes().as_slice())
        .bind(to_micros(now))
        .fetch_one(&self.0)
        .await
        .map_err(from_sqlx)?
        .try_into()
    }

    async fn consume(
        &self,
        handle: &SecretHash,
        now: OffsetDateTime,
    ) -> Result<PushedRequest, StoreError> {
        sqlx::query_as::<_, Row>(&format!(
            "DELETE FROM pushed_requests WHERE handle = ?1 AND expires_at > ?2 RETURNING {COLUMNS}"
        ))
        .bind(handle.as_bytes().as_slice())
        .bind(to_micros(now))
        .fetch_one(&self.0)
        .await
        .map_err(from_sqlx)?
        .try_into()
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM pushed_requests WHERE expires_at <= ?1")
            .bind(to_micros(now))
            .execute(&self.0)
            .await
            .map(|done| done.rows_affected())
            .map_err(from_sqlx)
    }
}
