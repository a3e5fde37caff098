//! Handler tests in process (`Router::oneshot`): the real router and middleware on a SQLite store
//! in a temporary directory, with a manual clock.

use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use portcullis_core::keys::KeyEncryptionKey;
use portcullis_core::{Clock, ManualClock, Rng, SeededRng};
use serde_json::Value;
use tower::ServiceExt as _;

use crate::app::{self, AppState, Urls};
use crate::config::Config;
use crate::keys::{self, KeyService};
use crate::metrics::Metrics;

pub(crate) struct Harness {
    pub router: axum::Router,
    pub clock: Arc<ManualClock>,
    pub state: AppState,
    pub kek: Arc<KeyEncryptionKey>,
    pub rng: Arc<dyn Rng>,
    _dir: tempfile::TempDir,
}

pub(crate) async fn harness() -> Harness {
    harness_with(|_| {}).await
}

/// A harness whose configuration `edit` adjusts (for example `client_auth.trust_anchor_files`)
/// before the state is built from it.
pub(crate) async fn harness_with(edit: impl FnOnce(&mut Config)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: dir.path().to_owned(),
        ..Config::default()
    };
    // Every handler test shares one source address: limits only where a test turns them on.
    config.rate_limits.enabled = false;
    edit(&mut config);
    let store = portcullis_store::connect_and_migrate(
        &config.database_url(),
        &portcullis_store::PoolOptions::default(),
    )
    .await
    .unwrap();
    let rng: Arc<dyn Rng> = Arc::new(SeededRng::new(5));
    let kek = Arc::new(KeyEncryptionKey::generate(rng.as_ref()).unwrap());
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    keys::bootstrap(store.as_ref(), &kek, &rng, clock.as_ref(), &config.keys)
        .await
        .unwrap();
    let key_service = Arc::new(
        KeyService::load(store.clone(), kek.clone(), dyn_clock.clone(), &config.keys)
            .await
            .unwrap(),
    );
    let jwks_fetcher = Arc::new(
        crate::jwks_fetch::JwksFetcher::new(&config.client_jwks, dyn_clock.clone()).unwrap(),
    );
    let epochs = crate::liveness::EpochReader::new(store.clone());
    let client_auth = Arc::new(
        crate::client_auth::ClientAuthenticator::new(
            &config.client_auth,
            store.clone(),
            dyn_clock.clone(),
            jwks_fetcher.clone(),
            "https://as.example",
            "https://mtls.as.example",
        )
        .unwrap()
        .with_client_cache(epochs.clone(), 1000),
    );
    let registration = Arc::new(
        crate::registration::Registrar::new(
            &config.registration,
            client_auth.trust(),
            store.clone(),
            dyn_clock.clone(),
            jwks_fetcher,
        )
        .unwrap(),
    );
    let resources = Arc::new(crate::resources::ResourceCache::new(
        store.clone(),
        dyn_clock.clone(),
        config.tokens.resource_cache_secs,
    ));
    let dpop_nonces = crate::app::dpop_nonces(&config, &kek);
    let liveness = Arc::new(crate::liveness::Liveness::new(epochs, 1000));
    let feed = crate::feed::FeedWatcher::new(store.clone());
    let metrics = Arc::new(Metrics::new());
    let rate_limits = Arc::new(
        crate::ratelimit::RateLimiter::new(
            &config.rate_limits,
            store.clone(),
            dyn_clock.clone(),
            metrics.clone(),
        )
        .unwrap(),
    );
    let sealer = crate::audit::Sealer::new(store.clone(), &kek, dyn_clock.clone());
    let state = AppState {
        config: Arc::new(config.clone()),
        urls: Arc::new(Urls {
            issuer: "https://as.example".into(),
            mtls_base: "https://mtls.as.example".into(),
        }),
        store,
        keys: key_service,
        clock: dyn_clock.clone(),
        metrics,
        rng: rng.clone(),
        kek: kek.clone(),
        client_auth,
        dpop_nonces,
        accounts: Arc::new(portcullis_core::accounts::DemoDirectory),
        resources,
        registration,
        liveness,
        feed,
        rate_limits,
        sealer,
        passwords: Arc::new(crate::passwords::PasswordService::new(
            1,
            portcullis_core::password::PasswordParams::default(),
            rng.clone(),
        )),
        #[cfg(feature = "test-hooks")]
        test_clock: Arc::new(portcullis_core::OffsetClock::default()),
    };
    Harness {
        router: app::router(state.clone()),
        clock,
        state,
        kek,
        rng,
        _dir: dir,
    }
}

