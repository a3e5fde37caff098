//! `portcullis audit verify`: walks every hash chain of the security-event trail and every seal,
//! with the database and the key-encryption key of the configuration `serve` uses, prints a line
//! per chain, and on the first break says what and where and exits with code 3.

use clap::Subcommand;
use portcullis_core::audit::seal::SealKey;
use portcullis_core::store::ChainInfo;
use portcullis_core::{Rng, SystemRng};

use super::{CliError, StoreArgs, open_store, rfc3339};
use crate::audit::{self, VerifyError};
use crate::keys;
use crate::serve::StartError;

/// The exit code of a broken trail (1 stays "could not check").
pub const BROKEN: u8 = 3;

/// The audit commands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the tamper evidence of the security-event trail: each replica's hash chain (every
    /// event's hash, the links between events and that positions run 1, 2, 3… without gaps) and
    /// the seals of the chain heads (their MACs under the key derived from the KEK, that each
    /// names the event at its position, and the links from seal to seal). Prints one line per
    /// chain: its events, the position it is sealed up to and the unsealed tail. On the first
    /// break prints the chain, the position and the check that failed and exits with 3; an
    /// edited, inserted or removed event is found even when the attacker recomputed the hashes,
    /// because a seal cannot be made without the KEK.
    ///
    /// Limit: the unsealed tail of a chain (events after its last seal, at most
    /// audit.seal_interval_secs worth, 60 s by default) can be removed from the end unseen until
    /// the next seal; a replica seals once more when it shuts down gracefully.
    Verify(StoreArgs),
}

/// Runs an audit command.
///
/// # Errors
/// [`CliError`]: exit code 3 when the trail is broken, 2 for configuration problems, 1 when the
/// trail could not be read.
pub async fn run(command: AuditCommand) -> Result<(), CliError> {
    let AuditCommand::Verify(args) = command;
    let config = args.load(&args.overrides())?;
    crate::telemetry::init(&config.log);
    let store = open_store(&config).await?;
    let rng: &dyn Rng = &SystemRng::new();
    // The KEK the servers use: a missing one is an error, never a reason to make one up.
    let kek = keys::load_kek(&config, rng, keys::MissingKek::Refuse).map_err(StartError::from)?;
    let key = SealKey::from_kek(&kek);
    let result = audit::verify(store.as_ref(), &key, |info, report| {
        println!(
            "chain {} ({}): {} events, sealed up to {}, unsealed tail {}",
            report.chain_id,
            describe(info),
            report.events,
            report
                .sealed_up_to
                .map_or_else(|| "nothing".to_owned(), |s| s.to_string()),
            report.unsealed_tail(),
        );
    })
    .await;
    match result {
        Ok(trail) => {
            if trail.unchained.count > 0 {
                println!(
                    "{} events outside the chains, written before chaining began (up to event {})",
                    trail.unchained.count,
                    trail
                        .unchained
                        .last_seq
                        .map_or_else(|| "-".to_owned(), |s| s.to_string()),
                );
            }
            let events: u64 = trail.chains.iter().map(|(_, r)| r.events).sum();
            println!(
                "audit trail verified: {} chains, {events} chained events",
                trail.chains.len()
            );
            Ok(())
        }
        Err(VerifyError::Broken(found)) => Err(CliError {
            exit_code: BROKEN,
            message: format!("audit trail broken: {found}"),
        }),
        Err(VerifyError::Store(e)) => Err(CliError {
            exit_code: 1,
            message: format!("cannot read the audit trail: {e}"),
        }),
    }
}

fn describe(info: &ChainInfo) -> String {
    format!(
        "{}, started {}",
        info.host.as_deref().unwrap_or("unknown host"),
        info.started_at.map_or_else(|| "-".to_owned(), rfc3339)
    )
}
