//! `/admin/v1/clients`: register, read, list, replace, delete clients and rotate their secrets.
//! Scope `admin:clients`. Bodies are RFC 7591 metadata plus the operator-only `profile`,
//! `access_token_format`, `access_token_lifetime_secs`, `refresh_token_lifetime_secs`,
//! `rate_limit_tier` and `admin_scopes`. A secret appears in a response only when it is made.

use axum::Json;
use axum::extract::{Path, Query, State};
use http::StatusCode;
use portcullis_core::client::ClientId;
use portcullis_core::client::register::describe;
use portcullis_core::error::{ErrorCode, OAuthError};
use serde_json::{Map, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AdminCaller, AdminError, ErrorBody, JsonBody, Listing, Page};
use crate::app::AppState;
use crate::registry::{self, ClientUpdate, RegistryError};

const SCOPE: &str = "admin:clients";

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_clients, create_client))
        .routes(routes!(get_client, replace_client, delete_client))
        .routes(routes!(rotate_secret))
}

fn client_id(value: String) -> Result<ClientId, AdminError> {
    ClientId::parse(value).map_err(|_| AdminError::NotFound("no such client".into()))
}

fn from_registry(error: RegistryError) -> AdminError {
    match error {
        RegistryError::Invalid(e) => e.into(),
        RegistryError::Store(e) => AdminError::store("client", e),
        RegistryError::Rng => AdminError::internal("client", &"random number generator"),
    }
}

/// A client's `rate_limit_tier` must be one `[rate_limits.tiers]` defines: a typo would
/// otherwise silently give the client the default tier.
fn configured_tier(
    state: &AppState,
    settings: &portcullis_core::client::settings::ClientSettings,
) -> Result<(), AdminError> {
    match &settings.rate_limit_tier {
        Some(tier) if !state.rate_limits.defines_tier(tier) => Err(OAuthError::new(
            ErrorCode::InvalidClientMetadata,
            format!(
                "rate_limit_tier {tier} is not a tier of the configuration (rate_limits.tiers)"
            ),
        )
        .into()),
        _ => Ok(()),
    }
}

fn object(body: Value) -> Result<Map<String, Value>, AdminError> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(OAuthError::new(
            ErrorCode::InvalidClientMetadata,
            "the body must be a JSON object of client metadata",
        )
        .into()),
    }
}

