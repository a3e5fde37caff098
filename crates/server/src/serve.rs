//! Starting the server: open and migrate the store, load the KEK and signing keys, set up TLS
//! (the development CA when no certificate is configured), bind the three listeners, and run
//! until told to stop. [`start`] returns once everything is listening, with the addresses chosen.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::password::PasswordParams;
use portcullis_core::store::Store;
use portcullis_core::{Clock, Rng, SystemRng};
use portcullis_store::PoolOptions;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::app::{self, AppState, Urls};
use crate::client_auth::ClientAuthenticator;
use crate::config::{Config, ConfigError};
use crate::jwks_fetch::JwksFetcher;
use crate::keys::{self, KeyService, KeyServiceError};
use crate::metrics::Metrics;
use crate::passwords::PasswordService;
use crate::tls::listener::{ConnectionLimits, TlsListener};
use crate::tls::{self, ListenerKind, ServerIdentity, TlsError};

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be opened or migrated.
    #[error("database_url: {0}")]
    Store(#[from] portcullis_store::ConnectError),
    /// The keys could not be loaded.
    #[error(transparent)]
    Keys(#[from] KeyServiceError),
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A listener could not bind.
    #[error("{key}: cannot listen on {addr}: {source}")]
    Bind {
        /// The configuration key of the address.
        key: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl StartError {
    /// Whether the cause is the configuration (exit code 2) rather than the environment (1).
    #[must_use]
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            StartError::Config(_)
                | StartError::Tls(TlsError::File { .. })
                | StartError::Keys(KeyServiceError::Kek { .. })
                | StartError::Keys(KeyServiceError::Key(portcullis_core::keys::KeyError::Kek(
                    portcullis_core::keys::KekError::WrongKek
                )))
                | StartError::Store(portcullis_store::ConnectError::BadUrl(_))
        )
    }
}

/// The clock the server runs on: the system clock, or in test builds the same shifted by an
/// offset the tests control.
#[cfg(not(feature = "test-hooks"))]
fn clock() -> Arc<dyn Clock> {
    Arc::new(portcullis_core::SystemClock)
}

/// A running server.
#[derive(Debug)]
pub struct Running {
    /// The issuer identifier.
    pub issuer: String,
    /// The main listener's address.
    pub main_addr: SocketAddr,
    /// The mTLS listener's address.
    pub mtls_addr: SocketAddr,
    /// The metrics listener's address, if enabled.
    pub metrics_addr: Option<SocketAddr>,
    /// The development CA certificate, when the development CA is in use.
    pub ca_file: Option<PathBuf>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    /// Seals the audit chain once more when everything else has stopped.
    sealer: crate::audit::Sealer,
}

impl Running {
    /// The one line a script reads from standard output once the server is ready.
    #[must_use]
    pub fn ready_line(&self) -> String {
        format!(
            "portcullis ready issuer={} listen={} mtls_listen={} metrics_listen={} ca={}",
            self.issuer,
            self.main_addr,
            self.mtls_addr,
            self.metrics_addr
                .map_or_else(|| "none".to_owned(), |a| a.to_string()),
            self.ca_file
                .as_ref()
                .map_or_else(|| "none".to_owned(), |p| p.display().to_string()),
        )
    }

    /// Stops accepting, lets open connections finish within the grace period, seals the audit
    /// chain's head (so that nothing this replica recorded can go missing unseen), and returns.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
        if let Err(error) = self.sealer.seal().await {
            tracing::warn!(%error, "could not seal the audit chain at shutdown");
        }
    }
}

