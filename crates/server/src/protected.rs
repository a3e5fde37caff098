//! Our own access tokens at the resources this server hosts (the admin API, userinfo): the token
//! comes only from the `Authorization` header (`DPoP` or `Bearer`, the scheme matched
//! case-insensitively; FAPI2 SP 5.3.4), is an RFC 9068 JWT signed by our keys or an unrevoked
//! opaque reference in the store, issued here, for the given audience and unexpired, and is presented by its holder: with a DPoP proof covering
//! it (`ath`) for `cnf.jkt`, or on the connection with the certificate of `cnf.x5t#S256`
//! (checklist #29–#35). The client it was issued to must still exist.
//!
//! A [`Refusal`] is answered as RFC 6750 §3 / RFC 9449 §7.1 say (its `IntoResponse`), and a
//! token without the scope a resource needs with [`insufficient_scope`].

use std::sync::Arc;

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use portcullis_core::client::secret::SecretHash;
use portcullis_core::client::{Client, ClientId};
use portcullis_core::error::{ErrorCode, OAuthError};
use portcullis_core::store::StoreError;
use portcullis_jose::{SigningAlg, verify_jwt_prepared};
use portcullis_verify::binding::Binding;
use serde_json::{Map, Value};

use crate::app::AppState;
use crate::routes::oauth_error::quote;
use crate::sender::{self, Possession, PossessionError};
use crate::tls::client_cert::{ClientCertificate, ConnectionInfo};

/// Why a request to a protected resource was refused (RFC 6750 §3, RFC 9449 §7.1).
#[derive(Debug)]
pub enum Refusal {
    /// No token: a challenge without an error code (RFC 6750 §3.1).
    Missing {
        /// The `WWW-Authenticate` challenge.
        challenge: String,
    },
    /// `invalid_token`, with its challenge.
    Token(OAuthError, String),
    /// `invalid_dpop_proof`, with its challenge.
    Proof(OAuthError, String),
    /// `use_dpop_nonce`: retry with this nonce (RFC 9449 §9).
    UseNonce(String),
    /// The store failed; logged.
    Internal,
}

/// A caller whose token checked out.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's claims.
    pub claims: Arc<Map<String, Value>>,
    /// The client it was issued to.
    pub client: Client,
}

