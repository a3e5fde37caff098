//! The replay cache on SQLite: the same conditional upsert as on PostgreSQL; SQLite serialises
//! writers, so of two concurrent records exactly one affects a row.

use portcullis_core::store::{FirstUse, ReplayKey, ReplayStore, StoreError};
use sqlx::SqlitePool;
use time::OffsetDateTime;

use super::to_micros;
use crate::error::from_sqlx;

#[derive(Debug, Clone)]
pub(crate) struct SqliteReplay(pub(crate) SqlitePool);

#[async_trait::async_trait]
impl ReplayStore for SqliteReplay {
    async fn record(
        &self,
        key: ReplayKey<'_>,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<FirstUse, StoreError> {
        let done = sqlx::query(
            r#"INSERT INTO replay_cache (scope, id, expires_at) VALUES (?1, ?2, ?3)
               ON CONFLICT (scope, id) DO UPDATE SET expires_at = excluded.expires_at
               WHERE replay_cache.expires_at <= ?4"#,
        )
        .bind(key.scope())
        .bind(key.id)
        .bind(to_micros(expires_at))
        .bind(to_micros(now))
        .execute(&self.0)
        .await
        .map_err(from_sqlx)?;
        Ok(if done.rows_affected() == 1 {
            FirstUse::First
        } else {
            FirstUse::Replayed
        })
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM replay_cache WHERE expires_at <= ?1")
            .bind(to_micros(now))
            .execute(&self.0)
            .await
            .map(|done| done.rows_affected())
            .map_err(from_sqlx)
    }
}
