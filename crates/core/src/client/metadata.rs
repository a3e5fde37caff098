//! Client metadata (RFC 7591 §2, OIDC Registration §2, RFC 8705 §2.1.2 and §3.4, RFC 9449 §5.2,
//! RFC 9126 §6, RFC 9101 §10.5, RFC 9396 §10) and its validation per profile.
//!
//! Parsing is strict: unknown members are kept (RFC 7591 §2 lets clients send extensions) but
//! every known member must have its registered type. [`ClientMetadata::validate`] then applies
//! the rules of the client's profile and answers with RFC 7591 §3.2.2 errors whose description
//! names the field and the rule (DESIGN.md, Profiles).

use std::net::IpAddr;

use portcullis_jose::{Jwks, SigningAlg};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ClientProfile;
use crate::error::{ErrorCode, OAuthError};

/// How deep a member's value may nest (arrays and objects).
const MAX_MEMBER_DEPTH: usize = 8;
/// The most redirect URIs a client may register.
const MAX_REDIRECT_URIS: usize = 20;
/// The longest URI we store.
const MAX_URI_LEN: usize = 2000;
/// The longest free-text value (names, contacts).
const MAX_TEXT_LEN: usize = 200;
/// The most keys a registered JWK set may hold.
const MAX_JWKS_KEYS: usize = 20;

/// How a client authenticates at the token, PAR, introspection and revocation endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// OIDC Core §9: a JWT signed with the client's private key.
    PrivateKeyJwt,
    /// RFC 8705 §2.1: a CA-issued certificate with a registered subject.
    TlsClientAuth,
    /// RFC 8705 §2.2: a self-signed certificate whose key is in the client's JWK set.
    SelfSignedTlsClientAuth,
    /// RFC 6749 §2.3.1: a server-made secret in HTTP Basic (`oauth` profile only).
    ClientSecretBasic,
    /// RFC 6749 §2.3.1: a server-made secret in the body (`oauth` profile only).
    ClientSecretPost,
}

impl AuthMethod {
    /// The registered name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
            AuthMethod::TlsClientAuth => "tls_client_auth",
            AuthMethod::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
        }
    }

    /// Whether the method needs the client's public keys (`jwks` or `jwks_uri`).
    #[must_use]
    pub const fn needs_keys(self) -> bool {
        matches!(
            self,
            AuthMethod::PrivateKeyJwt | AuthMethod::SelfSignedTlsClientAuth
        )
    }
}

/// The grant types Portcullis implements. `implicit` and `password` do not exist here (FAPI2 SP
/// 5.3.2.1-2, RFC 9700 §2.1.2 and §2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// RFC 6749 §4.1.
    AuthorizationCode,
    /// RFC 6749 §6.
    RefreshToken,
    /// RFC 6749 §4.4.
    ClientCredentials,
}

/// Client metadata as registered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientMetadata {
    /// Human-readable name shown on the consent page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// Logo shown on the consent page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    /// Where authorization responses may go: exact match only (RFC 9700 §2.1).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may return to: exact match only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub post_logout_redirect_uris: Vec<String>,
    /// Grant types the client may use.
    pub grant_types: Vec<GrantType>,
    /// Response types: `code` only (SP 5.3.2.2-1).
    pub response_types: Vec<String>,
    /// Space-separated scopes the client may request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Client authentication method.
    pub token_endpoint_auth_method: Option<AuthMethod>,
    /// The algorithm of `private_key_jwt` assertions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_signing_alg: Option<SigningAlg>,
    /// The client's public keys, by value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Jwks>,
    /// The client's public keys, by reference (fetched over TLS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// RFC 8705 §2.1.2: expected subject distinguished name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_subject_dn: Option<String>,
    /// RFC 8705 §2.1.2: expected dNSName SAN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_dns: Option<String>,
    /// RFC 8705 §2.1.2: expected uniformResourceIdentifier SAN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_uri: Option<String>,
    /// RFC 8705 §2.1.2: expected iPAddress SAN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_ip: Option<String>,
    /// RFC 8705 §2.1.2: expected rfc822Name SAN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_email: Option<String>,
    /// RFC 8705 §3.4: the client asks for certificate-bound tokens.
    pub tls_client_certificate_bound_access_tokens: bool,
    /// RFC 9449 §5.2: the client always uses DPoP.
    pub dpop_bound_access_tokens: bool,
    /// RFC 9126 §6: authorization requests must be pushed.
    pub require_pushed_authorization_requests: bool,
    /// RFC 9101 §10.5: authorization requests must be signed request objects.
    pub require_signed_request_object: bool,
    /// RFC 9101: the request object signing algorithm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_object_signing_alg: Option<SigningAlg>,
    /// JARM: the authorization response signing algorithm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_signed_response_alg: Option<SigningAlg>,
    /// OIDC Registration: the ID token signing algorithm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token_signed_response_alg: Option<SigningAlg>,
    /// RFC 9701: the introspection response signing algorithm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub introspection_signed_response_alg: Option<SigningAlg>,
    /// RFC 9396 §10: the `authorization_details` types the client may use.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub authorization_details_types: Vec<String>,
    /// People responsible for the client.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<String>,
    /// RFC 7591 §2: the software's identifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub software_id: Option<String>,
    /// RFC 7591 §2: the software's version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
    /// Members this server does not interpret, kept as sent.
    #[serde(flatten)]
    pub extensions: Map<String, Value>,
}

