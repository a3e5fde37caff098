//! `portcullis-store` implements the storage traits of `portcullis_core::store` twice: on
//! PostgreSQL for production and several replicas, and on SQLite as the embedded single-node
//! default. [`connect`] picks the backend from the database URL; [`migrate`] applies the
//! migrations in `migrations/{postgres,sqlite}`, which are compiled into the binary.

mod audit_writer;
mod convert;

/// The per-aggregate accessors of `Store`, identical for both backends: each backend's store
/// struct has one field per aggregate with these names. A new aggregate adds a line here.
macro_rules! aggregate_accessors {
    () => {
        fn signing_keys(&self) -> &dyn portcullis_core::store::SigningKeyStore {
            &self.keys
        }

        fn clients(&self) -> &dyn portcullis_core::store::ClientStore {
            &self.clients
        }

        fn users(&self) -> &dyn portcullis_core::store::UserStore {
            &self.users
        }

        fn resource_servers(&self) -> &dyn portcullis_core::store::ResourceServerStore {
            &self.resources
        }

        fn replay(&self) -> &dyn portcullis_core::store::ReplayStore {
            &self.replay
        }

        fn events(&self) -> &dyn portcullis_core::store::SecurityEventStore {
            &self.events
        }

        fn pushed_requests(&self) -> &dyn portcullis_core::store::PushedRequestStore {
            &self.pushed
        }

        fn grants(&self) -> &dyn portcullis_core::store::GrantStore {
            &self.grants
        }

        fn codes(&self) -> &dyn portcullis_core::store::CodeStore {
            &self.codes
        }

        fn sessions(&self) -> &dyn portcullis_core::store::SessionStore {
            &self.sessions
        }

        fn interactions(&self) -> &dyn portcullis_core::store::InteractionStore {
            &self.interactions
        }

        fn refresh_tokens(&self) -> &dyn portcullis_core::store::RefreshTokenStore {
            &self.refresh_tokens
        }

        fn access_tokens(&self) -> &dyn portcullis_core::store::AccessTokenStore {
            &self.access_tokens
        }

        fn revocations(&self) -> &dyn portcullis_core::store::RevocationStore {
            &self.revocations
        }

        fn rate_limits(&self) -> &dyn portcullis_core::store::RateLimitStore {
            &self.rate_limits
        }

        fn login_throttle(&self) -> &dyn portcullis_core::store::LoginThrottleStore {
            &self.login_throttle
        }
    };
}
pub(crate) use aggregate_accessors;
mod error;
pub mod postgres;
pub mod sqlite;

use std::sync::Arc;

use portcullis_core::store::Store;

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL is not a `postgres://`, `postgresql://` or `sqlite:` URL, or does not parse.
    #[error("database_url: {0}")]
    BadUrl(String),
    /// The database could not be reached or opened.
    #[error("cannot open the database: {0}")]
    Unreachable(#[source] sqlx::Error),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migration(#[source] sqlx::migrate::MigrateError),
}

/// Which backend a database URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlKind {
    /// `postgres://` or `postgresql://`.
    Postgres,
    /// `sqlite:`.
    Sqlite,
}

/// Checks a database URL without connecting.
///
/// # Errors
/// [`ConnectError::BadUrl`] naming what is wrong with it.
pub fn check_url(url: &str) -> Result<UrlKind, ConnectError> {
    use std::str::FromStr as _;
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        sqlx::postgres::PgConnectOptions::from_str(url)
            .map_err(|e| ConnectError::BadUrl(format!("not a valid PostgreSQL URL: {e}")))?;
        Ok(UrlKind::Postgres)
    } else if url.starts_with("sqlite:") {
        sqlx::sqlite::SqliteConnectOptions::from_str(url)
            .map_err(|e| ConnectError::BadUrl(format!("not a valid SQLite URL: {e}")))?;
        Ok(UrlKind::Sqlite)
    } else {
        Err(ConnectError::BadUrl(
            "expected a URL starting with postgres://, postgresql:// or sqlite:".into(),
        ))
    }
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// How long to wait for a connection before failing the request.
    pub acquire_timeout: std::time::Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: std::time::Duration::from_secs(5),
        }
    }
}

/// Opens the store the URL names. Does not migrate.
///
/// # Errors
/// [`ConnectError`] if the URL is bad or the database cannot be opened.
pub async fn connect(url: &str, options: &PoolOptions) -> Result<Arc<dyn Store>, ConnectError> {
    Ok(match check_url(url)? {
        UrlKind::Postgres => Arc::new(postgres::PgStore::connect(url, options).await?),
        UrlKind::Sqlite => Arc::new(sqlite::SqliteStore::connect(url, options).await?),
    })
}

/// Opens the store and applies pending migrations. Safe to run from several replicas at once:
/// sqlx serialises migrations with a database lock.
///
/// # Errors
/// [`ConnectError`] if the database cannot be opened or a migration fails.
pub async fn connect_and_migrate(
    url: &str,
    options: &PoolOptions,
) -> Result<Arc<dyn Store>, ConnectError> {
    Ok(match check_url(url)? {
        UrlKind::Postgres => {
            let store = postgres::PgStore::connect(url, options).await?;
            store.migrate().await?;
            Arc::new(store)
        }
        UrlKind::Sqlite => {
            let store = sqlite::SqliteStore::connect(url, options).await?;
            store.migrate().await?;
            Arc::new(store)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_url_names_the_backend_and_refuses_other_schemes() {
        assert_eq!(
            check_url("postgres://postgres@127.0.0.1:5432/portcullis").unwrap(),
            UrlKind::Postgres
        );
        assert_eq!(
            check_url("sqlite://./data/portcullis.db?mode=rwc").unwrap(),
            UrlKind::Sqlite
        );
        assert!(matches!(
            check_url("mysql://localhost/x"),
            Err(ConnectError::BadUrl(_))
        ));
        assert!(matches!(
            check_url("postgres://host:notaport/db"),
            Err(ConnectError::BadUrl(_))
        ));
    }
}
