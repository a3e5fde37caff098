//! Token introspection (RFC 7662) for the bank's resource servers: the caller authenticates as a
//! client (401 `invalid_client` otherwise, checklist #61) that a registered resource server acts
//! as; it learns about access tokens (JWT or opaque) whose audience is one of its resources, and
//! about refresh tokens issued to itself. Anything unknown, expired, revoked, of a withdrawn
//! grant or not the caller's is `{"active": false}` and nothing else (RFC 7662 §2.2).
//!
//! This first step answers in JSON; RFC 9701 signed answers, the `jti` deny list of `/revoke`
//! and a cache come with the rest of issue 5.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, header};
use portcullis_core::authz::code::CodeContent;
use portcullis_core::client::secret::SecretHash;
use portcullis_core::error::OAuthError;
use portcullis_core::store::StoreError;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::app::AppState;
use crate::client_auth::{AuthenticatedClient, Endpoint};
use crate::form::Form;
use crate::routes::oauth_error::{ErrorResponse, client_auth_failed};
use crate::tls::client_cert::ClientCertificate;

/// The path.
pub const PATH: &str = "/introspect";

/// The claims RFC 7662 §2.2 answers with, as the token carries them.
const MEMBERS: [&str; 14] = [
    "scope",
    "client_id",
    "sub",
    "aud",
    "iss",
    "exp",
    "iat",
    "nbf",
    "jti",
    "cnf",
    "authorization_details",
    "grant_id",
    "acr",
    "auth_time",
];

fn answer(body: Value) -> Response {
    let mut response = axum::Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn inactive() -> Response {
    answer(json!({ "active": false }))
}

fn server_error(context: &str, error: &dyn std::fmt::Display) -> ErrorResponse {
    tracing::error!(%error, "{context}");
    ErrorResponse::new(OAuthError::server_error())
}

/// `POST /introspect`.
pub async fn post(
    State(state): State<AppState>,
    certificate: Option<Extension<Arc<ClientCertificate>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let certificate = certificate.map(|Extension(c)| c);
    match introspect(&state, certificate.as_deref(), &headers, &body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn introspect(
    state: &AppState,
    certificate: Option<&ClientCertificate>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ErrorResponse> {
    let form = Form::from_request(headers, body)?;
    let caller = state
        .client_auth
        .authenticate_request(&form, headers, certificate, Endpoint::Introspect)
        .await
        .map_err(|e| client_auth_failed(e, "introspect"))?;
    let token = form.require("token")?;

    let now = state.clock.now();
    // token_type_hint is a hint only (RFC 7662 §2.1): every kind is tried. A client may always
    // ask about its own refresh tokens.
    if let Some(claims) = refresh_token_claims(state, &caller, token, now).await? {
        return Ok(active(&claims, "refresh_token"));
    }

    // Access tokens: the resources the caller stands for.
    let snapshot = state
        .resources
        .snapshot()
        .await
        .map_err(|e| server_error("introspect: resource servers", &e))?;
    let own: Vec<String> = snapshot
        .all()
        .filter(|rs| rs.client_id.as_ref() == Some(&caller.client.client_id))
        .map(|rs| rs.resource.clone())
        .collect();
    // A client no resource server acts as learns nothing about access tokens: not its own.
    if own.is_empty() {
        return Ok(inactive());
    }
    let Some(claims) = access_token_claims(state, token, now).await? else {
        return Ok(inactive());
    };
    let audience: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(values)) => values.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audience.iter().any(|a| own.iter().any(|o| o == a))
        || !grant_stands(state, &claims, now).await?
    {
        return Ok(inactive());
    }
    let token_type = if claims.get("cnf").and_then(|c| c.get("jkt")).is_some() {
        "DPoP"
    } else {
        "Bearer"
    };
    Ok(active(&claims, token_type))
}

fn active(claims: &Map<String, Value>, token_type: &str) -> Response {
    let mut body = Map::new();
    body.insert("active".into(), true.into());
    for name in MEMBERS {
        if let Some(value) = claims.get(name) {
            body.insert(name.into(), value.clone());
        }
    }
    body.insert("token_type".into(), token_type.into());
    answer(Value::Object(body))
}

/// The claims of a live access token of ours (issued here, unexpired).
async fn access_token_claims(
    state: &AppState,
    token: &str,
    now: OffsetDateTime,
) -> Result<Option<Map<String, Value>>, ErrorResponse> {
    let claims = match crate::protected::access_token_claims(state, token).await {
        Ok(Ok(claims)) => claims,
        Ok(Err(_)) => return Ok(None),
        Err(e) => return Err(server_error("introspect: access tokens", &e)),
    };
    let live = claims.get("iss").and_then(Value::as_str) == Some(state.urls.issuer.as_str())
        && claims
            .get("exp")
            .and_then(Value::as_i64)
            .is_some_and(|exp| exp > now.unix_timestamp());
    Ok(live.then_some(claims))
}

/// Whether the grant a token names (if any) still stands.
async fn grant_stands(
    state: &AppState,
    claims: &Map<String, Value>,
    now: OffsetDateTime,
) -> Result<bool, ErrorResponse> {
    let Some(grant_id) = claims.get("grant_id").and_then(Value::as_str) else {
        return Ok(true);
    };
    match state.store.grants().find(grant_id).await {
        Ok(grant) => Ok(grant.stands(now)),
        Err(StoreError::NotFound) => Ok(false),
        Err(e) => Err(server_error("introspect: grants", &e)),
    }
}

/// The claims of a live refresh token issued to the caller itself.
async fn refresh_token_claims(
    state: &AppState,
    caller: &AuthenticatedClient,
    token: &str,
    now: OffsetDateTime,
) -> Result<Option<Map<String, Value>>, ErrorResponse> {
    let stored = match state
        .store
        .refresh_tokens()
        .find(&SecretHash::of(token))
        .await
    {
        Ok(stored) => stored,
        Err(StoreError::NotFound) => return Ok(None),
        Err(e) => return Err(server_error("introspect: refresh tokens", &e)),
    };
    if stored.client_id != caller.client.client_id
        || stored.revoked_at.is_some()
        || stored.expires_at <= now
        || stored.rotated_at.is_some()
    {
        return Ok(None);
    }
    let mut claims = Map::new();
    claims.insert("grant_id".into(), stored.grant_id.clone().into());
    if !grant_stands(state, &claims, now).await? {
        return Ok(None);
    }
    let content = CodeContent::from_map(stored.content)
        .map_err(|e| server_error("introspect: stored refresh token", &e))?;
    claims.insert("iss".into(), state.urls.issuer.clone().into());
    claims.insert("client_id".into(), stored.client_id.as_str().into());
    claims.insert("sub".into(), content.subject.to_string().into());
    claims.insert("scope".into(), content.scopes.join(" ").into());
    claims.insert("iat".into(), stored.created_at.unix_timestamp().into());
    claims.insert("exp".into(), stored.expires_at.unix_timestamp().into());
    claims.insert("auth_time".into(), content.auth_time.into());
    if let Some(acr) = content.acr {
        claims.insert("acr".into(), acr.into());
    }
    if !content.authorization_details.is_empty() {
        claims.insert(
            "authorization_details".into(),
            content.authorization_details.into(),
        );
    }
    Ok(Some(claims))
}