/// Opens the configured store and applies pending migrations, creating the data directory first
/// when the embedded default needs it (the SQLite file, the development CA, the KEK).
///
/// # Errors
/// [`StartError`] if the directory cannot be made or the database opened or migrated.
pub async fn open_store(
    config: &Config,
    max_connections: u32,
) -> Result<Arc<dyn Store>, StartError> {
    if config.database_url.is_none() || config.tls.cert_file.is_none() {
        crate::fs::create_private_dir(&config.data_dir).map_err(|e| {
            ConfigError::new(
                "data_dir",
                format!("cannot create {}: {e}", config.data_dir.display()),
            )
        })?;
    }
    let pool = PoolOptions {
        max_connections,
        acquire_timeout: Duration::from_secs(config.database.acquire_timeout_secs),
    };
    Ok(portcullis_store::connect_and_migrate(&config.database_url(), &pool).await?)
}

/// Starts everything and returns once all listeners are bound.
///
/// # Errors
/// [`StartError`] naming what could not be set up.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let config = Arc::new(config);
    #[cfg(feature = "test-hooks")]
    let test_clock = Arc::new(portcullis_core::OffsetClock::default());
    #[cfg(feature = "test-hooks")]
    let clock: Arc<dyn Clock> = test_clock.clone();
    #[cfg(not(feature = "test-hooks"))]
    let clock = clock();
    let rng: Arc<dyn Rng> = Arc::new(SystemRng::new());

    let store = open_store(&config, config.database.max_connections).await?;

    let kek = Arc::new(keys::load_kek(
        &config,
        rng.as_ref(),
        keys::MissingKek::Generate,
    )?);
    keys::bootstrap(store.as_ref(), &kek, &rng, clock.as_ref(), &config.keys).await?;
    let key_service =
        Arc::new(KeyService::load(store.clone(), kek.clone(), clock.clone(), &config.keys).await?);

    let (identity, ca_file) = match (&config.tls.cert_file, &config.tls.key_file) {
        (Some(cert), Some(key)) => (ServerIdentity::from_pem_files(cert, key)?, None),
        _ => {
            let (identity, files) =
                tls::dev_ca::load_or_create(&config.data_dir.join("tls"), clock.now())?;
            let ca = std::fs::canonicalize(&files.ca_cert).unwrap_or(files.ca_cert);
            (identity, Some(ca))
        }
    };

    let bind = |key: &'static str, addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { key, addr, source })
    };
    let main_tcp = bind("listen.main", config.listen.main).await?;
    let mtls_tcp = bind("listen.mtls", config.listen.mtls).await?;
    let local = |l: &TcpListener, key: &'static str, addr: SocketAddr| {
        l.local_addr()
            .map_err(|source| StartError::Bind { key, addr, source })
    };
    let main_addr = local(&main_tcp, "listen.main", config.listen.main)?;
    let mtls_addr = local(&mtls_tcp, "listen.mtls", config.listen.mtls)?;

    let issuer = config
        .issuer
        .clone()
        .unwrap_or_else(|| format!("https://localhost:{}", main_addr.port()));
    let mtls_base = config.listen.mtls_base_url.clone().unwrap_or_else(|| {
        let host = url::Url::parse(&issuer)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned));
        format!(
            "https://{}:{}",
            host.as_deref().unwrap_or("localhost"),
            mtls_addr.port()
        )
    });
    let metrics = Arc::new(Metrics::new());
    let jwks_fetcher = Arc::new(JwksFetcher::new(&config.client_jwks, clock.clone())?);
    // One reader of the revocation epoch for both per-replica caches it guards.
    let epochs = crate::liveness::EpochReader::new(store.clone());
    let client_auth = Arc::new(
        ClientAuthenticator::new(
            &config.client_auth,
            store.clone(),
            clock.clone(),
            jwks_fetcher.clone(),
            &issuer,
            &mtls_base,
        )?
        .with_client_cache(epochs.clone(), config.tokens.liveness_cache_entries)
        .with_metrics(metrics.clone()),
    );
    let resources = Arc::new(crate::resources::ResourceCache::new(
        store.clone(),
        clock.clone(),
        config.tokens.resource_cache_secs,
    ));
    let registration = Arc::new(crate::registration::Registrar::new(
        &config.registration,
        client_auth.trust(),
        store.clone(),
        clock.clone(),
        jwks_fetcher,
    )?);
    let passwords = Arc::new(PasswordService::new(
        config.passwords.max_concurrent_hashes,
        PasswordParams::default(),
        rng.clone(),
    ));
    let dpop_nonces = crate::app::dpop_nonces(&config, &kek);
    let liveness = Arc::new(crate::liveness::Liveness::new(
        epochs,
        config.tokens.liveness_cache_entries,
    ));
    let feed = crate::feed::FeedWatcher::new(store.clone());
    let rate_limits = Arc::new(crate::ratelimit::RateLimiter::new(
        &config.rate_limits,
        store.clone(),
        clock.clone(),
        metrics.clone(),
    )?);
    let sealer = crate::audit::Sealer::new(store.clone(), &kek, clock.clone());
    let state = AppState {
        config: config.clone(),
        urls: Arc::new(Urls {
            issuer: issuer.clone(),
            mtls_base: mtls_base.clone(),
        }),
        store,
        keys: key_service,
        clock,
        metrics: metrics.clone(),
        rng,
        kek,
        client_auth,
        passwords,
        dpop_nonces,
        accounts: Arc::new(portcullis_core::accounts::DemoDirectory),
        resources,
        registration,
        liveness,
        feed,
        rate_limits,
        sealer: sealer.clone(),
        #[cfg(feature = "test-hooks")]
        test_clock,
    };
    let upkeep = (state.store.clone(), state.clock.clone());
    let feed = state.feed.clone();
    let router = app::router(state);

    let limits = ConnectionLimits {
        handshake_timeout: Duration::from_secs(config.tls.handshake_timeout_secs),
        header_read_timeout: Duration::from_secs(config.limits.header_read_timeout_secs),
        max_header_bytes: config.limits.max_header_bytes,
        max_concurrent_streams: config.limits.max_concurrent_streams,
        max_connections: config.limits.max_connections,
        shutdown_grace: Duration::from_secs(config.limits.shutdown_grace_secs),
        trusted_proxies: config.proxy.trusted_addresses.clone().into(),
    };
    let (shutdown, stop) = watch::channel(false);
    let mut tasks = JoinSet::new();
    for (kind, tcp) in [
        (ListenerKind::Main, main_tcp),
        (ListenerKind::Mtls, mtls_tcp),
    ] {
        let listener = TlsListener {
            kind,
            tcp,
            tls: tls::server_config(&identity, kind)?,
        };
        tasks.spawn(tls::listener::serve(
            listener,
            router.clone(),
            limits.clone(),
            metrics.clone(),
            stop.clone(),
        ));
    }

    tasks.spawn(crate::housekeeping::run(upkeep.0, upkeep.1, stop.clone()));
    tasks.spawn(crate::housekeeping::run_seals(
        sealer.clone(),
        Duration::from_secs(config.audit.seal_interval_secs),
        stop.clone(),
    ));
    // At shutdown, waiting long polls of `/events` answer at once, so their connections drain.
    let mut stopping = stop.clone();
    tasks.spawn(async move {
        let _ = stopping.wait_for(|s| *s).await;
        feed.close();
    });

    let metrics_addr = if config.metrics.enabled {
        let tcp = bind("metrics.listen", config.metrics.listen).await?;
        let addr = local(&tcp, "metrics.listen", config.metrics.listen)?;
        let mut stop = stop.clone();
        let router = crate::metrics::router(metrics);
        tasks.spawn(async move {
            let result = axum::serve(tcp, router)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "metrics listener failed");
            }
        });
        Some(addr)
    } else {
        None
    };

    tracing::info!(%issuer, listen = %main_addr, mtls_listen = %mtls_addr, "portcullis started");
    Ok(Running {
        issuer,
        main_addr,
        mtls_addr,
        metrics_addr,
        ca_file,
        shutdown,
        tasks,
        sealer,
    })
}

/// Resolves when SIGTERM or SIGINT arrives.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
