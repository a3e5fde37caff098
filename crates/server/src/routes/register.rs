//! Dynamic client registration: `POST /register` (RFC 7591) and the client configuration
//! endpoint `GET`/`PUT`/`DELETE /register/{client_id}` (RFC 7592), on both listeners. Who is
//! admitted is [`crate::registration`]'s decision; the change is stored and recorded through
//! [`crate::registry`], as the admin API's are.
//!
//! Every answer carries `Cache-Control: no-store` (it may hold a secret or the registration
//! access token). Errors are RFC 7591 §3.2.2 JSON; a missing or wrong initial or registration
//! access token is `401` with an RFC 6750 `Bearer` challenge (checklist #64).

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use portcullis_core::client::metadata::{AuthMethod, ClientMetadata};
use portcullis_core::client::secret::ClientSecret;
use portcullis_core::client::settings::ClientSettings;
use portcullis_core::client::{Client, ClientId};
use portcullis_core::error::{ErrorCode, OAuthError};
use portcullis_core::store::StoreError;
use serde_json::{Map, Value};

use crate::app::AppState;
use crate::registration::{AdmissionError, bearer_token};
use crate::registry::{self, ClientUpdate, RegistryError};
use crate::routes::oauth_error::{ErrorResponse, quote};
use crate::tls::ListenerKind;
use crate::tls::client_cert::{ClientCertificate, ConnectionInfo};

/// The registration endpoint's path.
pub const PATH: &str = "/register";

/// Why a registration call failed, mapped to its answer by [`IntoResponse`].
#[derive(Debug)]
pub enum RegisterError {
    /// Registration is not enabled here.
    Closed,
    /// An RFC 7591 error (400, or 503 when a directory's keys cannot be fetched).
    Refused(OAuthError),
    /// A missing or wrong initial or registration access token (401).
    Unauthorized(String),
    /// Something internal failed; logged, answered `server_error`.
    Internal(String),
}

impl From<OAuthError> for RegisterError {
    fn from(error: OAuthError) -> Self {
        RegisterError::Refused(error)
    }
}

impl From<AdmissionError> for RegisterError {
    fn from(error: AdmissionError) -> Self {
        match error {
            AdmissionError::Refused(e) => RegisterError::Refused(e),
            AdmissionError::Unauthorized(e) => RegisterError::Unauthorized(e.error_description),
            AdmissionError::Store(e) => RegisterError::Internal(e.to_string()),
        }
    }
}

