//! `portcullis-load flow`: N workers, each a customer's browser together with the TPP it is
//! using, looping over complete FAPI 2.0 authorization code flows for a warmup and then a
//! measured window. One flow is five requests, each timed on its own:
//!
//! 1. `POST /par`: the TPP pushes the request (`private_key_jwt`, PKCE S256, `state`, `nonce`);
//!    `201` with a `request_uri`.
//! 2. `GET /authorize?client_id&request_uri`: the browser arrives; `200`, the login page and the
//!    interaction cookie (redirects are never followed).
//! 3. `POST /authorize/login`: username and password; `200`, the consent page. The server's
//!    argon2id password check is slow on purpose (OWASP parameters), so this step dominates.
//! 4. `POST /authorize/consent`: `decision=approve`; `303` to the redirect URI with `code`,
//!    `state` and `iss`, which are checked.
//! 5. `POST /token`: the code, the PKCE verifier, a fresh assertion and a fresh DPoP proof; `200`
//!    with a DPoP-bound access token and an ID token.
//!
//! A flow stops at its first failed step, which is counted by step, status and kind. Cookies are
//! handled here, not by a cookie jar: the interaction cookie of step 2 goes with steps 3 and 4;
//! the session cookie that step 3 sets is discarded (every flow is a new visit that logs in)
//! unless `reuse_session` keeps it, in which case later flows of that worker skip the login.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use reqwest::header::{COOKIE, HeaderMap, LOCATION, SET_COOKIE};
use reqwest::{StatusCode, Url};
use serde_json::Value;
use tokio::time::Instant;

use crate::key::ClientKey;
use crate::token::{DpopNonce, Failure, JWT_BEARER, chain, shorten, transport_kind};
use crate::window::{Load, Measured, Merge, Phases, Window};

/// The cookie that ties the forms of one authorization to its browser.
const INTERACTION_COOKIE: &str = "__Host-portcullis-interaction";
/// The customer's login session.
const SESSION_COOKIE: &str = "__Host-portcullis-session";
/// The prefix of every `request_uri` (RFC 9126 §2.2).
const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// What every flow asks of the server.
pub struct Target {
    /// The issuer identifier: the assertions' `aud`, the expected `iss` of the authorization
    /// response, and the base of the endpoints.
    pub issuer: String,
    /// The client's `client_id`.
    pub client_id: String,
    /// The client's key: it signs the assertions and the DPoP proof.
    pub key: ClientKey,
    /// A redirect URI registered for the client.
    pub redirect_uri: String,
    /// The scope asked for.
    pub scope: String,
    /// The customer's username.
    pub username: String,
    /// The customer's password.
    pub password: String,
    /// Keep the session cookie, so that a worker logs in once and then only consents.
    pub reuse_session: bool,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password stays out of any output.
        f.debug_struct("Target")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("redirect_uri", &self.redirect_uri)
            .field("scope", &self.scope)
            .field("username", &self.username)
            .field("reuse_session", &self.reuse_session)
            .finish_non_exhaustive()
    }
}

/// One of the five requests of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `POST /par`.
    Par,
    /// `GET /authorize`.
    Authorize,
    /// `POST /authorize/login`.
    Login,
    /// `POST /authorize/consent`.
    Consent,
    /// `POST /token`.
    Token,
}

impl Step {
    /// The steps in their order.
    pub const ALL: [Self; 5] = [
        Self::Par,
        Self::Authorize,
        Self::Login,
        Self::Consent,
        Self::Token,
    ];

    /// The request, as the report names it.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Par => "POST /par",
            Self::Authorize => "GET /authorize",
            Self::Login => "POST /authorize/login",
            Self::Consent => "POST /authorize/consent",
            Self::Token => "POST /token",
        }
    }

    /// The path under the issuer.
    const fn path(self) -> &'static str {
        match self {
            Self::Par => "/par",
            Self::Authorize => "/authorize",
            Self::Login => "/authorize/login",
            Self::Consent => "/authorize/consent",
            Self::Token => "/token",
        }
    }
}

