//! Customer accounts on PostgreSQL.

use portcullis_core::store::{StoreError, UserStore};
use portcullis_core::user::{PasswordHash, User, Username};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::convert;
use crate::error::from_sqlx;

#[derive(Debug, Clone)]
pub(crate) struct PgUsers(pub(crate) PgPool);

#[derive(sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    username: String,
    password_hash: String,
    created_at: OffsetDateTime,
    disabled_at: Option<OffsetDateTime>,
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
        })
    }
}

#[async_trait::async_trait]
impl UserStore for PgUsers {
    async fn add(&self, user: &User) -> Result<(), StoreError> {
        sqlx::query(
            r#"INSERT INTO users (id, username, password_hash, created_at, disabled_at)
               VALUES ($1, $2, $3, $4, $5)"#,
        )
        .bind(user.id)
        .bind(user.username.as_str())
        .bind(user.password_hash.as_phc())
        .bind(user.created_at)
        .bind(user.disabled_at)
        .execute(&self.0)
        .await
        .map(drop)
        .map_err(from_sqlx)
    }

    async fn find_by_id(&self, id: Uuid) -> Result<User, StoreError> {
        sqlx::query_as::<_, UserRow>(
            r#"SELECT id, username, password_hash, created_at, disabled_at FROM users WHERE id = $1"#,
        )
        .bind(id)
        .fetch_one(&self.0)
        .await
        .map_err(from_sqlx)?
        .try_into()
    }

    async fn find_by_username(&self, username: &Username) -> Result<User, StoreError> {
        sqlx::query_as::<_, UserRow>(
            r#"SELECT id, username, password_hash, created_at, disabled_at
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
            r#"SELECT id, username, password_hash, created_at, disabled_at
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
}
