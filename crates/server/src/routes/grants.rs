//! The Grant Management API (FAPI Grant Management for OAuth 2.0, -02 §6): `GET` and `DELETE
//! /grants/{grant_id}` let a client query and revoke a consent it holds.
//!
//! Callers present one of our own sender-constrained access tokens for the audience
//! `{issuer}/grants` (client credentials with the `grant_management_query` or
//! `grant_management_revoke` scope, see `token::SERVICE_SCOPES`); `GET` needs the first, `DELETE`
//! the second, in the token and still registered for the client (else 403 `insufficient_scope`,
//! RFC 6750 §3.1). A bad or missing token is a 401 as at every protected resource.
//!
//! A grant is visible only to the client it was given to, and only while it stands: an unknown
//! `grant_id`, a revoked or lapsed grant and another client's grant all get the same 404
//! `invalid_grant_id`, so that a client cannot learn that someone else's grant exists.
//!
//! `DELETE` revokes the grant with every refresh and access token issued under it and tells the
//! resource servers (`revocation::revoke_grant`), then answers 204.

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use portcullis_core::error::{ErrorCode, OAuthError};
use portcullis_core::store::{Grant, StoreError};
use serde_json::{Map, Value};

use crate::app::AppState;
use crate::protected::{self, Caller};
use crate::revocation::{self, Reason};
use crate::routes::token::service_audience;

/// The grant management endpoint; a grant's resource URL is this, a slash and its `grant_id`.
pub const PATH: &str = "/grants";
/// The scope of `GET` (GM §6.1).
pub const QUERY_SCOPE: &str = "grant_management_query";
/// The scope of `DELETE` (GM §6.1).
pub const REVOKE_SCOPE: &str = "grant_management_revoke";
/// The actions advertised as `grant_management_actions_supported` (GM §7.1): the API's, and
/// those the authorization request accepts (`core::authz::request::GrantAction`).
pub const ACTIONS_SUPPORTED: [&str; 5] = ["query", "revoke", "create", "merge", "replace"];

/// Longer identifiers are none of ours (they are 22 characters; requests bound them at 256).
const MAX_GRANT_ID: usize = 256;