/// What happened to one step in one phase.
#[derive(Debug, Default)]
pub struct StepTally {
    /// Send-to-last-body-byte time of each successful request.
    pub latencies: Vec<Duration>,
    /// Requests of this step that failed (and so ended their flow).
    pub errors: u64,
}

/// The five steps' tallies.
#[derive(Debug, Default)]
pub struct Steps {
    par: StepTally,
    authorize: StepTally,
    login: StepTally,
    consent: StepTally,
    token: StepTally,
}

impl Steps {
    /// The tally of `step`.
    #[must_use]
    pub const fn get(&self, step: Step) -> &StepTally {
        match step {
            Step::Par => &self.par,
            Step::Authorize => &self.authorize,
            Step::Login => &self.login,
            Step::Consent => &self.consent,
            Step::Token => &self.token,
        }
    }

    const fn get_mut(&mut self, step: Step) -> &mut StepTally {
        match step {
            Step::Par => &mut self.par,
            Step::Authorize => &mut self.authorize,
            Step::Login => &mut self.login,
            Step::Consent => &mut self.consent,
            Step::Token => &mut self.token,
        }
    }
}

/// What happened in one phase (warmup or measured) across the workers.
#[derive(Debug, Default)]
pub struct Tally {
    /// Flows started in the phase.
    pub started: u64,
    /// Flows that ended with tokens.
    pub completed: u64,
    /// Wall time of each complete flow: its five requests and the client's work between them.
    pub flows: Vec<Duration>,
    /// The client's own work in complete flows (signing, PKCE, parsing): their wall time minus
    /// their requests' latencies.
    pub client_work: Duration,
    /// Per step.
    pub steps: Steps,
    /// Failures by step and kind (`POST /authorize/login: 401 …`); one per failed flow.
    pub failures: BTreeMap<String, Failure>,
    /// The HTTP version of the answers, as negotiated.
    pub versions: BTreeMap<String, u64>,
}

impl Tally {
    /// Flows that failed.
    #[must_use]
    pub fn errors(&self) -> u64 {
        self.failures.values().map(|f| f.count).sum()
    }

    fn fail(&mut self, step: Step, kind: &str, detail: impl FnOnce() -> String) {
        self.steps.get_mut(step).errors += 1;
        self.failures
            .entry(format!("{}: {kind}", step.label()))
            .and_modify(|f| f.count += 1)
            .or_insert_with(|| Failure {
                count: 1,
                first: shorten(&detail()),
            });
    }
}

impl Merge for Tally {
    fn merge(&mut self, other: Self) {
        self.started += other.started;
        self.completed += other.completed;
        self.flows.extend(other.flows);
        self.client_work += other.client_work;
        for step in Step::ALL {
            let (mine, theirs) = (self.steps.get_mut(step), other.steps.get(step));
            mine.latencies.extend_from_slice(&theirs.latencies);
            mine.errors += theirs.errors;
        }
        for (kind, failure) in other.failures {
            self.failures
                .entry(kind)
                .and_modify(|f| f.count += failure.count)
                .or_insert(failure);
        }
        for (version, count) in other.versions {
            *self.versions.entry(version).or_default() += count;
        }
    }
}

/// The outcome of a run.
#[derive(Debug)]
pub struct Outcome {
    /// The warmup phase.
    pub warmup: Tally,
    /// The measured phase.
    pub measured: Tally,
    /// From the end of the warmup until the last worker stopped.
    pub window: Duration,
    /// CPU time of this process, the server and the machine during the window.
    pub cpu: crate::cpu::Usage,
    /// Whether the workers kept their session cookies.
    pub reuse_session: bool,
}

/// What the workers share.
#[derive(Debug)]
struct Shared {
    target: Target,
    /// `<issuer><path>` of each step.
    urls: [String; 5],
    nonce: DpopNonce,
}

