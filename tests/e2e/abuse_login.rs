//! Brute-force protection of the customer's login (issue 7) against the real binary, through the
//! account page's login form as a browser-less visitor would post it, each visitor bound to its
//! own source address in 127.0.0.0/8 (Linux routes all of it to the loopback interface):
//! a thousand wrong passwords from one address for one customer, then credential stuffing from
//! it; a hundred addresses against ten customers; a lock that ends by itself; a second factor
//! locked across logins. Time moves through the server's test clock, never by sleeping; the
//! per-address request limit of `[rate_limits]` is raised out of the way so that what answers is
//! the failure-based throttle under test. No answer may ever be a 5xx.

use std::collections::HashMap;
use std::net::IpAddr;

use futures_util::future::join_all;
use portcullis_testkit::app::App;
use portcullis_testkit::db::{Backend, TestDatabase};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::flow::{self, Auth, Binding, Browser, PASSWORD, totp};
use crate::oauth::{ADMIN_SCOPE, AdminClient, AdminSession, bootstrap, server_now};
use crate::support::{Fixture, options};

/// The configuration of these tests: the request-rate limit on the login forms (another
/// mechanism, tested elsewhere) out of the way.
const CONFIG: &str = "[rate_limits.ip.login]\nquota = 1000000\nwindow_secs = 60\n";
const LOGIN_COOKIE: &str = "__Host-portcullis-account-login";
const WRONG: &str = "not the password at all";
const TOO_MANY: &str = "Too many attempts. Try again in ";

/// A server with an admin client that can open sessions at any time (an admin token lives five
/// minutes, and these tests move the clock by hours).
struct Bank {
    f: Fixture,
    admin: AdminClient,
}

impl Bank {
    async fn start(backend: Backend) -> Bank {
        let dir = tempfile::tempdir().unwrap();
        let db = TestDatabase::new(backend).await;
        let config = dir.path().join("portcullis.toml");
        std::fs::write(&config, CONFIG).unwrap();
        let mut options = options(&dir, &db);
        options.args = vec!["--config".into(), config.to_str().unwrap().to_owned()];
        let app = App::spawn(options).await;
        let f = Fixture { app, dir, db };
        let admin = bootstrap(&f).await;
        Bank { f, admin }
    }

    fn app(&self) -> &App {
        &self.f.app
    }

    async fn session(&self) -> AdminSession {
        AdminSession::open(self.app(), &self.admin, ADMIN_SCOPE).await
    }

    /// Customers with [`PASSWORD`]; their ids.
    async fn customers(&self, usernames: &[&str]) -> Vec<String> {
        let session = self.session().await;
        let mut ids = Vec::new();
        for username in usernames {
            let user = session
                .create(
                    self.app(),
                    "/admin/v1/users",
                    &json!({"username": username, "password": PASSWORD}),
                )
                .await;
            ids.push(user["id"].as_str().unwrap().to_owned());
        }
        ids
    }

    /// Every security event of type `action`, oldest first.
    async fn events(&self, action: &str) -> Vec<Value> {
        let session = self.session().await;
        let mut events = Vec::new();
        let mut path = format!("/admin/v1/events?type={action}&limit=500");
        loop {
            let page = session.call(self.app(), Method::GET, &path, None).await;
            assert_eq!(page.status, 200, "{}", page.body);
            events.extend(page.body["items"].as_array().unwrap().iter().cloned());
            match page.body["next"].as_str() {
                Some(next) => {
                    path = format!("/admin/v1/events?type={action}&limit=500&after={next}")
                }
                None => return events,
            }
        }
    }

