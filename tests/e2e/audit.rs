//! The tamper-evident audit trail end to end: after a full FAPI flow `portcullis audit verify`
//! passes on the server's database; once a superuser has turned the append-only trigger off and
//! edited one event, it fails naming that event's chain and position. And the admin API's
//! filters of the trail and its JSON-lines export, whose hashes a SIEM can recompute: here they
//! are recomputed by an implementation of the documented encoding written apart from the
//! server's, so that a bug cannot verify itself.

use portcullis_testkit::app::{Build, CliOutput, run_cli};
use portcullis_testkit::db::Backend;
use reqwest::Method;
use serde_json::{Value, json};

use crate::flow::{Auth, Bank, Binding, Browser, PASSWORD, REDIRECT, Tpp};
use crate::oauth::{
    ADMIN_SCOPE, AdminClient, AdminSession, ClientKey, bootstrap_cli, dpop_proof, random_id,
    server_now,
};

/// A customer's consent through the pages, its code redeemed and the refresh token used once:
/// the client and the customer's id.
async fn full_flow(bank: &Bank) -> (Tpp, String) {
    let app = bank.app();
    let tpp = bank.tpp(Auth::PrivateKeyJwt, Binding::Dpop, "ES256").await;
    let username = format!("cust-{}", random_id().to_lowercase());
    let user = bank.customer(&username).await;
    let holder = bank.holder(&tpp);
    let mut browser = Browser::new(app);
    let pushed = tpp.push(app, &holder, &[], Some(&holder.dpop)).await;
    let login = browser.get(&pushed.url).await;
    let consent = browser.log_in(app, &login, &username, PASSWORD).await;
    consent.assert_form("/authorize/consent");
    let accounts = consent.inputs("account");
    let redirect = browser
        .approve(app, &consent, &[accounts[0].as_str()])
        .await
        .redirect_to(REDIRECT);
    let tokens = tpp.redeem(app, &holder, &pushed, &redirect["code"]).await;
    assert_eq!(tokens.status, 200, "token: {}", tokens.body);
    let refresh_token = tokens.body["refresh_token"].as_str().unwrap();
    let refreshed = tpp
        .token(
            app,
            &holder,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await;
    assert_eq!(refreshed.status, 200, "refresh: {}", refreshed.body);
    (tpp, user)
}

/// `portcullis audit verify` on the bank's database and data directory (where its KEK is).
async fn audit_verify(bank: &Bank) -> CliOutput {
    let f = bank.fixture();
    let mut args = vec![
        "audit",
        "verify",
        "--data-dir",
        f.dir.path().to_str().unwrap(),
    ];
    if f.db.backend() == Backend::Postgres {
        args.extend(["--database-url", f.db.url()]);
    }
    run_cli(Build::Plain, &args, &[]).await
}

/// The trail's events through the admin API with `query`, every page.
async fn events(bank: &Bank, session: &AdminSession, query: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut path = format!("/admin/v1/events?limit=2&{query}");
    loop {
        let page = session.call(bank.app(), Method::GET, &path, None).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        items.extend(page.body["items"].as_array().unwrap().iter().cloned());
        match page.body["next"].as_str() {
            Some(next) => path = format!("/admin/v1/events?limit=2&after={next}&{query}"),
            None => return items,
        }
    }
}

#[tokio::test]
async fn audit_verify_passes_after_a_full_flow_and_names_an_edited_event() {
    let bank = Bank::start_on(Backend::Postgres).await;
    let app = bank.app();
    let (tpp, _) = full_flow(&bank).await;
    let (status, sealed) = app.post_json("/__test/audit/seal", &json!({})).await;
    assert_eq!(status, 200, "{sealed}");
    let chain = sealed["chain_id"].as_str().unwrap().to_owned();
    let sealed_up_to = sealed["sealed_chain_seq"].as_i64().unwrap();
    // One more event after the seal: the unsealed tail.
    bank.customer(&format!("cust-{}", random_id().to_lowercase()))
        .await;

    let out = audit_verify(&bank).await;
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("chain {chain} (")))
        .unwrap_or_else(|| panic!("no line for the server's chain: {}", out.stdout));
    assert!(
        line.ends_with(&format!("sealed up to {sealed_up_to}, unsealed tail 1")),
        "{line}"
    );
    // The chain of the `admin bootstrap` command was sealed before it exited.
    for other in out
        .stdout
        .lines()
        .filter(|l| l.starts_with("chain ") && *l != line)
    {
        assert!(other.ends_with("unsealed tail 0"), "{other}");
    }
    assert!(
        out.stdout.contains("audit trail verified"),
        "{}",
        out.stdout
    );

    // The code's token.issued event, sealed already.
    let issued = events(
        &bank,
        &bank.session,
        &format!("type=token.issued&client_id={}", tpp.id),
    )
    .await;
    let target = &issued[0];
    assert_eq!(target["details"]["grant_type"], "authorization_code");
    let (seq, chain_seq) = (
        target["seq"].as_i64().unwrap(),
        target["chain_seq"].as_i64().unwrap(),
    );
    assert_eq!(target["chain_id"], chain.as_str());
    assert!(chain_seq <= sealed_up_to);

    // A superuser rewrites history.
    use sqlx::Connection as _;
    let mut db = sqlx::PgConnection::connect(bank.fixture().db.url())
        .await
        .unwrap();
    sqlx::query("ALTER TABLE security_events DISABLE TRIGGER security_events_no_update")
        .execute(&mut db)
        .await
        .unwrap();
    let edited = sqlx::query(
        r#"UPDATE security_events SET details = jsonb_set(details, '{scope}', '"openid accounts payments"') WHERE seq = $1"#,
    )
    .bind(seq)
    .execute(&mut db)
    .await
    .unwrap();
    assert_eq!(edited.rows_affected(), 1);

    let out = audit_verify(&bank).await;
    assert_eq!(out.status.code(), Some(3), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "hash check failed in chain {chain} at chain_seq {chain_seq} (event seq {seq})"
        )),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn admin_api_filters_the_trail_and_exports_it_as_json_lines_a_siem_can_check() {
    let bank = Bank::start().await;
    let app = bank.app();
    let session = &bank.session;
    let (tpp, user) = full_flow(&bank).await;

    // By type and client: the code's and the refresh's tokens, for the customer.
    let issued = events(
        &bank,
        session,
        &format!("type=token.issued&client_id={}", tpp.id),
    )
    .await;
    let grant_types: Vec<&str> = issued
        .iter()
        .map(|e| e["details"]["grant_type"].as_str().unwrap())
        .collect();
    assert_eq!(grant_types, ["authorization_code", "refresh_token"]);
    for event in &issued {
        assert_eq!(event["subject"], user.as_str());
        assert_eq!(event["client_id"], tpp.id.as_str());
        assert_eq!(event["details"]["binding"]["kind"], "dpop");
        assert!(event["details"]["jti"].is_string());
    }
    // Every token response is there: the admin session's too.
    let all_issued = events(&bank, session, "type=token.issued").await;
    assert!(all_issued.len() > issued.len());
    assert!(all_issued.iter().all(|e| e["action"] == "token.issued"));

    // The export: JSON lines, the same events as the listing, each with its chain position and
    // a hash that recomputes from the line alone.
    let (status, content_type, text) = export(&bank, session, "type=token.issued").await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(content_type, "application/jsonl");
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines, all_issued);
    for line in &lines {
        assert_eq!(
            siem_hash(line),
            line["hash"].as_str().unwrap(),
            "the exported hash recomputes: {line}"
        );
    }
    // Resumable after a sequence number.
    let after = lines[0]["seq"].as_i64().unwrap();
    let (_, _, rest) = export(&bank, session, &format!("type=token.issued&after={after}")).await;
    assert_eq!(rest.lines().count(), lines.len() - 1);

    // By subject: only the customer's.
    let about_user = events(&bank, session, &format!("subject={user}")).await;
    assert!(about_user.iter().all(|e| e["subject"] == user.as_str()));
    assert!(about_user.iter().any(|e| e["action"] == "token.issued"));
    let bad = session
        .call(app, Method::GET, "/admin/v1/events?since=yesterday", None)
        .await;
    bad.assert_error(400, "invalid_request");
    assert!(
        bad.body["error_description"]
            .as_str()
            .unwrap()
            .contains("since must be an RFC 3339 date-time"),
        "{}",
        bad.body
    );

    // Both routes need admin:audit.
    let out = bootstrap_cli(bank.fixture(), &["--additional"]).await;
    assert!(out.status.success(), "{}", out.stderr);
    let shown: Value = serde_json::from_str(&out.stdout).unwrap();
    let operator = AdminClient {
        client_id: shown["client_id"].as_str().unwrap().to_owned(),
        key: ClientKey::from_private_jwk(&shown["private_jwk"]),
    };
    let narrow = AdminSession::open(app, &operator, "admin:clients").await;
    let (status, _, _) = export(&bank, &narrow, "").await;
    assert_eq!(status, 403);
    let refused = narrow
        .call(app, Method::GET, "/admin/v1/events?type=token.issued", None)
        .await;
    refused.assert_error(403, "insufficient_scope");

    // By time: the server's clock moves two hours on; only what happens then is since an hour
    // on. (The sessions' tokens expire meanwhile: a fresh one.)
    let now = server_now(app).await;
    app.advance_clock(7_200).await;
    let fresh = AdminSession::open(app, &operator, ADMIN_SCOPE).await;
    let later_user = fresh
        .create(
            app,
            "/admin/v1/users",
            &json!({"username": "later", "password": PASSWORD}),
        )
        .await;
    let since = rfc3339(now + 3_600);
    let later = events(&bank, &fresh, &format!("since={since}")).await;
    let actions: Vec<&str> = later
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    // The fresh session's token, then the user.
    assert_eq!(actions, ["token.issued", "user.create"], "{later:?}");
    assert_eq!(later[1]["subject"], later_user["id"]);
    let before = events(&bank, &fresh, &format!("until={since}")).await;
    assert!(!before.is_empty());
    assert!(
        before
            .iter()
            .all(|e| e["occurred_at"].as_i64().unwrap() < now + 3_600)
    );
}

