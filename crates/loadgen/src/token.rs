//! `portcullis-load token`: N workers, each looping over client-credentials token requests with
//! a fresh client assertion and DPoP proof, for a warmup and then a measured window. The same
//! requests also fetch tokens for other loads ([`fetch`]).
//!
//! Every worker keeps its own [`Tally`] per phase (see [`crate::window`]). Network and protocol
//! failures are counted by kind, never unwrapped.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use reqwest::header::HeaderValue;
use reqwest::{StatusCode, Version};
use serde_json::Value;
use tokio::time::Instant;

use crate::key::ClientKey;
use crate::window::{Load, Measured, Merge, Phases, Window};

/// The client-assertion type of RFC 7523 §2.2.
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How much of an error body is kept for the report.
const MAX_BODY_CHARS: usize = 400;

/// What is asked of the server, the same for every request.
#[derive(Debug)]
pub struct Target {
    /// The issuer identifier: the assertion's `aud`, exactly.
    pub issuer: String,
    /// The token endpoint: the requests' URL and the proofs' `htu`.
    pub token_url: String,
    /// The client's `client_id`: the assertion's `iss` and `sub`.
    pub client_id: String,
    /// The scope asked for.
    pub scope: String,
    /// The resource the token is for (RFC 8707), if one is named.
    pub resource: Option<String>,
    /// The client's key, which signs both the assertion and the proof.
    pub key: ClientKey,
}

/// One kind of failure: how often it happened and what the first one said.
#[derive(Debug, Clone)]
pub struct Failure {
    /// How many requests failed this way.
    pub count: u64,
    /// The first one's response body or error message, shortened.
    pub first: String,
}

/// What happened in one phase (warmup or measured) across the workers.
#[derive(Debug, Default)]
pub struct Tally {
    /// Requests started in the phase (including those whose signing failed).
    pub requests: u64,
    /// Answers `200` with a DPoP-bound access token.
    pub successes: u64,
    /// Send-to-last-body-byte time of each successful request; signing excluded.
    pub latencies: Vec<Duration>,
    /// Time spent signing assertions and proofs, summed over the phase's requests.
    pub signing: Duration,
    /// Failures by kind (`400 invalid_client`, `transport: timeout`, …).
    pub failures: BTreeMap<String, Failure>,
    /// The HTTP version of the answers, as negotiated.
    pub versions: BTreeMap<String, u64>,
}

impl Tally {
    /// Requests that did not succeed.
    #[must_use]
    pub fn errors(&self) -> u64 {
        self.failures.values().map(|f| f.count).sum()
    }

    pub(crate) fn fail(&mut self, kind: String, detail: impl FnOnce() -> String) {
        self.failures
            .entry(kind)
            .and_modify(|f| f.count += 1)
            .or_insert_with(|| Failure {
                count: 1,
                first: shorten(&detail()),
            });
    }

    /// The first failure, by kind, when there is one.
    fn first_failure(&self) -> Option<String> {
        self.failures
            .iter()
            .next()
            .map(|(kind, failure)| format!("{kind}: {}", failure.first))
    }
}

