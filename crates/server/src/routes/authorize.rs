//! The authorization endpoint and the customer's pages (FAPI2 SP 5.3.2.2, RFC 9126 §4, OIDC
//! Core §3.1.2): `GET /authorize` takes only `client_id` and a pushed `request_uri`; the customer
//! logs in (password, then a TOTP code when enrolled or when strong authentication is asked
//! for), reviews what the client asks for, and approves or refuses; the client gets a code, or an
//! error, by a 303 redirect carrying `state` and `iss` (RFC 9207), signed as a JWT for JARM.
//!
//! Nothing is redirected before the `request_uri` has been found and its client matched: until
//! then every problem is an error page (checklist #46, #49–#51, #53). The progress of an
//! authorization lives in the store (an "interaction"), found by a random identifier that is
//! both in a `__Host-` cookie and in every form (double submit: the forms' CSRF protection); it
//! advances by compare-and-set so two tabs cannot both finish it. The customer's session is a
//! `__Host-` cookie whose value is stored only as a hash, fresh at every login. Pages send a
//! strict Content-Security-Policy, `frame-ancestors 'none'` and `no-store`.

use std::sync::Arc;

use askama::Template as _;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use portcullis_consent::pages::{
    AccountChoice, ConsentPage, ErrorPage, LoginPage, STYLESHEET, TotpPage, describe_detail,
    describe_scope,
};
use portcullis_core::audit::SecurityEvent;
use portcullis_core::authz::code::CodeContent;
use portcullis_core::authz::request::{AuthorizationRequest, GrantAction, Prompt};
use portcullis_core::client::Client;
use portcullis_core::client::metadata::ClientMetadata;
use portcullis_core::client::secret::{ClientSecret, SecretHash};
use portcullis_core::error::{ErrorCode, OAuthError};
use portcullis_core::store::{Grant, Interaction, Session, StoreError, StoredCode};
use portcullis_jose::SigningAlg;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq as _;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::app::AppState;
use crate::form::Form;
use crate::hardening::page::PagePolicy;
use crate::login_throttle::{refusal_message, too_many};
use crate::routes::customer::{self, PasswordStep, SecondFactor};
use crate::routes::par::REQUEST_URI_PREFIX;
use crate::source_ip::SourceIp;

/// The path.
pub const PATH: &str = "/authorize";
/// The `acr` of a password login.
pub const ACR_PASSWORD: &str = "urn:portcullis:acr:pwd";
/// The `acr` of strong customer authentication: password and a TOTP code.
pub const ACR_SCA: &str = "urn:portcullis:acr:sca";

const INTERACTION_COOKIE: &str = "__Host-portcullis-interaction";
pub(crate) const SESSION_COOKIE: &str = "__Host-portcullis-session";
/// Failed password or code attempts an interaction allows before it ends.
pub(crate) const MAX_FAILURES: u32 = 5;
pub(crate) const LOGIN_FAILED: &str = "The username or password is not right.";

/// Where an interaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Stage {
    Login,
    SecondFactor,
    Consent,
}

/// An interaction's progress, stored as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Progress {
    stage: Stage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auth_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    amr: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    acr: Option<String>,
    #[serde(default)]
    failures: u32,
}

impl Progress {
    fn to_map(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }
}

/// Adds the pages' security headers, with a policy whose forms post only here
/// ([`PagePolicy::own`]).
pub(crate) fn secure(response: Response) -> Response {
    PagePolicy::own().apply(response)
}

/// The policy of a page of the flow (login, second factor, consent): its forms may be answered by
/// the 303 to the client's redirect URI, and it shows the client's logo.
fn flow_policy(context: &Context) -> PagePolicy {
    let policy = PagePolicy::own().redirecting_to(&context.request.redirect_uri);
    match &context.metadata.logo_uri {
        Some(logo) => policy.showing_image(logo),
        None => policy,
    }
}

