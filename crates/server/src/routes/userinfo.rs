//! The userinfo endpoint (OIDC Core §5.3), `GET` and `POST`: a sender-constrained access token
//! from the `Authorization` header only (FAPI2 SP 5.3.4; never the query or the body), issued
//! here with `openid` for a grant that still stands, answers with the claims of the granted
//! scopes and of the `claims` request. Errors are RFC 6750 / RFC 9449 challenges.

use axum::Json;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use portcullis_core::authz::userinfo;
use portcullis_core::error::{ErrorCode, OAuthError};
use portcullis_core::store::StoreError;
use serde_json::Value;

use crate::app::AppState;
use crate::protected::{self, Refusal, invalid_token};
use crate::routes::oauth_error::quote;

/// The path.
pub const PATH: &str = "/userinfo";

fn refused(refusal: Refusal) -> Response {
    let (status, body, challenge, nonce) = match refusal {
        Refusal::Missing { challenge } => (StatusCode::UNAUTHORIZED, None, Some(challenge), None),
        Refusal::Token(e, challenge) | Refusal::Proof(e, challenge) => {
            (StatusCode::UNAUTHORIZED, Some(e), Some(challenge), None)
        }
        Refusal::UseNonce(nonce) => {
            let description =
                "a DPoP proof with the server's current nonce is required (RFC 9449 §9)";
            (
                StatusCode::UNAUTHORIZED,
                Some(OAuthError::new(ErrorCode::UseDpopNonce, description)),
                Some(format!(
                    "DPoP error=\"use_dpop_nonce\", error_description={}",
                    quote(description)
                )),
                Some(nonce),
            )
        }
        Refusal::Internal => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Some(OAuthError::server_error()),
            None,
            None,
        ),
    };
    let mut response = match body {
        Some(error) => (status, Json(error)).into_response(),
        None => status.into_response(),
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(header::WWW_AUTHENTICATE, value);
    }
    if let Some(value) = nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
        headers.insert("dpop-nonce", value);
    }
    response
}

/// `GET` or `POST /userinfo`.
pub async fn handle(State(state): State<AppState>, request: Request) -> Response {
    let (parts, _body) = request.into_parts();
    // SP 5.3.4: an access token in the query is refused, not read.
    if url::form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
        .any(|(k, _)| k == "access_token")
    {
        return refused(invalid_token(
            "access tokens are accepted only in the Authorization header (FAPI2 SP 5.3.4)",
            false,
        ));
    }
    let caller = match protected::authenticate(&state, &parts, &state.urls.issuer, "userinfo").await
    {
        Ok(caller) => caller,
        Err(refusal) => return refused(refusal),
    };
    let dpop = caller
        .claims
        .get("cnf")
        .and_then(|c| c.get("jkt"))
        .is_some();
    let scopes = caller.scopes();
    if !scopes.iter().any(|s| s == "openid") {
        let challenge = format!(
            "{} error=\"insufficient_scope\", scope=\"openid\"",
            if dpop { "DPoP" } else { "Bearer" }
        );
        let mut response = (
            StatusCode::FORBIDDEN,
            Json(OAuthError::new(
                ErrorCode::InsufficientScope,
                "userinfo needs a token with the openid scope",
            )),
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        return response;
    }
    // The consent must still stand.
    let Some(grant_id) = caller.claims.get("grant_id").and_then(Value::as_str) else {
        return refused(invalid_token("the token belongs to no grant", dpop));
    };
    let grant = match state.store.grants().find(grant_id).await {
        Ok(grant) if grant.stands(state.clock.now()) => grant,
        Ok(_) | Err(StoreError::NotFound) => {
            return refused(invalid_token("the consent has been withdrawn", dpop));
        }
        Err(e) => {
            tracing::error!(error = %e, "userinfo: grants");
            return refused(Refusal::Internal);
        }
    };
    let user = match state.store.users().find_by_id(grant.subject).await {
        Ok(user) if user.disabled_at.is_none() => user,
        Ok(_) | Err(StoreError::NotFound) => {
            return refused(invalid_token("the customer's account is closed", dpop));
        }
        Err(e) => {
            tracing::error!(error = %e, "userinfo: users");
            return refused(Refusal::Internal);
        }
    };
    let requested = grant
        .content
        .get("claims")
        .and_then(|c| c.get("userinfo"))
        .and_then(Value::as_object);
    let claims = userinfo::claims(&grant.subject.to_string(), &scopes, requested, &user.claims);
    let mut response = Json(Value::Object(claims)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
