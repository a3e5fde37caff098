//! The `portcullis` command line: `serve`, `migrate`, `keys`, `clients`, `users`, `admin`,
//! `registration` and `audit`. Options given here override the configuration file and the
//! `PORTCULLIS_*` environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use portcullis_core::client::ClientProfile;
use portcullis_core::client::register::describe;
use portcullis_core::client::settings::ClientSettings;
use portcullis_core::{Rng, SystemClock, SystemRng};
use portcullis_jose::SigningAlg;

use crate::config::{Config, ConfigError, Overrides};
use crate::serve::{self, StartError};
use crate::{keys, registry};

mod admin;
mod audit;
mod users;

pub use admin::{AdminCommand, BootstrapArgs};
pub use audit::AuditCommand;
pub use users::{CreateUserArgs, EnrolTotpArgs, UsersCommand};

/// Portcullis: a FAPI 2.0 authorization server and OpenID Connect provider.
///
/// Configuration comes from defaults, then the TOML file given with --config, then PORTCULLIS_*
/// environment variables (nested keys joined with "__", e.g. PORTCULLIS_LISTEN__MAIN), then these
/// options.
#[derive(Debug, Parser)]
#[command(name = "portcullis", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server. With no configuration: SQLite and a development CA in ./portcullis-data,
    /// listening on https://localhost:8443 (mTLS on 8444, metrics on 127.0.0.1:9464).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit (serve also applies them at start).
    Migrate(StoreArgs),
    /// Manage the signing keys.
    Keys {
        /// What to do with the keys.
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage registered clients (works while servers run).
    Clients {
        /// What to do with the clients.
        #[command(subcommand)]
        command: ClientsCommand,
    },
    /// The operator's admin API: bootstrap its first client.
    Admin {
        /// What to do.
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Manage customer accounts (works while servers run).
    Users {
        /// What to do with the users.
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Dynamic client registration (RFC 7591).
    Registration {
        /// What to do.
        #[command(subcommand)]
        command: RegistrationCommand,
    },
    /// The tamper-evident security-event trail.
    Audit {
        /// What to do.
        #[command(subcommand)]
        command: AuditCommand,
    },
}

/// The registration commands.
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum RegistrationCommand {
    /// Make an initial access token (RFC 7591 §3): prints it once, with the SHA-256 to add to
    /// registration.initial_access_token_sha256. Only the hash goes in the configuration.
    InitialAccessToken,
}

/// The client commands.
#[derive(Debug, Subcommand)]
pub enum ClientsCommand {
    /// Register a client from an RFC 7591 metadata document. Prints the registered client as
    /// JSON; a client_secret (client_secret_basic/_post, oauth profile only) is shown this once.
    Create(CreateClientArgs),
    /// List the registered clients.
    List(StoreArgs),
}

/// Options of `clients create`.
#[derive(Debug, Clone, Args)]
pub struct CreateClientArgs {
    #[command(flatten)]
    /// Store options.
    pub store: StoreArgs,
    /// The client metadata: a JSON object (RFC 7591 §2), or - for standard input.
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,
    /// The profile the client is held to: fapi2, fapi2-message-signing or oauth.
    #[arg(long, default_value = "fapi2", value_parser = parse_profile)]
    pub profile: ClientProfile,
}

fn parse_profile(value: &str) -> Result<ClientProfile, String> {
    ClientProfile::parse(value)
        .ok_or_else(|| "expected fapi2, fapi2-message-signing or oauth".to_owned())
}

/// The key commands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a new key per algorithm. It is published at once and signs only after
    /// keys.jwks_max_age_secs + keys.refresh_interval_secs; the key it replaces stays published
    /// for keys.keep_retired_secs. Expired keys are deleted.
    Rotate(RotateArgs),
    /// List every key with its algorithm, state (next, active, retired, expired) and dates.
    List(StoreArgs),
}

/// Options of every command that opens the store.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory of the embedded default (SQLite database, development CA, development KEK).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database: postgres://user@host/db or sqlite://path. Default: SQLite in the data directory.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
}

