//! `portcullis users create|enrol-totp|list`: the operator's tool for customer accounts, against
//! the store a running server uses. Passwords come only on standard input (never as arguments,
//! which other users of the machine can read), and TOTP secrets leave only once, inside the
//! `otpauth://` URI that `enrol-totp` prints.

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};
use portcullis_core::keys::{KeyEncryptionKey, KeyState, classify};
use portcullis_core::password::{MAX_PASSWORD_BYTES, PasswordParams};
use portcullis_core::store::Store;
use portcullis_core::user::User;
use portcullis_core::{Clock, SystemClock, SystemRng};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::{CliError, StoreArgs, open_store};
use crate::config::Config;
use crate::keys::{self, KeyServiceError, KeyTiming};
use crate::passwords::PasswordService;
use crate::serve::StartError;
use crate::users::{self, UserError};

/// The user commands.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user. The password is read from standard input (one line, --password-stdin).
    /// Prints the user as JSON; the password hash is never shown.
    Create(CreateUserArgs),
    /// Enrol a new TOTP second factor for a user, replacing any earlier one. Prints the
    /// otpauth:// URI for the user's authenticator app once: it holds the secret, which is
    /// stored only encrypted under the key-encryption key.
    EnrolTotp(EnrolTotpArgs),
    /// List the users.
    List(StoreArgs),
}

/// Options of `users create`.
#[derive(Debug, Clone, Args)]
pub struct CreateUserArgs {
    #[command(flatten)]
    /// Store options.
    pub store: StoreArgs,
    /// Login name: 1 to 64 letters, digits, '.', '-', '_', '@' or '+', stored in lower case.
    #[arg(long, value_name = "NAME")]
    pub username: String,
    /// Read the password from standard input: the first line, without its line break.
    /// Required: a password is never taken as an argument.
    #[arg(long, required = true)]
    pub password_stdin: bool,
    /// OIDC standard claims (Core §5.1) as a JSON object, e.g. {"name": "…", "email": "…",
    /// "email_verified": true}. `sub` is the user's id and cannot be set.
    #[arg(long, value_name = "FILE")]
    pub claims: Option<PathBuf>,
}

/// Options of `users enrol-totp`.
#[derive(Debug, Clone, Args)]
pub struct EnrolTotpArgs {
    #[command(flatten)]
    /// Store options.
    pub store: StoreArgs,
    /// The user.
    #[arg(long, value_name = "NAME")]
    pub username: String,
    /// The issuer the authenticator app shows beside the code. Default: the host of the
    /// configured issuer, else "Portcullis".
    #[arg(long, value_name = "LABEL")]
    pub issuer_label: Option<String>,
}

/// The actor recorded in the security events of these commands.
const ACTOR: &str = "cli";

/// Users per page when listing.
const PAGE: u32 = 500;

/// Runs a `users` command.
pub(super) async fn run(command: UsersCommand) -> Result<(), CliError> {
    match command {
        UsersCommand::Create(args) => create(args).await,
        UsersCommand::EnrolTotp(args) => enrol_totp(args).await,
        UsersCommand::List(args) => list(args).await,
    }
}

fn bad_input(message: String) -> CliError {
    CliError {
        exit_code: 2,
        message,
    }
}

fn failure(message: String) -> CliError {
    CliError {
        exit_code: 1,
        message,
    }
}

/// Bad input exits 2 naming the rule; an unknown or taken username and store failures exit 1.
fn user_error(username: &str, error: UserError) -> CliError {
    match error {
        UserError::Invalid(oauth) => {
            bad_input(format!("{}: {}", oauth.error, oauth.error_description))
        }
        UserError::NotFound => failure(format!("no user named {username:?}")),
        UserError::Conflict => failure(format!(
            "the username {:?} is taken",
            username.to_ascii_lowercase()
        )),
        other @ (UserError::Store(_) | UserError::Unavailable) => failure(other.to_string()),
    }
}

