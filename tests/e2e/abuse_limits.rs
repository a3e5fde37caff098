//! Rate limits against the real binary (`[rate_limits]`, `crate::ratelimit` in the server): a
//! client's burst beyond its tier gets 429s with `Retry-After` and the draft RateLimit fields
//! while another client goes on unaffected; bad client assertions naming a victim spend the
//! attacker's address budget and never the victim's quota; and two server processes on one
//! PostgreSQL share one quota through the database and through Redis (`REDIS_URL`, which must be
//! set: these tests fail rather than skip without it).
//!
//! Clients are sources on 127.0.0.0/8: every request of a reqwest client built by [`http_from`]
//! leaves from the loopback address it names, so one test has several source addresses.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use futures_util::StreamExt as _;
use portcullis_testkit::app::App;
use portcullis_testkit::certs::ClientIdentity;
use portcullis_testkit::db::Backend;
use serde_json::json;

use crate::flow::{Auth, Bank, Binding, Tpp};
use crate::oauth::{
    ClientKey, Credentials, Reply, assertion_claims, assertion_form, dpop_proof, post_form,
    random_id, server_now,
};

/// An HTTPS client of `app` whose connections leave from `source` (any address of 127.0.0.0/8),
/// presenting `identity` when given.
fn http_from(app: &App, source: [u8; 4], identity: Option<&ClientIdentity>) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(app.ca_pem.as_deref().unwrap()).unwrap();
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([ca])
        .https_only(true)
        .timeout(Duration::from_secs(30))
        .local_address(IpAddr::from(source));
    if let Some(identity) = identity {
        builder = builder.identity(identity.reqwest_identity());
    }
    builder.build().unwrap()
}

/// A `tls_client_auth` client with certificate-bound tokens that may use the client-credentials
/// grant for `revocation_events`, in `tier`.
async fn mtls_client(bank: &Bank, name: &str, tier: Option<&str>) -> (Tpp, ClientIdentity) {
    let mut change = json!({
        "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
        "scope": "openid revocation_events",
    });
    if let Some(tier) = tier {
        change["rate_limit_tier"] = tier.into();
    }
    let tpp = bank
        .tpp_with(
            name,
            Auth::TlsClientAuth,
            Binding::Certificate,
            "ES256",
            &change,
        )
        .await;
    let cert = bank.holder(&tpp).cert;
    (tpp, cert)
}

/// A client-credentials request of the mTLS client `id` on `app`'s mTLS listener through `http`.
async fn mtls_token(app: &App, http: &reqwest::Client, id: &str) -> Reply {
    let form = [
        ("grant_type", "client_credentials"),
        ("scope", "revocation_events"),
        ("client_id", id),
    ];
    Reply::send(http.post(app.mtls_url("/token")).form(&form)).await
}

