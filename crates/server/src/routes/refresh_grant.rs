//! Refresh tokens (RFC 6749 §6, FAPI2 SP 5.3.2.1-9): issued with a code when the client is
//! registered for the `refresh_token` grant, stored only as a hash, usable only by that client
//! with its authentication and a proof of possession (the new access token is bound to the key
//! presented now), never beyond the consent they come from, dead once the grant is revoked.
//! FAPI clients' refresh tokens are not rotated; `oauth` clients' are, and the replaced token
//! keeps working for `tokens.refresh_rotation_grace_secs` so that a lost answer can be retried.

use portcullis_core::access_token::{AccessToken, Authentication};
use portcullis_core::authz::code::CodeContent;
use portcullis_core::client::ClientProfile;
use portcullis_core::client::metadata::GrantType;
use portcullis_core::client::secret::{ClientSecret, SecretHash};
use portcullis_core::error::{ErrorCode, OAuthError};
use portcullis_core::store::{Grant, StoreError, StoredRefreshToken};
use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime};

use super::code_grant::audience;
use super::token::{
    Issued, bind, mint_into, record_issued, server_error, token_format, token_response,
};
use crate::app::AppState;
use crate::client_auth::AuthenticatedClient;
use crate::form::Form;
use crate::routes::oauth_error::ErrorResponse;
use crate::tls::client_cert::{ClientCertificate, ConnectionInfo};

fn invalid_grant(description: &str) -> ErrorResponse {
    OAuthError::new(ErrorCode::InvalidGrant, description).into()
}

/// Makes and stores a refresh token for a code's grant, if the client may have one.
pub(crate) async fn issue(
    state: &AppState,
    client: &AuthenticatedClient,
    grant: &Grant,
    content: &CodeContent,
    now: OffsetDateTime,
) -> Result<Option<String>, ErrorResponse> {
    if !client
        .metadata
        .grant_types
        .contains(&GrantType::RefreshToken)
    {
        return Ok(None);
    }
    let lifetime = client
        .client
        .settings
        .refresh_token_lifetime_secs
        .unwrap_or(state.config.tokens.refresh_token_lifetime_secs);
    let mut expires_at = now + Duration::seconds(i64::from(lifetime));
    if let Some(consent_ends) = grant.expires_at {
        expires_at = expires_at.min(consent_ends);
    }
    let token = ClientSecret::generate(state.rng.as_ref())
        .map_err(|e| server_error("token: random", &e))?;
    let stored = StoredRefreshToken {
        handle: token.hash(),
        client_id: client.client.client_id.clone(),
        grant_id: grant.grant_id.clone(),
        content: content.to_map(),
        created_at: now,
        expires_at,
        rotated_at: None,
        revoked_at: None,
    };
    state
        .store
        .refresh_tokens()
        .add(&stored)
        .await
        .map_err(|e| server_error("token: refresh tokens", &e))?;
    Ok(Some(token.expose().to_owned()))
}