impl Shared {
    fn url(&self, step: Step) -> &str {
        self.urls.get(step as usize).map_or("", String::as_str)
    }
}

/// One simulated customer: its own HTTP client (so its own connection) and cookies.
#[derive(Debug)]
struct Browser {
    http: reqwest::Client,
    /// The session cookie's value, kept only with `reuse_session`.
    session: Option<String>,
}

/// An answer, read to its end.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
    latency: Duration,
}

/// Sends `request` for `step` and reads the whole answer, timing from send to the last body
/// byte; a transport failure is tallied and ends the flow.
async fn send(step: Step, request: reqwest::RequestBuilder, tally: &mut Tally) -> Option<Reply> {
    let sent = Instant::now();
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) => {
            tally.fail(step, &transport_kind(&error), || chain(&error));
            return None;
        }
    };
    let status = response.status();
    *tally
        .versions
        .entry(format!("{:?}", response.version()))
        .or_default() += 1;
    let headers = response.headers().clone();
    match response.bytes().await {
        Ok(body) => Some(Reply {
            status,
            headers,
            body: body.to_vec(),
            latency: sent.elapsed(),
        }),
        Err(error) => {
            let kind = format!("{} (body: {})", status.as_u16(), transport_kind(&error));
            tally.fail(step, &kind, || chain(&error));
            None
        }
    }
}

/// Tallies an unexpected answer: its status with the OAuth `error` code (JSON) or the page's
/// heading (HTML) as the kind, and the body (the page's text) as the detail.
fn unexpected(tally: &mut Tally, step: Step, reply: &Reply) {
    let status = reply.status.as_u16();
    if let Ok(json) = serde_json::from_slice::<Value>(&reply.body) {
        let kind = match json.get("error").and_then(Value::as_str) {
            Some(code) => format!("{status} {code}"),
            None => status.to_string(),
        };
        tally.fail(step, &kind, || String::from_utf8_lossy(&reply.body).into());
        return;
    }
    let html = String::from_utf8_lossy(&reply.body);
    let kind = match between(&html, "<h1>", "</h1>") {
        Some(heading) => format!("{status} page \u{201c}{}\u{201d}", page_text(heading)),
        None => status.to_string(),
    };
    tally.fail(step, &kind, || {
        between(&html, "<main>", "</main>").map_or_else(|| html.to_string(), page_text)
    });
}

/// The text between the first `start` and the next `end`.
fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let rest = text.get(from..)?;
    rest.get(..rest.find(end)?)
}

/// HTML as plain text: tags dropped, askama's escapes undone, whitespace collapsed.
fn page_text(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = unescape(&text);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Undoes the escapes askama writes (`&amp;`, `&lt;`, `&gt;`, `&quot;`, `&#39;`, `&#x27;`).
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

/// The value of the form field `name` in a page (`name="…" value="…"`).
fn hidden_field(html: &str, name: &str) -> Option<String> {
    let value = between(html, &format!("name=\"{name}\" value=\""), "\"")?;
    (!value.is_empty()).then(|| unescape(value))
}

/// The value of cookie `name` as a `Set-Cookie` header of `headers` sets it.
fn set_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next()?.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Which page of the authorization a `200` is: its form's action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Page {
    Login,
    Consent,
    Other,
}

fn page_of(html: &str) -> Page {
    if html.contains("action=\"/authorize/login\"") {
        Page::Login
    } else if html.contains("action=\"/authorize/consent\"") {
        Page::Consent
    } else {
        Page::Other
    }
}

/// The members of a JSON object, named but not shown (they may be tokens).
fn members(json: Option<&Value>) -> String {
    json.and_then(Value::as_object).map_or_else(
        || "not a JSON object".into(),
        |o| o.keys().cloned().collect::<Vec<_>>().join(", "),
    )
}