pub(crate) fn html(status: StatusCode, body: Result<String, askama::Error>) -> Response {
    match body {
        Ok(body) => secure(
            (
                status,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                body,
            )
                .into_response(),
        ),
        Err(e) => {
            tracing::error!(error = %e, "a page did not render");
            secure(StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
    }
}

pub(crate) fn service_name(state: &AppState) -> &str {
    &state.config.authorization.service_name
}

/// A page that tells the customer something (the error page's template, without an error).
pub(crate) fn html_page(
    state: &AppState,
    status: StatusCode,
    title: &str,
    message: &str,
) -> Response {
    error_page(state, status, title, message)
}

/// An error page: the request cannot be sent back to a client safely.
pub(crate) fn error_page(
    state: &AppState,
    status: StatusCode,
    title: &str,
    message: &str,
) -> Response {
    html(
        status,
        ErrorPage {
            service_name: service_name(state),
            title,
            message,
            reference: None,
        }
        .to_html(),
    )
}

pub(crate) fn internal(state: &AppState, context: &str, error: &dyn std::fmt::Display) -> Response {
    tracing::error!(%error, "{context}");
    error_page(
        state,
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "The bank could not complete this step. Please try again later.",
    )
}

pub(crate) fn cookie(name: &str, value: &str, max_age: i64) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={max_age}"
    ))
    .ok()
}