/// `GET /grants/{grant_id}`: what the grant holds (GM §6.4).
pub async fn get(
    State(state): State<AppState>,
    Path(grant_id): Path<String>,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let caller = match authorize(&state, &parts, QUERY_SCOPE).await {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    let grant = match owned_grant(&state, &caller, &grant_id).await {
        Ok(grant) => grant,
        Err(response) => return response,
    };
    let mut response = Json(Value::Object(describe(&grant))).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `DELETE /grants/{grant_id}`: revokes the grant and every token issued under it (GM §6.5).
pub async fn delete(
    State(state): State<AppState>,
    Path(grant_id): Path<String>,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let caller = match authorize(&state, &parts, REVOKE_SCOPE).await {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    let grant = match owned_grant(&state, &caller, &grant_id).await {
        Ok(grant) => grant,
        Err(response) => return response,
    };
    let reason = Reason::Client(caller.client.client_id.clone());
    match revocation::revoke_grant(&state, &grant, &reason).await {
        // Revoked by this call, or by a concurrent one since it was found: gone either way.
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => {
            tracing::error!(error = %e, "grant management: revoking a grant");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                OAuthError::server_error(),
            )
        }
    }
}

/// The caller, whose token is for this API and carries `scope`, still registered for its client
/// (so that the operator's removing the scope takes effect at once).
async fn authorize(
    state: &AppState,
    parts: &http::request::Parts,
    scope: &str,
) -> Result<Caller, Response> {
    let audience = service_audience(&state.urls.issuer, PATH);
    let caller = protected::authenticate(state, parts, &audience, "the grant management API")
        .await
        .map_err(IntoResponse::into_response)?;
    let registered = caller
        .client
        .metadata
        .get("scope")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .split(' ')
        .any(|s| s == scope);
    if !registered || !caller.scopes().iter().any(|s| s == scope) {
        return Err(protected::insufficient_scope(
            scope,
            format!(
                "this grant management action needs a token with the {scope} scope (FAPI Grant Management §6.1)"
            ),
            caller.dpop(),
        ));
    }
    Ok(caller)
}

/// The grant, if it stands and is the caller's; else the one 404 for every other case.
async fn owned_grant(state: &AppState, caller: &Caller, grant_id: &str) -> Result<Grant, Response> {
    let unknown = || {
        error(
            StatusCode::NOT_FOUND,
            OAuthError::new(
                ErrorCode::InvalidGrantId,
                "no such grant for this client (FAPI Grant Management §6.6)",
            ),
        )
    };
    if grant_id.is_empty() || grant_id.len() > MAX_GRANT_ID {
        return Err(unknown());
    }
    match state.store.grants().find(grant_id).await {
        Ok(grant)
            if grant.client_id == caller.client.client_id && grant.stands(state.clock.now()) =>
        {
            Ok(grant)
        }
        Ok(_) | Err(StoreError::NotFound) => Err(unknown()),
        Err(e) => {
            tracing::error!(error = %e, "grant management: grants");
            Err(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                OAuthError::server_error(),
            ))
        }
    }
}

fn error(status: StatusCode, error: OAuthError) -> Response {
    let mut response = (status, Json(error)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The GM §6.4 representation of a grant: `scopes` (one entry, the granted scopes with the
/// resources asked for), `claims` (the names in the OIDC `claims` request), the
/// `authorization_details` as consented (with the accounts chosen), and `created_at`,
/// `last_updated` and `expires_at` as NumericDates. Empty members are left out.
fn describe(grant: &Grant) -> Map<String, Value> {
    let strings = |name: &str| -> Vec<Value> {
        grant
            .content
            .get(name)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|v| v.is_string())
            .cloned()
            .collect()
    };
    let mut body = Map::new();
    let scopes: Vec<&str> = grant
        .content
        .get("scopes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !scopes.is_empty() {
        let mut entry = Map::new();
        entry.insert("scope".into(), scopes.join(" ").into());
        let resources = strings("resources");
        if !resources.is_empty() {
            entry.insert("resource".into(), resources.into());
        }
        body.insert("scopes".into(), vec![Value::Object(entry)].into());
    }
    let claims = claim_names(grant.content.get("claims"));
    if !claims.is_empty() {
        body.insert("claims".into(), claims.into());
    }
    if let Some(details) = grant
        .content
        .get("authorization_details")
        .and_then(Value::as_array)
        .filter(|d| !d.is_empty())
    {
        body.insert("authorization_details".into(), details.clone().into());
    }
    body.insert(
        "created_at".into(),
        grant.created_at.unix_timestamp().into(),
    );
    body.insert(
        "last_updated".into(),
        grant.updated_at.unix_timestamp().into(),
    );
    if let Some(expires_at) = grant.expires_at {
        body.insert("expires_at".into(), expires_at.unix_timestamp().into());
    }
    body
}

/// The claim names of an OIDC `claims` request (OIDC Core §5.5): the members of `userinfo`,
/// then those of `id_token` not named already.
fn claim_names(claims: Option<&Value>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for target in ["userinfo", "id_token"] {
        for name in claims
            .and_then(|c| c.get(target))
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(Map::keys)
        {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::OffsetDateTime;

    use super::*;

    fn grant(content: Value, expires_at: Option<OffsetDateTime>) -> Grant {
        Grant {
            grant_id: "g".into(),
            client_id: portcullis_core::client::ClientId::parse("tpp").unwrap(),
            subject: uuid::Uuid::nil(),
            content: content.as_object().unwrap().clone(),
            created_at: OffsetDateTime::from_unix_timestamp(1_000).unwrap(),
            updated_at: OffsetDateTime::from_unix_timestamp(2_000).unwrap(),
            expires_at,
            revoked_at: None,
            last_used_at: None,
        }
    }

    #[test]
    fn gm_6_4_a_grant_is_described_by_scopes_claims_and_details() {
        let detail = json!({"type": "account_information", "actions": ["read_balances"], "accounts": ["acc-1"]});
        let full = grant(
            json!({
                "scopes": ["openid", "accounts"],
                "resources": ["https://api.bank.example/accounts"],
                "claims": {"userinfo": {"email": null, "name": null}, "id_token": {"acr": {"essential": true}, "email": null}},
                "authorization_details": [detail],
            }),
            Some(OffsetDateTime::from_unix_timestamp(3_000).unwrap()),
        );
        assert_eq!(
            Value::Object(describe(&full)),
            json!({
                "scopes": [{"scope": "openid accounts", "resource": ["https://api.bank.example/accounts"]}],
                "claims": ["email", "name", "acr"],
                "authorization_details": [detail],
                "created_at": 1_000,
                "last_updated": 2_000,
                "expires_at": 3_000,
            })
        );
        // As `record_grant` stores a plain OAuth consent: nothing empty is shown.
        let plain = grant(
            json!({"scopes": ["accounts"], "authorization_details": [], "claims": null, "resources": []}),
            None,
        );
        assert_eq!(
            Value::Object(describe(&plain)),
            json!({"scopes": [{"scope": "accounts"}], "created_at": 1_000, "last_updated": 2_000})
        );
    }
}
