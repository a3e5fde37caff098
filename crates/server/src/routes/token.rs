//! The token endpoint (RFC 6749 §3.2). This part: the `client_credentials` grant (RFC 6749 §4.4),
//! issuing sender-constrained RFC 9068 access tokens; the authorization-code and refresh grants
//! join it with the flow issue.
//!
//! Order of checks: the body's form (`invalid_request`), the client (`invalid_client`, 401), the
//! grant type (`unsupported_grant_type`, `unauthorized_client`), the scope and resource
//! (`invalid_scope`, `invalid_target`), then the proof of possession (`invalid_dpop_proof`,
//! `invalid_request`). Only then is a token minted.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, header};
use portcullis_core::access_token::{AccessToken, Confirmation};
use portcullis_core::audit::SecurityEvent;
use portcullis_core::client::metadata::GrantType;
use portcullis_core::client::settings::{ADMIN_SCOPES, TokenFormat};
use portcullis_core::error::{ErrorCode, OAuthError};
use portcullis_core::resource::is_scope_token;
use time::Duration;

use crate::app::AppState;
use crate::client_auth::{AuthenticatedClient, Endpoint};
use crate::form::Form;
use crate::routes::oauth_error::ErrorResponse;
use crate::sender::{self, Possession, PossessionError};
use crate::tls::client_cert::{ClientCertificate, ConnectionInfo};

/// The path.
pub const PATH: &str = "/token";

/// The audience of access tokens for the admin API.
#[must_use]
pub fn admin_audience(issuer: &str) -> String {
    format!("{issuer}/admin/v1")
}

/// The scopes of this server's own APIs for clients, by client credentials, each with the
/// audience of the API it opens: FAPI Grant Management (`/grants`) and the revocation event
/// feed (`/events`, RFC 8936). Like the admin scopes, they make a token for that API alone; unlike
/// them, a client asks for them by registering them in its `scope` metadata.
pub const SERVICE_SCOPES: [(&str, &str); 3] = [
    ("grant_management_query", "/grants"),
    ("grant_management_revoke", "/grants"),
    ("revocation_events", "/events"),
];

/// The audience of access tokens for one of this server's APIs (`/grants`, `/events`).
#[must_use]
pub fn service_audience(issuer: &str, path: &str) -> String {
    format!("{issuer}{path}")
}

/// `POST /token`.
pub async fn post(
    State(state): State<AppState>,
    info: Option<Extension<ConnectionInfo>>,
    certificate: Option<Extension<Arc<ClientCertificate>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let certificate = certificate.map(|Extension(c)| c);
    match issue(
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

pub(crate) fn server_error(context: &str, error: &dyn std::fmt::Display) -> ErrorResponse {
    tracing::error!(%error, "{context}");
    ErrorResponse::new(OAuthError::server_error())
}

fn from_possession(error: PossessionError) -> ErrorResponse {
    match error {
        PossessionError::Refused(e) => ErrorResponse::new(e),
        PossessionError::Store(e) => server_error("token: replay store", &e),
    }
}

async fn issue(
    state: &AppState,
    info: Option<&ConnectionInfo>,
    certificate: Option<&ClientCertificate>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ErrorResponse> {
    let form = Form::from_request_with(headers, body, &["resource"])?;
    let client = state
        .client_auth
        .authenticate_request(&form, headers, certificate, Endpoint::Token)
        .await
        .map_err(|e| crate::routes::oauth_error::client_auth_failed(e, "token"))?;
    // Only now that the client has authenticated may its quota be spent (crate::ratelimit).
    crate::ratelimit::admit_client(state, &client.client, Endpoint::Token).await?;

    let grant_type = form.require("grant_type")?;
    // Checklist #13: only the grants the client registered, checked once for all of them.
    let registered = match grant_type {
        "authorization_code" => Some(GrantType::AuthorizationCode),
        "refresh_token" => Some(GrantType::RefreshToken),
        "client_credentials" => Some(GrantType::ClientCredentials),
        _ => None,
    };
    if let Some(grant) = registered
        && !client.metadata.grant_types.contains(&grant)
    {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            format!("the client is not registered for the {grant_type} grant (RFC 6749 §5.2)"),
        )
        .into());
    }
    match grant_type {
        "client_credentials" => {
            client_credentials(state, info, certificate, headers, &form, &client).await
        }
        "authorization_code" => {
            super::code_grant::redeem(state, info, certificate, headers, &form, &client).await
        }
        "refresh_token" => {
            super::refresh_grant::refresh(state, info, certificate, headers, &form, &client).await
        }
        "password" | "implicit" => Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            format!("the {grant_type} grant is not supported (FAPI2 SP 5.3.2.1-2)"),
        )
        .into()),
        other => Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            format!("grant_type {other} is not supported at this endpoint"),
        )
        .into()),
    }
}

