//! Customer accounts on PostgreSQL.

use portcullis_core::store::{StoreError, UserStore};
use portcullis_core::user::{PasswordHash, User, Username};
use serde_json::{Map, Value};
use sqlx::PgPool;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::convert;
use crate::error::{from_sqlx, one_row};

#[derive(Debug, Clone)]
pub(crate) struct PgUsers(pub(crate) PgPool);

#[derive(sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    username: String,
    password_hash: String,
    created_at: OffsetDateTime,
    disabled_at: Option<OffsetDateTime>,
    claims: Json<Value>,
    totp_secret_encrypted: Option<Vec<u8>>,
    totp_last_step: Option<i64>,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(row: UserRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.id,
            username: convert::username(&row.username)?,
            password_hash: PasswordHash::from_phc(row.password_hash),
            created_at: row.created_at,
            disabled_at: row.disabled_at,
            claims: convert::user_claims(row.claims.0)?,
            totp_secret_encrypted: row.totp_secret_encrypted,
            totp_last_step: row.totp_last_step,
        })
    }
}

#[async_trait::async_trait]
impl UserStore for PgUsers {
    async fn add(&self, user: &User) -> Result<(), StoreError> {
        sqlx::query(
            r#"INSERT INTO users (id, username, password_hash, created_at, disabled_at, claims,
                                  totp_secret_encrypted, totp_last_step)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"#,
        )
        .bind(user.id)
        .bind(user.username.as_str())
        .bind(user.password_hash.as_phc())
        .bind(user.created_at)
        .bind(user.disabled_at)
        .bind(Json(&user.claims))
        .bind(user.totp_secret_encrypted.as_deref())
        .bind(user.totp_last_step)
        .execute(&self.0)
        .await
        .map(drop)
        .map_err(from_sqlx)
    }

    async fn find_by_id(&self, id: Uuid) -> Result<User, StoreError> {
        sqlx::query_as::<_, UserRow>(
            r#"SELECT id, username, password_hash, created_at, disabled_at, claims,
                      totp_secret_encrypted, totp_last_step
               FROM users WHERE id = $1"#,
        )
        .bind(id)
        .fetch_one(&self.0)
        .await
        .map_err(from_sqlx)?
        .try_into()
    }

    async fn find_by_username(&self, username: &Username) -> Result<User, StoreError> {
        sqlx::query_as::<_, UserRow>(
            r#"SELECT id, username, password_hash, created_at, disabled_at, claims,
                      totp_secret_encrypted, totp_last_step
               FROM users WHERE username = $1"#,
        )
        .bind(username.as_str())
        .fetch_one(&self.0)
        .await
        .map_err(from_sqlx)?
        .try_into()
    }

    async fn list(&self, after: Option<&Username>, limit: u32) -> Result<Vec<User>, StoreError> {
        sqlx::query_as::<_, UserRow>(
            r#"SELECT id, username, password_hash, created_at, disabled_at, claims,
                      totp_secret_encrypted, totp_last_step
               FROM users WHERE $1::TEXT IS NULL OR username > $1
               ORDER BY username LIMIT $2"#,
        )
        .bind(after.map(Username::as_str))
        .bind(convert::page_limit(limit))
        .fetch_all(&self.0)
        .await
        .map_err(from_sqlx)?
        .into_iter()
        .map(User::try_from)
        .collect()
    }

    async fn set_password_hash(&self, id: Uuid, hash: &PasswordHash) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
            .bind(id)
            .bind(hash.as_phc())
            .execute(&self.0)
            .await
            .map_err(from_sqlx)?;
        one_row(done.rows_affected())
    }

    async fn set_claims(&self, id: Uuid, claims: &Map<String, Value>) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE users SET claims = $2 WHERE id = $1")
            .bind(id)
            .bind(Json(claims))
            .execute(&self.0)
            .await
            .map_err(from_sqlx)?;
        one_row(done.rows_affected())
    }

    async fn set_totp_secret(&self, id: Uuid, encrypted: Option<&[u8]>) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE users SET totp_secret_encrypted = $2, totp_last_step = NULL WHERE id = $1",
        )
        .bind(id)
        .bind(encrypted)
        .execute(&self.0)
        .await
        .map_err(from_sqlx)?;
        one_row(done.rows_affected())
    }

    async fn use_totp_step(&self, id: Uuid, step: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            r#"UPDATE users SET totp_last_step = $2
               WHERE id = $1 AND totp_secret_encrypted IS NOT NULL
                 AND (totp_last_step IS NULL OR totp_last_step < $2)"#,
        )
        .bind(id)
        .bind(step)
        .execute(&self.0)
        .await
        .map_err(from_sqlx)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_disabled(&self, id: Uuid, at: Option<OffsetDateTime>) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE users SET disabled_at = $2 WHERE id = $1")
            .bind(id)
            .bind(at)
            .execute(&self.0)
            .await
            .map_err(from_sqlx)?;
        one_row(done.rows_affected())
    }

    async fn remove(&self, id: Uuid) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&self.0)
            .await
            .map_err(from_sqlx)?;
        one_row(done.rows_affected())
    }
}
