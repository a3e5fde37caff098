//! The client registry on SQLite.

use portcullis_core::client::{Client, ClientId};
use portcullis_core::store::{ClientStore, StoreError};
use sqlx::SqlitePool;

use super::{from_micros, json, to_json, to_micros};
use crate::convert;
use crate::error::{from_sqlx, one_row};

#[derive(Debug, Clone)]
pub(crate) struct SqliteClients(pub(crate) SqlitePool);

#[derive(sqlx::FromRow)]
struct ClientRow {
    client_id: String,
    profile: String,
    metadata: String,
    secret_hash: Option<Vec<u8>>,
    settings: String,
    registration_token_hash: Option<Vec<u8>>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<ClientRow> for Client {
    type Error = StoreError;
    fn try_from(row: ClientRow) -> Result<Self, StoreError> {
        Ok(Self {
            client_id: convert::client_id(row.client_id)?,
            profile: convert::profile(&row.profile)?,
            metadata: convert::metadata(json("clients.metadata", &row.metadata)?)?,
            secret_hash: convert::secret_hash(row.secret_hash.as_deref())?,
            settings: convert::client_settings(json("clients.settings", &row.settings)?)?,
            registration_token_hash: convert::registration_token_hash(
                row.registration_token_hash.as_deref(),
            )?,
            created_at: from_micros("clients.created_at", row.created_at)?,
            updated_at: from_micros("clients.updated_at", row.updated_at)?,
        })
    }
}

#[async_trait::async_trait]
impl ClientStore for SqliteClients {
    async fn add(&self, client: &Client) -> Result<(), StoreError> {
        sqlx::query(
            r#"INSERT INTO clients (client_id, profile, metadata, created_at, updated_at, secret_hash,
                                   settings, registration_token_hash)
               VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"#,
        )
        .bind(client.client_id.as_str())
        .bind(client.profile.as_str())
        .bind(to_json(&client.metadata)?)
        .bind(to_micros(client.created_at))
        .bind(to_micros(client.updated_at))
        .bind(client.secret_hash.as_ref().map(|h| h.as_bytes().to_vec()))
        .bind(to_json(&client.settings.to_map())?)
        .bind(
            client
                .registration_token_hash
                .as_ref()
                .map(|h| h.as_bytes().to_vec()),
        )
        .execute(&self.0)
        .await
        .map(drop)
        .map_err(from_sqlx)
    }

    async fn find_by_id(&self, client_id: &ClientId) -> Result<Client, StoreError> {
        sqlx::query_as::<_, ClientRow>(
            r#"SELECT client_id, profile, metadata, secret_hash, settings, registration_token_hash,
                      created_at, updated_at
               FROM clients WHERE client_id = ?1"#,
        )
        .bind(client_id.as_str())
        .fetch_one(&self.0)
        .await
        .map_err(from_sqlx)?
        .try_into()
    }

    async fn list(&self, after: Option<&ClientId>, limit: u32) -> Result<Vec<Client>, StoreError> {
        sqlx::query_as::<_, ClientRow>(
            r#"SELECT client_id, profile, metadata, secret_hash, settings, registration_token_hash,
                      created_at, updated_at
               FROM clients WHERE ?1 IS NULL OR client_id > ?1
               ORDER BY client_id LIMIT ?2"#,
        )
        .bind(after.map(ClientId::as_str))
        .bind(convert::page_limit(limit))
        .fetch_all(&self.0)
        .await
        .map_err(from_sqlx)?
        .into_iter()
        .map(Client::try_from)
        .collect()
    }

    async fn update(&self, client: &Client) -> Result<(), StoreError> {
        // A changed client ends what replicas cached about it (keys, methods, its tokens).
        let mut tx = self.0.begin().await.map_err(from_sqlx)?;
        let done = sqlx::query(
            r#"UPDATE clients SET profile = ?2, metadata = ?3, updated_at = ?4, secret_hash = ?5,
                                  settings = ?6, registration_token_hash = ?7
               WHERE client_id = ?1"#,
        )
        .bind(client.client_id.as_str())
        .bind(client.profile.as_str())
        .bind(to_json(&client.metadata)?)
        .bind(to_micros(client.updated_at))
        .bind(client.secret_hash.as_ref().map(|h| h.as_bytes().to_vec()))
        .bind(to_json(&client.settings.to_map())?)
        .bind(
            client
                .registration_token_hash
                .as_ref()
                .map(|h| h.as_bytes().to_vec()),
        )
        .execute(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        one_row(done.rows_affected())?;
        bump_epoch(&mut tx).await?;
        tx.commit().await.map_err(from_sqlx)
    }

    async fn remove(&self, client_id: &ClientId) -> Result<(), StoreError> {
        let mut tx = self.0.begin().await.map_err(from_sqlx)?;
        let done = sqlx::query("DELETE FROM clients WHERE client_id = ?1")
            .bind(client_id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        one_row(done.rows_affected())?;
        bump_epoch(&mut tx).await?;
        tx.commit().await.map_err(from_sqlx)
    }
}

/// Bumps the revocation epoch inside a client change, last, as every revoking transaction
/// takes the epoch row last (see `revocations.rs`).
async fn bump_epoch(tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>) -> Result<(), StoreError> {
    let bumped = sqlx::query("UPDATE revocation_epoch SET value = value + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await
        .map_err(from_sqlx)?;
    if bumped.rows_affected() == 0 {
        return Err(StoreError::Corrupt(
            "revocation_epoch: the row is missing".into(),
        ));
    }
    Ok(())
}
