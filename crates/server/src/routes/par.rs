//! The pushed authorization request endpoint (RFC 9126): a client-authenticated `POST` of the
//! authorization request, checked against the client's registration
//! ([`portcullis_core::authz::request`]), stored under the hash of a one-time `request_uri` that
//! is bound to the client and expires within `authorization.request_lifetime_secs` (FAPI2 SP
//! 5.3.2.2-2, -12).
//!
//! Order of checks: the form (`invalid_request`), the client (`invalid_client`, 401), the request
//! itself, the resources it names (`invalid_target`), then a DPoP proof if one is sent: it binds
//! the future code to its key (RFC 9449 §10), and must agree with a `dpop_jkt` parameter.
//! Non-POST methods get 405 from the router (RFC 9126 §2.3, checklist #48).

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use portcullis_core::authz::request;
use portcullis_core::authz::request_object::{self, RequestObjectPolicy};
use portcullis_core::client::ClientProfile;
use portcullis_core::client::secret::ClientSecret;
use portcullis_core::error::{ErrorCode, OAuthError};
use portcullis_core::store::PushedRequest;
use portcullis_core::store::{FirstUse, ReplayKey, ReplayKind};
use portcullis_jose::SigningAlg;
use time::Duration;

use crate::app::AppState;
use crate::client_auth::{AuthenticatedClient, Endpoint, lacks_signing_key};
use crate::form::Form;
use crate::routes::oauth_error::{ErrorResponse, client_auth_failed};
use crate::sender::{self, Possession, PossessionError};
use crate::tls::client_cert::{ClientCertificate, ConnectionInfo};

/// The path.
pub const PATH: &str = "/par";

