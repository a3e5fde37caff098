//! The customer's pages in a real browser: headless Chromium driven over WebDriver (chromedriver,
//! through `fantoccini`) logs in, enters a TOTP code, ticks accounts on the consent page and
//! allows, and in a second run denies; another customer, after consenting, logs in at the account
//! page and withdraws the consent. The client's side (PAR with a client assertion, the code at
//! `/token`, the refresh that fails once the consent is withdrawn) is done here over reqwest, as
//! in [`crate::flow`].
//!
//! Screenshots of the login, TOTP, consent and account pages go to `target/screenshots/`, or to the
//! directory named by `PORTCULLIS_SCREENSHOTS` (relative to the workspace root), which is how
//! `scripts/screenshots` refreshes the ones in `docs/screenshots/` that the README shows.
//!
//! Needs `chromium` and `chromedriver` on the PATH (`scripts/test` installs Debian's `chromium`
//! and `chromium-driver` when they are missing).

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::Url;
use serde_json::{Value, json};

use crate::flow::{ACR_SCA, Auth, Bank, Binding, PASSWORD, REDIRECT, check_code_tokens, totp};
use crate::oauth::server_now;

/// How long any one page may take to appear.
const PAGE_TIMEOUT: Duration = Duration::from_secs(20);

/// A `chromedriver` child process on a free loopback port, killed when dropped (also when the
/// test panics).
struct Chromedriver {
    child: Child,
    port: u16,
}

impl Chromedriver {
    fn start() -> Chromedriver {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start chromedriver ({e}): install Debian's chromium and \
                     chromium-driver (scripts/test does)"
                )
            });
        let driver = Chromedriver { child, port };
        let deadline = Instant::now() + PAGE_TIMEOUT;
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver does not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }

    /// A headless Chromium session.
    async fn session(&self) -> Client {
        // The server's certificate is issued by a CA generated for the test run, which Chromium
        // does not know: ignoring certificate errors is acceptable here, in this test only (the
        // reqwest clients of the other tests trust that CA explicitly).
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "args": [
                    "--headless=new",
                    // Chromium's sandbox refuses to run as root (containers, CI).
                    "--no-sandbox",
                    "--disable-dev-shm-usage",
                    "--ignore-certificate-errors",
                    "--window-size=1024,900",
                    // The client's redirect URI fails at once instead of after a DNS lookup
                    // (which took seconds here, now and then).
                    "--host-resolver-rules=MAP tpp.example ~NOTFOUND",
                ],
            }),
        );
        capabilities.insert("acceptInsecureCerts".into(), true.into());
        ClientBuilder::rustls()
            .unwrap()
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .unwrap_or_else(|e| panic!("no WebDriver session from chromedriver: {e}"))
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the screenshots go: `PORTCULLIS_SCREENSHOTS` (relative to the workspace root), else
/// `target/screenshots`.
fn screenshot_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = match std::env::var_os("PORTCULLIS_SCREENSHOTS") {
        Some(dir) => root.join(dir),
        None => root.join("target").join("screenshots"),
    };
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{name} is not a PNG");
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).unwrap();
}

/// Waits for the page holding `selector`, and checks that each of its visible inputs has a label
/// (`<label for>` or an enclosing `<label>`), which is what keyboard and screen-reader users
/// rely on.
async fn page(browser: &Client, selector: &str) {
    let found = browser
        .wait()
        .at_most(PAGE_TIMEOUT)
        .for_element(Locator::Css(selector))
        .await;
    if let Err(e) = found {
        let url = browser.current_url().await;
        panic!("no {selector} on {url:?}: {e}");
    }
    let unlabelled = browser
        .execute(
            "return [...document.querySelectorAll('input:not([type=hidden])')]\
               .filter(i => !i.labels || i.labels.length === 0 \
                 || ![...i.labels].some(l => l.textContent.trim() !== ''))\
               .map(i => i.outerHTML);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        unlabelled,
        json!([]),
        "inputs without a label on {selector}"
    );
}

/// The id of the focused element.
async fn focused(browser: &Client) -> Option<String> {
    browser
        .active_element()
        .await
        .unwrap()
        .attr("id")
        .await
        .unwrap()
}