/// Options of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    /// Store options.
    pub store: StoreArgs,
    /// Main listener address; port 0 picks a free port (printed on start).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// mTLS listener address (RFC 8705 mtls_endpoint_aliases); port 0 picks a free port.
    #[arg(long, value_name = "ADDR:PORT")]
    pub mtls_listen: Option<SocketAddr>,
    /// Prometheus /metrics listener address; port 0 picks a free port.
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_listen: Option<SocketAddr>,
    /// Issuer identifier: an https URL without path. Default: https://localhost:<port>.
    #[arg(long, value_name = "URL")]
    pub issuer: Option<String>,
}

/// Options of `keys rotate`.
#[derive(Debug, Clone, Args)]
pub struct RotateArgs {
    #[command(flatten)]
    /// Store options.
    pub store: StoreArgs,
    /// Rotate only this algorithm (PS256, ES256 or EdDSA); repeatable. Default: every configured one.
    #[arg(long = "alg", value_name = "ALG")]
    pub algs: Vec<SigningAlg>,
}

impl StoreArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            ..Overrides::default()
        }
    }

    fn load(&self, overrides: &Overrides) -> Result<Config, ConfigError> {
        Config::load(self.config.as_deref(), overrides)
    }
}

/// A command's failure, with the exit code it maps to.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    /// 2 for configuration problems, 1 for everything else.
    pub exit_code: u8,
    /// What to print.
    pub message: String,
}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        Self {
            exit_code: 2,
            message: e.to_string(),
        }
    }
}

impl From<StartError> for CliError {
    fn from(e: StartError) -> Self {
        Self {
            exit_code: if e.is_configuration() { 2 } else { 1 },
            message: e.to_string(),
        }
    }
}

/// Runs a parsed command to completion, then seals what it recorded in the security-event trail.
///
/// # Errors
/// [`CliError`] with the message and exit code.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let result = run_command(cli).await;
    seal_recorded_events().await;
    result
}

/// The stores this process opened for a command, with their configuration: whatever the command
/// recorded in the security-event trail is sealed before the process exits ([`run`]), as a server
/// seals at shutdown. A command runs once per process, so a process-wide list is enough.
static OPENED: std::sync::Mutex<Vec<(Arc<dyn portcullis_core::store::Store>, Config)>> =
    std::sync::Mutex::new(Vec::new());

