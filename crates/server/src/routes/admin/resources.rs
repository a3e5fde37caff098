//! `/admin/v1/resources`: the bank's resource servers (DESIGN.md, Resource servers). Scope
//! `admin:resources`. The path parameter is the resource identifier, percent-encoded.

use axum::Json;
use axum::extract::{Path, Query, State};
use http::StatusCode;
use portcullis_core::audit::SecurityEvent;
use portcullis_core::client::ClientId;
use portcullis_core::error::{ErrorCode, OAuthError};
use portcullis_core::resource::{ResourceMetadata, ResourceServer, check_resource_identifier};
use portcullis_core::store::StoreError;
use serde_json::{Map, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AdminCaller, AdminError, ErrorBody, JsonBody, Listing, Page};
use crate::app::AppState;

const SCOPE: &str = "admin:resources";

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_resources, create_resource))
        .routes(routes!(get_resource, replace_resource, delete_resource))
}

fn object(body: Value) -> Result<Map<String, Value>, AdminError> {
    match body {
        Value::Object(map) => Ok(map),
        _ => {
            Err(OAuthError::new(ErrorCode::InvalidRequest, "the body must be a JSON object").into())
        }
    }
}

/// Reads `client_id` out of a body: absent or null means none.
async fn take_client(
    state: &AppState,
    body: &mut Map<String, Value>,
) -> Result<Option<ClientId>, AdminError> {
    match body.remove("client_id") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(id)) => {
            let bad = || {
                OAuthError::new(
                    ErrorCode::InvalidRequest,
                    "client_id names no registered client",
                )
            };
            let id = ClientId::parse(id).map_err(|_| bad())?;
            match state.store.clients().find_by_id(&id).await {
                Ok(_) => Ok(Some(id)),
                Err(StoreError::NotFound) => Err(bad().into()),
                Err(e) => Err(AdminError::internal("resource server client", &e)),
            }
        }
        Some(_) => {
            Err(OAuthError::new(ErrorCode::InvalidRequest, "client_id must be a string").into())
        }
    }
}

async fn record(
    state: &AppState,
    caller: &AdminCaller,
    action: &str,
    resource: &str,
    before: Option<&ResourceServer>,
    after: Option<&ResourceServer>,
) -> Result<(), StoreError> {
    let mut details = Map::new();
    if let Some(before) = before {
        details.insert("before".into(), Value::Object(before.describe()));
    }
    if let Some(after) = after {
        details.insert("after".into(), Value::Object(after.describe()));
    }
    let event = SecurityEvent::new(
        state.clock.now(),
        caller.actor(),
        action,
        Some(resource.to_owned()),
        details,
    );
    state.store.events().append(&event).await.map(drop)
}