impl Merge for Tally {
    fn merge(&mut self, other: Self) {
        self.requests += other.requests;
        self.successes += other.successes;
        self.latencies.extend(other.latencies);
        self.signing += other.signing;
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
pub type Outcome = Measured<Tally>;

/// The latest `DPoP-Nonce` the server sent (RFC 9449 §8), shared by the workers; none unless
/// the server asks for nonces.
#[derive(Debug, Default)]
pub(crate) struct DpopNonce(Mutex<Option<String>>);

impl DpopNonce {
    /// The nonce to put in the next proof.
    pub(crate) fn get(&self) -> Option<String> {
        self.0.lock().ok().and_then(|nonce| nonce.clone())
    }

    /// Keeps the `DPoP-Nonce` header of an answer, if it has one.
    pub(crate) fn remember(&self, header: Option<&HeaderValue>) {
        let Some(value) = header.and_then(|v| v.to_str().ok()) else {
            return;
        };
        if let Ok(mut nonce) = self.0.lock()
            && nonce.as_deref() != Some(value)
        {
            *nonce = Some(value.to_owned());
        }
    }
}

/// What the workers share: the target, the HTTP client and the latest DPoP nonce.
#[derive(Debug)]
struct Shared {
    target: Target,
    http: reqwest::Client,
    nonce: DpopNonce,
}

/// What one request came to.
enum Answer {
    /// A DPoP-bound access token.
    Token(String),
    /// Anything else, by kind, with a detail for the report.
    Failed { kind: String, detail: String },
}

/// Signs and sends one token request, and checks its answer. Also returns the HTTP version of
/// the answer, when there was one.
async fn request(shared: &Shared, tally: &mut Tally) -> Option<(Answer, Duration, Version)> {
    let target = &shared.target;
    let signing_started = Instant::now();
    let signed = target
        .key
        .assertion(&target.client_id, &target.issuer)
        .and_then(|assertion| {
            let proof = target
                .key
                .dpop_proof(&target.token_url, shared.nonce.get().as_deref())?;
            Ok((assertion, proof))
        });
    tally.signing += signing_started.elapsed();
    let (assertion, proof) = match signed {
        Ok(signed) => signed,
        Err(error) => {
            tally.fail("client: signing failed".into(), || format!("{error:#}"));
            return None;
        }
    };

    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("scope", target.scope.as_str()),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion.as_str()),
    ];
    if let Some(resource) = &target.resource {
        form.push(("resource", resource));
    }
    let sent = Instant::now();
    let response = match shared
        .http
        .post(&target.token_url)
        .header("DPoP", proof)
        .form(&form)
        .send()
        .await
    {
        Ok(response) => response,
        Err(error) => {
            tally.fail(transport_kind(&error), || chain(&error));
            return None;
        }
    };
    let status = response.status();
    let version = response.version();
    shared.nonce.remember(response.headers().get("dpop-nonce"));
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(error) => {
            tally.fail(
                format!("{} (body: {})", status.as_u16(), transport_kind(&error)),
                || chain(&error),
            );
            return None;
        }
    };
    let latency = sent.elapsed();
    Some((check(status, &body), latency, version))
}

/// Whether an answer is a DPoP-bound token (RFC 9449 §5: `token_type` `DPoP`), and if not, its
/// kind: the status and the OAuth `error` code when there is one.
fn check(status: StatusCode, body: &[u8]) -> Answer {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    if status == StatusCode::OK {
        let token = json
            .as_ref()
            .and_then(|j| j.get("access_token"))
            .and_then(Value::as_str);
        let token_type = json
            .as_ref()
            .and_then(|j| j.get("token_type"))
            .and_then(Value::as_str);
        if let Some(token) = token.filter(|t| !t.is_empty())
            && token_type.is_some_and(|t| t.eq_ignore_ascii_case("DPoP"))
        {
            return Answer::Token(token.to_owned());
        }
        // The body may hold a token: report its shape, not its content.
        let members = json
            .as_ref()
            .and_then(Value::as_object)
            .map(|o| o.keys().cloned().collect::<Vec<_>>().join(", "))
            .unwrap_or_else(|| "not a JSON object".into());
        return Answer::Failed {
            kind: "200 without a DPoP-bound access token".into(),
            detail: format!("members: {members}; token_type: {token_type:?}"),
        };
    }
    let code = json
        .as_ref()
        .and_then(|j| j.get("error"))
        .and_then(Value::as_str);
    Answer::Failed {
        kind: match code {
            Some(code) => format!("{} {code}", status.as_u16()),
            None => status.as_u16().to_string(),
        },
        detail: String::from_utf8_lossy(body).into_owned(),
    }
}

