//! Restarts, graceful shutdown, and the plain build that users get.

use portcullis_testkit::app::{App, Build, run_cli};
use portcullis_testkit::db::{Backend, TestDatabase};

use crate::support::{kids, options, sign};

async fn restart_keeps_keys_and_data(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::new(backend).await;
    let app = App::spawn(options(&dir, &db)).await;
    let (_, _, before) = app.get_json("/jwks").await;
    let (_, kid_before) = sign(&app, "ES256").await;
    let status = app.stop().await;
    assert!(
        status.success(),
        "SIGTERM must end the server cleanly: {status:?}"
    );

    let app = App::spawn(options(&dir, &db)).await;
    let (_, _, after) = app.get_json("/jwks").await;
    assert_eq!(kids(&before), kids(&after));
    assert_eq!(
        sign(&app, "ES256").await.1,
        kid_before,
        "the same key keeps signing"
    );
    // The development CA is still in use; that it is the same CA is
    // `restart_reuses_the_development_ca`'s to prove.
    assert!(app.ca_pem.is_some());
}

#[tokio::test]
async fn restart_keeps_keys_and_data_on_sqlite() {
    restart_keeps_keys_and_data(Backend::Sqlite).await;
}

#[tokio::test]
async fn restart_keeps_keys_and_data_on_postgres() {
    restart_keeps_keys_and_data(Backend::Postgres).await;
}

#[tokio::test]
async fn restart_reuses_the_development_ca() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::sqlite();
    let first = App::spawn(options(&dir, &db)).await;
    let ca = first.ca_pem.clone().unwrap();
    let client = first.client(None);
    first.stop().await;
    let second = App::spawn(options(&dir, &db)).await;
    assert_eq!(second.ca_pem.as_ref(), Some(&ca));
    // A client built for the first run still trusts the second.
    let response = client.get(second.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_plain_build_has_no_test_controls() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = portcullis_testkit::app::Options::new(dir.path());
    options.build = Build::Plain;
    let app = App::spawn(options).await;
    for path in ["/__test/clock", "/__test/sign"] {
        let response = app
            .client(None)
            .post(app.url(path))
            .json(&serde_json::json!({"advance_secs": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            404,
            "{path} must not exist in a plain build"
        );
    }
    let response = app
        .client(None)
        .get(app.url("/__test/client-cert"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let help = run_cli(Build::Plain, &["serve", "--help"], &[]).await;
    assert!(!help.stdout.contains("test"), "{}", help.stdout);
}

#[tokio::test]
async fn migrate_applies_migrations_and_is_idempotent() {
    let db = TestDatabase::postgres().await;
    for _ in 0..2 {
        let out = run_cli(Build::Plain, &["migrate", "--database-url", db.url()], &[]).await;
        assert!(out.status.success(), "{}", out.stderr);
        assert_eq!(out.stdout.trim(), "migrations applied (postgres)");
    }
}