pub(crate) fn read_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub(crate) fn with_cookie(mut response: Response, value: Option<HeaderValue>) -> Response {
    if let Some(value) = value {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `GET /assets/portcullis.css`.
pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

/// What an authorization is about, once its pushed request and client are found.
struct Context {
    request: AuthorizationRequest,
    client: Client,
    metadata: ClientMetadata,
    request_handle: SecretHash,
}

/// `GET /authorize`.
pub async fn get(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let now = state.clock.now();
    let mut client_id = None;
    let mut request_uri = None;
    for (name, value) in url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()) {
        let slot = match name.as_ref() {
            "client_id" => &mut client_id,
            "request_uri" => &mut request_uri,
            // FAPI2 SP 5.3.2.2, RFC 9126 §4: the pushed request is the whole request.
            other => {
                return error_page(
                    &state,
                    StatusCode::BAD_REQUEST,
                    "Request refused",
                    &format!(
                        "The authorization request carries {other}: only client_id and request_uri are accepted here, the rest must be pushed (RFC 9126)."
                    ),
                );
            }
        };
        if slot.replace(value.into_owned()).is_some() {
            return error_page(
                &state,
                StatusCode::BAD_REQUEST,
                "Request refused",
                &format!("The parameter {name} is repeated."),
            );
        }
    }
    // Checklist #46.
    let Some(request_uri) = request_uri else {
        return error_page(
            &state,
            StatusCode::BAD_REQUEST,
            "Request refused",
            "Authorization requests must be pushed first: request_uri is missing (FAPI2 SP 5.3.2.2-3).",
        );
    };
    let context = match load_request(&state, &request_uri, client_id.as_deref(), now).await {
        Ok(context) => context,
        Err(response) => return response,
    };

    // OIDC Core §3.1.2.1: an existing session serves unless prompt=login or max_age says not.
    let session = usable_session(&state, &headers, &context.request, now).await;
    let progress = match &session {
        Some(session) if !needs_second_factor(&context.request, &session.amr) => Progress {
            stage: Stage::Consent,
            user_id: Some(session.user_id),
            auth_time: Some(session.auth_time.unix_timestamp()),
            amr: session.amr.clone(),
            acr: session.acr.clone(),
            failures: 0,
        },
        _ => {
            if context.request.prompt.contains(&Prompt::None) {
                // Checklist #56.
                return redirect_error(
                    &state,
                    &context,
                    ErrorCode::LoginRequired,
                    "prompt=none and the customer is not logged in (OIDC Core §3.1.2.6)",
                )
                .await;
            }
            Progress {
                stage: Stage::Login,
                user_id: None,
                auth_time: None,
                amr: Vec::new(),
                acr: None,
                failures: 0,
            }
        }
    };
    if progress.stage == Stage::Consent && context.request.prompt.contains(&Prompt::None) {
        return redirect_error(
            &state,
            &context,
            ErrorCode::ConsentRequired,
            "prompt=none and the customer must approve this request (OIDC Core §3.1.2.6)",
        )
        .await;
    }
    if let Err(response) = check_grant_reference(&state, &context, progress.user_id).await {
        return response;
    }

    let Ok(id) = state.rng.token(32) else {
        return internal(&state, "authorize: random", &"the random source failed");
    };
    let lifetime = i64::from(state.config.authorization.interaction_lifetime_secs);
    let interaction = Interaction {
        handle: SecretHash::of(&id),
        request_handle: context.request_handle.clone(),
        client_id: context.client.client_id.clone(),
        state: progress.to_map(),
        created_at: now,
        expires_at: now + Duration::seconds(lifetime),
    };
    if let Err(e) = state.store.interactions().add(&interaction).await {
        return internal(&state, "authorize: interactions", &e);
    }
    let page = match progress.stage {
        Stage::Consent => consent_page(&state, &context, &progress, &id).await,
        _ => login_page(&state, &context, &id, "", None),
    };
    with_cookie(page, cookie(INTERACTION_COOKIE, &id, lifetime))
}

/// Finds the pushed request behind `request_uri` and its client (checklist #49–#51: an error
/// page, never a redirect).
async fn load_request(
    state: &AppState,
    request_uri: &str,
    client_id: Option<&str>,
    now: OffsetDateTime,
) -> Result<Context, Response> {
    let refused = |message: &str| {
        error_page(
            state,
            StatusCode::BAD_REQUEST,
            "This link no longer works",
            message,
        )
    };
    let Some(token) = request_uri.strip_prefix(REQUEST_URI_PREFIX) else {
        return Err(refused(
            "The request_uri is not one this bank issued (invalid_request_uri).",
        ));
    };
    let handle = SecretHash::of(token);
    let pushed = match state.store.pushed_requests().find(&handle, now).await {
        Ok(pushed) => pushed,
        Err(StoreError::NotFound) => {
            return Err(refused(
                "The request has expired or has been used (invalid_request_uri). Please start again from the app you came from.",
            ));
        }
        Err(e) => return Err(internal(state, "authorize: pushed requests", &e)),
    };
    if client_id != Some(pushed.client_id.as_str()) {
        return Err(refused(
            "The request belongs to another client (invalid_request_uri, RFC 9126 §4).",
        ));
    }
    let request = AuthorizationRequest::from_map(pushed.parameters)
        .map_err(|e| internal(state, "authorize: stored request", &e))?;
    let client = match state.store.clients().find_by_id(&pushed.client_id).await {
        Ok(client) => client,
        Err(StoreError::NotFound) => return Err(refused("The client is no longer registered.")),
        Err(e) => return Err(internal(state, "authorize: clients", &e)),
    };
    let metadata = ClientMetadata::from_stored(client.metadata.clone())
        .map_err(|e| internal(state, "authorize: client metadata", &e))?;
    Ok(Context {
        request,
        client,
        metadata,
        request_handle: handle,
    })
}

/// The customer's session if it may serve this request.
async fn usable_session(
    state: &AppState,
    headers: &HeaderMap,
    request: &AuthorizationRequest,
    now: OffsetDateTime,
) -> Option<Session> {
    if request.prompt.contains(&Prompt::Login) {
        return None;
    }
    let session = customer::find_session(state, headers, now).await?;
    if let Some(max_age) = request.max_age
        && now - session.auth_time > Duration::seconds(i64::from(max_age))
    {
        return None;
    }
    // In use: the idle timeout starts again.
    customer::touch_session(state, &session, now).await;
    Some(session)
}

/// Whether the request asks for strong customer authentication the methods so far lack.
fn needs_second_factor(request: &AuthorizationRequest, amr: &[String]) -> bool {
    wants_sca(request) && !amr.iter().any(|m| m == "otp")
}

fn wants_sca(request: &AuthorizationRequest) -> bool {
    request.acr_values.iter().any(|a| a == ACR_SCA) || essential_acr(request).is_some()
}

/// The `acr` values of an essential `acr` claim request (OIDC Core §5.5.1.1).
fn essential_acr(request: &AuthorizationRequest) -> Option<Vec<String>> {
    let acr = request.claims.as_ref()?.get("id_token")?.get("acr")?;
    if acr.get("essential").and_then(Value::as_bool) != Some(true) {
        return None;
    }
    let values: Vec<String> = match (acr.get("value"), acr.get("values")) {
        (Some(Value::String(v)), _) => vec![v.clone()],
        (_, Some(Value::Array(vs))) => vs
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => vec![ACR_SCA.to_owned()],
    };
    Some(values)
}

/// Grant Management: a `grant_id` to merge into or replace names a live grant of this client
/// (and, once known, of this customer); checklist #57 `invalid_grant_id`.
async fn check_grant_reference(
    state: &AppState,
    context: &Context,
    user: Option<Uuid>,
) -> Result<Option<Grant>, Response> {
    let Some(grant_id) = &context.request.grant_id else {
        return Ok(None);
    };
    match state.store.grants().find(grant_id).await {
        Ok(grant)
            if grant.client_id == context.client.client_id
                && grant.stands(state.clock.now())
                && user.is_none_or(|u| u == grant.subject) =>
        {
            Ok(Some(grant))
        }
        Ok(_) | Err(StoreError::NotFound) => Err(redirect_error(
            state,
            context,
            ErrorCode::InvalidGrantId,
            "grant_id names no grant of this client that can be changed (FAPI Grant Management)",
        )
        .await),
        Err(e) => Err(internal(state, "authorize: grants", &e)),
    }
}

fn client_name(context: &Context) -> &str {
    context
        .metadata
        .client_name
        .as_deref()
        .unwrap_or(context.client.client_id.as_str())
}

fn login_page(
    state: &AppState,
    context: &Context,
    interaction: &str,
    username: &str,
    error: Option<&str>,
) -> Response {
    flow_policy(context).apply(html(
        if error.is_some() {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        },
        LoginPage {
            service_name: service_name(state),
            client_name: client_name(context),
            interaction,
            username,
            error,
        }
        .render(),
    ))
}

async fn consent_page(
    state: &AppState,
    context: &Context,
    progress: &Progress,
    interaction: &str,
) -> Response {
    let accounts = match progress.user_id {
        Some(user) => match state.accounts.accounts_of(user).await {
            Ok(accounts) => accounts,
            Err(e) => return internal(state, "authorize: account directory", &e),
        },
        None => Vec::new(),
    };
    let request = &context.request;
    let page = html(
        StatusCode::OK,
        ConsentPage {
            service_name: service_name(state),
            client_name: client_name(context),
            logo_uri: context.metadata.logo_uri.as_deref(),
            scopes: request.scopes.iter().map(|s| describe_scope(s)).collect(),
            details: request
                .authorization_details
                .iter()
                .map(describe_detail)
                .collect(),
            accounts: accounts
                .iter()
                .map(|a| AccountChoice {
                    id: a.id.clone(),
                    label: a.label(),
                })
                .collect(),
            interaction,
        }
        .render(),
    );
    flow_policy(context).apply(page)
}

/// An interaction a form continues: the cookie and the form agree (CSRF), it exists, and it is
/// at `stage`.
struct Continued {
    id: String,
    interaction: Interaction,
    progress: Progress,
    context: Context,
}

async fn continue_interaction(
    state: &AppState,
    headers: &HeaderMap,
    form: &Form,
    stage: Stage,
) -> Result<Continued, Response> {
    let expired = || {
        error_page(
            state,
            StatusCode::FORBIDDEN,
            "This page has expired",
            "This page is no longer valid, or was opened in another window. Please start again from the app you came from.",
        )
    };
    let id = form.get("interaction").unwrap_or_default();
    let cookie = read_cookie(headers, INTERACTION_COOKIE).unwrap_or_default();
    if id.is_empty() || !bool::from(id.as_bytes().ct_eq(cookie.as_bytes())) {
        return Err(expired());
    }
    let now = state.clock.now();
    let interaction = match state
        .store
        .interactions()
        .find(&SecretHash::of(id), now)
        .await
    {
        Ok(i) => i,
        Err(StoreError::NotFound) => return Err(expired()),
        Err(e) => return Err(internal(state, "authorize: interactions", &e)),
    };
    let progress: Progress = serde_json::from_value(Value::Object(interaction.state.clone()))
        .map_err(|e| internal(state, "authorize: interaction state", &e))?;
    if progress.stage != stage {
        return Err(expired());
    }
    let pushed = match state
        .store
        .pushed_requests()
        .find(&interaction.request_handle, now)
        .await
    {
        Ok(p) => p,
        Err(StoreError::NotFound) => return Err(expired()),
        Err(e) => return Err(internal(state, "authorize: pushed requests", &e)),
    };
    let request = AuthorizationRequest::from_map(pushed.parameters)
        .map_err(|e| internal(state, "authorize: stored request", &e))?;
    let client = match state
        .store
        .clients()
        .find_by_id(&interaction.client_id)
        .await
    {
        Ok(c) => c,
        Err(StoreError::NotFound) => return Err(expired()),
        Err(e) => return Err(internal(state, "authorize: clients", &e)),
    };
    let metadata = ClientMetadata::from_stored(client.metadata.clone())
        .map_err(|e| internal(state, "authorize: client metadata", &e))?;
    Ok(Continued {
        id: id.to_owned(),
        progress,
        context: Context {
            request,
            client,
            metadata,
            request_handle: interaction.request_handle.clone(),
        },
        interaction,
    })
}

/// Moves the interaction to `next`; `false` when another request moved it first.
async fn advance(state: &AppState, c: &Continued, next: &Progress) -> Result<bool, Response> {
    state
        .store
        .interactions()
        .advance(&c.interaction.handle, &c.interaction.state, &next.to_map())
        .await
        .map_err(|e| internal(state, "authorize: interactions", &e))
}

fn parse_form(headers: &HeaderMap, body: &Bytes) -> Result<Form, OAuthError> {
    Form::from_request_with(headers, body, &["account"])
}

/// `POST /authorize/login`.
pub async fn login(
    State(state): State<AppState>,
    source: Option<Extension<SourceIp>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(form) = parse_form(&headers, &body) else {
        return error_page(
            &state,
            StatusCode::BAD_REQUEST,
            "Request refused",
            "The form is not valid.",
        );
    };
    let c = match continue_interaction(&state, &headers, &form, Stage::Login).await {
        Ok(c) => c,
        Err(response) => return response,
    };
    let username = form.get("username").unwrap_or_default();
    let password = Zeroizing::new(form.get("password").unwrap_or_default().to_owned());
    let now = state.clock.now();
    let who = attempt(source, &c);
    let user = match customer::password_step(&state, who, username, password, now).await {
        Ok(PasswordStep::Accepted(user)) => user,
        Ok(PasswordStep::Refused) => {
            return failed(&state, &c, |state, c| {
                login_page(state, &c.context, &c.id, username, Some(LOGIN_FAILED))
            })
            .await;
        }
        // Brute-force protection: not a failure of this interaction, nothing was checked.
        Ok(PasswordStep::Throttled(refusal)) => {
            let message = refusal_message(&refusal, now);
            let page = login_page(&state, &c.context, &c.id, username, Some(&message));
            return too_many(page, &refusal, now);
        }
        Err(response) => return response,
    };
    let mut next = Progress {
        stage: Stage::Consent,
        user_id: Some(user.id),
        auth_time: Some(now.unix_timestamp()),
        amr: vec!["pwd".into()],
        acr: Some(ACR_PASSWORD.into()),
        failures: 0,
    };
    if user.totp_secret_encrypted.is_some() {
        next.stage = Stage::SecondFactor;
    } else if essential_acr(&c.context.request)
        .is_some_and(|v| !v.iter().any(|a| a == ACR_PASSWORD))
    {
        // OIDC Core §5.5.1.1: an essential acr that cannot be met ends the request.
        return finish_with_error(
            &state,
            &c,
            ErrorCode::AccessDenied,
            "the essential acr cannot be met: the customer has no second factor",
        )
        .await;
    }
    match advance(&state, &c, &next).await {
        Ok(true) => {}
        Ok(false) => return stale(&state),
        Err(response) => return response,
    }
    if next.stage == Stage::SecondFactor {
        return totp_page(&state, &c.context, &c.id, None);
    }
    let page = consent_page(&state, &c.context, &next, &c.id).await;
    start_session(&state, &headers, &next, page).await
}

fn totp_page(
    state: &AppState,
    context: &Context,
    interaction: &str,
    error: Option<&str>,
) -> Response {
    let page = html(
        if error.is_some() {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        },
        TotpPage {
            service_name: service_name(state),
            interaction,
            error,
        }
        .render(),
    );
    flow_policy(context).apply(page)
}

fn stale(state: &AppState) -> Response {
    error_page(
        state,
        StatusCode::CONFLICT,
        "This page has expired",
        "This step was already completed in another window.",
    )
}

/// Counts a failed attempt; after [`MAX_FAILURES`] the authorization ends with `access_denied`.
async fn failed(
    state: &AppState,
    c: &Continued,
    again: impl FnOnce(&AppState, &Continued) -> Response,
) -> Response {
    let mut next = c.progress.clone();
    next.failures += 1;
    if next.failures >= MAX_FAILURES {
        return finish_with_error(
            state,
            c,
            ErrorCode::AccessDenied,
            "the customer could not authenticate",
        )
        .await;
    }
    match advance(state, c, &next).await {
        Ok(true) => again(state, c),
        Ok(false) => stale(state),
        Err(response) => response,
    }
}

/// Who attempts a step of this interaction: the request's source and the interaction's client.
fn attempt(source: Option<Extension<SourceIp>>, c: &Continued) -> customer::Attempt<'_> {
    customer::Attempt {
        // Without the source layer (never in the server's router) every attempt shares one
        // bucket: fail closed.
        source: source.map_or(SourceIp::UNKNOWN, |Extension(s)| s),
        client_id: Some(c.context.client.client_id.as_str()),
    }
}