/// One worker: requests back to back until the run ends, tallied by the phase in which each
/// started.
async fn worker(shared: Arc<Shared>, window: Window) -> Phases<Tally> {
    let mut phases = window.phases::<Tally>();
    while let Some((tally, _)) = phases.next() {
        tally.requests += 1;
        let Some((answer, latency, version)) = request(&shared, tally).await else {
            continue;
        };
        *tally.versions.entry(format!("{version:?}")).or_default() += 1;
        match answer {
            Answer::Token(_) => {
                tally.successes += 1;
                tally.latencies.push(latency);
            }
            Answer::Failed { kind, detail } => tally.fail(kind, || detail),
        }
    }
    phases
}

/// One token request that must succeed: the access token.
///
/// # Errors
/// The failure, with the server's answer or the transport error.
async fn obtain(shared: &Shared) -> anyhow::Result<String> {
    let mut tally = Tally::default();
    match request(shared, &mut tally).await {
        Some((Answer::Token(token), _, _)) => Ok(token),
        Some((Answer::Failed { kind, detail }, _, _)) => {
            bail!("{kind}: {}", shorten(&detail))
        }
        None => bail!(
            "{}",
            tally
                .first_failure()
                .unwrap_or_else(|| "unknown failure".into())
        ),
    }
}

/// `count` access tokens for `target`, from up to `concurrency` requests at a time.
///
/// # Errors
/// The first failed request, with the server's answer or the transport error.
pub async fn fetch(
    target: Target,
    http: reqwest::Client,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<String>> {
    let shared = Arc::new(Shared {
        target,
        http,
        nonce: DpopNonce::default(),
    });
    let left = Arc::new(AtomicUsize::new(count));
    let tasks: Vec<_> = (0..concurrency.clamp(1, count.max(1)))
        .map(|_| {
            let (shared, left) = (Arc::clone(&shared), Arc::clone(&left));
            tokio::spawn(async move {
                let mut tokens = Vec::new();
                while left
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_ok()
                {
                    tokens.push(obtain(&shared).await.context("a token request failed")?);
                }
                anyhow::Ok(tokens)
            })
        })
        .collect();
    let mut tokens = Vec::with_capacity(count);
    for task in tasks {
        tokens.extend(task.await.context("a token task died")??);
    }
    Ok(tokens)
}

/// Runs the load: a preflight request, then `load.concurrency` workers for the warmup and the
/// measured window. `server_pid`, when given, is the server process whose CPU time is read
/// from `/proc` around the window.
///
/// # Errors
/// When the preflight request fails or a worker task dies.
pub async fn run(
    target: Target,
    http: reqwest::Client,
    load: Load,
    server_pid: Option<u32>,
) -> anyhow::Result<Outcome> {
    let shared = Arc::new(Shared {
        target,
        http,
        nonce: DpopNonce::default(),
    });
    // One request before the run, so that a wrong client id, key, issuer or CA fails at once
    // with the server's answer instead of after a whole run of errors.
    obtain(&shared)
        .await
        .context("the first token request failed")?;

    let window = Window::starting_now(&load);
    let workers: Vec<_> = (0..load.concurrency)
        .map(|_| tokio::spawn(worker(Arc::clone(&shared), window)))
        .collect();
    window.collect(workers, server_pid).await
}

/// A short kind for a transport error.
pub(crate) fn transport_kind(error: &reqwest::Error) -> String {
    let what = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else if error.is_body() || error.is_decode() {
        "body"
    } else if error.is_request() {
        "request"
    } else {
        "other"
    };
    format!("transport: {what}")
}

/// An error with its causes, which reqwest's `Display` leaves out.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// At most [`MAX_BODY_CHARS`] characters of `text`.
pub(crate) fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_BODY_CHARS) {
        Some((cut, _)) => format!("{}…", text.get(..cut).unwrap_or(text)),
        None => text.to_owned(),
    }
}
