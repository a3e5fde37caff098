//! Revocations, the access-token deny list and the revocation event feed on SQLite.
//!
//! A revoking call is one transaction whose first statement decides: a conditional
//! `UPDATE grants … WHERE revoked_at IS NULL`, or an `INSERT … ON CONFLICT DO NOTHING` into the
//! deny list, checked by what it changed. Being a write, it takes the write lock before anything
//! is read; SQLite serialises writers, so of concurrent revocations of one grant or `jti` exactly
//! one changes it (if it rolls back instead, the next writer goes ahead). The rest follows in the
//! same transaction: the stored tokens are revoked, the event is enqueued with one delivery per
//! recipient, and the epoch is bumped last.

use portcullis_core::client::ClientId;
use portcullis_core::client::secret::SecretHash;
use portcullis_core::store::{FeedEvent, NewFeedEvent, Poll, RevocationStore, StoreError};
use sqlx::{SqliteConnection, SqlitePool};
use time::OffsetDateTime;

use super::{from_micros, to_json, to_micros};
use crate::convert;
use crate::error::{corrupt, from_sqlx};

#[derive(Debug, Clone)]
pub(crate) struct SqliteRevocations(pub(crate) SqlitePool);

#[derive(sqlx::FromRow)]
struct EventRow {
    seq: i64,
    jti: String,
    kind: String,
    grant_id: Option<String>,
    token_jti: Option<String>,
    set_jwt: String,
    created_at: i64,
    pending: i64,
}

impl TryFrom<EventRow> for FeedEvent {
    type Error = StoreError;
    fn try_from(row: EventRow) -> Result<Self, StoreError> {
        Ok(Self {
            seq: row.seq,
            jti: row.jti,
            kind: row.kind,
            grant_id: row.grant_id,
            token_jti: row.token_jti,
            set: row.set_jwt,
            created_at: from_micros("revocation_events.created_at", row.created_at)?,
            pending: row.pending,
        })
    }
}

/// An event's columns (of `revocation_events e`) and its count of pending deliveries.
const EVENT_COLUMNS: &str =
    "e.seq, e.jti, e.kind, e.grant_id, e.token_jti, e.set_jwt, e.created_at,
    (SELECT count(*) FROM revocation_deliveries p WHERE p.event_seq = e.seq) AS pending";

/// The epoch row is created by the migration and never deleted.
fn missing_epoch() -> StoreError {
    corrupt("revocation_epoch", "the row is missing")
}

/// The end of every revoking transaction: enqueues the event with a delivery for each of its
/// recipients that is a client (`recipients`, a JSON array of client ids; others are skipped),
/// then bumps the epoch.
async fn enqueue_and_bump(
    tx: &mut SqliteConnection,
    event: &NewFeedEvent,
    recipients: &str,
) -> Result<(), StoreError> {
    let created_at = to_micros(event.created_at);
    let seq: i64 = sqlx::query_scalar(
        r#"INSERT INTO revocation_events (jti, kind, grant_id, token_jti, set_jwt, created_at)
           VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING seq"#,
    )
    .bind(event.jti.as_str())
    .bind(event.kind.as_str())
    .bind(event.grant_id.as_deref())
    .bind(event.token_jti.as_deref())
    .bind(event.set.as_str())
    .bind(created_at)
    .fetch_one(&mut *tx)
    .await
    .map_err(from_sqlx)?;
    sqlx::query(
        r#"INSERT INTO revocation_deliveries (client_id, event_seq, created_at)
           SELECT client_id, ?2, ?3 FROM clients
           WHERE client_id IN (SELECT value FROM json_each(?1))"#,
    )
    .bind(recipients)
    .bind(seq)
    .bind(created_at)
    .execute(&mut *tx)
    .await
    .map_err(from_sqlx)?;
    let bumped = sqlx::query("UPDATE revocation_epoch SET value = value + 1 WHERE id = 1")
        .execute(&mut *tx)
        .await
        .map_err(from_sqlx)?;
    if bumped.rows_affected() == 0 {
        return Err(missing_epoch());
    }
    Ok(())
}

/// The recipients as a JSON array, for `json_each`.
fn recipients(event: &NewFeedEvent) -> Result<String, StoreError> {
    let ids: Vec<&str> = event.recipients.iter().map(ClientId::as_str).collect();
    to_json(&ids)
}

