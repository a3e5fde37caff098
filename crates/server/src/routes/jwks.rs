//! `/jwks`: the public signing keys, next, active and retired (DESIGN.md, Keys). Only public
//! members, unique `kid`s (SP 5.4.2), and a `Cache-Control: max-age` that key rotation honours:
//! a new key is published at least that long before it signs.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use http::{HeaderValue, header};

use crate::app::AppState;

/// `GET /jwks`.
pub async fn get(State(state): State<AppState>) -> impl IntoResponse {
    let jwks = state.keys.jwks().await;
    let cache_control = HeaderValue::from_str(&format!(
        "public, max-age={}",
        state.keys.jwks_max_age().whole_seconds()
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("no-cache"));
    ([(header::CACHE_CONTROL, cache_control)], Json(jwks))
}
