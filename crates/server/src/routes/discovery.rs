//! `/.well-known/openid-configuration` (OIDC Discovery 1.0) and
//! `/.well-known/oauth-authorization-server` (RFC 8414): one document. It advertises exactly what
//! is implemented (FAPI2 SP 5.3.2.1-1), so it grows as endpoints land; a field left out here
//! means the feature does not exist yet, never that it is implied.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use http::{HeaderValue, header};
use serde::Serialize;

use crate::app::{AppState, Urls};

/// The metadata document.
#[derive(Debug, Serialize)]
pub struct Metadata {
    /// Exactly the configured issuer (OIDC Discovery §4.3, RFC 8414 §3.3).
    pub issuer: String,
    /// Our public signing keys.
    pub jwks_uri: String,
    /// RFC 8705 §5: the endpoints a client doing mutual TLS uses instead. Omitted while no
    /// endpoint that takes client certificates exists.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub mtls_endpoint_aliases: serde_json::Map<String, serde_json::Value>,
}

impl Metadata {
    /// The document for these URLs.
    #[must_use]
    pub fn new(urls: &Urls) -> Self {
        Self {
            issuer: urls.issuer.clone(),
            jwks_uri: urls.endpoint("/jwks"),
            mtls_endpoint_aliases: serde_json::Map::new(),
        }
    }
}

/// `GET` either well-known path.
pub async fn get(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        )],
        Json(Metadata::new(&state.urls)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertises_only_what_exists() {
        let urls = Urls {
            issuer: "https://as.example".into(),
            mtls_base: "https://mtls.as.example".into(),
        };
        let doc = serde_json::to_value(Metadata::new(&urls)).unwrap();
        assert_eq!(
            doc,
            serde_json::json!({"issuer": "https://as.example", "jwks_uri": "https://as.example/jwks"})
        );
    }
}
