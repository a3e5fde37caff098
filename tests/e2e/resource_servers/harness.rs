//! What the resource-server tests share: an authorization server configured for them, an example
//! started as the bank would run it ([`launch`]), its HTTPS and metrics endpoints ([`Api`]), a
//! customer's consent through the pages ([`consent`]) and its withdrawal at `/account`
//! ([`withdraw`]), short-lived tokens without waiting minutes ([`short_lived_token`]), and a TCP
//! forwarder that can be cut ([`Forwarder`]).

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use portcullis_testkit::app::App;
use portcullis_testkit::certs::{ClientIdentity, TestCa};
use portcullis_testkit::db::Backend;
use portcullis_testkit::example::{Example, ExampleServer};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::flow::{Auth, Bank, Binding, Browser, Holder, PASSWORD, REDIRECT, Tpp};
use crate::oauth::{ClientKey, Reply, claims_of, dpop_proof, random_id};

/// The accounts API's resource identifier (the one [`Bank::start`] registers).
pub(crate) const ACCOUNTS_API: &str = "https://api.bank.example/accounts";
/// The market stream's resource identifier.
pub(crate) const MARKET_STREAM: &str = "https://stream.bank.example/ticks";
/// The authorization server's configuration for these tests: long polls of the revocation feed
/// answer within a second, so that a feed lag of a few seconds means the feed is down.
pub(crate) const AS_CONFIG: &str = "[events]\nlong_poll_secs = 1\n";
/// Bounds every wait that ends as soon as something happens; not a delay.
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);
/// How often a polled condition is looked at again.
const POLL_EVERY: Duration = Duration::from_millis(50);

/// The real time, in Unix seconds: what the examples' clocks read (the authorization server's
/// may have been moved by the test hook).
pub(crate) fn unix_now() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(since.as_secs()).unwrap()
}

/// An authorization server on SQLite configured with [`AS_CONFIG`] and `extra_config`.
pub(crate) async fn start_bank(extra_config: &str) -> Bank {
    Bank::start_with(Backend::Sqlite, &format!("{AS_CONFIG}{extra_config}")).await
}

/// A running example, with the CA its server certificate comes from.
pub(crate) struct Api {
    pub(crate) server: ExampleServer,
    /// The test CA that issued the example's server certificate (PEM).
    pub(crate) server_ca_pem: String,
    /// Its certificate and key files, the CA files.
    _dir: tempfile::TempDir,
}

impl Drop for Api {
    /// A failing test shows what the example logged.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- {} stderr ----\n{}",
                self.server.example.name(),
                self.server.stderr()
            );
        }
    }
}

impl Api {
    /// The URL of `path` (and the `htu` of a DPoP proof for it).
    pub(crate) fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// An HTTPS client that trusts only the example's test CA, presenting `identity` if given.
    pub(crate) fn client(&self, identity: Option<&ClientIdentity>) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(self.server_ca_pem.as_bytes()).unwrap();
        let mut builder = reqwest::Client::builder()
            .tls_certs_only([ca])
            .https_only(true)
            .timeout(Duration::from_secs(30));
        if let Some(identity) = identity {
            builder = builder.identity(identity.reqwest_identity());
        }
        builder.build().unwrap()
    }

    /// `method path` with a certificate-bound `token` as `Bearer`, over a connection presenting
    /// `cert` (or none).
    pub(crate) fn bearer(
        &self,
        method: Method,
        path: &str,
        token: &str,
        cert: Option<&ClientIdentity>,
    ) -> reqwest::RequestBuilder {
        self.client(cert)
            .request(method, self.url(path))
            .header("Authorization", format!("Bearer {token}"))
    }

    /// `method path` with a DPoP-bound `token` and `proof`.
    pub(crate) fn dpop(
        &self,
        method: Method,
        path: &str,
        token: &str,
        proof: &str,
    ) -> reqwest::RequestBuilder {
        self.client(None)
            .request(method, self.url(path))
            .header("Authorization", format!("DPoP {token}"))
            .header("DPoP", proof)
    }

    /// A fresh DPoP proof by `key` for `method path` carrying `token`, dated by the real clock.
    pub(crate) fn proof(
        &self,
        key: &ClientKey,
        method: &Method,
        path: &str,
        token: &str,
    ) -> String {
        dpop_proof(
            key,
            method.as_str(),
            &self.url(path),
            Some(token),
            unix_now(),
        )
    }

    /// `GET path` on the metrics listener, as text.
    async fn metrics_get(&self, path: &str) -> String {
        let url = format!("http://{}{path}", self.server.metrics_listen);
        let response = reqwest::Client::new().get(&url).send().await.unwrap();
        assert!(
            response.status().is_success(),
            "GET {url}: {}",
            response.status()
        );
        response.text().await.unwrap()
    }

    /// The counter `portcullis_verify_<name>_total` of the example's `/metrics`.
    pub(crate) async fn counter(&self, name: &str) -> u64 {
        let text = self.metrics_get("/metrics").await;
        let prefix = format!("portcullis_verify_{name}_total ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {prefix}in /metrics:\n{text}"))
            .trim()
            .parse()
            .unwrap()
    }

    /// The revocation feed's state from `GET /feed` (`live`, `lagging`, …).
    pub(crate) async fn feed_state(&self) -> String {
        let body: Value = serde_json::from_str(&self.metrics_get("/feed").await).unwrap();
        body["feed"].as_str().unwrap().to_owned()
    }

    /// Waits until the feed is in `state`.
    pub(crate) async fn wait_for_feed(&self, state: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let now = self.feed_state().await;
            if now == state {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the feed is still {now}, not {state}, after {PATIENCE:?}"
            );
            tokio::time::sleep(POLL_EVERY).await;
        }
    }
}