/// One complete flow. Returns whether it ended with tokens; every failure is tallied.
async fn flow(shared: &Shared, browser: &mut Browser, tally: &mut Tally) -> bool {
    let started = Instant::now();
    let target = &shared.target;
    let key = &target.key;
    let mut requests = Duration::ZERO;

    // 1. The TPP pushes the authorization request.
    let prepared = key.pkce().and_then(|(verifier, challenge)| {
        Ok((
            verifier,
            challenge,
            key.random_id()?,
            key.random_id()?,
            key.assertion(&target.client_id, &target.issuer)?,
        ))
    });
    let (verifier, challenge, state, nonce, assertion) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            tally.fail(Step::Par, "client: signing failed", || format!("{error:#}"));
            return false;
        }
    };
    let form = [
        ("response_type", "code"),
        ("client_id", target.client_id.as_str()),
        ("redirect_uri", target.redirect_uri.as_str()),
        ("scope", target.scope.as_str()),
        ("state", state.as_str()),
        ("nonce", nonce.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion.as_str()),
    ];
    let request = browser.http.post(shared.url(Step::Par)).form(&form);
    let Some(reply) = send(Step::Par, request, tally).await else {
        return false;
    };
    shared.nonce.remember(reply.headers.get("dpop-nonce"));
    if reply.status != StatusCode::CREATED {
        unexpected(tally, Step::Par, &reply);
        return false;
    }
    let json = serde_json::from_slice::<Value>(&reply.body).ok();
    let Some(request_uri) = json
        .as_ref()
        .and_then(|j| j.get("request_uri"))
        .and_then(Value::as_str)
        .filter(|uri| uri.starts_with(REQUEST_URI_PREFIX))
    else {
        tally.fail(Step::Par, "201 without a request_uri", || {
            format!("members: {}", members(json.as_ref()))
        });
        return false;
    };
    tally.steps.get_mut(Step::Par).latencies.push(reply.latency);
    requests += reply.latency;

    // 2. The browser arrives at the authorization endpoint.
    let url = match Url::parse_with_params(
        shared.url(Step::Authorize),
        [
            ("client_id", target.client_id.as_str()),
            ("request_uri", request_uri),
        ],
    ) {
        Ok(url) => url,
        Err(error) => {
            tally.fail(Step::Authorize, "client: bad URL", || error.to_string());
            return false;
        }
    };
    let mut request = browser.http.get(url);
    if let Some(session) = &browser.session {
        request = request.header(COOKIE, format!("{SESSION_COOKIE}={session}"));
    }
    let Some(reply) = send(Step::Authorize, request, tally).await else {
        return false;
    };
    if reply.status != StatusCode::OK {
        unexpected(tally, Step::Authorize, &reply);
        return false;
    }
    let html = String::from_utf8_lossy(&reply.body);
    let page = page_of(&html);
    let (Some(interaction), Some(cookie), true) = (
        hidden_field(&html, "interaction"),
        set_cookie(&reply.headers, INTERACTION_COOKIE),
        page != Page::Other,
    ) else {
        tally.fail(
            Step::Authorize,
            "200 without a login or consent form, interaction field and cookie",
            || page_text(&html),
        );
        return false;
    };
    tally
        .steps
        .get_mut(Step::Authorize)
        .latencies
        .push(reply.latency);
    requests += reply.latency;
    // Both cookies go with the forms, as a browser would send them.
    let mut cookies = format!("{INTERACTION_COOKIE}={cookie}");
    if let Some(session) = &browser.session {
        cookies.push_str(&format!("; {SESSION_COOKIE}={session}"));
    }

    // 3. The customer logs in, unless a kept session made the server skip straight to consent.
    if page == Page::Login {
        let form = [
            ("interaction", interaction.as_str()),
            ("username", target.username.as_str()),
            ("password", target.password.as_str()),
        ];
        let request = browser
            .http
            .post(shared.url(Step::Login))
            .header(COOKIE, cookies.as_str())
            .form(&form);
        let Some(reply) = send(Step::Login, request, tally).await else {
            return false;
        };
        if reply.status != StatusCode::OK {
            unexpected(tally, Step::Login, &reply);
            return false;
        }
        let html = String::from_utf8_lossy(&reply.body);
        if page_of(&html) != Page::Consent {
            tally.fail(
                Step::Login,
                "200 but not the consent page (a second factor?)",
                || page_text(&html),
            );
            return false;
        }
        if target.reuse_session
            && let Some(session) = set_cookie(&reply.headers, SESSION_COOKIE)
        {
            cookies = format!("{INTERACTION_COOKIE}={cookie}; {SESSION_COOKIE}={session}");
            browser.session = Some(session);
        }
        tally
            .steps
            .get_mut(Step::Login)
            .latencies
            .push(reply.latency);
        requests += reply.latency;
    }

    // 4. The customer approves; the server redirects to the client with the code.
    let form = [
        ("interaction", interaction.as_str()),
        ("decision", "approve"),
    ];
    let request = browser
        .http
        .post(shared.url(Step::Consent))
        .header(COOKIE, cookies.as_str())
        .form(&form);
    let Some(reply) = send(Step::Consent, request, tally).await else {
        return false;
    };
    if reply.status != StatusCode::SEE_OTHER {
        unexpected(tally, Step::Consent, &reply);
        return false;
    }
    let location = reply
        .headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let code = match authorization_response(location, target, &state) {
        Ok(code) => code,
        Err((kind, detail)) => {
            tally.fail(Step::Consent, &kind, || detail);
            return false;
        }
    };
    tally
        .steps
        .get_mut(Step::Consent)
        .latencies
        .push(reply.latency);
    requests += reply.latency;

    // 5. The TPP redeems the code.
    let token_url = shared.url(Step::Token);
    let signed = key
        .assertion(&target.client_id, &target.issuer)
        .and_then(|assertion| {
            Ok((
                assertion,
                key.dpop_proof(token_url, shared.nonce.get().as_deref())?,
            ))
        });
    let (assertion, proof) = match signed {
        Ok(signed) => signed,
        Err(error) => {
            tally.fail(Step::Token, "client: signing failed", || {
                format!("{error:#}")
            });
            return false;
        }
    };
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", target.redirect_uri.as_str()),
        ("code_verifier", verifier.as_str()),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion.as_str()),
    ];
    let request = browser
        .http
        .post(token_url)
        .header("DPoP", proof)
        .form(&form);
    let Some(reply) = send(Step::Token, request, tally).await else {
        return false;
    };
    shared.nonce.remember(reply.headers.get("dpop-nonce"));
    if reply.status != StatusCode::OK {
        unexpected(tally, Step::Token, &reply);
        return false;
    }
    let json = serde_json::from_slice::<Value>(&reply.body).ok();
    let text = |name: &str| {
        json.as_ref()
            .and_then(|j| j.get(name))
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    };
    if text("access_token").is_none()
        || !text("token_type").is_some_and(|t| t.eq_ignore_ascii_case("DPoP"))
        || text("id_token").is_none()
    {
        // The body may hold tokens: report its shape, not its content.
        let token_type = text("token_type").map(str::to_owned);
        tally.fail(
            Step::Token,
            "200 without a DPoP-bound access token and an ID token",
            || {
                format!(
                    "members: {}; token_type: {token_type:?}",
                    members(json.as_ref())
                )
            },
        );
        return false;
    }
    tally
        .steps
        .get_mut(Step::Token)
        .latencies
        .push(reply.latency);
    requests += reply.latency;

    let wall = started.elapsed();
    tally.completed += 1;
    tally.flows.push(wall);
    tally.client_work += wall.saturating_sub(requests);
    true
}

