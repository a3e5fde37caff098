//! The resource-server registry on PostgreSQL.

use portcullis_core::client::ClientId;
use portcullis_core::resource::ResourceServer;
use portcullis_core::store::{ResourceServerStore, StoreError};
use sqlx::PgPool;
use sqlx::types::Json;
use time::OffsetDateTime;

use crate::convert;
use crate::error::{from_sqlx, one_row};

#[derive(Debug, Clone)]
pub(crate) struct PgResources(pub(crate) PgPool);

#[derive(sqlx::FromRow)]
struct Row {
    resource: String,
    metadata: Json<serde_json::Value>,
    client_id: Option<String>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl TryFrom<Row> for ResourceServer {
    type Error = StoreError;
    fn try_from(row: Row) -> Result<Self, StoreError> {
        Ok(Self {
            resource: row.resource,
            metadata: convert::resource_metadata(row.metadata.0)?,
            client_id: row.client_id.map(convert::client_id).transpose()?,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

const COLUMNS: &str = "resource, metadata, client_id, created_at, updated_at";

#[async_trait::async_trait]
impl ResourceServerStore for PgResources {
    async fn add(&self, server: &ResourceServer) -> Result<(), StoreError> {
        sqlx::query(
            r#"INSERT INTO resource_servers (resource, metadata, client_id, created_at, updated_at)
               VALUES ($1, $2, $3, $4, $5)"#,
        )
        .bind(&server.resource)
        .bind(Json(server.metadata.to_map()))
        .bind(server.client_id.as_ref().map(ClientId::as_str))
        .bind(server.created_at)
        .bind(server.updated_at)
        .execute(&self.0)
        .await
        .map(drop)
        .map_err(from_sqlx)
    }

    async fn find(&self, resource: &str) -> Result<ResourceServer, StoreError> {
        sqlx::query_as::<_, Row>(&format!(
            "SELECT {COLUMNS} FROM resource_servers WHERE resource = $1"
        ))
        .bind(resource)
        .fetch_one(&self.0)
        .await
        .map_err(from_sqlx)?
        .try_into()
    }

    async fn find_by_client(&self, client_id: &ClientId) -> Result<ResourceServer, StoreError> {
        sqlx::query_as::<_, Row>(&format!(
            "SELECT {COLUMNS} FROM resource_servers WHERE client_id = $1"
        ))
        .bind(client_id.as_str())
        .fetch_one(&self.0)
        .await
        .map_err(from_sqlx)?
        .try_into()
    }

    async fn list(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ResourceServer>, StoreError> {
        sqlx::query_as::<_, Row>(&format!(
            "SELECT {COLUMNS} FROM resource_servers WHERE $1::TEXT IS NULL OR resource > $1
             ORDER BY resource LIMIT $2"
        ))
        .bind(after)
        .bind(convert::page_limit(limit))
        .fetch_all(&self.0)
        .await
        .map_err(from_sqlx)?
        .into_iter()
        .map(ResourceServer::try_from)
        .collect()
    }

    async fn update(&self, server: &ResourceServer) -> Result<(), StoreError> {
        let done = sqlx::query(
            r#"UPDATE resource_servers SET metadata = $2, client_id = $3, updated_at = $4
               WHERE resource = $1"#,
        )
        .bind(&server.resource)
        .bind(Json(server.metadata.to_map()))
        .bind(server.client_id.as_ref().map(ClientId::as_str))
        .bind(server.updated_at)
        .execute(&self.0)
        .await
        .map_err(from_sqlx)?;
        one_row(done.rows_affected())
    }

    async fn remove(&self, resource: &str) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM resource_servers WHERE resource = $1")
            .bind(resource)
            .execute(&self.0)
            .await
            .map_err(from_sqlx)?;
        one_row(done.rows_affected())
    }
}
