//! Revocations, the access-token deny list and the revocation event feed on PostgreSQL.
//!
//! A revoking call is one transaction of two statements. The first decides: a conditional
//! `UPDATE grants … WHERE revoked_at IS NULL`, or an `INSERT … ON CONFLICT DO NOTHING` into the
//! deny list, checked by what it changed. Of concurrent revocations of one grant or `jti`, the
//! first takes the row (or index entry) lock and the others, once it commits, find it taken and
//! change nothing; if it rolls back instead, the next one in line goes ahead. The second
//! statement does the rest at once: it revokes the stored tokens, enqueues the event with one
//! delivery per recipient, and bumps the epoch. The epoch update is gated on the counts of the
//! other parts, a one-time filter the planner evaluates before it reads the epoch row, so that it
//! runs after them: every revoking transaction takes the epoch row last and holds it only until
//! it commits, and two revocations never wait on each other in a cycle. (Unreferenced, the other
//! parts would run after the main statement; a count in an unused `FROM` subquery is dropped by
//! the planner. Either way the epoch row would be taken first.)

use portcullis_core::client::ClientId;
use portcullis_core::client::secret::SecretHash;
use portcullis_core::store::{FeedEvent, NewFeedEvent, Poll, RevocationStore, StoreError};
use sqlx::postgres::PgArguments;
use sqlx::query::QueryScalar;
use sqlx::{PgPool, Postgres};
use time::OffsetDateTime;

use crate::convert;
use crate::error::{corrupt, from_sqlx};

#[derive(Debug, Clone)]
pub(crate) struct PgRevocations(pub(crate) PgPool);

#[derive(sqlx::FromRow)]
struct EventRow {
    seq: i64,
    jti: String,
    kind: String,
    grant_id: Option<String>,
    token_jti: Option<String>,
    set_jwt: String,
    created_at: OffsetDateTime,
    pending: i64,
}

impl From<EventRow> for FeedEvent {
    fn from(row: EventRow) -> Self {
        Self {
            seq: row.seq,
            jti: row.jti,
            kind: row.kind,
            grant_id: row.grant_id,
            token_jti: row.token_jti,
            set: row.set_jwt,
            created_at: row.created_at,
            pending: row.pending,
        }
    }
}

/// An event's columns (of `revocation_events e`) and its count of pending deliveries.
const EVENT_COLUMNS: &str =
    "e.seq, e.jti, e.kind, e.grant_id, e.token_jti, e.set_jwt, e.created_at,
    (SELECT count(*) FROM revocation_deliveries p WHERE p.event_seq = e.seq) AS pending";

/// The second statement of a revoking transaction: `revoking` is a CTE named `revoked`
/// returning a row per token it revoked, with parameters from `$8` on. The event is `$1`–`$6`,
/// its recipients `$7`; recipients that are not clients are skipped, and those it finds are
/// locked against deletion until the deliveries are in. The epoch is bumped last (see the module
/// documentation). Returns the new epoch.
fn revoke_enqueue_and_bump(revoking: &str) -> String {
    format!(
        r#"WITH {revoking},
           event AS (
               INSERT INTO revocation_events (jti, kind, grant_id, token_jti, set_jwt, created_at)
               VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq
           ),
           delivered AS (
               INSERT INTO revocation_deliveries (client_id, event_seq, created_at)
               SELECT c.client_id, event.seq, $6 FROM event, clients c
               WHERE c.client_id = ANY($7)
               FOR KEY SHARE OF c
               RETURNING 1
           )
           UPDATE revocation_epoch SET value = value + 1
           WHERE id = 1
             AND (SELECT count(*) FROM revoked) + (SELECT count(*) FROM delivered) >= 0
           RETURNING value"#
    )
}

