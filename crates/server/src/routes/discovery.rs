//! `/.well-known/openid-configuration` (OIDC Discovery 1.0) and
//! `/.well-known/oauth-authorization-server` (RFC 8414): one document. It advertises exactly what
//! is implemented (FAPI2 SP 5.3.2.1-1), so it grows as endpoints land; a field left out here
//! means the feature does not exist yet, never that it is implied.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use http::{HeaderValue, header};
use serde::Serialize;

use portcullis_jose::SigningAlg;

use crate::app::{AppState, Urls};
use crate::registration::Registrar;
use crate::routes::{
    authorize, events, grants, introspect, logout, par, register, revoke, token, userinfo,
};

/// The metadata document.
#[derive(Debug, Serialize)]
pub struct Metadata {
    /// Exactly the configured issuer (OIDC Discovery §4.3, RFC 8414 §3.3).
    pub issuer: String,
    /// Our public signing keys.
    pub jwks_uri: String,
    /// RFC 6749 §3.1.
    pub authorization_endpoint: String,
    /// RFC 6749 §3.2.
    pub token_endpoint: String,
    /// OIDC Core §5.3.
    pub userinfo_endpoint: String,
    /// OIDC RP-Initiated Logout §2.1.
    pub end_session_endpoint: String,
    /// RFC 7662 (RFC 8414 §2).
    pub introspection_endpoint: String,
    /// RFC 9701 §7: the algorithms of signed introspection answers.
    pub introspection_signing_alg_values_supported: Vec<&'static str>,
    /// RFC 7009 (RFC 8414 §2).
    pub revocation_endpoint: String,
    /// RFC 9126 §5.
    pub pushed_authorization_request_endpoint: String,
    /// RFC 9126 §5: every authorization request is pushed (FAPI2 SP 5.3.2.2-2).
    pub require_pushed_authorization_requests: bool,
    /// FAPI Grant Management §7.1: the API's base URL (`/grants/{grant_id}`).
    pub grant_management_endpoint: String,
    /// FAPI Grant Management §7.1: `query` and `revoke` at the API, `create`, `merge` and
    /// `replace` in authorization requests.
    pub grant_management_actions_supported: Vec<&'static str>,
    /// FAPI Grant Management §7.1: a request without `grant_management_action` makes a new grant.
    pub grant_management_action_required: bool,
    /// RFC 7636: S256 only (FAPI2 SP 5.3.2.2-5).
    pub code_challenge_methods_supported: Vec<&'static str>,
    /// RFC 9101 §10.5: request objects are verified at PAR (FAPI2 MS 5.3.1).
    pub request_object_signing_alg_values_supported: Vec<&'static str>,
    /// RFC 9396 §10: the types with a schema of their own.
    pub authorization_details_types_supported: Vec<&'static str>,
    /// The grants `/token` implements so far.
    pub grant_types_supported: Vec<&'static str>,
    /// FAPI2 SP 5.3.2.2-1: the code flow only.
    pub response_types_supported: Vec<&'static str>,
    /// Query, and JARM (FAPI2 MS 5.4.1).
    pub response_modes_supported: Vec<&'static str>,
    /// RFC 9207: `iss` in every authorization response.
    pub authorization_response_iss_parameter_supported: bool,
    /// JARM signing algorithms.
    pub authorization_signing_alg_values_supported: Vec<&'static str>,
    /// ID token signing algorithms (FAPI2 SP 5.4.1: no RS256).
    pub id_token_signing_alg_values_supported: Vec<&'static str>,
    /// OIDC Discovery §3.
    pub subject_types_supported: Vec<&'static str>,
    /// The authentication contexts the login offers.
    pub acr_values_supported: Vec<&'static str>,
    /// OIDC Core §5.5.
    pub claims_parameter_supported: bool,
    /// OIDC Discovery §3.
    pub scopes_supported: Vec<&'static str>,
    /// FAPI2 SP 5.3.2.1-6: the FAPI methods. `oauth`-profile clients registered with
    /// `client_secret_basic`/`_post` are accepted too but not advertised, so that the metadata
    /// of a FAPI deployment offers only what FAPI allows.
    pub token_endpoint_auth_methods_supported: Vec<&'static str>,
    /// FAPI2 SP 5.4.1.
    pub token_endpoint_auth_signing_alg_values_supported: Vec<&'static str>,
    /// RFC 9449 §5.1.
    pub dpop_signing_alg_values_supported: Vec<&'static str>,
    /// RFC 8705 §3.3.
    pub tls_client_certificate_bound_access_tokens: bool,
    /// Portcullis's RFC 8936 poll endpoint of revocation events for resource servers (no
    /// registered metadata name exists for it).
    pub revocation_events_endpoint: String,
    /// RFC 8705 §5: the endpoints a client doing mutual TLS uses instead.
    pub mtls_endpoint_aliases: serde_json::Map<String, serde_json::Value>,
    /// RFC 7591 §3 / RFC 8414 §2: only when the operator has opened registration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
}

