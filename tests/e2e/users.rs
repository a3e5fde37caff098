//! `portcullis users create|enrol-totp|list`: passwords only on standard input, OIDC Core §5.1
//! claims checked by name and type, no hash ever shown, and the TOTP secret shown once inside
//! its `otpauth://` URI, against the store a running server uses.

use portcullis_testkit::app::{Build, CliOutput, run_cli, run_cli_with_stdin};
use serde_json::{Value, json};

/// A key-encryption key for the commands that need one (32 bytes, base64), as a server would
/// be given it.
const KEK: (&str, &str) = (
    "PORTCULLIS_KEYS__KEK",
    "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
);

const PASSWORD: &str = "correct horse battery staple";

/// `portcullis users create --username <username> --password-stdin [--claims <file>]`.
async fn create(
    dir: &tempfile::TempDir,
    username: &str,
    stdin: &str,
    claims: Option<&Value>,
) -> CliOutput {
    let data_dir = dir.path().to_str().unwrap();
    let mut args = vec![
        "users",
        "create",
        "--data-dir",
        data_dir,
        "--username",
        username,
        "--password-stdin",
    ];
    let file = dir.path().join(format!("claims-{}.json", unique()));
    if let Some(claims) = claims {
        std::fs::write(&file, serde_json::to_vec(claims).unwrap()).unwrap();
        args.extend(["--claims", file.to_str().unwrap()]);
    }
    run_cli_with_stdin(Build::Plain, &args, &[], stdin.as_bytes()).await
}

async fn enrol_totp(dir: &tempfile::TempDir, username: &str, env: &[(&str, &str)]) -> CliOutput {
    let data_dir = dir.path().to_str().unwrap();
    run_cli(
        Build::Plain,
        &[
            "users",
            "enrol-totp",
            "--data-dir",
            data_dir,
            "--username",
            username,
        ],
        env,
    )
    .await
}

/// The rows of `portcullis users list`, without its header.
async fn list_users(dir: &tempfile::TempDir) -> Vec<String> {
    let out = run_cli(
        Build::Plain,
        &["users", "list", "--data-dir", dir.path().to_str().unwrap()],
        &[],
    )
    .await;
    assert!(out.status.success(), "{}", out.stderr);
    let mut lines = out.stdout.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("ID") && header.contains("USERNAME"),
        "{header}"
    );
    lines.map(str::to_owned).collect()
}

fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// The query parameters of an `otpauth://` URI.
fn query(uri: &str) -> Vec<(String, String)> {
    let (_, query) = uri.split_once('?').unwrap();
    query
        .split('&')
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap();
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn a_user_is_created_with_the_password_from_stdin_and_no_hash_is_ever_shown() {
    let dir = tempfile::tempdir().unwrap();
    let claims = json!({
        "name": "Alice Example",
        "email": "alice@bank.example",
        "email_verified": true,
        "address": {"locality": "London", "country": "GB"},
    });
    let out = create(&dir, "Alice", &format!("{PASSWORD}\n"), Some(&claims)).await;
    assert!(out.status.success(), "{}", out.stderr);
    let user: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(user["username"], "alice", "usernames are normalised");
    assert_eq!(user["claims"], claims);
    assert_eq!(user["totp_enrolled"], false);
    assert_eq!(user["disabled_at"], Value::Null);
    let id = user["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    for shown in [&out.stdout, &out.stderr] {
        for secret in ["password", "hash", "argon2", PASSWORD] {
            assert!(!shown.contains(secret), "{secret} shown: {shown}");
        }
    }

    let rows = list_users(&dir).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert!(row.starts_with(&id), "{row}");
    assert!(
        row.contains("alice") && row.contains("active") && row.contains("Alice Example"),
        "{row}"
    );
    assert!(!row.contains("argon2"), "{row}");
}

#[tokio::test]
async fn a_taken_username_is_refused_whatever_its_case() {
    let dir = tempfile::tempdir().unwrap();
    let out = create(&dir, "bob", &format!("{PASSWORD}\n"), None).await;
    assert!(out.status.success(), "{}", out.stderr);
    let out = create(&dir, "BOB", &format!("{PASSWORD}\n"), None).await;
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("\"bob\" is taken"), "{}", out.stderr);
    assert_eq!(list_users(&dir).await.len(), 1);
}