/// List resource servers in identifier order.
#[utoipa::path(get, path = "/admin/v1/resources", tag = "resources", params(Page),
    responses((status = 200, body = Listing), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_resources(
    State(state): State<AppState>,
    caller: AdminCaller,
    Query(page): Query<Page>,
) -> Result<Json<Listing>, AdminError> {
    caller.require(SCOPE)?;
    let limit = page.limit();
    let found = state
        .store
        .resource_servers()
        .list(page.after.as_deref(), limit)
        .await
        .map_err(|e| AdminError::store("resource server", e))?;
    let next = (found.len() == limit as usize)
        .then(|| found.last().map(|r| r.resource.clone()))
        .flatten();
    Ok(Json(Listing {
        items: found.iter().map(ResourceServer::describe).collect(),
        next,
    }))
}

/// Register a resource server: `resource` (an https URI, the `aud` of its tokens), `name`,
/// `token_format` (`jwt`/`opaque`), `scopes`, `authorization_details_types`, `client_id`.
#[utoipa::path(post, path = "/admin/v1/resources", tag = "resources",
    request_body(content = Object, description = "The resource server"),
    responses((status = 201, body = Object), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_resource(
    State(state): State<AppState>,
    caller: AdminCaller,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, Json<Map<String, Value>>), AdminError> {
    caller.require(SCOPE)?;
    let mut body = object(body)?;
    let resource = match body.remove("resource") {
        Some(Value::String(r)) => r,
        _ => {
            return Err(OAuthError::new(
                ErrorCode::InvalidRequest,
                "resource is required: an https URI",
            )
            .into());
        }
    };
    check_resource_identifier(&resource)?;
    let client_id = take_client(&state, &mut body).await?;
    let metadata = ResourceMetadata::parse(body)?;
    let now = state.clock.now();
    let server = ResourceServer {
        resource,
        metadata,
        client_id,
        created_at: now,
        updated_at: now,
    };
    state
        .store
        .resource_servers()
        .add(&server)
        .await
        .map_err(|e| AdminError::store("resource server", e))?;
    if let Err(e) = record(
        &state,
        &caller,
        "resource.create",
        &server.resource,
        None,
        Some(&server),
    )
    .await
    {
        if let Err(undo) = state
            .store
            .resource_servers()
            .remove(&server.resource)
            .await
        {
            tracing::error!(error = %undo, "could not undo an unrecorded resource-server change");
        }
        return Err(AdminError::internal("resource event", &e));
    }
    state.resources.invalidate();
    Ok((StatusCode::CREATED, Json(server.describe())))
}

async fn find(state: &AppState, resource: &str) -> Result<ResourceServer, AdminError> {
    state
        .store
        .resource_servers()
        .find(resource)
        .await
        .map_err(|e| AdminError::store("resource server", e))
}

/// Read a resource server.
#[utoipa::path(get, path = "/admin/v1/resources/{resource}", tag = "resources",
    params(("resource" = String, Path, description = "The resource identifier, percent-encoded")),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
async fn get_resource(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(resource): Path<String>,
) -> Result<Json<Map<String, Value>>, AdminError> {
    caller.require(SCOPE)?;
    Ok(Json(find(&state, &resource).await?.describe()))
}

/// Replace a resource server's metadata and client.
#[utoipa::path(put, path = "/admin/v1/resources/{resource}", tag = "resources",
    params(("resource" = String, Path, description = "The resource identifier, percent-encoded")),
    request_body(content = Object, description = "The new metadata"),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn replace_resource(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(resource): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Map<String, Value>>, AdminError> {
    caller.require(SCOPE)?;
    let mut body = object(body)?;
    if let Some(sent) = body.remove("resource")
        && sent.as_str() != Some(resource.as_str())
    {
        return Err(OAuthError::new(
            ErrorCode::InvalidRequest,
            "resource in the body does not match the path",
        )
        .into());
    }
    for generated in ["created_at", "updated_at"] {
        body.remove(generated);
    }
    let before = find(&state, &resource).await?;
    let client_id = take_client(&state, &mut body).await?;
    let metadata = ResourceMetadata::parse(body)?;
    let after = ResourceServer {
        metadata,
        client_id,
        updated_at: state.clock.now(),
        ..before.clone()
    };
    state
        .store
        .resource_servers()
        .update(&after)
        .await
        .map_err(|e| AdminError::store("resource server", e))?;
    if let Err(e) = record(
        &state,
        &caller,
        "resource.update",
        &resource,
        Some(&before),
        Some(&after),
    )
    .await
    {
        if let Err(undo) = state.store.resource_servers().update(&before).await {
            tracing::error!(error = %undo, "could not undo an unrecorded resource-server change");
        }
        return Err(AdminError::internal("resource event", &e));
    }
    state.resources.invalidate();
    Ok(Json(after.describe()))
}

/// Delete a resource server.
#[utoipa::path(delete, path = "/admin/v1/resources/{resource}", tag = "resources",
    params(("resource" = String, Path, description = "The resource identifier, percent-encoded")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_resource(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(resource): Path<String>,
) -> Result<StatusCode, AdminError> {
    caller.require(SCOPE)?;
    let before = find(&state, &resource).await?;
    state
        .store
        .resource_servers()
        .remove(&resource)
        .await
        .map_err(|e| AdminError::store("resource server", e))?;
    if let Err(e) = record(
        &state,
        &caller,
        "resource.delete",
        &resource,
        Some(&before),
        None,
    )
    .await
    {
        if let Err(undo) = state.store.resource_servers().add(&before).await {
            tracing::error!(error = %undo, "could not undo an unrecorded resource-server change");
        }
        return Err(AdminError::internal("resource event", &e));
    }
    state.resources.invalidate();
    Ok(StatusCode::NO_CONTENT)
}
