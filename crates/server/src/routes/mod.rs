//! The HTTP endpoints, one module per endpoint family (DESIGN.md, The public surface).

pub mod account;
pub mod admin;
pub mod authorize;
mod code_grant;
mod customer;
pub mod discovery;
pub mod events;
pub mod grants;
pub mod health;
pub mod introspect;
pub mod jwks;
pub mod logout;
pub mod oauth_error;
pub mod par;
mod refresh_grant;
pub mod register;
#[cfg(test)]
mod register_tests;
pub mod revoke;
#[cfg(feature = "test-hooks")]
pub mod test_hooks;
#[cfg(test)]
pub(crate) mod tests;
pub mod token;
#[cfg(test)]
mod token_tests;
pub mod userinfo;

use axum::Router;
use axum::routing::{get, post};

use crate::app::AppState;

/// Every public route.
pub fn router() -> Router<AppState> {
    let (admin, api) = admin::router();
    let document = std::sync::Arc::new(api);
    Router::new()
        .merge(admin)
        .route(
            "/admin/v1/openapi.json",
            get(move || {
                let document = document.clone();
                async move { axum::Json(document.as_ref().clone()) }
            }),
        )
        .route("/.well-known/openid-configuration", get(discovery::get))
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::get),
        )
        .route("/jwks", get(jwks::get))
        .route(token::PATH, post(token::post))
        .route(par::PATH, post(par::post))
        .route(introspect::PATH, post(introspect::post))
        .route(events::PATH, post(events::post))
        .route(revoke::PATH, post(revoke::post))
        .route(authorize::PATH, get(authorize::get))
        .route(userinfo::PATH, get(userinfo::handle).post(userinfo::handle))
        .route(
            "/grants/{grant_id}",
            get(grants::get).delete(grants::delete),
        )
        .route(logout::PATH, get(logout::handle).post(logout::handle))
        .route("/authorize/login", post(authorize::login))
        .route("/authorize/totp", post(authorize::second_factor))
        .route("/authorize/consent", post(authorize::consent))
        .route("/assets/portcullis.css", get(authorize::stylesheet))
        .route(account::PATH, get(account::get))
        .route("/account/login", post(account::login))
        .route("/account/totp", post(account::second_factor))
        .route(
            "/account/grants/{grant_id}/withdraw",
            post(account::withdraw),
        )
        .route(register::PATH, post(register::post))
        .route(
            "/register/{client_id}",
            get(register::get_client)
                .put(register::put_client)
                .delete(register::delete_client),
        )
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