impl From<RegistryError> for RegisterError {
    fn from(error: RegistryError) -> Self {
        match error {
            RegistryError::Invalid(e) => RegisterError::Refused(e),
            RegistryError::Store(StoreError::Conflict(_)) => {
                RegisterError::Refused(OAuthError::new(
                    ErrorCode::InvalidRequest,
                    "a resource server authenticates as this client: ask the operator to remove it first",
                ))
            }
            RegistryError::Store(StoreError::NotFound) => {
                RegisterError::Unauthorized("the client no longer exists".into())
            }
            other => RegisterError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for RegisterError {
    fn into_response(self) -> Response {
        match self {
            RegisterError::Closed => (
                StatusCode::NOT_FOUND,
                [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
                Json(serde_json::json!({
                    "error": "not_found",
                    "error_description": "dynamic client registration is not enabled on this server"
                })),
            )
                .into_response(),
            RegisterError::Refused(error) => ErrorResponse::new(error).into_response(),
            RegisterError::Unauthorized(description) => {
                let challenge = format!(
                    "Bearer error=\"invalid_token\", error_description={}",
                    quote(&description)
                );
                ErrorResponse::new(OAuthError::new(ErrorCode::InvalidToken, description))
                    .with_challenge(challenge)
                    .into_response()
            }
            RegisterError::Internal(error) => {
                tracing::error!(%error, "registration failed");
                ErrorResponse::new(OAuthError::server_error()).into_response()
            }
        }
    }
}

type Certificate = Option<Extension<Arc<ClientCertificate>>>;

fn certificate(extension: &Certificate) -> Option<&ClientCertificate> {
    extension.as_ref().map(|Extension(c)| c.as_ref())
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

/// The JSON object a request carries (RFC 7591 §3.1).
fn json_object(headers: &HeaderMap, body: &[u8]) -> Result<Map<String, Value>, RegisterError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(OAuthError::new(
            ErrorCode::InvalidClientMetadata,
            "the request must be a JSON object with Content-Type: application/json (RFC 7591 §3.1)",
        )
        .into());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(OAuthError::new(
            ErrorCode::InvalidClientMetadata,
            "the request body is not a JSON object (RFC 7591 §3.1)",
        )
        .into()),
    }
}

/// The client configuration endpoint of a client, on the listener the caller used.
fn client_uri(state: &AppState, info: Option<&ConnectionInfo>, client_id: &ClientId) -> String {
    let path = format!("{PATH}/{client_id}");
    match info.map(|i| i.listener) {
        Some(ListenerKind::Mtls) => state.urls.mtls_endpoint(&path),
        _ => state.urls.endpoint(&path),
    }
}

/// The client information response (RFC 7591 §3.2.1, RFC 7592 §3): the metadata, with the
/// server-assigned members; never the operator's settings or a stored hash.
fn information(client: &Client, registration_token: &str, uri: String) -> Map<String, Value> {
    let mut shown = client.metadata.clone();
    shown.insert("client_id".into(), client.client_id.as_str().into());
    shown.insert(
        "client_id_issued_at".into(),
        client.created_at.unix_timestamp().into(),
    );
    if client.secret_hash.is_some() {
        // RFC 7591 §3.2.1: 0 means it does not expire.
        shown.insert("client_secret_expires_at".into(), 0.into());
    }
    shown.insert(
        "registration_access_token".into(),
        registration_token.into(),
    );
    shown.insert("registration_client_uri".into(), uri.into());
    shown
}

fn answer(status: StatusCode, body: Map<String, Value>) -> Response {
    (
        status,
        [
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (header::PRAGMA, HeaderValue::from_static("no-cache")),
        ],
        Json(Value::Object(body)),
    )
        .into_response()
}

/// `POST /register`.
pub async fn post(
    State(state): State<AppState>,
    info: Option<Extension<ConnectionInfo>>,
    cert: Certificate,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, RegisterError> {
    let registrar = &state.registration;
    if !registrar.is_open() {
        return Err(RegisterError::Closed);
    }
    let initial_token = registrar.check_initial_access_token(authorization(&headers))?;
    let request = json_object(&headers, &body)?;
    let admitted = registrar
        .admit(request, certificate(&cert), None, initial_token)
        .await?;
    let token = ClientSecret::generate(state.rng.as_ref())
        .map_err(|e| RegisterError::Internal(e.to_string()))?;
    let registered = registry::create_client(
        state.store.as_ref(),
        state.rng.as_ref(),
        state.clock.as_ref(),
        &admitted.actor,
        crate::registry::NewClient {
            request: admitted.metadata,
            profile: admitted.profile,
            settings: ClientSettings::default(),
            registration_token: Some(token.hash()),
        },
    )
    .await?;
    let client = &registered.client;
    let uri = client_uri(
        &state,
        info.as_ref().map(|Extension(i)| i),
        &client.client_id,
    );
    let mut shown = information(client, token.expose(), uri);
    if let Some(secret) = &registered.secret {
        shown.insert("client_secret".into(), secret.expose().into());
    }
    Ok(answer(StatusCode::CREATED, shown))
}

/// The client a registration access token manages, or `401`. The token is compared in constant
/// time with its stored hash; an unknown client and a wrong token get the same answer.
async fn authorize(
    state: &AppState,
    client_id: &str,
    headers: &HeaderMap,
    cert: Option<&ClientCertificate>,
) -> Result<(Client, String), RegisterError> {
    if !state.registration.is_open() {
        return Err(RegisterError::Closed);
    }
    let refused = || {
        RegisterError::Unauthorized(
            "the registration access token is not valid for this client".into(),
        )
    };
    let token = authorization(headers)
        .and_then(bearer_token)
        .ok_or_else(|| {
            RegisterError::Unauthorized(
                "the registration access token is required as a Bearer token (RFC 7592 §2)".into(),
            )
        })?
        .to_owned();
    let client_id = ClientId::parse(client_id).map_err(|_| refused())?;
    let client = match state.store.clients().find_by_id(&client_id).await {
        Ok(client) => client,
        Err(StoreError::NotFound) => return Err(refused()),
        Err(e) => return Err(RegisterError::Internal(e.to_string())),
    };
    if !client
        .registration_token_hash
        .as_ref()
        .is_some_and(|hash| hash.matches(&token))
    {
        return Err(refused());
    }
    state
        .registration
        .check_management_certificate(&client, cert)
        .await
        .map_err(|e| {
            RegisterError::Unauthorized(format!(
                "the registration access token is bound to the software's transport certificate: {}",
                e.error_description
            ))
        })?;
    Ok((client, token))
}

/// `GET /register/{client_id}` (RFC 7592 §2.1).
pub async fn get_client(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    info: Option<Extension<ConnectionInfo>>,
    cert: Certificate,
    headers: HeaderMap,
) -> Result<Response, RegisterError> {
    let (client, token) = authorize(&state, &client_id, &headers, certificate(&cert)).await?;
    let uri = client_uri(
        &state,
        info.as_ref().map(|Extension(i)| i),
        &client.client_id,
    );
    Ok(answer(StatusCode::OK, information(&client, &token, uri)))
}

/// Members a client must not send in an update (RFC 7592 §2.2).
const NOT_IN_UPDATES: [&str; 4] = [
    "registration_access_token",
    "registration_client_uri",
    "client_id_issued_at",
    "client_secret_expires_at",
];

/// `PUT /register/{client_id}` (RFC 7592 §2.2): replaces the metadata, validated as a
/// registration is, for the client's profile; the operator's settings stay.
pub async fn put_client(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    info: Option<Extension<ConnectionInfo>>,
    cert: Certificate,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, RegisterError> {
    let (client, token) = authorize(&state, &client_id, &headers, certificate(&cert)).await?;
    let mut request = json_object(&headers, &body)?;
    let invalid_request =
        |d: &str| RegisterError::Refused(OAuthError::new(ErrorCode::InvalidRequest, d));
    match request.remove("client_id") {
        Some(Value::String(id)) if id == client.client_id.as_str() => {}
        _ => {
            return Err(invalid_request(
                "the update must carry the client's client_id (RFC 7592 §2.2)",
            ));
        }
    }
    if let Some(name) = NOT_IN_UPDATES.iter().find(|n| request.contains_key(**n)) {
        return Err(invalid_request(&format!(
            "{name} must not be sent in an update (RFC 7592 §2.2)"
        )));
    }
    if let Some(secret) = request.remove("client_secret") {
        let matches = secret.as_str().is_some_and(|s| {
            client
                .secret_hash
                .as_ref()
                .is_some_and(|hash| hash.matches(s))
        });
        if !matches {
            return Err(invalid_request(
                "client_secret, when sent, must be the client's current secret (RFC 7592 §2.2)",
            ));
        }
    }
    let admitted = state
        .registration
        .admit(request, certificate(&cert), Some(&client), false)
        .await?;
    // A client registered with a secret that moves to another method loses it; one that moves to
    // a secret method needs the operator to rotate one for it.
    let metadata = ClientMetadata::from_request(admitted.metadata.clone())?;
    if matches!(
        metadata.token_endpoint_auth_method,
        Some(AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost)
    ) && client.secret_hash.is_none()
    {
        return Err(OAuthError::new(
            ErrorCode::InvalidClientMetadata,
            "token_endpoint_auth_method cannot change to a client secret method by update",
        )
        .into());
    }
    let updated = registry::update_client(
        state.store.as_ref(),
        state.clock.as_ref(),
        &format!("client:{}", client.client_id),
        &client.client_id,
        ClientUpdate {
            metadata: admitted.metadata,
            profile: None,
            settings: None,
        },
    )
    .await?;
    let uri = client_uri(
        &state,
        info.as_ref().map(|Extension(i)| i),
        &updated.client_id,
    );
    Ok(answer(StatusCode::OK, information(&updated, &token, uri)))
}

/// `DELETE /register/{client_id}` (RFC 7592 §2.3): `204`; the client, and with it its
/// registration access token, is gone.
pub async fn delete_client(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    cert: Certificate,
    headers: HeaderMap,
) -> Result<Response, RegisterError> {
    let (client, _) = authorize(&state, &client_id, &headers, certificate(&cert)).await?;
    registry::delete_client(
        state.store.as_ref(),
        state.clock.as_ref(),
        &format!("client:{}", client.client_id),
        &client.client_id,
    )
    .await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
    )
        .into_response())
}
