//! What only the operator decides about a client (issue 3, "Operator-only fields"): the access
//! token format and lifetimes, the rate-limit tier and the admin scopes. These widen or narrow what
//! a client may do, so dynamic registration, RFC 7592 updates and software statements can never
//! set them; only the admin API and the CLI can.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{ErrorCode, OAuthError};

/// The form of the access tokens a client (or resource server) gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenFormat {
    /// An RFC 9068 JWT, verified offline against the JWKS (the default).
    #[default]
    Jwt,
    /// An opaque reference, resolved by introspection.
    Opaque,
}

impl TokenFormat {
    /// The wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenFormat::Jwt => "jwt",
            TokenFormat::Opaque => "opaque",
        }
    }
}

/// The scopes of the operator's admin API (`/admin/v1`).
pub const ADMIN_SCOPES: [&str; 5] = [
    "admin:clients",
    "admin:users",
    "admin:keys",
    "admin:resources",
    "admin:audit",
];

/// Shortest access-token lifetime an operator may set, in seconds.
pub const MIN_ACCESS_TOKEN_LIFETIME_SECS: u32 = 60;
/// Longest access-token lifetime an operator may set: an hour. Sender-constrained tokens are
/// still bearer-like once their key leaks; they stay short.
pub const MAX_ACCESS_TOKEN_LIFETIME_SECS: u32 = 3600;
/// Longest refresh-token lifetime an operator may set: a year.
pub const MAX_REFRESH_TOKEN_LIFETIME_SECS: u32 = 366 * 24 * 3600;

/// The operator-only settings of a client. Every member has a default, so `{}` is valid.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientSettings {
    /// The access-token format.
    pub access_token_format: TokenFormat,
    /// Access-token lifetime; the server default when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token_lifetime_secs: Option<u32>,
    /// Refresh-token lifetime; the server default when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token_lifetime_secs: Option<u32>,
    /// The rate-limit tier by name (the abuse-controls configuration defines the tiers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_tier: Option<String>,
    /// The admin API scopes this client may ask for with the client-credentials grant.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub admin_scopes: Vec<String>,
}

fn settings_error(description: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClientMetadata, description)
}

/// Whether `name` may name a rate-limit tier: 1 to 64 characters of A-Z, a-z, 0-9, `-` or `_`
/// (the rule for `rate_limit_tier` here and for the tiers of `[rate_limits.tiers]`).
#[must_use]
pub fn valid_tier_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
}

impl ClientSettings {
    /// The members of a request body that are settings, taken out of it. What is left is RFC 7591
    /// metadata.
    #[must_use]
    pub fn take_from(body: &mut Map<String, Value>) -> Map<String, Value> {
        let mut taken = Map::new();
        for name in Self::MEMBERS {
            if let Some(value) = body.remove(name) {
                taken.insert(name.to_owned(), value);
            }
        }
        taken
    }

    /// The member names.
    pub const MEMBERS: [&'static str; 5] = [
        "access_token_format",
        "access_token_lifetime_secs",
        "refresh_token_lifetime_secs",
        "rate_limit_tier",
        "admin_scopes",
    ];

    /// Parses and validates settings.
    ///
    /// # Errors
    /// `invalid_client_metadata` naming the member and the rule.
    pub fn parse(members: Map<String, Value>) -> Result<Self, OAuthError> {
        let settings: Self = serde_json::from_value(Value::Object(members))
            .map_err(|e| settings_error(format!("client settings: {e}")))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks the bounds.
    ///
    /// # Errors
    /// `invalid_client_metadata` naming the member and the rule.
    pub fn validate(&self) -> Result<(), OAuthError> {
        if let Some(secs) = self.access_token_lifetime_secs
            && !(MIN_ACCESS_TOKEN_LIFETIME_SECS..=MAX_ACCESS_TOKEN_LIFETIME_SECS).contains(&secs)
        {
            return Err(settings_error(format!(
                "access_token_lifetime_secs must be between {MIN_ACCESS_TOKEN_LIFETIME_SECS} and {MAX_ACCESS_TOKEN_LIFETIME_SECS}"
            )));
        }
        if let Some(secs) = self.refresh_token_lifetime_secs
            && !(MIN_ACCESS_TOKEN_LIFETIME_SECS..=MAX_REFRESH_TOKEN_LIFETIME_SECS).contains(&secs)
        {
            return Err(settings_error(format!(
                "refresh_token_lifetime_secs must be between {MIN_ACCESS_TOKEN_LIFETIME_SECS} and {MAX_REFRESH_TOKEN_LIFETIME_SECS}"
            )));
        }
        if let Some(tier) = &self.rate_limit_tier
            && !valid_tier_name(tier)
        {
            return Err(settings_error(
                "rate_limit_tier is 1 to 64 characters of A-Z, a-z, 0-9, '-' or '_'",
            ));
        }
        for scope in &self.admin_scopes {
            if !ADMIN_SCOPES.contains(&scope.as_str()) {
                return Err(settings_error(format!(
                    "admin_scopes: {scope:?} is not one of {}",
                    ADMIN_SCOPES.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// Whether the client may ask for this admin scope.
    #[must_use]
    pub fn allows_admin_scope(&self, scope: &str) -> bool {
        self.admin_scopes.iter().any(|s| s == scope)
    }

    /// The settings as a JSON object.
    #[must_use]
    pub fn to_map(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn defaults_are_jwt_with_no_admin_scopes() {
        let settings = ClientSettings::parse(Map::new()).unwrap();
        assert_eq!(settings.access_token_format, TokenFormat::Jwt);
        assert!(settings.admin_scopes.is_empty());
        assert!(!settings.allows_admin_scope("admin:clients"));
        assert_eq!(
            settings.to_map(),
            map(json!({"access_token_format": "jwt"}))
        );
    }

    #[test]
    fn bounds_and_names_are_checked_and_the_error_names_the_member() {
        for (bad, member) in [
            (
                json!({"access_token_lifetime_secs": 59}),
                "access_token_lifetime_secs",
            ),
            (
                json!({"access_token_lifetime_secs": 3601}),
                "access_token_lifetime_secs",
            ),
            (
                json!({"refresh_token_lifetime_secs": 1}),
                "refresh_token_lifetime_secs",
            ),
            (json!({"rate_limit_tier": "a b"}), "rate_limit_tier"),
            (json!({"admin_scopes": ["admin:root"]}), "admin_scopes"),
            (json!({"access_token_format": "paseto"}), "paseto"),
            (json!({"superuser": true}), "superuser"),
        ] {
            let error = ClientSettings::parse(map(bad.clone())).unwrap_err();
            assert_eq!(error.error, ErrorCode::InvalidClientMetadata, "{bad}");
            assert!(error.error_description.contains(member), "{bad}: {error:?}");
        }
        let ok = ClientSettings::parse(map(json!({
            "access_token_format": "opaque",
            "access_token_lifetime_secs": 300,
            "admin_scopes": ["admin:clients", "admin:keys"],
            "rate_limit_tier": "gold_1"
        })))
        .unwrap();
        assert!(ok.allows_admin_scope("admin:keys"));
        assert!(!ok.allows_admin_scope("admin:users"));
    }

    #[test]
    fn settings_are_taken_out_of_a_request_body() {
        let mut body = map(json!({"client_name": "x", "admin_scopes": ["admin:keys"]}));
        let taken = ClientSettings::take_from(&mut body);
        assert_eq!(body, map(json!({"client_name": "x"})));
        assert_eq!(taken, map(json!({"admin_scopes": ["admin:keys"]})));
    }
}