/// `POST /authorize/totp`.
pub async fn second_factor(
    State(state): State<AppState>,
    source: Option<Extension<SourceIp>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(form) = parse_form(&headers, &body) else {
        return error_page(
            &state,
            StatusCode::BAD_REQUEST,
            "Request refused",
            "The form is not valid.",
        );
    };
    let c = match continue_interaction(&state, &headers, &form, Stage::SecondFactor).await {
        Ok(c) => c,
        Err(response) => return response,
    };
    let now = state.clock.now();
    let Some(user_id) = c.progress.user_id else {
        return stale(&state);
    };
    let code = form.get("code").unwrap_or_default();
    let who = attempt(source, &c);
    match customer::check_second_factor(&state, who, user_id, code, now).await {
        Ok(SecondFactor::Accepted) => {}
        Ok(SecondFactor::UserGone) => return stale(&state),
        Ok(SecondFactor::Locked(refusal)) => {
            let message = refusal_message(&refusal, now);
            let page = totp_page(&state, &c.context, &c.id, Some(&message));
            return too_many(page, &refusal, now);
        }
        Ok(SecondFactor::Refused) => {
            return failed(&state, &c, |state, c| {
                totp_page(
                    state,
                    &c.context,
                    &c.id,
                    Some("That code is not right. Try the current code."),
                )
            })
            .await;
        }
        Err(response) => return response,
    }
    let next = Progress {
        stage: Stage::Consent,
        amr: vec!["pwd".into(), "otp".into()],
        acr: Some(ACR_SCA.into()),
        auth_time: Some(now.unix_timestamp()),
        failures: 0,
        ..c.progress.clone()
    };
    match advance(&state, &c, &next).await {
        Ok(true) => {}
        Ok(false) => return stale(&state),
        Err(response) => return response,
    }
    let page = consent_page(&state, &c.context, &next, &c.id).await;
    start_session(&state, &headers, &next, page).await
}

