//! Token revocation (RFC 7009). The caller authenticates as a client (401 `invalid_client`
//! otherwise). It may revoke:
//! - its own refresh tokens: that ends the grant the token belongs to, with every refresh and
//!   access token issued under it (RFC 7009 §2.1 "SHOULD also invalidate all access tokens
//!   based on the same authorization grant");
//! - its own access tokens, and, as a resource server's client, access tokens whose audience is
//!   that resource: the token's `jti` goes on the deny list until the token expires.
//!
//! `token_type_hint` picks what is tried first, never what is tried (§2.1). A token that is
//! unknown, malformed, expired or already revoked gets 200 and nothing happens (§2.2), so that
//! revocation can be retried safely. A live token the caller may not revoke is refused with
//! 400 `unauthorized_client` and stays valid (checklist #62). Every revocation reaches
//! introspection, userinfo and refresh on every replica at once, and the resource servers
//! through the event feed (see [`crate::revocation`]).

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use portcullis_core::client::secret::SecretHash;
use portcullis_core::error::{ErrorCode, OAuthError};
use portcullis_core::store::StoreError;
use serde_json::Value;

use crate::app::AppState;
use crate::client_auth::{AuthenticatedClient, Endpoint};
use crate::form::Form;
use crate::revocation::{self, Reason};
use crate::routes::oauth_error::{ErrorResponse, client_auth_failed};
use crate::tls::client_cert::ClientCertificate;

/// The path.
pub const PATH: &str = "/revoke";

/// What happened to the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// It was ours to revoke and is revoked now (or already was).
    Done,
    /// Not found as this kind of token: try the others.
    NotThisKind,
}

/// `POST /revoke`.
pub async fn post(
    State(state): State<AppState>,
    certificate: Option<Extension<Arc<ClientCertificate>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let certificate = certificate.map(|Extension(c)| c);
    match revoke(&state, certificate.as_deref(), &headers, &body).await {
        Ok(()) => {
            let mut response = StatusCode::OK.into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(error) => error.into_response(),
    }
}

fn server_error(context: &str, error: &dyn std::fmt::Display) -> ErrorResponse {
    tracing::error!(%error, "{context}");
    ErrorResponse::new(OAuthError::server_error())
}

fn not_yours(kind: &str) -> ErrorResponse {
    OAuthError::new(
        ErrorCode::UnauthorizedClient,
        format!("the {kind} was not issued to this client nor for a resource it stands for; it stays valid (RFC 7009 §2.1)"),
    )
    .into()
}

async fn revoke(
    state: &AppState,
    certificate: Option<&ClientCertificate>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(), ErrorResponse> {
    let form = Form::from_request(headers, body)?;
    let caller = state
        .client_auth
        .authenticate_request(&form, headers, certificate, Endpoint::Revoke)
        .await
        .map_err(|e| client_auth_failed(e, "revoke"))?;
    // Only now that the client has authenticated may its quota be spent (crate::ratelimit).
    crate::ratelimit::admit_client(state, &caller.client, Endpoint::Revoke).await?;
    let token = form.require("token")?;

    // Our refresh tokens are never JWTs; a JWT is tried as an access token only.
    let may_be_refresh = token.split('.').count() != 3;
    if form.get("token_type_hint") == Some("refresh_token") && may_be_refresh {
        if refresh_token(state, &caller, token).await? == Outcome::Done {
            return Ok(());
        }
        access_token(state, &caller, token).await?;
        return Ok(());
    }
    if access_token(state, &caller, token).await? == Outcome::Done {
        return Ok(());
    }
    if may_be_refresh {
        refresh_token(state, &caller, token).await?;
    }
    Ok(())
}

/// A refresh token of the caller: its grant ends.
async fn refresh_token(
    state: &AppState,
    caller: &AuthenticatedClient,
    token: &str,
) -> Result<Outcome, ErrorResponse> {
    let stored = match state
        .store
        .refresh_tokens()
        .find(&SecretHash::of(token))
        .await
    {
        Ok(stored) => stored,
        Err(StoreError::NotFound) => return Ok(Outcome::NotThisKind),
        Err(e) => return Err(server_error("revoke: refresh tokens", &e)),
    };
    let now = state.clock.now();
    if stored.revoked_at.is_some() || stored.expires_at <= now {
        // Dead already: nothing to do, whoever asks.
        return Ok(Outcome::Done);
    }
    if stored.client_id != caller.client.client_id {
        return Err(not_yours("refresh token"));
    }
    let grant = match state.store.grants().find(&stored.grant_id).await {
        Ok(grant) => grant,
        Err(StoreError::NotFound) => return Ok(Outcome::Done),
        Err(e) => return Err(server_error("revoke: grants", &e)),
    };
    revocation::revoke_grant(
        state,
        &grant,
        &Reason::Client(caller.client.client_id.clone()),
    )
    .await
    .map_err(|e| server_error("revoke: grant", &e))?;
    Ok(Outcome::Done)
}

/// An access token of ours that the caller may revoke: its `jti` goes on the deny list.
async fn access_token(
    state: &AppState,
    caller: &AuthenticatedClient,
    token: &str,
) -> Result<Outcome, ErrorResponse> {
    let now = state.clock.now();
    let claims = match crate::liveness::live_claims_under(state, token, now, caller.epoch).await {
        Ok(Some(claims)) => claims,
        // Not ours, tampered, expired or revoked already: nothing to do (RFC 7009 §2.2). An
        // opaque string may still be a refresh token.
        Ok(None) => return Ok(Outcome::NotThisKind),
        Err(e) => return Err(server_error("revoke: access tokens", &e)),
    };
    let own =
        claims.get("client_id").and_then(Value::as_str) == Some(caller.client.client_id.as_str());
    let as_resource = || async {
        let snapshot = state
            .resources
            .snapshot()
            .await
            .map_err(|e| server_error("revoke: resource servers", &e))?;
        Ok::<bool, ErrorResponse>(
            snapshot.client_in_audience(&caller.client.client_id, claims.get("aud")),
        )
    };
    let reason = if own {
        Reason::Client(caller.client.client_id.clone())
    } else if as_resource().await? {
        Reason::ResourceServer(caller.client.client_id.clone())
    } else {
        return Err(not_yours("access token"));
    };
    let handle = (token.split('.').count() != 3).then(|| SecretHash::of(token));
    revocation::revoke_access_token(state, &claims, handle.as_ref(), &reason)
        .await
        .map_err(|e| server_error("revoke: access token", &e))?;
    Ok(Outcome::Done)
}
