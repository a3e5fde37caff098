//! The tamper-evident audit trail on a running server and in `portcullis audit verify`: sealing
//! this replica's chain head ([`Sealer`], on a timer from [`crate::housekeeping`] and once more
//! at graceful shutdown), and walking every chain and seal in the database ([`verify`]). The
//! hashing and MAC rules are in `portcullis_core::audit`.

use std::sync::Arc;

use portcullis_core::Clock;
use portcullis_core::audit::seal::{Seal, SealKey};
use portcullis_core::audit::verify::{Break, ChainReport, ChainVerifier, Check};
use portcullis_core::keys::KeyEncryptionKey;
use portcullis_core::store::{ChainInfo, Store, StoreError, Unchained};
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// The longest configurable seal interval: a day.
pub const MAX_SEAL_INTERVAL_SECS: u64 = 86_400;

/// How many events verification reads per query.
const PAGE: u32 = 1000;

/// The audit trail's settings (`[audit]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// How often each replica seals its chain's head, in seconds (and once more at graceful
    /// shutdown). Events after the last seal could be removed from the end of a chain unseen
    /// until the next one, so this bounds what can go missing undetected.
    pub seal_interval_secs: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            seal_interval_secs: 60,
        }
    }
}

impl AuditConfig {
    /// Checks the interval's bounds.
    ///
    /// # Errors
    /// [`ConfigError`] naming `audit.seal_interval_secs`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_SEAL_INTERVAL_SECS).contains(&self.seal_interval_secs) {
            return Err(ConfigError::new(
                "audit.seal_interval_secs",
                format!("must be 1 to {MAX_SEAL_INTERVAL_SECS}"),
            ));
        }
        Ok(())
    }
}

/// Seals this replica's chain head. One per process, shared (clones share it): it remembers the
/// last seal it wrote and links the next one to that, not to whatever the database says is the
/// newest, so that deleting the newest seal (or adding one) between two ticks cannot be papered
/// over by the next seal; verification then finds the broken seal link.
#[derive(Clone)]
pub struct Sealer {
    store: Arc<dyn Store>,
    key: Arc<SealKey>,
    clock: Arc<dyn Clock>,
    /// The last seal this sealer wrote; the lock also makes one seal at a time.
    last: Arc<tokio::sync::Mutex<Option<Seal>>>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").finish_non_exhaustive()
    }
}

