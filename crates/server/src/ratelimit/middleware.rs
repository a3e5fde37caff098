//! Where the limits meet requests: the [`layer`] every request passes through, and
//! [`admit_client`], which the client endpoints call once their client has authenticated.
//!
//! The layer checks the source address's bucket of the endpoint before the handler runs and, at
//! the client endpoints, *reserves* one of the address's client-authentication failures, and
//! refuses with 429 when either is empty. Otherwise it runs the handler inside a per-request
//! scope (a tokio task-local, so that handlers need no extra parameter) in which
//! [`admit_client`] gives the reservation back and checks the client's bucket, in one call to the
//! backend. Afterwards the layer settles the reservation: when the answer says client
//! authentication failed (401, or the [`ClientAuthFailed`] mark that `ErrorResponse` puts on
//! `invalid_client` and `invalid_dpop_proof`) a reservation still held is the failure's cost,
//! and a failure after it was given back (a bad DPoP proof of an authenticated client) spends one
//! more; any other answer gives a held reservation back. It then turns the answer into a 429 when
//! the client's quota refused it, and writes the `RateLimit` fields of every bucket checked.
//!
//! Why reserve: if the budget were only looked at on the way in and spent on the way out, an
//! address with one failure left could send a thousand requests at once and have every one of
//! them verified before the first failure was counted. With the reservation an address never has
//! more authentications in progress than failures left, so it never gets more failures than its
//! budget. A client that authenticates holds the reservation only while it does. A request the
//! client abandons (the connection closes and the handler is dropped) gives its reservation back:
//! otherwise a slow server would turn its own timeouts into lockouts of honest clients.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use portcullis_core::client::Client;
use portcullis_core::error::{ErrorCode, OAuthError};
use portcullis_core::ratelimit::Op;

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
    /// Every bucket checked, in order; the auth-failure bucket's entry is the latest word on it.
    applied: Mutex<Vec<Applied>>,
    /// An auth failure of the source is reserved and not yet given back or kept.
    reserved: AtomicBool,
    /// The client's quota refused the request.
    refused: AtomicBool,
    /// The shared backend was down and `on_backend_error = "deny"`.
    unavailable: AtomicBool,
}

impl RequestScope {
    fn applied(&self) -> std::sync::MutexGuard<'_, Vec<Applied>> {
        self.applied.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `applied`: the auth-failure bucket's entry replaces the earlier one; others are
    /// added.
    fn record(&self, applied: Vec<Applied>) {
        let mut all = self.applied();
        for a in applied {
            match all
                .iter_mut()
                .find(|b| a.policy == AUTH_FAILURES_POLICY && b.policy == a.policy)
            {
                Some(slot) => *slot = a,
                None => all.push(a),
            }
        }
    }
}

/// Gives a request's reservation back if it is still held when the request is dropped before
/// the layer could settle it (the client went away).
struct Reservation {
    limiter: Arc<RateLimiter>,
    scope: Arc<RequestScope>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.scope.reserved.swap(false, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (limiter, scope) = (self.limiter.clone(), self.scope.clone());
        runtime.spawn(async move {
            settle(&limiter, &scope, Op::Refund).await;
        });
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
    let reserves = endpoint.counts_auth_failures();
    if reserves {
        checks.push(limiter.auth_failure_check(&source, Op::Spend));
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
        reserved: AtomicBool::new(reserves),
        refused: AtomicBool::new(false),
        unavailable: AtomicBool::new(false),
    });
    let reservation = Reservation {
        limiter: limiter.clone(),
        scope: scope.clone(),
    };
    let mut response = SCOPE.scope(scope.clone(), next.run(request)).await;

    if reserves {
        let held = scope.reserved.swap(false, Ordering::AcqRel);
        match (failed_authentication(&response), held) {
            // The reservation is the failure's cost.
            (true, true) | (false, false) => {}
            // Failed after authenticating (a bad DPoP proof): one more.
            (true, false) => settle(&limiter, &scope, Op::Spend).await,
            (false, true) => settle(&limiter, &scope, Op::Refund).await,
        }
    }
    drop(reservation);
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

/// Spends one of the source address's auth failures, or gives a reservation back; the bucket
/// as it then is replaces the earlier one in the answer's fields. The next request of an address
/// whose budget a spend empties is refused before authentication.
async fn settle(limiter: &RateLimiter, scope: &RequestScope, op: Op) {
    let check = limiter.auth_failure_check(&scope.source, op);
    // With `on_backend_error = "deny"` and the backend down, this goes unrecorded: the next
    // request is refused anyway.
    if let Ok(applied) = limiter.check(std::slice::from_ref(&check)).await {
        scope.record(applied);
    }
}

/// The request's caller has authenticated at an endpoint without a client quota (`/events`,
/// whose caller presents an access token): its reserved failure goes back now rather than when
/// the answer is done, so that a long poll does not hold it for its whole wait.
pub async fn caller_authenticated(state: &AppState) {
    let limiter = &state.rate_limits;
    if !limiter.enabled() {
        return;
    }
    let Ok(scope) = SCOPE.try_with(Arc::clone) else {
        return;
    };
    if scope.reserved.swap(false, Ordering::AcqRel) {
        settle(limiter, &scope, Op::Refund).await;
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
    let scope = SCOPE.try_with(Arc::clone).ok();
    let source = scope.as_ref().map_or(SourceIp::UNKNOWN, |s| s.source);
    let mut checks = vec![limiter.client_check(client, endpoint)];
    // The client authenticated: its address's reserved failure goes back in the same call.
    if scope
        .as_ref()
        .is_some_and(|s| s.reserved.swap(false, Ordering::AcqRel))
    {
        checks.push(limiter.auth_failure_check(&source, Op::Refund));
    }
    match limiter.check(&checks).await {
        Ok(applied) => {
            let refused = applied.iter().any(|a| !a.outcome.allowed);
            if let Some(scope) = &scope {
                scope.record(applied);
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
            if let Some(check) = checks.first() {
                limiter
                    .tripped(
                        endpoint,
                        check,
                        &source,
                        Some(client.client_id.as_str()),
                        scope.as_ref().and_then(|s| s.request_id.as_deref()),
                    )
                    .await;
            }
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
                // Not given back: the layer tries again when the request ends.
                if checks.len() > 1 {
                    scope.reserved.store(true, Ordering::Release);
                }
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
