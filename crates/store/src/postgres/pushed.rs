//! Pushed authorization requests on PostgreSQL. Consuming one is a single
//! `DELETE … WHERE unexpired RETURNING`: of concurrent deletes of one row, the first takes the
//! row lock and the others, once it commits, find the row gone and return nothing.

use portcullis_core::client::secret::SecretHash;
use portcullis_core::store::{PushedRequest, PushedRequestStore, StoreError};
use sqlx::PgPool;
use sqlx::types::Json;
use time::OffsetDateTime;

use crate::convert;
use crate::error::from_sqlx;

#[derive(Debug, Clone)]
pub(crate) struct PgPushed(pub(crate) PgPool);

#[derive(sqlx::FromRow)]
struct Row {
    handle: Vec<u8>,
    client_id: String,
    parameters: Json<serde_json::Value>,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
}

impl TryFrom<Row> for PushedRequest {
    type Error = StoreError;
    fn try_from(row: Row) -> Result<Self, StoreError> {
        Ok(Self {
            handle: convert::pushed_handle(&row.handle)?,
            client_id: convert::client_id(row.client_id)?,
            parameters: convert::pushed_parameters(row.parameters.0)?,
            created_at: row.created_at,
            expires_at: row.expires_at,
        })
    }
}

const COLUMNS: &str = "handle, client_id, parameters, created_at, expires_at";

#[async_trait::async_trait]
impl PushedRequestStore for PgPushed {
    async fn add(&self, request: &PushedRequest) -> Result<(), StoreError> {
        sqlx::query(
            r#"INSERT INTO pushed_requests (handle, client_id, parameters, created_at, expires_at)
               VALUES ($1, $2, $3, $4, $5)"#,
        )
        .bind(request.handle.as_bytes().as_slice())
        .bind(request.client_id.as_str())
        .bind(Json(&request.parameters))
        .bind(request.created_at)
        .bind(request.expires_at)
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
            "SELECT {COLUMNS} FROM pushed_requests WHERE handle = $1 AND expires_at > $2"
        ))
        .bind(handle.as_bytes().as_slice())
        .bind(now)
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
            "DELETE FROM pushed_requests WHERE handle = $1 AND expires_at > $2 RETURNING {COLUMNS}"
        ))
        .bind(handle.as_bytes().as_slice())
        .bind(now)
        .fetch_one(&self.0)
        .await
        .map_err(from_sqlx)?
        .try_into()
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM pushed_requests WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.0)
            .await
            .map(|done| done.rows_affected())
            .map_err(from_sqlx)
    }
}