/// `grant_type=refresh_token`.
pub(crate) async fn refresh(
    state: &AppState,
    info: Option<&ConnectionInfo>,
    certificate: Option<&ClientCertificate>,
    headers: &http::HeaderMap,
    form: &Form,
    client: &AuthenticatedClient,
) -> Result<axum::response::Response, ErrorResponse> {
    let presented = form.require("refresh_token")?;
    let now = state.clock.now();
    let stored = match state
        .store
        .refresh_tokens()
        .find(&SecretHash::of(presented))
        .await
    {
        Ok(stored) => stored,
        Err(StoreError::NotFound) => return Err(invalid_grant("the refresh token is not valid")),
        Err(e) => return Err(server_error("token: refresh tokens", &e)),
    };
    // Checklist #42: only the client it was issued to.
    if stored.client_id != client.client.client_id {
        return Err(invalid_grant(
            "the refresh token was issued to another client (RFC 6749 §6)",
        ));
    }
    // Checklist #45.
    if stored.revoked_at.is_some() || stored.expires_at <= now {
        return Err(invalid_grant(
            "the refresh token has expired or been revoked",
        ));
    }
    let grace = Duration::seconds(i64::from(state.config.tokens.refresh_rotation_grace_secs));
    if let Some(rotated) = stored.rotated_at
        && now > rotated + grace
    {
        return Err(invalid_grant("the refresh token has been replaced"));
    }
    let grant = match state.store.grants().find(&stored.grant_id).await {
        Ok(grant) if grant.stands(now) && grant.client_id == client.client.client_id => grant,
        Ok(_) | Err(StoreError::NotFound) => {
            return Err(invalid_grant(
                "the consent behind this token has been withdrawn",
            ));
        }
        Err(e) => return Err(server_error("token: grants", &e)),
    };
    let content = CodeContent::from_map(stored.content.clone())
        .map_err(|e| server_error("token: stored refresh token", &e))?;
    // RFC 6749 §6: a narrower scope may be asked for, never a wider one.
    let scopes = match form.get("scope") {
        None => content.scopes.clone(),
        Some(scope) => {
            let asked: Vec<String> = scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            if let Some(extra) = asked.iter().find(|s| !content.scopes.contains(s)) {
                return Err(OAuthError::new(
                    ErrorCode::InvalidScope,
                    format!("scope {extra} was not granted (RFC 6749 §6)"),
                )
                .into());
            }
            asked
        }
    };
    // Checklist #44: a proof of possession; the new token is bound to the key presented now.
    let confirmation = bind(
        state,
        info,
        certificate,
        headers,
        client.metadata.dpop_bound_access_tokens,
        client.metadata.tls_client_certificate_bound_access_tokens,
    )
    .await?;

    let narrowed = CodeContent {
        scopes: scopes.clone(),
        ..content.clone()
    };
    let lifetime_secs = client
        .client
        .settings
        .access_token_lifetime_secs
        .unwrap_or(state.config.tokens.access_token_lifetime_secs);
    let token = AccessToken {
        issuer: state.urls.issuer.clone(),
        audience: audience(state, &narrowed).await?,
        subject: content.subject.to_string(),
        client_id: client.client.client_id.clone(),
        scope: (!scopes.is_empty()).then(|| scopes.join(" ")),
        authorization_details: (!content.authorization_details.is_empty())
            .then(|| Value::Array(content.authorization_details.clone())),
        confirmation: confirmation.clone(),
        issued_at: now,
        lifetime: Duration::seconds(i64::from(lifetime_secs)),
        grant_id: Some(grant.grant_id.clone()),
        authentication: Some(Authentication {
            auth_time: content.auth_time,
            acr: content.acr.clone(),
        }),
    };
    let format = token_format(state, client, &token.audience).await?;
    let mut body = Map::new();
    let minted = mint_into(state, &token, format, &mut body).await?;

    // SP 5.3.2.1-9: FAPI clients keep their refresh token; `oauth` clients get a new one.
    if client.client.profile == ClientProfile::Oauth && stored.rotated_at.is_none() {
        let next = ClientSecret::generate(state.rng.as_ref())
            .map_err(|e| server_error("token: random", &e))?;
        let replacement = StoredRefreshToken {
            handle: next.hash(),
            created_at: now,
            rotated_at: None,
            revoked_at: None,
            ..stored.clone()
        };
        match state
            .store
            .refresh_tokens()
            .rotate(&stored.handle, &replacement, now)
            .await
        {
            Ok(true) => {
                body.insert("refresh_token".into(), next.expose().into());
            }
            // Another request rotated it first: this one still gets its access token.
            Ok(false) => {}
            Err(e) => return Err(server_error("token: refresh rotation", &e)),
        }
    }
    // Durable before the answer (DESIGN.md, Tokens); a token not in the trail is not handed out.
    record_issued(
        state,
        headers,
        Issued {
            grant_type: "refresh_token",
            token: &token,
            jti: &minted.jti,
            format,
            refresh_token: body.contains_key("refresh_token"),
        },
    )
    .await?;
    tracing::info!(client_id = %client.client.client_id, grant_type = "refresh_token", token_type = confirmation.token_type(), "access token issued");
    state
        .metrics
        .token_issued("refresh_token", Some(&confirmation));
    super::account::note_use(state, &grant.grant_id, now);
    body.insert("grant_id".into(), grant.grant_id.into());
    Ok(token_response(state, body))
}
