//! Every refusal of this API as a value, and its answer: a status and a JSON body
//! `{"error": …, "error_description": …}` (the RFC 6749 §5.2 shape the whole of Portcullis
//! uses). Token problems and missing scopes or `authorization_details` are the verifier's
//! [`Rejection`], answered with their RFC 6750 / RFC 9449 challenge. Internal failures are logged
//! and answered `server_error` without their cause.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use portcullis_verify::axum::Rejection;
use serde_json::json;

/// A refused request.
#[derive(Debug)]
pub enum ApiError {
    /// The token is missing, invalid, or does not allow the request: `invalid_token` (401),
    /// `insufficient_scope` (403), … with a `WWW-Authenticate` challenge.
    Token(Box<Rejection>),
    /// The request is malformed: bad JSON, a missing member, an amount or IBAN that does not
    /// parse (`invalid_request`, 400).
    InvalidRequest(String),
    /// The body is larger than the limit (`invalid_request`, 413).
    BodyTooLarge(usize),
    /// No such account among the customer's, or no such route (`not_found`, 404). An account
    /// of another customer is not found either: this API never says it exists.
    NotFound(String),
    /// The payment is not the one the customer consented to: another currency, a larger
    /// amount, another creditor (`payment_not_consented`, 403).
    PaymentNotConsented(String),
    /// The consent paid already; a payment consent pays once (`consent_used`, 403).
    ConsentUsed,
    /// The method is not served on this path (`invalid_request`, 405).
    MethodNotAllowed,
    /// Something failed inside (`server_error`, 500); the text is logged, never sent.
    Internal(String),
}

impl ApiError {
    /// The `error` code of the answer.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Token(rejection) => rejection.error.code().unwrap_or("invalid_request"),
            ApiError::InvalidRequest(_)
            | ApiError::BodyTooLarge(_)
            | ApiError::MethodNotAllowed => "invalid_request",
            ApiError::NotFound(_) => "not_found",
            ApiError::PaymentNotConsented(_) => "payment_not_consented",
            ApiError::ConsentUsed => "consent_used",
            ApiError::Internal(_) => "server_error",
        }
    }
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> Self {
        ApiError::Token(Box::new(rejection))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.code();
        let (status, description) = match self {
            ApiError::Token(rejection) => return rejection.into_response(),
            ApiError::InvalidRequest(d) => (StatusCode::BAD_REQUEST, d),
            ApiError::BodyTooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {limit} bytes"),
            ),
            ApiError::NotFound(d) => (StatusCode::NOT_FOUND, d),
            ApiError::PaymentNotConsented(d) => (StatusCode::FORBIDDEN, d),
            ApiError::ConsentUsed => (
                StatusCode::FORBIDDEN,
                "the payment consent has been used: it pays once".to_owned(),
            ),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "the method is not allowed on this path".to_owned(),
            ),
            ApiError::Internal(cause) => {
                tracing::error!(error = %cause, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the request could not be served".to_owned(),
                )
            }
        };
        (
            status,
            Json(json!({"error": code, "error_description": description})),
        )
            .into_response()
    }
}
