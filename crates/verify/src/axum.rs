//! axum integration (feature `axum`): [`ApiAuth`] holds the [`Verifier`] and this API's public
//! URL; [`Authenticated`] is an extractor yielding the verified [`Principal`]; [`ApiAuth::layer`]
//! refuses every request without a good token before it reaches a handler; a refusal is a
//! [`Rejection`], answered with the RFC 6750 / RFC 9449 challenge.
//!
//! The client certificate is read from the request's `Arc<ClientCertificate>` extension, which
//! [`tls`](crate::tls) (feature `server`) sets from the TLS handshake, or from a trusted proxy's
//! RFC 9440 `Client-Cert` header.
//!
//! DPoP proofs name the URL the client sent the request to (`htu`). Behind a load balancer the
//! `Host` header is not to be believed, so the URL is built from the public base URL given here
//! and the request's path, never from headers.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderValue, header};
use serde_json::json;

use crate::certificate::ClientCertificate;
use crate::error::VerifyError;
use crate::principal::Principal;
use crate::verifier::{TokenRequest, Verifier};

/// The verifier and where this API is published.
#[derive(Debug, Clone)]
pub struct ApiAuth {
    verifier: Verifier,
    /// How refusals are worded, made once and shared by every request.
    context: Arc<RejectionContext>,
    /// The public base URL, without a trailing slash.
    base: Arc<str>,
}

/// A verified token: what [`Authenticated`] yields and what [`ApiAuth::layer`] puts in the
/// request's extensions.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Who it speaks for and what it allows.
    pub principal: Principal,
    /// The token itself, for a WebSocket session's rechecks. Never log it.
    pub token: Token,
    /// How this API words its refusals.
    context: Arc<RejectionContext>,
}

#[derive(Debug)]
struct RejectionContext {
    realm: Arc<str>,
    algs: Arc<str>,
}

impl Verified {
    /// A refusal of this request, worded as the API words them (for the errors of
    /// [`Principal::require_scopes`] and [`Principal::require_detail`]).
    #[must_use]
    pub fn reject(&self, error: VerifyError) -> Rejection {
        Rejection {
            error,
            realm: self.context.realm.clone(),
            algs: self.context.algs.clone(),
            nonce: None,
        }
    }
}

/// An access token, redacted in `Debug`.
#[derive(Clone)]
pub struct Token(Arc<str>);

impl Token {
    /// Wraps a token's text (for a WebSocket session's renewal).
    pub(crate) fn new(token: &str) -> Self {
        Self(token.into())
    }

    /// The token text.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

impl ApiAuth {
    /// `verifier` for an API published at `public_base_url` (scheme, host, port and any path
    /// prefix, e.g. `https://api.bank.example`).
    #[must_use]
    pub fn new(verifier: Verifier, public_base_url: &str) -> Self {
        let context = Arc::new(RejectionContext {
            realm: verifier.config().realm.clone().into(),
            algs: verifier.dpop_algs().into(),
        });
        Self {
            verifier,
            context,
            base: public_base_url.trim_end_matches('/').into(),
        }
    }