/// The `RateLimit` item of `policy` in `reply`: its `r` and `t`.
fn item(reply: &Reply, policy: &str) -> (u64, Option<u64>) {
    let field = reply
        .header("ratelimit")
        .unwrap_or_else(|| panic!("no RateLimit field: {:?}", reply.headers));
    let prefix = format!("\"{policy}\";");
    let item = field
        .split(", ")
        .find_map(|i| i.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {policy} in {field}"));
    let param = |name: &str| {
        item.split(';')
            .find_map(|p| p.strip_prefix(&format!("{name}=")))
            .map(|v| v.parse::<u64>().unwrap())
    };
    (param("r").unwrap(), param("t"))
}

/// Asserts a 429 in the OAuth format, refused by `policy`, with a `Retry-After` matching the
/// policy's `t`; returns the `Retry-After` seconds.
fn assert_limited(reply: &Reply, policy: &str) -> u64 {
    reply.assert_error(429, "temporarily_unavailable");
    let description = reply.body["error_description"].as_str().unwrap();
    assert!(description.contains(policy), "{description}");
    let retry: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    assert!(retry >= 1);
    assert_eq!(item(reply, policy), (0, Some(retry)), "{:?}", reply.headers);
    retry
}

/// The counter `name` with `labels` in `app`'s metrics, 0 when absent.
async fn counter(app: &App, name: &str, labels: &str) -> u64 {
    let metrics = app.metrics_listen.expect("metrics enabled");
    let text = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// The tier of the bursting client: 50 tokens a day, so that none comes back during the test.
const TINY_TIER: &str = r#"
[rate_limits.ip]
token = { quota = 1000000, window_secs = 60 }
[rate_limits.tiers.tiny]
token = { quota = 50, window_secs = 86400 }
"#;

#[tokio::test]
async fn a_burst_beyond_the_tier_gets_429s_with_the_ratelimit_fields_and_spares_other_clients() {
    let bank = Bank::start_with(Backend::Sqlite, TINY_TIER).await;
    let app = bank.app();
    let (greedy, greedy_cert) = mtls_client(&bank, "Greedy TPP", Some("tiny")).await;
    let (calm, calm_cert) = mtls_client(&bank, "Calm TPP", None).await;
    // A tier the configuration does not define is refused.
    let reply = bank
        .session
        .call(
            app,
            reqwest::Method::PUT,
            &format!("/admin/v1/clients/{}", calm.id),
            Some(&json!({"rate_limit_tier": "platinum"})),
        )
        .await;
    reply.assert_error(400, "invalid_client_metadata");

    // 10,000 requests over four connections, sixteen at a time, while the calm client keeps
    // asking for a token now and then.
    let greedy_http: Vec<reqwest::Client> = (0..4)
        .map(|_| http_from(app, [127, 0, 0, 1], Some(&greedy_cert)))
        .collect();
    let calm_http = http_from(app, [127, 0, 0, 1], Some(&calm_cert));
    let burst = futures_util::stream::iter(0..10_000)
        .map(|i| mtls_token(app, &greedy_http[i % 4], &greedy.id))
        .buffer_unordered(16)
        .collect::<Vec<Reply>>();
    let calm_requests = async {
        let mut replies = Vec::new();
        for _ in 0..10 {
            replies.push(mtls_token(app, &calm_http, &calm.id).await);
        }
        replies
    };
    let (replies, calm_replies) = tokio::join!(burst, calm_requests);

    let mut remaining = BTreeSet::new();
    let mut limited = 0;
    for reply in &replies {
        match reply.status.as_u16() {
            200 => {
                assert!(reply.body["access_token"].is_string());
                assert_eq!(
                    reply.header("ratelimit-policy"),
                    Some(
                        r#""token-ip";q=1000000;w=60, "auth-failures";q=30;w=300, "token-client";q=50;w=86400"#
                    )
                );
                remaining.insert(item(reply, "token-client").0);
            }
            429 => {
                let retry = assert_limited(reply, "token-client");
                // The next token comes back 86400/50 s after the first of the burst.
                assert!((1600..=1728).contains(&retry), "{retry}");
                assert!(
                    reply
                        .header("ratelimit-policy")
                        .unwrap()
                        .ends_with(r#""token-client";q=50;w=86400"#)
                );
                limited += 1;
            }
            other => panic!("{other}: {}", reply.body),
        }
    }
    // Exactly the tier's quota passed, each success seeing one token fewer left.
    assert_eq!(remaining, (0..50).collect::<BTreeSet<u64>>());
    assert_eq!(limited, 10_000 - 50);
    for reply in &calm_replies {
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(item(reply, "token-client").0 >= 590);
    }
    // The greedy client stays refused; the calm one is still served.
    assert_limited(
        &mtls_token(app, &greedy_http[0], &greedy.id).await,
        "token-client",
    );
    assert_eq!(mtls_token(app, &calm_http, &calm.id).await.status, 200);
    assert_eq!(
        counter(
            app,
            "portcullis_rate_limited_total",
            r#"endpoint="token",key="client""#
        )
        .await,
        10_000 - 50 + 1
    );
}

/// A `private_key_jwt` client with DPoP-bound tokens for `revocation_events`, in `tier`.
async fn jwt_client(bank: &Bank, tier: &str) -> (String, ClientKey) {
    let key = ClientKey::es256(Some("victim"));
    let created = bank
        .session
        .create(
            bank.app(),
            "/admin/v1/clients",
            &json!({
                "client_name": "Victim TPP",
                "grant_types": ["client_credentials"],
                "response_types": [],
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": key.jwks(),
                "dpop_bound_access_tokens": true,
                "scope": "revocation_events",
                "rate_limit_tier": tier,
            }),
        )
        .await;
    (created["client_id"].as_str().unwrap().to_owned(), key)
}

/// A client-credentials request for `client_id` with an assertion signed by `key` and a DPoP
/// proof, on the main listener through `http`, at the server time `now`.
async fn jwt_token(
    app: &App,
    http: &reqwest::Client,
    client_id: &str,
    key: &ClientKey,
    now: i64,
) -> Reply {
    let url = app.url("/token");
    let mut form = vec![
        ("grant_type".to_owned(), "client_credentials".to_owned()),
        ("scope".to_owned(), "revocation_events".to_owned()),
    ];
    form.extend(assertion_form(&key.sign(&assertion_claims(
        client_id,
        &app.issuer,
        now,
    ))));
    let credentials = Credentials {
        dpop: Some(dpop_proof(&ClientKey::es256(None), "POST", &url, None, now)),
        basic: None,
    };
    post_form(http, &url, &form, &credentials).await
}

#[tokio::test]
async fn bad_assertions_naming_a_victim_spend_the_attackers_address_and_never_the_victims_quota() {
    let toml = r#"
[rate_limits.ip]
auth_failures = { quota = 10, window_secs = 3600 }
[rate_limits.tiers.small]
token = { quota = 5, window_secs = 86400 }
"#;
    let bank = Bank::start_with(Backend::Sqlite, toml).await;
    let app = bank.app();
    let (victim, victim_key) = jwt_client(&bank, "small").await;
    let now = server_now(app).await;

    // The attacker at 127.0.0.7 names the victim with assertions it cannot sign, and with
    // garbage: each failure spends its address's budget of ten.
    let attacker = http_from(app, [127, 0, 0, 7], None);
    let forged = ClientKey::es256(Some("victim"));
    for i in 0..10 {
        let reply = jwt_token(app, &attacker, &victim, &forged, now).await;
        reply.assert_error(401, "invalid_client");
        assert_eq!(item(&reply, "auth-failures").0, 9 - i);
    }
    // Then it is refused before authentication, at every endpoint of client authentication.
    let reply = jwt_token(app, &attacker, &victim, &forged, now).await;
    let retry = assert_limited(&reply, "auth-failures");
    assert!((350..=360).contains(&retry), "{retry}");
    let garbage = [
        ("client_id", victim.as_str()),
        ("client_assertion_type", crate::oauth::JWT_BEARER),
        ("client_assertion", "not.a.jwt"),
    ];
    for path in ["/par", "/introspect", "/revoke"] {
        let reply = Reply::send(attacker.post(app.url(path)).form(&garbage)).await;
        assert_limited(&reply, "auth-failures");
    }

    // The victim, from its own address, still has its whole quota: five tokens, then 429.
    let victim_http = http_from(app, [127, 0, 0, 8], None);
    for i in 0..5 {
        let reply = jwt_token(app, &victim_http, &victim, &victim_key, now).await;
        assert_eq!(reply.status, 200, "token {i}: {}", reply.body);
        assert_eq!(item(&reply, "token-client").0, 4 - i);
        assert_eq!(item(&reply, "auth-failures").0, 10);
    }
    let reply = jwt_token(app, &victim_http, &victim, &victim_key, now).await;
    assert_limited(&reply, "token-client");
    assert_eq!(
        counter(
            app,
            "portcullis_rate_limited_total",
            r#"endpoint="token",key="auth_failures""#
        )
        .await,
        1
    );
}

/// Two processes on one PostgreSQL with `rate_limits` from `toml`: one client's requests, spread
/// over both, pass exactly one quota between them.
async fn two_replicas_share_one_quota(toml: &str) {
    let bank = Bank::start_with(Backend::Postgres, toml).await;
    let replica = bank.replica().await;
    let (tpp, cert) = mtls_client(&bank, "Replicated TPP", Some("shared")).await;
    let apps = [bank.app(), &replica];
    let https: Vec<reqwest::Client> = apps
        .iter()
        .map(|app| http_from(app, [127, 0, 0, 1], Some(&cert)))
        .collect();
    let replies: Vec<(usize, Reply)> = futures_util::stream::iter(0..200)
        .map(|i| {
            let (app, http) = (apps[i % 2], &https[i % 2]);
            let id = tpp.id.clone();
            async move { (i % 2, mtls_token(app, http, &id).await) }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut passed = [0, 0];
    for (process, reply) in &replies {
        match reply.status.as_u16() {
            200 => passed[*process] += 1,
            429 => {
                assert_limited(reply, "token-client");
            }
            other => panic!("{other}: {}", reply.body),
        }
    }
    assert_eq!(passed[0] + passed[1], 20, "{passed:?}");
    assert!(passed[0] > 0 && passed[1] > 0, "{passed:?}");
}

#[tokio::test]
async fn two_processes_on_one_database_share_the_limits() {
    two_replicas_share_one_quota(
        r#"
[rate_limits]
backend = "database"
[rate_limits.tiers.shared]
token = { quota = 20, window_secs = 86400 }
"#,
    )
    .await;
}

/// `[rate_limits]` on the test command's Redis (`REDIS_URL`, required) under a fresh key prefix,
/// followed by `rest`.
fn on_redis(rest: &str) -> String {
    let url = std::env::var("REDIS_URL")
        .expect("REDIS_URL must name a Redis for this test (scripts/test starts one)");
    format!(
        "[rate_limits]\nbackend = \"redis\"\nredis_url = {url}\nredis_key_prefix = \"portcullis:e2e:{prefix}:\"\n{rest}",
        url = serde_json::to_string(&url).unwrap(),
        prefix = random_id(),
    )
}

#[tokio::test]
async fn two_processes_on_one_redis_share_the_limits() {
    two_replicas_share_one_quota(&on_redis(
        r#"
[rate_limits.tiers.shared]
token = { quota = 20, window_secs = 86400 }
"#,
    ))
    .await;
}

/// Two processes on one PostgreSQL with `rate_limits` from `toml` (an auth-failure budget of 10
/// per hour): an attacker's 200 forged assertions, 50 at a time and spread over both, get
/// exactly ten verifications between them; the rest are refused before authentication, and
/// nothing answers 5xx. Each request reserves a failure on arrival, so parallel requests cannot
/// all pass before the first failure is counted.
async fn parallel_forgeries_get_exactly_the_budget(toml: &str) {
    let bank = Bank::start_with(Backend::Postgres, toml).await;
    let replica = bank.replica().await;
    let (victim, victim_key) = jwt_client(&bank, "default").await;
    let apps = [bank.app(), &replica];
    let now = server_now(bank.app()).await;
    let https: Vec<reqwest::Client> = apps
        .iter()
        .map(|app| http_from(app, [127, 0, 0, 9], None))
        .collect();
    let forged = ClientKey::es256(Some("victim"));
    let replies: Vec<Reply> = futures_util::stream::iter(0..200)
        .map(|i| {
            let (app, http) = (apps[i % 2], &https[i % 2]);
            let (victim, forged) = (&victim, &forged);
            async move { jwt_token(app, http, victim, forged, now).await }
        })
        .buffer_unordered(50)
        .collect()
        .await;
    let mut verified = 0;
    for reply in &replies {
        match reply.status.as_u16() {
            401 => {
                reply.assert_error(401, "invalid_client");
                verified += 1;
            }
            429 => {
                assert_limited(reply, "auth-failures");
            }
            other => panic!("{other}: {}", reply.body),
        }
    }
    assert_eq!(verified, 10);
    // The victim, from its own address, is served by both.
    for app in apps {
        let http = http_from(app, [127, 0, 0, 10], None);
        let reply = jwt_token(app, &http, &victim, &victim_key, now).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(item(&reply, "auth-failures").0, 10);
    }
}

#[tokio::test]
async fn parallel_forgeries_on_two_processes_sharing_the_database_get_exactly_the_budget() {
    parallel_forgeries_get_exactly_the_budget(
        r#"
[rate_limits]
backend = "database"
[rate_limits.ip]
auth_failures = { quota = 10, window_secs = 3600 }
"#,
    )
    .await;
}

#[tokio::test]
async fn parallel_forgeries_on_two_processes_sharing_redis_get_exactly_the_budget() {
    parallel_forgeries_get_exactly_the_budget(&on_redis(
        r#"
[rate_limits.ip]
auth_failures = { quota = 10, window_secs = 3600 }
"#,
    ))
    .await;
}