/// A fresh session for the customer just authenticated (a new random id at every login; the old
/// session, if any, ends).
async fn start_session(
    state: &AppState,
    headers: &HeaderMap,
    progress: &Progress,
    page: Response,
) -> Response {
    let (Some(user_id), Some(auth_time)) = (progress.user_id, progress.auth_time) else {
        return page;
    };
    let login = customer::Authenticated {
        user_id,
        auth_time: OffsetDateTime::from_unix_timestamp(auth_time)
            .unwrap_or_else(|_| state.clock.now()),
        acr: progress.acr.clone(),
        amr: progress.amr.clone(),
    };
    customer::start_session(state, headers, &login, page).await
}

/// `POST /authorize/consent`.
pub async fn consent(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(form) = parse_form(&headers, &body) else {
        return error_page(
            &state,
            StatusCode::BAD_REQUEST,
            "Request refused",
            "The form is not valid.",
        );
    };
    let c = match continue_interaction(&state, &headers, &form, Stage::Consent).await {
        Ok(c) => c,
        Err(response) => return response,
    };
    let (Some(user_id), Some(auth_time)) = (c.progress.user_id, c.progress.auth_time) else {
        return stale(&state);
    };
    let now = state.clock.now();
    if form.get("decision") != Some("approve") {
        let event = SecurityEvent::new(
            now,
            format!("user:{user_id}"),
            "consent.refused",
            Some(c.context.client.client_id.to_string()),
            Map::new(),
        );
        if let Err(e) = state.store.events().append(&event).await {
            tracing::warn!(error = %e, "could not record a refused consent");
        }
        return finish_with_error(
            &state,
            &c,
            ErrorCode::AccessDenied,
            "the customer refused the request",
        )
        .await;
    }

    // The accounts chosen: only the customer's own, and at least one where the type needs them.
    let accounts = match state.accounts.accounts_of(user_id).await {
        Ok(accounts) => accounts,
        Err(e) => return internal(&state, "authorize: account directory", &e),
    };
    let owned = |id: &str| accounts.iter().any(|a| a.id == id);
    let chosen: Vec<String> = form
        .get_all("account")
        .iter()
        .filter(|id| owned(id))
        .cloned()
        .collect();
    let debtor = form.get("debtor_account").filter(|id| owned(id));
    let mut details = c.context.request.authorization_details.clone();
    for detail in &mut details {
        match detail.get("type").and_then(Value::as_str) {
            Some("account_information") => {
                if chosen.is_empty() {
                    let context = &c.context;
                    let progress = c.progress.clone();
                    return consent_page(&state, context, &progress, &c.id).await;
                }
                detail["accounts"] = chosen.clone().into();
            }
            Some("payment_initiation") => {
                let Some(debtor) = debtor else {
                    let progress = c.progress.clone();
                    return consent_page(&state, &c.context, &progress, &c.id).await;
                };
                detail["debtorAccount"] = serde_json::json!({ "id": debtor });
            }
            _ => {}
        }
    }

    // Exactly one request finishes the authorization: the pushed request is used up here.
    match state
        .store
        .pushed_requests()
        .consume(&c.context.request_handle, now)
        .await
    {
        Ok(_) => {}
        Err(StoreError::NotFound) => return stale(&state),
        Err(e) => return internal(&state, "authorize: pushed requests", &e),
    }
    if let Err(e) = state
        .store
        .interactions()
        .remove(&c.interaction.handle)
        .await
    {
        tracing::warn!(error = %e, "could not end an interaction");
    }

    let grant = match record_grant(&state, &c.context, user_id, details.clone(), now).await {
        Ok(grant) => grant,
        Err(response) => return response,
    };
    let Ok(code) = ClientSecret::generate(state.rng.as_ref()) else {
        return internal(&state, "authorize: random", &"the random source failed");
    };
    let request = &c.context.request;
    let content = CodeContent {
        subject: user_id,
        redirect_uri: request.redirect_uri.clone(),
        code_challenge: request.code_challenge.clone(),
        dpop_jkt: request.dpop_jkt.clone(),
        scopes: request.scopes.clone(),
        resources: request.resources.clone(),
        authorization_details: details,
        nonce: request.nonce.clone(),
        claims: request.claims.clone(),
        auth_time,
        acr: c.progress.acr.clone(),
        amr: c.progress.amr.clone(),
    };
    let lifetime = i64::from(state.config.authorization.code_lifetime_secs);
    let stored = StoredCode {
        handle: code.hash(),
        client_id: c.context.client.client_id.clone(),
        grant_id: grant.grant_id.clone(),
        content: content.to_map(),
        created_at: now,
        expires_at: now + Duration::seconds(lifetime),
    };
    if let Err(e) = state.store.codes().add(&stored).await {
        return internal(&state, "authorize: codes", &e);
    }
    let event = SecurityEvent::new(
        now,
        format!("user:{user_id}"),
        "consent.given",
        Some(grant.grant_id.clone()),
        serde_json::json!({
            "client_id": c.context.client.client_id.as_str(),
            "scopes": request.scopes,
        })
        .as_object()
        .cloned()
        .unwrap_or_default(),
    );
    if let Err(e) = state.store.events().append(&event).await {
        return internal(&state, "authorize: events", &e);
    }
    redirect(&state, &c.context, vec![("code", code.expose().to_owned())]).await
}

