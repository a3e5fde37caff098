//! Key rotation through the CLI, observed through the running server's JWKS and signatures.

use portcullis_testkit::app::{App, Build, run_cli};
use portcullis_testkit::db::Backend;

use crate::support::{Fixture, kids, options, sign, verify_independently};

/// `portcullis keys rotate` against the fixture's store.
async fn rotate(f: &Fixture, alg: &str) -> String {
    let data_dir = f.dir.path().to_str().unwrap();
    let mut args = vec!["keys", "rotate", "--alg", alg, "--data-dir", data_dir];
    if f.db.backend() == Backend::Postgres {
        args.extend(["--database-url", f.db.url()]);
    }
    let out = run_cli(Build::Plain, &args, &[]).await;
    assert!(out.status.success(), "keys rotate failed: {}", out.stderr);
    let line = out
        .stdout
        .lines()
        .next()
        .expect("keys rotate printed nothing");
    assert!(
        line.contains(alg) && line.contains("activates_at="),
        "{line}"
    );
    line.split_whitespace().next().unwrap().to_owned()
}

async fn jwks(app: &App) -> serde_json::Value {
    app.get_json("/jwks").await.2
}

#[tokio::test]
async fn rotation_publishes_the_new_key_before_it_signs_and_keeps_the_old_one_published() {
    let f = Fixture::start(Backend::Sqlite).await;
    let (_, old_kid) = sign(&f.app, "ES256").await;
    let new_kid = rotate(&f, "ES256").await;
    assert_ne!(new_kid, old_kid);

    // Within the refresh interval (10 s) the replica has not re-read the keys yet.
    f.app.advance_clock(11).await;
    let published = jwks(&f.app).await;
    assert!(
        kids(&published).contains(&new_kid),
        "the new key must be published at once"
    );
    // It does not sign before every JWKS cache (max-age 300 s) can have seen it.
    let (jwt, kid) = sign(&f.app, "ES256").await;
    assert_eq!(kid, old_kid);
    verify_independently(&jwt, &published).unwrap();

    f.app.advance_clock(300).await;
    let (jwt, kid) = sign(&f.app, "ES256").await;
    assert_eq!(
        kid, new_kid,
        "the new key signs once published for max-age + refresh interval"
    );
    let published = jwks(&f.app).await;
    verify_independently(&jwt, &published).unwrap();
    assert!(
        kids(&published).contains(&old_kid),
        "the retired key stays published"
    );

    // Past keys.keep_retired_secs (a day) the retired key leaves the JWKS.
    f.app.advance_clock(86_400).await;
    let published = jwks(&f.app).await;
    assert!(!kids(&published).contains(&old_kid));
    assert!(kids(&published).contains(&new_kid));
}

#[tokio::test]
async fn keys_list_shows_states() {
    let f = Fixture::start(Backend::Sqlite).await;
    let new_kid = rotate(&f, "EdDSA").await;
    let data_dir = f.dir.path().to_str().unwrap();
    let out = run_cli(Build::Plain, &["keys", "list", "--data-dir", data_dir], &[]).await;
    assert!(out.status.success(), "{}", out.stderr);
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with(&new_kid))
        .expect("new key listed");
    assert!(line.contains("EdDSA") && line.contains("next"), "{line}");
    assert_eq!(
        out.stdout
            .lines()
            .filter(|l| l.contains(" active "))
            .count(),
        3,
        "{}",
        out.stdout
    );
}

#[tokio::test]
async fn two_servers_on_one_postgres_publish_the_same_jwks_and_both_see_a_cli_rotation() {
    let f = Fixture::start(Backend::Postgres).await;
    // The second replica shares the database and the KEK (the same data directory here).
    let second = App::spawn(options(&f.dir, &f.db)).await;
    let first_jwks = jwks(&f.app).await;
    assert_eq!(first_jwks, jwks(&second).await);
    assert_eq!(
        kids(&first_jwks).len(),
        3,
        "the second replica must not add keys of its own"
    );

    let new_kid = rotate(&f, "PS256").await;
    for app in [&f.app, &second] {
        app.advance_clock(11).await;
    }
    let a = jwks(&f.app).await;
    assert!(kids(&a).contains(&new_kid));
    assert_eq!(a, jwks(&second).await);

    // Both replicas switch to the new key once it is due, and each verifies with the other's JWKS.
    for app in [&f.app, &second] {
        app.advance_clock(300).await;
    }
    let (jwt, kid) = sign(&second, "PS256").await;
    assert_eq!(kid, new_kid);
    verify_independently(&jwt, &jwks(&f.app).await).unwrap();
}
