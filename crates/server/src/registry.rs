//! The client registry's operations shared by the CLI, and later the admin API and dynamic
//! registration: validate, store, and record the change in the security-event trail.

use portcullis_core::audit::SecurityEvent;
use portcullis_core::client::metadata::ClientMetadata;
use portcullis_core::client::register::{self, RegisterError, Registered};
use portcullis_core::client::{Client, ClientProfile};
use portcullis_core::error::OAuthError;
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

/// Registers a client from RFC 7591 metadata under `profile`, as `actor`.
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
    request: Map<String, Value>,
    profile: ClientProfile,
) -> Result<Registered, RegistryError> {
    let metadata = ClientMetadata::from_request(request)?;
    let registered = register::register(&metadata, profile, rng, clock.now())?;
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
    if let Err(e) = store.events().append(&event).await {
        // Fail closed: a change that cannot be recorded is undone.
        if let Err(undo) = store.clients().remove(&client.client_id).await {
            tracing::error!(client_id = %client.client_id, error = %undo, "could not undo an unrecorded client registration");
        }
        return Err(e.into());
    }
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