impl Default for ClientMetadata {
    fn default() -> Self {
        Self {
            client_name: None,
            logo_uri: None,
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            // RFC 7591 §2: the defaults.
            grant_types: vec![GrantType::AuthorizationCode],
            response_types: vec!["code".into()],
            scope: None,
            token_endpoint_auth_method: None,
            token_endpoint_auth_signing_alg: None,
            jwks: None,
            jwks_uri: None,
            tls_client_auth_subject_dn: None,
            tls_client_auth_san_dns: None,
            tls_client_auth_san_uri: None,
            tls_client_auth_san_ip: None,
            tls_client_auth_san_email: None,
            tls_client_certificate_bound_access_tokens: false,
            dpop_bound_access_tokens: false,
            require_pushed_authorization_requests: false,
            require_signed_request_object: false,
            request_object_signing_alg: None,
            authorization_signed_response_alg: None,
            id_token_signed_response_alg: None,
            introspection_signed_response_alg: None,
            authorization_details_types: Vec::new(),
            contacts: Vec::new(),
            software_id: None,
            software_version: None,
            extensions: Map::new(),
        }
    }
}

/// Members a registration request may not set: they are the server's to assign (RFC 7591 §3.2.1)
/// or the operator's (DESIGN.md, Profiles).
const RESERVED: [&str; 12] = [
    "client_id",
    "client_secret",
    "client_id_issued_at",
    "client_secret_expires_at",
    "registration_access_token",
    "registration_client_uri",
    "profile",
    "access_token_format",
    "access_token_lifetime_secs",
    "refresh_token_lifetime_secs",
    "rate_limit_tier",
    "admin_scopes",
];

fn metadata_error(description: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClientMetadata, description)
}

fn redirect_error(description: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidRedirectUri, description)
}

impl ClientMetadata {
    /// Parses a registration request body. Known members must have their registered types;
    /// members the server or operator assigns are refused.
    ///
    /// # Errors
    /// `invalid_client_metadata` naming the member.
    pub fn from_request(body: Map<String, Value>) -> Result<Self, OAuthError> {
        if let Some(name) = RESERVED.iter().find(|name| body.contains_key(**name)) {
            return Err(metadata_error(format!(
                "{name} cannot be set by the client: it is assigned by the server or the operator"
            )));
        }
        // A member nested past the limit is no metadata anyone reads, and stored values nested
        // near serde_json's limit of 128 would not read back (found by fuzzing the same problem
        // in authorization_details).
        if let Some((name, _)) = body
            .iter()
            .find(|(_, value)| crate::claims::nesting_depth(value) > MAX_MEMBER_DEPTH)
        {
            return Err(metadata_error(format!(
                "{name} is nested more than {MAX_MEMBER_DEPTH} levels deep"
            )));
        }
        Self::from_stored(body)
    }

    /// Reads metadata as stored (or as the operator gives it), without the reserved-member check.
    ///
    /// # Errors
    /// `invalid_client_metadata` naming the member with the wrong type.
    pub fn from_stored(body: Map<String, Value>) -> Result<Self, OAuthError> {
        serde_json::from_value(Value::Object(body)).map_err(|e| {
            metadata_error(format!(
                "client metadata does not have the registered types: {e}"
            ))
        })
    }

