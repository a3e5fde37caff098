//! What one rate-limit check costs on each backend (docs/benchmarks.md, "Rate limits: cost of a
//! check"): the check the layer makes before every request of a client endpoint, one spending
//! bucket (the source address at the endpoint) and one probed bucket (its auth-failure budget),
//! all or nothing. The sources go round 10,000 addresses with quotas nothing reaches, so every
//! check is allowed and spends, as on a busy server.
//!
//! Backends: `memory` (this process), `database/sqlite` and `database/postgres` (a fresh
//! database on `DATABASE_URL` or 127.0.0.1:5432), `redis` (`REDIS_URL`, required). Run with
//! `cargo bench -p portcullis-server --bench ratelimit`.

// A benchmark's set-up either works or the run is meaningless: failing loudly is what we want.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_core::SystemClock;
use portcullis_server::metrics::Metrics;
use portcullis_server::ratelimit::config::Limit;
use portcullis_server::ratelimit::{BackendKind, Endpoint, RateLimiter, RateLimitsConfig};
use portcullis_server::source_ip::SourceIp;
use portcullis_testkit::db::{Backend, TestDatabase};
use tokio::runtime::Runtime;

fn config(backend: BackendKind) -> RateLimitsConfig {
    let mut config = RateLimitsConfig {
        backend,
        redis_key_prefix: format!("portcullis:bench:{}:", uuid::Uuid::new_v4().simple()),
        ..RateLimitsConfig::default()
    };
    if backend == BackendKind::Redis {
        let url = std::env::var("REDIS_URL").expect("REDIS_URL must name a Redis");
        config.redis_url = Some(serde_json::from_value(url.into()).unwrap());
    }
    let unreachable = Limit {
        quota: 1_000_000,
        window_secs: 1,
    };
    config.ip.token = unreachable;
    config.ip.auth_failures = unreachable;
    config
}

fn limiter(rt: &Runtime, backend: BackendKind, database: Backend) -> (RateLimiter, TestDatabase) {
    rt.block_on(async {
        let db = TestDatabase::new(database).await;
        let store = portcullis_store::connect_and_migrate(
            db.url(),
            &portcullis_store::PoolOptions::default(),
        )
        .await
        .unwrap();
        let limiter = RateLimiter::new(
            &config(backend),
            store,
            Arc::new(SystemClock),
            Arc::new(Metrics::new()),
        )
        .unwrap();
        (limiter, db)
    })
}

fn checks(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let mut group = c.benchmark_group("rate_limit_check");
    for (name, backend, database) in [
        ("memory", BackendKind::Memory, Backend::Sqlite),
        ("database/sqlite", BackendKind::Database, Backend::Sqlite),
        (
            "database/postgres",
            BackendKind::Database,
            Backend::Postgres,
        ),
        ("redis", BackendKind::Redis, Backend::Sqlite),
    ] {
        let (limiter, _db) = limiter(&rt, backend, database);
        let mut n: u32 = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                n = n.wrapping_add(1);
                let source = SourceIp(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n % 10_000)));
                let checks = [
                    limiter.ip_check(Endpoint::Token, &source),
                    limiter.auth_failure_check(&source, false),
                ];
                let applied = rt.block_on(limiter.check(&checks)).unwrap();
                assert!(applied.iter().all(|a| a.outcome.allowed));
            });
        });
    }
    group.finish();
}

criterion_group!(benches, checks);
criterion_main!(benches);