/// Seals the chain of every store a command appended to. Needs the KEK the servers use: when
/// there is none yet (a fresh data directory), the events stay unsealed, with a warning.
async fn seal_recorded_events() {
    let opened = std::mem::take(
        &mut *OPENED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    for (store, config) in opened {
        if store.events().head().is_none() {
            continue;
        }
        match keys::load_kek(&config, &SystemRng::new(), keys::MissingKek::Refuse) {
            Ok(kek) => {
                let sealer = crate::audit::Sealer::new(store, &kek, Arc::new(SystemClock));
                if let Err(error) = sealer.seal().await {
                    tracing::warn!(%error, "could not seal the security events of this command");
                }
            }
            Err(error) => {
                tracing::warn!(%error, "the security events of this command are not sealed: no key-encryption key yet");
            }
        }
    }
}

async fn run_command(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve(args) => {
            let overrides = Overrides {
                listen: args.listen,
                mtls_listen: args.mtls_listen,
                metrics_listen: args.metrics_listen,
                issuer: args.issuer.clone(),
                ..args.store.overrides()
            };
            let config = args.store.load(&overrides)?;
            crate::telemetry::init(&config.log);
            let running = serve::start(config).await?;
            println!("{}", running.ready_line());
            if let Some(ca) = &running.ca_file {
                eprintln!(
                    "Development CA: {ca}. Try: curl --cacert {ca} {issuer}/.well-known/openid-configuration",
                    ca = ca.display(),
                    issuer = running.issuer
                );
            }
            serve::shutdown_signal().await;
            tracing::info!("shutting down");
            running.shutdown().await;
            Ok(())
        }
        Command::Migrate(args) => {
            let config = args.load(&args.overrides())?;
            crate::telemetry::init(&config.log);
            let store = open_store(&config).await?;
            println!("migrations applied ({})", store.backend().as_str());
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::Rotate(args),
        } => {
            let config = args.store.load(&args.store.overrides())?;
            crate::telemetry::init(&config.log);
            let store = open_store(&config).await?;
            let rng: Arc<dyn Rng> = Arc::new(SystemRng::new());
            let kek = Arc::new(
                keys::load_kek(&config, rng.as_ref(), keys::MissingKek::Refuse)
                    .map_err(StartError::from)?,
            );
            let algs = if args.algs.is_empty() {
                config.keys.algorithms.clone()
            } else {
                args.algs.clone()
            };
            let added = keys::rotate(
                store.as_ref(),
                &kek,
                &rng,
                &SystemClock,
                &config.keys,
                &algs,
            )
            .await
            .map_err(StartError::from)?;
            record_rotation(store.as_ref(), &added).await?;
            for key in added {
                println!(
                    "{} {} activates_at={}",
                    key.kid,
                    key.alg,
                    rfc3339(key.activates_at)
                );
            }
            Ok(())
        }
        Command::Clients {
            command: ClientsCommand::Create(args),
        } => create_client(args).await,
        Command::Clients {
            command: ClientsCommand::List(args),
        } => list_clients(args).await,
        Command::Users { command } => users::run(command).await,
        Command::Registration {
            command: RegistrationCommand::InitialAccessToken,
        } => {
            let token = portcullis_core::client::secret::ClientSecret::generate(&SystemRng::new())
                .map_err(|e| CliError {
                    message: format!("the random number generator failed: {e}"),
                    exit_code: 1,
                })?;
            let hash = base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                token.hash().as_bytes(),
            );
            let shown = serde_json::json!({
                "initial_access_token": token.expose(),
                "initial_access_token_sha256": hash,
            });
            println!("{shown:#}");
            Ok(())
        }
        Command::Admin { command } => admin::run(command).await,
        Command::Audit { command } => audit::run(command).await,
        Command::Keys {
            command: KeysCommand::List(args),
        } => {
            let config = args.load(&args.overrides())?;
            crate::telemetry::init(&config.log);
            let store = open_store(&config).await?;
            let listing = keys::list(store.as_ref(), &SystemClock, &config.keys)
                .await
                .map_err(StartError::from)?;
            println!(
                "{:<43}  {:<5}  {:<7}  {:<20}  {:<20}",
                "KID", "ALG", "STATE", "CREATED", "ACTIVATES"
            );
            for entry in listing {
                println!(
                    "{:<43}  {:<5}  {:<7}  {:<20}  {:<20}",
                    entry.key.kid,
                    entry.key.alg.as_str(),
                    entry.state.as_str(),
                    rfc3339(entry.key.created_at),
                    rfc3339(entry.key.activates_at)
                );
            }
            Ok(())
        }
    }
}

/// Records a rotation from the command line in the security-event trail (`key.rotate`, as the
/// admin API does). Fail closed: keys whose creation cannot be recorded are removed again (they
/// are only published, not yet signing).
async fn record_rotation(
    store: &dyn portcullis_core::store::Store,
    added: &[portcullis_core::keys::StoredSigningKey],
) -> Result<(), CliError> {
    let listed = added
        .iter()
        .map(|key| {
            serde_json::json!({
                "kid": key.kid,
                "alg": key.alg.as_str(),
                "activates_at": key.activates_at.unix_timestamp(),
            })
        })
        .collect();
    let mut details = serde_json::Map::new();
    details.insert("added".into(), serde_json::Value::Array(listed));
    let event = portcullis_core::audit::SecurityEvent::new(
        portcullis_core::Clock::now(&SystemClock),
        "cli",
        "key.rotate",
        None,
        details,
    );
    let Err(e) = store.events().append(&event).await else {
        return Ok(());
    };
    for key in added {
        if let Err(undo) = store.signing_keys().remove(&key.kid).await {
            tracing::error!(kid = %key.kid, error = %undo, "could not undo an unrecorded key rotation");
        }
    }
    Err(CliError {
        exit_code: 1,
        message: format!(
            "the rotation could not be recorded in the security-event trail, and was undone: {e}"
        ),
    })
}