    /// The verifier.
    #[must_use]
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// The absolute URL of `path` at this API (a DPoP proof's `htu`).
    #[must_use]
    pub fn url_of(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Verifies the token of a request given as its parts.
    ///
    /// # Errors
    /// The [`Rejection`] to answer with.
    pub async fn verify_parts(&self, parts: &Parts) -> Result<Verified, Rejection> {
        let authorization: Vec<&str> =
            header_values(parts, header::AUTHORIZATION.as_str()).map_err(|e| self.reject(e))?;
        let dpop: Vec<&str> = header_values(parts, "dpop").map_err(|e| self.reject(e))?;
        let certificate = parts.extensions.get::<Arc<ClientCertificate>>();
        let url = self.url_of(parts.uri.path());
        let request = TokenRequest {
            authorization: &authorization,
            dpop: &dpop,
            method: parts.method.as_str(),
            url: &url,
            certificate_x5t: certificate.map(|c| c.x5t_s256()),
        };
        let principal = self
            .verifier
            .verify(&request)
            .await
            .map_err(|e| self.reject(e))?;
        let token = authorization
            .first()
            .and_then(|v| v.split_once(' '))
            .map(|(_, t)| t.trim_start_matches(' '))
            .unwrap_or_default();
        Ok(Verified {
            principal,
            token: Token(token.into()),
            context: self.context.clone(),
        })
    }

    /// A refusal answered with this API's realm and DPoP algorithms.
    #[must_use]
    pub fn reject(&self, error: VerifyError) -> Rejection {
        Rejection {
            error,
            realm: self.context.realm.clone(),
            algs: self.context.algs.clone(),
            nonce: self.verifier.dpop_nonce(),
        }
    }

    /// Middleware refusing every request without a good token, and handing the handlers the
    /// [`Verified`] token as an extension (which [`Authenticated`] then reads). Use with
    /// `axum::middleware::from_fn_with_state(auth, ApiAuth::layer)`.
    pub async fn layer(
        axum::extract::State(auth): axum::extract::State<ApiAuth>,
        request: Request,
        next: Next,
    ) -> Response {
        let (mut parts, body) = request.into_parts();
        match auth.verify_parts(&parts).await {
            Ok(verified) => {
                parts.extensions.insert(verified);
                next.run(Request::from_parts(parts, body)).await
            }
            Err(rejection) => rejection.into_response(),
        }
    }
}

/// Every value of header `name`, as text.
fn header_values<'a>(parts: &'a Parts, name: &str) -> Result<Vec<&'a str>, VerifyError> {
    parts
        .headers
        .get_all(name)
        .iter()
        .map(|v| {
            v.to_str()
                .map_err(|_| VerifyError::InvalidRequest(format!("the {name} header is not text")))
        })
        .collect()
}

/// The verified token of a request. Verifies it unless [`ApiAuth::layer`] already did (so a DPoP
/// proof is never counted twice).
#[derive(Debug, Clone)]
pub struct Authenticated(pub Verified);

impl Authenticated {
    /// A refusal of this request, worded as the API words them: for the errors of
    /// [`Principal::require_scopes`] and [`Principal::require_detail`].
    #[must_use]
    pub fn reject(&self, error: VerifyError) -> Rejection {
        self.0.reject(error)
    }
}

impl std::ops::Deref for Authenticated {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.0.principal
    }
}

impl<S> FromRequestParts<S> for Authenticated
where
    ApiAuth: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Rejection> {
        if let Some(verified) = parts.extensions.get::<Verified>() {
            return Ok(Authenticated(verified.clone()));
        }
        let auth = ApiAuth::from_ref(state);
        let verified = auth.verify_parts(parts).await?;
        parts.extensions.insert(verified.clone());
        Ok(Authenticated(verified))
    }
}

/// A refused request: answered with its status, `WWW-Authenticate` challenge(s), `DPoP-Nonce`
/// when required, `Cache-Control: no-store`, and a JSON body with `error` and
/// `error_description`.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// Why.
    pub error: VerifyError,
    realm: Arc<str>,
    algs: Arc<str>,
    nonce: Option<String>,
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let body = match self.error.code() {
            Some(code) => json!({"error": code, "error_description": self.error.to_string()}),
            // RFC 6750 §3.1: no error code when the request carried no token at all.
            None => json!({"error_description": self.error.to_string()}),
        };
        let mut response = (self.error.status(), axum::Json(body)).into_response();
        let headers = response.headers_mut();
        for (name, value) in self.error.headers(&self.realm, &self.algs) {
            headers.append(name, value);
        }
        if let Some(nonce) = self.nonce
            && !headers.contains_key("dpop-nonce")
            && let Ok(value) = HeaderValue::from_str(&nonce)
        {
            headers.insert("dpop-nonce", value);
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}
