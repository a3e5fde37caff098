//! Where the limits meet requests: the [`layer`] every request passes through, and
//! [`admit_client`], which the client endpoints call once their client has authenticated.
//!
//! The layer checks the source address's bucket of the endpoint (and, at the client endpoints,
//! that the address still has client-authentication failures to spend) before the handler runs,
//! and refuses with 429 when one is empty. Otherwise it runs the handler inside a per-request
//! scope (a tokio task-local, so that handlers need no extra parameter) in which
//! [`admit_client`] records the client's bucket. Afterwards it spends one auth failure when the
//! answer says client authentication failed (401, or the [`ClientAuthFailed`] mark that
//! `ErrorResponse` puts on `invalid_client` and `invalid_dpop_proof`), turns the answer into a 429
//! when the client's quota refused it, and writes the `RateLimit` fields of every bucket checked.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use portcullis_core::client::Client;
use portcullis_core::error::{ErrorCode, OAuthError};

use super::headers::{self, Applied};
use super::{AUTH_FAILURES_POLICY, BACKEND_RETRY, Endpoint, RateLimiter};
use crate::app::AppState;
use crate::routes::oauth_error::ErrorResponse;
use crate::source_ip::SourceIp;

/// The mark of an answer whose request failed client authentication (a bad client assertion,
/// secret or certificate, or a bad DPoP proof): the layer spends one of the source address's
/// auth failures for it. A response extension, never sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAuthFailed;

tokio::task_local! {
    /// The limits of the request being handled.
    static SCOPE: Arc<RequestScope>;
}

/// What the layer and the handler learn about one request's limits.
#[derive(Debug)]
struct RequestScope {
    source: SourceIp,
    request_id: Option<String>,
    /// Every bucket checked, in order; the auth-failure probe is replaced by the spend.
    applied: Mutex<Vec<Applied>>,
    /// The client's quota refused the request.
    refused: AtomicBool,
    /// The shared backend was down and `on_backend_error = "deny"`.
    unavailable: AtomicBool,
}

impl RequestScope {
    fn applied(&self) -> std::sync::MutexGuard<'_, Vec<Applied>> {
        self.applied.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Middleware: the limits of every request (see the module documentation).
pub async fn layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limiter = state.rate_limits.clone();
    if !limiter.enabled() {
        return next.run(request).await;
    }
    let path = request.uri().path();
    let Some(endpoint) = Endpoint::classify(request.method(), path) else {
        return next.run(request).await;
    };
    let page = endpoint.is_page(path);
    // Only a router called without connection information (unit tests) lacks the source: it
    // then counts as one shared address.
    let source = request
        .extensions()
        .get::<SourceIp>()
        .copied()
        .unwrap_or(SourceIp::UNKNOWN);
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);

    let mut checks = vec![limiter.ip_check(endpoint, &source)];
    if endpoint.counts_auth_failures() {
        checks.push(limiter.auth_failure_check(&source, false));
    }
    let applied = match limiter.check(&checks).await {
        Ok(applied) => applied,
        Err(_) => return unavailable(&state, page),
    };
    if applied.iter().any(|a| !a.outcome.allowed) {
        for (check, a) in checks.iter().zip(&applied) {
            if !a.outcome.allowed {
                limiter
                    .tripped(endpoint, check, &source, None, request_id.as_deref())
                    .await;
            }
        }
        return too_many(&state, page, &applied);
    }

    let scope = Arc::new(RequestScope {
        source,
        request_id,
        applied: Mutex::new(applied),
        refused: AtomicBool::new(false),
        unavailable: AtomicBool::new(false),
    });
    let mut response = SCOPE.scope(scope.clone(), next.run(request)).await;

    if endpoint.counts_auth_failures() && failed_authentication(&response) {
        spend_auth_failure(&limiter, &scope).await;
    }
    let applied = scope.applied().clone();
    if scope.refused.load(Ordering::Relaxed) {
        return too_many(&state, page, &applied);
    }
    if scope.unavailable.load(Ordering::Relaxed) {
        retry_after(&mut response, BACKEND_RETRY.as_secs());
    }
    headers::insert(response.headers_mut(), &applied);
    response
}

/// Whether the answer says the client failed to authenticate: marked so, or a 401 (the
/// protected-resource refusals of `/events`) other than a request for a fresh DPoP nonce, which
/// is the normal course of a client whose nonce is stale (RFC 9449 §9).
pub(super) fn failed_authentication(response: &Response) -> bool {
    if response.extensions().get::<ClientAuthFailed>().is_some() {
        return true;
    }
    response.status() == StatusCode::UNAUTHORIZED
        && !response
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.contains("use_dpop_nonce")))
}

/// Spends one of the source address's auth failures; the bucket as it then is replaces the
/// probe's in the answer's fields. The next request of an address whose budget this empties is
/// refused before authentication.
async fn spend_auth_failure(limiter: &RateLimiter, scope: &RequestScope) {
    let check = limiter.auth_failure_check(&scope.source, true);
    // With `on_backend_error = "deny"` and the backend down, the failure goes uncounted: the
    // next request is refused anyway.
    let Ok(spent) = limiter.check(std::slice::from_ref(&check)).await else {
        return;
    };
    let Some(spent) = spent.into_iter().next() else {
        return;
    };
    let mut applied = scope.applied();
    match applied
        .iter_mut()
        .find(|a| a.policy == AUTH_FAILURES_POLICY)
    {
        Some(slot) => *slot = spent,
        None => applied.push(spent),
    }
}

