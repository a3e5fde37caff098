//! `/admin/v1/users`: customers created, read, given a new password, enrolled in TOTP, disabled
//! and enabled again, with passwords never shown and the TOTP secret shown once.

use reqwest::Method;
use serde_json::json;

use super::Bank;

#[tokio::test]
async fn admin_users_are_created_without_echoing_the_password_enrolled_in_totp_and_disabled() {
    let bank = Bank::start().await;
    let app = bank.app();
    let password = "correct horse battery staple";
    let user = bank
        .session
        .create(
            app,
            "/admin/v1/users",
            &json!({"username": "alice", "password": password, "claims": {"email": "alice@bank.example", "email_verified": true}}),
        )
        .await;
    assert_eq!(user["username"], "alice");
    assert_eq!(user["claims"]["email"], "alice@bank.example");
    assert_eq!(user["totp_enrolled"], false);
    assert!(user["disabled_at"].is_null());
    let id = user["id"].as_str().unwrap().to_owned();
    let path = format!("/admin/v1/users/{id}");

    let read = bank.session.call(app, Method::GET, &path, None).await;
    let listed = bank
        .session
        .call(app, Method::GET, "/admin/v1/users", None)
        .await;
    for shown in [&user, &read.body, &listed.body] {
        let text = shown.to_string();
        assert!(
            !text.contains(password) && !text.contains("argon2") && !text.contains("password"),
            "{text}"
        );
    }
    assert_eq!(read.body, user);

    // TOTP: the otpauth URI (with its secret) is shown once; afterwards only the fact.
    let enrolled = bank
        .session
        .call(app, Method::POST, &format!("{path}/totp"), None)
        .await;
    assert_eq!(enrolled.status, 200, "{}", enrolled.body);
    let uri = enrolled.body["otpauth_uri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/") && uri.contains("secret="),
        "{uri}"
    );
    let read = bank.session.call(app, Method::GET, &path, None).await;
    assert_eq!(read.body["totp_enrolled"], true);
    assert!(read.body.get("otpauth_uri").is_none(), "{}", read.body);

    // A new password: 204, nothing echoed.
    let reply = bank
        .session
        .call(
            app,
            Method::PUT,
            &format!("{path}/password"),
            Some(&json!({"password": "another long passphrase"})),
        )
        .await;
    assert_eq!(reply.status, 204, "{}", reply.body);

    // Disable, then enable again.
    let disabled = bank
        .session
        .call(app, Method::POST, &format!("{path}/disable"), None)
        .await;
    assert_eq!(disabled.status, 200, "{}", disabled.body);
    assert!(
        disabled.body["disabled_at"].is_string(),
        "{}",
        disabled.body
    );
    let enabled = bank
        .session
        .call(app, Method::POST, &format!("{path}/enable"), None)
        .await;
    assert!(enabled.body["disabled_at"].is_null(), "{}", enabled.body);

    // A taken username is a conflict; an unknown user is 404.
    let reply = bank
        .session
        .call(
            app,
            Method::POST,
            "/admin/v1/users",
            Some(&json!({"username": "alice", "password": password})),
        )
        .await;
    assert_eq!(reply.status, 409, "{}", reply.body);
    let reply = bank
        .session
        .call(
            app,
            Method::GET,
            "/admin/v1/users/00000000-0000-4000-8000-000000000000",
            None,
        )
        .await;
    assert_eq!(reply.status, 404, "{}", reply.body);
}