/// What each example serves, as its resource registration says.
fn registration(example: Example) -> (&'static str, Value) {
    match example {
        Example::BankApi => (
            ACCOUNTS_API,
            json!({
                "name": "Accounts API",
                "scopes": ["accounts", "payments"],
                "authorization_details_types": ["account_information", "payment_initiation"],
            }),
        ),
        Example::MarketStream => (
            MARKET_STREAM,
            json!({
                "name": "Market stream",
                "scopes": ["ticks:EURUSD", "ticks:GBPUSD", "ticks:USDJPY", "ticks:BTCEUR", "ticks:XAUUSD"],
            }),
        ),
    }
}

/// A resource identifier as one path segment of the admin API.
fn path_segment(resource: &str) -> String {
    resource
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Starts `example` as the bank would run it: its resource registered (or replaced) with a
/// `tls_client_auth` client of its own (client credentials, `revocation_events`), a server
/// certificate for `127.0.0.1` from a fresh test CA, the authorization server's development CA
/// trusted, and `extra_args` last.
pub(crate) async fn launch(bank: &Bank, example: Example, extra_args: &[&str]) -> Api {
    let app = bank.app();
    let (resource, mut body) = registration(example);
    let rs = bank
        .tpp_with(
            &format!("{} client", example.name()),
            Auth::TlsClientAuth,
            Binding::Certificate,
            "ES256",
            &json!({
                "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
                "scope": "openid revocation_events",
            }),
        )
        .await;
    let rs_cert = bank.holder(&rs).cert;
    body["client_id"] = rs.id.clone().into();
    let reply = match example {
        Example::BankApi => {
            let path = format!("/admin/v1/resources/{}", path_segment(resource));
            bank.session
                .call(app, Method::PUT, &path, Some(&body))
                .await
        }
        Example::MarketStream => {
            body["resource"] = resource.into();
            bank.session
                .call(app, Method::POST, "/admin/v1/resources", Some(&body))
                .await
        }
    };
    assert!(reply.status.is_success(), "{resource}: {}", reply.body);

    let dir = tempfile::tempdir().unwrap();
    let server_ca = TestCa::new(&format!("{} test CA", example.name()));
    let server_cert = server_ca.issue_server(&["127.0.0.1", "localhost"]);
    let file = |name: &str, content: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let tls_cert = file("server.pem", server_cert.cert_pem.as_bytes());
    let tls_key = file("server-key.pem", server_cert.key_pem.as_bytes());
    let as_ca = file("as-ca.pem", app.ca_pem.as_deref().unwrap());
    let client_cert = file("client.pem", rs_cert.cert_pem.as_bytes());
    let client_key = file("client-key.pem", rs_cert.key_pem.as_bytes());
    let mut args: Vec<String> = [
        "--issuer",
        &app.issuer,
        "--resource",
        resource,
        "--tls-cert",
        &tls_cert,
        "--tls-key",
        &tls_key,
        "--ca-file",
        &as_ca,
        "--client-id",
        &rs.id,
        "--client-cert",
        &client_cert,
        "--client-key",
        &client_key,
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .collect();
    args.extend(extra_args.iter().map(|a| (*a).to_owned()));
    let server = ExampleServer::spawn(example, &args, dir.path()).await;
    Api {
        server,
        server_ca_pem: server_ca.cert_pem,
        _dir: dir,
    }
}

/// What the customer chooses on the consent page.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Choice {
    /// The account at this index (in the page's order) for `account_information`.
    Account(usize),
    /// The account at this index as the debtor of a `payment_initiation`.
    Debtor(usize),
    /// Nothing to choose (scopes only).
    Nothing,
}

/// A consent given through the pages, and the token response that redeemed its code.
pub(crate) struct Consented {
    /// The token response (200).
    pub(crate) reply: Reply,
    /// The customer's browser, still logged in (for `/account`).
    pub(crate) browser: Browser,
    /// The customer's accounts as the consent page listed them.
    pub(crate) accounts: Vec<String>,
    /// The account chosen, if any.
    pub(crate) chosen: Option<String>,
}

impl Consented {
    pub(crate) fn access_token(&self) -> String {
        self.reply.body["access_token"].as_str().unwrap().to_owned()
    }

    pub(crate) fn refresh_token(&self) -> String {
        self.reply.body["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub(crate) fn grant_id(&self) -> String {
        self.reply.body["grant_id"].as_str().unwrap().to_owned()
    }
}

/// A fresh customer consents, through the pages, to what `tpp` pushes (`extra` replacing the
/// defaults of [`Tpp::push`]), choosing `choice`; the code is redeemed with `holder`.
pub(crate) async fn consent(
    bank: &Bank,
    tpp: &Tpp,
    holder: &Holder,
    extra: &[(&str, &str)],
    choice: Choice,
) -> Consented {
    let app = bank.app();
    let username = format!("cust-{}", random_id().to_lowercase());
    bank.customer(&username).await;
    let mut browser = Browser::new(app);
    let pushed = tpp.push(app, holder, extra, None).await;
    let login = browser.get(&pushed.url).await;
    let page = browser.log_in(app, &login, &username, PASSWORD).await;
    page.assert_form("/authorize/consent");
    let interaction = page.inputs("interaction").remove(0);
    let (accounts, chosen) = match choice {
        Choice::Account(i) => {
            let accounts = page.inputs("account");
            (accounts.clone(), Some(("account", accounts[i].clone())))
        }
        Choice::Debtor(i) => {
            let accounts = page.inputs("debtor_account");
            (
                accounts.clone(),
                Some(("debtor_account", accounts[i].clone())),
            )
        }
        Choice::Nothing => (Vec::new(), None),
    };
    let mut form = vec![
        ("interaction", interaction.as_str()),
        ("decision", "approve"),
    ];
    if let Some((name, value)) = &chosen {
        form.push((name, value.as_str()));
    }
    let redirect = browser
        .post(&app.url("/authorize/consent"), &form)
        .await
        .redirect_to(REDIRECT);
    let reply = tpp.redeem(app, holder, &pushed, &redirect["code"]).await;
    assert_eq!(reply.status, 200, "token: {}", reply.body);
    Consented {
        reply,
        browser,
        accounts,
        chosen: chosen.map(|(_, v)| v),
    }
}

/// The customer withdraws the consent `grant_id` at `/account`, in the browser still logged in
/// from the consent: the page lists it with a form carrying the session's CSRF token.
pub(crate) async fn withdraw(app: &App, browser: &mut Browser, grant_id: &str) {
    let page = browser.get(&app.url("/account")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let action = format!("/account/grants/{grant_id}/withdraw");
    assert!(
        page.body.contains(&format!(r#"action="{action}""#)),
        "no withdrawal form for {grant_id}: {}",
        page.body
    );
    let csrf = page.inputs("csrf").remove(0);
    let done = browser.post(&app.url(&action), &[("csrf", &csrf)]).await;
    assert!(
        done.status == 303 || done.status == 200,
        "withdrawal: {} {}",
        done.status,
        done.body
    );
}

/// Rotates the authorization server's keys of `algs` (every configured one when empty) through
/// the admin API; the new `kid`s.
pub(crate) async fn rotate_keys(bank: &Bank, algs: &[&str]) -> Vec<String> {
    let rotated = bank
        .session
        .call(
            bank.app(),
            Method::POST,
            "/admin/v1/keys/rotate",
            Some(&json!({"algs": algs})),
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    rotated
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// Gives the authorization server keys that sign with its clock set up to `back` seconds into
/// the past (see [`short_lived_token`]). The keys made at start-up sign only from the moment they
/// were made: with the clock set back it would have no active key (and answer 500, "no active …
/// signing key"). So, with the clock set back, every key is rotated, and the new ones are waited
/// for until they sign. Needs a short `keys.jwks_max_age_secs` and `keys.refresh_interval_secs`,
/// which make a rotated key sign a few seconds after it is published.
pub(crate) async fn keys_for_clock_travel(bank: &Bank, back: i64) {
    let app = bank.app();
    app.advance_clock(-back).await;
    let kids = rotate_keys(bank, &[]).await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let listed = bank
            .session
            .call(app, Method::GET, "/admin/v1/keys", None)
            .await;
        assert_eq!(listed.status, 200, "{}", listed.body);
        let signing = listed
            .body
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["state"] == "active")
            .filter(|k| kids.iter().any(|kid| k["kid"] == kid.as_str()))
            .count();
        if signing == kids.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rotated keys do not sign: {}",
            listed.body
        );
        tokio::time::sleep(POLL_EVERY).await;
    }
    app.advance_clock(back).await;
}

/// A refresh made while the authorization server's clock is set back, so that the new access
/// token (of `lifetime` seconds) expires `ttl` seconds from the real now; the clock is then put
/// forward again. For a `tls_client_auth` provider with certificate-bound tokens, whose requests
/// carry no assertion or proof whose `iat` the moved clock could upset. The server needs
/// [`keys_for_clock_travel`] first.
pub(crate) async fn short_lived_token(
    bank: &Bank,
    tpp: &Tpp,
    holder: &Holder,
    refresh_token: &str,
    lifetime: i64,
    ttl: i64,
) -> String {
    let app = bank.app();
    let back = lifetime - ttl;
    app.advance_clock(-back).await;
    // The server's key cache, read at the later time, holds only the keys that signed or were
    // to sign then, and is read again only `refresh_interval_secs` after that time: a rotation
    // (of the cheapest key) makes it read the keys again now, at the earlier time.
    rotate_keys(bank, &["EdDSA"]).await;
    let reply = tpp
        .token(
            app,
            holder,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await;
    app.advance_clock(back).await;
    assert_eq!(
        reply.status,
        200,
        "refresh with the clock {back} s back: {}\nauthorization server stderr:\n{}",
        reply.body,
        app.stderr()
    );
    let token = reply.body["access_token"].as_str().unwrap().to_owned();
    let left = claims_of(&token)["exp"].as_i64().unwrap() - unix_now();
    assert!(
        (ttl - 2..=ttl).contains(&left),
        "the authorization server did not take the clock back: the token expires in {left} s, not {ttl} s"
    );
    token
}

/// A plain TCP forwarder from a loopback port to `target`: TLS passes through untouched, so the
/// target's certificate (for `127.0.0.1`) still matches. [`Forwarder::cut`] closes every live
/// connection and refuses new ones.
pub(crate) struct Forwarder {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    cut: watch::Sender<bool>,
    /// The accept loop; it owns the listener and the piped connections, dropped when it ends.
    task: JoinHandle<()>,
}

impl Forwarder {
    pub(crate) async fn start(target: SocketAddr) -> Forwarder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, mut cut_seen) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut pipes = JoinSet::new();
            loop {
                tokio::select! {
                    _ = cut_seen.changed() => break,
                    accepted = listener.accept() => {
                        let Ok((mut inbound, _)) = accepted else { continue };
                        pipes.spawn(async move {
                            if let Ok(mut outbound) = TcpStream::connect(target).await {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                            }
                        });
                    }
                }
            }
            // Dropping the set aborts every pipe (closing both ends); the listener goes with
            // this task, so new connections are refused.
            pipes.abort_all();
        });
        Forwarder { addr, cut, task }
    }

    /// Closes the live connections and stops listening; returns once both are done.
    pub(crate) async fn cut(self) {
        let _ = self.cut.send(true);
        self.task.await.unwrap();
        assert!(
            TcpStream::connect(self.addr).await.is_err(),
            "the forwarder still accepts connections"
        );
    }
}

/// The `WWW-Authenticate` challenges of an answer.
pub(crate) fn challenges(reply: &Reply) -> Vec<String> {
    reply
        .headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// Asserts an RFC 6750 / RFC 9449 refusal: `status`, `error` in the body (with a description and
/// `no-store`), and one challenge of `scheme` naming the same error.
#[track_caller]
pub(crate) fn assert_refused(reply: &Reply, status: u16, error: &str, scheme: &str) {
    reply.assert_error(status, error);
    let found = challenges(reply);
    assert!(
        found
            .iter()
            .any(|c| c.starts_with(&format!("{scheme} "))
                && c.contains(&format!("error=\"{error}\""))),
        "expected a {scheme} challenge with error=\"{error}\": {found:?}"
    );
}
