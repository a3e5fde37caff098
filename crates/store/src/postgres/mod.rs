//! The PostgreSQL store: production, and several replicas on one database.

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

use portcullis_core::store::{Backend, Store, StoreError};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::error::from_sqlx;
use crate::{ConnectError, PoolOptions};

/// The migrations of `migrations/postgres`, compiled in.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// A store on a PostgreSQL pool.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    keys: keys::PgSigningKeys,
    clients: clients::PgClients,
    users: users::PgUsers,
    replay: replay::PgReplay,
    resources: resources::PgResources,
    events: events::PgEvents,
    pushed: pushed::PgPushed,
    grants: grants::PgGrants,
    codes: grants::PgCodes,
    sessions: sessions::PgSessions,
    interactions: sessions::PgInteractions,
    refresh_tokens: refresh::PgRefreshTokens,
    access_tokens: tokens::PgAccessTokens,
    revocations: revocations::PgRevocations,
    rate_limits: rate_limits::PgRateLimits,
    login_throttle: login_throttle::PgLoginThrottle,
}

impl PgStore {
    /// Connects a pool to `url`.
    ///
    /// # Errors
    /// [`ConnectError`] if the URL is bad or the server unreachable.
    pub async fn connect(url: &str, options: &PoolOptions) -> Result<Self, ConnectError> {
        use std::str::FromStr as _;
        let connect = sqlx::postgres::PgConnectOptions::from_str(url)
            .map_err(|e| ConnectError::BadUrl(e.to_string()))?
            .application_name("portcullis");
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(ConnectError::Unreachable)?;
        Ok(Self::from_pool(pool))
    }

    /// Wraps an existing pool.
    #[must_use]
    pub fn from_pool(pool: PgPool) -> Self {
        Self {
            keys: keys::PgSigningKeys(pool.clone()),
            clients: clients::PgClients(pool.clone()),
            users: users::PgUsers(pool.clone()),
            replay: replay::PgReplay(pool.clone()),
            resources: resources::PgResources(pool.clone()),
            events: events::PgEvents::new(pool.clone()),
            pushed: pushed::PgPushed(pool.clone()),
            grants: grants::PgGrants(pool.clone()),
            codes: grants::PgCodes(pool.clone()),
            sessions: sessions::PgSessions(pool.clone()),
            interactions: sessions::PgInteractions(pool.clone()),
            refresh_tokens: refresh::PgRefreshTokens(pool.clone()),
            access_tokens: tokens::PgAccessTokens(pool.clone()),
            revocations: revocations::PgRevocations(pool.clone()),
            rate_limits: rate_limits::PgRateLimits(pool.clone()),
            login_throttle: login_throttle::PgLoginThrottle(pool.clone()),
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
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
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
