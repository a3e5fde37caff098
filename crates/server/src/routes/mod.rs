//! The HTTP endpoints, one module per endpoint family (DESIGN.md, The public surface).

pub mod discovery;
pub mod health;
pub mod jwks;
#[cfg(feature = "test-hooks")]
pub mod test_hooks;
#[cfg(test)]
pub(crate) mod tests;

use axum::Router;
use axum::routing::get;

use crate::app::AppState;

/// Every public route.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery::get))
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::get),
        )
        .route("/jwks", get(jwks::get))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .fallback(not_found)
}

async fn not_found() -> (http::StatusCode, axum::Json<serde_json::Value>) {
    (
        http::StatusCode::NOT_FOUND,
        axum::Json(
            serde_json::json!({"error": "not_found", "error_description": "no such endpoint"}),
        ),
    )
}
