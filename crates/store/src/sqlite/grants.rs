//! Grants and authorization codes on SQLite. Redeeming a code is a single
//! `UPDATE … WHERE consumed_at IS NULL RETURNING`; SQLite serialises writers, so of concurrent
//! redemptions of one handle exactly one finds the code unused and gets it back. Revoking a grant
//! works the same way.

use portcullis_core::client::secret::SecretHash;
use portcullis_core::store::{
    CodeStore, Grant, GrantStore, LAST_USED_RESOLUTION_SECS, Redemption, StoreError, StoredCode,
};
use sqlx::SqlitePool;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::{from_micros, json, to_json, to_micros};
use crate::convert;
use crate::error::{corrupt, from_sqlx, one_row};

#[derive(Debug, Clone)]
pub(crate) struct SqliteGrants(pub(crate) SqlitePool);

#[derive(Debug, Clone)]
pub(crate) struct SqliteCodes(pub(crate) SqlitePool);

#[derive(sqlx::FromRow)]
struct GrantRow {
    grant_id: String,
    client_id: String,
    subject: String,
    content: String,
    created_at: i64,
    updated_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
}

impl TryFrom<GrantRow> for Grant {
    type Error = StoreError;
    fn try_from(row: GrantRow) -> Result<Self, StoreError> {
        Ok(Self {
            grant_id: row.grant_id,
            client_id: convert::client_id(row.client_id)?,
            subject: Uuid::parse_str(&row.subject).map_err(|e| corrupt("grants.subject", e))?,
            content: convert::grant_content(json("grants.content", &row.content)?)?,
            created_at: from_micros("grants.created_at", row.created_at)?,
            updated_at: from_micros("grants.updated_at", row.updated_at)?,
            expires_at: row
                .expires_at
                .map(|at| from_micros("grants.expires_at", at))
                .transpose()?,
            revoked_at: row
                .revoked_at
                .map(|at| from_micros("grants.revoked_at", at))
                .transpose()?,
            last_used_at: row
                .last_used_at
                .map(|at| from_micros("grants.last_used_at", at))
                .transpose()?,
        })
    }
}

/// A subject as stored: hyphenated, as `users.id` is.
fn subject(subject: Uuid) -> String {
    subject.hyphenated().to_string()
}

const GRANT_COLUMNS: &str = "grant_id, client_id, subject, content, created_at, updated_at, \
                             expires_at, revoked_at, last_used_at";

#[async_trait::async_trait]
impl GrantStore for SqliteGrants {
    async fn add(&self, grant: &Grant) -> Result<(), StoreError> {
        sqlx::query(
            r#"INSERT INTO grants (grant_id, client_id, subject, content, created_at, updated_at,
                                   expires_at, revoked_at, last_used_at)
               VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"#,
        )
        .bind(grant.grant_id.as_str())
        .bind(grant.client_id.as_str())
        .bind(subject(grant.subject))
        .bind(to_json(&grant.content)?)
        .bind(to_micros(grant.created_at))
        .bind(to_micros(grant.updated_at))
        .bind(grant.expires_at.map(to_micros))
        .bind(grant.revoked_at.map(to_micros))
        .bind(grant.last_used_at.map(to_micros))
        .execute(&self.0)
        .await
        .map(drop)
        .map_err(from_sqlx)
    }

    async fn find(&self, grant_id: &str) -> Result<Grant, StoreError> {
        sqlx::query_as::<_, GrantRow>(&format!(
            "SELECT {GRANT_COLUMNS} FROM grants WHERE grant_id = ?1"
        ))
        .bind(grant_id)
        .fetch_one(&self.0)
        .await
        .map_err(from_sqlx)?
        .try_into()
    }

    async fn update(&self, grant: &Grant) -> Result<(), StoreError> {
        let done = sqlx::query(
            r#"UPDATE grants SET content = ?2, updated_at = ?3, expires_at = ?4
               WHERE grant_id = ?1 AND revoked_at IS NULL"#,
        )
        .bind(grant.grant_id.as_str())
        .bind(to_json(&grant.content)?)
        .bind(to_micros(grant.updated_at))
        .bind(grant.expires_at.map(to_micros))
        .execute(&self.0)
        .await
        .map_err(from_sqlx)?;
        one_row(done.rows_affected())
    }

    async fn list_for_subject(&self, subject_id: Uuid) -> Result<Vec<Grant>, StoreError> {
        sqlx::query_as::<_, GrantRow>(&format!(
            "SELECT {GRANT_COLUMNS} FROM grants WHERE subject = ?1
             ORDER BY created_at DESC, grant_id"
        ))
        .bind(subject(subject_id))
        .fetch_all(&self.0)
        .await
        .map_err(from_sqlx)?
        .into_iter()
        .map(Grant::try_from)
        .collect()
    }

    async fn touch(&self, grant_id: &str, now: OffsetDateTime) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE grants SET last_used_at = ?2
             WHERE grant_id = ?1 AND (last_used_at IS NULL OR last_used_at < ?3)",
        )
        .bind(grant_id)
        .bind(to_micros(now))
        .bind(to_micros(
            now - Duration::seconds(LAST_USED_RESOLUTION_SECS),
        ))
        .execute(&self.0)
        .await
        .map_err(from_sqlx)?;
        Ok(done.rows_affected() > 0)
    }
}

