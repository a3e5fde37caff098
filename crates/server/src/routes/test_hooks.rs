//! Test-only controls, compiled only with the `test-hooks` feature, which the end-to-end tests
//! enable and a release build cannot (the `compile_error!` below):
//! - `POST /__test/clock` `{"advance_secs": N}` moves the server's clock forward (DESIGN.md:
//!   end-to-end tests of expiry drive the clock instead of sleeping);
//! - `POST /__test/sign` `{"alg": "ES256", "claims": {...}}` signs with the active key, so tests
//!   can check what the JWKS verifies before the endpoints that sign exist;
//! - `GET /__test/client-cert` echoes the `x5t#S256` of the request's client certificate;
//! - `GET /__test/ws` is a WebSocket echo, proving the accept loop carries upgrades;
//! - `POST /__test/audit/seal` seals this replica's audit chain head now, as the timer does, so
//!   that tests need not wait for `audit.seal_interval_secs`.

#[cfg(not(debug_assertions))]
compile_error!("the test-hooks feature must never be part of a release build");

use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use http::StatusCode;
use portcullis_jose::SigningAlg;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::app::AppState;
use crate::tls::client_cert::{CertificateSource, ClientCertificate};

/// The test-only routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/__test/clock", post(advance_clock))
        .route("/__test/sign", post(sign))
        .route("/__test/client-cert", get(client_cert))
        .route("/__test/ws", get(websocket_echo))
        .route("/__test/audit/seal", post(seal_audit_chain))
}

#[derive(Deserialize)]
struct Advance {
    advance_secs: i64,
}

async fn advance_clock(State(state): State<AppState>, Json(body): Json<Advance>) -> Json<Value> {
    state
        .test_clock
        .advance(time::Duration::seconds(body.advance_secs));
    Json(
        json!({"now": state.clock.now().unix_timestamp(), "offset_secs": state.test_clock.offset().whole_seconds()}),
    )
}

#[derive(Deserialize)]
struct Sign {
    alg: SigningAlg,
    claims: Map<String, Value>,
}

async fn sign(State(state): State<AppState>, Json(body): Json<Sign>) -> (StatusCode, Json<Value>) {
    let signed = match state.keys.signer(body.alg).await {
        Ok(key) => key
            .sign_jwt("JWT", &body.claims)
            .map(|jwt| (jwt, key.kid().to_owned()))
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match signed {
        Ok((jwt, kid)) => (StatusCode::OK, Json(json!({"jwt": jwt, "kid": kid}))),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": "server_error", "error_description": e})),
        ),
    }
}

async fn seal_audit_chain(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match state.sealer.seal().await {
        Ok(seal) => (
            StatusCode::OK,
            Json(json!({
                "chain_id": state.store.events().head().map(|h| h.chain_id.to_string()),
                "sealed_chain_seq": seal.map(|s| s.chain_seq),
            })),
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": "server_error", "error_description": e.to_string()})),
        ),
    }
}

async fn client_cert(certificate: Option<Extension<Arc<ClientCertificate>>>) -> Json<Value> {
    Json(match certificate {
        Some(Extension(c)) => json!({
            "x5t#S256": c.x5t_s256(),
            "source": match c.source() { CertificateSource::Handshake => "handshake", CertificateSource::TrustedProxy => "proxy" },
        }),
        None => json!({"x5t#S256": null}),
    })
}

async fn websocket_echo(upgrade: axum::extract::ws::WebSocketUpgrade) -> axum::response::Response {
    upgrade.on_upgrade(|mut socket| async move {
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, axum::extract::ws::Message::Close(_))
                || socket.send(message).await.is_err()
            {
                break;
            }
        }
    })
}
