//! The security-event trail on PostgreSQL (append-only, enforced by triggers).

use portcullis_core::audit::{RecordedEvent, SecurityEvent};
use portcullis_core::store::{SecurityEventStore, StoreError};
use serde_json::Value;
use sqlx::PgPool;
use sqlx::types::Json;
use time::OffsetDateTime;

use crate::convert;
use crate::error::from_sqlx;

#[derive(Debug, Clone)]
pub(crate) struct PgEvents(pub(crate) PgPool);

#[derive(sqlx::FromRow)]
struct EventRow {
    seq: i64,
    occurred_at: OffsetDateTime,
    actor: String,
    action: String,
    subject: Option<String>,
    details: Json<Value>,
    request_id: Option<String>,
}

impl TryFrom<EventRow> for RecordedEvent {
    type Error = StoreError;
    fn try_from(row: EventRow) -> Result<Self, StoreError> {
        Ok(Self {
            seq: row.seq,
            event: SecurityEvent {
                occurred_at: row.occurred_at,
                actor: row.actor,
                action: row.action,
                subject: row.subject,
                details: convert::event_details(row.details.0)?,
                request_id: row.request_id,
            },
        })
    }
}

#[async_trait::async_trait]
impl SecurityEventStore for PgEvents {
    async fn append(&self, event: &SecurityEvent) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            r#"INSERT INTO security_events (occurred_at, actor, action, subject, details, request_id)
               VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq"#,
        )
        .bind(event.occurred_at)
        .bind(&event.actor)
        .bind(&event.action)
        .bind(event.subject.as_deref())
        .bind(Json(&event.details))
        .bind(event.request_id.as_deref())
        .fetch_one(&self.0)
        .await
        .map_err(from_sqlx)
    }

    async fn list(&self, after_seq: i64, limit: u32) -> Result<Vec<RecordedEvent>, StoreError> {
        sqlx::query_as::<_, EventRow>(
            r#"SELECT seq, occurred_at, actor, action, subject, details, request_id
               FROM security_events WHERE seq > $1 ORDER BY seq LIMIT $2"#,
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
