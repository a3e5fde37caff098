//! The resource-server registry on SQLite.

use portcullis_core::client::ClientId;
use portcullis_core::resource::ResourceServer;
use portcullis_core::store::{ResourceServerStore, StoreError};
use sqlx::SqlitePool;

use super::{from_micros, json, to_json, to_micros};
use crate::convert;
use crate::error::{from_sqlx, one_row};

#[derive(Debug, Clone)]
pub(crate) struct SqliteResources(pub(crate) SqlitePool);

#[derive(sqlx::FromRow)]
struct Row {
    resource: String,
    metadata: String,
    client_id: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<Row> for ResourceServer {
    type Error = StoreError;
    fn try_from(row: Row) -> Result<Self, StoreError> {
        Ok(Self {
            resource: row.resource,
            metadata: convert::resource_metadata(json(
                "resource_servers.metadata",
                &row.metadata,
            )?)?,
            client_id: row.client_id.map(convert::client_id).transpose()?,
            created_at: from_micros("resource_servers.created_at", row.created_at)?,
            updated_at: from_micros("resource_servers.updated_at", row.updated_at)?,
        })
    }
}

const COLUMNS: &str = "resource, metadata, client_id, created_at, updated_at";

#[async_trait::async_trait]
impl ResourceServerStore for SqliteResources {
    async fn add(&self, server: &ResourceServer) -> Result<(), StoreError> {
        sqlx::query(
            r#"INSERT INTO resource_servers (resource, metadata, client_id, created_at, updated_at)
               VALUES (?1, ?2, ?3, ?4, ?5)"#,
        )
        .bind(&server.resource)
        .bind(to_json(&server.metadata.to_map())?)
        .bind(server.client_id.as_ref().map(ClientId::as_str))
        .bind(to_micros(server.created_at))
        .bind(to_micros(server.updated_at))
        .execute(&self.0)
        .await
        .map(drop)
        .map_err(from_sqlx)
    }

    async fn find(&self, resource: &str) -> Result<ResourceServer, StoreError> {
        sqlx::query_as::<_, Row>(&format!(
            "SELECT {COLUMNS} FROM resource_servers WHERE resource = ?1"
        ))
        .bind(resource)
        .fetch_one(&self.0)
        .await
        .map_err(from_sqlx)?
        .try_into()
    }

    async fn find_by_client(&self, client_id: &ClientId) -> Result<ResourceServer, StoreError> {
        sqlx::query_as::<_, Row>(&format!(
            "SELECT {COLUMNS} FROM resource_servers WHERE client_id = ?1"
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
            "SELECT {COLUMNS} FROM resource_servers WHERE ?1 IS NULL OR resource > ?1
             ORDER BY resource LIMIT ?2"
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
            r#"UPDATE resource_servers SET metadata = ?2, client_id = ?3, updated_at = ?4
               WHERE resource = ?1"#,
        )
        .bind(&server.resource)
        .bind(to_json(&server.metadata.to_map())?)
        .bind(server.client_id.as_ref().map(ClientId::as_str))
        .bind(to_micros(server.updated_at))
        .execute(&self.0)
        .await
        .map_err(from_sqlx)?;
        one_row(done.rows_affected())
    }

    async fn remove(&self, resource: &str) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM resource_servers WHERE resource = ?1")
            .bind(resource)
            .execute(&self.0)
            .await
            .map_err(from_sqlx)?;
        one_row(done.rows_affected())
    }
}