/// The prefix of every `request_uri` (RFC 9126 §2.2).
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// `POST /par`.
pub async fn post(
    State(state): State<AppState>,
    info: Option<Extension<ConnectionInfo>>,
    certificate: Option<Extension<Arc<ClientCertificate>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let certificate = certificate.map(|Extension(c)| c);
    match push(
        &state,
        info.as_ref().map(|Extension(i)| i),
        certificate.as_deref(),
        &headers,
        &body,
    )
    .await
    {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

/// Verifies a request object with the client's keys (refetching its `jwks_uri` once for an
/// unknown `kid`) and spends its `jti`; returns its parameters.
async fn request_object(
    state: &AppState,
    client: &AuthenticatedClient,
    jwt: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, ErrorResponse> {
    let as_object_error = |e: OAuthError| {
        OAuthError::new(
            ErrorCode::InvalidRequestObject,
            format!("request object: {}", e.error_description),
        )
    };
    let policy = RequestObjectPolicy {
        algorithms: client
            .metadata
            .request_object_signing_alg
            .map_or_else(|| SigningAlg::ALL.to_vec(), |alg| vec![alg]),
        issuer: state.urls.issuer.clone(),
        max_future_skew: Duration::seconds(10),
    };
    let now = state.clock.now();
    let client_id = &client.client.client_id;
    let mut keys = state
        .client_auth
        .client_keys(&client.metadata, false)
        .await
        .map_err(as_object_error)?;
    // An unknown kid may mean the client rotated its keys: refetch (rate-limited) once.
    if client.metadata.jwks_uri.is_some() && lacks_signing_key(jwt, &keys) {
        keys = state
            .client_auth
            .client_keys(&client.metadata, true)
            .await
            .map_err(as_object_error)?;
    }
    let verified = request_object::verify(jwt, client_id, &keys, &policy, now)?;
    if let Some(jti) = &verified.jti {
        let key = ReplayKey {
            kind: ReplayKind::RequestObject,
            issuer: client_id.as_str(),
            id: jti,
        };
        match state
            .store
            .replay()
            .record(key, verified.expires_at, now)
            .await
        {
            Ok(FirstUse::First) => {}
            Ok(FirstUse::Replayed) => {
                return Err(OAuthError::new(
                    ErrorCode::InvalidRequestObject,
                    "the request object has been used before: its jti is single-use",
                )
                .into());
            }
            Err(e) => return Err(server_error("par: replay store", &e)),
        }
    }
    Ok(verified.parameters)
}

fn server_error(context: &str, error: &dyn std::fmt::Display) -> ErrorResponse {
    tracing::error!(%error, "{context}");
    ErrorResponse::new(OAuthError::server_error())
}

async fn push(
    state: &AppState,
    info: Option<&ConnectionInfo>,
    certificate: Option<&ClientCertificate>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ErrorResponse> {
    let form = Form::from_request_with(headers, body, &["resource"])?;
    let client = state
        .client_auth
        .authenticate_request(&form, headers, certificate, Endpoint::Par)
        .await
        .map_err(|e| client_auth_failed(e, "par"))?;
    // Only now that the client has authenticated may its quota be spent (crate::ratelimit).
    crate::ratelimit::admit_client(state, &client.client, Endpoint::Par).await?;

    // FAPI2 MS 5.3.1: a signed request object, required for message-signing clients and those
    // registered with require_signed_request_object; only its parameters count (RFC 9101 §6.3).
    let parameters = match form.get("request") {
        Some(jwt) => request_object(state, &client, jwt).await?,
        None if client.client.profile == ClientProfile::Fapi2MessageSigning
            || client.metadata.require_signed_request_object =>
        {
            // Checklist #58.
            return Err(OAuthError::new(
                ErrorCode::InvalidRequest,
                "this client must push a signed request object (FAPI2 MS 5.3.1-1, require_signed_request_object)",
            )
            .into());
        }
        None => form.to_json(),
    };
    let mut request = request::check(
        &parameters,
        &client.client.client_id,
        &client.metadata,
        client.client.profile,
    )?;

    // Checklist #57: every resource is a registered resource server.
    for resource in &request.resources {
        match state.resources.find(resource).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(OAuthError::new(
                    ErrorCode::InvalidTarget,
                    "resource names no registered resource server (RFC 8707 §2)",
                )
                .into());
            }
            Err(e) => return Err(server_error("par: resource servers", &e)),
        }
    }

    // RFC 9449 §10: a DPoP proof at PAR binds the code to its key; dpop_jkt must agree with it.
    let now = state.clock.now();
    if headers.contains_key(sender::DPOP) {
        let url = sender::request_url(&state.urls, info, PATH);
        let possession = Possession {
            headers,
            method: "POST",
            url: &url,
            certificate,
            nonces: state.dpop_nonces.as_deref(),
        };
        let proof = sender::check_dpop(&state.store, &possession, None, now)
            .await
            .map_err(|e| match e {
                PossessionError::Refused(e) if e.error == ErrorCode::UseDpopNonce => {
                    ErrorResponse {
                        dpop_nonce: state.dpop_nonces.as_ref().map(|n| n.current(now)),
                        ..ErrorResponse::new(e)
                    }
                }
                PossessionError::Refused(e) => ErrorResponse::new(e),
                PossessionError::Store(e) => server_error("par: replay store", &e),
            })?;
        match &request.dpop_jkt {
            // Checklist #40.
            Some(jkt) if *jkt != proof.jkt => {
                return Err(OAuthError::new(
                    ErrorCode::InvalidDpopProof,
                    "dpop_jkt is not the thumbprint of the DPoP proof's key (RFC 9449 §10.1)",
                )
                .into());
            }
            _ => request.dpop_jkt = Some(proof.jkt),
        }
    }

    let token =
        ClientSecret::generate(state.rng.as_ref()).map_err(|e| server_error("par: random", &e))?;
    let lifetime = state.config.authorization.request_lifetime_secs;
    let pushed = PushedRequest {
        handle: token.hash(),
        client_id: client.client.client_id.clone(),
        parameters: request.to_map(),
        created_at: now,
        expires_at: now + Duration::seconds(i64::from(lifetime)),
    };
    state
        .store
        .pushed_requests()
        .add(&pushed)
        .await
        .map_err(|e| server_error("par: store", &e))?;
    tracing::info!(client_id = %client.client.client_id, "authorization request pushed");

    let body = serde_json::json!({
        "request_uri": format!("{REQUEST_URI_PREFIX}{}", token.expose()),
        "expires_in": lifetime,
    });
    let mut response = (StatusCode::CREATED, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(nonce) = state
        .dpop_nonces
        .as_ref()
        .and_then(|n| HeaderValue::from_str(&n.current(now)).ok())
    {
        headers.insert("dpop-nonce", nonce);
    }
    Ok(response)
}
