//! Token introspection (RFC 7662) for the bank's resource servers: the caller authenticates as a
//! client (401 `invalid_client` otherwise, checklist #61) that a registered resource server acts
//! as; it learns about access tokens (JWT or opaque) whose audience is one of its resources, and
//! about refresh tokens issued to itself. Anything unknown, expired, revoked, of a withdrawn
//! grant or not the caller's is `{"active": false}` and nothing else (RFC 7662 §2.2).
//!
//! Access tokens are judged by [`crate::liveness`]: cached per replica, but never trusted past a
//! revocation anywhere. Refresh tokens are looked up in the store each time.
//!
//! With `Accept: application/token-introspection+jwt` the answer is an RFC 9701 JWT (`typ`
//! `token-introspection+jwt`, `iss`, `aud` the caller, `iat`, and the answer under
//! `token_introspection`), signed with the caller's `introspection_signed_response_alg` or else
//! the access-token algorithm.

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
    // Only now that the client has authenticated may its quota be spent (crate::ratelimit).
    crate::ratelimit::admit_client(state, &caller.client, Endpoint::Introspect).await?;
    let token = form.require("token")?;
    let signed = wants_jwt(headers);
    let reply = |body: Value| respond(state, &caller, body, signed);

    let now = state.clock.now();
    // token_type_hint is a hint only (RFC 7662 §2.1): every kind is tried, the hinted one first.
    // Our refresh tokens are never JWTs, so a JWT is looked up as an access token only.
    let refresh_first = form.get("token_type_hint") == Some("refresh_token");
    let may_be_refresh = token.split('.').count() != 3;
    if refresh_first && let Some(claims) = refresh_token_claims(state, &caller, token, now).await? {
        return reply(active(&claims, "refresh_token")).await;
    }
    if let Some((claims, token_type)) = access_token_for(state, &caller, token, now).await? {
        return reply(active(&claims, token_type)).await;
    }
    if !refresh_first
        && may_be_refresh
        && let Some(claims) = refresh_token_claims(state, &caller, token, now).await?
    {
        return reply(active(&claims, "refresh_token")).await;
    }
    reply(json!({ "active": false })).await
}

/// A live access token whose audience is one of the caller's resources, and its `token_type`.
async fn access_token_for(
    state: &AppState,
    caller: &AuthenticatedClient,
    token: &str,
    now: OffsetDateTime,
) -> Result<Option<(Arc<Map<String, Value>>, &'static str)>, ErrorResponse> {
    // Access tokens: the resources the caller stands for.
    let snapshot = state
        .resources
        .snapshot()
        .await
        .map_err(|e| server_error("introspect: resource servers", &e))?;
    // A client no resource server acts as learns nothing about access tokens: not its own.
    if !snapshot.has_client(&caller.client.client_id) {
        return Ok(None);
    }
    let claims = match crate::liveness::live_claims_under(state, token, now, caller.epoch).await {
        Ok(Some(claims)) => claims,
        Ok(None) => return Ok(None),
        Err(e) => return Err(server_error("introspect: access tokens", &e)),
    };
    if !snapshot.client_in_audience(&caller.client.client_id, claims.get("aud")) {
        return Ok(None);
    }
    let token_type = if claims.get("cnf").and_then(|c| c.get("jkt")).is_some() {
        "DPoP"
    } else {
        "Bearer"
    };
    Ok(Some((claims, token_type)))
}

/// Whether the caller asked for an RFC 9701 signed answer.
fn wants_jwt(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            item.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case(JWT_MEDIA_TYPE))
        })
}

/// The media type of an RFC 9701 answer.
pub const JWT_MEDIA_TYPE: &str = "application/token-introspection+jwt";

/// The answer, as JSON or as an RFC 9701 JWT.
async fn respond(
    state: &AppState,
    caller: &AuthenticatedClient,
    body: Value,
    signed: bool,
) -> Result<Response, ErrorResponse> {
    if !signed {
        return Ok(answer(body));
    }
    let alg = caller
        .metadata
        .introspection_signed_response_alg
        .unwrap_or_else(|| state.config.access_token_alg());
    let key = state
        .keys
        .signer(alg)
        .await
        .map_err(|e| server_error("introspect: signing key", &e))?;
    let mut claims = Map::new();
    claims.insert("iss".into(), state.urls.issuer.clone().into());
    claims.insert("aud".into(), caller.client.client_id.as_str().into());
    claims.insert("iat".into(), state.clock.now().unix_timestamp().into());
    claims.insert("token_introspection".into(), body);
    let jwt = key
        .sign_jwt("token-introspection+jwt", &claims)
        .map_err(|e| server_error("introspect: signing", &e))?;
    let mut response = jwt.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JWT_MEDIA_TYPE),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

fn active(claims: &Map<String, Value>, token_type: &str) -> Value {
    let mut body = Map::new();
    body.insert("active".into(), true.into());
    for name in MEMBERS {
        if let Some(value) = claims.get(name) {
            body.insert(name.into(), value.clone());
        }
    }
    body.insert("token_type".into(), token_type.into());
    Value::Object(body)
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
