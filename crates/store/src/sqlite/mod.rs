//! The SQLite store: the embedded default for a single node. WAL mode, so readers never wait for
//! the writer; a busy timeout, so concurrent writers queue instead of failing.

mod clients;
mod events;
mod grants;
mod keys;
mod pushed;
mod replay;
mod resources;
mod users;

use std::str::FromStr as _;
use std::time::Duration;

use portcullis_core::store::{Backend, Store, StoreError};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use time::OffsetDateTime;

use crate::error::{corrupt, from_sqlx};
use crate::{ConnectError, PoolOptions};

/// The migrations of `migrations/sqlite`, compiled in.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

/// A store on a SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    keys: keys::SqliteSigningKeys,
    clients: clients::SqliteClients,
    users: users::SqliteUsers,
    replay: replay::SqliteReplay,
    resources: resources::SqliteResources,
    events: events::SqliteEvents,
    pushed: pushed::SqlitePushed,
    grants: grants::SqliteGrants,
    codes: grants::SqliteCodes,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file `url` names.
    ///
    /// # Errors
    /// [`ConnectError`] if the URL is bad or the file cannot be opened.
    pub async fn connect(url: &str, options: &PoolOptions) -> Result<Self, ConnectError> {
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|e| ConnectError::BadUrl(e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(ConnectError::Unreachable)?;
        Ok(Self::from_pool(pool))
    }

    /// Wraps an existing pool.
    #[must_use]
    pub fn from_pool(pool: SqlitePool) -> Self {
        Self {
            keys: keys::SqliteSigningKeys(pool.clone()),
            clients: clients::SqliteClients(pool.clone()),
            users: users::SqliteUsers(pool.clone()),
            replay: replay::SqliteReplay(pool.clone()),
            resources: resources::SqliteResources(pool.clone()),
            events: events::SqliteEvents(pool.clone()),
            pushed: pushed::SqlitePushed(pool.clone()),
            grants: grants::SqliteGrants(pool.clone()),
            codes: grants::SqliteCodes(pool.clone()),
            pool,
        }
    }

    /// Applies pending migrations.
    ///
    /// # Errors
    /// [`ConnectError::Migration`] if one fails.
    pub async fn migrate(&self) -> Result<(), ConnectError> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(ConnectError::Migration)
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(from_sqlx)
    }

    crate::aggregate_accessors!();
}

/// A timestamp as stored: microseconds since the Unix epoch. Saturates far outside any real date.
pub(crate) fn to_micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

/// A stored timestamp back into a date.
pub(crate) fn from_micros(column: &str, micros: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .map_err(|e| corrupt(column, e))
}

/// A JSON column back into a value.
pub(crate) fn json(column: &str, text: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(column, e))
}

/// A value into a JSON column.
pub(crate) fn to_json(value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_at_microsecond_precision() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_000).unwrap();
        assert_eq!(from_micros("t", to_micros(at)).unwrap(), at);
        assert!(from_micros("t", i64::MAX).is_err());
    }
}
