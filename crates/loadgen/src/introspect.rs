//! `portcullis-load introspect`: a resource server introspecting a hot set of access tokens
//! (RFC 7662) as fast as N workers can ask, for a warmup and then a measured window.
//!
//! Each worker is one keep-alive HTTP/1.1 connection to the mTLS listener, authenticated by the
//! resource server's client certificate at the handshake (`self_signed_tls_client_auth` or
//! `tls_client_auth`, RFC 8705 §2), so a request carries nothing but `token=…&client_id=…`: no
//! client assertion to sign per request. The workers go round the hot set, each from its own place in
//! it. Every answer must be `200` with `"active": true`; anything else is a failure, counted by
//! kind.
//!
//! With a revocation check, one token of the set is revoked at `/revoke` (by the client it was
//! issued to) half-way through the measured window, while the load runs. Every introspection of
//! it that started after the revocation's answer arrived must then say `"active": false`; one
//! that says `true` is a failure. Answers to introspections in flight while the revocation was
//! made may say either; before the revocation was sent, only `true` is right.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

use crate::conn::{Connection, Endpoint, Fault};
use crate::key::ClientKey;
use crate::token::{JWT_BEARER, Tally as Answers, chain, shorten, transport_kind};
use crate::window::{Load, Measured, Merge, Phases, Window};

/// How long a worker waits after a failed connection attempt before the next.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// What the workers ask.
#[derive(Debug)]
pub enum Ask {
    /// `POST token=…&client_id=…` for each token of the hot set in turn, expecting `"active": true`.
    Introspect {
        /// The hot set.
        tokens: Vec<String>,
        /// The revocation check, if asked for.
        revocation: Option<Box<Revocation>>,
    },
    /// `GET` of another path on the same listener and connections, expecting `200`: the TLS
    /// and HTTP ceiling for the same load.
    Ceiling(Endpoint),
}

/// How to revoke a token of the hot set: as the client it was issued to, at `/revoke`, with a
/// `private_key_jwt` assertion (RFC 7009).
#[derive(Debug)]
pub struct Revocation {
    /// The revocation endpoint.
    pub url: String,
    /// The issuer: the assertion's audience.
    pub issuer: String,
    /// The client the tokens were issued to.
    pub client_id: String,
    /// Its key.
    pub key: ClientKey,
    /// An HTTPS client that trusts the server's CA.
    pub http: reqwest::Client,
}

/// The load.
#[derive(Debug)]
pub struct Target {
    /// The introspection endpoint (on the mTLS listener), with the client certificate.
    pub endpoint: Endpoint,
    /// The resource server's client: the `client_id` that goes with each token (RFC 8705 §2).
    pub client_id: String,
    /// What each request asks.
    pub ask: Ask,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// The answers to introspections of the revoked token, by when they were asked.
#[derive(Debug, Default, Clone, Copy)]
pub struct RevokedAnswers {
    /// `active: true`, asked before the revocation's answer arrived.
    pub active_before: u64,
    /// `active: false`, in flight while the revocation was made.
    pub inactive_across: u64,
    /// `active: false`, asked after the revocation's answer arrived: as it must be.
    pub inactive_after: u64,
    /// `active: true`, asked after the revocation's answer arrived: stale, a failure.
    pub active_after: u64,
}

/// One phase's answers, and those about the revoked token in particular.
#[derive(Debug, Default)]
pub struct Tally {
    /// Every answer: successes are the right ones (`active` as it must be), with their latency.
    pub answers: Answers,
    /// The revoked token's.
    pub revoked: RevokedAnswers,
}

impl Merge for Tally {
    fn merge(&mut self, other: Self) {
        self.answers.merge(other.answers);
        let (mine, theirs) = (&mut self.revoked, other.revoked);
        mine.active_before += theirs.active_before;
        mine.inactive_across += theirs.inactive_across;
        mine.inactive_after += theirs.inactive_after;
        mine.active_after += theirs.active_after;
    }
}

/// How the revocation went.
#[derive(Debug, Clone)]
pub struct Revoked {
    /// When it was sent, from the start of the measured window.
    pub at: Duration,
    /// From sending it to its answer.
    pub took: Duration,
    /// The revocation endpoint's answer, when it was not `200`, or the transport error.
    pub failure: Option<String>,
}

/// The outcome of a run.
#[derive(Debug)]
pub struct Outcome {
    /// The tallies, window and CPU use.
    pub run: Measured<Tally>,
    /// The request, as the report names it.
    pub label: String,
    /// How many tokens the workers went round (0 for the ceiling).
    pub hot_set: usize,
    /// The revocation, when the check was asked for.
    pub revocation: Option<Revoked>,
}

/// When the revocation was sent and when its answer arrived.
#[derive(Debug, Default)]
struct Clock {
    sent: OnceLock<Instant>,
    answered: OnceLock<Instant>,
}

/// What the workers share.
#[derive(Debug)]
struct Shared {
    endpoint: Endpoint,
    /// The form body of each token of the hot set; empty for the ceiling.
    bodies: Vec<Bytes>,
    ceiling: Option<Endpoint>,
    timeout: Duration,
    clock: Clock,
}

/// The token of the hot set that the revocation check revokes.
const REVOKED: usize = 0;

/// The protocol of every answer, as the report names it.
const HTTP_1_1: &str = "HTTP/1.1";

/// What an answer says.
enum Verdict {
    /// `200` with `"active": true` (or `200` for the ceiling).
    Active,
    /// `200` with `"active": false`.
    Inactive,
    /// Anything else, by kind, with a detail for the report.
    Failed { kind: String, detail: String },
}

/// The one member of an introspection answer that matters here (RFC 7662 §2.2).
#[derive(Deserialize)]
struct Introspection {
    active: bool,
}

fn verdict(status: StatusCode, body: &[u8], ceiling: bool) -> Verdict {
    if status == StatusCode::OK {
        if ceiling {
            return Verdict::Active;
        }
        return match serde_json::from_slice::<Introspection>(body) {
            Ok(Introspection { active: true }) => Verdict::Active,
            Ok(Introspection { active: false }) => Verdict::Inactive,
            Err(error) => Verdict::Failed {
                kind: "200 without a boolean active".into(),
                detail: error.to_string(),
            },
        };
    }
    let code = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|json| json.get("error").and_then(Value::as_str).map(str::to_owned));
    Verdict::Failed {
        kind: match code {
            Some(code) => format!("{} {code}", status.as_u16()),
            None => status.as_u16().to_string(),
        },
        detail: String::from_utf8_lossy(body).into_owned(),
    }
}

