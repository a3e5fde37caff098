//! Protocol outcomes as values. An [`OAuthError`] carries an RFC error code and a description that
//! names the rule applied; the server turns it into the response format of the endpoint.
//! Internal failures never become an `OAuthError` other than `server_error`.

use std::fmt;

use serde::Serialize;

/// The error codes of RFC 6749 §4.1.2.1/§5.2, RFC 6750 §3.1, RFC 7591 §3.2.2, RFC 9126 and
/// RFC 9449 that Portcullis returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// RFC 6749 §5.2: the request is missing a parameter, repeats one or is otherwise malformed.
    InvalidRequest,
    /// RFC 6749 §5.2: client authentication failed.
    InvalidClient,
    /// RFC 6749 §5.2: the grant or refresh token is invalid, expired or revoked.
    InvalidGrant,
    /// RFC 6749 §5.2: the client may not use this grant type.
    UnauthorizedClient,
    /// RFC 6749 §5.2: the grant type is not supported.
    UnsupportedGrantType,
    /// RFC 6749 §4.1.2.1: the response type is not supported.
    UnsupportedResponseType,
    /// RFC 6749 §5.2: the scope is invalid or exceeds what was granted.
    InvalidScope,
    /// RFC 6749 §4.1.2.1: the resource owner or server denied the request.
    AccessDenied,
    /// RFC 6750 §3.1: the access token is invalid.
    InvalidToken,
    /// RFC 6750 §3.1: the token lacks the scope the resource needs.
    InsufficientScope,
    /// RFC 7591 §3.2.2: a metadata value is invalid.
    InvalidClientMetadata,
    /// RFC 7591 §3.2.2: a redirect URI is invalid.
    InvalidRedirectUri,
    /// RFC 7591 §3.2.2: the software statement is invalid.
    InvalidSoftwareStatement,
    /// RFC 7591 §3.2.2: the software statement is not approved.
    UnapprovedSoftwareStatement,
    /// RFC 9449 §7.1: the DPoP proof is invalid.
    InvalidDpopProof,
    /// RFC 9449 §8: the client must retry with the server's nonce.
    UseDpopNonce,
    /// RFC 9101 §6.2: the request object is invalid.
    InvalidRequestObject,
    /// RFC 8707 §2: the requested resource is unknown or not allowed.
    InvalidTarget,
    /// RFC 9396 §5: an `authorization_details` entry is malformed or not allowed.
    InvalidAuthorizationDetails,
    /// RFC 9126 §2.2, RFC 9101 §6.2: the `request_uri` is unknown, expired or not the client's.
    InvalidRequestUri,
    /// OIDC Core §3.1.2.6: `prompt=none` and the customer is not logged in.
    LoginRequired,
    /// OIDC Core §3.1.2.6: `prompt=none` and the customer must interact.
    InteractionRequired,
    /// OIDC Core §3.1.2.6: `prompt=none` and consent is needed.
    ConsentRequired,
    /// FAPI Grant Management §6: the `grant_id` is unknown or not the client's.
    InvalidGrantId,
    /// RFC 6749 §4.1.2.1: an unexpected internal condition; details are logged, never sent.
    ServerError,
    /// RFC 6749 §4.1.2.1: the server is temporarily unable to handle the request.
    TemporarilyUnavailable,
}

impl ErrorCode {
    /// The wire form.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::InvalidClientMetadata => "invalid_client_metadata",
            ErrorCode::InvalidRedirectUri => "invalid_redirect_uri",
            ErrorCode::InvalidSoftwareStatement => "invalid_software_statement",
            ErrorCode::UnapprovedSoftwareStatement => "unapproved_software_statement",
            ErrorCode::InvalidDpopProof => "invalid_dpop_proof",
            ErrorCode::UseDpopNonce => "use_dpop_nonce",
            ErrorCode::InvalidRequestObject => "invalid_request_object",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::InvalidAuthorizationDetails => "invalid_authorization_details",
            ErrorCode::InvalidRequestUri => "invalid_request_uri",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::InteractionRequired => "interaction_required",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::InvalidGrantId => "invalid_grant_id",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OAuth error response body (RFC 6749 §5.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{error}: {error_description}")]
pub struct OAuthError {
    /// The RFC error code.
    pub error: ErrorCode,
    /// Human-readable text naming the rule that was applied.
    pub error_description: String,
}

impl OAuthError {
    /// An error with a code and a description.
    pub fn new(error: ErrorCode, description: impl Into<String>) -> Self {
        Self {
            error,
            error_description: description.into(),
        }
    }

    /// `server_error` with a fixed description: internal details are logged, never sent.
    #[must_use]
    pub fn server_error() -> Self {
        Self::new(
            ErrorCode::ServerError,
            "the server could not complete the request",
        )
    }
}

/// An error's message followed by those of its causes, `": "`-separated, for a log line.
#[must_use]
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_as_rfc_6749_error_body() {
        let body = serde_json::to_value(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            "FAPI2 SP 5.3.2.1-2: the password grant is not supported",
        ))
        .unwrap();
        assert_eq!(body["error"], "unsupported_grant_type");
        assert_eq!(
            body["error_description"],
            "FAPI2 SP 5.3.2.1-2: the password grant is not supported"
        );
        assert_eq!(
            serde_json::to_value(ErrorCode::InvalidDpopProof).unwrap(),
            ErrorCode::InvalidDpopProof.as_str()
        );
    }
}
