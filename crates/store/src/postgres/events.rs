//! The security-event trail on PostgreSQL (append-only, enforced by triggers): events in the hash
//! chain of the store instance that wrote them, committed in batches by the chain writer
//! ([`crate::audit_writer`]), the chains table and the seals.

use std::sync::Arc;

use portcullis_core::audit::chain::ChainHead;
use portcullis_core::audit::seal::Seal;
use portcullis_core::audit::{RecordedEvent, SecurityEvent};
use portcullis_core::store::{ChainInfo, EventFilter, SecurityEventStore, StoreError, Unchained};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{PgPool, Postgres, QueryBuilder};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit_writer::{ChainSink, ChainWriter, ChainedEvent, NewChain, in_row_order};
use crate::convert;
use crate::error::from_sqlx;

#[derive(Debug, Clone)]
pub(crate) struct PgEvents {
    pool: PgPool,
    writer: ChainWriter,
}

impl PgEvents {
    pub(crate) fn new(pool: PgPool) -> Self {
        Self {
            writer: ChainWriter::new(Arc::new(Sink(pool.clone()))),
            pool,
        }
    }
}

/// The columns every event query reads, in [`EventRow`]'s order.
const COLUMNS: &str = "SELECT seq, occurred_at, actor, action, subject, details, request_id, client_id, chain_id, chain_seq, prev_hash, hash FROM security_events";

#[derive(sqlx::FromRow)]
struct EventRow {
    seq: i64,
    occurred_at: OffsetDateTime,
    actor: String,
    action: String,
    subject: Option<String>,
    details: Json<Value>,
    request_id: Option<String>,
    client_id: Option<String>,
    chain_id: Option<Uuid>,
    chain_seq: Option<i64>,
    prev_hash: Option<Vec<u8>>,
    hash: Option<Vec<u8>>,
}

impl TryFrom<EventRow> for RecordedEvent {
    type Error = StoreError;
    fn try_from(row: EventRow) -> Result<Self, StoreError> {
        Ok(Self {
            seq: row.seq,
            link: convert::chain_link(
                row.seq,
                row.chain_id,
                row.chain_seq,
                row.prev_hash.as_deref(),
                row.hash.as_deref(),
            ),
            event: SecurityEvent {
                occurred_at: row.occurred_at,
                actor: row.actor,
                action: row.action,
                subject: row.subject,
                details: convert::event_details(row.details.0)?,
                request_id: row.request_id,
                client_id: row.client_id,
            },
        })
    }
}

#[derive(sqlx::FromRow)]
struct SealRow {
    chain_id: Uuid,
    chain_seq: i64,
    head_hash: Vec<u8>,
    sealed_at: OffsetDateTime,
    prev_mac: Vec<u8>,
    mac: Vec<u8>,
}

