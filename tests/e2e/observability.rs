//! Health, readiness, metrics, request ids, limits, and what never reaches the logs.

use portcullis_testkit::app::{App, Options};
use portcullis_testkit::db::Backend;

use crate::support::Fixture;

#[tokio::test]
async fn healthz_readyz_and_metrics_on_their_own_listener() {
    let f = Fixture::start(Backend::Postgres).await;
    let (status, _, body) = f.app.get_json("/healthz").await;
    assert_eq!(
        (status.as_u16(), body["status"].as_str()),
        (200, Some("ok"))
    );
    let (status, _, body) = f.app.get_json("/readyz").await;
    assert_eq!(status, 200);
    assert_eq!(body["database"], "postgres");

    let metrics_addr = f.app.metrics_listen.expect("metrics enabled");
    assert!(metrics_addr.ip().is_loopback());
    let text = reqwest::get(format!("http://{metrics_addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(
            r#"portcullis_http_requests_total{method="GET",endpoint="/readyz",status="200",outcome="2xx"} 1"#
        ),
        "{text}"
    );
    // The public listeners do not serve metrics.
    let response = f
        .app
        .client(None)
        .get(f.app.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn requests_get_an_id_and_secrets_never_reach_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = Options::new(dir.path());
    options.env = vec![("RUST_LOG".into(), "debug".into())];
    let app = App::spawn(options).await;
    let secret = "s3cr3t-token-value-that-must-not-be-logged";
    let response = app
        .client(None)
        .get(app.url(&format!("/jwks?code={secret}")))
        .header("Authorization", format!("Bearer {secret}"))
        .header("DPoP", secret)
        .header("Cookie", format!("session={secret}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(request_id.len(), 36, "a UUID request id");
    let log = app.stderr();
    assert!(
        log.contains(&request_id),
        "the request is logged with its id"
    );
    assert!(!log.contains(secret), "a secret reached the log:\n{log}");
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413() {
    let f = Fixture::start(Backend::Sqlite).await;
    let big = serde_json::json!({"alg": "ES256", "claims": {"pad": "x".repeat(100 * 1024)}});
    let response = f
        .app
        .client(None)
        .post(f.app.url("/__test/sign"))
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
}

#[tokio::test]
async fn readyz_turns_unavailable_when_the_database_goes_away() {
    let mut f = Fixture::start(Backend::Postgres).await;
    assert_eq!(f.app.get_json("/readyz").await.0, 200);
    f.db.destroy().await;
    let (status, _, body) = f.app.get_json("/readyz").await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "unavailable");
    // Liveness is not readiness: the process still answers.
    assert_eq!(f.app.get_json("/healthz").await.0, 200);
}