impl Shared {
    fn request(&self, index: usize) -> Request<Full<Bytes>> {
        match (&self.ceiling, self.bodies.get(index)) {
            (Some(ceiling), _) => ceiling.get(),
            (None, Some(body)) => self.endpoint.post_form(body.clone()),
            (None, None) => self.endpoint.post_form(Bytes::new()),
        }
    }

    /// Tallies the verdict on the introspection of token `index`, sent at `sent` and answered
    /// at `answered`.
    fn judge(
        &self,
        tally: &mut Tally,
        index: usize,
        verdict: Verdict,
        sent: Instant,
        answered: Instant,
    ) {
        let revocation_sent = self.clock.sent.get().is_some_and(|&at| at <= answered);
        let asked_after = self.clock.answered.get().is_some_and(|&done| done <= sent);
        let revoked = index == REVOKED && self.ceiling.is_none();
        let right = match (verdict, revoked) {
            (Verdict::Failed { kind, detail }, _) => {
                tally.answers.fail(kind, || detail);
                return;
            }
            (Verdict::Active, false) => true,
            (Verdict::Inactive, false) => {
                tally
                    .answers
                    .fail("200 active:false for a live token".into(), || {
                        format!("token #{index} of the hot set")
                    });
                false
            }
            (Verdict::Active, true) if asked_after => {
                tally.revoked.active_after += 1;
                tally.answers.fail(
                    "200 active:true for a token whose revocation had been answered".into(),
                    || format!("token #{index}, asked after the revocation was answered"),
                );
                false
            }
            (Verdict::Active, true) => {
                tally.revoked.active_before += 1;
                true
            }
            (Verdict::Inactive, true) if asked_after => {
                tally.revoked.inactive_after += 1;
                true
            }
            (Verdict::Inactive, true) if revocation_sent => {
                tally.revoked.inactive_across += 1;
                true
            }
            (Verdict::Inactive, true) => {
                tally.answers.fail(
                    "200 active:false before the revocation was sent".into(),
                    || format!("token #{index} of the hot set"),
                );
                false
            }
        };
        if right {
            tally.answers.successes += 1;
            tally.answers.latencies.push(answered - sent);
        }
    }
}

/// One worker: one connection (made again after a failure), requests back to back until the run
/// ends, going round the hot set from `first`.
async fn worker(shared: Arc<Shared>, first: usize, window: Window) -> Phases<Tally> {
    let mut phases = window.phases::<Tally>();
    let mut connection: Option<Connection> = None;
    let tokens = shared.bodies.len().max(1);
    let mut next = first % tokens;
    while let Some((tally, _)) = phases.next() {
        let index = next;
        next = (next + 1) % tokens;
        tally.answers.requests += 1;
        let open = match connection.as_mut() {
            Some(open) => open,
            None => match shared.endpoint.connect().await {
                Ok(made) => connection.insert(made),
                Err(fault) => {
                    tally.answers.fail(fault.kind().into(), || fault.detail());
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                    continue;
                }
            },
        };
        let sent = Instant::now();
        match open.send(shared.request(index), shared.timeout).await {
            Ok((status, body)) => {
                let answered = Instant::now();
                match tally.answers.versions.get_mut(HTTP_1_1) {
                    Some(count) => *count += 1,
                    None => drop(tally.answers.versions.insert(HTTP_1_1.into(), 1)),
                }
                let verdict = verdict(status, &body, shared.ceiling.is_some());
                shared.judge(tally, index, verdict, sent, answered);
            }
            Err(fault) => {
                tally.answers.fail(fault.kind().into(), || fault.detail());
                connection = None;
            }
        }
    }
    phases
}

