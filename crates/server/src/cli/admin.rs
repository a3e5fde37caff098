//! `portcullis admin bootstrap`: the first admin client, so that the admin API can be reached at
//! all. It authenticates with `private_key_jwt` and gets DPoP-bound tokens; its private key is
//! made here and printed once (or written to a file readable only by its owner), never stored.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use portcullis_core::client::ClientProfile;
use portcullis_core::client::register::describe;
use portcullis_core::client::settings::{ADMIN_SCOPES, ClientSettings};
use portcullis_core::{SystemClock, SystemRng};
use portcullis_jose::{SigningAlg, SigningKey};
use serde_json::{Value, json};

use super::{CliError, StoreArgs, open_store};
use crate::registry;

/// The admin commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create the first admin client (private_key_jwt, DPoP-bound tokens, every admin scope) and
    /// print its client_id and private key once. Refuses when an admin client exists, unless
    /// --additional is given.
    Bootstrap(BootstrapArgs),
}

/// Options of `admin bootstrap`.
#[derive(Debug, Clone, Args)]
pub struct BootstrapArgs {
    #[command(flatten)]
    /// Store options.
    pub store: StoreArgs,
    /// Write the private JWK to this file (created with mode 0600; must not exist) instead of
    /// printing it.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// The key's algorithm: ES256, EdDSA or PS256.
    #[arg(long, default_value = "ES256")]
    pub alg: SigningAlg,
    /// A name for the client.
    #[arg(long, default_value = "Portcullis operator")]
    pub name: String,
    /// Create another admin client even though one exists.
    #[arg(long)]
    pub additional: bool,
}

fn failed(message: impl Into<String>) -> CliError {
    CliError {
        exit_code: 1,
        message: message.into(),
    }
}

/// Runs an admin command.
///
/// # Errors
/// [`CliError`] with the message and exit code.
pub async fn run(command: AdminCommand) -> Result<(), CliError> {
    let AdminCommand::Bootstrap(args) = command;
    let config = args.store.load(&args.store.overrides())?;
    crate::telemetry::init(&config.log);
    let store = open_store(&config).await?;
    if !args.additional {
        let clients = registry::list_clients(store.as_ref())
            .await
            .map_err(|e| failed(e.to_string()))?;
        if let Some(admin) = clients.iter().find(|c| !c.settings.admin_scopes.is_empty()) {
            return Err(failed(format!(
                "an admin client exists already ({}); manage clients through the admin API, or pass --additional",
                admin.client_id
            )));
        }
    }
    if let Some(path) = &args.key_file
        && path.exists()
    {
        return Err(CliError {
            exit_code: 2,
            message: format!("--key-file {}: the file exists", path.display()),
        });
    }

    let key = SigningKey::generate(args.alg, config.keys.rsa_bits)
        .map_err(|e| failed(format!("cannot make a key: {e}")))?;
    let public = key.public_jwk().map_err(|e| failed(e.to_string()))?;
    let metadata = json!({
        "client_name": args.name,
        "grant_types": ["client_credentials"],
        "response_types": [],
        "token_endpoint_auth_method": "private_key_jwt",
        "token_endpoint_auth_signing_alg": args.alg.as_str(),
        "jwks": {"keys": [Value::Object(public.members().clone())]},
        "dpop_bound_access_tokens": true,
    });
    let Value::Object(metadata) = metadata else {
        return Err(failed("internal: metadata is not an object"));
    };
    let settings = ClientSettings {
        admin_scopes: ADMIN_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
        ..ClientSettings::default()
    };
    let registered = registry::create_client(
        store.as_ref(),
        &SystemRng::new(),
        &SystemClock,
        "cli:admin-bootstrap",
        crate::registry::NewClient {
            request: metadata,
            profile: ClientProfile::Fapi2,
            settings,
            registration_token: None,
        },
    )
    .await
    .map_err(|e| failed(format!("cannot register the admin client: {e}")))?;

    let private = key.private_jwk_json().map_err(|e| failed(e.to_string()))?;
    let private: Value = serde_json::from_slice(&private).map_err(|e| failed(e.to_string()))?;
    let mut shown = describe(&registered.client);
    match &args.key_file {
        Some(path) => {
            let text = serde_json::to_vec_pretty(&private).map_err(|e| failed(e.to_string()))?;
            crate::fs::write_private(path, &text)
                .map_err(|e| failed(format!("--key-file {}: {e}", path.display())))?;
            shown.insert("private_jwk_file".into(), path.display().to_string().into());
        }
        None => {
            shown.insert("private_jwk".into(), private);
        }
    }
    let text = serde_json::to_string_pretty(&shown).map_err(|e| failed(e.to_string()))?;
    println!("{text}");
    eprintln!(
        "Admin client {} created. Get a token with the client_credentials grant (private_key_jwt + DPoP) and a scope from: {}",
        registered.client.client_id,
        ADMIN_SCOPES.join(" ")
    );
    Ok(())
}
