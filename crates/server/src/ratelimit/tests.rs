//! The limiter's conformance suite, one body run on every backend (memory, the database on
//! SQLite and on PostgreSQL, Redis from `REDIS_URL`, which must be set: these tests fail rather
//! than skip without it), the backend-failure policy, the configuration, and the limits as the
//! router applies them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use portcullis_core::ManualClock;
use portcullis_core::ratelimit::{Cell, Op, Quota, check_all, micros};
use portcullis_core::store::Store;
use portcullis_testkit::db::{Backend, TestDatabase};
use time::OffsetDateTime;
use tower::ServiceExt as _;

use super::*;

fn redis_url() -> String {
    std::env::var("REDIS_URL")
        .expect("REDIS_URL must name a Redis for the rate-limit tests (scripts/test starts one)")
}

/// A limiter on `backend`, its clock and what keeps its database alive.
struct Subject {
    limiter: RateLimiter,
    clock: Arc<ManualClock>,
    store: Arc<dyn Store>,
    backend: BackendKind,
    prefix: String,
    _db: TestDatabase,
}

async fn store_on(db: &TestDatabase) -> Arc<dyn Store> {
    portcullis_store::connect_and_migrate(db.url(), &portcullis_store::PoolOptions::default())
        .await
        .unwrap()
}

fn config(backend: BackendKind, prefix: &str) -> RateLimitsConfig {
    RateLimitsConfig {
        backend,
        redis_url: (backend == BackendKind::Redis)
            .then(|| serde_json::from_value(redis_url().into()).unwrap()),
        redis_key_prefix: prefix.to_owned(),
        on_backend_error: OnBackendError::Deny,
        backend_timeout_ms: 2000,
        ..RateLimitsConfig::default()
    }
}

async fn subject(backend: BackendKind, database: Backend) -> Subject {
    subject_with(backend, database, |_| {}).await
}

/// [`subject`] with its configuration adjusted by `edit`.
async fn subject_with(
    backend: BackendKind,
    database: Backend,
    edit: impl FnOnce(&mut RateLimitsConfig),
) -> Subject {
    let db = TestDatabase::new(database).await;
    let store = store_on(&db).await;
    let clock = Arc::new(ManualClock::new(
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
    ));
    let prefix = format!("portcullis:test:{}:", uuid::Uuid::new_v4().simple());
    let mut config = config(backend, &prefix);
    edit(&mut config);
    let limiter = RateLimiter::new(
        &config,
        store.clone(),
        clock.clone(),
        Arc::new(Metrics::new()),
    )
    .unwrap();
    Subject {
        limiter,
        clock,
        store,
        backend,
        prefix,
        _db: db,
    }
}

fn check(key: &str, q: u32, secs: u64, spend: bool) -> Check {
    let quota = Quota::new(q, Duration::from_secs(secs)).unwrap();
    let op = if spend { Op::Spend } else { Op::Probe };
    Check {
        cell: Cell::new(key, quota, op),
        quota,
        policy: "test",
        kind: KeyKind::Ip,
    }
}

async fn allowed(limiter: &RateLimiter, checks: &[Check]) -> bool {
    limiter
        .check(checks)
        .await
        .unwrap()
        .iter()
        .all(|a| a.outcome.allowed)
}

