//! `/admin/v1/users`: the bank's customers. Scope `admin:users`. Passwords go in, never out; a
//! TOTP enrolment shows its `otpauth://` URI once.

use axum::Json;
use axum::extract::{Path, Query, State};
use http::StatusCode;
use portcullis_core::error::{ErrorCode, OAuthError};
use portcullis_core::user::Username;
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::{AdminCaller, AdminError, ErrorBody, JsonBody, Listing, Page};
use crate::app::AppState;
use crate::revocation::{Reason, revoke_grant};
use crate::users::{self, UserError};

const SCOPE: &str = "admin:users";

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user))
        .routes(routes!(set_password))
        .routes(routes!(disable_user))
        .routes(routes!(enable_user))
        .routes(routes!(enrol_totp, remove_totp))
}

fn from_users(error: UserError) -> AdminError {
    match error {
        UserError::Invalid(e) => e.into(),
        UserError::NotFound => AdminError::NotFound("no such user".into()),
        UserError::Conflict => AdminError::Conflict("the username is taken".into()),
        UserError::Store(e) => AdminError::internal("users", &e),
        UserError::Unavailable => AdminError::internal("users", &"hashing or rng unavailable"),
    }
}

fn user_id(id: &str) -> Result<Uuid, AdminError> {
    Uuid::parse_str(id).map_err(|_| AdminError::NotFound("no such user".into()))
}

/// A new user.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// The login name.
    pub username: String,
    /// The initial password (8 to 128 characters).
    #[schema(value_type = String, format = Password)]
    pub password: Zeroizing<String>,
    /// OIDC standard claims (OIDC Core §5.1); `sub` is the user's id and cannot be set.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub claims: Map<String, Value>,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A change to a user.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    /// The full new set of claims.
    #[schema(value_type = Object)]
    pub claims: Map<String, Value>,
}

/// A new password.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    /// The password (8 to 128 characters).
    #[schema(value_type = String, format = Password)]
    pub password: Zeroizing<String>,
}

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword([redacted])")
    }
}

/// List users in username order.
#[utoipa::path(get, path = "/admin/v1/users", tag = "users", params(Page),
    responses((status = 200, body = Listing), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_users(
    State(state): State<AppState>,
    caller: AdminCaller,
    Query(page): Query<Page>,
) -> Result<Json<Listing>, AdminError> {
    caller.require(SCOPE)?;
    let after = page
        .after
        .as_deref()
        .map(Username::parse)
        .transpose()
        .map_err(|_| OAuthError::new(ErrorCode::InvalidRequest, "after is not a username"))?;
    let limit = page.limit();
    let found = users::list_users(state.store.as_ref(), after.as_ref(), limit)
        .await
        .map_err(from_users)?;
    let next = (found.len() == limit as usize)
        .then(|| found.last().map(|u| u.username.as_str().to_owned()))
        .flatten();
    Ok(Json(Listing {
        items: found.iter().map(users::describe).collect(),
        next,
    }))
}

/// Create a user.
#[utoipa::path(post, path = "/admin/v1/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = Object), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_user(
    State(state): State<AppState>,
    caller: AdminCaller,
    JsonBody(body): JsonBody<NewUser>,
) -> Result<(StatusCode, Json<Map<String, Value>>), AdminError> {
    caller.require(SCOPE)?;
    let user = users::create_user(
        state.store.as_ref(),
        &state.passwords,
        state.rng.as_ref(),
        state.clock.as_ref(),
        &caller.actor(),
        &body.username,
        body.password,
        body.claims,
    )
    .await
    .map_err(from_users)?;
    Ok((StatusCode::CREATED, Json(users::describe(&user))))
}

/// Read a user.
#[utoipa::path(get, path = "/admin/v1/users/{user_id}", tag = "users",
    params(("user_id" = String, Path, description = "The user's id (the sub of their tokens)")),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
async fn get_user(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(id): Path<String>,
) -> Result<Json<Map<String, Value>>, AdminError> {
    caller.require(SCOPE)?;
    let user = users::get_user(state.store.as_ref(), user_id(&id)?)
        .await
        .map_err(from_users)?;
    Ok(Json(users::describe(&user)))
}

/// Replace a user's claims.
#[utoipa::path(patch, path = "/admin/v1/users/{user_id}", tag = "users", request_body = UserUpdate,
    params(("user_id" = String, Path, description = "The user")),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_user(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<UserUpdate>,
) -> Result<Json<Map<String, Value>>, AdminError> {
    caller.require(SCOPE)?;
    let user = users::update_claims(
        state.store.as_ref(),
        state.clock.as_ref(),
        &caller.actor(),
        user_id(&id)?,
        body.claims,
    )
    .await
    .map_err(from_users)?;
    Ok(Json(users::describe(&user)))
}