/// What a token will be for.
struct Target {
    scopes: Vec<String>,
    audience: Vec<String>,
    format: TokenFormat,
}

/// Splits a `scope` parameter into its tokens, in order without repeats (RFC 6749 §3.3). Public
/// for the fuzz targets (`crates/fuzz-targets`).
///
/// # Errors
/// `invalid_scope` when a token is not a scope token.
pub fn split_scope(scope: &str) -> Result<Vec<String>, OAuthError> {
    let mut seen = BTreeSet::new();
    let mut scopes = Vec::new();
    for s in scope.split(' ').filter(|s| !s.is_empty()) {
        if !is_scope_token(s) {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                "scope is not a space-separated list of scope tokens (RFC 6749 §3.3)",
            ));
        }
        if seen.insert(s) {
            scopes.push(s.to_owned());
        }
    }
    Ok(scopes)
}

/// Works out the scopes and audience of a client-credentials token. Admin scopes (`admin:*`) come
/// only from the operator's settings and make a token for the admin API alone; other scopes must
/// be registered for the client and served by the resource servers the token is for (RFC 8707).
async fn target(
    state: &AppState,
    form: &Form,
    client: &AuthenticatedClient,
) -> Result<Target, ErrorResponse> {
    let registered = split_scope(client.metadata.scope.as_deref().unwrap_or_default())?;
    let requested = match form.get("scope") {
        Some(scope) => split_scope(scope)?,
        None => registered.clone(),
    };
    let resources = form.get_all("resource");
    let admin_audience = admin_audience(&state.urls.issuer);
    let admin: Vec<&String> = requested
        .iter()
        .filter(|s| ADMIN_SCOPES.contains(&s.as_str()))
        .collect();
    if !admin.is_empty() {
        if admin.len() != requested.len() {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                "admin scopes cannot be combined with other scopes in one token",
            )
            .into());
        }
        if let Some(scope) = admin
            .iter()
            .find(|s| !client.client.settings.allows_admin_scope(s))
        {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                format!("the client may not ask for {scope}"),
            )
            .into());
        }
        if resources.iter().any(|r| *r != admin_audience) {
            return Err(OAuthError::new(
                ErrorCode::InvalidTarget,
                "admin tokens are only for the admin API (RFC 8707 §2)",
            )
            .into());
        }
        return Ok(Target {
            scopes: requested,
            audience: vec![admin_audience],
            format: TokenFormat::Jwt,
        });
    }
    if let Some(scope) = requested.iter().find(|s| !registered.contains(s)) {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            format!("scope {scope} is not registered for the client"),
        )
        .into());
    }
    let service: Vec<&str> = requested
        .iter()
        .filter_map(|s| {
            SERVICE_SCOPES
                .iter()
                .find(|(scope, _)| scope == s)
                .map(|(_, path)| *path)
        })
        .collect();
    if let Some(path) = service.first() {
        if service.len() != requested.len() || service.iter().any(|p| p != path) {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                "the scopes of one of this server's APIs (grant management, revocation events) make a token for that API alone",
            )
            .into());
        }
        let audience = service_audience(&state.urls.issuer, path);
        if resources.iter().any(|r| *r != audience) {
            return Err(OAuthError::new(
                ErrorCode::InvalidTarget,
                "a token for one of this server's APIs is for that API alone (RFC 8707 §2)",
            )
            .into());
        }
        return Ok(Target {
            scopes: requested,
            audience: vec![audience],
            format: TokenFormat::Jwt,
        });
    }
    let mut servers = Vec::new();
    if resources.is_empty() {
        // No resource named: the token is for every resource server that serves a requested scope.
        let snapshot = state
            .resources
            .snapshot()
            .await
            .map_err(|e| server_error("token: resource servers", &e))?;
        servers.extend(snapshot.serving(&requested).cloned());
    } else {
        for resource in resources {
            match state.resources.find(resource).await {
                Ok(Some(rs)) => servers.push(rs),
                Ok(None) => {
                    return Err(OAuthError::new(
                        ErrorCode::InvalidTarget,
                        "resource names no registered resource server (RFC 8707 §2)",
                    )
                    .into());
                }
                Err(e) => return Err(server_error("token: resource servers", &e)),
            }
        }
    }
    if servers.is_empty() {
        return Err(OAuthError::new(
            ErrorCode::InvalidTarget,
            "no registered resource server serves the requested scope: name one with resource (RFC 8707)",
        )
        .into());
    }
    if let Some(scope) = requested
        .iter()
        .find(|s| !servers.iter().any(|rs| rs.metadata.scopes.contains(s)))
    {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            format!("scope {scope} is not served by the requested resource"),
        )
        .into());
    }
    let opaque = client.client.settings.access_token_format == TokenFormat::Opaque
        || servers
            .iter()
            .any(|rs| rs.metadata.token_format == TokenFormat::Opaque);
    Ok(Target {
        scopes: requested,
        audience: servers.into_iter().map(|rs| rs.resource).collect(),
        format: if opaque {
            TokenFormat::Opaque
        } else {
            TokenFormat::Jwt
        },
    })
}