async fn create(args: CreateUserArgs) -> Result<(), CliError> {
    let config = args.store.load(&args.store.overrides())?;
    crate::telemetry::init(&config.log);
    let claims = match &args.claims {
        Some(path) => read_claims(path)?,
        None => Map::new(),
    };
    let password = read_password(std::io::stdin().lock())?;
    let store = open_store(&config).await?;
    let passwords = password_service(&config);
    let user = users::create_user(
        store.as_ref(),
        &passwords,
        &SystemRng::new(),
        &SystemClock,
        ACTOR,
        &args.username,
        password,
        claims,
    )
    .await
    .map_err(|e| user_error(&args.username, e))?;
    let json = serde_json::to_string_pretty(&users::describe(&user))
        .map_err(|e| failure(e.to_string()))?;
    println!("{json}");
    Ok(())
}

async fn enrol_totp(args: EnrolTotpArgs) -> Result<(), CliError> {
    let config = args.store.load(&args.store.overrides())?;
    crate::telemetry::init(&config.log);
    let store = open_store(&config).await?;
    let rng = SystemRng::new();
    // The secret must be sealed under the KEK the servers use: never invent one.
    let kek = keys::load_kek(&config, &rng, keys::MissingKek::Refuse).map_err(StartError::from)?;
    check_kek_opens_keys_in_use(store.as_ref(), &kek, &SystemClock, &config).await?;
    let issuer_label = args.issuer_label.clone().unwrap_or_else(|| {
        config
            .issuer
            .as_deref()
            .and_then(|issuer| url::Url::parse(issuer).ok())
            .and_then(|issuer| issuer.host_str().map(str::to_owned))
            .unwrap_or_else(|| "Portcullis".to_owned())
    });
    let user = users::find_user(store.as_ref(), &args.username)
        .await
        .map_err(|e| user_error(&args.username, e))?;
    let (user, uri) = users::enrol_totp(
        store.as_ref(),
        &kek,
        &rng,
        &SystemClock,
        ACTOR,
        user.id,
        &issuer_label,
    )
    .await
    .map_err(|e| user_error(&args.username, e))?;
    eprintln!(
        "TOTP enrolled for {}. Give them this URI once (e.g. as a QR code); it holds the secret:",
        user.username
    );
    println!("{}", uri.as_str());
    Ok(())
}

/// As `keys rotate` does: a KEK that does not open the signing key in use is not the one the
/// servers have, and a TOTP secret sealed under it could never be checked.
async fn check_kek_opens_keys_in_use(
    store: &dyn Store,
    kek: &KeyEncryptionKey,
    clock: &dyn Clock,
    config: &Config,
) -> Result<(), CliError> {
    let existing = store
        .signing_keys()
        .list()
        .await
        .map_err(|e| StartError::from(KeyServiceError::from(e)))?;
    let timing = KeyTiming::from_config(&config.keys);
    let in_use = classify(&existing, clock.now(), timing.retention)
        .into_iter()
        .find(|(_, state)| matches!(state, KeyState::Next | KeyState::Active));
    if let Some((key, _)) = in_use {
        key.open(kek)
            .map_err(|e| StartError::from(KeyServiceError::from(e)))?;
    }
    Ok(())
}

async fn list(args: StoreArgs) -> Result<(), CliError> {
    let config = args.load(&args.overrides())?;
    crate::telemetry::init(&config.log);
    let store = open_store(&config).await?;
    println!(
        "{:<36}  {:<32}  {:<8}  {:<4}  NAME",
        "ID", "USERNAME", "STATE", "TOTP"
    );
    let mut after = None;
    loop {
        let page = users::list_users(store.as_ref(), after.as_ref(), PAGE)
            .await
            .map_err(|e| failure(e.to_string()))?;
        for user in &page {
            println!("{}", list_row(user));
        }
        match page.last() {
            Some(last) if page.len() >= PAGE as usize => after = Some(last.username.clone()),
            _ => return Ok(()),
        }
    }
}

fn list_row(user: &User) -> String {
    format!(
        "{:<36}  {:<32}  {:<8}  {:<4}  {}",
        user.id.hyphenated(),
        user.username.as_str(),
        if user.disabled_at.is_some() {
            "disabled"
        } else {
            "active"
        },
        if user.totp_secret_encrypted.is_some() {
            "yes"
        } else {
            "no"
        },
        user.claims
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("-")
    )
}