/// List clients in `client_id` order.
#[utoipa::path(get, path = "/admin/v1/clients", tag = "clients", params(Page),
    responses((status = 200, body = Listing), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_clients(
    State(state): State<AppState>,
    caller: AdminCaller,
    Query(page): Query<Page>,
) -> Result<Json<Listing>, AdminError> {
    caller.require(SCOPE)?;
    let after = page.after.clone().map(client_id).transpose()?;
    let limit = page.limit();
    let clients = state
        .store
        .clients()
        .list(after.as_ref(), limit)
        .await
        .map_err(|e| AdminError::store("client", e))?;
    let next = (clients.len() == limit as usize)
        .then(|| clients.last().map(|c| c.client_id.to_string()))
        .flatten();
    Ok(Json(Listing {
        items: clients.iter().map(describe).collect(),
        next,
    }))
}

/// Register a client. The response shows its `client_id` and, for `client_secret_basic`/`_post`
/// (`oauth` profile only), its `client_secret`, this once.
#[utoipa::path(post, path = "/admin/v1/clients", tag = "clients",
    request_body(content = Object, description = "RFC 7591 metadata plus profile (default fapi2) and operator settings"),
    responses((status = 201, body = Object), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn create_client(
    State(state): State<AppState>,
    caller: AdminCaller,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, Json<Map<String, Value>>), AdminError> {
    caller.require(SCOPE)?;
    let (metadata, profile, settings) = registry::operator_request(object(body)?)?;
    configured_tier(&state, &settings)?;
    let registered = registry::create_client(
        state.store.as_ref(),
        state.rng.as_ref(),
        state.clock.as_ref(),
        &caller.actor(),
        crate::registry::NewClient {
            request: metadata,
            profile: profile.unwrap_or(portcullis_core::client::ClientProfile::Fapi2),
            settings,
            registration_token: None,
        },
    )
    .await
    .map_err(from_registry)?;
    let mut shown = describe(&registered.client);
    if let Some(secret) = &registered.secret {
        shown.insert("client_secret".into(), secret.expose().into());
        shown.insert("client_secret_expires_at".into(), 0.into());
    }
    Ok((StatusCode::CREATED, Json(shown)))
}

/// Read a client.
#[utoipa::path(get, path = "/admin/v1/clients/{client_id}", tag = "clients",
    params(("client_id" = String, Path, description = "The client")),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
async fn get_client(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(id): Path<String>,
) -> Result<Json<Map<String, Value>>, AdminError> {
    caller.require(SCOPE)?;
    let client = state
        .store
        .clients()
        .find_by_id(&client_id(id)?)
        .await
        .map_err(|e| AdminError::store("client", e))?;
    Ok(Json(describe(&client)))
}

/// Replace a client's metadata (RFC 7592 §2.2 semantics: members left out are removed). `profile`
/// and settings members, when present, replace the operator's settings; when absent they stay.
#[utoipa::path(put, path = "/admin/v1/clients/{client_id}", tag = "clients",
    params(("client_id" = String, Path, description = "The client")),
    request_body(content = Object, description = "The full new RFC 7591 metadata"),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn replace_client(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Map<String, Value>>, AdminError> {
    caller.require(SCOPE)?;
    let mut body = object(body)?;
    let id = client_id(id)?;
    // The identifier and server-assigned members may be echoed back (RFC 7592 §2.2) but not changed.
    if let Some(sent) = body.remove("client_id")
        && sent.as_str() != Some(id.as_str())
    {
        return Err(OAuthError::new(
            ErrorCode::InvalidRequest,
            "client_id in the body does not match the path",
        )
        .into());
    }
    body.remove("client_id_issued_at");
    let had_settings = portcullis_core::client::settings::ClientSettings::MEMBERS
        .iter()
        .any(|m| body.contains_key(*m));
    let (metadata, profile, settings) = registry::operator_request(body)?;
    configured_tier(&state, &settings)?;
    let updated = registry::update_client(
        state.store.as_ref(),
        state.clock.as_ref(),
        &caller.actor(),
        &id,
        ClientUpdate {
            metadata,
            profile,
            settings: had_settings.then_some(settings),
        },
    )
    .await
    .map_err(from_registry)?;
    Ok(Json(describe(&updated)))
}

/// Delete a client.
#[utoipa::path(delete, path = "/admin/v1/clients/{client_id}", tag = "clients",
    params(("client_id" = String, Path, description = "The client")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_client(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, AdminError> {
    caller.require(SCOPE)?;
    registry::delete_client(
        state.store.as_ref(),
        state.clock.as_ref(),
        &caller.actor(),
        &client_id(id)?,
    )
    .await
    .map_err(from_registry)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Make a new secret for a `client_secret_basic`/`_post` client, shown this once; the old one
/// stops working.
#[utoipa::path(post, path = "/admin/v1/clients/{client_id}/secret", tag = "clients",
    params(("client_id" = String, Path, description = "The client")),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn rotate_secret(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AdminError> {
    caller.require(SCOPE)?;
    let id = client_id(id)?;
    let secret = registry::rotate_secret(
        state.store.as_ref(),
        state.rng.as_ref(),
        state.clock.as_ref(),
        &caller.actor(),
        &id,
    )
    .await
    .map_err(from_registry)?;
    Ok(Json(serde_json::json!({
        "client_id": id.as_str(),
        "client_secret": secret.expose(),
        "client_secret_expires_at": 0,
    })))
}