async fn client_credentials(
    state: &AppState,
    info: Option<&ConnectionInfo>,
    certificate: Option<&ClientCertificate>,
    headers: &HeaderMap,
    form: &Form,
    client: &AuthenticatedClient,
) -> Result<Response, ErrorResponse> {
    let target = target(state, form, client).await?;
    // RFC 9396 §6: rich authorization details with this grant too, checked as at PAR.
    let details = match form.get("authorization_details") {
        None => None,
        Some(text) => {
            if target.audience == [admin_audience(&state.urls.issuer)]
                || target.audience.iter().any(|a| {
                    SERVICE_SCOPES
                        .iter()
                        .any(|(_, path)| *a == service_audience(&state.urls.issuer, path))
                })
            {
                return Err(OAuthError::new(
                    ErrorCode::InvalidRequest,
                    "tokens for the admin API, grant management or the event feed carry no authorization_details",
                )
                .into());
            }
            Some(serde_json::Value::Array(
                portcullis_core::authz::details::validate(
                    &serde_json::Value::String(text.to_owned()),
                    &client.metadata.authorization_details_types,
                )?,
            ))
        }
    };
    let now = state.clock.now();
    let confirmation = bind(
        state,
        info,
        certificate,
        headers,
        client.metadata.dpop_bound_access_tokens,
        client.metadata.tls_client_certificate_bound_access_tokens,
    )
    .await?;

    let lifetime_secs = client
        .client
        .settings
        .access_token_lifetime_secs
        .unwrap_or(state.config.tokens.access_token_lifetime_secs);
    let token = AccessToken {
        issuer: state.urls.issuer.clone(),
        audience: target.audience,
        subject: client.client.client_id.to_string(),
        client_id: client.client.client_id.clone(),
        scope: (!target.scopes.is_empty()).then(|| target.scopes.join(" ")),
        authorization_details: details,
        confirmation: confirmation.clone(),
        issued_at: now,
        lifetime: Duration::seconds(i64::from(lifetime_secs)),
        grant_id: None,
        authentication: None,
    };
    let mut body = serde_json::Map::new();
    let minted = mint_into(state, &token, target.format, &mut body).await?;
    record_issued(
        state,
        headers,
        Issued {
            grant_type: "client_credentials",
            token: &token,
            jti: &minted.jti,
            format: target.format,
            refresh_token: false,
        },
    )
    .await?;
    tracing::info!(client_id = %client.client.client_id, grant_type = "client_credentials", token_type = confirmation.token_type(), "access token issued");
    state
        .metrics
        .token_issued("client_credentials", Some(&confirmation));
    Ok(token_response(state, body))
}