/// Bad input exits 2 naming the field and the rule, and creates nothing.
#[tokio::test]
async fn bad_input_exits_2_naming_the_problem_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let line = format!("{PASSWORD}\n");
    let line = line.as_str();
    for (username, stdin, claims, expected) in [
        (
            "carol",
            line,
            Some(json!({"sub": "someone-else"})),
            "claims.sub cannot be set",
        ),
        (
            "carol",
            line,
            Some(json!({"account_number": "12345678"})),
            "claims.account_number is not an OIDC Core §5.1 standard claim",
        ),
        (
            "carol",
            line,
            Some(json!({"email_verified": "yes"})),
            "claims.email_verified must be a boolean",
        ),
        (
            "carol",
            line,
            Some(json!(["not", "an", "object"])),
            "not a JSON object",
        ),
        ("carol smith", line, None, "username: "),
        ("carol", "short\n", None, "password: "),
        ("carol", "", None, "no password on standard input"),
    ] {
        let out = create(&dir, username, stdin, claims.as_ref()).await;
        assert_eq!(out.status.code(), Some(2), "{expected}: {}", out.stderr);
        assert!(
            out.stderr.contains(expected),
            "expected {expected:?} in {}",
            out.stderr
        );
        assert!(!out.stderr.contains(PASSWORD), "{}", out.stderr);
    }
    let out = run_cli_with_stdin(
        Build::Plain,
        &[
            "users",
            "create",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--username",
            "carol",
        ],
        &[],
        line.as_bytes(),
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.contains("--password-stdin"), "{}", out.stderr);
    assert!(list_users(&dir).await.is_empty());
}

#[tokio::test]
async fn enrol_totp_prints_an_otpauth_uri_once_and_enrolling_again_replaces_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let out = create(&dir, "dave", &format!("{PASSWORD}\n"), None).await;
    assert!(out.status.success(), "{}", out.stderr);

    let out = enrol_totp(&dir, "dave", &[KEK]).await;
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(
        out.stdout.lines().count(),
        1,
        "only the URI: {}",
        out.stdout
    );
    let uri = out.stdout.trim_end();
    assert!(uri.starts_with("otpauth://totp/Portcullis:dave?"), "{uri}");
    let params = query(uri);
    let param = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{name} missing from {uri}"))
    };
    let secret = param("secret").to_owned();
    // RFC 4226 §4: 160 bits, base32 without padding.
    assert_eq!(secret.len(), 32, "{secret}");
    assert!(
        secret
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
    );
    assert_eq!(param("issuer"), "Portcullis");
    assert_eq!(param("algorithm"), "SHA1");
    assert_eq!(param("digits"), "6");
    assert_eq!(param("period"), "30");
    assert!(
        !out.stderr.contains(&secret),
        "the secret only goes to stdout"
    );

    let rows = list_users(&dir).await;
    assert!(
        rows.iter().any(|r| r.contains("dave") && r.contains("yes")),
        "listed with TOTP: {rows:?}"
    );
    assert!(!rows.iter().any(|r| r.contains(&secret)));

    let again = enrol_totp(&dir, "dave", &[KEK]).await;
    assert!(again.status.success(), "{}", again.stderr);
    let second = query(again.stdout.trim_end())
        .into_iter()
        .find(|(n, _)| n == "secret")
        .unwrap()
        .1;
    assert_eq!(second.len(), 32);
    assert_ne!(second, secret, "a second enrolment replaces the secret");
    assert_eq!(list_users(&dir).await.len(), 1);
}

#[tokio::test]
async fn enrol_totp_refuses_unknown_users_and_never_invents_a_kek() {
    let dir = tempfile::tempdir().unwrap();
    let out = create(&dir, "erin", &format!("{PASSWORD}\n"), None).await;
    assert!(out.status.success(), "{}", out.stderr);

    let out = enrol_totp(&dir, "erin", &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("keys.kek_file") && out.stderr.contains("does not exist"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(!dir.path().join("kek.key").exists());

    let out = enrol_totp(&dir, "nobody", &[KEK]).await;
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("no user named \"nobody\""),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "{}", out.stdout);

    let out = enrol_totp(&dir, "not a name", &[KEK]).await;
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("username: "), "{}", out.stderr);

    assert!(
        list_users(&dir).await.iter().all(|r| r.contains(" no ")),
        "nothing was enrolled"
    );
}
