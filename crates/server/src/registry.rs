//! The client registry's operations shared by the CLI, and later the admin API and dynamic
//! registration: validate, store, and record the change in the security-event trail.

use portcullis_core::audit::SecurityEvent;
use portcullis_core::client::metadata::{AuthMethod, ClientMetadata};
use portcullis_core::client::register::{self, RegisterError, Registered};
use portcullis_core::client::secret::{ClientSecret, SecretHash};
use portcullis_core::client::settings::ClientSettings;
use portcullis_core::client::{Client, ClientId, ClientProfile};
use portcullis_core::error::{ErrorCode, OAuthError};
use portcullis_core::store::{Store, StoreError};
use portcullis_core::{Clock, Rng};
use serde_json::{Map, Value};

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The request breaks a rule: an RFC 7591 error for the caller.
    #[error(transparent)]
    Invalid(#[from] OAuthError),
    /// The store failed.
    #[error("client registry: {0}")]
    Store(#[from] StoreError),
    /// No identifier or secret could be made.
    #[error("the random number generator failed")]
    Rng,
}

impl From<RegisterError> for RegistryError {
    fn from(error: RegisterError) -> Self {
        match error {
            RegisterError::Invalid(e) => RegistryError::Invalid(e),
            RegisterError::Rng(_) => RegistryError::Rng,
        }
    }
}

/// A client to register.
#[derive(Debug)]
pub struct NewClient {
    /// RFC 7591 metadata.
    pub request: Map<String, Value>,
    /// Its profile.
    pub profile: ClientProfile,
    /// The operator's settings.
    pub settings: ClientSettings,
    /// The hash of its RFC 7592 registration access token, for dynamically registered clients.
    pub registration_token: Option<SecretHash>,
}

/// Registers a client from RFC 7591 metadata under `profile`, as `actor`; a dynamically
/// registered client also gets the hash of its RFC 7592 registration access token.
///
/// The client and its `client.create` event are written one after the other; if the event cannot
/// be written the client is removed again, so no change goes unrecorded.
///
/// # Errors
/// [`RegistryError::Invalid`] for bad metadata; [`RegistryError::Store`] on database failure.
pub async fn create_client(
    store: &dyn Store,
    rng: &dyn Rng,
    clock: &dyn Clock,
    actor: &str,
    new: NewClient,
) -> Result<Registered, RegistryError> {
    let metadata = ClientMetadata::from_request(new.request)?;
    let mut registered =
        register::register(&metadata, new.profile, new.settings, rng, clock.now())?;
    registered.client.registration_token_hash = new.registration_token;
    let client = &registered.client;
    store.clients().add(client).await?;
    let mut details = Map::new();
    details.insert("after".into(), Value::Object(register::describe(client)));
    let event = SecurityEvent::new(
        clock.now(),
        actor,
        "client.create",
        Some(client.client_id.to_string()),
        details,
    );
    // Fail closed: a change that cannot be recorded is undone.
    record_or_undo(store, event, || store.clients().remove(&client.client_id)).await?;
    tracing::info!(client_id = %client.client_id, profile = client.profile.as_str(), %actor, "client registered");
    Ok(registered)
}

/// Every client, in `client_id` order, fetched page by page.
///
/// # Errors
/// [`RegistryError::Store`] on database failure.
pub async fn list_clients(store: &dyn Store) -> Result<Vec<Client>, RegistryError> {
    let mut all = Vec::new();
    loop {
        let page = store
            .clients()
            .list(all.last().map(|c: &Client| &c.client_id), 500)
            .await?;
        let done = page.len() < 500;
        all.extend(page);
        if done {
            return Ok(all);
        }
    }
}

/// Records `event`; if it cannot be written, runs `undo` and fails: no change goes unrecorded.
async fn record_or_undo<F, Fut>(
    store: &dyn Store,
    event: SecurityEvent,
    undo: F,
) -> Result<(), RegistryError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(), StoreError>>,
{
    if let Err(e) = store.events().append(&event).await {
        if let Err(undo_error) = undo().await {
            tracing::error!(action = %event.action, error = %undo_error, "could not undo an unrecorded change");
        }
        return Err(e.into());
    }
    Ok(())
}

/// What an operator may change about a client: new RFC 7591 metadata (replacing the old, as
/// RFC 7592 §2.2 does), and optionally a new profile and settings.
#[derive(Debug, Clone)]
pub struct ClientUpdate {
    /// The full new metadata.
    pub metadata: Map<String, Value>,
    /// A new profile, or keep the current one.
    pub profile: Option<ClientProfile>,
    /// New settings, or keep the current ones.
    pub settings: Option<ClientSettings>,
}

/// Replaces a client's metadata (and, for the operator, its profile and settings), validated for
/// the resulting profile. A client that moves away from `client_secret_*` loses its secret; one
/// that moves to it needs a secret rotation to get one.
///
/// # Errors
/// [`RegistryError::Invalid`] for bad metadata, [`RegistryError::Store`] (`NotFound` for an
/// unknown client).
pub async fn update_client(
    store: &dyn Store,
    clock: &dyn Clock,
    actor: &str,
    client_id: &ClientId,
    update: ClientUpdate,
) -> Result<Client, RegistryError> {
    let before = store.clients().find_by_id(client_id).await?;
    let metadata = ClientMetadata::from_request(update.metadata)?;
    let profile = update.profile.unwrap_or(before.profile);
    metadata.validate(profile)?;
    let settings = update.settings.unwrap_or_else(|| before.settings.clone());
    settings.validate()?;
    let uses_secret = matches!(
        metadata.token_endpoint_auth_method,
        Some(AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost)
    );
    let after = Client {
        client_id: before.client_id.clone(),
        profile,
        metadata: metadata.to_map(),
        secret_hash: if uses_secret {
            before.secret_hash.clone()
        } else {
            None
        },
        settings,
        registration_token_hash: before.registration_token_hash.clone(),
        created_at: before.created_at,
        updated_at: clock.now(),
    };
    store.clients().update(&after).await?;
    let mut details = Map::new();
    details.insert("before".into(), Value::Object(register::describe(&before)));
    details.insert("after".into(), Value::Object(register::describe(&after)));
    let event = SecurityEvent::new(
        clock.now(),
        actor,
        "client.update",
        Some(client_id.to_string()),
        details,
    );
    record_or_undo(store, event, || store.clients().update(&before)).await?;
    tracing::info!(%client_id, %actor, "client updated");
    Ok(after)
}

/// Deletes a client.
///
/// # Errors
/// [`RegistryError::Store`]: `NotFound` for an unknown client, `Conflict` when a resource server
/// authenticates as it.
pub async fn delete_client(
    store: &dyn Store,
    clock: &dyn Clock,
    actor: &str,
    client_id: &ClientId,
) -> Result<(), RegistryError> {
    let before = store.clients().find_by_id(client_id).await?;
    store.clients().remove(client_id).await?;
    let mut details = Map::new();
    details.insert("before".into(), Value::Object(register::describe(&before)));
    let event = SecurityEvent::new(
        clock.now(),
        actor,
        "client.delete",
        Some(client_id.to_string()),
        details,
    );
    record_or_undo(store, event, || store.clients().add(&before)).await?;
    tracing::info!(%client_id, %actor, "client deleted");
    Ok(())
}

/// Makes a new secret for a `client_secret_basic`/`_post` client; the old one stops working at
/// once. The secret is returned to be shown once.
///
/// # Errors
/// [`RegistryError::Invalid`] for a client that does not authenticate with a secret;
/// [`RegistryError::Store`] (`NotFound` for an unknown client).
pub async fn rotate_secret(
    store: &dyn Store,
    rng: &dyn Rng,
    clock: &dyn Clock,
    actor: &str,
    client_id: &ClientId,
) -> Result<ClientSecret, RegistryError> {
    let before = store.clients().find_by_id(client_id).await?;
    let metadata = ClientMetadata::from_stored(before.metadata.clone())?;
    if !matches!(
        metadata.token_endpoint_auth_method,
        Some(AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost)
    ) {
        return Err(RegistryError::Invalid(OAuthError::new(
            ErrorCode::InvalidRequest,
            "the client does not authenticate with a client secret",
        )));
    }
    let secret = ClientSecret::generate(rng).map_err(|_| RegistryError::Rng)?;
    let mut after = before.clone();
    after.secret_hash = Some(secret.hash());
    after.updated_at = clock.now();
    store.clients().update(&after).await?;
    let event = SecurityEvent::new(
        clock.now(),
        actor,
        "client.rotate_secret",
        Some(client_id.to_string()),
        Map::new(),
    );
    record_or_undo(store, event, || store.clients().update(&before)).await?;
    tracing::info!(%client_id, %actor, "client secret rotated");
    Ok(secret)
}

/// An operator's request body, split: RFC 7591 metadata, an optional profile, and settings.
pub type OperatorRequest = (Map<String, Value>, Option<ClientProfile>, ClientSettings);

/// Splits an operator's request body into RFC 7591 metadata, an optional profile and settings.
///
/// # Errors
/// `invalid_client_metadata` naming the member.
pub fn operator_request(mut body: Map<String, Value>) -> Result<OperatorRequest, OAuthError> {
    let profile = match body.remove("profile") {
        None => None,
        Some(Value::String(name)) => Some(ClientProfile::parse(&name).ok_or_else(|| {
            OAuthError::new(
                ErrorCode::InvalidClientMetadata,
                "profile must be fapi2, fapi2-message-signing or oauth",
            )
        })?),
        Some(_) => {
            return Err(OAuthError::new(
                ErrorCode::InvalidClientMetadata,
                "profile must be a string",
            ));
        }
    };
    let settings = ClientSettings::parse(ClientSettings::take_from(&mut body))?;
    Ok((body, profile, settings))
}