/// An access token as issued: the value sent to the client, and its `jti` (which the
/// security-event trail records instead of the token).
pub(crate) struct Minted {
    /// The token itself: a JWT or an opaque reference. Never logged or recorded.
    pub(crate) value: String,
    /// Its `jti`.
    pub(crate) jti: String,
}

/// Signs `token` with the access-token key and writes the RFC 6749 §5.1 members for it into
/// `body` (`access_token`, `token_type`, `expires_in`, `scope`, `authorization_details`);
/// returns the signed token and its `jti`.
pub(crate) async fn mint_into(
    state: &AppState,
    token: &AccessToken,
    format: TokenFormat,
    body: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<Minted, ErrorResponse> {
    let (issued, jti) = match format {
        TokenFormat::Jwt => {
            let key = state
                .keys
                .signer(state.config.access_token_alg())
                .await
                .map_err(|e| server_error("token: signing key", &e))?;
            let minted = token
                .mint(&key, state.rng.as_ref())
                .map_err(|e| server_error("token: minting", &e))?;
            (minted.jwt, minted.jti)
        }
        TokenFormat::Opaque => {
            // A reference: 256 random bits; only its hash and the claims are stored.
            let (claims, jti) = token
                .claims(state.rng.as_ref())
                .map_err(|e| server_error("token: claims", &e))?;
            let value = portcullis_core::client::secret::ClientSecret::generate(state.rng.as_ref())
                .map_err(|e| server_error("token: random", &e))?;
            let stored = portcullis_core::store::StoredAccessToken {
                handle: value.hash(),
                client_id: token.client_id.clone(),
                grant_id: token.grant_id.clone(),
                claims,
                created_at: token.issued_at,
                expires_at: token.issued_at + token.lifetime,
                revoked_at: None,
            };
            state
                .store
                .access_tokens()
                .add(&stored)
                .await
                .map_err(|e| server_error("token: access tokens", &e))?;
            (value.expose().to_owned(), jti)
        }
    };
    body.insert("access_token".into(), issued.clone().into());
    body.insert("token_type".into(), token.confirmation.token_type().into());
    body.insert("expires_in".into(), token.lifetime.whole_seconds().into());
    if let Some(scope) = &token.scope {
        body.insert("scope".into(), scope.clone().into());
    }
    if let Some(details) = &token.authorization_details {
        body.insert("authorization_details".into(), details.clone());
    }
    Ok(Minted { value: issued, jti })
}

/// What a token response issued, for the security-event trail.
pub(crate) struct Issued<'a> {
    /// `authorization_code`, `refresh_token` or `client_credentials`.
    pub(crate) grant_type: &'static str,
    /// The access token as minted.
    pub(crate) token: &'a AccessToken,
    /// Its `jti`.
    pub(crate) jti: &'a str,
    /// Its format.
    pub(crate) format: TokenFormat,
    /// Whether the response carries a refresh token.
    pub(crate) refresh_token: bool,
}