async fn create_client(args: CreateClientArgs) -> Result<(), CliError> {
    let config = args.store.load(&args.store.overrides())?;
    crate::telemetry::init(&config.log);
    let bad_input = |message: String| CliError {
        exit_code: 2,
        message,
    };
    let text = if args.file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| bad_input(format!("--file -: {e}")))?
    } else {
        std::fs::read_to_string(&args.file)
            .map_err(|e| bad_input(format!("--file {}: {e}", args.file.display())))?
    };
    let mut request: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)
        .map_err(|e| bad_input(format!("--file: not a JSON object: {e}")))?;
    // The operator's own tool may set the operator-only settings alongside the metadata.
    let settings = ClientSettings::parse(ClientSettings::take_from(&mut request))
        .map_err(|e| bad_input(format!("{}: {}", e.error, e.error_description)))?;
    if let Some(tier) = &settings.rate_limit_tier
        && !config.rate_limits.defines_tier(tier)
    {
        return Err(bad_input(format!(
            "rate_limit_tier {tier} is not a tier of the configuration (rate_limits.tiers)"
        )));
    }
    let store = open_store(&config).await?;
    let rng = SystemRng::new();
    let registered = registry::create_client(
        store.as_ref(),
        &rng,
        &SystemClock,
        "cli",
        crate::registry::NewClient {
            request,
            profile: args.profile,
            settings,
            registration_token: None,
        },
    )
    .await
    .map_err(|e| match e {
        registry::RegistryError::Invalid(oauth) => {
            bad_input(format!("{}: {}", oauth.error, oauth.error_description))
        }
        other => CliError {
            exit_code: 1,
            message: other.to_string(),
        },
    })?;
    let mut shown = describe(&registered.client);
    if let Some(secret) = &registered.secret {
        shown.insert("client_secret".into(), secret.expose().into());
        shown.insert("client_secret_expires_at".into(), 0.into());
    }
    let json = serde_json::to_string_pretty(&shown).map_err(|e| CliError {
        exit_code: 1,
        message: e.to_string(),
    })?;
    println!("{json}");
    Ok(())
}

async fn list_clients(args: StoreArgs) -> Result<(), CliError> {
    let config = args.load(&args.overrides())?;
    crate::telemetry::init(&config.log);
    let store = open_store(&config).await?;
    let clients = registry::list_clients(store.as_ref())
        .await
        .map_err(|e| CliError {
            exit_code: 1,
            message: e.to_string(),
        })?;
    println!(
        "{:<22}  {:<21}  {:<27}  NAME",
        "CLIENT_ID", "PROFILE", "AUTH_METHOD"
    );
    for client in clients {
        let text = |name: &str| {
            client
                .metadata
                .get(name)
                .and_then(serde_json::Value::as_str)
                .unwrap_or("-")
                .to_owned()
        };
        println!(
            "{:<22}  {:<21}  {:<27}  {}",
            client.client_id,
            client.profile.as_str(),
            text("token_endpoint_auth_method"),
            text("client_name")
        );
    }
    Ok(())
}

async fn open_store(config: &Config) -> Result<Arc<dyn portcullis_core::store::Store>, CliError> {
    // A command needs a connection or two, not a server's pool.
    let store = serve::open_store(config, 2).await?;
    OPENED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push((store.clone(), config.clone()));
    Ok(store)
}

fn rfc3339(at: time::OffsetDateTime) -> String {
    at.replace_nanosecond(0)
        .unwrap_or(at)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_well_formed_and_documents_every_option() {
        Cli::command().debug_assert();
        let help = Cli::command()
            .find_subcommand_mut("serve")
            .unwrap()
            .render_long_help()
            .to_string();
        for option in [
            "--config",
            "--data-dir",
            "--database-url",
            "--listen",
            "--mtls-listen",
            "--issuer",
        ] {
            assert!(help.contains(option), "serve --help lacks {option}");
        }
    }

    #[test]
    fn parses_keys_rotate_with_algorithms_and_refuses_rs256() {
        let cli = Cli::try_parse_from([
            "portcullis",
            "keys",
            "rotate",
            "--alg",
            "ES256",
            "--alg",
            "EdDSA",
        ])
        .unwrap();
        let Command::Keys {
            command: KeysCommand::Rotate(args),
        } = cli.command
        else {
            panic!("not keys rotate")
        };
        assert_eq!(args.algs, [SigningAlg::Es256, SigningAlg::EdDsa]);
        assert!(Cli::try_parse_from(["portcullis", "keys", "rotate", "--alg", "RS256"]).is_err());
    }
}