impl Metadata {
    /// The document for these URLs.
    #[must_use]
    pub fn new(urls: &Urls) -> Self {
        let algs: Vec<&'static str> = SigningAlg::ALL.iter().map(|a| a.as_str()).collect();
        let mut aliases = serde_json::Map::new();
        aliases.insert(
            "token_endpoint".into(),
            urls.mtls_endpoint(token::PATH).into(),
        );
        aliases.insert(
            "pushed_authorization_request_endpoint".into(),
            urls.mtls_endpoint(par::PATH).into(),
        );
        aliases.insert(
            "introspection_endpoint".into(),
            urls.mtls_endpoint(introspect::PATH).into(),
        );
        aliases.insert(
            "revocation_endpoint".into(),
            urls.mtls_endpoint(revoke::PATH).into(),
        );
        aliases.insert(
            "userinfo_endpoint".into(),
            urls.mtls_endpoint(userinfo::PATH).into(),
        );
        aliases.insert(
            "grant_management_endpoint".into(),
            urls.mtls_endpoint(grants::PATH).into(),
        );
        aliases.insert(
            "revocation_events_endpoint".into(),
            urls.mtls_endpoint(events::PATH).into(),
        );
        Self {
            issuer: urls.issuer.clone(),
            jwks_uri: urls.endpoint("/jwks"),
            authorization_endpoint: urls.endpoint(authorize::PATH),
            token_endpoint: urls.endpoint(token::PATH),
            userinfo_endpoint: urls.endpoint(userinfo::PATH),
            end_session_endpoint: urls.endpoint(logout::PATH),
            introspection_endpoint: urls.endpoint(introspect::PATH),
            introspection_signing_alg_values_supported: algs.clone(),
            revocation_endpoint: urls.endpoint(revoke::PATH),
            revocation_events_endpoint: urls.endpoint(events::PATH),
            pushed_authorization_request_endpoint: urls.endpoint(par::PATH),
            require_pushed_authorization_requests: true,
            grant_management_endpoint: urls.endpoint(grants::PATH),
            grant_management_actions_supported: grants::ACTIONS_SUPPORTED.to_vec(),
            grant_management_action_required: false,
            code_challenge_methods_supported: vec!["S256"],
            request_object_signing_alg_values_supported: algs.clone(),
            authorization_details_types_supported: vec![
                portcullis_core::authz::details::ACCOUNT_INFORMATION,
                portcullis_core::authz::details::PAYMENT_INITIATION,
            ],
            grant_types_supported: vec![
                "authorization_code",
                "refresh_token",
                "client_credentials",
            ],
            response_types_supported: vec!["code"],
            response_modes_supported: vec!["query", "jwt", "query.jwt"],
            authorization_response_iss_parameter_supported: true,
            authorization_signing_alg_values_supported: algs.clone(),
            id_token_signing_alg_values_supported: algs.clone(),
            subject_types_supported: vec!["public"],
            acr_values_supported: vec![authorize::ACR_PASSWORD, authorize::ACR_SCA],
            claims_parameter_supported: true,
            scopes_supported: vec![
                "openid",
                "profile",
                "email",
                "address",
                "phone",
                grants::QUERY_SCOPE,
                grants::REVOKE_SCOPE,
            ],
            token_endpoint_auth_methods_supported: vec![
                "private_key_jwt",
                "tls_client_auth",
                "self_signed_tls_client_auth",
            ],
            token_endpoint_auth_signing_alg_values_supported: algs.clone(),
            dpop_signing_alg_values_supported: algs,
            tls_client_certificate_bound_access_tokens: true,
            mtls_endpoint_aliases: aliases,
            registration_endpoint: None,
        }
    }

