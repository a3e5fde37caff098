//! Signing keys on SQLite.

use portcullis_core::keys::StoredSigningKey;
use portcullis_core::store::{SigningKeyStore, StoreError};
use sqlx::SqlitePool;

use super::{from_micros, json, to_json, to_micros};
use crate::convert;
use crate::error::{from_sqlx, one_row};

#[derive(Debug, Clone)]
pub(crate) struct SqliteSigningKeys(pub(crate) SqlitePool);

#[derive(sqlx::FromRow)]
struct KeyRow {
    kid: String,
    alg: String,
    public_jwk: String,
    encrypted_private_jwk: Vec<u8>,
    created_at: i64,
    activates_at: i64,
}

impl TryFrom<KeyRow> for StoredSigningKey {
    type Error = StoreError;
    fn try_from(row: KeyRow) -> Result<Self, StoreError> {
        Ok(Self {
            alg: convert::alg(&row.alg)?,
            public_jwk: convert::public_jwk(json("signing_keys.public_jwk", &row.public_jwk)?)?,
            kid: row.kid,
            encrypted_private_jwk: row.encrypted_private_jwk,
            created_at: from_micros("signing_keys.created_at", row.created_at)?,
            activates_at: from_micros("signing_keys.activates_at", row.activates_at)?,
        })
    }
}

#[async_trait::async_trait]
impl SigningKeyStore for SqliteSigningKeys {
    async fn add(&self, key: &StoredSigningKey) -> Result<(), StoreError> {
        sqlx::query(
            r#"INSERT INTO signing_keys
                   (kid, alg, public_jwk, encrypted_private_jwk, created_at, activates_at)
               VALUES (?1, ?2, ?3, ?4, ?5, ?6)"#,
        )
        .bind(&key.kid)
        .bind(key.alg.as_str())
        .bind(to_json(&key.public_jwk)?)
        .bind(&key.encrypted_private_jwk)
        .bind(to_micros(key.created_at))
        .bind(to_micros(key.activates_at))
        .execute(&self.0)
        .await
        .map(drop)
        .map_err(from_sqlx)
    }

    async fn list(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
        sqlx::query_as::<_, KeyRow>(
            r#"SELECT kid, alg, public_jwk, encrypted_private_jwk, created_at, activates_at
               FROM signing_keys ORDER BY activates_at, kid"#,
        )
        .fetch_all(&self.0)
        .await
        .map_err(from_sqlx)?
        .into_iter()
        .map(StoredSigningKey::try_from)
        .collect()
    }

    async fn remove(&self, kid: &str) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM signing_keys WHERE kid = ?1")
            .bind(kid)
            .execute(&self.0)
            .await
            .map_err(from_sqlx)?;
        one_row(done.rows_affected())
    }
}