#[derive(sqlx::FromRow)]
struct CodeRow {
    handle: Vec<u8>,
    client_id: String,
    grant_id: String,
    content: String,
    created_at: i64,
    expires_at: i64,
}

impl TryFrom<CodeRow> for StoredCode {
    type Error = StoreError;
    fn try_from(row: CodeRow) -> Result<Self, StoreError> {
        Ok(Self {
            handle: convert::code_handle(&row.handle)?,
            client_id: convert::client_id(row.client_id)?,
            grant_id: row.grant_id,
            content: convert::code_content(json("authorization_codes.content", &row.content)?)?,
            created_at: from_micros("authorization_codes.created_at", row.created_at)?,
            expires_at: from_micros("authorization_codes.expires_at", row.expires_at)?,
        })
    }
}

const CODE_COLUMNS: &str = "handle, client_id, grant_id, content, created_at, expires_at";

#[async_trait::async_trait]
impl CodeStore for SqliteCodes {
    async fn add(&self, code: &StoredCode) -> Result<(), StoreError> {
        sqlx::query(
            r#"INSERT INTO authorization_codes (handle, client_id, grant_id, content, created_at,
                                                expires_at)
               VALUES (?1, ?2, ?3, ?4, ?5, ?6)"#,
        )
        .bind(code.handle.as_bytes().as_slice())
        .bind(code.client_id.as_str())
        .bind(code.grant_id.as_str())
        .bind(to_json(&code.content)?)
        .bind(to_micros(code.created_at))
        .bind(to_micros(code.expires_at))
        .execute(&self.0)
        .await
        .map(drop)
        .map_err(from_sqlx)
    }

    async fn find(&self, handle: &SecretHash) -> Result<StoredCode, StoreError> {
        sqlx::query_as::<_, CodeRow>(&format!(
            "SELECT {CODE_COLUMNS} FROM authorization_codes WHERE handle = ?1"
        ))
        .bind(handle.as_bytes().as_slice())
        .fetch_one(&self.0)
        .await
        .map_err(from_sqlx)?
        .try_into()
    }

    async fn redeem(
        &self,
        handle: &SecretHash,
        now: OffsetDateTime,
    ) -> Result<Redemption, StoreError> {
        let redeemed = sqlx::query_as::<_, CodeRow>(&format!(
            "UPDATE authorization_codes SET consumed_at = ?2
             WHERE handle = ?1 AND consumed_at IS NULL RETURNING {CODE_COLUMNS}"
        ))
        .bind(handle.as_bytes().as_slice())
        .bind(to_micros(now))
        .fetch_optional(&self.0)
        .await
        .map_err(from_sqlx)?;
        if let Some(row) = redeemed {
            return Ok(Redemption::Redeemed(row.try_into()?));
        }
        // Nothing updated: either used before (a replay), or not there at all.
        sqlx::query_as::<_, CodeRow>(&format!(
            "SELECT {CODE_COLUMNS} FROM authorization_codes WHERE handle = ?1"
        ))
        .bind(handle.as_bytes().as_slice())
        .fetch_one(&self.0)
        .await
        .map_err(from_sqlx)?
        .try_into()
        .map(Redemption::Reused)
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM authorization_codes WHERE expires_at <= ?1")
            .bind(to_micros(now))
            .execute(&self.0)
            .await
            .map(|done| done.rows_affected())
            .map_err(from_sqlx)
    }
}