/// The body every backend must pass.
async fn conformance(s: &Subject) {
    let limiter = &s.limiter;
    // The whole burst, then refusals with the time until the next token.
    let burst = check("burst", 5, 60, true);
    for i in 0..5 {
        let applied = limiter.check(std::slice::from_ref(&burst)).await.unwrap();
        assert!(applied[0].outcome.allowed, "request {i}");
        assert_eq!(applied[0].outcome.remaining, 4 - i);
    }
    let refused = limiter.check(std::slice::from_ref(&burst)).await.unwrap();
    assert!(!refused[0].outcome.allowed);
    assert_eq!(refused[0].outcome.remaining, 0);
    assert_eq!(refused[0].outcome.retry_after_us, Some(12_000_000));
    // Twelve seconds later exactly one token has come back.
    s.clock.advance(time::Duration::seconds(12));
    assert!(allowed(limiter, std::slice::from_ref(&burst)).await);
    assert!(!allowed(limiter, std::slice::from_ref(&burst)).await);

    // One refusing bucket spends nothing from the others.
    let wide = check("wide", 100, 60, true);
    let narrow = check("narrow", 1, 60, true);
    assert!(allowed(limiter, std::slice::from_ref(&narrow)).await);
    for _ in 0..3 {
        let applied = limiter
            .check(&[wide.clone(), narrow.clone()])
            .await
            .unwrap();
        assert!(applied[0].outcome.allowed && !applied[1].outcome.allowed);
        assert_eq!(applied[0].outcome.remaining, 100, "nothing was spent");
    }
    let probe = check("wide", 100, 60, false);
    let applied = limiter.check(std::slice::from_ref(&probe)).await.unwrap();
    assert_eq!(applied[0].outcome.remaining, 100);

    // A probe answers without spending, and refuses an empty bucket.
    let failures = check("failures", 2, 300, true);
    let ask = check("failures", 2, 300, false);
    for _ in 0..5 {
        assert!(allowed(limiter, std::slice::from_ref(&ask)).await);
    }
    assert!(allowed(limiter, std::slice::from_ref(&failures)).await);
    assert!(allowed(limiter, std::slice::from_ref(&failures)).await);
    assert!(!allowed(limiter, std::slice::from_ref(&ask)).await);
    // Two spending buckets and a probe together: all or nothing.
    let a = check("multi-a", 3, 60, true);
    let b = check("multi-b", 2, 60, true);
    let ask_b = check("multi-b", 2, 60, false);
    assert!(allowed(limiter, &[a.clone(), b.clone(), ask_b.clone()]).await);
    assert!(allowed(limiter, &[b.clone(), a.clone()]).await);
    assert!(!allowed(limiter, &[a.clone(), b.clone()]).await);
    let applied = limiter.check(std::slice::from_ref(&a)).await.unwrap();
    assert_eq!(applied[0].outcome.remaining, 0, "a kept its third token");

    // The outcomes are those of the reference arithmetic.
    let reference = check("reference", 7, 10, true);
    let mut tat = None;
    for step in 0..20 {
        s.clock.advance(time::Duration::milliseconds(333));
        let now = micros(s.clock.now());
        let (states, _) = check_all(std::slice::from_ref(&reference.cell), &[tat], now);
        let expected = reference.cell.outcome(states[0], now);
        if states[0].allowed {
            tat = Some(states[0].tat_us);
        }
        let applied = limiter
            .check(std::slice::from_ref(&reference))
            .await
            .unwrap();
        assert_eq!(applied[0].outcome, expected, "step {step}");
    }

    // Reserve, give back: a refund returns one token, is kept when another bucket refuses, and
    // never makes a bucket fuller than full.
    let reserve = check("reserve", 2, 60, true);
    let mut give_back = reserve.clone();
    give_back.cell = reserve.cell.with_op(Op::Refund);
    assert!(allowed(limiter, std::slice::from_ref(&reserve)).await);
    assert!(allowed(limiter, std::slice::from_ref(&reserve)).await);
    assert!(!allowed(limiter, std::slice::from_ref(&reserve)).await);
    let applied = limiter
        .check(&[narrow.clone(), give_back.clone()])
        .await
        .unwrap();
    assert!(!applied[0].outcome.allowed && applied[1].outcome.allowed);
    assert_eq!(applied[1].outcome.remaining, 1);
    assert!(allowed(limiter, std::slice::from_ref(&reserve)).await);
    assert!(!allowed(limiter, std::slice::from_ref(&reserve)).await);
    for _ in 0..4 {
        assert!(allowed(limiter, std::slice::from_ref(&give_back)).await);
    }
    let applied = limiter.check(std::slice::from_ref(&reserve)).await.unwrap();
    assert_eq!(
        applied[0].outcome.remaining, 1,
        "full means two, never more"
    );

    // Mixed spends, probes and refunds over several buckets decide as the core does.
    let cells = [
        check("mixed-a", 3, 10, true),
        check("mixed-b", 1, 7, true),
        check("mixed-c", 5, 60, true),
    ];
    let mut model: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    let mut refusals = 0;
    for step in 0..120_u32 {
        s.clock
            .advance(time::Duration::milliseconds(i64::from(step % 7) * 450));
        let now = micros(s.clock.now());
        let mut checks = Vec::new();
        for (i, base) in cells.iter().enumerate() {
            let pick = (step * 7 + u32::try_from(i).unwrap() * 3) % 6;
            let op = match pick {
                0 => continue,
                1 => Op::Probe,
                2 => Op::Refund,
                _ => Op::Spend,
            };
            let mut c = base.clone();
            c.cell = base.cell.with_op(op);
            checks.push(c);
        }
        let plain: Vec<Cell> = checks.iter().map(|c| c.cell.clone()).collect();
        let stored: Vec<Option<i64>> = plain.iter().map(|c| model.get(&c.key).copied()).collect();
        let (states, all) = check_all(&plain, &stored, now);
        refusals += usize::from(!all);
        for (cell, state) in plain.iter().zip(&states) {
            if (cell.op == Op::Spend && all)
                || (cell.op == Op::Refund && model.contains_key(&cell.key))
            {
                model.insert(cell.key.clone(), state.tat_us);
            }
        }
        let applied = limiter.check(&checks).await.unwrap();
        let expected: Vec<_> = plain
            .iter()
            .zip(&states)
            .map(|(c, st)| c.outcome(*st, now))
            .collect();
        let got: Vec<_> = applied.iter().map(|a| a.outcome).collect();
        assert_eq!(got, expected, "step {step}");
    }
    assert!(refusals >= 10, "the run compared refusals too: {refusals}");

    // Concurrent requests on one bucket: exactly the quota passes.
    let shared = check("concurrent", 20, 3600, true);
    let results = futures_util::future::join_all(
        (0..60).map(|_| limiter.check(std::slice::from_ref(&shared))),
    )
    .await;
    let passed = results
        .iter()
        .filter(|r| r.as_ref().unwrap()[0].outcome.allowed)
        .count();
    assert_eq!(passed, 20);
}

