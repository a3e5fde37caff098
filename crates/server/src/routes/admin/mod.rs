//! The operator's admin API, `/admin/v1`: JSON REST over clients, users, keys and resource
//! servers, with an OpenAPI 3.1 document generated from the same handlers that serve it.
//!
//! Authentication: sender-constrained access tokens that Portcullis itself issued with the
//! client-credentials grant to a client whose operator settings grant `admin:*` scopes. Each
//! request must carry the token (`DPoP` scheme with a proof whose `ath` covers it, or `Bearer` on
//! the mTLS listener with the certificate it is bound to), the token's audience must be the admin
//! API, and the route's scope must be both in the token and still granted to the client, so that
//! removing a scope or deleting the client takes effect at once.

pub mod clients;
pub mod events;
pub mod keys;
pub mod resources;
pub mod revocation_events;
pub mod users;

use axum::Json;
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use portcullis_core::client::ClientId;
use portcullis_core::error::{ErrorCode, OAuthError};
use portcullis_core::store::StoreError;
use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;
use crate::routes::oauth_error::quote;
use crate::routes::token::admin_audience;

/// The prefix.
pub const PREFIX: &str = "/admin/v1";

/// An error of the admin API: a JSON body with `error` and `error_description`.
#[derive(Debug)]
pub enum AdminError {
    /// A protocol error (`invalid_token`, `insufficient_scope`, `invalid_request`,
    /// `invalid_client_metadata`, …) with an optional `WWW-Authenticate` challenge.
    Protocol(OAuthError, Option<String>),
    /// 404.
    NotFound(String),
    /// 409.
    Conflict(String),
    /// 500; the cause is logged, never sent.
    Internal,
    /// 401 `use_dpop_nonce` with the nonce to use (RFC 9449 §9).
    UseDpopNonce(String),
}

/// The body of every admin API error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// An RFC 6749/6750/7591 error code, or `not_found`, `conflict`, `server_error`.
    pub error: String,
    /// What went wrong, naming the rule.
    pub error_description: String,
}

impl AdminError {
    /// Logs an internal failure and hides it.
    pub fn internal(context: &str, error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, "admin: {context}");
        AdminError::Internal
    }

    /// A store failure: not found and conflicts are the caller's; the rest is internal.
    pub fn store(what: &str, error: StoreError) -> Self {
        match error {
            StoreError::NotFound => AdminError::NotFound(format!("no such {what}")),
            StoreError::Conflict(_) => AdminError::Conflict(format!(
                "the {what} conflicts with an existing one, or another record refers to it"
            )),
            other => AdminError::internal(what, &other),
        }
    }
}

impl From<OAuthError> for AdminError {
    fn from(error: OAuthError) -> Self {
        AdminError::Protocol(error, None)
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let mut nonce = None;
        let (status, (error, outcome), description, challenge) = match self {
            AdminError::Protocol(e, challenge) => (
                match e.error {
                    // The admin API is a protected resource: a refused proof is 401 with a
                    // challenge (RFC 9449 §7.1, §9), not the token endpoint's 400.
                    ErrorCode::InvalidDpopProof | ErrorCode::UseDpopNonce => {
                        StatusCode::UNAUTHORIZED
                    }
                    code => crate::routes::oauth_error::status_of(code),
                },
                (e.error.as_str().to_owned(), e.error.as_str()),
                e.error_description,
                challenge,
            ),
            AdminError::NotFound(d) => (
                StatusCode::NOT_FOUND,
                ("not_found".into(), "not_found"),
                d,
                None,
            ),
            AdminError::Conflict(d) => (
                StatusCode::CONFLICT,
                ("conflict".into(), "conflict"),
                d,
                None,
            ),
            AdminError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                ("server_error".into(), "server_error"),
                "the server could not complete the request".into(),
                None,
            ),
            AdminError::UseDpopNonce(fresh) => {
                nonce = Some(fresh);
                let description =
                    "a DPoP proof with the server's current nonce is required (RFC 9449 §9)";
                (
                    StatusCode::UNAUTHORIZED,
                    (
                        ErrorCode::UseDpopNonce.as_str().to_owned(),
                        ErrorCode::UseDpopNonce.as_str(),
                    ),
                    description.to_owned(),
                    Some(format!(
                        "DPoP error=\"use_dpop_nonce\", error_description={}",
                        quote(description)
                    )),
                )
            }
        };
        let mut response = (
            status,
            Json(ErrorBody {
                error,
                error_description: description,
            }),
        )
            .into_response();
        crate::metrics::Outcome::mark(&mut response, outcome);
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        if let Some(value) = nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
            response.headers_mut().insert("dpop-nonce", value);
        }
        response
    }
}