/// Checks an authenticated `client`'s bucket at `endpoint`. Called by the handlers of `/token`,
/// `/par`, `/introspect` and `/revoke` right after client authentication, and never before: a
/// `client_id` that did not authenticate must not spend its client's quota.
///
/// # Errors
/// An error answer when the client's quota is spent (the layer turns it into the 429 with its
/// fields) or the shared backend is down and `on_backend_error = "deny"` (503
/// `temporarily_unavailable`).
pub async fn admit_client(
    state: &AppState,
    client: &Client,
    endpoint: crate::client_auth::Endpoint,
) -> Result<(), ErrorResponse> {
    let limiter = &state.rate_limits;
    if !limiter.enabled() {
        return Ok(());
    }
    let check = limiter.client_check(client, endpoint);
    let scope = SCOPE.try_with(Arc::clone).ok();
    match limiter.check(std::slice::from_ref(&check)).await {
        Ok(applied) => {
            let refused = applied.iter().any(|a| !a.outcome.allowed);
            if let Some(scope) = &scope {
                scope.applied().extend(applied);
            }
            if !refused {
                return Ok(());
            }
            let endpoint = match endpoint {
                crate::client_auth::Endpoint::Token => Endpoint::Token,
                crate::client_auth::Endpoint::Par => Endpoint::Par,
                crate::client_auth::Endpoint::Introspect => Endpoint::Introspect,
                crate::client_auth::Endpoint::Revoke => Endpoint::Revoke,
            };
            let source = scope.as_ref().map_or(SourceIp::UNKNOWN, |s| s.source);
            limiter
                .tripped(
                    endpoint,
                    &check,
                    &source,
                    Some(client.client_id.as_str()),
                    scope.as_ref().and_then(|s| s.request_id.as_deref()),
                )
                .await;
            if let Some(scope) = &scope {
                scope.refused.store(true, Ordering::Relaxed);
            }
            Err(ErrorResponse::new(OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "the client's rate limit at this endpoint is exceeded",
            )))
        }
        Err(_) => {
            if let Some(scope) = &scope {
                scope.unavailable.store(true, Ordering::Relaxed);
            }
            Err(ErrorResponse::new(unavailable_error()))
        }
    }
}

fn unavailable_error() -> OAuthError {
    OAuthError::new(
        ErrorCode::TemporarilyUnavailable,
        "the rate-limit service is unavailable: try again shortly",
    )
}

fn retry_after(response: &mut Response, seconds: u64) {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
}

/// "30 seconds", "2 minutes": how long the customer's page says to wait.
fn wait(seconds: u64) -> String {
    match seconds {
        0 | 1 => "a second".to_owned(),
        s if s < 120 => format!("{s} seconds"),
        s => format!("{} minutes", s.div_ceil(60)),
    }
}

/// The 429 of a request some bucket refused, in the endpoint's format, with `Retry-After` and
/// the fields of every bucket checked.
fn too_many(state: &AppState, page: bool, applied: &[Applied]) -> Response {
    let seconds = headers::retry_after(applied);
    let mut response = if page {
        crate::routes::authorize::error_page(
            state,
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            &format!(
                "Too many requests came from your network. Please wait {} and try again.",
                wait(seconds)
            ),
        )
    } else {
        let refused: Vec<&str> = applied
            .iter()
            .filter(|a| !a.outcome.allowed)
            .map(|a| a.policy)
            .collect();
        // RFC 6749 has no error code for rate limits. `temporarily_unavailable` (RFC 6749
        // §4.1.2.1: "unable to handle the request due to a temporary overloading") says "try
        // again later", which is what the client should do, and the 429 and Retry-After say
        // when. Not `slow_down`: RFC 8628 §3.5 and CIBA define it for polling grants, where it
        // tells the poller to lengthen its interval by five seconds. Not `invalid_request` or
        // `invalid_client`: the request and the credentials may be fine.
        let error = OAuthError::new(
            ErrorCode::TemporarilyUnavailable,
            format!(
                "rate limit exceeded ({}): retry after {seconds} seconds",
                refused.join(", ")
            ),
        );
        let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(&error)).into_response();
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    };
    retry_after(&mut response, seconds);
    headers::insert(response.headers_mut(), applied);
    response
}

/// The 503 of a request that could not be checked (`on_backend_error = "deny"`).
fn unavailable(state: &AppState, page: bool) -> Response {
    let mut response = if page {
        crate::routes::authorize::error_page(
            state,
            StatusCode::SERVICE_UNAVAILABLE,
            "Service unavailable",
            "The bank cannot take this request right now. Please try again in a moment.",
        )
    } else {
        ErrorResponse::new(unavailable_error()).into_response()
    };
    retry_after(&mut response, BACKEND_RETRY.as_secs());
    response
}
