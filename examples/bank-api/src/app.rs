//! The API's routes and what its handlers share. Every answer carries `Cache-Control: no-store`
//! (account data and payment results must not be cached, RFC 6750 §5.3 and FAPI practice), and
//! unknown routes and methods are answered in the API's JSON error shape.

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderValue, header};
use portcullis_core::accounts::AccountDirectory;
use portcullis_verify::VerifyError;
use portcullis_verify::axum::ApiAuth;

use crate::error::ApiError;
use crate::ledger::ConsentLedger;
use crate::metrics::Counters;
use crate::{accounts, payments};

/// What every handler may use. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The token verifier and this API's public URL.
    pub auth: ApiAuth,
    /// Where the customers' accounts come from (the bank's core system; here the demo one).
    pub directory: Arc<dyn AccountDirectory>,
    /// The payment consents already used.
    pub ledger: Arc<ConsentLedger>,
    /// This API's own counters, served on the metrics listener.
    pub counters: Arc<Counters>,
}

impl FromRef<AppState> for ApiAuth {
    fn from_ref(state: &AppState) -> ApiAuth {
        state.auth.clone()
    }
}

impl AppState {
    /// A refusal of the verifier (`insufficient_scope` from a scope or `authorization_details`
    /// check) answered with this API's challenge.
    #[must_use]
    pub fn deny(&self, error: VerifyError) -> ApiError {
        ApiError::from(self.auth.reject(error))
    }
}

/// The API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/accounts", get(accounts::list))
        .route("/accounts/{id}", get(accounts::get))
        .route("/accounts/{id}/balances", get(accounts::balances))
        .route("/accounts/{id}/transactions", get(accounts::transactions))
        .route("/payments", post(payments::post))
        .fallback(|| async { ApiError::NotFound("no such resource".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::map_response(no_store))
        .with_state(state)
}

async fn no_store(mut response: Response) -> impl IntoResponse {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