/// Binds the event and its recipients to a statement of [`revoke_enqueue_and_bump`].
fn bind_event<'q>(
    sql: &'q str,
    event: &'q NewFeedEvent,
) -> QueryScalar<'q, Postgres, i64, PgArguments> {
    let recipients: Vec<&str> = event.recipients.iter().map(ClientId::as_str).collect();
    sqlx::query_scalar(sql)
        .bind(event.jti.as_str())
        .bind(event.kind.as_str())
        .bind(event.grant_id.as_deref())
        .bind(event.token_jti.as_deref())
        .bind(event.set.as_str())
        .bind(event.created_at)
        .bind(recipients)
}

/// The epoch row is created by the migration and never deleted.
fn missing_epoch() -> StoreError {
    corrupt("revocation_epoch", "the row is missing")
}

#[async_trait::async_trait]
impl RevocationStore for PgRevocations {
    async fn epoch(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT value FROM revocation_epoch WHERE id = 1")
            .fetch_optional(&self.0)
            .await
            .map_err(from_sqlx)?
            .ok_or_else(missing_epoch)
    }

    async fn bump(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            "UPDATE revocation_epoch SET value = value + 1 WHERE id = 1 RETURNING value",
        )
        .fetch_optional(&self.0)
        .await
        .map_err(from_sqlx)?
        .ok_or_else(missing_epoch)
    }

    async fn revoke_grant(
        &self,
        grant_id: &str,
        now: OffsetDateTime,
        event: &NewFeedEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.0.begin().await.map_err(from_sqlx)?;
        let (revoked, exists): (bool, bool) = sqlx::query_as(
            r#"WITH revoked AS (
                   UPDATE grants SET revoked_at = $2
                   WHERE grant_id = $1 AND revoked_at IS NULL RETURNING 1
               )
               SELECT EXISTS (SELECT 1 FROM revoked),
                      EXISTS (SELECT 1 FROM grants WHERE grant_id = $1)"#,
        )
        .bind(grant_id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        if !revoked {
            // Nothing changed: either revoked before, or not there at all. Nothing is queued.
            tx.rollback().await.map_err(from_sqlx)?;
            return if exists {
                Ok(false)
            } else {
                Err(StoreError::NotFound)
            };
        }
        let sql = revoke_enqueue_and_bump(
            r#"revoked_refresh AS (
                   UPDATE refresh_tokens SET revoked_at = $9
                   WHERE grant_id = $8 AND revoked_at IS NULL RETURNING 1
               ),
               revoked_access AS (
                   UPDATE access_tokens SET revoked_at = $9
                   WHERE grant_id = $8 AND revoked_at IS NULL RETURNING 1
               ),
               revoked AS (
                   SELECT 1 FROM revoked_refresh UNION ALL SELECT 1 FROM revoked_access
               )"#,
        );
        // On failure (the event's jti taken), dropping the transaction rolls it back.
        bind_event(&sql, event)
            .bind(grant_id)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(from_sqlx)?
            .ok_or_else(missing_epoch)?;
        tx.commit().await.map_err(from_sqlx)?;
        Ok(true)
    }

    async fn deny_access_token(
        &self,
        jti: &str,
        handle: Option<&SecretHash>,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
        event: &NewFeedEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.0.begin().await.map_err(from_sqlx)?;
        let denied = sqlx::query(
            r#"INSERT INTO denied_access_tokens (jti, expires_at, denied_at) VALUES ($1, $2, $3)
               ON CONFLICT (jti) DO NOTHING"#,
        )
        .bind(jti)
        .bind(expires_at)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        if denied.rows_affected() == 0 {
            // Denied before: nothing changes and nothing is queued.
            tx.rollback().await.map_err(from_sqlx)?;
            return Ok(false);
        }
        let sql = revoke_enqueue_and_bump(
            r#"revoked AS (
                   UPDATE access_tokens SET revoked_at = $9
                   WHERE handle = $8 AND revoked_at IS NULL RETURNING 1
               )"#,
        );
        // On failure (the event's jti taken), dropping the transaction rolls it back.
        bind_event(&sql, event)
            .bind(handle.map(|handle| handle.as_bytes().as_slice()))
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(from_sqlx)?
            .ok_or_else(missing_epoch)?;
        tx.commit().await.map_err(from_sqlx)?;
        Ok(true)
    }

    async fn is_denied(&self, jti: &str) -> Result<bool, StoreError> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM denied_access_tokens WHERE jti = $1)")
            .bind(jti)
            .fetch_one(&self.0)
            .await
            .map_err(from_sqlx)
    }

    async fn poll(&self, recipient: &ClientId, max: u32) -> Result<Poll, StoreError> {
        let events = sqlx::query_as::<_, EventRow>(&format!(
            "SELECT {EVENT_COLUMNS}
             FROM revocation_deliveries d JOIN revocation_events e ON e.seq = d.event_seq
             WHERE d.client_id = $1 ORDER BY d.event_seq LIMIT $2"
        ))
        .bind(recipient.as_str())
        .bind(convert::poll_limit(max))
        .fetch_all(&self.0)
        .await
        .map_err(from_sqlx)?
        .into_iter()
        .map(FeedEvent::from)
        .collect();
        Ok(convert::poll(events, max))
    }

    async fn acknowledge(&self, recipient: &ClientId, jtis: &[String]) -> Result<u64, StoreError> {
        if jtis.is_empty() {
            return Ok(0);
        }
        sqlx::query(
            r#"DELETE FROM revocation_deliveries d USING revocation_events e
               WHERE d.client_id = $1 AND d.event_seq = e.seq AND e.jti = ANY($2)"#,
        )
        .bind(recipient.as_str())
        .bind(jtis)
        .execute(&self.0)
        .await
        .map(|done| done.rows_affected())
        .map_err(from_sqlx)
    }

    async fn latest_seq(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM revocation_events")
            .fetch_one(&self.0)
            .await
            .map_err(from_sqlx)
    }

    async fn list(&self, after_seq: i64, limit: u32) -> Result<Vec<FeedEvent>, StoreError> {
        Ok(sqlx::query_as::<_, EventRow>(&format!(
            "SELECT {EVENT_COLUMNS} FROM revocation_events e
             WHERE e.seq > $1 ORDER BY e.seq LIMIT $2"
        ))
        .bind(after_seq)
        .bind(convert::page_limit(limit))
        .fetch_all(&self.0)
        .await
        .map_err(from_sqlx)?
        .into_iter()
        .map(FeedEvent::from)
        .collect())
    }

    async fn purge(
        &self,
        now: OffsetDateTime,
        acknowledged_before: OffsetDateTime,
        undelivered_before: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        // Each delete stands alone, so no transaction: concurrent purges delete each row once.
        // The events go in a statement of their own, so that it sees the deliveries the first
        // one removed.
        let entries_and_deliveries: i64 = sqlx::query_scalar(
            r#"WITH denied AS (
                   DELETE FROM denied_access_tokens WHERE expires_at < $1 RETURNING 1
               ),
               deliveries AS (
                   DELETE FROM revocation_deliveries WHERE created_at < $2 RETURNING 1
               )
               SELECT (SELECT count(*) FROM denied) + (SELECT count(*) FROM deliveries)"#,
        )
        .bind(now)
        .bind(undelivered_before)
        .fetch_one(&self.0)
        .await
        .map_err(from_sqlx)?;
        let events = sqlx::query(
            r#"DELETE FROM revocation_events e
               WHERE e.created_at < $1
                 AND NOT EXISTS (SELECT 1 FROM revocation_deliveries d WHERE d.event_seq = e.seq)"#,
        )
        .bind(acknowledged_before)
        .execute(&self.0)
        .await
        .map_err(from_sqlx)?
        .rows_affected();
        Ok(u64::try_from(entries_and_deliveries).unwrap_or(0) + events)
    }
}