    /// Adds the registration endpoint when `registrar` is open: on the mTLS listener when every
    /// registration needs a certificate, else on the main one, with its mTLS alias.
    #[must_use]
    pub fn with_registration(mut self, urls: &Urls, registrar: &Registrar) -> Self {
        if registrar.is_open() {
            let mtls = urls.mtls_endpoint(register::PATH);
            self.registration_endpoint = Some(if registrar.certificate_always_required() {
                mtls.clone()
            } else {
                urls.endpoint(register::PATH)
            });
            self.mtls_endpoint_aliases
                .insert("registration_endpoint".into(), mtls.into());
        }
        self
    }
}

/// `GET` either well-known path.
pub async fn get(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        )],
        Json(Metadata::new(&state.urls).with_registration(&state.urls, &state.registration)),
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
            serde_json::json!({
                "issuer": "https://as.example",
                "jwks_uri": "https://as.example/jwks",
                "authorization_endpoint": "https://as.example/authorize",
                "token_endpoint": "https://as.example/token",
                "userinfo_endpoint": "https://as.example/userinfo",
                "end_session_endpoint": "https://as.example/logout",
                "introspection_endpoint": "https://as.example/introspect",
                "introspection_signing_alg_values_supported": ["PS256", "ES256", "EdDSA"],
                "revocation_endpoint": "https://as.example/revoke",
                "revocation_events_endpoint": "https://as.example/events",
                "pushed_authorization_request_endpoint": "https://as.example/par",
                "require_pushed_authorization_requests": true,
                "grant_management_endpoint": "https://as.example/grants",
                "grant_management_actions_supported": ["query", "revoke", "create", "merge", "replace"],
                "grant_management_action_required": false,
                "code_challenge_methods_supported": ["S256"],
                "request_object_signing_alg_values_supported": ["PS256", "ES256", "EdDSA"],
                "authorization_details_types_supported": ["account_information", "payment_initiation"],
                "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
                "response_types_supported": ["code"],
                "response_modes_supported": ["query", "jwt", "query.jwt"],
                "authorization_response_iss_parameter_supported": true,
                "authorization_signing_alg_values_supported": ["PS256", "ES256", "EdDSA"],
                "id_token_signing_alg_values_supported": ["PS256", "ES256", "EdDSA"],
                "subject_types_supported": ["public"],
                "acr_values_supported": ["urn:portcullis:acr:pwd", "urn:portcullis:acr:sca"],
                "claims_parameter_supported": true,
                "scopes_supported": ["openid", "profile", "email", "address", "phone", "grant_management_query", "grant_management_revoke"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt", "tls_client_auth", "self_signed_tls_client_auth"],
                "token_endpoint_auth_signing_alg_values_supported": ["PS256", "ES256", "EdDSA"],
                "dpop_signing_alg_values_supported": ["PS256", "ES256", "EdDSA"],
                "tls_client_certificate_bound_access_tokens": true,
                "mtls_endpoint_aliases": {
                    "token_endpoint": "https://mtls.as.example/token",
                    "pushed_authorization_request_endpoint": "https://mtls.as.example/par",
                    "introspection_endpoint": "https://mtls.as.example/introspect",
                    "revocation_endpoint": "https://mtls.as.example/revoke",
                    "userinfo_endpoint": "https://mtls.as.example/userinfo",
                    "grant_management_endpoint": "https://mtls.as.example/grants",
                    "revocation_events_endpoint": "https://mtls.as.example/events"
                }
            })
        );
    }
}