    /// The value of the `login_attempts` counter with `outcome`.
    async fn login_metric(&self, outcome: &str) -> u64 {
        let listen = self.app().metrics_listen.unwrap();
        let text = reqwest::get(format!("http://{listen}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let series = format!("portcullis_login_attempts_total{{outcome=\"{outcome}\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&series))
            .map_or(0, |value| value.trim().parse().unwrap())
    }
}

/// One answer of the server.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    retry_after: Option<u64>,
    location: Option<String>,
    body: String,
}

impl Answer {
    /// A refusal of the throttle: 429, `Retry-After`, and the generic message.
    fn refused(&self) -> Option<u64> {
        if self.status != StatusCode::TOO_MANY_REQUESTS {
            return None;
        }
        assert!(self.body.contains(TOO_MANY), "{}", self.body);
        Some(self.retry_after.expect("a 429 without Retry-After"))
    }

    fn assert_logged_in(&self) {
        assert_eq!(self.status, StatusCode::SEE_OTHER, "{}", self.body);
        assert_eq!(self.location.as_deref(), Some("/account"));
    }
}

/// A browser-less visitor of the account page from one source address: its own connection,
/// bound to `source`, and its own cookies.
struct Visitor {
    http: reqwest::Client,
    base: String,
    cookies: HashMap<String, String>,
}

impl Visitor {
    /// A visitor from `source` that has opened the login form.
    async fn new(app: &App, source: IpAddr) -> Visitor {
        let ca = reqwest::Certificate::from_pem(app.ca_pem.as_deref().unwrap()).unwrap();
        let http = reqwest::Client::builder()
            .tls_certs_only([ca])
            .https_only(true)
            .local_address(source)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .unwrap();
        // By address: `localhost` may resolve to ::1, which a 127/8 source cannot reach.
        let base = format!("https://127.0.0.1:{}", app.listen.port());
        let mut visitor = Visitor {
            http,
            base,
            cookies: HashMap::new(),
        };
        let form = visitor
            .send(visitor.http.get(format!("{}/account", visitor.base)))
            .await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.body);
        assert!(visitor.cookies.contains_key(LOGIN_COOKIE));
        visitor
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Answer {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let response = request.header("cookie", cookie).send().await.unwrap();
        let status = response.status();
        assert!(!status.is_server_error(), "the server answered {status}");
        let headers = response.headers().clone();
        for value in headers.get_all("set-cookie") {
            let (pair, _) = value.to_str().unwrap().split_once(';').unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
        Answer {
            status,
            retry_after: header("retry-after").map(|v| v.parse().unwrap()),
            location: header("location"),
            body: response.text().await.unwrap(),
        }
    }

    /// The form's double-submit token: the login cookie's nonce.
    fn csrf(&self) -> String {
        let cookie = &self.cookies[LOGIN_COOKIE];
        cookie.split('.').next().unwrap().to_owned()
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Answer {
        let csrf = self.csrf();
        let mut fields = vec![("csrf", csrf.as_str())];
        fields.extend_from_slice(form);
        let request = self.http.post(format!("{}{path}", self.base)).form(&fields);
        self.send(request).await
    }

    async fn log_in(&mut self, username: &str, password: &str) -> Answer {
        self.post(
            "/account/login",
            &[("username", username), ("password", password)],
        )
        .await
    }

    async fn code(&mut self, code: &str) -> Answer {
        self.post("/account/totp", &[("code", code)]).await
    }
}

fn address(a: u8, b: u8, c: u8) -> IpAddr {
    IpAddr::from([127, a, b, c])
}

/// Wrong passwords for `username` from `visitor`, waiting out each delay on the server's clock,
/// until a lock answers; how many were checked (401) before it, and the lock's `Retry-After`.
async fn until_locked(app: &App, visitor: &mut Visitor, username: &str) -> (usize, u64) {
    let mut checked = 0;
    loop {
        let answer = visitor.log_in(username, WRONG).await;
        match answer.refused() {
            Some(wait) if wait <= 60 => app.advance_clock(i64::try_from(wait).unwrap()).await,
            Some(lock) => return (checked, lock),
            None => {
                assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
                checked += 1;
            }
        }
    }
}

/// Issue 7, Tests: 1,000 wrong passwords from one address for one customer. The pair's delays
/// and then its lock trip after ten checked passwords; everything after is refused unchecked
/// with the same 429 page. The same address then stuffing other usernames (existing or not,
/// alike) trips the address's lock at forty failures. The customer, from another address, logs in
/// throughout, and so does a bystander; nothing answers 5xx.
#[tokio::test]
async fn a_thousand_wrong_passwords_from_one_address_lock_the_pair_then_the_address_not_the_customer()
 {
    let bank = Bank::start(Backend::Sqlite).await;
    let app = bank.app();
    let ids = bank.customers(&["alice", "carol"]).await;
    let mut attacker = Visitor::new(app, address(0, 10, 1)).await;

    let (mut checked, mut delayed, mut locked) = (0, 0, 0);
    for _ in 0..1000 {
        let answer = attacker.log_in("alice", WRONG).await;
        match answer.refused() {
            Some(wait) if wait <= 60 => {
                delayed += 1;
                app.advance_clock(i64::try_from(wait).unwrap()).await;
            }
            Some(lock) => {
                assert!((600..=900).contains(&lock), "{lock}");
                locked += 1;
            }
            None => {
                assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
                assert!(
                    answer
                        .body
                        .contains("The username or password is not right.")
                );
                checked += 1;
            }
        }
    }
    // Three free failures, six delayed ones (1, 2, 4, 8, 16 and 32 s), the tenth locks.
    assert_eq!(checked, 10);
    assert!(delayed <= 6, "{delayed}");
    assert_eq!(checked + delayed + locked, 1000);
    // The right password from the attacked address is refused unchecked too.
    let refused = attacker.log_in("alice", PASSWORD).await;
    assert!(refused.refused().unwrap() > 60, "{refused:?}");

    // The customer, from elsewhere, is neither slowed nor locked: one address cannot lock an
    // account.
    let mut home = Visitor::new(app, address(0, 10, 2)).await;
    home.log_in("alice", PASSWORD).await.assert_logged_in();

    // Credential stuffing from the same address: unknown usernames and another customer's, all
    // answered alike, until the address locks at its fortieth failure (ten were alice's).
    let mut stuffed = 0;
    let lock = loop {
        let username = if stuffed % 10 == 0 {
            "carol".to_owned()
        } else {
            format!("nobody-{stuffed}")
        };
        let answer = attacker.log_in(&username, WRONG).await;
        match answer.refused() {
            Some(wait) if wait <= 60 => app.advance_clock(i64::try_from(wait).unwrap()).await,
            Some(lock) => break lock,
            None => {
                assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
                stuffed += 1;
            }
        }
    };
    assert_eq!(stuffed, 30);
    assert!((1500..=1800).contains(&lock), "{lock}");
    let refused = attacker.log_in("carol", PASSWORD).await;
    assert!(
        refused.refused().unwrap() > 60,
        "the address is locked for every account"
    );
    let mut bystander = Visitor::new(app, address(0, 10, 3)).await;
    bystander.log_in("carol", PASSWORD).await.assert_logged_in();

    // The trail: one lock of the pair (alice's), one of the address (no subject), the failures
    // with their reasons; never a password.
    let locks = bank.events("login.locked").await;
    let kinds: Vec<(&str, &Value)> = locks
        .iter()
        .map(|e| (e["details"]["kind"].as_str().unwrap(), &e["subject"]))
        .collect();
    assert_eq!(
        kinds,
        [("pair", &json!(ids[0])), ("ip", &Value::Null)],
        "{locks:?}"
    );
    assert_eq!(locks[0]["details"]["source_ip"], "127.0.10.1");
    let failures = bank.events("login.failure").await;
    assert_eq!(failures.len(), 40);
    let unknown = failures
        .iter()
        .filter(|e| e["details"]["reason"] == "unknown_user")
        .count();
    assert_eq!(unknown, 27);
    assert!(failures.iter().all(|e| e["actor"] == "anonymous"));
    let trail = serde_json::to_string(&failures).unwrap();
    assert!(!trail.contains(WRONG) && !trail.contains(PASSWORD) && !trail.contains("nobody"));
    assert_eq!(bank.events("login.success").await.len(), 2);
    assert!(bank.login_metric("locked").await >= 990 - 10);
    assert_eq!(bank.login_metric("success").await, 2);
}

/// Issue 7, Tests: many addresses against many customers. A hundred addresses each try ten
/// customers at once; the accounts slow down (delays trip, most attempts are refused unchecked).
/// Kept up, the distributed attack locks each account for five minutes, yet a customer still
/// logs in from the address they used before the attack (trusted) and a bystander from a fresh
/// one. Five addresses stuffing unknown usernames each lock at forty failures. Nothing answers
/// 5xx. On PostgreSQL, as several replicas would share it.
#[tokio::test]
async fn a_hundred_addresses_against_ten_customers_lock_the_accounts_and_the_stuffing_addresses() {
    let bank = Bank::start(Backend::Postgres).await;
    let app = bank.app();
    let victims: Vec<String> = (0..10).map(|v| format!("victim-{v}")).collect();
    let mut names: Vec<&str> = victims.iter().map(String::as_str).collect();
    names.push("carol");
    bank.customers(&names).await;
    // Before the attack, victim-0 logs in from home.
    let home = address(1, 0, 1);
    let mut before = Visitor::new(app, home).await;
    before.log_in("victim-0", PASSWORD).await.assert_logged_in();

    // The burst: a hundred addresses, each trying every victim once, all at the same time.
    let mut attackers = Vec::new();
    for n in 0..100_u8 {
        attackers.push(Visitor::new(app, address(2, 0, n + 1)).await);
    }
    let burst = attackers.into_iter().enumerate().map(|(n, mut visitor)| {
        let victims = victims.clone();
        tokio::spawn(async move {
            let mut checked = [0_usize; 10];
            for i in 0..10 {
                let v = (n + i) % 10;
                let answer = visitor.log_in(&victims[v], WRONG).await;
                match answer.status {
                    StatusCode::UNAUTHORIZED => checked[v] += 1,
                    _ => assert!(answer.refused().unwrap() <= 60, "{answer:?}"),
                }
            }
            (visitor, checked)
        })
    });
    let burst: Vec<_> = burst.collect();
    let mut attackers = Vec::new();
    let mut checked = [0_usize; 10];
    for task in burst {
        let (visitor, counts) = task.await.unwrap();
        attackers.push(visitor);
        for (total, count) in checked.iter_mut().zip(counts) {
            *total += count;
        }
    }
    // Each account: its ten free failures, then a doubling delay, so only a few more of the
    // hundred attempts were checked, whatever the burst's duration.
    for (v, count) in checked.iter().enumerate() {
        assert!((10..=20).contains(count), "victim-{v}: {count} checked");
    }

    // Kept up: each round, each victim gets one wrong password from an address that has not
    // tried it since the burst, and the clock moves past every delay. Each account locks: then
    // even the right password from a new address is refused unchecked, but not from the home of
    // the customer (who logged in from there before), nor for an account nobody attacked.
    let mut stranger = Visitor::new(app, address(4, 0, 1)).await;
    let mut locked = vec![false; 10];
    for round in 0..40 {
        // The victims' attempts of a round go together, each from its own address.
        let attempts = attackers
            .iter_mut()
            .enumerate()
            .filter_map(|(n, attacker)| {
                let v = (0..10).find(|v| (round + 7 * v) % 100 == n && !locked[*v])?;
                let victim = victims[v].clone();
                Some(async move { (v, attacker.log_in(&victim, WRONG).await) })
            });
        for (v, answer) in join_all(attempts).await {
            if answer.refused().is_some_and(|wait| wait > 60) {
                locked[v] = true;
                let refused = stranger.log_in(&victims[v], PASSWORD).await;
                assert!(refused.refused().unwrap() > 60, "{refused:?}");
                if v == 0 {
                    let mut at_home = Visitor::new(app, home).await;
                    at_home
                        .log_in("victim-0", PASSWORD)
                        .await
                        .assert_logged_in();
                }
            }
        }
        if locked.iter().all(|l| *l) {
            break;
        }
        app.advance_clock(61).await;
    }
    assert!(locked.iter().all(|l| *l), "{locked:?}");
    stranger.log_in("carol", PASSWORD).await.assert_logged_in();
    let account_locks = bank
        .events("login.locked")
        .await
        .into_iter()
        .filter(|e| e["details"]["kind"] == "account")
        .count();
    assert_eq!(account_locks, 10);

    // Stuffing: five addresses, in step, unknown usernames; each locks at its fortieth failure.
    let mut stuffers = Vec::new();
    for n in 0..5_u8 {
        stuffers.push(Visitor::new(app, address(3, 0, n + 1)).await);
    }
    let mut failures = [0_usize; 5];
    let mut stuffer_locked = [false; 5];
    let mut attempt = 0;
    while !stuffer_locked.iter().all(|l| *l) {
        attempt += 1;
        assert!(
            attempt < 200,
            "the stuffing addresses never locked: {failures:?}"
        );
        let mut wait = 0;
        let attempts = stuffers
            .iter_mut()
            .enumerate()
            .filter(|(n, _)| !stuffer_locked[*n])
            .map(|(n, stuffer)| async move {
                let username = format!("nobody-{n}-{attempt}");
                (n, stuffer.log_in(&username, WRONG).await)
            });
        for (n, answer) in join_all(attempts).await {
            match answer.refused() {
                Some(lock) if lock > 60 => stuffer_locked[n] = true,
                Some(delay) => wait = wait.max(delay),
                None => failures[n] += 1,
            }
        }
        if wait > 0 {
            app.advance_clock(i64::try_from(wait).unwrap()).await;
        }
    }
    assert_eq!(failures, [40; 5]);
    for stuffer in &mut stuffers {
        let refused = stuffer.log_in("carol", PASSWORD).await;
        assert!(refused.refused().unwrap() > 60, "{refused:?}");
    }
    let mut bystander = Visitor::new(app, address(4, 0, 2)).await;
    bystander.log_in("carol", PASSWORD).await.assert_logged_in();
    let ip_locks = bank
        .events("login.locked")
        .await
        .into_iter()
        .filter(|e| e["details"]["kind"] == "ip")
        .count();
    assert_eq!(ip_locks, 5);
}

/// Issue 7, Tests: a lock ends by itself. Once the clock passes the pair's lock, the customer
/// logs in from the attacked address; the success starts the pair's count again.
#[tokio::test]
async fn a_lock_ends_by_itself_and_the_customer_logs_in_from_the_attacked_address() {
    let bank = Bank::start(Backend::Sqlite).await;
    let app = bank.app();
    bank.customers(&["alice"]).await;
    let mut shared = Visitor::new(app, address(0, 20, 1)).await;
    let (checked, lock) = until_locked(app, &mut shared, "alice").await;
    assert_eq!(checked, 10);
    let refused = shared.log_in("alice", PASSWORD).await;
    let left = refused.refused().unwrap();
    assert!(left > 60 && left <= lock, "{left} of {lock}");

    app.advance_clock(i64::try_from(left).unwrap()).await;
    shared.log_in("alice", PASSWORD).await.assert_logged_in();
    // The success cleared the pair: a typo now is an ordinary failure, not another lock.
    let mut again = Visitor::new(app, address(0, 20, 1)).await;
    let typo = again.log_in("alice", WRONG).await;
    assert_eq!(typo.status, StatusCode::UNAUTHORIZED, "{}", typo.body);
}

/// Issue 7: second-factor codes are limited per customer across logins. Five wrong codes (the
/// page's own limit of one login ends it) lock the customer's second factor for fifteen minutes:
/// a new login's right code is refused unchecked; after the lock, it works.
#[tokio::test]
async fn five_wrong_codes_lock_the_second_factor_across_logins_until_the_lock_ends() {
    let bank = Bank::start(Backend::Sqlite).await;
    let app = bank.app();
    let ids = bank.customers(&["dave"]).await;
    let session = bank.session().await;
    let reply = session
        .call(
            app,
            Method::POST,
            &format!("/admin/v1/users/{}/totp", ids[0]),
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let uri = reqwest::Url::parse(reply.body["otpauth_uri"].as_str().unwrap()).unwrap();
    let secret = uri
        .query_pairs()
        .find(|(k, _)| k == "secret")
        .map(|(_, v)| flow::base32_decode(&v))
        .unwrap();

    let mut browser = Visitor::new(app, address(0, 30, 1)).await;
    let form = browser.log_in("dave", PASSWORD).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    let now = server_now(app).await;
    let valid: Vec<String> = [-30, 0, 30]
        .iter()
        .map(|d| totp(&secret, now + d))
        .collect();
    let wrong = (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| !valid.contains(c))
        .unwrap();
    for n in 1..=5 {
        let answer = browser.code(&wrong).await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "code {n}: {}",
            answer.body
        );
    }
    // A new login: the password is still accepted, the right code is refused unchecked.
    let mut browser = Visitor::new(app, address(0, 30, 2)).await;
    let form = browser.log_in("dave", PASSWORD).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    let right = totp(&secret, server_now(app).await);
    let refused = browser.code(&right).await;
    let left = refused.refused().unwrap();
    assert!((840..=900).contains(&left), "{left}");

    app.advance_clock(i64::try_from(left).unwrap()).await;
    let mut browser = Visitor::new(app, address(0, 30, 2)).await;
    let form = browser.log_in("dave", PASSWORD).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    browser
        .code(&totp(&secret, server_now(app).await))
        .await
        .assert_logged_in();
    let actions: Vec<String> = ["totp.failure", "totp.locked", "totp.success"]
        .iter()
        .map(|a| a.to_string())
        .collect();
    let mut counts = Vec::new();
    for action in &actions {
        counts.push(bank.events(action).await.len());
    }
    assert_eq!(counts, [5, 1, 1]);
}

/// The authorization flow's login shares the counters with the account page's: an address
/// locked out of an account there gets the flow's login form back with 429, unchecked, and the
/// authorization goes on; the failures recorded there name the client.
#[tokio::test]
async fn the_authorization_flow_login_shares_the_counters_and_its_events_name_the_client() {
    let bank = flow::Bank::start_with(Backend::Sqlite, CONFIG).await;
    let app = bank.app();
    let user = bank.customer("erin").await;
    let tpp = bank.tpp(Auth::PrivateKeyJwt, Binding::Dpop, "ES256").await;
    let holder = bank.holder(&tpp);
    let pushed = tpp.push(app, &holder, &[], Some(&holder.dpop)).await;
    let mut browser = Browser::new(app);
    let login = browser.get(&pushed.url).await;
    login.assert_form("/authorize/login");
    let wrong = browser.log_in(app, &login, "erin", WRONG).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.body);

    // From the browser's own address, through the account page, on to the pair's lock: the
    // flow's failure was the first of the ten.
    let mut visitor = Visitor::new(app, address(0, 0, 1)).await;
    let (checked, _) = until_locked(app, &mut visitor, "erin").await;
    assert_eq!(checked, 9);
    let refused = browser.log_in(app, &login, "erin", PASSWORD).await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.body
    );
    assert!(refused.body.contains(TOO_MANY), "{}", refused.body);
    assert!(refused.body.contains(r#"action="/authorize/login""#));

    let path = format!("/admin/v1/events?type=login.failure&client_id={}", tpp.id);
    let events = bank.session.call(app, Method::GET, &path, None).await;
    let items = events.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", events.body);
    assert_eq!(items[0]["subject"], user.as_str());
    assert_eq!(items[0]["details"]["reason"], "bad_credentials");
}