#[tokio::test]
async fn memory_backend_conforms() {
    conformance(&subject(BackendKind::Memory, Backend::Sqlite).await).await;
}

#[tokio::test]
async fn database_backend_on_sqlite_conforms() {
    conformance(&subject(BackendKind::Database, Backend::Sqlite).await).await;
}

#[tokio::test]
async fn database_backend_on_postgres_conforms() {
    conformance(&subject(BackendKind::Database, Backend::Postgres).await).await;
}

#[tokio::test]
async fn redis_backend_conforms() {
    conformance(&subject(BackendKind::Redis, Backend::Sqlite).await).await;
}

/// A Redis that speaks only TLS, with a server certificate for 127.0.0.1 from a fresh test CA;
/// killed when dropped. Needs `redis-server` (Debian's is built with TLS; scripts/test installs
/// it).
struct TlsRedis {
    child: std::process::Child,
    port: u16,
    ca_file: std::path::PathBuf,
    dir: tempfile::TempDir,
}

impl TlsRedis {
    fn start() -> Self {
        use std::io::BufRead as _;
        let dir = tempfile::tempdir().unwrap();
        let ca = portcullis_testkit::certs::TestCa::new("Redis test CA");
        let server = ca.issue_server(&["127.0.0.1"]);
        let file = |name: &str, pem: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
        let (cert, key, ca_file) = (
            file("redis.crt", &server.cert_pem),
            file("redis.key", &server.key_pem),
            file("ca.crt", &ca.cert_pem),
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = std::process::Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--tls-port")
            .arg(port.to_string())
            .arg("--tls-cert-file")
            .arg(&cert)
            .arg("--tls-key-file")
            .arg(&key)
            .arg("--tls-ca-cert-file")
            .arg(&ca_file)
            .args(["--tls-auth-clients", "no", "--dir"])
            .arg(dir.path())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("redis-server must be installed for the TLS test (scripts/test installs it)");
        // Its log says when it listens: no polling, no sleeping.
        let stdout = child.stdout.take().unwrap();
        let ready = std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.contains("Ready to accept connections"));
        assert!(ready, "redis-server with TLS did not start");
        Self {
            child,
            port,
            ca_file,
            dir,
        }
    }

    fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn install_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

#[tokio::test]
async fn redis_backend_over_tls_conforms() {
    install_crypto();
    let redis = TlsRedis::start();
    let subject = subject_with(BackendKind::Redis, Backend::Sqlite, |c| {
        c.redis_url = Some(serde_json::from_value(redis.url().into()).unwrap());
        c.redis_ca_file = Some(redis.ca_file.clone());
    })
    .await;
    conformance(&subject).await;
}

#[tokio::test]
async fn a_redis_whose_certificate_is_not_trusted_is_never_used() {
    install_crypto();
    let redis = TlsRedis::start();
    // Another CA than the one that issued the server's certificate: the handshake fails, and
    // with `deny` the check is refused rather than made against an unverified server.
    let stranger = redis.dir.path().join("stranger.crt");
    std::fs::write(
        &stranger,
        portcullis_testkit::certs::TestCa::new("Another CA").cert_pem,
    )
    .unwrap();
    let subject = subject_with(BackendKind::Redis, Backend::Sqlite, |c| {
        c.redis_url = Some(serde_json::from_value(redis.url().into()).unwrap());
        c.redis_ca_file = Some(stranger);
        c.backend_timeout_ms = 1000;
    })
    .await;
    assert_eq!(
        subject
            .limiter
            .check(&[check("k", 5, 60, true)])
            .await
            .unwrap_err(),
        Unavailable
    );
    // A CA file is only for TLS, and must be a certificate.
    let plain = RateLimitsConfig {
        backend: BackendKind::Redis,
        redis_url: Some(serde_json::from_value("redis://127.0.0.1:6379".into()).unwrap()),
        redis_ca_file: Some(redis.ca_file.clone()),
        ..RateLimitsConfig::default()
    };
    assert_eq!(
        plain.validate().unwrap_err().key,
        "rate_limits.redis_ca_file"
    );
    let garbage = redis.dir.path().join("garbage.crt");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let bad = RateLimitsConfig {
        redis_url: Some(serde_json::from_value(redis.url().into()).unwrap()),
        redis_ca_file: Some(garbage),
        ..plain.clone()
    };
    assert_eq!(bad.validate().unwrap_err().key, "rate_limits.redis_ca_file");
    let missing = RateLimitsConfig {
        redis_ca_file: Some(redis.dir.path().join("missing.crt")),
        ..bad
    };
    assert_eq!(
        missing.validate().unwrap_err().key,
        "rate_limits.redis_ca_file"
    );
}

/// A second replica's limiter on the same shared backend sees the first one's spending.
async fn replicas_share(backend: BackendKind, database: Backend) {
    let s = subject(backend, database).await;
    let other = RateLimiter::new(
        &config(s.backend, &s.prefix),
        s.store.clone(),
        s.clock.clone(),
        Arc::new(Metrics::new()),
    )
    .unwrap();
    let bucket = check("replicated", 10, 60, true);
    let mut passed = 0;
    for i in 0..30 {
        let limiter = if i % 2 == 0 { &s.limiter } else { &other };
        passed += usize::from(allowed(limiter, std::slice::from_ref(&bucket)).await);
    }
    assert_eq!(passed, 10);
    // Full buckets are purged from the database; the others stay.
    if backend == BackendKind::Database {
        let now = micros(s.clock.now());
        assert_eq!(s.store.rate_limits().purge_idle(now).await.unwrap(), 0);
        assert_eq!(
            s.store
                .rate_limits()
                .purge_idle(now + 61_000_000)
                .await
                .unwrap(),
            1
        );
    }
    // A trip is recorded once across the replicas, whichever trips first, and again a window
    // later.
    let trips = || async {
        s.store
            .events()
            .list(0, 100)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.event.action == "rate_limit.exceeded")
            .count()
    };
    for limiter in [&s.limiter, &other, &s.limiter, &other] {
        limiter
            .tripped(Endpoint::Token, &bucket, &SourceIp::UNKNOWN, None, None)
            .await;
    }
    assert_eq!(trips().await, 1);
    s.clock.advance(time::Duration::seconds(61));
    for limiter in [&other, &s.limiter] {
        limiter
            .tripped(Endpoint::Token, &bucket, &SourceIp::UNKNOWN, None, None)
            .await;
    }
    assert_eq!(trips().await, 2);
}

#[tokio::test]
async fn two_replicas_share_database_buckets_on_postgres() {
    replicas_share(BackendKind::Database, Backend::Postgres).await;
}

#[tokio::test]
async fn two_replicas_share_database_buckets_on_sqlite() {
    replicas_share(BackendKind::Database, Backend::Sqlite).await;
}

#[tokio::test]
async fn two_replicas_share_redis_buckets() {
    replicas_share(BackendKind::Redis, Backend::Sqlite).await;
}