impl Sealer {
    /// A sealer of `store`'s chain under the seal key derived from `kek`.
    #[must_use]
    pub fn new(store: Arc<dyn Store>, kek: &KeyEncryptionKey, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            key: Arc::new(SealKey::from_kek(kek)),
            clock,
            last: Arc::new(tokio::sync::Mutex::new(None)),
        }
    }

    /// Seals the chain's head if it moved since its last seal; the seal written, if any.
    ///
    /// The chain is this store instance's own, so every seal on it is this sealer's: when the
    /// database's newest seal is not the one remembered (deleted, or one added), that is logged
    /// as an error and the new seal still links to the remembered one, leaving the break for
    /// `portcullis audit verify` to report.
    ///
    /// # Errors
    /// [`StoreError`] when the last seal cannot be read or the new one written.
    pub async fn seal(&self) -> Result<Option<Seal>, StoreError> {
        let mut remembered = self.last.lock().await;
        let events = self.store.events();
        let Some(head) = events.head() else {
            return Ok(None);
        };
        let stored = events.last_seal(head.chain_id).await?;
        let mine = remembered.as_ref().filter(|s| s.chain_id == head.chain_id);
        let agrees = match (mine, &stored) {
            (Some(m), Some(s)) => m.chain_seq == s.chain_seq && m.mac == s.mac,
            (None, None) => true,
            _ => false,
        };
        if !agrees {
            tracing::error!(
                chain_id = %head.chain_id,
                remembered = mine.map(|s| s.chain_seq),
                stored = stored.as_ref().map(|s| s.chain_seq),
                "the newest audit seal in the database is not the one this replica wrote: seals were removed or added; the next seal links to this replica's own, and `portcullis audit verify` will report the break"
            );
        }
        let previous = mine.copied();
        if previous
            .as_ref()
            .is_some_and(|s| s.chain_seq >= head.chain_seq)
        {
            return Ok(None);
        }
        let seal = self.key.seal(&head, self.clock.now(), previous.as_ref());
        match events.add_seal(&seal).await {
            Ok(()) => {
                *remembered = Some(seal);
                Ok(Some(seal))
            }
            // A seal at this position that this sealer did not write: logged above, left for
            // verification.
            Err(StoreError::Conflict(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// What verification found in the whole trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailReport {
    /// Each chain, in order of its start, with what the chains table says of it.
    pub chains: Vec<(ChainInfo, ChainReport)>,
    /// The events outside every chain (written before chaining began).
    pub unchained: Unchained,
}

/// Why verification did not finish.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The trail is broken: the first break found.
    #[error("{0}")]
    Broken(Break),
    /// The database could not be read.
    #[error("cannot read the audit trail: {0}")]
    Store(#[from] StoreError),
}

/// Walks every chain in `chain_seq` order, checking each event's hash, the links and contiguity,
/// and every seal's MAC (under `key`), head hash and link to the seal before; then that no event
/// outside the chains was written after chaining began. `progress` is called with each chain's
/// report as it is done.
///
/// # Errors
/// [`VerifyError::Broken`] with the first break; [`VerifyError::Store`] when reading fails.
pub async fn verify(
    store: &dyn Store,
    key: &SealKey,
    mut progress: impl FnMut(&ChainInfo, &ChainReport),
) -> Result<TrailReport, VerifyError> {
    let events = store.events();
    // First the rows no chain walk would see: a forged event whose chain_seq is empty names a
    // chain but is never read in it.
    let unchained = events.unchained().await?;
    if let Some(seq) = unchained.damaged_seq {
        return Err(VerifyError::Broken(Break {
            chain_id: None,
            chain_seq: None,
            seq: Some(seq),
            check: Check::ChainColumns,
            detail: format!(
                "event {seq}'s chain columns are partly empty or not digests: the row was changed or inserted"
            ),
        }));
    }
    let mut chains = Vec::new();
    for info in events.chains().await? {
        if !info.registered {
            return Err(VerifyError::Broken(Break {
                chain_id: Some(info.chain_id),
                chain_seq: None,
                seq: None,
                check: Check::UnregisteredChain,
                detail: "events or seals name a chain the chains table does not have: its registration was removed, or they were made up".into(),
            }));
        }
        let mut walk = ChainVerifier::new(key, info.chain_id, events.seals(info.chain_id).await?);
        let mut after = (0, 0);
        loop {
            let page = events.chain_events(info.chain_id, after, PAGE).await?;
            for recorded in &page {
                // The query selects by chain, so a row without its link has damaged columns.
                let Some(link) = &recorded.link else {
                    return Err(VerifyError::Broken(Break {
                        chain_id: Some(info.chain_id),
                        chain_seq: None,
                        seq: Some(recorded.seq),
                        check: Check::ChainColumns,
                        detail: format!(
                            "event {} names this chain but its chain columns are partly empty or not digests: the row was changed",
                            recorded.seq
                        ),
                    }));
                };
                walk.row(recorded.seq, &recorded.event, link)
                    .map_err(VerifyError::Broken)?;
                after = (link.chain_seq, recorded.seq);
            }
            if page.len() < PAGE as usize {
                break;
            }
        }
        let report = walk.finish().map_err(VerifyError::Broken)?;
        progress(&info, &report);
        chains.push((info, report));
    }
    if let (Some(last), Some(first_chained)) = (unchained.last_seq, unchained.first_chained_seq)
        && last > first_chained
    {
        return Err(VerifyError::Broken(Break {
            chain_id: None,
            chain_seq: None,
            seq: Some(last),
            check: Check::Unchained,
            detail: format!(
                "event {last} is outside every chain but was written after chaining began (event {first_chained}): it was inserted"
            ),
        }));
    }
    check_baseline(&unchained)?;
    Ok(TrailReport { chains, unchained })
}

/// The events outside the chains must be exactly those there when chaining began: as many, and
/// all within `1..=last_seq` of the baseline. A row inserted later outside the chains (with a low
/// or negative `seq`, or into a gap) changes the count or falls outside the range.
fn check_baseline(unchained: &Unchained) -> Result<(), VerifyError> {
    let broken = |seq: Option<i64>, detail: String| {
        Err(VerifyError::Broken(Break {
            chain_id: None,
            chain_seq: None,
            seq,
            check: Check::Unchained,
            detail,
        }))
    };
    let Some((last_seq, count)) = unchained.baseline else {
        return broken(
            None,
            "the record of the events before chaining (audit_baseline) is missing or doubled"
                .into(),
        );
    };
    if unchained.count != count {
        return broken(
            unchained.last_seq,
            format!(
                "{} events are outside every chain, but {count} were when chaining began: events were inserted or deleted",
                unchained.count
            ),
        );
    }
    if let Some(first) = unchained.first_seq
        && first < 1
    {
        return broken(
            Some(first),
            format!(
                "event {first} is outside every chain and before the first event: it was inserted"
            ),
        );
    }
    if let Some(last) = unchained.last_seq
        && last > last_seq
    {
        return broken(
            Some(last),
            format!(
                "event {last} is outside every chain but after chaining began (event {last_seq}): it was inserted"
            ),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::audit::SecurityEvent;
    use portcullis_core::{ManualClock, SeededRng};
    use time::OffsetDateTime;

    async fn store(dir: &tempfile::TempDir) -> Arc<dyn Store> {
        portcullis_store::connect_and_migrate(
            &format!("sqlite:{}?mode=rwc", dir.path().join("t.db").display()),
            &portcullis_store::PoolOptions::default(),
        )
        .await
        .unwrap()
    }

    fn event(n: i64) -> SecurityEvent {
        SecurityEvent::new(
            OffsetDateTime::from_unix_timestamp(1_800_000_000 + n).unwrap(),
            "system",
            "test.event",
            Some(n.to_string()),
            serde_json::Map::new(),
        )
    }

    #[test]
    fn the_seal_interval_is_configured_in_audit_and_bounded() {
        assert_eq!(AuditConfig::default().seal_interval_secs, 60);
        for bad in [0, MAX_SEAL_INTERVAL_SECS + 1] {
            let error = AuditConfig {
                seal_interval_secs: bad,
            }
            .validate()
            .unwrap_err();
            assert_eq!(error.key, "audit.seal_interval_secs");
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("portcullis.toml");
        let overrides = crate::config::Overrides::default();
        std::fs::write(&file, "[audit]\nseal_interval_secs = 5\n").unwrap();
        let config = crate::config::Config::load(Some(&file), &overrides).unwrap();
        assert_eq!(config.audit.seal_interval_secs, 5);
        std::fs::write(&file, "[audit]\nseal_interval_secs = 0\n").unwrap();
        let error = crate::config::Config::load(Some(&file), &overrides).unwrap_err();
        assert_eq!(error.key, "audit.seal_interval_secs");
        std::fs::write(&file, "[audit]\nseal_every = 5\n").unwrap();
        assert!(crate::config::Config::load(Some(&file), &overrides).is_err());
    }

    #[tokio::test]
    async fn seals_follow_the_head_and_a_sealed_trail_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let kek = KeyEncryptionKey::generate(&SeededRng::new(1)).unwrap();
        let clock = Arc::new(ManualClock::new(
            OffsetDateTime::from_unix_timestamp(1_800_000_100).unwrap(),
        ));
        let sealer = Sealer::new(store.clone(), &kek, clock);
        // Nothing to seal before the first event, nor twice at one head.
        assert_eq!(sealer.seal().await.unwrap(), None);
        for n in 1..=3 {
            store.events().append(&event(n)).await.unwrap();
        }
        let first = sealer.seal().await.unwrap().unwrap();
        assert_eq!(first.chain_seq, 3);
        assert_eq!(sealer.seal().await.unwrap(), None);
        store.events().append(&event(4)).await.unwrap();
        let second = sealer.seal().await.unwrap().unwrap();
        assert_eq!((second.chain_seq, second.prev_mac), (4, first.mac));
        store.events().append(&event(5)).await.unwrap();

        let key = SealKey::from_kek(&kek);
        let mut seen = 0;
        let report = verify(store.as_ref(), &key, |_, _| seen += 1)
            .await
            .unwrap();
        assert_eq!(seen, 1);
        let (info, chain) = &report.chains[0];
        assert!(info.registered);
        assert!(info.host.as_deref().is_some_and(|h| h.contains("pid")));
        assert_eq!(
            (chain.events, chain.sealed_up_to, chain.unsealed_tail()),
            (5, Some(4), 1)
        );
        // Under another KEK every seal is a forgery.
        let other = SealKey::from_kek(&KeyEncryptionKey::generate(&SeededRng::new(2)).unwrap());
        let Err(VerifyError::Broken(found)) = verify(store.as_ref(), &other, |_, _| {}).await
        else {
            panic!("seals under another key must not verify")
        };
        assert_eq!(found.check, Check::SealMac);
    }

    #[tokio::test]
    async fn an_event_inserted_outside_the_chains_is_found_wherever_its_seq() {
        let kek = KeyEncryptionKey::generate(&SeededRng::new(1)).unwrap();
        let key = SealKey::from_kek(&kek);
        // Below the first event, at 0, and after the chained ones (a fresh trail has no events
        // from before chaining, so any unchained one is forged).
        for forged_seq in [-5_i64, 0, 1000] {
            let (_dir, store, mut db) = three_verified_events(&key).await;
            sqlx::query(
                "INSERT INTO security_events (seq, occurred_at, actor, action, details) \
                 VALUES (?, 0, 'system', 'forged', '{}')",
            )
            .bind(forged_seq)
            .execute(&mut db)
            .await
            .unwrap();
            let Err(VerifyError::Broken(found)) = verify(store.as_ref(), &key, |_, _| {}).await
            else {
                panic!("an event inserted outside the chains at {forged_seq} must be found")
            };
            assert_eq!(found.check, Check::Unchained, "{forged_seq}: {found:?}");
        }
    }

    #[tokio::test]
    async fn a_deleted_newest_seal_is_not_papered_over_by_the_next_seal() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let kek = KeyEncryptionKey::generate(&SeededRng::new(1)).unwrap();
        let key = SealKey::from_kek(&kek);
        let clock = Arc::new(ManualClock::new(
            OffsetDateTime::from_unix_timestamp(1_800_000_100).unwrap(),
        ));
        let sealer = Sealer::new(store.clone(), &kek, clock);
        // Clones share what the sealer remembers.
        let timer = sealer.clone();
        store.events().append(&event(1)).await.unwrap();
        let first = sealer.seal().await.unwrap().unwrap();
        store.events().append(&event(2)).await.unwrap();
        let second = timer.seal().await.unwrap().unwrap();
        assert_eq!(second.prev_mac, first.mac);
        verify(store.as_ref(), &key, |_, _| {}).await.unwrap();

        // Someone with write access deletes the newest seal (and the events after the first
        // seal would then go unseen) before the next tick.
        let mut db = sqlx_connect(&dir).await;
        for statement in [
            "DROP TRIGGER audit_seals_no_delete".to_owned(),
            format!(
                "DELETE FROM audit_seals WHERE chain_seq = {}",
                second.chain_seq
            ),
        ] {
            sqlx::query(&statement).execute(&mut db).await.unwrap();
        }
        store.events().append(&event(3)).await.unwrap();
        let third = sealer.seal().await.unwrap().unwrap();
        // The next seal links to the one this replica wrote, not to the database's newest...
        assert_eq!(third.prev_mac, second.mac);
        // ...so verification finds the gap.
        let Err(VerifyError::Broken(found)) = verify(store.as_ref(), &key, |_, _| {}).await else {
            panic!("a deleted seal must be found")
        };
        assert_eq!(found.check, Check::SealLink, "{found:?}");
    }

    #[tokio::test]
    async fn damaged_chain_columns_are_a_break_and_the_trail_still_lists() {
        let kek = KeyEncryptionKey::generate(&SeededRng::new(1)).unwrap();
        let key = SealKey::from_kek(&kek);
        // A chained row with its hash emptied, one with a short digest, and a forged row that
        // names the chain without a position (no chain walk would read it).
        let damage = [
            "DROP TRIGGER security_events_no_update; UPDATE security_events SET hash = NULL WHERE seq = 2",
            "DROP TRIGGER security_events_no_update; UPDATE security_events SET prev_hash = x'00ff' WHERE seq = 2",
            "INSERT INTO security_events (seq, occurred_at, actor, action, details, chain_id) \
             SELECT 99, 0, 'system', 'forged', '{}', chain_id FROM audit_chains",
        ];
        for (i, statement) in damage.iter().enumerate() {
            let (_dir, store, mut db) = three_verified_events(&key).await;
            sqlx::raw_sql(statement).execute(&mut db).await.unwrap();
            let Err(VerifyError::Broken(found)) = verify(store.as_ref(), &key, |_, _| {}).await
            else {
                panic!("damage {i} must be a break, not a read failure")
            };
            assert_eq!(found.check, Check::ChainColumns, "{i}: {found:?}");
            let damaged = if i == 2 { 99 } else { 2 };
            assert_eq!(found.seq, Some(damaged), "{i}");
            // The admin listing and the export still read the whole trail.
            let listed = store.events().list(0, 100).await.unwrap();
            let row = listed.iter().find(|e| e.seq == damaged).unwrap();
            assert!(row.link.is_none(), "{i}");
            assert_eq!(listed.len(), if i == 2 { 4 } else { 3 });
        }
    }

    /// A fresh trail of three chained events that verifies, and a raw connection to its
    /// database for tampering.
    async fn three_verified_events(
        key: &SealKey,
    ) -> (tempfile::TempDir, Arc<dyn Store>, sqlx::SqliteConnection) {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        for n in 1..=3 {
            store.events().append(&event(n)).await.unwrap();
        }
        verify(store.as_ref(), key, |_, _| {}).await.unwrap();
        let db = sqlx_connect(&dir).await;
        (dir, store, db)
    }

    async fn sqlx_connect(dir: &tempfile::TempDir) -> sqlx::SqliteConnection {
        use sqlx::Connection;
        sqlx::SqliteConnection::connect(&format!("sqlite:{}", dir.path().join("t.db").display()))
            .await
            .unwrap()
    }
}
