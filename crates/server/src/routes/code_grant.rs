//! The `authorization_code` grant at `/token` (RFC 6749 §4.1.3, FAPI2 SP 5.3.2.1): every check is
//! made first, then the code is used up atomically, so of any number of concurrent redemptions
//! exactly one gets tokens; a code presented again revokes its grant (checklist #1). The code belongs to the authenticated
//! client, is at most 60 s old, came back with its `redirect_uri` and the PKCE verifier, and a
//! code bound to a DPoP key at PAR is redeemed with that key (RFC 9449 §10). The access token is
//! sender-constrained and carries the grant; an ID token comes with `openid`.

use std::sync::Arc;

use portcullis_core::access_token::{AccessToken, Authentication, Confirmation};
use portcullis_core::audit::SecurityEvent;
use portcullis_core::authz::code::{self, CodeContent};
use portcullis_core::authz::id_token::IdToken;
use portcullis_core::client::secret::SecretHash;
use portcullis_core::error::{ErrorCode, OAuthError};
use portcullis_core::store::{Redemption, StoreError};
use portcullis_jose::SigningAlg;
use serde_json::{Map, Value};
use time::Duration;

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

/// Redeems an authorization code.
pub(crate) async fn redeem(
    state: &AppState,
    info: Option<&ConnectionInfo>,
    certificate: Option<&ClientCertificate>,
    headers: &http::HeaderMap,
    form: &Form,
    client: &AuthenticatedClient,
) -> Result<axum::response::Response, ErrorResponse> {
    let presented = form.require("code")?;
    let handle = SecretHash::of(presented);
    let now = state.clock.now();
    // Everything is checked before the code is used up, so that the one request that redeems
    // it is also the one that gets the tokens, whatever replays do meanwhile.
    let stored = match state.store.codes().find(&handle).await {
        Ok(stored) => stored,
        Err(StoreError::NotFound) => return Err(invalid_grant("the code is not valid")),
        Err(e) => return Err(server_error("token: codes", &e)),
    };
    // Checklist #3: the code belongs to the client redeeming it.
    if stored.client_id != client.client.client_id {
        return Err(invalid_grant(
            "the code was issued to another client (RFC 6749 §4.1.3)",
        ));
    }
    // Checklist #2.
    if stored.expires_at <= now {
        return Err(invalid_grant(
            "the code has expired: codes live at most 60 s (FAPI2 SP 5.3.2.1-11)",
        ));
    }
    let content = CodeContent::from_map(stored.content.clone())
        .map_err(|e| server_error("token: stored code", &e))?;
    // Checklist #11.
    if form.get("redirect_uri") != Some(content.redirect_uri.as_str()) {
        return Err(invalid_grant(
            "redirect_uri must be the one of the authorization request (RFC 6749 §4.1.3)",
        ));
    }
    // Checklist #5, #6, #8.
    code::check_pkce(form.get("code_verifier"), &content.code_challenge)?;

    let grant = match state.store.grants().find(&stored.grant_id).await {
        Ok(grant) if grant.stands(now) && grant.client_id == client.client.client_id => grant,
        Ok(_) | Err(StoreError::NotFound) => {
            return Err(invalid_grant(
                "the consent behind this code has been withdrawn",
            ));
        }
        Err(e) => return Err(server_error("token: grants", &e)),
    };

    // RFC 9449 §10, checklist #41: a code bound to a DPoP key is redeemed with that key.
    let confirmation = bind(
        state,
        info,
        certificate,
        headers,
        client.metadata.dpop_bound_access_tokens || content.dpop_jkt.is_some(),
        client.metadata.tls_client_certificate_bound_access_tokens,
    )
    .await?;
    if let Some(jkt) = &content.dpop_jkt
        && !matches!(&confirmation, Confirmation::DpopKey { jkt: proof } if proof == jkt)
    {
        return Err(invalid_grant(
            "the code is bound to another DPoP key than this proof's (RFC 9449 §10)",
        ));
    }

    // Now use it up: of concurrent redemptions exactly one gets past this point.
    match state.store.codes().redeem(&handle, now).await {
        Ok(Redemption::Redeemed(_)) => {}
        Ok(Redemption::Reused(stored)) => {
            // Checklist #1: a replayed code revokes what the first redemption gave.
            revoke_reused(
                state,
                &stored.grant_id,
                &client.client.client_id.to_string(),
            )
            .await;
            return Err(invalid_grant(
                "the code has been used before; the tokens issued from it are revoked (RFC 6749 §4.1.2)",
            ));
        }
        Err(StoreError::NotFound) => return Err(invalid_grant("the code is not valid")),
        Err(e) => return Err(server_error("token: codes", &e)),
    }

    let audience = audience(state, &content).await?;
    let lifetime_secs = client
        .client
        .settings
        .access_token_lifetime_secs
        .unwrap_or(state.config.tokens.access_token_lifetime_secs);
    let subject = content.subject.to_string();
    let token = AccessToken {
        issuer: state.urls.issuer.clone(),
        audience,
        subject: subject.clone(),
        client_id: client.client.client_id.clone(),
        scope: (!content.scopes.is_empty()).then(|| content.scopes.join(" ")),
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
    let access_token = mint_into(state, &token, format, &mut body).await?;

    if content.scopes.iter().any(|s| s == "openid") {
        let id_token = id_token(state, client, &content, &subject, &access_token.value).await?;
        body.insert("id_token".into(), id_token.into());
    }
    tracing::info!(client_id = %client.client.client_id, grant_type = "authorization_code", token_type = confirmation.token_type(), "access token issued");
    let refresh_token = super::refresh_grant::issue(state, client, &grant, &content, now).await?;
    let refresh_issued = refresh_token.is_some();
    if let Some(refresh_token) = refresh_token {
        body.insert("refresh_token".into(), refresh_token.into());
    }
    // Durable before the answer (DESIGN.md, Tokens); a token not in the trail is not handed out.
    record_issued(
        state,
        headers,
        Issued {
            grant_type: "authorization_code",
            token: &token,
            jti: &access_token.jti,
            format,
            refresh_token: refresh_issued,
        },
    )
    .await?;
    super::account::note_use(state, &grant.grant_id, now);
    // FAPI Grant Management §5: the client learns the grant it can query and revoke.
    body.insert("grant_id".into(), grant.grant_id.into());
    state
        .metrics
        .token_issued("authorization_code", Some(&confirmation));
    Ok(token_response(state, body))
}

/// Revokes the grant of a replayed code, with every token issued under it (checklist #1), and
/// tells the resource servers.
async fn revoke_reused(state: &AppState, grant_id: &str, client_id: &str) {
    let event = SecurityEvent::new(
        state.clock.now(),
        format!("client:{client_id}"),
        "code.reused",
        Some(grant_id.to_owned()),
        Map::new(),
    );
    if let Err(e) = state.store.events().append(&event).await {
        tracing::error!(error = %e, "could not record a replayed code");
    }
    let grant = match state.store.grants().find(grant_id).await {
        Ok(grant) => grant,
        Err(e) => {
            tracing::error!(error = %e, "could not find the grant of a replayed code");
            return;
        }
    };
    if let Err(e) =
        crate::revocation::revoke_grant(state, &grant, &crate::revocation::Reason::CodeReuse).await
    {
        tracing::error!(error = %e, "could not revoke the grant of a replayed code");
    }
}

/// The token's audience (RFC 8707): the resources asked for, else every resource server serving
/// a granted scope or named by a detail's `locations`; with `openid`, our userinfo too.
pub(crate) async fn audience(
    state: &AppState,
    content: &CodeContent,
) -> Result<Vec<String>, ErrorResponse> {
    let mut audience: Vec<String> = content.resources.clone();
    if audience.is_empty() {
        let snapshot = state
            .resources
            .snapshot()
            .await
            .map_err(|e| server_error("token: resource servers", &e))?;
        audience.extend(
            snapshot
                .serving(&content.scopes)
                .map(|rs| rs.resource.clone()),
        );
        for detail in &content.authorization_details {
            for location in detail
                .get("locations")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !audience.iter().any(|a| a == location) {
                    audience.push(location.to_owned());
                }
            }
        }
    }
    if content.scopes.iter().any(|s| s == "openid") && !audience.contains(&state.urls.issuer) {
        audience.push(state.urls.issuer.clone());
    }
    if audience.is_empty() {
        return Err(OAuthError::new(
            ErrorCode::InvalidTarget,
            "no registered resource server serves what was granted (RFC 8707)",
        )
        .into());
    }
    Ok(audience)
}