/// The code of an authorization response (`<redirect_uri>?code=…&state=…&iss=…`) after checking
/// that it goes to our redirect URI with our `state` and the issuer's `iss` (RFC 9207); else the
/// kind and detail of the failure.
fn authorization_response(
    location: &str,
    target: &Target,
    state: &str,
) -> Result<String, (String, String)> {
    let Some(query) = location
        .strip_prefix(target.redirect_uri.as_str())
        .and_then(|rest| rest.strip_prefix('?'))
    else {
        return Err((
            "303 not to the redirect URI".into(),
            format!("Location: {location}"),
        ));
    };
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in url_query(query) {
        params.insert(name, value);
    }
    if let Some(error) = params.get("error") {
        return Err((
            format!("303 error={error}"),
            params.get("error_description").cloned().unwrap_or_default(),
        ));
    }
    if params.get("state").map(String::as_str) != Some(state) {
        return Err(("303 with another state".into(), format!("{params:?}")));
    }
    if params.get("iss") != Some(&target.issuer) {
        return Err((
            "303 with another iss".into(),
            format!("iss {:?}, expected {:?}", params.get("iss"), target.issuer),
        ));
    }
    params
        .remove("code")
        .filter(|code| !code.is_empty())
        .ok_or_else(|| ("303 without a code".into(), String::new()))
}