#[tokio::test]
async fn the_export_pages_through_more_events_than_one_page_without_loss_or_repeat() {
    use futures_util::StreamExt as _;
    let bank = Bank::start_with(Backend::Sqlite, "[rate_limits]\nenabled = false\n").await;
    let app = bank.app();
    // 1,234 refused client authentications: two and a half export pages (500 each).
    let http = app.client(None);
    let url = app.url("/token");
    let statuses: Vec<u16> = futures_util::stream::iter(0..1_234)
        .map(|i| {
            let (http, url) = (&http, &url);
            async move {
                let form = [
                    ("grant_type", "client_credentials".to_owned()),
                    ("client_id", format!("nobody-{i}")),
                    ("client_secret", "wrong".to_owned()),
                ];
                http.post(url.as_str())
                    .form(&form)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");

    let (status, _, text) = export(&bank, &bank.session, "type=client_auth.failure").await;
    assert_eq!(status, 200, "{text}");
    let seqs: Vec<i64> = text
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["seq"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs.len(), 1_234);
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "oldest first, none twice"
    );
    let named: std::collections::HashSet<String> = text
        .lines()
        .map(|line| {
            let event: Value = serde_json::from_str(line).unwrap();
            event["details"]["named_client_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(named.len(), 1_234, "every refusal exactly once");
    // From a cursor in the middle of the second page: exactly what follows it.
    let (status, _, rest) = export(
        &bank,
        &bank.session,
        &format!("type=client_auth.failure&after={}", seqs[733]),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(rest.lines().count(), 500);
    assert_eq!(
        serde_json::from_str::<Value>(rest.lines().next().unwrap()).unwrap()["seq"],
        seqs[734]
    );
}

/// `GET /admin/v1/events/export?query` as text: status, content type, body.
async fn export(bank: &Bank, session: &AdminSession, query: &str) -> (u16, String, String) {
    let app = bank.app();
    let url = app.url(&format!("/admin/v1/events/export?{query}"));
    let now = server_now(app).await;
    let proof = dpop_proof(&session.dpop, "GET", &url, Some(&session.token), now);
    let response = app
        .client(None)
        .get(&url)
        .header("Authorization", format!("DPoP {}", session.token))
        .header("DPoP", proof)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, response.text().await.unwrap())
}

/// An event's hash as a SIEM would recompute it from an exported line, following the encoding
/// documented in `portcullis_core::audit::chain` (written here without the server's code).
fn siem_hash(line: &Value) -> String {
    fn field(out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        out.extend_from_slice(bytes);
    }
    fn optional(out: &mut Vec<u8>, value: &Value) {
        match value.as_str() {
            None => out.push(0),
            Some(text) => {
                out.push(1);
                field(out, text.as_bytes());
            }
        }
    }
    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }
    let mut out = b"portcullis/audit-event/v1".to_vec();
    field(
        &mut out,
        &unhex(&line["chain_id"].as_str().unwrap().replace('-', "")),
    );
    field(&mut out, &line["chain_seq"].as_i64().unwrap().to_be_bytes());
    field(&mut out, &unhex(line["prev_hash"].as_str().unwrap()));
    field(
        &mut out,
        &line["occurred_at_us"].as_i64().unwrap().to_be_bytes(),
    );
    field(&mut out, line["actor"].as_str().unwrap().as_bytes());
    field(&mut out, line["action"].as_str().unwrap().as_bytes());
    optional(&mut out, &line["subject"]);
    optional(&mut out, &line["client_id"]);
    optional(&mut out, &line["request_id"]);
    field(&mut out, canonical(&line["details"]).as_bytes());
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &out);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// JSON with object members sorted by key, no whitespace (the details of these events hold no
/// floats, whose spelling the documented encoding also fixes).
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(members) => {
            let mut keys: Vec<&String> = members.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::from(k.as_str()), canonical(&members[k])))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", inner.join(","))
        }
        scalar => scalar.to_string(),
    }
}

/// Unix seconds as an RFC 3339 UTC date-time (days to civil date after H. Hinnant).
fn rfc3339(unix: i64) -> String {
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3_600,
        secs % 3_600 / 60,
        secs % 60
    )
}