/// An admin API caller: the client its token was issued to and the token's scopes.
#[derive(Debug, Clone)]
pub struct AdminCaller {
    /// The admin client.
    pub client_id: ClientId,
    scopes: Vec<String>,
    granted: Vec<String>,
}

impl AdminCaller {
    /// The actor recorded in security events.
    #[must_use]
    pub fn actor(&self) -> String {
        format!("admin-client:{}", self.client_id)
    }

    /// Requires `scope`: in the token and still granted to the client (RFC 6750 §3.1
    /// `insufficient_scope`).
    ///
    /// # Errors
    /// 403 `insufficient_scope`.
    pub fn require(&self, scope: &str) -> Result<(), AdminError> {
        if self.scopes.iter().any(|s| s == scope) && self.granted.iter().any(|s| s == scope) {
            Ok(())
        } else {
            Err(AdminError::Protocol(
                OAuthError::new(
                    ErrorCode::InsufficientScope,
                    format!("this operation needs the {scope} scope"),
                ),
                Some(format!(
                    "Bearer error=\"insufficient_scope\", scope={}",
                    quote(scope)
                )),
            ))
        }
    }
}

impl From<crate::protected::Refusal> for AdminError {
    fn from(refusal: crate::protected::Refusal) -> Self {
        use crate::protected::Refusal;
        match refusal {
            Refusal::Missing { challenge } => AdminError::Protocol(
                OAuthError::new(ErrorCode::InvalidToken, "an admin access token is required"),
                Some(challenge),
            ),
            Refusal::Token(e, challenge) | Refusal::Proof(e, challenge) => {
                AdminError::Protocol(e, Some(challenge))
            }
            Refusal::UseNonce(nonce) => AdminError::UseDpopNonce(nonce),
            Refusal::Internal => AdminError::Internal,
        }
    }
}

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AdminError> {
        let audience = admin_audience(&state.urls.issuer);
        let caller =
            crate::protected::authenticate(state, parts, &audience, "the admin API").await?;
        let scopes = caller.scopes();
        Ok(AdminCaller {
            client_id: caller.client.client_id,
            scopes,
            granted: caller.client.settings.admin_scopes,
        })
    }
}

impl OptionalFromRequestParts<AppState> for AdminCaller {
    type Rejection = AdminError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, AdminError> {
        <Self as FromRequestParts<AppState>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}

/// Paging of list routes.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Return items after this one (the last identifier of the previous page).
    pub after: Option<String>,
    /// At most this many items, 1 to 500 (default 100).
    pub limit: Option<u32>,
}

impl Page {
    /// The bounded limit.
    #[must_use]
    pub fn limit(&self) -> u32 {
        self.limit.unwrap_or(100).clamp(1, 500)
    }

    /// `after` as a sequence number of an append-only listing (0 when absent).
    ///
    /// # Errors
    /// `invalid_request` when it is not a non-negative integer.
    pub fn after_seq(&self) -> Result<i64, OAuthError> {
        match self.after.as_deref() {
            None => Ok(0),
            Some(text) => text.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                OAuthError::new(
                    ErrorCode::InvalidRequest,
                    "after must be an event sequence number",
                )
            }),
        }
    }
}