/// The name-value pairs of a URL query.
fn url_query(query: &str) -> Vec<(String, String)> {
    // A dummy base: only the query is parsed.
    Url::parse(&format!("https://query.invalid/?{query}")).map_or_else(
        |_| Vec::new(),
        |url| {
            url.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        },
    )
}

/// One worker: flows back to back until the run ends, each tallied by the phase in which it
/// started.
async fn worker(shared: Arc<Shared>, mut browser: Browser, window: Window) -> Phases<Tally> {
    let mut phases = window.phases::<Tally>();
    while let Some((tally, _)) = phases.next() {
        tally.started += 1;
        flow(&shared, &mut browser, tally).await;
    }
    phases
}

/// One flow before the run, so that a wrong client, key, user, issuer or CA fails at once with
/// the server's answer instead of after a whole run of errors.
///
/// # Errors
/// The failed step with the server's answer or the transport error.
async fn preflight(shared: &Shared, browser: &mut Browser) -> anyhow::Result<()> {
    let mut tally = Tally::default();
    if flow(shared, browser, &mut tally).await {
        return Ok(());
    }
    match tally.failures.into_iter().next() {
        Some((kind, failure)) => bail!("the first flow failed at {kind}: {}", failure.first),
        None => bail!("the first flow failed"),
    }
}

/// Runs the load: a preflight flow, then `load.concurrency` workers, each with the HTTP client
/// that `client` makes for it, for the warmup and the measured window. `server_pid`, when given,
/// is the server process whose CPU time is read from `/proc` around the window.
///
/// # Errors
/// When a client cannot be built, the preflight flow fails, or a worker task dies.
pub async fn run(
    target: Target,
    client: impl Fn() -> anyhow::Result<reqwest::Client>,
    load: Load,
    server_pid: Option<u32>,
) -> anyhow::Result<Outcome> {
    let issuer = target.issuer.trim_end_matches('/').to_owned();
    let reuse_session = target.reuse_session;
    let shared = Arc::new(Shared {
        urls: Step::ALL.map(|step| format!("{issuer}{}", step.path())),
        target,
        nonce: DpopNonce::default(),
    });
    let mut browsers = Vec::with_capacity(load.concurrency);
    for _ in 0..load.concurrency {
        browsers.push(Browser {
            http: client()?,
            session: None,
        });
    }
    // The preflight's browser is the first worker's (its connection stays open for it).
    if let Some(first) = browsers.first_mut() {
        preflight(&shared, first).await?;
    }

    let window = Window::starting_now(&load);
    let workers: Vec<_> = browsers
        .into_iter()
        .map(|browser| tokio::spawn(worker(Arc::clone(&shared), browser, window)))
        .collect();
    let Measured {
        warmup,
        measured,
        window,
        cpu,
    } = window.collect(workers, server_pid).await?;
    Ok(Outcome {
        warmup,
        measured,
        window,
        cpu,
        reuse_session,
    })
}
