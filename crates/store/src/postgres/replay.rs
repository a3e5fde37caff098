//! The replay cache on PostgreSQL: one `INSERT … ON CONFLICT … DO UPDATE … WHERE expired`,
//! checked by rows affected. A concurrent second insert waits for the first to commit, then finds
//! the row unexpired and affects nothing.

use portcullis_core::store::{FirstUse, ReplayKey, ReplayStore, StoreError};
use sqlx::PgPool;
use time::OffsetDateTime;

use crate::error::from_sqlx;

#[derive(Debug, Clone)]
pub(crate) struct PgReplay(pub(crate) PgPool);

#[async_trait::async_trait]
impl ReplayStore for PgReplay {
    async fn record(
        &self,
        key: ReplayKey<'_>,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<FirstUse, StoreError> {
        let done = sqlx::query(
            r#"INSERT INTO replay_cache (scope, id, expires_at) VALUES ($1, $2, $3)
               ON CONFLICT (scope, id) DO UPDATE SET expires_at = EXCLUDED.expires_at
               WHERE replay_cache.expires_at <= $4"#,
        )
        .bind(key.scope())
        .bind(key.id)
        .bind(expires_at)
        .bind(now)
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
        sqlx::query("DELETE FROM replay_cache WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.0)
            .await
            .map(|done| done.rows_affected())
            .map_err(from_sqlx)
    }
}