/// A request body that must be a JSON object (`Content-Type: application/json`) with the members
/// of `T`. Anything else is a 400 `invalid_request` in the admin API's error format, never the
/// framework's plain-text 415/422.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

fn invalid_body(description: impl Into<String>) -> AdminError {
    AdminError::Protocol(
        OAuthError::new(ErrorCode::InvalidRequest, description),
        None,
    )
}

fn is_json(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

async fn read_body(request: axum::extract::Request) -> Result<axum::body::Bytes, AdminError> {
    axum::body::to_bytes(request.into_body(), usize::MAX)
        .await
        .map_err(|_| {
            invalid_body("the body could not be read (larger than limits.max_body_bytes?)")
        })
}

fn parse_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, AdminError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        invalid_body(format!(
            "the body is not JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    if !value.is_object() {
        return Err(invalid_body("the body must be a JSON object"));
    }
    serde_json::from_value(value)
        .map_err(|e| invalid_body(format!("the body does not have the expected members: {e}")))
}

impl<S, T> axum::extract::FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = AdminError;

    async fn from_request(request: axum::extract::Request, _: &S) -> Result<Self, AdminError> {
        if !is_json(request.headers()) {
            return Err(invalid_body(
                "the body must be a JSON object sent with Content-Type: application/json",
            ));
        }
        let bytes = read_body(request).await?;
        parse_body(&bytes).map(JsonBody)
    }
}

impl<S, T> axum::extract::OptionalFromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = AdminError;

    /// No body at all is `None`; a body must be a JSON object as for [`JsonBody`].
    async fn from_request(
        request: axum::extract::Request,
        _: &S,
    ) -> Result<Option<Self>, AdminError> {
        let json = is_json(request.headers());
        let bytes = read_body(request).await?;
        if bytes.is_empty() && !json {
            return Ok(None);
        }
        if !json {
            return Err(invalid_body(
                "the body must be a JSON object sent with Content-Type: application/json",
            ));
        }
        parse_body(&bytes).map(|t| Some(JsonBody(t)))
    }
}

/// A page of items.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Listing {
    /// The items.
    pub items: Vec<serde_json::Map<String, Value>>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

impl Listing {
    /// A page of a sequence-numbered log (the audit trail, the revocation feed) asked for with
    /// `limit`: each item described, and the last one's sequence number as the cursor when the
    /// page is full.
    pub fn by_seq<T>(
        found: &[T],
        limit: u32,
        seq: impl Fn(&T) -> i64,
        describe: impl Fn(&T) -> serde_json::Map<String, Value>,
    ) -> Self {
        let next = (found.len() == limit as usize)
            .then(|| found.last().map(|e| seq(e).to_string()))
            .flatten();
        Listing {
            items: found.iter().map(describe).collect(),
            next,
        }
    }
}

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "dpop",
            // OpenAPI has no `DPoP` HTTP scheme: the header is described as such.
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`DPoP <access token>` with a `DPoP` proof header (RFC 9449 §7.1): a DPoP-bound token from the client-credentials grant",
            ))),
        );
        components.add_security_scheme(
            "mtls_bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A certificate-bound access token (RFC 8705) sent on the mTLS listener with its certificate",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Portcullis admin API",
        description = "The operator's API: clients, users, signing keys, resource servers, the security-event trail and the revocation event feed. Every route needs a sender-constrained admin access token with the scope it names.",
    ),
    modifiers(&SecuritySchemes),
    security(("dpop" = []), ("mtls_bearer" = [])),
    components(schemas(ErrorBody, Listing)),
)]
struct AdminDoc;

/// The admin routes and their OpenAPI document.
pub fn router() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut api) = OpenApiRouter::with_openapi(AdminDoc::openapi())
        .merge(clients::router())
        .merge(users::router())
        .merge(keys::router())
        .merge(resources::router())
        .merge(events::router())
        .merge(revocation_events::router())
        .split_for_parts();
    api.info.version = env!("CARGO_PKG_VERSION").to_owned();
    (router, api)
}
