//! `/healthz` (liveness: the process answers) and `/readyz` (readiness: the database answers
//! within two seconds). Neither touches anything secret, so load balancers may call them freely.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use http::StatusCode;
use serde_json::{Value, json};

use crate::app::AppState;

/// `GET /healthz`.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => (
            StatusCode::OK,
            Json(json!({"status": "ready", "database": state.store.backend().as_str()})),
        ),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "readiness check: database failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable"})),
            )
        }
        Err(_) => {
            tracing::error!("readiness check: database did not answer within 2 s");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable"})),
            )
        }
    }
}