    /// The metadata as a JSON object, for storage and responses.
    #[must_use]
    pub fn to_map(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }

    /// Applies the rules of `profile`.
    ///
    /// # Errors
    /// `invalid_redirect_uri` or `invalid_client_metadata`, naming the field and the rule.
    pub fn validate(&self, profile: ClientProfile) -> Result<(), OAuthError> {
        let fapi = profile != ClientProfile::Oauth;
        self.validate_grants()?;
        self.validate_redirect_uris(profile)?;
        self.validate_authentication(fapi)?;
        self.validate_keys()?;
        self.validate_texts()?;
        if fapi && self.response_types.iter().any(|r| r != "code") {
            return Err(metadata_error(
                "response_types: only \"code\" is allowed (FAPI2 SP 5.3.2.2-1)",
            ));
        }
        if profile == ClientProfile::Fapi2MessageSigning && !self.require_signed_request_object {
            return Err(metadata_error(
                "require_signed_request_object must be true for the fapi2-message-signing profile (FAPI2 MS 5.3.1-1)",
            ));
        }
        Ok(())
    }

    fn validate_grants(&self) -> Result<(), OAuthError> {
        if self.grant_types.is_empty() {
            return Err(metadata_error("grant_types must not be empty"));
        }
        if self.response_types.iter().any(|r| r != "code") {
            return Err(metadata_error(
                "response_types: only \"code\" is supported (RFC 9700 §2.1.2)",
            ));
        }
        let code = self.grant_types.contains(&GrantType::AuthorizationCode);
        let responds = !self.response_types.is_empty();
        if code != responds {
            return Err(metadata_error(
                "response_types must be [\"code\"] exactly when grant_types includes authorization_code (RFC 7591 §2.1)",
            ));
        }
        if let Some(scope) = &self.scope {
            let ok = scope.split(' ').all(|token| {
                !token.is_empty()
                    && token.bytes().all(|b| {
                        b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b)
                    })
            });
            if !ok {
                return Err(metadata_error(
                    "scope: space-separated scope tokens only (RFC 6749 §3.3)",
                ));
            }
        }
        Ok(())
    }

    fn validate_redirect_uris(&self, profile: ClientProfile) -> Result<(), OAuthError> {
        let uses_code = self.grant_types.contains(&GrantType::AuthorizationCode);
        if uses_code && self.redirect_uris.is_empty() {
            return Err(redirect_error(
                "redirect_uris is required for the authorization_code grant",
            ));
        }
        for (field, uris) in [
            ("redirect_uris", &self.redirect_uris),
            ("post_logout_redirect_uris", &self.post_logout_redirect_uris),
        ] {
            if uris.len() > MAX_REDIRECT_URIS {
                return Err(redirect_error(format!(
                    "{field}: at most {MAX_REDIRECT_URIS} entries"
                )));
            }
            for uri in uris {
                check_redirect_uri(field, uri, profile)?;
            }
        }
        Ok(())
    }

    fn validate_authentication(&self, fapi: bool) -> Result<(), OAuthError> {
        let method = self
            .token_endpoint_auth_method
            .ok_or_else(|| metadata_error("token_endpoint_auth_method is required: confidential clients only (FAPI2 SP 5.3.2.1-3)"))?;
        if fapi
            && !matches!(
                method,
                AuthMethod::PrivateKeyJwt
                    | AuthMethod::TlsClientAuth
                    | AuthMethod::SelfSignedTlsClientAuth
            )
        {
            return Err(metadata_error(format!(
                "token_endpoint_auth_method {} is not allowed for FAPI profiles: use private_key_jwt, tls_client_auth or self_signed_tls_client_auth (FAPI2 SP 5.3.2.1-6)",
                method.as_str()
            )));
        }
        if self.token_endpoint_auth_signing_alg.is_some() && method != AuthMethod::PrivateKeyJwt {
            return Err(metadata_error(
                "token_endpoint_auth_signing_alg applies to private_key_jwt only",
            ));
        }
        if method.needs_keys() && self.jwks.is_none() && self.jwks_uri.is_none() {
            return Err(metadata_error(format!(
                "{} needs jwks or jwks_uri",
                method.as_str()
            )));
        }
        let subjects = [
            &self.tls_client_auth_subject_dn,
            &self.tls_client_auth_san_dns,
            &self.tls_client_auth_san_uri,
            &self.tls_client_auth_san_ip,
            &self.tls_client_auth_san_email,
        ];
        let given = subjects.iter().filter(|s| s.is_some()).count();
        if method == AuthMethod::TlsClientAuth && given != 1 {
            return Err(metadata_error(
                "tls_client_auth needs exactly one of tls_client_auth_subject_dn, _san_dns, _san_uri, _san_ip, _san_email (RFC 8705 §2.1.2)",
            ));
        }
        if method != AuthMethod::TlsClientAuth && given != 0 {
            return Err(metadata_error(
                "tls_client_auth_* members apply to tls_client_auth only",
            ));
        }
        if let Some(ip) = &self.tls_client_auth_san_ip {
            ip.parse::<IpAddr>()
                .map_err(|_| metadata_error("tls_client_auth_san_ip must be an IP address"))?;
        }
        Ok(())
    }

    fn validate_keys(&self) -> Result<(), OAuthError> {
        if self.jwks.is_some() && self.jwks_uri.is_some() {
            return Err(metadata_error(
                "jwks and jwks_uri must not both be present (RFC 7591 §2)",
            ));
        }
        if let Some(uri) = &self.jwks_uri {
            check_https("jwks_uri", uri, metadata_error)?;
        }
        if let Some(jwks) = &self.jwks {
            if jwks.keys.is_empty() || jwks.keys.len() > MAX_JWKS_KEYS {
                return Err(metadata_error(format!(
                    "jwks must hold 1 to {MAX_JWKS_KEYS} keys"
                )));
            }
            for key in &jwks.keys {
                if key
                    .str_member("use")
                    .is_some_and(|u| u != "sig" && u != "enc")
                {
                    return Err(metadata_error("jwks: a key's use must be sig or enc"));
                }
                if key.str_member("use") == Some("enc") {
                    continue;
                }
                // A signing key must suit one allowed algorithm and be strong enough for it
                // (FAPI2 SP 5.4.1-2/3).
                let usable = SigningAlg::ALL
                    .iter()
                    .filter(|alg| key.suits(**alg))
                    .map(|alg| key.check_strength(*alg))
                    .collect::<Vec<_>>();
                match usable.iter().find(|r| r.is_ok()) {
                    Some(_) => {}
                    None => {
                        let reason = usable.into_iter().find_map(Result::err).map_or_else(
                            || "it suits none of PS256, ES256 or EdDSA".to_owned(),
                            |e| e.to_string(),
                        );
                        return Err(metadata_error(format!(
                            "jwks: key {} is not usable: {reason} (FAPI2 SP 5.4.1)",
                            key.kid().unwrap_or("without kid")
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    fn validate_texts(&self) -> Result<(), OAuthError> {
        if let Some(logo) = &self.logo_uri {
            check_https("logo_uri", logo, metadata_error)?;
        }
        let texts = [
            ("client_name", &self.client_name),
            ("software_id", &self.software_id),
            ("software_version", &self.software_version),
        ];
        for (field, value) in texts {
            if let Some(v) = value
                && (v.is_empty()
                    || v.chars().count() > MAX_TEXT_LEN
                    || v.chars().any(char::is_control))
            {
                return Err(metadata_error(format!(
                    "{field}: 1 to {MAX_TEXT_LEN} printable characters"
                )));
            }
        }
        if self.contacts.len() > 10
            || self
                .contacts
                .iter()
                .any(|c| c.is_empty() || c.len() > MAX_TEXT_LEN)
        {
            return Err(metadata_error(
                "contacts: at most 10 entries of 1 to 200 characters",
            ));
        }
        if self
            .authorization_details_types
            .iter()
            .any(|t| t.is_empty() || t.len() > MAX_TEXT_LEN)
        {
            return Err(metadata_error(
                "authorization_details_types: non-empty strings of at most 200 characters",
            ));
        }
        Ok(())
    }
}

/// RFC 6749 §3.1.2, RFC 9700 §2.1 and FAPI2 SP 5.3.2.2-6: absolute, no fragment, no
/// credentials, `https` (or, for `oauth`-profile native clients, `http` on a loopback IP, RFC 8252
/// §7.3).
fn check_redirect_uri(field: &str, uri: &str, profile: ClientProfile) -> Result<(), OAuthError> {
    if uri.len() > MAX_URI_LEN {
        return Err(redirect_error(format!(
            "{field}: longer than {MAX_URI_LEN} characters"
        )));
    }
    let parsed = url::Url::parse(uri)
        .map_err(|_| redirect_error(format!("{field}: {uri:?} is not an absolute URI")))?;
    if parsed.fragment().is_some() || uri.contains('#') {
        return Err(redirect_error(format!(
            "{field}: {uri:?} has a fragment (RFC 6749 §3.1.2)"
        )));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(redirect_error(format!(
            "{field}: {uri:?} carries credentials"
        )));
    }
    match parsed.scheme() {
        "https" if parsed.host_str().is_some_and(|h| !h.is_empty()) => Ok(()),
        "http" if profile == ClientProfile::Oauth && is_loopback_ip(&parsed) => Ok(()),
        "http" => Err(redirect_error(format!(
            "{field}: {uri:?} must use https{} (FAPI2 SP 5.3.2.2-6, RFC 9700 §2.1)",
            if profile == ClientProfile::Oauth {
                " (http only on a loopback IP address)"
            } else {
                ""
            }
        ))),
        _ => Err(redirect_error(format!("{field}: {uri:?} must use https"))),
    }
}

fn is_loopback_ip(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        _ => false,
    }
}

fn check_https(field: &str, uri: &str, error: fn(String) -> OAuthError) -> Result<(), OAuthError> {
    let ok = uri.len() <= MAX_URI_LEN
        && url::Url::parse(uri).is_ok_and(|u| {
            u.scheme() == "https"
                && u.host_str().is_some_and(|h| !h.is_empty())
                && u.username().is_empty()
                && u.password().is_none()
        });
    if ok {
        Ok(())
    } else {
        Err(error(format!("{field}: must be an https URL")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ec_jwks() -> Value {
        let key = portcullis_jose::SigningKey::generate(SigningAlg::Es256, 2048).unwrap();
        json!({"keys": [Value::Object(key.public_jwk().unwrap().into())]})
    }

    fn fapi_client() -> Value {
        json!({
            "client_name": "TPP",
            "redirect_uris": ["https://tpp.example/cb"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": ec_jwks(),
        })
    }

    fn parse(body: Value) -> ClientMetadata {
        ClientMetadata::from_request(body.as_object().unwrap().clone()).unwrap()
    }

    fn refused(body: Value, profile: ClientProfile) -> OAuthError {
        let result = ClientMetadata::from_request(body.as_object().unwrap().clone())
            .and_then(|m| m.validate(profile));
        result.expect_err("expected a refusal")
    }

    fn with(field: &str, value: Value) -> Value {
        let mut body = fapi_client();
        if value.is_null() {
            body.as_object_mut().unwrap().remove(field);
        } else {
            body[field] = value;
        }
        body
    }

    #[test]
    fn a_member_nested_too_deep_is_invalid_client_metadata() {
        let mut deep = json!("x");
        for _ in 0..9 {
            deep = json!([deep]);
        }
        let mut shallow = json!("x");
        for _ in 0..8 {
            shallow = json!({ "a": shallow });
        }
        let body = |member: Value| {
            json!({ "client_name": "Deep", "x_extension": member })
                .as_object()
                .unwrap()
                .clone()
        };
        let error = ClientMetadata::from_request(body(deep)).unwrap_err();
        assert_eq!(error.error, ErrorCode::InvalidClientMetadata);
        assert!(error.error_description.contains("x_extension"), "{error:?}");
        assert!(ClientMetadata::from_request(body(shallow)).is_ok());
    }

    #[test]
    fn a_fapi_private_key_jwt_client_is_valid_and_round_trips_with_extensions() {
        let mut body = fapi_client();
        body["x_bank_reference"] = json!("42");
        let metadata = parse(body.clone());
        metadata.validate(ClientProfile::Fapi2).unwrap();
        assert_eq!(metadata.grant_types, [GrantType::AuthorizationCode]);
        let again = ClientMetadata::from_stored(metadata.to_map()).unwrap();
        assert_eq!(again, metadata);
        assert_eq!(again.extensions["x_bank_reference"], "42");
    }

    #[test]
    fn server_and_operator_fields_cannot_be_registered() {
        for field in [
            "client_id",
            "client_secret",
            "profile",
            "access_token_lifetime_secs",
            "registration_access_token",
        ] {
            let e = refused(with(field, json!("x")), ClientProfile::Fapi2);
            assert_eq!(e.error, ErrorCode::InvalidClientMetadata);
            assert!(
                e.error_description.contains(field),
                "{}",
                e.error_description
            );
        }
    }

    /// SP 5.3.2.1-6 and checklist #15.
    #[test]
    fn sp_5_3_2_1_6_fapi_profiles_allow_only_key_and_certificate_authentication() {
        for method in ["client_secret_basic", "client_secret_post"] {
            let e = refused(
                with("token_endpoint_auth_method", json!(method)),
                ClientProfile::Fapi2,
            );
            assert!(
                e.error_description.contains("SP 5.3.2.1-6"),
                "{}",
                e.error_description
            );
            let mut body = with("token_endpoint_auth_method", json!(method));
            body.as_object_mut().unwrap().remove("jwks");
            parse(body).validate(ClientProfile::Oauth).unwrap();
        }
        for method in ["none", "client_secret_jwt"] {
            assert_eq!(
                refused(
                    with("token_endpoint_auth_method", json!(method)),
                    ClientProfile::Oauth
                )
                .error,
                ErrorCode::InvalidClientMetadata
            );
        }
        assert_eq!(
            refused(
                with("token_endpoint_auth_method", Value::Null),
                ClientProfile::Fapi2
            )
            .error,
            ErrorCode::InvalidClientMetadata
        );
    }

    /// SP 5.3.2.2-6, RFC 6749 §3.1.2, checklist #54.
    #[test]
    fn redirect_uris_are_https_without_fragments_and_loopback_http_only_for_oauth() {
        for bad in [
            "http://tpp.example/cb",
            "https://tpp.example/cb#frag",
            "https://user:pw@tpp.example/cb",
            "/relative",
            "com.tpp.app:/cb",
        ] {
            let e = refused(with("redirect_uris", json!([bad])), ClientProfile::Fapi2);
            assert_eq!(e.error, ErrorCode::InvalidRedirectUri, "{bad}");
        }
        assert_eq!(
            refused(with("redirect_uris", json!([])), ClientProfile::Fapi2).error,
            ErrorCode::InvalidRedirectUri
        );
        let loopback = with(
            "redirect_uris",
            json!(["http://127.0.0.1:5000/cb", "http://[::1]/cb"]),
        );
        parse(loopback.clone())
            .validate(ClientProfile::Oauth)
            .unwrap();
        assert_eq!(
            refused(loopback, ClientProfile::Fapi2).error,
            ErrorCode::InvalidRedirectUri
        );
        assert_eq!(
            refused(
                with("redirect_uris", json!(["http://localhost/cb"])),
                ClientProfile::Oauth
            )
            .error,
            ErrorCode::InvalidRedirectUri
        );
    }

    /// SP 5.3.2.2-1, SP 5.3.2.1-2.
    #[test]
    fn only_the_code_flow_and_known_grants_exist() {
        assert_eq!(
            refused(
                with("response_types", json!(["code id_token"])),
                ClientProfile::Fapi2
            )
            .error,
            ErrorCode::InvalidClientMetadata
        );
        assert_eq!(
            refused(
                with("grant_types", json!(["password"])),
                ClientProfile::Oauth
            )
            .error,
            ErrorCode::InvalidClientMetadata
        );
        assert_eq!(
            refused(
                with("grant_types", json!(["implicit"])),
                ClientProfile::Oauth
            )
            .error,
            ErrorCode::InvalidClientMetadata
        );
        // A machine client: client_credentials only, no redirect URIs, no response types.
        let mut m2m = with("grant_types", json!(["client_credentials"]));
        m2m["response_types"] = json!([]);
        m2m.as_object_mut().unwrap().remove("redirect_uris");
        parse(m2m).validate(ClientProfile::Fapi2).unwrap();
        assert_eq!(
            refused(
                with("scope", json!("accounts  payments")),
                ClientProfile::Fapi2
            )
            .error,
            ErrorCode::InvalidClientMetadata
        );
    }

    /// SP 5.4.1, RFC 7591 §2.
    #[test]
    fn keys_must_be_present_alone_https_and_strong() {
        assert!(
            refused(with("jwks", Value::Null), ClientProfile::Fapi2)
                .error_description
                .contains("needs jwks")
        );
        let mut both = fapi_client();
        both["jwks_uri"] = json!("https://tpp.example/jwks");
        assert!(
            refused(both, ClientProfile::Fapi2)
                .error_description
                .contains("both")
        );
        let mut by_uri = with("jwks", Value::Null);
        by_uri["jwks_uri"] = json!("http://tpp.example/jwks");
        assert!(
            refused(by_uri, ClientProfile::Fapi2)
                .error_description
                .contains("jwks_uri")
        );

        use base64::Engine as _;
        let n = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xffu8; 128]);
        let weak = json!({"keys": [{"kty": "RSA", "e": "AQAB", "n": n, "kid": "weak"}]});
        let e = refused(with("jwks", weak), ClientProfile::Fapi2);
        assert!(
            e.error_description.contains("weak") && e.error_description.contains("2048"),
            "{}",
            e.error_description
        );
        let p384 =
            json!({"keys": [{"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA", "kid": "p384"}]});
        assert!(
            refused(with("jwks", p384), ClientProfile::Fapi2)
                .error_description
                .contains("p384")
        );
        let private = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AA", "d": "AA"}]});
        assert_eq!(
            refused(with("jwks", private), ClientProfile::Fapi2).error,
            ErrorCode::InvalidClientMetadata
        );
        let rs256 = with("token_endpoint_auth_signing_alg", json!("RS256"));
        assert_eq!(
            refused(rs256, ClientProfile::Fapi2).error,
            ErrorCode::InvalidClientMetadata
        );
    }

    /// RFC 8705 §2.1.2.
    #[test]
    fn tls_client_auth_needs_exactly_one_subject() {
        let mut body = with("token_endpoint_auth_method", json!("tls_client_auth"));
        body.as_object_mut().unwrap().remove("jwks");
        assert!(
            refused(body.clone(), ClientProfile::Fapi2)
                .error_description
                .contains("exactly one")
        );
        body["tls_client_auth_subject_dn"] = json!("CN=tpp,O=TPP Ltd,C=GB");
        parse(body.clone()).validate(ClientProfile::Fapi2).unwrap();
        body["tls_client_auth_san_dns"] = json!("tpp.example");
        assert!(
            refused(body, ClientProfile::Fapi2)
                .error_description
                .contains("exactly one")
        );
        let stray = with("tls_client_auth_san_dns", json!("tpp.example"));
        assert!(
            refused(stray, ClientProfile::Fapi2)
                .error_description
                .contains("tls_client_auth only")
        );
    }

    #[test]
    fn message_signing_profile_requires_signed_request_objects() {
        assert!(
            refused(fapi_client(), ClientProfile::Fapi2MessageSigning)
                .error_description
                .contains("require_signed_request_object")
        );
        parse(with("require_signed_request_object", json!(true)))
            .validate(ClientProfile::Fapi2MessageSigning)
            .unwrap();
    }

    #[test]
    fn wrong_types_and_oversized_values_are_named() {
        let e = refused(
            with("redirect_uris", json!("https://tpp.example/cb")),
            ClientProfile::Fapi2,
        );
        assert!(
            e.error_description.contains("registered types"),
            "{}",
            e.error_description
        );
        assert_eq!(
            refused(
                with("client_name", json!("x".repeat(201))),
                ClientProfile::Fapi2
            )
            .error,
            ErrorCode::InvalidClientMetadata
        );
        let many: Vec<String> = (0..21)
            .map(|i| format!("https://tpp.example/cb{i}"))
            .collect();
        assert_eq!(
            refused(with("redirect_uris", json!(many)), ClientProfile::Fapi2).error,
            ErrorCode::InvalidRedirectUri
        );
        assert_eq!(
            refused(
                with("logo_uri", json!("javascript:alert(1)")),
                ClientProfile::Fapi2
            )
            .error,
            ErrorCode::InvalidClientMetadata
        );
    }
}