/// Waits until the browser has been sent to [`REDIRECT`] (whose host Chromium is told not to
/// resolve: it shows its error page, but keeps the URL, which is all the client gets); the query
/// parameters.
async fn redirected(browser: &Client) -> Value {
    let deadline = Instant::now() + PAGE_TIMEOUT;
    loop {
        let url = browser.current_url().await.unwrap();
        if url.as_str().starts_with(REDIRECT) {
            assert_eq!(url.as_str().split('?').next(), Some(REDIRECT), "{url}");
            let mut params = serde_json::Map::new();
            for (k, v) in url.query_pairs() {
                let repeated = params.insert(k.into_owned(), v.into_owned().into());
                assert!(repeated.is_none(), "a repeated parameter in {url}");
            }
            return Value::Object(params);
        }
        assert!(
            Instant::now() < deadline,
            "not redirected to the client: {url}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Fills the login form, submitting it with the Enter key.
async fn log_in(browser: &Client, username: &str, screenshot_as: Option<&str>) {
    page(browser, "form[action='/authorize/login'] #username").await;
    assert_eq!(
        focused(browser).await.as_deref(),
        Some("username"),
        "the login page focuses the username"
    );
    let field = browser.find(Locator::Css("#username")).await.unwrap();
    field.send_keys(username).await.unwrap();
    let password = browser.find(Locator::Css("#password")).await.unwrap();
    password.send_keys(PASSWORD).await.unwrap();
    if let Some(name) = screenshot_as {
        screenshot(browser, name).await;
    }
    // U+E007 is WebDriver's Enter key.
    password.send_keys("\u{E007}").await.unwrap();
}

#[tokio::test]
async fn a_customer_logs_in_with_totp_and_allows_then_another_denies_in_headless_chromium() {
    let started = Instant::now();
    let bank = Bank::start().await;
    let app = bank.app();
    let tpp = bank
        .tpp_named(
            "Example Budgeting App",
            Auth::PrivateKeyJwt,
            Binding::Dpop,
            "ES256",
        )
        .await;
    let holder = bank.holder(&tpp);
    let user = bank.customer("erin").await;
    let secret = bank.enrol_totp(&user).await;
    bank.customer("frank").await;

    let driver = Chromedriver::start();
    let browser = driver.session().await;

    // Erin: password, TOTP, consent with one of her two accounts, allow.
    let pushed = tpp.push(app, &holder, &[], None).await;
    let authorize = Url::parse(&pushed.url).unwrap();
    assert_eq!(
        authorize.query_pairs().map(|(k, _)| k).collect::<Vec<_>>(),
        ["client_id", "request_uri"]
    );
    browser.goto(&pushed.url).await.unwrap();
    assert!(
        browser
            .source()
            .await
            .unwrap()
            .contains("Example Budgeting App"),
        "the login page names the client"
    );
    log_in(&browser, "erin", Some("login")).await;

    page(&browser, "form[action='/authorize/totp'] #code").await;
    assert_eq!(focused(&browser).await.as_deref(), Some("code"));
    let code = totp(&secret, server_now(app).await);
    let field = browser.find(Locator::Css("#code")).await.unwrap();
    field.send_keys(&code).await.unwrap();
    screenshot(&browser, "totp").await;
    field.send_keys("\u{E007}").await.unwrap();

    page(
        &browser,
        "form[action='/authorize/consent'] button[value=approve]",
    )
    .await;
    let boxes = browser
        .find_all(Locator::Css("input[type=checkbox][name=account]"))
        .await
        .unwrap();
    assert_eq!(boxes.len(), 2, "two accounts to choose from");
    for checkbox in &boxes {
        assert!(checkbox.is_selected().await.unwrap(), "ticked by default");
    }
    // Untick the first account: only the second is shared.
    boxes[0].click().await.unwrap();
    assert!(!boxes[0].is_selected().await.unwrap());
    let shared = boxes[1].attr("value").await.unwrap().unwrap();
    screenshot(&browser, "consent").await;
    browser
        .find(Locator::Css("button[value=approve]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    let redirect = redirected(&browser).await;
    assert_eq!(redirect["state"], pushed.state.as_str(), "{redirect}");
    assert_eq!(redirect["iss"], app.issuer.as_str(), "{redirect}");
    assert!(redirect.get("error").is_none(), "{redirect}");
    let code = redirect["code"].as_str().unwrap();
    let reply = tpp.redeem(app, &holder, &pushed, code).await;
    let (_, id) = check_code_tokens(app, &tpp, &holder, &reply, &pushed, &user, &shared).await;
    assert_eq!(id["acr"], ACR_SCA);
    assert_eq!(id["amr"], json!(["pwd", "otp"]));

    // Frank, in the same browser with Erin's session cookie gone: password only, then deny.
    browser.goto(&app.url("/jwks")).await.unwrap();
    browser.delete_all_cookies().await.unwrap();
    let pushed = tpp.push(app, &holder, &[], None).await;
    browser.goto(&pushed.url).await.unwrap();
    log_in(&browser, "frank", None).await;
    page(
        &browser,
        "form[action='/authorize/consent'] button[value=deny]",
    )
    .await;
    browser
        .find(Locator::Css("button[value=deny]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let refused = redirected(&browser).await;
    assert_eq!(refused["error"], "access_denied", "{refused}");
    assert_eq!(refused["state"], pushed.state.as_str(), "{refused}");
    assert_eq!(refused["iss"], app.issuer.as_str(), "{refused}");
    assert!(refused.get("code").is_none(), "{refused}");

    browser.close().await.unwrap();
    drop(driver);
    eprintln!("browser flow took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_customer_logs_in_at_the_account_page_and_withdraws_a_consent_in_headless_chromium() {
    let bank = Bank::start().await;
    let app = bank.app();
    let tpp = bank
        .tpp_named(
            "Example Savings App",
            Auth::PrivateKeyJwt,
            Binding::Dpop,
            "ES256",
        )
        .await;
    let holder = bank.holder(&tpp);
    bank.customer("gail").await;
    // The accounts API's client, which polls the revocation event feed.
    let api = bank
        .tpp_with(
            "Accounts API",
            Auth::PrivateKeyJwt,
            Binding::Dpop,
            "ES256",
            &json!({
                "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
                "scope": "openid accounts revocation_events",
            }),
        )
        .await;
    bank.act_for_accounts_api(&api).await;
    let api_holder = bank.holder(&api);
    let events_token = api.events_token(app, &api_holder).await;

    let driver = Chromedriver::start();
    let browser = driver.session().await;

    // Gail consents in the browser; the client gets its tokens.
    let pushed = tpp.push(app, &holder, &[], None).await;
    browser.goto(&pushed.url).await.unwrap();
    log_in(&browser, "gail", None).await;
    page(
        &browser,
        "form[action='/authorize/consent'] button[value=approve]",
    )
    .await;
    browser
        .find(Locator::Css("button[value=approve]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let redirect = redirected(&browser).await;
    let code = redirect["code"].as_str().unwrap();
    let reply = tpp.redeem(app, &holder, &pushed, code).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let refresh_token = reply.body["refresh_token"].as_str().unwrap().to_owned();
    let grant_id = reply.body["grant_id"].as_str().unwrap().to_owned();

    // Later, without a session: the account page asks for a login, then lists the consent.
    browser.goto(&app.url("/jwks")).await.unwrap();
    browser.delete_all_cookies().await.unwrap();
    browser.goto(&app.url("/account")).await.unwrap();
    page(&browser, "form[action='/account/login'] #username").await;
    assert_eq!(focused(&browser).await.as_deref(), Some("username"));
    let field = browser.find(Locator::Css("#username")).await.unwrap();
    field.send_keys("gail").await.unwrap();
    let password = browser.find(Locator::Css("#password")).await.unwrap();
    password.send_keys(PASSWORD).await.unwrap();
    password.send_keys("\u{E007}").await.unwrap();

    page(&browser, "form[action^='/account/grants/'] button").await;
    let source = browser.source().await.unwrap();
    for shown in [
        "Example Savings App",
        "See your balances",
        "Accounts: ",
        "Until you withdraw it",
    ] {
        assert!(source.contains(shown), "{shown} is not on the page");
    }
    screenshot(&browser, "account").await;
    // The accounts API long-polls the feed while Gail withdraws: the event reaches it within a
    // second of her click.
    let poll = async {
        let reply = api
            .poll_events(
                app,
                &api_holder,
                &events_token,
                &json!({"returnImmediately": false}),
            )
            .await;
        (reply, Instant::now())
    };
    let click = async {
        let clicked = Instant::now();
        browser
            .find(Locator::Css("form[action^='/account/grants/'] button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        clicked
    };
    let ((reply, answered), clicked) = tokio::join!(poll, click);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let sets = reply.body["sets"].as_object().unwrap();
    assert_eq!(sets.len(), 1, "{}", reply.body);
    let set = sets.values().next().unwrap().as_str().unwrap();
    let event = &crate::oauth::claims_of(set)["events"]["urn:portcullis:secevent:grant-revoked"];
    assert_eq!(event["grant_id"], grant_id.as_str());
    assert_eq!(event["reason"], "customer_withdrew");
    assert!(
        answered.saturating_duration_since(clicked) <= Duration::from_secs(1),
        "the event took {:?}",
        answered.saturating_duration_since(clicked)
    );

    page(&browser, ".notice").await;
    let source = browser.source().await.unwrap();
    assert!(
        source.contains("You withdrew the access of Example Savings App."),
        "no confirmation"
    );
    let left = browser
        .find_all(Locator::Css("form[action^='/account/grants/']"))
        .await
        .unwrap();
    assert!(left.is_empty(), "the consent is no longer listed");

    // The client's refresh token died with the consent.
    let refused = tpp
        .token(
            app,
            &holder,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh_token),
            ],
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.body["error"], "invalid_grant");

    browser.close().await.unwrap();
    drop(driver);
}