/// Creates the grant, or merges into or replaces the one named (FAPI Grant Management).
async fn record_grant(
    state: &AppState,
    context: &Context,
    user_id: Uuid,
    details: Vec<Value>,
    now: OffsetDateTime,
) -> Result<Grant, Response> {
    let request = &context.request;
    let content = |scopes: Vec<String>, details: Vec<Value>| {
        serde_json::json!({
            "scopes": scopes,
            "authorization_details": details,
            "claims": request.claims,
            "resources": request.resources,
        })
        .as_object()
        .cloned()
        .unwrap_or_default()
    };
    match (
        request.grant_management_action,
        check_grant_reference(state, context, Some(user_id)).await?,
    ) {
        (Some(action @ (GrantAction::Merge | GrantAction::Replace)), Some(mut grant)) => {
            grant.content = if action == GrantAction::Merge {
                let mut scopes: Vec<String> = grant
                    .content
                    .get("scopes")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect();
                for s in &request.scopes {
                    if !scopes.contains(s) {
                        scopes.push(s.clone());
                    }
                }
                let mut merged: Vec<Value> = grant
                    .content
                    .get("authorization_details")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                merged.extend(details);
                content(scopes, merged)
            } else {
                content(request.scopes.clone(), details)
            };
            grant.updated_at = now;
            match state.store.grants().update(&grant).await {
                Ok(()) => Ok(grant),
                Err(e) => Err(internal(state, "authorize: grants", &e)),
            }
        }
        _ => {
            let Ok(grant_id) = state.rng.token(16) else {
                return Err(internal(
                    state,
                    "authorize: random",
                    &"the random source failed",
                ));
            };
            let grant = Grant {
                grant_id,
                client_id: context.client.client_id.clone(),
                subject: user_id,
                content: content(request.scopes.clone(), details),
                created_at: now,
                updated_at: now,
                expires_at: None,
                revoked_at: None,
                last_used_at: None,
            };
            match state.store.grants().add(&grant).await {
                Ok(()) => Ok(grant),
                Err(e) => Err(internal(state, "authorize: grants", &e)),
            }
        }
    }
}

