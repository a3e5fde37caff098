//! The customer's account page, in process: the consents listed in plain words with the accounts
//! chosen and the dates, the login (password, and the TOTP step for a customer with a factor)
//! when there is no session, withdrawal with the session's CSRF token (the grant and its refresh
//! and access tokens die at once), and what is refused: a missing or wrong token, a cross-site
//! POST, another customer's grant. Headers and escaping as on the other customer's pages.

use portcullis_core::totp::{self, TotpSecret};

use super::flow::{
    Browser, Page, VERIFIER, approve, customer, first_account, log_in, pushed, userinfo,
    userinfo_proof,
};
use super::par::{REDIRECT, code_client_with};
use super::*;

const DETAILS: &str = r#"[{"type":"account_information","actions":["read_balances"]}]"#;
const PASSWORD: &str = "correct horse battery";

/// What a customer's consent gave: the grant, the tokens and the key they are bound to.
struct Consented {
    user: uuid::Uuid,
    account: String,
    grant_id: String,
    access_token: String,
    refresh_token: String,
    key: SigningKey,
}

/// A TPP with a logo, as a client of the authorization code flow.
async fn tpp_named(h: &Harness, name: &str) -> Tpp {
    code_client_with(
        h,
        ClientProfile::Fapi2,
        json!({"client_name": name, "logo_uri": "https://tpp.example/logo.png"}),
    )
    .await
}

/// Redeems a code with a proof by `key`.
async fn redeem(h: &Harness, tpp: &Tpp, code: &str, key: &SigningKey) -> Answer {
    let assertion = tpp.assertion(h);
    let pairs = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion.as_str()),
    ];
    send(h, token_request(&pairs, &[("dpop", &dpop_proof(h, key))])).await
}

/// The customer `username` (created here, with a TOTP secret if asked) consents to `tpp`'s
/// request for their balances in browser `b`, choosing their first account, and the client
/// redeems the code.
async fn consent(
    h: &Harness,
    b: &mut Browser,
    tpp: &Tpp,
    username: &str,
    with_totp: bool,
) -> (Consented, Option<TotpSecret>) {
    let (user, secret) = customer(h, username, with_totp).await;
    let login = b
        .get(
            h,
            &pushed(h, tpp, &[("authorization_details", DETAILS)]).await,
        )
        .await;
    let mut consent_page = log_in(b, h, &login, username, PASSWORD).await;
    if let Some(secret) = &secret {
        let code = secret.code_at_step(totp::step_of(h.clock.now()));
        let interaction = consent_page.interaction();
        consent_page = b
            .post(
                h,
                "/authorize/totp",
                &[("interaction", &interaction), ("code", &code)],
            )
            .await;
    }
    let account = first_account(h, user).await;
    let redirect = approve(b, h, &consent_page, &[&account]).await.redirect();
    let key = dpop_key();
    let answer = redeem(h, tpp, &redirect["code"], &key).await;
    let access_token = answer.issued("DPoP", "openid accounts");
    (
        Consented {
            user,
            account,
            grant_id: answer.body["grant_id"].as_str().unwrap().to_owned(),
            access_token,
            refresh_token: answer.body["refresh_token"].as_str().unwrap().to_owned(),
            key,
        },
        secret,
    )
}

/// The value of the hidden `csrf` field of the page's (first) form.
fn csrf(page: &Page) -> String {
    let marker = r#"name="csrf" value=""#;
    let start = page.body.find(marker).expect("a form with a csrf field") + marker.len();
    let end = page.body[start..].find('"').unwrap() + start;
    page.body[start..end].to_owned()
}

fn withdraw_path(grant_id: &str) -> String {
    format!("/account/grants/{grant_id}/withdraw")
}