/// The ID token, signed with the client's `id_token_signed_response_alg` (PS256 by default).
async fn id_token(
    state: &AppState,
    client: &AuthenticatedClient,
    content: &CodeContent,
    subject: &str,
    access_token: &str,
) -> Result<String, ErrorResponse> {
    let user = state
        .store
        .users()
        .find_by_id(content.subject)
        .await
        .map_err(|e| server_error("token: user", &e))?;
    let alg = client
        .metadata
        .id_token_signed_response_alg
        .unwrap_or(SigningAlg::Ps256);
    let key: Arc<portcullis_jose::SigningKey> = state
        .keys
        .signer(alg)
        .await
        .map_err(|e| server_error("token: ID token key", &e))?;
    let requested = content
        .claims
        .as_ref()
        .and_then(|c| c.get("id_token"))
        .and_then(Value::as_object);
    let claims = IdToken {
        issuer: &state.urls.issuer,
        subject,
        client_id: client.client.client_id.as_str(),
        nonce: content.nonce.as_deref(),
        auth_time: content.auth_time(),
        acr: content.acr.as_deref(),
        amr: &content.amr,
        access_token: Some(access_token),
        issued_at: state.clock.now(),
        requested,
        user_claims: &user.claims,
    }
    .claims(alg);
    key.sign_jwt("JWT", &claims)
        .map_err(|e| server_error("token: ID token", &e))
}