/// Revokes token `token` at `at`, recording when the revocation was sent and answered.
async fn revoke(
    shared: Arc<Shared>,
    revocation: Revocation,
    token: String,
    at: Instant,
    measure_from: Instant,
) -> Revoked {
    tokio::time::sleep_until(at).await;
    let assertion = match revocation
        .key
        .assertion(&revocation.client_id, &revocation.issuer)
    {
        Ok(assertion) => assertion,
        Err(error) => {
            return Revoked {
                at: at - measure_from,
                took: Duration::ZERO,
                failure: Some(format!("signing the assertion: {error:#}")),
            };
        }
    };
    let form = [
        ("token", token.as_str()),
        ("token_type_hint", "access_token"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion.as_str()),
    ];
    let request = revocation.http.post(&revocation.url).form(&form);
    let sent = Instant::now();
    let _ = shared.clock.sent.set(sent);
    let result = match request.send().await {
        Ok(response) => {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            (status == StatusCode::OK)
                .then_some(())
                .ok_or_else(|| format!("{}: {}", status.as_u16(), shorten(&body)))
        }
        Err(error) => Err(format!("{}: {}", transport_kind(&error), chain(&error))),
    };
    let answered = Instant::now();
    if result.is_ok() {
        let _ = shared.clock.answered.set(answered);
    }
    Revoked {
        at: sent - measure_from,
        took: answered - sent,
        failure: result.err(),
    }
}

/// One request before the run on a connection of its own, so that a wrong client, certificate,
/// token or CA fails at once with the server's answer instead of after a whole run of errors.
///
/// # Errors
/// The failure, with the server's answer or the transport error.
async fn preflight(shared: &Shared) -> anyhow::Result<()> {
    let fail = |fault: Fault| anyhow::anyhow!("{}: {}", fault.kind(), fault.detail());
    let mut connection = shared.endpoint.connect().await.map_err(fail)?;
    let (status, body) = connection
        .send(shared.request(0), shared.timeout)
        .await
        .map_err(fail)?;
    match verdict(status, &body, shared.ceiling.is_some()) {
        Verdict::Active => Ok(()),
        Verdict::Inactive => bail!("200 active:false for token #0 of the hot set"),
        Verdict::Failed { kind, detail } => bail!("{kind}: {}", shorten(&detail)),
    }
}

/// Runs the load: a preflight request, then `load.concurrency` workers (with the revocation
/// half-way through the measured window, when asked for). `server_pid`, when given, is the
/// server process whose CPU time is read from `/proc` around the window.
///
/// # Errors
/// When the preflight request fails or a task dies.
pub async fn run(target: Target, load: Load, server_pid: Option<u32>) -> anyhow::Result<Outcome> {
    let Target {
        endpoint,
        client_id,
        ask,
        timeout,
    } = target;
    let (tokens, revocation, ceiling) = match ask {
        Ask::Introspect { tokens, revocation } => (tokens, revocation, None),
        Ask::Ceiling(ceiling) => (Vec::new(), None, Some(ceiling)),
    };
    let label = match &ceiling {
        Some(_) => "GET (the ceiling)".to_owned(),
        None => "POST introspection".to_owned(),
    };
    let bodies = tokens
        .iter()
        .map(|token| {
            let body = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("token", token)
                .append_pair("client_id", &client_id)
                .finish();
            Bytes::from(body)
        })
        .collect();
    let shared = Arc::new(Shared {
        endpoint,
        bodies,
        ceiling,
        timeout,
        clock: Clock::default(),
    });
    preflight(&shared)
        .await
        .context("the first introspection failed")?;

    let window = Window::starting_now(&load);
    let hot_set = tokens.len();
    let revoker = match (revocation, tokens.into_iter().nth(REVOKED)) {
        (Some(revocation), Some(token)) => Some(tokio::spawn(revoke(
            Arc::clone(&shared),
            *revocation,
            token,
            window.measure_from + load.duration / 2,
            window.measure_from,
        ))),
        _ => None,
    };
    let workers: Vec<_> = (0..load.concurrency)
        .map(|worker_index| {
            let first = worker_index * hot_set / load.concurrency.max(1);
            tokio::spawn(worker(Arc::clone(&shared), first, window))
        })
        .collect();
    let run = window.collect(workers, server_pid).await?;
    let revocation = match revoker {
        Some(task) => Some(task.await.context("the revocation task died")?),
        None => None,
    };
    Ok(Outcome {
        run,
        label,
        hot_set,
        revocation,
    })
}
