//! OAuth clients as the registry holds them: the identifier, the profile the operator assigned,
//! and the registered metadata, whose rules per profile live in [`metadata`].

pub mod metadata;
pub mod register;
pub mod secret;
pub mod settings;

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// A client identifier: 1 to 128 characters from the RFC 3986 unreserved set, so it can appear in
/// URLs (`/register/{client_id}`) and logs without escaping.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientId(String);

/// A value that is not a valid client identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a client_id is 1 to 128 characters of A-Z, a-z, 0-9, '-', '.', '_' or '~'")]
pub struct InvalidClientId;

impl ClientId {
    /// Parses a client identifier.
    ///
    /// # Errors
    /// [`InvalidClientId`] for an empty, overlong or oddly-charactered value.
    pub fn parse(value: impl Into<String>) -> Result<Self, InvalidClientId> {
        let value = value.into();
        let ok = (1..=128).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
        if ok {
            Ok(Self(value))
        } else {
            Err(InvalidClientId)
        }
    }

    /// The identifier.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ClientId {
    type Error = InvalidClientId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<ClientId> for String {
    fn from(id: ClientId) -> Self {
        id.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The profile a client is held to (DESIGN.md, Profiles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ClientProfile {
    /// FAPI 2.0 Security Profile.
    #[serde(rename = "fapi2")]
    Fapi2,
    /// FAPI 2.0 Security Profile plus Message Signing (JAR, JARM, signed introspection).
    #[serde(rename = "fapi2-message-signing")]
    Fapi2MessageSigning,
    /// OAuth 2.1 / OpenID Connect for clients outside FAPI.
    #[serde(rename = "oauth")]
    Oauth,
}

impl ClientProfile {
    /// The wire and storage name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            ClientProfile::Fapi2 => "fapi2",
            ClientProfile::Fapi2MessageSigning => "fapi2-message-signing",
            ClientProfile::Oauth => "oauth",
        }
    }

    /// Parses the storage name.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "fapi2" => Some(ClientProfile::Fapi2),
            "fapi2-message-signing" => Some(ClientProfile::Fapi2MessageSigning),
            "oauth" => Some(ClientProfile::Oauth),
            _ => None,
        }
    }
}

/// A registered client.
#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    /// Its identifier.
    pub client_id: ClientId,
    /// The profile it is held to.
    pub profile: ClientProfile,
    /// Its registered metadata (RFC 7591 §2), already validated for its profile.
    pub metadata: Map<String, Value>,
    /// For `client_secret_basic`/`_post` clients: the SHA-256 of the secret.
    pub secret_hash: Option<secret::SecretHash>,
    /// What only the operator sets.
    pub settings: settings::ClientSettings,
    /// For dynamically registered clients: the SHA-256 of the RFC 7592 registration access token.
    pub registration_token_hash: Option<secret::SecretHash>,
    /// When it was registered.
    pub created_at: OffsetDateTime,
    /// When it was last changed.
    pub updated_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_url_safe_and_bounded() {
        assert!(ClientId::parse("tpp-01.example_~").is_ok());
        for bad in ["", "has space", "slash/", "ümlaut", &"x".repeat(129)] {
            assert_eq!(ClientId::parse(bad), Err(InvalidClientId), "{bad:?}");
        }
        assert!(serde_json::from_str::<ClientId>("\"a/b\"").is_err());
    }

    #[test]
    fn profiles_round_trip_their_names() {
        for p in [
            ClientProfile::Fapi2,
            ClientProfile::Fapi2MessageSigning,
            ClientProfile::Oauth,
        ] {
            assert_eq!(ClientProfile::parse(p.as_str()), Some(p));
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
        assert_eq!(ClientProfile::parse("fapi1"), None);
    }
}
