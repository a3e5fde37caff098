//! OIDC RP-Initiated Logout 1.0 (`end_session_endpoint`, `GET` and `POST /logout`): the
//! `id_token_hint` is one of our ID tokens (our signature, our issuer; an expired one still
//! identifies the session) whose audience is the client; the customer's session ends on every
//! replica (it lives in the store); the browser goes back only to a `post_logout_redirect_uri`
//! the client registered, exactly, with `state`; anything else gets a page (checklist #65).

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use portcullis_core::client::ClientId;
use portcullis_core::client::metadata::ClientMetadata;
use portcullis_core::client::secret::SecretHash;
use portcullis_core::store::StoreError;
use portcullis_jose::{SigningAlg, verify_jwt};
use serde_json::Value;

use super::authorize::{SESSION_COOKIE, error_page, html_page, read_cookie, secure};
use crate::app::AppState;

/// The path.
pub const PATH: &str = "/logout";

/// `GET` or `POST /logout`.
pub async fn handle(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = if method == Method::POST {
        body.to_vec()
    } else {
        uri.query().unwrap_or_default().as_bytes().to_vec()
    };
    let mut params = std::collections::HashMap::new();
    for (name, value) in url::form_urlencoded::parse(&query) {
        if params
            .insert(name.into_owned(), value.into_owned())
            .is_some()
        {
            return refused(&state, "A parameter is repeated.");
        }
    }
    let get = |name: &str| {
        params
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };

    // Who the hint says the client is (checklist #65: a forged or modified hint is refused).
    let hinted_client = match get("id_token_hint") {
        None => None,
        Some(hint) => match verify_hint(&state, hint).await {
            Some(client_id) => Some(client_id),
            None => {
                return refused(
                    &state,
                    "The id_token_hint is not an ID token this bank issued.",
                );
            }
        },
    };
    let client_id = match (hinted_client, get("client_id")) {
        (Some(hinted), Some(named)) if hinted != named => {
            return refused(
                &state,
                "client_id is not the audience of the id_token_hint.",
            );
        }
        (Some(hinted), _) => Some(hinted),
        (None, named) => named.map(str::to_owned),
    };

    // The redirect, only to a URI the client registered, exactly.
    let redirect = match get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => {
            let Some(client_id) = &client_id else {
                return refused(
                    &state,
                    "post_logout_redirect_uri needs an id_token_hint or client_id naming the client.",
                );
            };
            let registered = match registered_uris(&state, client_id).await {
                Ok(uris) => uris,
                Err(response) => return response,
            };
            if !registered.iter().any(|r| r == uri) {
                return refused(
                    &state,
                    "post_logout_redirect_uri is not one the client registered (exact match).",
                );
            }
            Some(uri.to_owned())
        }
    };

    // End the session, on every replica.
    if let Some(id) = read_cookie(&headers, SESSION_COOKIE)
        && let Err(e) = state.store.sessions().remove(&SecretHash::of(id)).await
    {
        tracing::error!(error = %e, "logout: sessions");
        return error_page(
            &state,
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "The bank could not log you out. Please try again.",
        );
    }
    let mut response = match redirect {
        Some(uri) => {
            let location = match get("state") {
                Some(s) => {
                    let separator = if uri.contains('?') { '&' } else { '?' };
                    let encoded: String =
                        url::form_urlencoded::byte_serialize(s.as_bytes()).collect();
                    format!("{uri}{separator}state={encoded}")
                }
                None => uri,
            };
            match HeaderValue::from_str(&location) {
                Ok(location) => {
                    secure((StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response())
                }
                Err(_) => return refused(&state, "The post_logout_redirect_uri is not usable."),
            }
        }
        None => html_page(
            &state,
            StatusCode::OK,
            "Logged out",
            "You are logged out of the bank.",
        ),
    };
    if let Ok(expire) = HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0"
    )) {
        response.headers_mut().append(header::SET_COOKIE, expire);
    }
    response
}

fn refused(state: &AppState, message: &str) -> Response {
    error_page(state, StatusCode::BAD_REQUEST, "Logout refused", message)
}

/// The client an ID token of ours was issued to, if `hint` is one (its expiry does not matter).
async fn verify_hint(state: &AppState, hint: &str) -> Option<String> {
    let jwks = state.keys.jwks().await;
    let verified = verify_jwt(hint, &jwks, &SigningAlg::ALL).ok()?;
    let claims = verified.claims;
    if claims.get("iss").and_then(Value::as_str) != Some(state.urls.issuer.as_str()) {
        return None;
    }
    // An access token is not an ID token.
    if verified.header.get("typ").and_then(Value::as_str) == Some("at+jwt") {
        return None;
    }
    claims.get("sub").and_then(Value::as_str)?;
    match claims.get("aud") {
        Some(Value::String(aud)) => Some(aud.clone()),
        Some(Value::Array(auds)) if auds.len() == 1 => {
            auds.first().and_then(Value::as_str).map(str::to_owned)
        }
        _ => None,
    }
}

async fn registered_uris(state: &AppState, client_id: &str) -> Result<Vec<String>, Response> {
    let Ok(id) = ClientId::parse(client_id) else {
        return Err(refused(state, "The client is not registered."));
    };
    match state.store.clients().find_by_id(&id).await {
        Ok(client) => Ok(ClientMetadata::from_stored(client.metadata)
            .map(|m| m.post_logout_redirect_uris)
            .unwrap_or_default()),
        Err(StoreError::NotFound) => Err(refused(state, "The client is not registered.")),
        Err(e) => {
            tracing::error!(error = %e, "logout: clients");
            Err(error_page(
                state,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The bank could not log you out. Please try again.",
            ))
        }
    }
}
