//! Customer accounts on SQLite.

use portcullis_core::store::{StoreError, UserStore};
use portcullis_core::user::{PasswordHash, User, Username};
use serde_json::{Map, Value};
use sqlx::SqlitePool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{from_micros, json, to_json, to_micros};
use crate::convert;
use crate::error::{corrupt, from_sqlx, one_row};

#[derive(Debug, Clone)]
pub(crate) struct SqliteUsers(pub(crate) SqlitePool);

#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    username: String,
    password_hash: String,
    created_at: i64,
    disabled_at: Option<i64>,
    claims: String,
    totp_secret_encrypted: Option<Vec<u8>>,
    totp_last_step: Option<i64>,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(row: UserRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: Uuid::parse_str(&row.id).map_err(|e| corrupt("users.id", e))?,
            username: convert::username(&row.username)?,
            password_hash: PasswordHash::from_phc(row.password_hash),
            created_at: from_micros("users.created_at", row.created_at)?,
            disabled_at: row
                .disabled_at
                .map(|at| from_micros("users.disabled_at", at))
                .transpose()?,
            claims: convert::user_claims(json("users.claims", &row.claims)?)?,
            totp_secret_encrypted: row.totp_secret_encrypted,
            totp_last_step: row.totp_last_step,
        })
    }
}

fn id(id: Uuid) -> String {
    id.hyphenated().to_string()
}

#[async_trait::async_trait]
impl UserStore for SqliteUsers {
    async fn add(&self, user: &User) -> Result<(), StoreError> {
        sqlx::query(
            r#"INSERT INTO users (id, username, password_hash, created_at, disabled_at, claims,
                                  totp_secret_encrypted, totp_last_step)
               VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"#,
        )
        .bind(id(user.id))
        .bind(user.username.as_str())
        .bind(user.password_hash.as_phc())
        .bind(to_micros(user.created_at))
        .bind(user.disabled_at.map(to_micros))
        .bind(to_json(&user.claims)?)
        .bind(user.totp_secret_encrypted.as_deref())
        .bind(user.totp_last_step)
        .execute(&self.0)
        .await
        .map(drop)
        .map_err(from_sqlx)
    }

    async fn find_by_id(&self, user_id: Uuid) -> Result<User, StoreError> {
        sqlx::query_as::<_, UserRow>(
            r#"SELECT id, username, password_hash, created_at, disabled_at, claims,
                      totp_secret_encrypted, totp_last_step
               FROM users WHERE id = ?1"#,
        )
        .bind(id(user_id))
        .fetch_one(&self.0)
        .await
        .map_err(from_sqlx)?
        .try_into()
    }

    async fn find_by_username(&self, username: &Username) -> Result<User, StoreError> {
        sqlx::query_as::<_, UserRow>(
            r#"SELECT id, username, password_hash, created_at, disabled_at, claims,
                      totp_secret_encrypted, totp_last_step
               FROM users WHERE username = ?1"#,
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
               FROM users WHERE ?1 IS NULL OR username > ?1
               ORDER BY username LIMIT ?2"#,
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

    async fn set_password_hash(
        &self,
        user_id: Uuid,
        hash: &PasswordHash,
    ) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE users SET password_hash = ?2 WHERE id = ?1")
            .bind(id(user_id))
            .bind(hash.as_phc())
            .execute(&self.0)
            .await
            .map_err(from_sqlx)?;
        one_row(done.rows_affected())
    }

    async fn set_claims(
        &self,
        user_id: Uuid,
        claims: &Map<String, Value>,
    ) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE users SET claims = ?2 WHERE id = ?1")
            .bind(id(user_id))
            .bind(to_json(claims)?)
            .execute(&self.0)
            .await
            .map_err(from_sqlx)?;
        one_row(done.rows_affected())
    }

    async fn set_totp_secret(
        &self,
        user_id: Uuid,
        encrypted: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE users SET totp_secret_encrypted = ?2, totp_last_step = NULL WHERE id = ?1",
        )
        .bind(id(user_id))
        .bind(encrypted)
        .execute(&self.0)
        .await
        .map_err(from_sqlx)?;
        one_row(done.rows_affected())
    }

    async fn use_totp_step(&self, user_id: Uuid, step: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            r#"UPDATE users SET totp_last_step = ?2
               WHERE id = ?1 AND totp_secret_encrypted IS NOT NULL
                 AND (totp_last_step IS NULL OR totp_last_step < ?2)"#,
        )
        .bind(id(user_id))
        .bind(step)
        .execute(&self.0)
        .await
        .map_err(from_sqlx)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_disabled(
        &self,
        user_id: Uuid,
        at: Option<OffsetDateTime>,
    ) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE users SET disabled_at = ?2 WHERE id = ?1")
            .bind(id(user_id))
            .bind(at.map(to_micros))
            .execute(&self.0)
            .await
            .map_err(from_sqlx)?;
        one_row(done.rows_affected())
    }

    async fn remove(&self, user_id: Uuid) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM users WHERE id = ?1")
            .bind(id(user_id))
            .execute(&self.0)
            .await
            .map_err(from_sqlx)?;
        one_row(done.rows_affected())
    }
}
