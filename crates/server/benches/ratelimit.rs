//! What the rate limits cost a client request on each backend (docs/benchmarks.md, "Rate limits:
//! cost of a check"): the two calls of a `/token` request whose client authenticates: the layer's
//! check before the handler (the source address's bucket at the endpoint, and one reserved
//! auth failure, all or nothing) and `admit_client`'s after authentication (the client's bucket,
//! and the reservation given back). The sources go round 10,000 addresses and the clients round
//! 100, with quotas nothing reaches, so every check is allowed and spends, as on a busy server.
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
use portcullis_core::ratelimit::{Cell, Op, Quota};
use portcullis_server::metrics::Metrics;
use portcullis_server::ratelimit::config::Limit;
use portcullis_server::ratelimit::{
    BackendKind, Check, Endpoint, KeyKind, RateLimiter, RateLimitsConfig,
};
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

/// A client's bucket at `/token`, with a quota nothing reaches.
fn client(n: u32) -> Check {
    let quota = Quota::new(1_000_000, std::time::Duration::from_secs(1)).unwrap();
    Check {
        cell: Cell::new(format!("client:token:bench-{n}"), quota, Op::Spend),
        quota,
        policy: "token-client",
        kind: KeyKind::Client,
    }
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
                let entry = [
                    limiter.ip_check(Endpoint::Token, &source),
                    limiter.auth_failure_check(&source, Op::Spend),
                ];
                let admit = [
                    client(n % 100),
                    limiter.auth_failure_check(&source, Op::Refund),
                ];
                rt.block_on(async {
                    let applied = limiter.check(&entry).await.unwrap();
                    assert!(applied.iter().all(|a| a.outcome.allowed));
                    let applied = limiter.check(&admit).await.unwrap();
                    assert!(applied.iter().all(|a| a.outcome.allowed));
                });
            });
        });
    }
    group.finish();
}

criterion_group!(benches, checks);
criterion_main!(benches);
