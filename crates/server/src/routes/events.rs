//! `POST /events`: poll delivery of the revocation Security Event Tokens (RFC 8936) to the
//! bank's resource servers.
//!
//! The caller is a resource server's client with one of our sender-constrained access tokens
//! (DPoP or mTLS, as at `/userinfo`) whose audience is `{issuer}/events` and whose scope is
//! `revocation_events` (client credentials; the client registers the scope in its `scope`
//! metadata). The client must be the `client_id` of at least one registered resource server;
//! it receives the events of the grants and tokens whose audience is one of its resources
//! (`crate::revocation`).
//!
//! The body is a JSON object (RFC 8936 §2.4): `maxEvents` (0 to [`MAX_EVENTS`], default
//! [`DEFAULT_MAX_EVENTS`]; 0 only acknowledges), `returnImmediately` (default `false`), `ack`
//! (`jti`s of SETs processed) and `setErrs` (`jti` → `{err, description}` of SETs the recipient
//! could not process: logged without the SET, and acknowledged, RFC 8936 §2.4.4). What is
//! acknowledged is removed first, then the oldest unacknowledged events are answered, as
//! `{"sets": {jti: SET}, "moreAvailable": bool}`. An event not acknowledged is delivered again.
//!
//! Long polling: when nothing is pending and `returnImmediately` is false, the answer waits until
//! an event arrives for anyone (then reads again) or `events.long_poll_secs` pass, and then says
//! what there is, possibly nothing ([`crate::feed`] wakes it, from any replica).
//!
//! Errors: a missing, invalid, expired or unbound token, a bad DPoP proof or a token for another
//! audience is 401 with an RFC 6750 / RFC 9449 challenge and `error`/`error_description`, and a
//! token without `revocation_events` 403 `insufficient_scope`, as at every protected resource of
//! this server. The feed's own answers use RFC 8936 §2.4.4's `err`/`description` with codes of
//! the Security Event Token error registry (RFC 8935 §7.1): a client that is no resource
//! server's is 403 `access_denied` (it is authenticated and holds the scope, but is not an
//! entity the feed delivers to: RFC 6750 has no code for that, and `insufficient_scope` would
//! send it after a scope that cannot help), and a malformed request 400 `invalid_request`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use axum::Json;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use portcullis_core::client::Client;
use portcullis_core::store::Poll;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::app::AppState;
use crate::protected;
use crate::routes::token::service_audience;

/// The path.
pub const PATH: &str = "/events";
/// The scope a poller's token must carry.
pub const SCOPE: &str = "revocation_events";
/// `maxEvents` when the request does not say.
pub const DEFAULT_MAX_EVENTS: u32 = 20;
/// The largest `maxEvents` accepted.
pub const MAX_EVENTS: u32 = 100;
/// How much of a recipient's error description goes into the log.
const LOGGED_DESCRIPTION_CHARS: usize = 200;

/// An RFC 8936 §2.4.4 error: `err` and `description`, never cached.
fn poll_error(status: StatusCode, err: &str, description: impl Into<String>) -> Response {
    no_store(
        (
            status,
            Json(json!({ "err": err, "description": description.into() })),
        )
            .into_response(),
    )
}