#[tokio::test]
async fn a_failed_shared_backend_denies_or_falls_back_to_local_buckets_as_configured() {
    let db = TestDatabase::sqlite();
    let store = store_on(&db).await;
    let clock: Arc<dyn portcullis_core::Clock> = Arc::new(ManualClock::new(
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
    ));
    // Nothing listens on port 1.
    let down = |on_backend_error| RateLimitsConfig {
        backend: BackendKind::Redis,
        redis_url: Some(serde_json::from_value("redis://127.0.0.1:1".into()).unwrap()),
        backend_timeout_ms: 200,
        on_backend_error,
        ..RateLimitsConfig::default()
    };
    let metrics = Arc::new(Metrics::new());
    let deny = RateLimiter::new(
        &down(OnBackendError::Deny),
        store.clone(),
        clock.clone(),
        metrics.clone(),
    )
    .unwrap();
    assert_eq!(
        deny.check(&[check("k", 5, 60, true)]).await.unwrap_err(),
        Unavailable
    );
    let local = RateLimiter::new(
        &down(OnBackendError::AllowLocal),
        store,
        clock,
        metrics.clone(),
    )
    .unwrap();
    // The local buckets keep the limit.
    let mut passed = 0;
    for _ in 0..8 {
        passed += usize::from(allowed(&local, &[check("k", 5, 60, true)]).await);
    }
    assert_eq!(passed, 5);
    let scrape = metrics.encode().unwrap();
    assert!(
        scrape.contains("portcullis_rate_limit_backend_errors_total{backend=\"redis\"}"),
        "{scrape}"
    );
}

#[test]
fn the_defaults_are_valid_and_bad_values_are_named() {
    RateLimitsConfig::default().validate().unwrap();
    let mut config = RateLimitsConfig::default();
    config.ip.login.quota = 0;
    assert_eq!(
        config.validate().unwrap_err().key,
        "rate_limits.ip.login.quota"
    );
    let mut config = RateLimitsConfig::default();
    config.tiers.insert(
        "gold".into(),
        config::TierLimits {
            token: Some(config::Limit {
                quota: 10,
                window_secs: 0,
            }),
            ..config::TierLimits::default()
        },
    );
    assert_eq!(
        config.validate().unwrap_err().key,
        "rate_limits.tiers.gold.token.window_secs"
    );
    let mut config = RateLimitsConfig::default();
    config
        .tiers
        .insert("no way".into(), config::TierLimits::default());
    assert_eq!(
        config.validate().unwrap_err().key,
        "rate_limits.tiers.no way"
    );
    let config = RateLimitsConfig {
        backend: BackendKind::Redis,
        ..RateLimitsConfig::default()
    };
    assert_eq!(config.validate().unwrap_err().key, "rate_limits.redis_url");
    let config = RateLimitsConfig {
        redis_url: Some(serde_json::from_value("http://x".into()).unwrap()),
        ..RateLimitsConfig::default()
    };
    assert_eq!(config.validate().unwrap_err().key, "rate_limits.redis_url");
}

#[test]
fn an_operator_tier_takes_what_it_leaves_out_from_the_default_tier() {
    let mut config = RateLimitsConfig::default();
    config.tiers.get_mut("default").unwrap().par = Some(config::Limit {
        quota: 7,
        window_secs: 60,
    });
    config.tiers.insert(
        "gold".into(),
        config::TierLimits {
            token: Some(config::Limit {
                quota: 5,
                window_secs: 1,
            }),
            ..config::TierLimits::default()
        },
    );
    let tiers = config.tier_quotas().unwrap();
    let [token, par, introspect, _] = tiers["gold"];
    assert_eq!((token.quota(), token.window()), (5, Duration::from_secs(1)));
    assert_eq!(par.quota(), 7);
    assert_eq!(introspect.quota(), 3000);
    assert!(config.defines_tier("gold") && config.defines_tier("partner"));
    assert!(!config.defines_tier("platinum"));
}

#[test]
fn endpoints_are_classified_by_path_and_method() {
    use http::Method;
    let post = Method::POST;
    for (path, endpoint) in [
        ("/token", Some(Endpoint::Token)),
        ("/par", Some(Endpoint::Par)),
        ("/introspect", Some(Endpoint::Introspect)),
        ("/revoke", Some(Endpoint::Revoke)),
        ("/events", Some(Endpoint::Events)),
        ("/register", Some(Endpoint::Register)),
        ("/authorize/login", Some(Endpoint::Login)),
        ("/account/totp", Some(Endpoint::Login)),
        ("/authorize/consent", Some(Endpoint::Other)),
        ("/healthz", None),
        ("/__test/clock", None),
    ] {
        assert_eq!(Endpoint::classify(&post, path), endpoint, "{path}");
    }
    assert_eq!(
        Endpoint::classify(&Method::GET, "/register"),
        Some(Endpoint::Other)
    );
    assert!(Endpoint::Login.is_page("/account/login"));
    assert!(Endpoint::Other.is_page("/authorize"));
    assert!(!Endpoint::Other.is_page("/userinfo"));
}

