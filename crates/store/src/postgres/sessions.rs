//! Browser sessions and interactions on PostgreSQL. Advancing an interaction is a single
//! `UPDATE … WHERE state = expected`: JSONB equality is semantic (key order and whitespace do not
//! matter), and of concurrent updates of one row the first takes the row lock and the others,
//! once it commits, re-check the condition on the new row version, find the state moved on and
//! update nothing. Removing an interaction is a single `DELETE`, whose row count says who won.

use portcullis_core::client::secret::SecretHash;
use portcullis_core::store::{Interaction, InteractionStore, Session, SessionStore, StoreError};
use serde_json::{Map, Value};
use sqlx::PgPool;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::convert;
use crate::error::{from_sqlx, one_row};

#[derive(Debug, Clone)]
pub(crate) struct PgSessions(pub(crate) PgPool);

#[derive(Debug, Clone)]
pub(crate) struct PgInteractions(pub(crate) PgPool);

#[derive(sqlx::FromRow)]
struct SessionRow {
    handle: Vec<u8>,
    user_id: Uuid,
    auth_time: OffsetDateTime,
    acr: Option<String>,
    amr: Json<serde_json::Value>,
    created_at: OffsetDateTime,
    last_seen_at: OffsetDateTime,
    expires_at: OffsetDateTime,
}

impl TryFrom<SessionRow> for Session {
    type Error = StoreError;
    fn try_from(row: SessionRow) -> Result<Self, StoreError> {
        Ok(Self {
            handle: convert::session_handle(&row.handle)?,
            user_id: row.user_id,
            auth_time: row.auth_time,
            acr: row.acr,
            amr: convert::session_amr(row.amr.0)?,
            created_at: row.created_at,
            last_seen_at: row.last_seen_at,
            expires_at: row.expires_at,
        })
    }
}

const SESSION_COLUMNS: &str =
    "handle, user_id, auth_time, acr, amr, created_at, last_seen_at, expires_at";

#[async_trait::async_trait]
impl SessionStore for PgSessions {
    async fn add(&self, session: &Session) -> Result<(), StoreError> {
        sqlx::query(
            r#"INSERT INTO sessions (handle, user_id, auth_time, acr, amr, created_at,
                                     last_seen_at, expires_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"#,
        )
        .bind(session.handle.as_bytes().as_slice())
        .bind(session.user_id)
        .bind(session.auth_time)
        .bind(session.acr.as_deref())
        .bind(Json(&session.amr))
        .bind(session.created_at)
        .bind(session.last_seen_at)
        .bind(session.expires_at)
        .execute(&self.0)
        .await
        .map(drop)
        .map_err(from_sqlx)
    }

    async fn find(&self, handle: &SecretHash, now: OffsetDateTime) -> Result<Session, StoreError> {
        sqlx::query_as::<_, SessionRow>(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE handle = $1 AND expires_at > $2"
        ))
        .bind(handle.as_bytes().as_slice())
        .bind(now)
        .fetch_one(&self.0)
        .await
        .map_err(from_sqlx)?
        .try_into()
    }

    async fn touch(&self, handle: &SecretHash, now: OffsetDateTime) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE handle = $1")
            .bind(handle.as_bytes().as_slice())
            .bind(now)
            .execute(&self.0)
            .await
            .map_err(from_sqlx)?;
        one_row(done.rows_affected())
    }

    async fn remove(&self, handle: &SecretHash) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE handle = $1")
            .bind(handle.as_bytes().as_slice())
            .execute(&self.0)
            .await
            .map(drop)
            .map_err(from_sqlx)
    }

    async fn remove_for_user(&self, user_id: Uuid) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&self.0)
            .await
            .map(|done| done.rows_affected())
            .map_err(from_sqlx)
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.0)
            .await
            .map(|done| done.rows_affected())
            .map_err(from_sqlx)
    }
}

#[derive(sqlx::FromRow)]
struct InteractionRow {
    handle: Vec<u8>,
    request_handle: Vec<u8>,
    client_id: String,
    state: Json<serde_json::Value>,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
}

impl TryFrom<InteractionRow> for Interaction {
    type Error = StoreError;
    fn try_from(row: InteractionRow) -> Result<Self, StoreError> {
        Ok(Self {
            handle: convert::interaction_handle(&row.handle)?,
            request_handle: convert::interaction_request_handle(&row.request_handle)?,
            client_id: convert::client_id(row.client_id)?,
            state: convert::interaction_state(row.state.0)?,
            created_at: row.created_at,
            expires_at: row.expires_at,
        })
    }
}

const INTERACTION_COLUMNS: &str =
    "handle, request_handle, client_id, state, created_at, expires_at";

#[async_trait::async_trait]
impl InteractionStore for PgInteractions {
    async fn add(&self, interaction: &Interaction) -> Result<(), StoreError> {
        sqlx::query(
            r#"INSERT INTO interactions (handle, request_handle, client_id, state, created_at,
                                         expires_at)
               VALUES ($1, $2, $3, $4, $5, $6)"#,
        )
        .bind(interaction.handle.as_bytes().as_slice())
        .bind(interaction.request_handle.as_bytes().as_slice())
        .bind(interaction.client_id.as_str())
        .bind(Json(&interaction.state))
        .bind(interaction.created_at)
        .bind(interaction.expires_at)
        .execute(&self.0)
        .await
        .map(drop)
        .map_err(from_sqlx)
    }

    async fn find(
        &self,
        handle: &SecretHash,
        now: OffsetDateTime,
    ) -> Result<Interaction, StoreError> {
        sqlx::query_as::<_, InteractionRow>(&format!(
            "SELECT {INTERACTION_COLUMNS} FROM interactions WHERE handle = $1 AND expires_at > $2"
        ))
        .bind(handle.as_bytes().as_slice())
        .bind(now)
        .fetch_one(&self.0)
        .await
        .map_err(from_sqlx)?
        .try_into()
    }

    async fn advance(
        &self,
        handle: &SecretHash,
        expected: &Map<String, Value>,
        state: &Map<String, Value>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE interactions SET state = $3 WHERE handle = $1 AND state = $2::jsonb",
        )
        .bind(handle.as_bytes().as_slice())
        .bind(Json(expected))
        .bind(Json(state))
        .execute(&self.0)
        .await
        .map_err(from_sqlx)?;
        if done.rows_affected() > 0 {
            return Ok(true);
        }
        // Nothing changed: either the state moved on, or the interaction is not there at all.
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM interactions WHERE handle = $1)")
                .bind(handle.as_bytes().as_slice())
                .fetch_one(&self.0)
                .await
                .map_err(from_sqlx)?;
        if exists {
            Ok(false)
        } else {
            Err(StoreError::NotFound)
        }
    }

    async fn remove(&self, handle: &SecretHash) -> Result<bool, StoreError> {
        sqlx::query("DELETE FROM interactions WHERE handle = $1")
            .bind(handle.as_bytes().as_slice())
            .execute(&self.0)
            .await
            .map(|done| done.rows_affected() > 0)
            .map_err(from_sqlx)
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM interactions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.0)
            .await
            .map(|done| done.rows_affected())
            .map_err(from_sqlx)
    }
}
