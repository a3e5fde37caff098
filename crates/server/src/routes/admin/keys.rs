//! `/admin/v1/keys`: list the signing keys and rotate them. Scope `admin:keys`. Only public parts
//! are ever shown.

use axum::Json;
use axum::extract::State;
use portcullis_core::audit::SecurityEvent;
use portcullis_jose::SigningAlg;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AdminCaller, AdminError, ErrorBody, JsonBody};
use crate::app::AppState;
use crate::keys;

const SCOPE: &str = "admin:keys";

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_keys))
        .routes(routes!(rotate_keys))
}

/// A signing key as the admin API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyView {
    /// The RFC 7638 thumbprint.
    pub kid: String,
    /// PS256, ES256 or EdDSA.
    pub alg: String,
    /// next, active, retired or expired.
    pub state: String,
    /// When it was made (and published), Unix seconds.
    pub created_at: i64,
    /// When it signs from, Unix seconds.
    pub activates_at: i64,
    /// The public JWK.
    #[schema(value_type = Object)]
    pub public_jwk: Map<String, Value>,
}

/// What to rotate.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// Algorithms to rotate; every configured one when absent.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub algs: Vec<SigningAlg>,
}

/// List every signing key with its state.
#[utoipa::path(get, path = "/admin/v1/keys", tag = "keys",
    responses((status = 200, body = Vec<KeyView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_keys(
    State(state): State<AppState>,
    caller: AdminCaller,
) -> Result<Json<Vec<KeyView>>, AdminError> {
    caller.require(SCOPE)?;
    let listing = keys::list(
        state.store.as_ref(),
        state.clock.as_ref(),
        &state.config.keys,
    )
    .await
    .map_err(|e| AdminError::internal("keys", &e))?;
    Ok(Json(
        listing
            .into_iter()
            .map(|entry| KeyView {
                kid: entry.key.kid.clone(),
                alg: entry.key.alg.as_str().to_owned(),
                state: entry.state.as_str().to_owned(),
                created_at: entry.key.created_at.unix_timestamp(),
                activates_at: entry.key.activates_at.unix_timestamp(),
                public_jwk: entry.key.public_jwk.members().clone(),
            })
            .collect(),
    ))
}

/// Add a new key per algorithm: published now, signing once every cache has seen it. Expired keys
/// are deleted.
#[utoipa::path(post, path = "/admin/v1/keys/rotate", tag = "keys",
    request_body(content = RotateRequest, description = "Optional: the algorithms to rotate"),
    responses((status = 200, body = Vec<KeyView>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn rotate_keys(
    State(state): State<AppState>,
    caller: AdminCaller,
    body: Option<JsonBody<RotateRequest>>,
) -> Result<Json<Vec<KeyView>>, AdminError> {
    caller.require(SCOPE)?;
    let request = body.map(|JsonBody(r)| r).unwrap_or_default();
    let algs = if request.algs.is_empty() {
        state.config.keys.algorithms.clone()
    } else {
        request.algs
    };
    if let Some(alg) = algs
        .iter()
        .find(|a| !state.config.keys.algorithms.contains(a))
    {
        return Err(portcullis_core::error::OAuthError::new(
            portcullis_core::error::ErrorCode::InvalidRequest,
            format!("{alg} is not one of the configured keys.algorithms"),
        )
        .into());
    }
    let added = keys::rotate(
        state.store.as_ref(),
        &state.kek,
        &state.rng,
        state.clock.as_ref(),
        &state.config.keys,
        &algs,
    )
    .await
    .map_err(|e| AdminError::internal("key rotation", &e))?;
    state.keys.reload().await;
    let now = state.clock.now();
    let views: Vec<KeyView> = added
        .iter()
        .map(|key| KeyView {
            kid: key.kid.clone(),
            alg: key.alg.as_str().to_owned(),
            state: if key.activates_at <= now {
                "active"
            } else {
                "next"
            }
            .to_owned(),
            created_at: key.created_at.unix_timestamp(),
            activates_at: key.activates_at.unix_timestamp(),
            public_jwk: key.public_jwk.members().clone(),
        })
        .collect();
    let mut details = Map::new();
    details.insert(
        "added".into(),
        Value::Array(
            views
                .iter()
                .map(|v| serde_json::json!({"kid": v.kid, "alg": v.alg, "activates_at": v.activates_at}))
                .collect(),
        ),
    );
    let event = SecurityEvent::new(now, caller.actor(), "key.rotate", None, details);
    if let Err(e) = state.store.events().append(&event).await {
        // Fail closed: keys whose creation cannot be recorded are removed again (they are only
        // published, not yet signing).
        for key in &added {
            if let Err(undo) = state.store.signing_keys().remove(&key.kid).await {
                tracing::error!(kid = %key.kid, error = %undo, "could not undo an unrecorded key rotation");
            }
        }
        return Err(AdminError::internal("key rotation event", &e));
    }
    Ok(Json(views))
}