/// Ends an interaction with an error sent back to the client.
async fn finish_with_error(
    state: &AppState,
    c: &Continued,
    error: ErrorCode,
    description: &str,
) -> Response {
    if let Err(e) = state
        .store
        .interactions()
        .remove(&c.interaction.handle)
        .await
    {
        tracing::warn!(error = %e, "could not end an interaction");
    }
    redirect_error(state, &c.context, error, description).await
}

/// An error sent back to the client; the pushed request is used up by it, as by a success
/// (RFC 9126 §7.3: a `request_uri` serves one authorization).
async fn redirect_error(
    state: &AppState,
    context: &Context,
    error: ErrorCode,
    description: &str,
) -> Response {
    let now = state.clock.now();
    if let Err(e) = state
        .store
        .pushed_requests()
        .consume(&context.request_handle, now)
        .await
        && !matches!(e, StoreError::NotFound)
    {
        tracing::warn!(error = %e, "could not use up a refused request");
    }
    redirect(
        state,
        context,
        vec![
            ("error", error.as_str().to_owned()),
            ("error_description", description.to_owned()),
        ],
    )
    .await
}

/// The authorization response by 303 (SP 5.3.2.2-10/11) to the validated redirect URI, with
/// `state` and `iss` (RFC 9207); as a signed JWT in `response` for JARM.
async fn redirect(
    state: &AppState,
    context: &Context,
    mut params: Vec<(&str, String)>,
) -> Response {
    let request = &context.request;
    if let Some(s) = &request.state {
        params.push(("state", s.clone()));
    }
    let location = if request.response_mode.is_jarm() {
        match jarm(state, context, &params).await {
            Ok(jwt) => append_query(&request.redirect_uri, &[("response", jwt)]),
            Err(response) => return response,
        }
    } else {
        params.push(("iss", state.urls.issuer.clone()));
        append_query(&request.redirect_uri, &params)
    };
    match HeaderValue::from_str(&location) {
        Ok(location) => {
            secure((StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response())
        }
        Err(e) => internal(state, "authorize: redirect", &e),
    }
}

fn append_query(uri: &str, params: &[(&str, String)]) -> String {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        serializer.append_pair(k, v);
    }
    let query = serializer.finish();
    let separator = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{separator}{query}")
}

/// JARM (FAPI2 MS 5.4.1): the response parameters in a JWT signed with the client's
/// `authorization_signed_response_alg` (PS256 by default), for the client, valid 5 minutes.
async fn jarm(
    state: &AppState,
    context: &Context,
    params: &[(&str, String)],
) -> Result<String, Response> {
    let alg = context
        .metadata
        .authorization_signed_response_alg
        .unwrap_or(SigningAlg::Ps256);
    let key: Arc<portcullis_jose::SigningKey> = state
        .keys
        .signer(alg)
        .await
        .map_err(|e| internal(state, "authorize: JARM key", &e))?;
    let now = state.clock.now();
    let mut claims = Map::new();
    claims.insert("iss".into(), state.urls.issuer.clone().into());
    claims.insert("aud".into(), context.client.client_id.as_str().into());
    claims.insert("iat".into(), now.unix_timestamp().into());
    claims.insert(
        "exp".into(),
        (now + Duration::minutes(5)).unix_timestamp().into(),
    );
    for (k, v) in params {
        claims.insert((*k).to_owned(), v.clone().into());
    }
    key.sign_jwt("JWT", &claims)
        .map_err(|e| internal(state, "authorize: JARM", &e))
}
