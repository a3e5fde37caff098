//! Bad configuration stops start-up with a message naming the problem and a non-zero exit code.

use portcullis_testkit::app::{Build, CliOutput, EPHEMERAL_LISTENERS, run_cli};

/// `portcullis serve` on a fresh data directory with ephemeral listeners.
async fn serve(data_dir: &str, extra: &[&str], env: &[(&str, &str)]) -> CliOutput {
    let mut args = vec!["serve", "--data-dir", data_dir];
    args.extend_from_slice(&EPHEMERAL_LISTENERS);
    args.extend_from_slice(extra);
    run_cli(Build::Plain, &args, env).await
}

async fn serve_fails(extra: &[&str], env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = serve(dir.path().to_str().unwrap(), extra, env).await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected exit code 2; stderr: {}",
        out.stderr
    );
    assert!(
        out.stdout.is_empty(),
        "nothing may claim readiness: {}",
        out.stdout
    );
    out.stderr
}

#[tokio::test]
async fn an_unknown_key_in_the_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("portcullis.toml");
    std::fs::write(&file, "[listen]\nmian = \"127.0.0.1:1\"\n").unwrap();
    let stderr = serve_fails(&["--config", file.to_str().unwrap()], &[]).await;
    assert!(stderr.contains("listen.mian: unknown key"), "{stderr}");
}

#[tokio::test]
async fn an_unknown_environment_variable_is_named() {
    let stderr = serve_fails(&[], &[("PORTCULLIS_LISTEN__BOGUS", "1")]).await;
    assert!(stderr.contains("listen.bogus"), "{stderr}");
}

#[tokio::test]
async fn an_unreadable_certificate_is_named() {
    let stderr = serve_fails(
        &[],
        &[
            ("PORTCULLIS_TLS__CERT_FILE", "/nonexistent/cert.pem"),
            ("PORTCULLIS_TLS__KEY_FILE", "/nonexistent/key.pem"),
        ],
    )
    .await;
    assert!(
        stderr.contains("tls.cert_file") && stderr.contains("/nonexistent/cert.pem"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_certificate_file_without_a_certificate_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, "not a certificate").unwrap();
    std::fs::write(&key, "not a key").unwrap();
    let stderr = serve_fails(
        &[],
        &[
            ("PORTCULLIS_TLS__CERT_FILE", cert.to_str().unwrap()),
            ("PORTCULLIS_TLS__KEY_FILE", key.to_str().unwrap()),
        ],
    )
    .await;
    assert!(stderr.contains("tls.cert_file"), "{stderr}");
}

#[tokio::test]
async fn a_malformed_database_url_is_named() {
    for url in [
        "mysql://localhost/portcullis",
        "postgres://host:notaport/db",
    ] {
        let stderr = serve_fails(&["--database-url", url], &[]).await;
        assert!(stderr.contains("database_url"), "{url}: {stderr}");
    }
}

#[tokio::test]
async fn an_http_issuer_is_refused() {
    let stderr = serve_fails(&["--issuer", "http://as.example"], &[]).await;
    assert!(
        stderr.contains("issuer") && stderr.contains("https"),
        "{stderr}"
    );
}

/// `keys list` on a data directory: the listed key lines.
async fn key_lines(data_dir: &str) -> Vec<String> {
    let out = run_cli(Build::Plain, &["keys", "list", "--data-dir", data_dir], &[]).await;
    assert!(out.status.success(), "{}", out.stderr);
    out.stdout.lines().skip(1).map(str::to_owned).collect()
}

#[tokio::test]
async fn a_kek_that_does_not_open_the_stored_keys_stops_start_up_and_rotation_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let mut options = portcullis_testkit::app::Options::new(dir.path());
    options.build = Build::Plain;
    portcullis_testkit::app::App::spawn(options)
        .await
        .stop()
        .await;
    let before = key_lines(data_dir).await;
    assert_eq!(before.len(), 3);

    // 32 bytes, but not the KEK that encrypted the keys.
    let other = [(
        "PORTCULLIS_KEYS__KEK",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    )];
    let out = serve(data_dir, &[], &other).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stderr.contains("different key-encryption key"),
        "{}",
        out.stderr
    );
    let out = run_cli(
        Build::Plain,
        &["keys", "rotate", "--data-dir", data_dir],
        &other,
    )
    .await;
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("different key-encryption key"),
        "{}",
        out.stderr
    );
    // Nothing was added under the wrong KEK.
    assert_eq!(key_lines(data_dir).await, before);
}

#[tokio::test]
async fn keys_rotate_never_invents_a_kek() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let out = run_cli(
        Build::Plain,
        &["keys", "rotate", "--data-dir", data_dir],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stderr.contains("keys.kek_file") && out.stderr.contains("does not exist"),
        "{}",
        out.stderr
    );
    assert!(!dir.path().join("kek.key").exists());
}