/// Set a user's password.
#[utoipa::path(put, path = "/admin/v1/users/{user_id}/password", tag = "users", request_body = NewPassword,
    params(("user_id" = String, Path, description = "The user")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn set_password(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<NewPassword>,
) -> Result<StatusCode, AdminError> {
    caller.require(SCOPE)?;
    users::set_password(
        state.store.as_ref(),
        &state.passwords,
        state.clock.as_ref(),
        &caller.actor(),
        user_id(&id)?,
        body.password,
    )
    .await
    .map_err(from_users)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_disabled(
    state: &AppState,
    caller: &AdminCaller,
    id: &str,
    disabled: bool,
) -> Result<Json<Map<String, Value>>, AdminError> {
    caller.require(SCOPE)?;
    let user_id = user_id(id)?;
    let user = users::set_disabled(
        state.store.as_ref(),
        state.clock.as_ref(),
        &caller.actor(),
        user_id,
        disabled,
    )
    .await
    .map_err(from_users)?;
    let mut shown = users::describe(&user);
    if disabled {
        let revoked = end_grants(state, caller, user_id).await?;
        shown.insert("grants_revoked".into(), revoked.into());
    }
    Ok(Json(shown))
}

/// Revokes every live grant of a disabled customer, with each token under it, and tells the
/// resource servers (`crate::revocation::revoke_grant`): a customer the bank disabled must not
/// stay reachable through a TPP's tokens until they expire. Done on every disable, so that a
/// disable retried after a failure here finishes the job. How many this call revoked.
async fn end_grants(
    state: &AppState,
    caller: &AdminCaller,
    user_id: Uuid,
) -> Result<usize, AdminError> {
    let grants = state
        .store
        .grants()
        .list_for_subject(user_id)
        .await
        .map_err(|e| AdminError::store("grant", e))?;
    let reason = Reason::Operator(caller.actor());
    let mut revoked = 0;
    for grant in grants.iter().filter(|g| g.revoked_at.is_none()) {
        if revoke_grant(state, grant, &reason)
            .await
            .map_err(|e| AdminError::internal("revoking a disabled user's grants", &e))?
        {
            revoked += 1;
        }
    }
    Ok(revoked)
}

/// Disable a user: they can no longer log in, and every grant they gave (with each token under
/// it) is revoked at once; `grants_revoked` says how many. Enabling them again does not bring
/// the grants back.
#[utoipa::path(post, path = "/admin/v1/users/{user_id}/disable", tag = "users",
    params(("user_id" = String, Path, description = "The user")),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
async fn disable_user(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(id): Path<String>,
) -> Result<Json<Map<String, Value>>, AdminError> {
    set_disabled(&state, &caller, &id, true).await
}

/// Enable a disabled user again.
#[utoipa::path(post, path = "/admin/v1/users/{user_id}/enable", tag = "users",
    params(("user_id" = String, Path, description = "The user")),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
async fn enable_user(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(id): Path<String>,
) -> Result<Json<Map<String, Value>>, AdminError> {
    set_disabled(&state, &caller, &id, false).await
}

/// Enrol (or re-enrol) a TOTP second factor; the `otpauth://` URI is shown this once.
#[utoipa::path(post, path = "/admin/v1/users/{user_id}/totp", tag = "users",
    params(("user_id" = String, Path, description = "The user")),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
async fn enrol_totp(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AdminError> {
    caller.require(SCOPE)?;
    let label = url::Url::parse(&state.urls.issuer)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "Portcullis".into());
    let (user, uri) = users::enrol_totp(
        state.store.as_ref(),
        &state.kek,
        state.rng.as_ref(),
        state.clock.as_ref(),
        &caller.actor(),
        user_id(&id)?,
        &label,
    )
    .await
    .map_err(from_users)?;
    let mut shown = users::describe(&user);
    shown.insert("otpauth_uri".into(), uri.as_str().into());
    Ok(Json(Value::Object(shown)))
}

/// Remove the TOTP second factor.
#[utoipa::path(delete, path = "/admin/v1/users/{user_id}/totp", tag = "users",
    params(("user_id" = String, Path, description = "The user")),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
async fn remove_totp(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(id): Path<String>,
) -> Result<Json<Map<String, Value>>, AdminError> {
    caller.require(SCOPE)?;
    let user = users::remove_totp(
        state.store.as_ref(),
        state.clock.as_ref(),
        &caller.actor(),
        user_id(&id)?,
    )
    .await
    .map_err(from_users)?;
    Ok(Json(users::describe(&user)))
}