impl Caller {
    /// The token's scopes.
    #[must_use]
    pub fn scopes(&self) -> Vec<String> {
        self.claims
            .get("scope")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Whether the token is DPoP-bound (`cnf.jkt`), so that challenges use the `DPoP` scheme.
    #[must_use]
    pub fn dpop(&self) -> bool {
        self.claims.get("cnf").and_then(|c| c.get("jkt")).is_some()
    }
}

impl IntoResponse for Refusal {
    /// 401 with the challenge (and, for a token or proof error, a JSON body with `error` and
    /// `error_description`); `use_dpop_nonce` with a fresh `DPoP-Nonce`; 500 `server_error` for
    /// a store failure. Always `Cache-Control: no-store`.
    fn into_response(self) -> Response {
        let (status, body, challenge, nonce) = match self {
            Refusal::Missing { challenge } => {
                (StatusCode::UNAUTHORIZED, None, Some(challenge), None)
            }
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
            Some(error) => {
                let code = error.error.as_str();
                let mut response = (status, Json(error)).into_response();
                crate::metrics::Outcome::mark(&mut response, code);
                response
            }
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
}

/// 403 `insufficient_scope` (RFC 6750 §3.1): the challenge, in the scheme of the token (`DPoP`
/// when `dpop`, else `Bearer`), names the `scope` needed; the JSON body says why.
#[must_use]
pub fn insufficient_scope(scope: &str, description: impl Into<String>, dpop: bool) -> Response {
    let challenge = format!(
        "{} error=\"insufficient_scope\", scope={}",
        if dpop { "DPoP" } else { "Bearer" },
        quote(scope)
    );
    let mut response = (
        StatusCode::FORBIDDEN,
        Json(OAuthError::new(ErrorCode::InsufficientScope, description)),
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        headers.insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// The DPoP algorithms, as the `algs` auth-param lists them (RFC 9449 §7.1).
#[must_use]
pub fn dpop_algs() -> String {
    SigningAlg::ALL
        .iter()
        .map(|a| a.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `invalid_token` with the challenge of the scheme used.
#[must_use]
pub fn invalid_token(description: impl Into<String>, dpop: bool) -> Refusal {
    let description = description.into();
    let challenge = if dpop {
        format!(
            "DPoP error=\"invalid_token\", error_description={}, algs=\"{}\"",
            quote(&description),
            dpop_algs()
        )
    } else {
        format!(
            "Bearer error=\"invalid_token\", error_description={}",
            quote(&description)
        )
    };
    Refusal::Token(
        OAuthError::new(ErrorCode::InvalidToken, description),
        challenge,
    )
}

/// The claims of one of our access tokens: a JWT signed by our keys with `typ` `at+jwt`, or an
/// unrevoked opaque reference in the store. The inner error says why a token is none of ours;
/// issuer, audience, expiry and binding are the caller's to check.
///
/// # Errors
/// [`StoreError`] when the store fails.
pub async fn access_token_claims(
    state: &AppState,
    token: &str,
) -> Result<Result<Map<String, Value>, &'static str>, StoreError> {
    if token.split('.').count() == 3 {
        let jwks = state.keys.prepared_jwks().await;
        return Ok(match verify_jwt_prepared(token, &jwks, &SigningAlg::ALL) {
            Err(_) => Err("the access token is not valid"),
            Ok(verified)
                if verified.header.get("typ").and_then(Value::as_str) != Some("at+jwt") =>
            {
                Err("the token is not an access token (RFC 9068 §2.1 typ at+jwt)")
            }
            Ok(verified) => Ok(verified.claims),
        });
    }
    // An opaque reference: its claims are in the store, under the token's hash.
    match state
        .store
        .access_tokens()
        .find(&SecretHash::of(token))
        .await
    {
        Ok(stored) if stored.revoked_at.is_none() => Ok(Ok(stored.claims)),
        Ok(_) | Err(StoreError::NotFound) => Ok(Err("the access token is not valid")),
        Err(e) => Err(e),
    }
}

/// Authenticates the caller of a protected resource whose tokens carry `audience`.
///
/// # Errors
/// A [`Refusal`] to answer with.
pub async fn authenticate(
    state: &AppState,
    parts: &Parts,
    audience: &str,
    purpose: &str,
) -> Result<Caller, Refusal> {
    let authorization = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Refusal::Missing {
            challenge: format!("DPoP algs=\"{}\", Bearer", dpop_algs()),
        })?;
    let (scheme, token) = authorization
        .split_once(' ')
        .map(|(s, t)| (s, t.trim()))
        .ok_or_else(|| invalid_token("the Authorization header is malformed", false))?;
    let dpop_scheme = scheme.eq_ignore_ascii_case("dpop");
    if !dpop_scheme && !scheme.eq_ignore_ascii_case("bearer") {
        return Err(invalid_token(
            "the Authorization scheme must be DPoP or Bearer",
            false,
        ));
    }
    let now = state.clock.now();
    // Issued here, unexpired, unrevoked, its grant standing (crate::liveness).
    let claims = match crate::liveness::judge(state, token, now).await {
        Ok(Ok(claims)) => claims,
        Ok(Err(why)) => return Err(invalid_token(why, dpop_scheme)),
        Err(e) => {
            tracing::error!(error = %e, "protected resource: access tokens");
            return Err(Refusal::Internal);
        }
    };
    let for_us = match claims.get("aud") {
        Some(Value::String(a)) => a == audience,
        Some(Value::Array(values)) => values.iter().any(|v| v.as_str() == Some(audience)),
        _ => false,
    };
    if !for_us {
        return Err(invalid_token(
            format!("the token is not for {purpose}"),
            dpop_scheme,
        ));
    }
    // The binding (checklist #29, #30, #34, #35).
    let binding =
        Binding::from_claims(&claims).map_err(|e| invalid_token(e.to_string(), dpop_scheme))?;
    let certificate = parts.extensions.get::<Arc<ClientCertificate>>().cloned();
    match &binding {
        Binding::DpopKey(_) => {
            if !dpop_scheme {
                return Err(invalid_token(
                    "a DPoP-bound token must be sent with the DPoP scheme and a proof (RFC 9449 §7.1)",
                    false,
                ));
            }
            let info = parts.extensions.get::<ConnectionInfo>();
            let url = sender::request_url(&state.urls, info, parts.uri.path());
            let possession = Possession {
                headers: &parts.headers,
                method: parts.method.as_str(),
                url: &url,
                certificate: certificate.as_deref(),
                nonces: state.dpop_nonces.as_deref(),
            };
            let proof = sender::check_dpop(&state.store, &possession, Some(token), now)
                .await
                .map_err(|e| match e {
                    PossessionError::Refused(e) if e.error == ErrorCode::UseDpopNonce => {
                        Refusal::UseNonce(
                            state
                                .dpop_nonces
                                .as_ref()
                                .map(|n| n.current(now))
                                .unwrap_or_default(),
                        )
                    }
                    PossessionError::Refused(e) => {
                        let challenge = format!(
                            "DPoP error=\"invalid_dpop_proof\", error_description={}",
                            quote(&e.error_description)
                        );
                        Refusal::Proof(
                            OAuthError::new(ErrorCode::InvalidDpopProof, e.error_description),
                            challenge,
                        )
                    }
                    PossessionError::Store(e) => {
                        tracing::error!(error = %e, "replay store");
                        Refusal::Internal
                    }
                })?;
            binding
                .check(None, Some(&proof.jkt))
                .map_err(|e| invalid_token(e.to_string(), true))?;
        }
        Binding::Certificate(_) => {
            if dpop_scheme {
                return Err(invalid_token(
                    "a certificate-bound token is sent with the Bearer scheme (RFC 8705 §3)",
                    true,
                ));
            }
            binding
                .check(certificate.as_ref().map(|c| c.x5t_s256()), None)
                .map_err(|e| invalid_token(e.to_string(), false))?;
        }
    }

    let client_id = claims
        .get("client_id")
        .and_then(Value::as_str)
        .and_then(|c| ClientId::parse(c).ok())
        .ok_or_else(|| invalid_token("the token names no client", dpop_scheme))?;
    let client = match state.store.clients().find_by_id(&client_id).await {
        Ok(client) => client,
        Err(StoreError::NotFound) => {
            return Err(invalid_token(
                "the client the token was issued to no longer exists",
                dpop_scheme,
            ));
        }
        Err(e) => {
            tracing::error!(error = %e, "protected resource: clients");
            return Err(Refusal::Internal);
        }
    };
    Ok(Caller { claims, client })
}