/// Records `token.issued` in the security-event trail and waits until it is durable, before the
/// response is sent: who got what (grant type, client, subject, the access token's `jti`,
/// binding and thumbprint, whether a refresh token came with it), never a token. When it cannot
/// be recorded the request fails closed with `server_error`: a token that is not in the trail is
/// not handed out.
///
/// # Errors
/// `server_error` when the event cannot be committed.
pub(crate) async fn record_issued(
    state: &AppState,
    headers: &HeaderMap,
    issued: Issued<'_>,
) -> Result<(), ErrorResponse> {
    let token = issued.token;
    let client_id = token.client_id.to_string();
    let binding = match &token.confirmation {
        Confirmation::Certificate { x5t_s256 } => {
            serde_json::json!({"kind": "mtls", "x5t#S256": x5t_s256})
        }
        Confirmation::DpopKey { jkt } => serde_json::json!({"kind": "dpop", "jkt": jkt}),
    };
    let mut details = serde_json::Map::new();
    details.insert("grant_type".into(), issued.grant_type.into());
    details.insert("client_id".into(), client_id.clone().into());
    details.insert("jti".into(), issued.jti.into());
    details.insert("token_format".into(), issued.format.as_str().into());
    details.insert("binding".into(), binding);
    details.insert("refresh_token_issued".into(), issued.refresh_token.into());
    details.insert("audience".into(), token.audience.clone().into());
    if let Some(scope) = &token.scope {
        details.insert("scope".into(), scope.clone().into());
    }
    if let Some(grant_id) = &token.grant_id {
        details.insert("grant_id".into(), grant_id.clone().into());
    }
    details.insert(
        "expires_at".into(),
        (token.issued_at + token.lifetime).unix_timestamp().into(),
    );
    let mut event = SecurityEvent::new(
        token.issued_at,
        format!("client:{client_id}"),
        "token.issued",
        Some(token.subject.clone()),
        details,
    )
    .with_client(client_id);
    if let Some(request_id) = headers.get("x-request-id").and_then(|v| v.to_str().ok()) {
        event = event.with_request_id(request_id);
    }
    state
        .store
        .events()
        .append(&event)
        .await
        .map(drop)
        .map_err(|e| server_error("token: the token.issued event could not be recorded", &e))
}

/// The format of a token for `client` and `audience`: opaque when the client's settings or any
/// resource server of the audience ask for it (DESIGN.md, Tokens), else a JWT.
///
/// # Errors
/// `server_error` when the resource servers cannot be read.
pub(crate) async fn token_format(
    state: &AppState,
    client: &AuthenticatedClient,
    audience: &[String],
) -> Result<TokenFormat, ErrorResponse> {
    if client.client.settings.access_token_format == TokenFormat::Opaque {
        return Ok(TokenFormat::Opaque);
    }
    let snapshot = state
        .resources
        .snapshot()
        .await
        .map_err(|e| server_error("token: resource servers", &e))?;
    Ok(
        if audience.iter().any(|a| {
            snapshot
                .find(a)
                .is_some_and(|rs| rs.metadata.token_format == TokenFormat::Opaque)
        }) {
            TokenFormat::Opaque
        } else {
            TokenFormat::Jwt
        },
    )
}

/// What the token request binds its token to (FAPI2 SP 5.3.2.1-4): its DPoP proof's key or the
/// client certificate, with `use_dpop_nonce` answered with a fresh nonce (RFC 9449 §8).
pub(crate) async fn bind(
    state: &AppState,
    info: Option<&ConnectionInfo>,
    certificate: Option<&ClientCertificate>,
    headers: &HeaderMap,
    require_dpop: bool,
    require_certificate: bool,
) -> Result<portcullis_core::access_token::Confirmation, ErrorResponse> {
    let now = state.clock.now();
    let url = sender::request_url(&state.urls, info, PATH);
    let possession = Possession {
        headers,
        method: "POST",
        url: &url,
        certificate,
        nonces: state.dpop_nonces.as_deref(),
    };
    sender::token_binding(
        &state.store,
        &possession,
        require_dpop,
        require_certificate,
        now,
    )
    .await
    .map_err(|e| {
        let response = from_possession(e);
        match (&state.dpop_nonces, response.error.error) {
            (Some(nonces), ErrorCode::UseDpopNonce) => ErrorResponse {
                dpop_nonce: Some(nonces.current(now)),
                ..response
            },
            _ => response,
        }
    })
}

/// A successful token response (RFC 6749 §5.1): `no-store`, and a fresh DPoP nonce when the
/// server requires them (RFC 9449 §8.2), so the client never needs a failed request.
pub(crate) fn token_response(
    state: &AppState,
    body: serde_json::Map<String, serde_json::Value>,
) -> Response {
    let mut response = axum::Json(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    if let Some(nonce) = state
        .dpop_nonces
        .as_ref()
        .and_then(|n| HeaderValue::from_str(&n.current(state.clock.now())).ok())
    {
        headers.insert("dpop-nonce", nonce);
    }
    response
}
