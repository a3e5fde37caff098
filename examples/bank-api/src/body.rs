//! Request bodies: [`JsonBytes`] reads at most [`MAX_BODY_BYTES`] of a JSON body, and
//! [`parse`] turns them into a typed request. Both answer in this API's JSON error shape
//! (`invalid_request`), never axum's plain-text 415 or 422.
//!
//! The bytes are read by the extractor, but parsed by the handler after the token's scopes are
//! checked, so a client without the right scope learns nothing about what the body should be.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use http::header;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The largest body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A request body of at most [`MAX_BODY_BYTES`], sent as JSON (`Content-Type:
/// application/json` or a `+json` type, or no `Content-Type` at all).
#[derive(Debug, Clone)]
pub struct JsonBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBytes {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, ApiError> {
        if let Some(content_type) = request.headers().get(header::CONTENT_TYPE) {
            let essence = content_type
                .to_str()
                .ok()
                .and_then(|v| v.split(';').next())
                .map(|v| v.trim().to_ascii_lowercase())
                .unwrap_or_default();
            if essence != "application/json" && !essence.ends_with("+json") {
                return Err(ApiError::InvalidRequest(
                    "the body must be JSON (Content-Type: application/json)".into(),
                ));
            }
        }
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
            return Err(ApiError::BodyTooLarge(MAX_BODY_BYTES));
        }
        match Limited::new(request.into_body(), MAX_BODY_BYTES)
            .collect()
            .await
        {
            Ok(collected) => Ok(Self(collected.to_bytes())),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
                Err(ApiError::BodyTooLarge(MAX_BODY_BYTES))
            }
            Err(_) => Err(ApiError::InvalidRequest(
                "the body could not be read".into(),
            )),
        }
    }
}

/// Parses a JSON body into `T`.
///
/// # Errors
/// `invalid_request` (400) saying what is wrong: not JSON, a missing or unknown member, a member
/// of the wrong type (serde's message, which names the member and never repeats its value at
/// length).
pub fn parse<T: DeserializeOwned>(body: &JsonBytes) -> Result<T, ApiError> {
    if body.0.is_empty() {
        return Err(ApiError::InvalidRequest(
            "the request needs a JSON body".into(),
        ));
    }
    serde_json::from_slice(&body.0)
        .map_err(|e| ApiError::InvalidRequest(format!("the body is not a valid request: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    async fn read(request: http::Request<Body>) -> Result<JsonBytes, ApiError> {
        JsonBytes::from_request(request, &()).await
    }

    fn post(content_type: Option<&str>, body: impl Into<Body>) -> http::Request<Body> {
        let mut builder = http::Request::post("/payments");
        if let Some(ct) = content_type {
            builder = builder.header(header::CONTENT_TYPE, ct);
        }
        builder.body(body.into()).unwrap()
    }

    #[tokio::test]
    async fn json_bodies_are_read_up_to_the_limit() {
        let ok = read(post(Some("application/json; charset=utf-8"), "{}"))
            .await
            .unwrap();
        assert_eq!(&ok.0[..], b"{}");
        assert!(read(post(None, "{}")).await.is_ok());
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        assert!(matches!(
            read(post(Some("application/json"), big)).await,
            Err(ApiError::BodyTooLarge(_))
        ));
        // A stream without Content-Length is cut off at the limit too.
        let chunks = futures_chunks(MAX_BODY_BYTES + 10);
        assert!(matches!(
            read(post(Some("application/json"), chunks)).await,
            Err(ApiError::BodyTooLarge(_))
        ));
        assert!(matches!(
            read(post(Some("application/x-www-form-urlencoded"), "a=b")).await,
            Err(ApiError::InvalidRequest(_))
        ));
    }

    fn futures_chunks(total: usize) -> Body {
        let chunk = Bytes::from(vec![b' '; 1024]);
        let chunks = std::iter::repeat_n(chunk, total.div_ceil(1024)).map(Ok::<_, std::io::Error>);
        Body::from_stream(futures_util::stream::iter(chunks))
    }

    #[test]
    fn bad_json_is_invalid_request() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Wanted {
            #[expect(dead_code, reason = "only its presence is tested")]
            a: String,
        }
        let body = |s: &'static str| JsonBytes(Bytes::from_static(s.as_bytes()));
        assert!(parse::<Wanted>(&body(r#"{"a": "x"}"#)).is_ok());
        for bad in ["", "{", "[]", r#"{"a": 1}"#, r#"{"a": "x", "b": 1}"#, "{}"] {
            assert!(
                matches!(
                    parse::<Wanted>(&body(bad)),
                    Err(ApiError::InvalidRequest(_))
                ),
                "{bad}"
            );
        }
    }
}