#[async_trait::async_trait]
impl RevocationStore for SqliteRevocations {
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
        // Made before the transaction starts, so that a value that cannot be stored fails
        // without touching anything.
        let recipients = recipients(event)?;
        let now = to_micros(now);
        let mut tx = self.0.begin().await.map_err(from_sqlx)?;
        let done = sqlx::query(
            "UPDATE grants SET revoked_at = ?2 WHERE grant_id = ?1 AND revoked_at IS NULL",
        )
        .bind(grant_id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        if done.rows_affected() == 0 {
            // Nothing changed: either revoked before, or not there at all. Nothing is queued.
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM grants WHERE grant_id = ?1)")
                    .bind(grant_id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(from_sqlx)?;
            tx.rollback().await.map_err(from_sqlx)?;
            return if exists {
                Ok(false)
            } else {
                Err(StoreError::NotFound)
            };
        }
        // On any failure below (the event's jti taken), dropping the transaction rolls it back.
        for table in ["refresh_tokens", "access_tokens"] {
            sqlx::query(&format!(
                "UPDATE {table} SET revoked_at = ?2 WHERE grant_id = ?1 AND revoked_at IS NULL"
            ))
            .bind(grant_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        }
        enqueue_and_bump(&mut tx, event, &recipients).await?;
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
        let recipients = recipients(event)?;
        let now = to_micros(now);
        let mut tx = self.0.begin().await.map_err(from_sqlx)?;
        let denied = sqlx::query(
            r#"INSERT INTO denied_access_tokens (jti, expires_at, denied_at) VALUES (?1, ?2, ?3)
               ON CONFLICT (jti) DO NOTHING"#,
        )
        .bind(jti)
        .bind(to_micros(expires_at))
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        if denied.rows_affected() == 0 {
            // Denied before: nothing changes and nothing is queued.
            tx.rollback().await.map_err(from_sqlx)?;
            return Ok(false);
        }
        // On any failure below (the event's jti taken), dropping the transaction rolls it back.
        if let Some(handle) = handle {
            sqlx::query(
                "UPDATE access_tokens SET revoked_at = ?2 WHERE handle = ?1 AND revoked_at IS NULL",
            )
            .bind(handle.as_bytes().as_slice())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        }
        enqueue_and_bump(&mut tx, event, &recipients).await?;
        tx.commit().await.map_err(from_sqlx)?;
        Ok(true)
    }

    async fn is_denied(&self, jti: &str) -> Result<bool, StoreError> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM denied_access_tokens WHERE jti = ?1)")
            .bind(jti)
            .fetch_one(&self.0)
            .await
            .map_err(from_sqlx)
    }

    async fn poll(&self, recipient: &ClientId, max: u32) -> Result<Poll, StoreError> {
        let events = sqlx::query_as::<_, EventRow>(&format!(
            "SELECT {EVENT_COLUMNS}
             FROM revocation_deliveries d JOIN revocation_events e ON e.seq = d.event_seq
             WHERE d.client_id = ?1 ORDER BY d.event_seq LIMIT ?2"
        ))
        .bind(recipient.as_str())
        .bind(convert::poll_limit(max))
        .fetch_all(&self.0)
        .await
        .map_err(from_sqlx)?
        .into_iter()
        .map(FeedEvent::try_from)
        .collect::<Result<_, _>>()?;
        Ok(convert::poll(events, max))
    }

    async fn acknowledge(&self, recipient: &ClientId, jtis: &[String]) -> Result<u64, StoreError> {
        if jtis.is_empty() {
            return Ok(0);
        }
        sqlx::query(
            r#"DELETE FROM revocation_deliveries
               WHERE client_id = ?1
                 AND event_seq IN (SELECT seq FROM revocation_events
                                   WHERE jti IN (SELECT value FROM json_each(?2)))"#,
        )
        .bind(recipient.as_str())
        .bind(to_json(&jtis)?)
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
        sqlx::query_as::<_, EventRow>(&format!(
            "SELECT {EVENT_COLUMNS} FROM revocation_events e
             WHERE e.seq > ?1 ORDER BY e.seq LIMIT ?2"
        ))
        .bind(after_seq)
        .bind(convert::page_limit(limit))
        .fetch_all(&self.0)
        .await
        .map_err(from_sqlx)?
        .into_iter()
        .map(FeedEvent::try_from)
        .collect()
    }

    async fn purge(
        &self,
        now: OffsetDateTime,
        acknowledged_before: OffsetDateTime,
        undelivered_before: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        // Each delete stands alone, so no transaction; the events go last, so that their check
        // sees the deliveries just removed.
        let mut removed = 0;
        for (statement, before) in [
            (
                "DELETE FROM denied_access_tokens WHERE expires_at < ?1",
                now,
            ),
            (
                "DELETE FROM revocation_deliveries WHERE created_at < ?1",
                undelivered_before,
            ),
            (
                r#"DELETE FROM revocation_events
                   WHERE created_at < ?1
                     AND NOT EXISTS (SELECT 1 FROM revocation_deliveries d
                                     WHERE d.event_seq = revocation_events.seq)"#,
                acknowledged_before,
            ),
        ] {
            removed += sqlx::query(statement)
                .bind(to_micros(before))
                .execute(&self.0)
                .await
                .map_err(from_sqlx)?
                .rows_affected();
        }
        Ok(removed)
    }
}
