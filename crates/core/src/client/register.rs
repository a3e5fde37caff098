//! Turning validated metadata into a registered client: the server makes the `client_id` (128
//! random bits) and, for `client_secret_*` methods of `oauth`-profile clients, the secret.

use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::metadata::{AuthMethod, ClientMetadata};
use super::secret::ClientSecret;
use super::settings::ClientSettings;
use super::{Client, ClientId, ClientProfile};
use crate::error::OAuthError;
use crate::{Rng, RngError};

/// A new client, and its secret when it has one (shown once, never stored).
#[derive(Debug)]
pub struct Registered {
    /// The client to store.
    pub client: Client,
    /// The secret, for `client_secret_basic`/`_post`.
    pub secret: Option<ClientSecret>,
}

/// Why a client could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The metadata breaks a rule of the profile.
    #[error(transparent)]
    Invalid(#[from] OAuthError),
    /// The random source failed.
    #[error(transparent)]
    Rng(#[from] RngError),
}

/// Validates `metadata` for `profile` and makes the client with the operator's `settings`.
///
/// # Errors
/// [`RegisterError::Invalid`] with the RFC 7591 error, or [`RegisterError::Rng`].
pub fn register(
    metadata: &ClientMetadata,
    profile: ClientProfile,
    settings: ClientSettings,
    rng: &dyn Rng,
    now: OffsetDateTime,
) -> Result<Registered, RegisterError> {
    metadata.validate(profile)?;
    settings.validate()?;
    let client_id = ClientId::parse(rng.token(16)?).map_err(|_| RngError)?;
    let secret = match metadata.token_endpoint_auth_method {
        Some(AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost) => {
            Some(ClientSecret::generate(rng)?)
        }
        _ => None,
    };
    let client = Client {
        client_id,
        profile,
        metadata: metadata.to_map(),
        secret_hash: secret.as_ref().map(ClientSecret::hash),
        settings,
        registration_token_hash: None,
        created_at: now,
        updated_at: now,
    };
    Ok(Registered { client, secret })
}

/// The client as the registry shows it (RFC 7591 §3.2.1): its metadata plus `client_id`,
/// `client_id_issued_at`, `profile` and the operator's settings; never a secret or its hash.
#[must_use]
pub fn describe(client: &Client) -> Map<String, Value> {
    let mut shown = client.metadata.clone();
    shown.extend(client.settings.to_map());
    shown.insert("client_id".into(), client.client_id.as_str().into());
    shown.insert(
        "client_id_issued_at".into(),
        client.created_at.unix_timestamp().into(),
    );
    shown.insert("profile".into(), client.profile.as_str().into());
    shown
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SeededRng;
    use serde_json::json;

    fn metadata(body: Value) -> ClientMetadata {
        ClientMetadata::from_request(body.as_object().unwrap().clone()).unwrap()
    }

    #[test]
    fn makes_a_random_client_id_and_a_secret_only_for_secret_methods() {
        let rng = SeededRng::new(6);
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let oauth = metadata(
            json!({"redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "client_secret_basic"}),
        );
        let registered = register(
            &oauth,
            ClientProfile::Oauth,
            ClientSettings::default(),
            &rng,
            now,
        )
        .unwrap();
        assert_eq!(registered.client.client_id.as_str().len(), 22);
        let secret = registered.secret.unwrap();
        assert!(
            registered
                .client
                .secret_hash
                .as_ref()
                .unwrap()
                .matches(secret.expose())
        );
        let shown = describe(&registered.client);
        assert_eq!(shown["profile"], "oauth");
        assert_eq!(shown["client_id_issued_at"], 1_800_000_000);
        assert!(
            !serde_json::to_string(&shown)
                .unwrap()
                .contains(secret.expose())
        );

        // The same metadata is refused for a FAPI profile (SP 5.3.2.1-6).
        assert!(matches!(
            register(
                &oauth,
                ClientProfile::Fapi2,
                ClientSettings::default(),
                &rng,
                now
            ),
            Err(RegisterError::Invalid(_))
        ));

        let other = register(
            &oauth,
            ClientProfile::Oauth,
            ClientSettings::default(),
            &rng,
            now,
        )
        .unwrap();
        assert_ne!(other.client.client_id, describe_id(&shown));
    }

    fn describe_id(shown: &Map<String, Value>) -> ClientId {
        ClientId::parse(shown["client_id"].as_str().unwrap()).unwrap()
    }
}