fn password_service(config: &Config) -> PasswordService {
    PasswordService::new(
        config.passwords.max_concurrent_hashes,
        PasswordParams::default(),
        Arc::new(SystemRng::new()),
    )
}

fn read_claims(path: &std::path::Path) -> Result<Map<String, Value>, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| bad_input(format!("--claims {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        bad_input(format!(
            "--claims {}: not a JSON object: {e}",
            path.display()
        ))
    })
}

/// The password: the first line of `input` without its line break. The buffer is allocated once
/// at its largest size (so no copy is left behind by a reallocation) and zeroed when dropped.
fn read_password(input: impl BufRead) -> Result<Zeroizing<String>, CliError> {
    // Room for the longest accepted password and a CRLF; anything longer fails the length check.
    let limit = MAX_PASSWORD_BYTES + 2;
    let mut line = Zeroizing::new(String::with_capacity(limit));
    input
        .take(limit as u64)
        .read_line(&mut line)
        .map_err(|e| bad_input(format!("--password-stdin: cannot read the password: {e}")))?;
    if line.ends_with('\n') {
        line.pop();
        if line.ends_with('\r') {
            line.pop();
        }
    }
    if line.is_empty() {
        return Err(bad_input(
            "--password-stdin: no password on standard input".to_owned(),
        ));
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::super::{Cli, Command};
    use super::*;

    #[test]
    fn users_create_requires_the_password_on_standard_input() {
        let cli = Cli::try_parse_from([
            "portcullis",
            "users",
            "create",
            "--username",
            "alice",
            "--password-stdin",
            "--claims",
            "alice.json",
        ])
        .unwrap();
        let Command::Users {
            command: UsersCommand::Create(args),
        } = cli.command
        else {
            panic!("not users create")
        };
        assert_eq!(args.username, "alice");
        assert!(args.password_stdin);
        assert_eq!(args.claims, Some(PathBuf::from("alice.json")));
        let err = Cli::try_parse_from(["portcullis", "users", "create", "--username", "alice"])
            .unwrap_err();
        assert!(err.to_string().contains("--password-stdin"), "{err}");
        assert!(
            Cli::try_parse_from([
                "portcullis",
                "users",
                "create",
                "--username",
                "alice",
                "--password",
                "hunter22"
            ])
            .is_err(),
            "no way to give a password as an argument"
        );
    }

    #[test]
    fn the_password_is_the_first_line_without_its_line_break() {
        let read = |input: &[u8]| read_password(input).map(|p| p.as_str().to_owned());
        assert_eq!(read(b"correct horse\n").unwrap(), "correct horse");
        assert_eq!(read(b"correct horse\r\n").unwrap(), "correct horse");
        assert_eq!(read(b"correct horse").unwrap(), "correct horse");
        assert_eq!(read(b" spaced \nsecond line\n").unwrap(), " spaced ");
        for empty in [&b""[..], b"\n", b"\r\n"] {
            let err = read(empty).unwrap_err();
            assert_eq!(err.exit_code, 2);
            assert!(err.message.contains("no password"), "{}", err.message);
        }
        assert_eq!(read(b"\xff\xfe\n").unwrap_err().exit_code, 2);
        // Overlong input is cut off just past the limit, so the length check refuses it.
        let long = "x".repeat(MAX_PASSWORD_BYTES * 2);
        assert_eq!(read(long.as_bytes()).unwrap().len(), MAX_PASSWORD_BYTES + 2);
    }

    #[test]
    fn errors_map_to_exit_codes() {
        let invalid = UserError::Invalid(portcullis_core::OAuthError::new(
            portcullis_core::ErrorCode::InvalidRequest,
            "claims.sub cannot be set",
        ));
        let err = user_error("alice", invalid);
        assert_eq!(err.exit_code, 2);
        assert_eq!(err.message, "invalid_request: claims.sub cannot be set");
        let err = user_error("Alice", UserError::Conflict);
        assert_eq!(
            (err.exit_code, err.message.as_str()),
            (1, "the username \"alice\" is taken")
        );
        let err = user_error("bob", UserError::NotFound);
        assert_eq!(
            (err.exit_code, err.message.as_str()),
            (1, "no user named \"bob\"")
        );
    }
}
