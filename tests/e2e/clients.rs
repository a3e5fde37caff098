//! `portcullis clients create|list`: RFC 7591 metadata in, the registered client out, checked per
//! profile, against the store a running server uses.

use portcullis_testkit::app::{Build, CliOutput, run_cli};
use serde_json::{Value, json};

/// The RFC 7517 Appendix A.1 P-256 public key, as a signing key.
fn jwks() -> Value {
    json!({"keys": [{
        "kty": "EC", "crv": "P-256", "use": "sig", "kid": "1",
        "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
        "y": "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"
    }]})
}

async fn create(dir: &tempfile::TempDir, metadata: &Value, profile: &str) -> CliOutput {
    let file = dir.path().join(format!("client-{}.json", uuid_like()));
    std::fs::write(&file, serde_json::to_vec(metadata).unwrap()).unwrap();
    let data_dir = dir.path().to_str().unwrap();
    run_cli(
        Build::Plain,
        &[
            "clients",
            "create",
            "--data-dir",
            data_dir,
            "--profile",
            profile,
            "--file",
            file.to_str().unwrap(),
        ],
        &[],
    )
    .await
}

/// `portcullis clients list` on the directory's store.
async fn list_clients(dir: &tempfile::TempDir) -> CliOutput {
    run_cli(
        Build::Plain,
        &[
            "clients",
            "list",
            "--data-dir",
            dir.path().to_str().unwrap(),
        ],
        &[],
    )
    .await
}

fn uuid_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[tokio::test]
async fn a_fapi_client_is_registered_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let metadata = json!({
        "client_name": "Example TPP",
        "redirect_uris": ["https://tpp.example/cb"],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": jwks(),
    });
    let out = create(&dir, &metadata, "fapi2").await;
    assert!(out.status.success(), "{}", out.stderr);
    let client: Value = serde_json::from_str(&out.stdout).unwrap();
    let client_id = client["client_id"].as_str().unwrap().to_owned();
    assert_eq!(client_id.len(), 22, "128 random bits");
    assert_eq!(client["profile"], "fapi2");
    assert_eq!(client["redirect_uris"], json!(["https://tpp.example/cb"]));
    assert!(client.get("client_secret").is_none());

    let list = list_clients(&dir).await;
    assert!(list.status.success(), "{}", list.stderr);
    let row = list
        .stdout
        .lines()
        .find(|l| l.starts_with(&client_id))
        .expect("listed");
    assert!(
        row.contains("fapi2") && row.contains("private_key_jwt") && row.contains("Example TPP"),
        "{row}"
    );
}

#[tokio::test]
async fn an_oauth_client_with_a_secret_sees_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let metadata = json!({
        "redirect_uris": ["http://127.0.0.1:8080/cb"],
        "token_endpoint_auth_method": "client_secret_basic",
    });
    let out = create(&dir, &metadata, "oauth").await;
    assert!(out.status.success(), "{}", out.stderr);
    let client: Value = serde_json::from_str(&out.stdout).unwrap();
    let secret = client["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 43, "256 random bits");
    let list = list_clients(&dir).await;
    assert!(!list.stdout.contains(&secret));
}

/// SP 5.3.2.1-6 and RFC 7591 §3.2.2: bad input exits non-zero naming the field and the rule.
#[tokio::test]
async fn bad_metadata_is_refused_with_the_rule_it_broke() {
    let dir = tempfile::tempdir().unwrap();
    let secret_for_fapi = json!({"redirect_uris": ["https://tpp.example/cb"], "token_endpoint_auth_method": "client_secret_basic"});
    let out = create(&dir, &secret_for_fapi, "fapi2").await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stderr.contains("invalid_client_metadata") && out.stderr.contains("SP 5.3.2.1-6"),
        "{}",
        out.stderr
    );

    let http_redirect = json!({"redirect_uris": ["http://tpp.example/cb"], "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks()});
    let out = create(&dir, &http_redirect, "fapi2").await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stderr.contains("invalid_redirect_uri"),
        "{}",
        out.stderr
    );

    let sets_profile = json!({"profile": "oauth", "redirect_uris": ["https://tpp.example/cb"], "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks()});
    let out = create(&dir, &sets_profile, "fapi2").await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stderr.contains("profile cannot be set"),
        "{}",
        out.stderr
    );

    let file = dir.path().join("not-json.txt");
    std::fs::write(&file, "client_name = 'toml?'").unwrap();
    let out = run_cli(
        Build::Plain,
        &[
            "clients",
            "create",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--file",
            file.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.contains("not a JSON object"), "{}", out.stderr);

    let list = list_clients(&dir).await;
    assert_eq!(
        list.stdout.lines().count(),
        1,
        "nothing was registered: {}",
        list.stdout
    );
}