impl TryFrom<SealRow> for Seal {
    type Error = StoreError;
    fn try_from(row: SealRow) -> Result<Self, StoreError> {
        Ok(Self {
            chain_id: row.chain_id,
            chain_seq: row.chain_seq,
            head_hash: convert::digest("audit_seals.head_hash", &row.head_hash)?,
            sealed_at: row.sealed_at,
            prev_mac: convert::digest("audit_seals.prev_mac", &row.prev_mac)?,
            mac: convert::digest("audit_seals.mac", &row.mac)?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ChainRow {
    chain_id: Uuid,
    started_at: Option<OffsetDateTime>,
    host: Option<String>,
    registered: bool,
}

/// The writer's side on PostgreSQL.
struct Sink(PgPool);

#[async_trait::async_trait]
impl ChainSink for Sink {
    async fn commit(
        &self,
        chain: Option<&NewChain>,
        rows: &[ChainedEvent],
    ) -> Result<Vec<i64>, StoreError> {
        let mut tx = self.0.begin().await.map_err(from_sqlx)?;
        if let Some(chain) = chain {
            sqlx::query(
                r#"INSERT INTO audit_chains (chain_id, started_at, host) VALUES ($1, $2, $3)
                   ON CONFLICT (chain_id) DO NOTHING"#,
            )
            .bind(chain.chain_id)
            .bind(chain.started_at)
            .bind(&chain.host)
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        }
        let mut insert: QueryBuilder<'_, Postgres> = QueryBuilder::new(
            "INSERT INTO security_events (occurred_at, actor, action, subject, details, request_id, client_id, chain_id, chain_seq, prev_hash, hash) ",
        );
        insert.push_values(rows, |mut row, (event, link)| {
            row.push_bind(event.occurred_at)
                .push_bind(&event.actor)
                .push_bind(&event.action)
                .push_bind(event.subject.as_deref())
                .push_bind(Json(&event.details))
                .push_bind(event.request_id.as_deref())
                .push_bind(event.client_id.as_deref())
                .push_bind(link.chain_id)
                .push_bind(link.chain_seq)
                .push_bind(link.prev_hash.as_slice())
                .push_bind(link.hash.as_slice());
        });
        insert.push(" RETURNING seq, chain_seq");
        let returned: Vec<(i64, i64)> = insert
            .build_query_as()
            .fetch_all(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)?;
        in_row_order(rows, returned)
    }

    async fn head(&self, chain_id: Uuid) -> Result<Option<ChainHead>, StoreError> {
        let row: Option<(i64, Vec<u8>)> = sqlx::query_as(
            r#"SELECT chain_seq, hash FROM security_events WHERE chain_id = $1
               ORDER BY chain_seq DESC LIMIT 1"#,
        )
        .bind(chain_id)
        .fetch_optional(&self.0)
        .await
        .map_err(from_sqlx)?;
        row.map(|(chain_seq, hash)| {
            Ok(ChainHead {
                chain_id,
                chain_seq,
                hash: convert::digest("security_events.hash", &hash)?,
            })
        })
        .transpose()
    }
}

#[async_trait::async_trait]
impl SecurityEventStore for PgEvents {
    async fn append(&self, event: &SecurityEvent) -> Result<i64, StoreError> {
        self.writer.append(event).await
    }

    async fn list(&self, after_seq: i64, limit: u32) -> Result<Vec<RecordedEvent>, StoreError> {
        self.find(&EventFilter::default(), after_seq, limit).await
    }

    async fn find(
        &self,
        filter: &EventFilter,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        // Only the conditions asked for, so that each filter can use its index.
        let mut query: QueryBuilder<'_, Postgres> = QueryBuilder::new(COLUMNS);
        query.push(" WHERE seq > ").push_bind(after_seq);
        if let Some(since) = filter.since {
            query.push(" AND occurred_at >= ").push_bind(since);
        }
        if let Some(until) = filter.until {
            query.push(" AND occurred_at < ").push_bind(until);
        }
        if let Some(client_id) = &filter.client_id {
            query.push(" AND client_id = ").push_bind(client_id);
        }
        if let Some(subject) = &filter.subject {
            query.push(" AND subject = ").push_bind(subject);
        }
        if let Some(action) = &filter.action {
            query.push(" AND action = ").push_bind(action);
        }
        query
            .push(" ORDER BY seq LIMIT ")
            .push_bind(convert::page_limit(limit));
        query
            .build_query_as::<EventRow>()
            .fetch_all(&self.pool)
            .await
            .map_err(from_sqlx)?
            .into_iter()
            .map(RecordedEvent::try_from)
            .collect()
    }

    fn head(&self) -> Option<ChainHead> {
        self.writer.head()
    }

    async fn add_seal(&self, seal: &Seal) -> Result<(), StoreError> {
        sqlx::query(
            r#"INSERT INTO audit_seals (chain_id, chain_seq, head_hash, sealed_at, prev_mac, mac)
               VALUES ($1, $2, $3, $4, $5, $6)"#,
        )
        .bind(seal.chain_id)
        .bind(seal.chain_seq)
        .bind(seal.head_hash.as_slice())
        .bind(seal.sealed_at)
        .bind(seal.prev_mac.as_slice())
        .bind(seal.mac.as_slice())
        .execute(&self.pool)
        .await
        .map(drop)
        .map_err(from_sqlx)
    }

    async fn last_seal(&self, chain_id: Uuid) -> Result<Option<Seal>, StoreError> {
        sqlx::query_as::<_, SealRow>(
            r#"SELECT chain_id, chain_seq, head_hash, sealed_at, prev_mac, mac FROM audit_seals
               WHERE chain_id = $1 ORDER BY chain_seq DESC LIMIT 1"#,
        )
        .bind(chain_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(from_sqlx)?
        .map(Seal::try_from)
        .transpose()
    }

    async fn chains(&self) -> Result<Vec<ChainInfo>, StoreError> {
        let rows = sqlx::query_as::<_, ChainRow>(
            r#"SELECT chain_id, started_at, host, TRUE AS registered FROM audit_chains
               UNION ALL
               SELECT named.chain_id, NULL, NULL, FALSE FROM (
                   SELECT DISTINCT chain_id FROM security_events WHERE chain_id IS NOT NULL
                   UNION SELECT chain_id FROM audit_seals
               ) AS named
               WHERE NOT EXISTS (SELECT 1 FROM audit_chains c WHERE c.chain_id = named.chain_id)
               ORDER BY started_at NULLS LAST, chain_id"#,
        )
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?;
        Ok(rows
            .into_iter()
            .map(|row| ChainInfo {
                chain_id: row.chain_id,
                started_at: row.started_at,
                host: row.host,
                registered: row.registered,
            })
            .collect())
    }

    async fn chain_events(
        &self,
        chain_id: Uuid,
        after: (i64, i64),
        limit: u32,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        sqlx::query_as::<_, EventRow>(
            r#"SELECT seq, occurred_at, actor, action, subject, details, request_id, client_id,
                      chain_id, chain_seq, prev_hash, hash
               FROM security_events
               WHERE chain_id = $1 AND (chain_seq, seq) > ($2, $3)
               ORDER BY chain_seq, seq LIMIT $4"#,
        )
        .bind(chain_id)
        .bind(after.0)
        .bind(after.1)
        .bind(convert::page_limit(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?
        .into_iter()
        .map(RecordedEvent::try_from)
        .collect()
    }

    async fn seals(&self, chain_id: Uuid) -> Result<Vec<Seal>, StoreError> {
        sqlx::query_as::<_, SealRow>(
            r#"SELECT chain_id, chain_seq, head_hash, sealed_at, prev_mac, mac FROM audit_seals
               WHERE chain_id = $1 ORDER BY chain_seq, sealed_at"#,
        )
        .bind(chain_id)
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?
        .into_iter()
        .map(Seal::try_from)
        .collect()
    }

    async fn unchained(&self) -> Result<Unchained, StoreError> {
        sqlx::query_as::<_, convert::UnchainedRow>(&convert::unchained_query("octet_length"))
            .fetch_one(&self.pool)
            .await
            .map_err(from_sqlx)?
            .try_into()
    }
}
