//! Resource servers: the bank's APIs, registered like clients (DESIGN.md, Resource servers). The
//! identifier is the RFC 8707 resource URI that becomes the `aud` of tokens for it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::client::ClientId;
use crate::client::settings::TokenFormat;
use crate::error::{ErrorCode, OAuthError};

/// A registered resource server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceServer {
    /// The resource identifier: an absolute `https` URI without fragment (RFC 8707 §2).
    pub resource: String,
    /// What it serves and accepts.
    pub metadata: ResourceMetadata,
    /// The client it authenticates as (to introspect and revoke), if it has one.
    pub client_id: Option<ClientId>,
    /// When it was registered.
    pub created_at: OffsetDateTime,
    /// When it was last changed.
    pub updated_at: OffsetDateTime,
}

/// What a resource server serves and accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResourceMetadata {
    /// A human-readable name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The access-token format it accepts.
    pub token_format: TokenFormat,
    /// The scopes it serves.
    pub scopes: Vec<String>,
    /// The RFC 9396 `authorization_details` types it serves.
    pub authorization_details_types: Vec<String>,
}

fn invalid(description: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidRequest, description)
}

/// Checks a resource identifier: an absolute `https` URI with a host, no fragment, no userinfo
/// and at most 2048 characters.
///
/// # Errors
/// `invalid_request` naming the rule.
pub fn check_resource_identifier(resource: &str) -> Result<(), OAuthError> {
    if resource.len() > 2048 {
        return Err(invalid("resource is longer than 2048 characters"));
    }
    let url = url::Url::parse(resource)
        .map_err(|e| invalid(format!("resource is not an absolute URI: {e}")))?;
    if url.scheme() != "https" {
        return Err(invalid("resource must be an https URI"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("resource must name a host"));
    }
    if url.fragment().is_some() || resource.contains('#') {
        return Err(invalid(
            "resource must not contain a fragment (RFC 8707 §2)",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("resource must not contain userinfo"));
    }
    Ok(())
}

/// A scope token per RFC 6749 §3.3: printable ASCII except space, `"` and `\`.
#[must_use]
pub fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope.len() <= 256
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

impl ResourceMetadata {
    /// Parses and checks a request body (the members of [`ResourceMetadata`]).
    ///
    /// # Errors
    /// `invalid_request` naming the member and the rule.
    pub fn parse(body: Map<String, Value>) -> Result<Self, OAuthError> {
        let metadata: Self = serde_json::from_value(Value::Object(body))
            .map_err(|e| invalid(format!("resource server: {e}")))?;
        metadata.validate()?;
        Ok(metadata)
    }

    /// Checks the members.
    ///
    /// # Errors
    /// `invalid_request` naming the member and the rule.
    pub fn validate(&self) -> Result<(), OAuthError> {
        if let Some(name) = &self.name
            && (name.is_empty() || name.chars().count() > 200)
        {
            return Err(invalid("name is 1 to 200 characters"));
        }
        if let Some(bad) = self.scopes.iter().find(|s| !is_scope_token(s)) {
            return Err(invalid(format!(
                "scopes: {bad:?} is not a scope token (RFC 6749 §3.3)"
            )));
        }
        if let Some(bad) = self
            .authorization_details_types
            .iter()
            .find(|s| s.is_empty() || s.len() > 256 || s.chars().any(char::is_control))
        {
            return Err(invalid(format!(
                "authorization_details_types: {bad:?} is not a type name"
            )));
        }
        Ok(())
    }

    /// The metadata as a JSON object.
    #[must_use]
    pub fn to_map(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }
}

impl ResourceServer {
    /// The resource server as the admin API shows it.
    #[must_use]
    pub fn describe(&self) -> Map<String, Value> {
        let mut shown = self.metadata.to_map();
        shown.insert("resource".into(), self.resource.clone().into());
        shown.insert(
            "client_id".into(),
            self.client_id
                .as_ref()
                .map_or(Value::Null, |c| c.as_str().into()),
        );
        shown.insert("created_at".into(), self.created_at.unix_timestamp().into());
        shown.insert("updated_at".into(), self.updated_at.unix_timestamp().into());
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resource_identifiers_are_https_without_fragment_or_userinfo() {
        assert!(check_resource_identifier("https://api.bank.example/accounts").is_ok());
        for bad in [
            "http://api.bank.example/",
            "https://api.bank.example/#x",
            "https://user@api.bank.example/",
            "/relative",
            "urn:bank:accounts",
        ] {
            let e = check_resource_identifier(bad).unwrap_err();
            assert_eq!(e.error, ErrorCode::InvalidRequest, "{bad}");
        }
    }

    #[test]
    fn metadata_checks_scopes_and_names_the_member() {
        let ok = ResourceMetadata::parse(
            json!({"scopes": ["accounts", "payments"], "token_format": "opaque"})
                .as_object()
                .unwrap()
                .clone(),
        )
        .unwrap();
        assert_eq!(ok.token_format, TokenFormat::Opaque);
        for (bad, member) in [
            (json!({"scopes": ["has space"]}), "scopes"),
            (json!({"scopes": ["quote\""]}), "scopes"),
            (
                json!({"authorization_details_types": [""]}),
                "authorization_details_types",
            ),
            (json!({"owner": "x"}), "owner"),
        ] {
            let e = ResourceMetadata::parse(bad.as_object().unwrap().clone()).unwrap_err();
            assert!(e.error_description.contains(member), "{bad}: {e:?}");
        }
    }
}