async fn post(router: &axum::Router, path: &str, body: &str) -> http::Response<Body> {
    router
        .clone()
        .oneshot(
            Request::post(path)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(body.to_owned()))
                .unwrap(),
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn failed_client_authentications_spend_the_source_budget_then_429_before_authentication() {
    let h = crate::routes::tests::harness_with(|c| {
        c.rate_limits.enabled = true;
        c.rate_limits.ip.auth_failures = config::Limit {
            quota: 3,
            window_secs: 300,
        };
    })
    .await;
    let form = "grant_type=client_credentials&client_id=victim&client_secret=wrong";
    for i in 0..3 {
        let response = post(&h.router, "/token", form).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
        let fields = response.headers()["ratelimit"].to_str().unwrap();
        assert!(
            fields.contains(&format!("\"auth-failures\";r={}", 2 - i)),
            "{fields}"
        );
    }
    let response = post(&h.router, "/token", form).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let headers = response.headers().clone();
    assert_eq!(headers["retry-after"], "100");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(
        headers["ratelimit-policy"],
        "\"token-ip\";q=6000;w=60, \"auth-failures\";q=3;w=300"
    );
    assert!(
        headers["ratelimit"]
            .to_str()
            .unwrap()
            .ends_with("\"auth-failures\";r=0;t=100")
    );
    let body: serde_json::Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("auth-failures")
    );
    // The other endpoints of client authentication refuse this source too.
    assert_eq!(
        post(&h.router, "/introspect", "token=x").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // The budget comes back with time.
    h.clock.advance(time::Duration::seconds(100));
    assert_eq!(
        post(&h.router, "/token", form).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // The trip is in the audit trail, once.
    let events = h.state.store.events().list(0, 100).await.unwrap();
    let trips: Vec<_> = events
        .iter()
        .filter(|e| e.event.action == "rate_limit.exceeded")
        .collect();
    assert_eq!(trips.len(), 1, "{trips:?}");
    assert_eq!(trips[0].event.details["key"], "auth_failures");
    assert_eq!(trips[0].event.details["endpoint"], "token");
    assert!(trips[0].event.client_id.is_none());
}

#[tokio::test]
async fn the_login_pages_answer_429_with_their_html_error_page() {
    let h = crate::routes::tests::harness_with(|c| {
        c.rate_limits.enabled = true;
        c.rate_limits.ip.login = config::Limit {
            quota: 2,
            window_secs: 60,
        };
    })
    .await;
    for _ in 0..2 {
        let response = post(&h.router, "/account/login", "username=a&password=b").await;
        assert_ne!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(response.headers().contains_key("ratelimit"));
    }
    let response = post(&h.router, "/authorize/login", "username=a&password=b").await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "30");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = response.into_body().collect().await.unwrap().to_bytes();
    let page = String::from_utf8_lossy(&page);
    assert!(page.contains("Please wait 30 seconds"), "{page}");
    // Pages and APIs that are not limited per endpoint use the generous default bucket.
    let (status, headers, _) = crate::routes::tests::get(&h.router, "/jwks").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["ratelimit-policy"], "\"ip\";q=3000;w=60");
    let (_, headers, _) = crate::routes::tests::get(&h.router, "/healthz").await;
    assert!(!headers.contains_key("ratelimit"));
}

#[test]
fn refused_authentications_count_and_a_request_for_a_fresh_dpop_nonce_does_not() {
    use axum::response::IntoResponse as _;
    use portcullis_core::error::{ErrorCode, OAuthError};

    use crate::routes::oauth_error::ErrorResponse;

    let failed = |response: axum::response::Response| middleware::failed_authentication(&response);
    for code in [ErrorCode::InvalidClient, ErrorCode::InvalidDpopProof] {
        assert!(failed(
            ErrorResponse::new(OAuthError::new(code, "x")).into_response()
        ));
    }
    for code in [ErrorCode::UseDpopNonce, ErrorCode::InvalidGrant] {
        assert!(!failed(
            ErrorResponse::new(OAuthError::new(code, "x")).into_response()
        ));
    }
    let challenge = |value: &'static str| {
        (
            StatusCode::UNAUTHORIZED,
            [(http::header::WWW_AUTHENTICATE, value)],
        )
            .into_response()
    };
    assert!(failed(challenge("DPoP error=\"invalid_token\"")));
    assert!(!failed(challenge("DPoP error=\"use_dpop_nonce\"")));
}
