//! Throwaway databases. Every test gets its own, so tests run in parallel and never depend on
//! leftovers.
//!
//! PostgreSQL: the server named by `DATABASE_URL` if set, else the one on 127.0.0.1:5432 as user
//! `postgres` (the test command starts a throwaway cluster and sets `DATABASE_URL` when neither
//! exists). Each [`TestDatabase`] creates `portcullis_test_<uuid>` and drops it when dropped.
//! SQLite: a file in a temporary directory that goes away with it.

use std::str::FromStr as _;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _, Executor as _};

/// The PostgreSQL server the tests use, as an admin URL on its `postgres` database.
#[must_use]
pub fn postgres_admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Which backend a test database is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
}

/// A database that exists for the life of this value.
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    backend: Backend,
    postgres_name: Option<String>,
    // Holds the SQLite file's directory until the database is dropped.
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    /// A fresh database on `backend`.
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Postgres => Self::postgres().await,
            Backend::Sqlite => Self::sqlite(),
        }
    }

    /// A fresh, empty PostgreSQL database.
    pub async fn postgres() -> Self {
        let admin = postgres_admin_url();
        let name = format!("portcullis_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnectOptions::from_str(&admin)
            .expect("DATABASE_URL is not a PostgreSQL URL")
            .connect()
            .await
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {admin}: {e}"));
        conn.execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
            .await
            .expect("CREATE DATABASE failed");
        let _ = conn.close().await;
        let mut url = url::Url::parse(&admin).expect("DATABASE_URL is not a URL");
        url.set_path(&name);
        Self {
            url: url.to_string(),
            backend: Backend::Postgres,
            postgres_name: Some(name),
            _dir: None,
        }
    }

    /// A fresh SQLite file in its own temporary directory.
    #[must_use]
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("cannot create a temporary directory");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("portcullis.db").display()
        );
        Self {
            url,
            backend: Backend::Sqlite,
            postgres_name: None,
            _dir: Some(dir),
        }
    }

    /// The URL to give the store or the server.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The backend.
    #[must_use]
    pub fn backend(&self) -> Backend {
        self.backend
    }
}

impl TestDatabase {
    /// Drops a PostgreSQL database now, ending every connection to it: the database "goes away"
    /// under a running server.
    pub async fn destroy(&mut self) {
        let Some(name) = self.postgres_name.take() else {
            return;
        };
        let admin = postgres_admin_url();
        let mut conn = PgConnectOptions::from_str(&admin)
            .expect("admin URL")
            .connect()
            .await
            .expect("connect");
        conn.execute(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str())
            .await
            .expect("DROP DATABASE failed");
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(name) = self.postgres_name.take() else {
            return;
        };
        // Drop runs inside the test's runtime, which cannot be blocked on; a short-lived thread
        // with its own runtime drops the database. FORCE ends connections a server left open.
        let admin = postgres_admin_url();
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut conn = PgConnectOptions::from_str(&admin)
                    .ok()?
                    .connect()
                    .await
                    .ok()?;
                conn.execute(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str())
                    .await
                    .ok()
            })
        });
        let _ = dropper.join();
    }
}
