//! OAuth error responses (RFC 6749 §5.2, RFC 6750 §3, RFC 9449 §7.1/§8): a JSON body with `error`
//! and `error_description`, the status the code calls for, `Cache-Control: no-store`, and the
//! challenge headers a client needs.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use portcullis_core::error::{ErrorCode, OAuthError};

/// An error answer of an endpoint clients call directly (token, PAR, introspection, revocation,
/// registration).
#[derive(Debug, Clone)]
pub struct ErrorResponse {
    /// The protocol error.
    pub error: OAuthError,
    /// A `WWW-Authenticate` challenge to send (401s).
    pub challenge: Option<String>,
    /// A fresh `DPoP-Nonce` to send with `use_dpop_nonce`.
    pub dpop_nonce: Option<String>,
}

impl ErrorResponse {
    /// An answer for `error` with no extra headers.
    #[must_use]
    pub fn new(error: OAuthError) -> Self {
        Self {
            error,
            challenge: None,
            dpop_nonce: None,
        }
    }

    /// Adds a `WWW-Authenticate` challenge.
    #[must_use]
    pub fn with_challenge(mut self, challenge: impl Into<String>) -> Self {
        self.challenge = Some(challenge.into());
        self
    }
}

/// The answer to a failed client authentication (RFC 6749 §5.2): 401 `invalid_client`, with a
/// `Basic` challenge when the client tried HTTP Basic; a store failure is logged and answered
/// `server_error`.
#[must_use]
pub fn client_auth_failed(
    error: crate::client_auth::ClientAuthError,
    endpoint: &str,
) -> ErrorResponse {
    match error {
        crate::client_auth::ClientAuthError::Refused {
            error,
            basic_attempted,
            ..
        } => {
            let response = ErrorResponse::new(error);
            if basic_attempted {
                response.with_challenge("Basic realm=\"portcullis\"")
            } else {
                response
            }
        }
        other => {
            tracing::error!(error = %other, endpoint, "client authentication failed");
            ErrorResponse::new(OAuthError::server_error())
        }
    }
}

impl From<OAuthError> for ErrorResponse {
    fn from(error: OAuthError) -> Self {
        Self::new(error)
    }
}

/// The status an error code is answered with at an endpoint clients call with their own
/// credentials: 401 for failed client authentication (RFC 6749 §5.2), 500/503 for server trouble,
/// 400 otherwise.
#[must_use]
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidClient | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
        ErrorCode::InsufficientScope | ErrorCode::AccessDenied => StatusCode::FORBIDDEN,
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// Quotes a value for an auth-param (RFC 9110 §11.2): backslash-escapes `"` and `\`, and keeps
/// to printable ASCII, as RFC 6750 §3 asks of `error_description` and as header values must be
/// for clients to read them: `§` becomes `section `, other characters are dropped.
#[must_use]
pub fn quote(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        match c {
            '§' => quoted.push_str("section "),
            '"' | '\\' => {
                quoted.push('\\');
                quoted.push(c);
            }
            ' '..='~' => quoted.push(c),
            _ => {}
        }
    }
    quoted.push('"');
    quoted
}

impl IntoResponse for ErrorResponse {
    fn into_response(self) -> Response {
        let status = status_of(self.error.error);
        let mut response = (status, Json(&self.error)).into_response();
        crate::metrics::Outcome::mark(&mut response, self.error.error.as_str());
        // Client-authentication and DPoP-proof failures spend the source address's budget
        // (crate::ratelimit), never the budget of the client the request named.
        if matches!(
            self.error.error,
            ErrorCode::InvalidClient | ErrorCode::InvalidDpopProof
        ) {
            response
                .extensions_mut()
                .insert(crate::ratelimit::ClientAuthFailed);
        }
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(value) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        if let Some(value) = self.dpop_nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
            headers.insert("dpop-nonce", value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_client_is_401_with_the_challenge_and_no_store() {
        let response = ErrorResponse::new(OAuthError::new(ErrorCode::InvalidClient, "x"))
            .with_challenge("Basic realm=\"portcullis\"")
            .into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            "Basic realm=\"portcullis\""
        );
        assert_eq!(status_of(ErrorCode::InvalidGrant), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn auth_params_are_quoted() {
        assert_eq!(quote(r#"say "hi"\n"#), r#""say \"hi\"\\n""#);
        assert_eq!(quote("a\r\nb"), "\"ab\"");
        assert_eq!(quote("RFC 9449 §7.1 – ok"), "\"RFC 9449 section 7.1  ok\"");
    }
}
