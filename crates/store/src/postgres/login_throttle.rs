//! The login throttle's counters on PostgreSQL. A write is a compare-and-set: an `INSERT … ON
//! CONFLICT DO NOTHING` where there was no row, else an `UPDATE … WHERE version = expected`; the
//! row count says whether it won. Of concurrent writers on one row the first takes the row lock,
//! and the others, once it commits, find the version moved on and write nothing.

use portcullis_core::login_throttle::{ThrottleKey, ThrottleState};
use portcullis_core::store::{LoginThrottleStore, StoreError, StoredThrottle};
use sqlx::PgPool;
use time::OffsetDateTime;

use crate::error::{corrupt, from_sqlx};

#[derive(Debug, Clone)]
pub(crate) struct PgLoginThrottle(pub(crate) PgPool);

#[derive(sqlx::FromRow)]
struct Row {
    failures: i64,
    window_started_at: OffsetDateTime,
    last_failure_at: OffsetDateTime,
    locked_until: Option<OffsetDateTime>,
    trusted_until: Option<OffsetDateTime>,
    version: i64,
}

impl TryFrom<Row> for StoredThrottle {
    type Error = StoreError;
    fn try_from(row: Row) -> Result<Self, StoreError> {
        Ok(Self {
            state: ThrottleState {
                failures: u32::try_from(row.failures)
                    .map_err(|e| corrupt("login_throttle.failures", e))?,
                window_started_at: row.window_started_at,
                last_failure_at: row.last_failure_at,
                locked_until: row.locked_until,
                trusted_until: row.trusted_until,
            },
            version: row.version,
        })
    }
}

#[async_trait::async_trait]
impl LoginThrottleStore for PgLoginThrottle {
    async fn find(&self, key: &ThrottleKey) -> Result<Option<StoredThrottle>, StoreError> {
        sqlx::query_as::<_, Row>(
            r#"SELECT failures, window_started_at, last_failure_at, locked_until, trusted_until,
                      version
               FROM login_throttle WHERE kind = $1 AND key = $2"#,
        )
        .bind(key.kind.as_str())
        .bind(&key.id)
        .fetch_optional(&self.0)
        .await
        .map_err(from_sqlx)?
        .map(StoredThrottle::try_from)
        .transpose()
    }

    async fn put(
        &self,
        key: &ThrottleKey,
        expected: Option<i64>,
        state: &ThrottleState,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let query = match expected {
            None => sqlx::query(
                r#"INSERT INTO login_throttle (kind, key, failures, window_started_at,
                       last_failure_at, locked_until, trusted_until, expires_at, version)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1)
                   ON CONFLICT (kind, key) DO NOTHING"#,
            ),
            Some(_) => sqlx::query(
                r#"UPDATE login_throttle
                   SET failures = $3, window_started_at = $4, last_failure_at = $5,
                       locked_until = $6, trusted_until = $7, expires_at = $8,
                       version = version + 1
                   WHERE kind = $1 AND key = $2 AND version = $9"#,
            ),
        };
        let query = query
            .bind(key.kind.as_str())
            .bind(&key.id)
            .bind(i64::from(state.failures))
            .bind(state.window_started_at)
            .bind(state.last_failure_at)
            .bind(state.locked_until)
            .bind(state.trusted_until)
            .bind(expires_at);
        let query = match expected {
            Some(version) => query.bind(version),
            None => query,
        };
        let done = query.execute(&self.0).await.map_err(from_sqlx)?;
        Ok(done.rows_affected() == 1)
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM login_throttle WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.0)
            .await
            .map(|done| done.rows_affected())
            .map_err(from_sqlx)
    }
}
