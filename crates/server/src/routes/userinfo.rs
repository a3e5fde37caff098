//! The userinfo endpoint (OIDC Core §5.3), `GET` and `POST`: a sender-constrained access token
//! from the `Authorization` header only (FAPI2 SP 5.3.4; never the query or the body), issued
//! here with `openid` for a grant that still stands, answers with the claims of the granted
//! scopes and of the `claims` request. Errors are RFC 6750 / RFC 9449 challenges.

use axum::Json;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use portcullis_core::authz::userinfo;
use portcullis_core::store::StoreError;
use serde_json::Value;

use crate::app::AppState;
use crate::protected::{self, Refusal, invalid_token};

/// The path.
pub const PATH: &str = "/userinfo";

/// `GET` or `POST /userinfo`.
pub async fn handle(State(state): State<AppState>, request: Request) -> Response {
    let (parts, _body) = request.into_parts();
    // SP 5.3.4: an access token in the query is refused, not read.
    if url::form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
        .any(|(k, _)| k == "access_token")
    {
        return invalid_token(
            "access tokens are accepted only in the Authorization header (FAPI2 SP 5.3.4)",
            false,
        )
        .into_response();
    }
    let caller = match protected::authenticate(&state, &parts, &state.urls.issuer, "userinfo").await
    {
        Ok(caller) => caller,
        Err(refusal) => return refusal.into_response(),
    };
    let dpop = caller.dpop();
    let scopes = caller.scopes();
    if !scopes.iter().any(|s| s == "openid") {
        return protected::insufficient_scope(
            "openid",
            "userinfo needs a token with the openid scope",
            dpop,
        );
    }
    // The consent must still stand.
    let Some(grant_id) = caller.claims.get("grant_id").and_then(Value::as_str) else {
        return invalid_token("the token belongs to no grant", dpop).into_response();
    };
    let grant = match state.store.grants().find(grant_id).await {
        Ok(grant) if grant.stands(state.clock.now()) => grant,
        Ok(_) | Err(StoreError::NotFound) => {
            return invalid_token("the consent has been withdrawn", dpop).into_response();
        }
        Err(e) => {
            tracing::error!(error = %e, "userinfo: grants");
            return Refusal::Internal.into_response();
        }
    };
    let user = match state.store.users().find_by_id(grant.subject).await {
        Ok(user) if user.disabled_at.is_none() => user,
        Ok(_) | Err(StoreError::NotFound) => {
            return invalid_token("the customer's account is closed", dpop).into_response();
        }
        Err(e) => {
            tracing::error!(error = %e, "userinfo: users");
            return Refusal::Internal.into_response();
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
