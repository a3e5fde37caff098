//! The SQLite store: the embedded default for a single node. WAL mode, so readers never wait for
//! the writer; a busy timeout, so concurrent writers queue instead of failing.

mod clients;
mod events;
mod grants;
mod keys;
mod login_throttle;
mod pushed;
mod rate_limits;
mod refresh;
mod replay;
mod resources;
mod revocations;
mod sessions;
mod tokens;
mod users;

use std::str::FromStr as _;
use std::time::Duration;

use portcullis_core::store::{Backend, Store, StoreError};
use serde_json::{Map, Value};
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
    sessions: sessions::SqliteSessions,
    interactions: sessions::SqliteInteractions,
    refresh_tokens: refresh::SqliteRefreshTokens,
    access_tokens: tokens::SqliteAccessTokens,
    revocations: revocations::SqliteRevocations,
    rate_limits: rate_limits::SqliteRateLimits,
    login_throttle: login_throttle::SqliteLoginThrottle,
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
            events: events::SqliteEvents::new(pool.clone()),
            pushed: pushed::SqlitePushed(pool.clone()),
            grants: grants::SqliteGrants(pool.clone()),
            codes: grants::SqliteCodes(pool.clone()),
            sessions: sessions::SqliteSessions(pool.clone()),
            interactions: sessions::SqliteInteractions(pool.clone()),
            refresh_tokens: refresh::SqliteRefreshTokens(pool.clone()),
            access_tokens: tokens::SqliteAccessTokens(pool.clone()),
            revocations: revocations::SqliteRevocations(pool.clone()),
            rate_limits: rate_limits::SqliteRateLimits(pool.clone()),
            login_throttle: login_throttle::SqliteLoginThrottle(pool.clone()),
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
pub(crate) use portcullis_core::clock::micros as to_micros;

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

/// An object into a JSON column that is compared as text: canonical JSON, with the members of
/// every object, at every depth, in key order and no whitespace, so that two semantically equal
/// objects give the same text whatever order their members were inserted in. `to_json` alone
/// would not do: serde_json's `preserve_order` feature is on in this build (josekit enables it),
/// so a `Map` keeps insertion order.
pub(crate) fn to_canonical_json(members: &Map<String, Value>) -> Result<String, StoreError> {
    to_json(&CanonicalObject(members))
}

/// An object serialised with its members sorted by key, and its values canonical.
struct CanonicalObject<'a>(&'a Map<String, Value>);

/// A value serialised with the members of every object in it sorted by key.
struct Canonical<'a>(&'a Value);

impl serde::Serialize for CanonicalObject<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut members: Vec<(&String, &Value)> = self.0.iter().collect();
        members.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut map = serializer.serialize_map(Some(members.len()))?;
        for (key, value) in members {
            map.serialize_entry(key, &Canonical(value))?;
        }
        map.end()
    }
}

impl serde::Serialize for Canonical<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq as _;
        match self.0 {
            Value::Object(members) => CanonicalObject(members).serialize(serializer),
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&Canonical(item))?;
                }
                seq.end()
            }
            scalar => scalar.serialize(serializer),
        }
    }
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

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(members) => members,
            _ => unreachable!("an object literal"),
        }
    }

    #[test]
    fn canonical_json_sorts_members_at_every_depth_whatever_the_insertion_order() {
        let one = object(serde_json::json!({
            "stage": "consent",
            "amr": ["pwd", "otp"],
            "user": {"id": "u-1", "acr": null, "nested": [{"b": 1, "a": 2.5}]},
            "attempts": 2
        }));
        let other = object(serde_json::json!({
            "attempts": 2,
            "user": {"nested": [{"a": 2.5, "b": 1}], "acr": null, "id": "u-1"},
            "amr": ["pwd", "otp"],
            "stage": "consent"
        }));
        let text = to_canonical_json(&one).unwrap();
        assert_eq!(
            text,
            r#"{"amr":["pwd","otp"],"attempts":2,"stage":"consent","user":{"acr":null,"id":"u-1","nested":[{"a":2.5,"b":1}]}}"#
        );
        assert_eq!(to_canonical_json(&other).unwrap(), text);
        // Read back and written again, it is the same text: what `find` hands out matches.
        let read_back = object(json("t", &text).unwrap());
        assert_eq!(to_canonical_json(&read_back).unwrap(), text);
        // Array order is meaningful and kept.
        let swapped = object(serde_json::json!({"amr": ["otp", "pwd"]}));
        assert_eq!(
            to_canonical_json(&swapped).unwrap(),
            r#"{"amr":["otp","pwd"]}"#
        );
    }
}