pub(crate) async fn get(router: &axum::Router, path: &str) -> (StatusCode, http::HeaderMap, Value) {
    let response = router
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn jwks_publishes_one_key_per_algorithm_with_cache_control() {
    let h = harness().await;
    let (status, headers, body) = get(&h.router, "/jwks").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["cache-control"], "public, max-age=300");
    assert!(headers.contains_key("x-request-id"));
    assert_eq!(body["keys"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn the_request_id_is_always_the_servers_own() {
    let h = harness().await;
    let response = h
        .router
        .clone()
        .oneshot(
            Request::get("/jwks")
                .header("x-request-id", "chosen-by-the-client")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let id = response.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(id, "chosen-by-the-client");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
}

#[tokio::test]
async fn both_metadata_documents_name_the_issuer() {
    let h = harness().await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let (status, _, body) = get(&h.router, path).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["issuer"], "https://as.example");
        assert_eq!(body["jwks_uri"], "https://as.example/jwks");
    }
}

#[tokio::test]
async fn readiness_reports_the_database_and_unknown_paths_get_a_json_404() {
    let h = harness().await;
    let (status, _, body) = get(&h.router, "/readyz").await;
    assert_eq!(
        (status, body["database"].as_str()),
        (StatusCode::OK, Some("sqlite"))
    );
    let (status, _, body) = get(&h.router, "/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
}

/// The plain build has no test controls; with the feature they exist. Whichever this build is,
/// the router must agree.
#[tokio::test]
async fn test_controls_exist_only_with_the_test_hooks_feature() {
    let h = harness().await;
    let response = h
        .router
        .clone()
        .oneshot(
            Request::post("/__test/clock")
                .header("content-type", "application/json")
                .body(Body::from(r#"{"advance_secs":1}"#))
                .unwrap(),
        )
        .await
        .unwrap();
    let expected = if cfg!(feature = "test-hooks") {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    assert_eq!(response.status(), expected);
}

#[tokio::test]
async fn a_rotation_by_another_replica_is_seen_after_the_refresh_interval_and_signs_after_max_age()
{
    use portcullis_jose::SigningAlg;
    let h = harness().await;
    let old = h
        .state
        .keys
        .signer(SigningAlg::Es256)
        .await
        .unwrap()
        .kid()
        .to_owned();
    // Another replica (or the CLI) rotates behind this replica's cache.
    let added = keys::rotate(
        h.state.store.as_ref(),
        &h.kek,
        &h.rng,
        h.clock.as_ref(),
        &h.state.config.keys,
        &[SigningAlg::Es256],
    )
    .await
    .unwrap();
    let new = added[0].kid.clone();

    let (_, _, jwks) = get(&h.router, "/jwks").await;
    assert_eq!(
        jwks["keys"].as_array().unwrap().len(),
        3,
        "the cache is still fresh"
    );
    h.clock.advance(time::Duration::seconds(10));
    let (_, _, jwks) = get(&h.router, "/jwks").await;
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == new.as_str())
    );
    assert_eq!(
        h.state.keys.signer(SigningAlg::Es256).await.unwrap().kid(),
        old
    );

    // Due at creation + max-age (300 s) + refresh interval (10 s).
    h.clock.advance(time::Duration::seconds(299));
    assert_eq!(
        h.state.keys.signer(SigningAlg::Es256).await.unwrap().kid(),
        old
    );
    h.clock.advance(time::Duration::seconds(1));
    assert_eq!(
        h.state.keys.signer(SigningAlg::Es256).await.unwrap().kid(),
        new
    );
}