fn invalid_request(description: impl Into<String>) -> Response {
    poll_error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

fn server_error(context: &str, error: &dyn std::fmt::Display) -> Response {
    tracing::error!(%error, "event feed: {context}");
    poll_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "the server could not complete the request",
    )
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An error a recipient reports for a SET (RFC 8936 §2.4.4, RFC 8935 §2.4).
#[derive(Debug, Deserialize)]
struct SetError {
    err: String,
    #[serde(default)]
    description: Option<String>,
}

/// The poll request (RFC 8936 §2.4); `null` members count as absent, unknown ones are ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PollRequest {
    #[serde(default)]
    max_events: Option<u32>,
    #[serde(default)]
    return_immediately: Option<bool>,
    #[serde(default)]
    ack: Option<Vec<String>>,
    #[serde(default)]
    set_errs: Option<BTreeMap<String, SetError>>,
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// The poll request, or why it is malformed.
fn parse(headers: &HeaderMap, body: &[u8]) -> Result<PollRequest, String> {
    if !is_json(headers) {
        return Err("the poll request must be a JSON object sent with Content-Type: application/json (RFC 8936 §2.4)".into());
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "the body is not JSON (line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    if !value.is_object() {
        return Err("the body must be a JSON object (RFC 8936 §2.4)".into());
    }
    let request: PollRequest = serde_json::from_value(value).map_err(|e| {
        format!("the poll request's members are not as RFC 8936 §2.4 defines them: {e}")
    })?;
    if request.max_events.is_some_and(|m| m > MAX_EVENTS) {
        return Err(format!("maxEvents must be 0 to {MAX_EVENTS}"));
    }
    Ok(request)
}

/// Whether `client` registered `scope` (and so may still use it: a scope removed from the
/// registration ends its tokens' use here at once).
fn registered(client: &Client, scope: &str) -> bool {
    client
        .metadata
        .get("scope")
        .and_then(Value::as_str)
        .is_some_and(|s| s.split(' ').any(|s| s == scope))
}

/// `POST /events`.
pub async fn post(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let audience = service_audience(&state.urls.issuer, PATH);
    let caller = match protected::authenticate(&state, &parts, &audience, "the event feed").await {
        Ok(caller) => caller,
        Err(refusal) => return refusal.into_response(),
    };
    // Authenticated: the address's reserved auth failure goes back before any long wait.
    crate::ratelimit::caller_authenticated(&state).await;
    if !caller.scopes().iter().any(|s| s == SCOPE) || !registered(&caller.client, SCOPE) {
        return protected::insufficient_scope(
            SCOPE,
            format!("the event feed needs a token with the {SCOPE} scope"),
            caller.dpop(),
        );
    }
    let client_id = caller.client.client_id;
    match state.resources.snapshot().await {
        Ok(snapshot) => {
            if !snapshot.has_client(&client_id) {
                return poll_error(
                    StatusCode::FORBIDDEN,
                    "access_denied",
                    "the event feed delivers only to the clients of registered resource servers",
                );
            }
        }
        Err(e) => return server_error("resource servers", &e),
    }

    let Ok(body) = axum::body::to_bytes(body, state.config.limits.max_body_bytes).await else {
        return invalid_request("the body could not be read (larger than limits.max_body_bytes?)");
    };
    let request = match parse(&parts.headers, &body) {
        Ok(request) => request,
        Err(description) => return invalid_request(description),
    };

    // Acknowledge first (RFC 8936 §2.4): what was processed, and what could not be (reported,
    // so that it is not delivered again forever).
    let mut done: BTreeSet<String> = request.ack.unwrap_or_default().into_iter().collect();
    for (jti, error) in request.set_errs.unwrap_or_default() {
        let description: String = error
            .description
            .unwrap_or_default()
            .chars()
            .take(LOGGED_DESCRIPTION_CHARS)
            .collect();
        tracing::warn!(
            client_id = %client_id,
            jti = %jti,
            err = %error.err.chars().take(64).collect::<String>(),
            description = %description,
            "a resource server could not process a security event"
        );
        done.insert(jti);
    }
    let revocations = state.store.revocations();
    if !done.is_empty() {
        let done: Vec<String> = done.into_iter().collect();
        if let Err(e) = revocations.acknowledge(&client_id, &done).await {
            return server_error("acknowledging", &e);
        }
    }

    let max = request.max_events.unwrap_or(DEFAULT_MAX_EVENTS);
    // maxEvents 0 only acknowledges: nothing to wait for.
    let wait = !request.return_immediately.unwrap_or(false) && max > 0;
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(state.config.events.long_poll_secs);
    // Subscribed before the first read, so an event committed after it wakes this poll.
    let mut waiter = wait.then(|| (state.feed.subscribe(), state.metrics.poll_waiting()));
    let poll: Poll = loop {
        let poll = match revocations.poll(&client_id, max).await {
            Ok(poll) => poll,
            Err(e) => return server_error("polling", &e),
        };
        let Some((w, _)) = waiter.as_mut() else {
            break poll;
        };
        if !poll.events.is_empty() || poll.more || w.closing() {
            break poll;
        }
        tokio::select! {
            biased;
            () = w.changed() => {}
            // Time is up: read once more, and answer whatever there is.
            () = tokio::time::sleep_until(deadline) => waiter = None,
        }
    };
    let sets: Map<String, Value> = poll
        .events
        .into_iter()
        .map(|event| (event.jti, Value::String(event.set)))
        .collect();
    no_store(Json(json!({ "sets": sets, "moreAvailable": poll.more })).into_response())
}