/// Asserts the customer's pages' headers, with this page's policy.
#[track_caller]
fn assert_page_headers(page: &Page) {
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    for directive in [
        "default-src 'none'",
        "frame-ancestors 'none'",
        // Our own images and, on the list, the listed clients' logo origins only.
        "img-src 'self'",
        "form-action 'self';",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(directive), "{csp} lacks {directive}");
    }
    assert_eq!(page.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(page.headers[header::REFERRER_POLICY], "no-referrer");
    assert_eq!(page.headers[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(page.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
}

/// Waits until the grant's use has been recorded (it is recorded off the token response's path).
async fn last_used(h: &Harness, grant_id: &str) -> time::OffsetDateTime {
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let grant = h.state.store.grants().find(grant_id).await.unwrap();
            if let Some(at) = grant.last_used_at {
                return at;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the use of the grant is recorded")
}

/// A withdrawal request with these form fields and extra headers.
async fn post_withdraw(
    b: &mut Browser,
    h: &Harness,
    grant_id: &str,
    pairs: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Page {
    let mut request = Request::post(withdraw_path(grant_id))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, b.cookie_header());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    b.send(h, request.body(Body::from(form(pairs))).unwrap())
        .await
}

async fn grant_stands(h: &Harness, grant_id: &str) -> bool {
    let grant = h.state.store.grants().find(grant_id).await.unwrap();
    grant.stands(h.clock.now())
}

#[tokio::test]
async fn account_lists_a_consent_in_plain_words_with_its_accounts_and_dates() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = tpp_named(&h, "Example TPP").await;
    let mut b = Browser::default();
    let (c, _) = consent(&h, &mut b, &tpp, "alice", false).await;
    let used = last_used(&h, &c.grant_id).await;
    let grant = h.state.store.grants().find(&c.grant_id).await.unwrap();
    // Stored to the microsecond.
    assert!((h.clock.now() - used).abs() < time::Duration::milliseconds(1));

    let page = b.get(&h, "/account").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_page_headers(&page);
    // The logo shown loads from its origin, and from nowhere else.
    assert!(
        page.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("img-src 'self' https://tpp.example;")
    );
    let label = h.state.accounts.accounts_of(c.user).await.unwrap()[0].label();
    assert_eq!(
        h.state.accounts.accounts_of(c.user).await.unwrap()[0].id,
        c.account
    );
    for shown in [
        "Example TPP",
        r#"<img class="logo" src="https://tpp.example/logo.png""#,
        "Confirm who you are",
        "See information about your accounts",
        "Account information",
        "See your balances",
        &format!("Accounts: {label}"),
        &portcullis_consent::pages::describe_instant(grant.created_at),
        "Until you withdraw it",
        &portcullis_consent::pages::describe_instant(used),
        &format!(r#"action="/account/grants/{}/withdraw""#, c.grant_id),
        "Withdraw",
    ] {
        assert!(page.body.contains(shown), "{shown} not in {}", page.body);
    }
    assert!(!page.body.contains("Not used yet"));
    // The CSRF token is the session's: the same on every view of the page.
    let again = b.get(&h, "/account").await;
    assert_eq!(csrf(&page), csrf(&again));
}

#[tokio::test]
async fn account_without_a_session_asks_for_a_login_that_leads_to_the_list() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = tpp_named(&h, "Example TPP").await;
    let (c, _) = consent(&h, &mut Browser::default(), &tpp, "bob", false).await;

    let mut b = Browser::default();
    let login = b.get(&h, "/account").await;
    assert_eq!(login.status, StatusCode::OK);
    assert_page_headers(&login);
    assert!(login.body.contains(r#"action="/account/login""#));
    assert!(!login.body.contains("Example TPP"));
    let token = csrf(&login);
    assert!(
        b.cookies
            .iter()
            .any(|(k, v)| k == "__Host-portcullis-account-login" && *v == token)
    );

    // A wrong password, and an unknown customer: the same answer, still the form.
    for (username, password) in [("bob", "wrong password"), ("mallory", PASSWORD)] {
        let wrong = b
            .post(
                &h,
                "/account/login",
                &[
                    ("csrf", &token),
                    ("username", username),
                    ("password", password),
                ],
            )
            .await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        assert!(
            wrong
                .body
                .contains("The username or password is not right.")
        );
        assert!(
            !b.cookies
                .iter()
                .any(|(k, _)| k == "__Host-portcullis-session")
        );
    }

    // A login form posted from another browser (login CSRF) logs nobody in.
    let mut other = Browser::default();
    let forged = other
        .post(
            &h,
            "/account/login",
            &[
                ("csrf", &token),
                ("username", "bob"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(
        !other
            .cookies
            .iter()
            .any(|(k, _)| k == "__Host-portcullis-session")
    );

    let done = b
        .post(
            &h,
            "/account/login",
            &[
                ("csrf", &token),
                ("username", "bob"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.headers[header::LOCATION], "/account");
    assert_page_headers(&done);
    let session = b
        .cookies
        .iter()
        .find(|(k, _)| k == "__Host-portcullis-session")
        .map(|(_, v)| v.clone())
        .unwrap();
    let stored = h
        .state
        .store
        .sessions()
        .find(
            &portcullis_core::client::secret::SecretHash::of(&session),
            h.clock.now(),
        )
        .await
        .unwrap();
    assert_eq!(stored.user_id, c.user);
    assert_eq!(stored.amr, vec!["pwd".to_owned()]);
    let list = b.get(&h, "/account").await;
    assert!(list.body.contains("Example TPP"), "{}", list.body);
    assert!(list.body.contains(&withdraw_path(&c.grant_id)));
}

#[tokio::test]
async fn account_login_of_a_customer_with_totp_takes_the_code_once() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = tpp_named(&h, "Example TPP").await;
    let (c, secret) = consent(&h, &mut Browser::default(), &tpp, "carol", true).await;
    let secret = secret.unwrap();
    // The next code: the one used at consent is spent.
    h.clock.advance(time::Duration::seconds(30));

    let mut b = Browser::default();
    let login = b.get(&h, "/account").await;
    let token = csrf(&login);
    let totp_page = b
        .post(
            &h,
            "/account/login",
            &[
                ("csrf", &token),
                ("username", "carol"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(totp_page.status, StatusCode::OK, "{}", totp_page.body);
    assert_page_headers(&totp_page);
    assert!(totp_page.body.contains(r#"action="/account/totp""#));
    assert!(
        !b.cookies
            .iter()
            .any(|(k, _)| k == "__Host-portcullis-session")
    );
    let pending = b
        .cookies
        .iter()
        .find(|(k, _)| k == "__Host-portcullis-account-login")
        .cloned()
        .unwrap();

    let wrong = b
        .post(&h, "/account/totp", &[("csrf", &token), ("code", "000000")])
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("That code is not right"));
    // The form's token must match the cookie's.
    let code = secret.code_at_step(totp::step_of(h.clock.now()));
    let mismatched = b
        .post(&h, "/account/totp", &[("csrf", "x"), ("code", &code)])
        .await;
    assert_eq!(mismatched.status, StatusCode::FORBIDDEN);
    b.cookies.retain(|(k, _)| k != &pending.0);
    b.cookies.push(pending.clone());

    let done = b
        .post(&h, "/account/totp", &[("csrf", &token), ("code", &code)])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.headers[header::LOCATION], "/account");
    let list = b.get(&h, "/account").await;
    assert!(
        list.body.contains(&withdraw_path(&c.grant_id)),
        "{}",
        list.body
    );

    // The pending login completes once, even with a fresh code.
    h.clock.advance(time::Duration::seconds(30));
    let mut replay = Browser::default();
    replay.cookies.push(pending);
    let next = secret.code_at_step(totp::step_of(h.clock.now()));
    let again = replay
        .post(&h, "/account/totp", &[("csrf", &token), ("code", &next)])
        .await;
    assert_eq!(again.status, StatusCode::FORBIDDEN, "{}", again.body);
    assert!(
        !replay
            .cookies
            .iter()
            .any(|(k, _)| k == "__Host-portcullis-session")
    );

    // Five wrong codes end a pending login.
    let mut b = Browser::default();
    let login = b.get(&h, "/account").await;
    let token = csrf(&login);
    b.post(
        &h,
        "/account/login",
        &[
            ("csrf", &token),
            ("username", "carol"),
            ("password", PASSWORD),
        ],
    )
    .await;
    for attempt in 1..=5 {
        let wrong = b
            .post(&h, "/account/totp", &[("csrf", &token), ("code", "000000")])
            .await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            wrong.body.contains(r#"action="/account/login""#),
            attempt == 5,
            "attempt {attempt}"
        );
    }
    assert!(
        b.cookies
            .iter()
            .all(|(k, v)| k != "__Host-portcullis-account-login" || !v.contains('.')),
        "the pending login is gone"
    );
}

#[tokio::test]
async fn withdrawing_with_the_session_csrf_token_revokes_the_grant_and_its_tokens_at_once() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = tpp_named(&h, "Example TPP").await;
    let mut b = Browser::default();
    let (c, _) = consent(&h, &mut b, &tpp, "dave", false).await;
    // Before: the refresh token works.
    let refreshed = super::code::refresh(&h, &tpp, &c.refresh_token, Some(&dpop_key()), &[]).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);

    let page = b.get(&h, "/account").await;
    let token = csrf(&page);
    let done = post_withdraw(&mut b, &h, &c.grant_id, &[("csrf", &token)], &[]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_page_headers(&done);
    let location = done.headers[header::LOCATION].to_str().unwrap().to_owned();
    assert_eq!(location, format!("/account?withdrawn={}", c.grant_id));
    assert!(!grant_stands(&h, &c.grant_id).await);

    let after = b.get(&h, &location).await;
    assert!(
        after
            .body
            .contains("You withdrew the access of Example TPP."),
        "{}",
        after.body
    );
    assert!(!after.body.contains(&withdraw_path(&c.grant_id)));
    assert!(after.body.contains("Ended recently"));
    assert!(after.body.contains("withdrawn on"));

    // The refresh token is dead, and so is the access token at userinfo.
    let dead = super::code::refresh(&h, &tpp, &c.refresh_token, Some(&dpop_key()), &[]).await;
    assert_eq!(dead.status, StatusCode::BAD_REQUEST, "{}", dead.body);
    assert_eq!(dead.body["error"], "invalid_grant");
    let auth = format!("DPoP {}", c.access_token);
    let refused = userinfo(
        &h,
        "/userinfo",
        &[
            ("authorization", &auth),
            ("dpop", &userinfo_proof(&h, &c.key, &c.access_token)),
        ],
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.body["error"], "invalid_token");

    // Withdrawing it again changes nothing and still lands on the page.
    let again = post_withdraw(&mut b, &h, &c.grant_id, &[("csrf", &token)], &[]).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_withdrawal_without_the_sessions_csrf_token_or_from_another_site_revokes_nothing() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = tpp_named(&h, "Example TPP").await;
    let mut b = Browser::default();
    let (c, _) = consent(&h, &mut b, &tpp, "erin", false).await;
    let token = csrf(&b.get(&h, "/account").await);
    // Another customer's session has another token.
    let mut other = Browser::default();
    let (_, _) = consent(&h, &mut other, &tpp, "frank", false).await;
    let others_token = csrf(&other.get(&h, "/account").await);
    assert_ne!(token, others_token);

    for pairs in [
        vec![],
        vec![("csrf", "")],
        vec![("csrf", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")],
        vec![("csrf", others_token.as_str())],
    ] {
        let refused = post_withdraw(&mut b, &h, &c.grant_id, &pairs, &[]).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{pairs:?}");
        assert_page_headers(&refused);
        assert!(refused.body.contains("Nothing was withdrawn"));
    }
    // Fetch Metadata: a cross-site POST is refused even with the right token.
    let cross = post_withdraw(
        &mut b,
        &h,
        &c.grant_id,
        &[("csrf", &token)],
        &[("sec-fetch-site", "cross-site")],
    )
    .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    // Without a session: back to the page (and its login), nothing withdrawn.
    let mut stranger = Browser::default();
    let anonymous = post_withdraw(&mut stranger, &h, &c.grant_id, &[("csrf", &token)], &[]).await;
    assert_eq!(anonymous.status, StatusCode::SEE_OTHER);
    assert_eq!(anonymous.headers[header::LOCATION], "/account");

    assert!(grant_stands(&h, &c.grant_id).await);
    let refreshed = super::code::refresh(&h, &tpp, &c.refresh_token, Some(&dpop_key()), &[]).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
}

#[tokio::test]
async fn another_customers_grant_is_not_found_as_an_unknown_one_and_stays() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = tpp_named(&h, "Example TPP").await;
    let (victim, _) = consent(&h, &mut Browser::default(), &tpp, "gina", false).await;
    let mut b = Browser::default();
    let (_, _) = consent(&h, &mut b, &tpp, "hank", false).await;
    let token = csrf(&b.get(&h, "/account").await);

    let theirs = post_withdraw(&mut b, &h, &victim.grant_id, &[("csrf", &token)], &[]).await;
    let unknown = post_withdraw(&mut b, &h, "no-such-grant", &[("csrf", &token)], &[]).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(theirs.body, unknown.body);
    assert_page_headers(&theirs);
    assert!(grant_stands(&h, &victim.grant_id).await);
    // Nor does the page show it.
    let page = b.get(&h, "/account").await;
    assert!(!page.body.contains(&victim.grant_id));
}

#[tokio::test]
async fn a_hostile_client_name_is_escaped_on_the_account_page() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = tpp_named(
        &h,
        r#"<script>alert(1)</script>"><img src=x onerror=alert(2)>"#,
    )
    .await;
    let mut b = Browser::default();
    consent(&h, &mut b, &tpp, "iris", false).await;
    let page = b.get(&h, "/account").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("<script>"), "{}", page.body);
    assert!(!page.body.contains("<img src=x"));
    assert!(
        page.body.contains("&#60;script&#62;") || page.body.contains("&lt;script&gt;"),
        "{}",
        page.body
    );
}
