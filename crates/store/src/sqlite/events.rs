//! The security-event trail on SQLite (append-only, enforced by triggers).

use portcullis_core::audit::{RecordedEvent, SecurityEvent};
use portcullis_core::store::{SecurityEventStore, StoreError};
use sqlx::SqlitePool;

use super::{from_micros, json, to_json, to_micros};
use crate::convert;
use crate::error::from_sqlx;

#[derive(Debug, Clone)]
pub(crate) struct SqliteEvents(pub(crate) SqlitePool);

#[derive(sqlx::FromRow)]
struct EventRow {
    seq: i64,
    occurred_at: i64,
    actor: String,
    action: String,
    subject: Option<String>,
    details: String,
    request_id: Option<String>,
}

impl TryFrom<EventRow> for RecordedEvent {
    type Error = StoreError;
    fn try_from(row: EventRow) -> Result<Self, StoreError> {
        Ok(Self {
            seq: row.seq,
            event: SecurityEvent {
                occurred_at: from_micros("security_events.occurred_at", row.occurred_at)?,
                actor: row.actor,
                action: row.action,
                subject: row.subject,
                details: convert::event_details(json("security_events.details", &row.details)?)?,
                request_id: row.request_id,
            },
        })
    }
}

#[async_trait::async_trait]
impl SecurityEventStore for SqliteEvents {
    async fn append(&self, event: &SecurityEvent) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            r#"INSERT INTO security_events (occurred_at, actor, action, subject, details, request_id)
               VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING seq"#,
        )
        .bind(to_micros(event.occurred_at))
        .bind(&event.actor)
        .bind(&event.action)
        .bind(event.subject.as_deref())
        .bind(to_json(&event.details)?)
        .bind(event.request_id.as_deref())
        .fetch_one(&self.0)
        .await
        .map_err(from_sqlx)
    }

    async fn list(&self, after_seq: i64, limit: u32) -> Result<Vec<RecordedEvent>, StoreError> {
        sqlx::query_as::<_, EventRow>(
            r#"SELECT seq, occurred_at, actor, action, subject, details, request_id
               FROM security_events WHERE seq > ?1 ORDER BY seq LIMIT ?2"#,
        )
        .bind(after_seq)
        .bind(convert::page_limit(limit))
        .fetch_all(&self.0)
        .await
        .map_err(from_sqlx)?
        .into_iter()
        .map(RecordedEvent::try_from)
        .collect()
    }
}
