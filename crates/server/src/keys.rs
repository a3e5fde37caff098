//! The signing-key service: the key-encryption key, bootstrapping the first keys, rotation, and a
//! per-replica cache of the keys that every replica refreshes from the database.
//!
//! The cache is an immutable snapshot behind an `ArcSwap`, so readers (`/jwks`, every signature)
//! take no lock. When the snapshot is older than `keys.refresh_interval_secs` by the server's
//! clock, the next reader reloads it; a mutex makes concurrent readers share one reload. A reload
//! that fails keeps serving the previous snapshot (public keys do not go stale in a way that
//! matters within minutes), and logs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use portcullis_core::keys::{
    KeyEncryptionKey, KeyError, KeyState, RetentionPolicy, StoredSigningKey, classify,
};
use portcullis_core::store::{Store, StoreError};
use portcullis_core::{Clock, Rng};
use portcullis_jose::{Jwks, PreparedJwks, SigningAlg, SigningKey};
use time::{Duration, OffsetDateTime};

use crate::config::{Config, KeysConfig};

/// Why a key operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyServiceError {
    /// The store failed.
    #[error("key store: {0}")]
    Store(#[from] StoreError),
    /// A key could not be generated, encrypted or opened.
    #[error("signing key: {0}")]
    Key(#[from] KeyError),
    /// The KEK could not be loaded.
    #[error("{key}: {message}")]
    Kek {
        /// The configuration key.
        key: &'static str,
        /// What went wrong.
        message: String,
    },
    /// No active key exists for the algorithm.
    #[error("no active {0} signing key")]
    NoActiveKey(SigningAlg),
    /// Key generation ran on a blocking thread that failed.
    #[error("key generation task failed")]
    Task,
}

/// The timing rules of key rotation.
#[derive(Debug, Clone, Copy)]
pub struct KeyTiming {
    /// `Cache-Control: max-age` of `/jwks`.
    pub jwks_max_age: Duration,
    /// How often replicas re-read keys.
    pub refresh_interval: Duration,
    /// How long retired keys stay published.
    pub retention: RetentionPolicy,
}

impl KeyTiming {
    /// From configuration.
    #[must_use]
    pub fn from_config(keys: &KeysConfig) -> Self {
        let secs = |s: u64| Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX));
        Self {
            jwks_max_age: secs(keys.jwks_max_age_secs),
            refresh_interval: secs(keys.refresh_interval_secs),
            retention: RetentionPolicy {
                keep_retired_for: secs(keys.keep_retired_secs),
            },
        }
    }

    /// How long after creation a rotated key may start signing: every replica must have read it
    /// (refresh interval) and every JWKS cache must have expired since (max-age).
    #[must_use]
    pub fn publish_before_use(&self) -> Duration {
        self.jwks_max_age + self.refresh_interval
    }
}

/// Whether a missing development KEK file may be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingKek {
    /// `serve` on a fresh data directory: generate it, with a warning.
    Generate,
    /// `keys rotate`: the keys must be encrypted under the KEK the servers use, so a missing file
    /// is an error rather than a reason to invent a KEK no server has.
    Refuse,
}

/// Loads the KEK: `keys.kek`, else `keys.kek_file`, else `<data_dir>/kek.key`, generated on
/// first use with a warning when `missing` allows it.
///
/// # Errors
/// [`KeyServiceError::Kek`] naming the key whose value is unusable.
pub fn load_kek(
    config: &Config,
    rng: &dyn Rng,
    missing: MissingKek,
) -> Result<KeyEncryptionKey, KeyServiceError> {
    let kek_error = |key: &'static str, message: String| KeyServiceError::Kek { key, message };
    if let Some(secret) = &config.keys.kek {
        return KeyEncryptionKey::from_base64(secret.expose())
            .map_err(|e| kek_error("keys.kek", e.to_string()));
    }
    if let Some(path) = &config.keys.kek_file {
        return read_kek(path).map_err(|m| kek_error("keys.kek_file", m));
    }
    let path = default_kek_path(&config.data_dir);
    if !path.exists() && missing == MissingKek::Refuse {
        return Err(kek_error(
            "keys.kek_file",
            format!(
                "{} does not exist; give the key-encryption key the servers use (keys.kek_file, PORTCULLIS_KEYS__KEK or --data-dir)",
                path.display()
            ),
        ));
    }
    if !path.exists() {
        crate::fs::create_private_dir(&config.data_dir)
            .map_err(|e| kek_error("data_dir", format!("{}: {e}", config.data_dir.display())))?;
        let kek = KeyEncryptionKey::generate(rng)
            .map_err(|e| kek_error("keys.kek_file", e.to_string()))?;
        match crate::fs::write_private(&path, kek.to_base64().as_bytes()) {
            Ok(()) => {
                tracing::warn!(
                    path = %path.display(),
                    "generated a development key-encryption key; in production set keys.kek_file or PORTCULLIS_KEYS__KEK"
                );
                return Ok(kek);
            }
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(kek_error(
                    "keys.kek_file",
                    format!("{}: {e}", path.display()),
                ));
            }
        }
    }
    read_kek(&path).map_err(|m| kek_error("keys.kek_file", m))
}

fn default_kek_path(data_dir: &Path) -> PathBuf {
    data_dir.join("kek.key")
}

fn read_kek(path: &Path) -> Result<KeyEncryptionKey, String> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?,
    );
    KeyEncryptionKey::from_base64(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Checks that `kek` opens the keys in use, before anything is written under it: a KEK that
/// differs from the one the servers use would otherwise add keys no server can open.
///
/// # Errors
/// [`KeyServiceError::Key`] with the reason the key did not open.
fn check_kek(
    existing: &[StoredSigningKey],
    kek: &KeyEncryptionKey,
    now: OffsetDateTime,
    timing: KeyTiming,
) -> Result<(), KeyServiceError> {
    let in_use = classify(existing, now, timing.retention)
        .into_iter()
        .find(|(_, state)| matches!(state, KeyState::Next | KeyState::Active));
    if let Some((key, _)) = in_use {
        key.open(kek)?;
    }
    Ok(())
}

/// A key and its state, for listings.
#[derive(Debug, Clone)]
pub struct KeyListing {
    /// The key.
    pub key: StoredSigningKey,
    /// Its state at the time of listing.
    pub state: KeyState,
}

/// Generates `alg` keys on a blocking thread (RSA generation takes tens of milliseconds).
async fn generate(
    algs: Vec<SigningAlg>,
    rsa_bits: u32,
    kek: Arc<KeyEncryptionKey>,
    rng: Arc<dyn Rng>,
    created_at: OffsetDateTime,
    activates_at: OffsetDateTime,
) -> Result<Vec<(StoredSigningKey, SigningKey)>, KeyServiceError> {
    tokio::task::spawn_blocking(move || {
        algs.into_iter()
            .map(|alg| {
                StoredSigningKey::generate(
                    alg,
                    rsa_bits,
                    &kek,
                    rng.as_ref(),
                    created_at,
                    activates_at,
                )
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|_| KeyServiceError::Task)?
    .map_err(KeyServiceError::from)
}

/// Makes sure every configured algorithm has an active or upcoming key. On an empty store the
/// first keys are active at once: no cache can hold a JWKS without them. Keys added for a newly
/// configured algorithm on an existing installation wait out the publication period.
///
/// # Errors
/// [`KeyServiceError`] if the store or key generation fails.
pub async fn bootstrap(
    store: &dyn Store,
    kek: &Arc<KeyEncryptionKey>,
    rng: &Arc<dyn Rng>,
    clock: &dyn Clock,
    config: &KeysConfig,
) -> Result<Vec<StoredSigningKey>, KeyServiceError> {
    let timing = KeyTiming::from_config(config);
    let now = clock.now();
    let existing = store.signing_keys().list().await?;
    check_kek(&existing, kek, now, timing)?;
    let missing: Vec<SigningAlg> = config
        .algorithms
        .iter()
        .copied()
        .filter(|alg| {
            !classify(&existing, now, timing.retention)
                .iter()
                .any(|(k, s)| k.alg == *alg && matches!(s, KeyState::Active | KeyState::Next))
        })
        .collect();
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let activates_at = if existing.is_empty() {
        now
    } else {
        now + timing.publish_before_use()
    };
    let created = generate(
        missing,
        config.rsa_bits,
        kek.clone(),
        rng.clone(),
        now,
        activates_at,
    )
    .await?;
    let mut added = Vec::new();
    for (stored, _) in created {
        store.signing_keys().add(&stored).await?;
        tracing::info!(kid = %stored.kid, alg = %stored.alg, activates_at = %stored.activates_at, "signing key created");
        added.push(stored);
    }
    Ok(added)
}

/// Adds a new key for each algorithm, published now and signing only after
/// [`KeyTiming::publish_before_use`], and deletes keys that have expired.
///
/// # Errors
/// [`KeyServiceError`] if the store or key generation fails.
pub async fn rotate(
    store: &dyn Store,
    kek: &Arc<KeyEncryptionKey>,
    rng: &Arc<dyn Rng>,
    clock: &dyn Clock,
    config: &KeysConfig,
    algs: &[SigningAlg],
) -> Result<Vec<StoredSigningKey>, KeyServiceError> {
    let timing = KeyTiming::from_config(config);
    let now = clock.now();
    let existing = store.signing_keys().list().await?;
    check_kek(&existing, kek, now, timing)?;
    for (key, state) in classify(&existing, now, timing.retention) {
        if state == KeyState::Expired {
            store.signing_keys().remove(&key.kid).await?;
            tracing::info!(kid = %key.kid, alg = %key.alg, "expired signing key deleted");
        }
    }
    let created = generate(
        algs.to_vec(),
        config.rsa_bits,
        kek.clone(),
        rng.clone(),
        now,
        now + timing.publish_before_use(),
    )
    .await?;
    let mut added = Vec::new();
    for (stored, _) in created {
        store.signing_keys().add(&stored).await?;
        tracing::info!(kid = %stored.kid, alg = %stored.alg, activates_at = %stored.activates_at, "signing key rotated in");
        added.push(stored);
    }
    Ok(added)
}

/// Every key with its state now.
///
/// # Errors
/// [`KeyServiceError::Store`] if the store fails.
pub async fn list(
    store: &dyn Store,
    clock: &dyn Clock,
    config: &KeysConfig,
) -> Result<Vec<KeyListing>, KeyServiceError> {
    let timing = KeyTiming::from_config(config);
    let keys = store.signing_keys().list().await?;
    Ok(classify(&keys, clock.now(), timing.retention)
        .into_iter()
        .map(|(key, state)| KeyListing {
            key: key.clone(),
            state,
        })
        .collect())
}

/// What one replica knows of the keys at one moment.
#[derive(Debug)]
struct Snapshot {
    loaded_at: OffsetDateTime,
    keys: Vec<StoredSigningKey>,
    /// Decrypted private keys of the keys that were next or active when loaded.
    signers: HashMap<String, Arc<SigningKey>>,
}

/// The per-replica key cache.
#[derive(Debug)]
pub struct KeyService {
    store: Arc<dyn Store>,
    kek: Arc<KeyEncryptionKey>,
    clock: Arc<dyn Clock>,
    timing: KeyTiming,
    snapshot: ArcSwap<Snapshot>,
    reload: tokio::sync::Mutex<()>,
    /// The published keys made ready for verification, kept while the published set is the same
    /// (`kid`s are thumbprints, so the same `kid`s are the same keys).
    prepared: ArcSwapOption<PreparedJwks>,
}

impl KeyService {
    /// Loads the keys once; later reads refresh as they go.
    ///
    /// # Errors
    /// [`KeyServiceError`] if the store fails or a key does not open under the KEK.
    pub async fn load(
        store: Arc<dyn Store>,
        kek: Arc<KeyEncryptionKey>,
        clock: Arc<dyn Clock>,
        config: &KeysConfig,
    ) -> Result<Self, KeyServiceError> {
        let timing = KeyTiming::from_config(config);
        let snapshot = Self::read(store.as_ref(), &kek, clock.as_ref(), timing).await?;
        Ok(Self {
            store,
            kek,
            clock,
            timing,
            snapshot: ArcSwap::from_pointee(snapshot),
            reload: tokio::sync::Mutex::new(()),
            prepared: ArcSwapOption::empty(),
        })
    }

    async fn read(
        store: &dyn Store,
        kek: &KeyEncryptionKey,
        clock: &dyn Clock,
        timing: KeyTiming,
    ) -> Result<Snapshot, KeyServiceError> {
        let now = clock.now();
        let keys = store.signing_keys().list().await?;
        let mut signers = HashMap::new();
        for (key, state) in classify(&keys, now, timing.retention) {
            if matches!(state, KeyState::Next | KeyState::Active) {
                signers.insert(key.kid.clone(), Arc::new(key.open(kek)?));
            }
        }
        Ok(Snapshot {
            loaded_at: now,
            keys,
            signers,
        })
    }

    async fn current(&self) -> Arc<Snapshot> {
        let snapshot = self.snapshot.load_full();
        if self.clock.now() < snapshot.loaded_at + self.timing.refresh_interval {
            return snapshot;
        }
        let _guard = self.reload.lock().await;
        // Someone else may have reloaded while we waited.
        let snapshot = self.snapshot.load_full();
        if self.clock.now() < snapshot.loaded_at + self.timing.refresh_interval {
            return snapshot;
        }
        self.read_and_store().await.unwrap_or(snapshot)
    }

    /// Reads the keys and makes them the snapshot; on failure logs and keeps the previous one.
    /// The caller holds the reload lock.
    async fn read_and_store(&self) -> Option<Arc<Snapshot>> {
        match Self::read(
            self.store.as_ref(),
            &self.kek,
            self.clock.as_ref(),
            self.timing,
        )
        .await
        {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                self.snapshot.store(fresh.clone());
                Some(fresh)
            }
            Err(e) => {
                tracing::error!(error = %e, "reloading signing keys failed; serving the previous set");
                None
            }
        }
    }

    /// Reads the keys now, after a change made on this replica (a rotation through the admin API):
    /// its `/jwks` publishes the new keys at once; other replicas see them within
    /// `keys.refresh_interval_secs`, long before they sign.
    pub async fn reload(&self) {
        let _guard = self.reload.lock().await;
        self.read_and_store().await;
    }

    /// The published keys now: next, active and retired ones (SP 5.4.2: `kid`s are unique).
    pub async fn jwks(&self) -> Jwks {
        let snapshot = self.current().await;
        let keys = classify(&snapshot.keys, self.clock.now(), self.timing.retention)
            .into_iter()
            .filter(|(_, state)| state.is_published())
            .map(|(key, _)| key.public_jwk.clone())
            .collect();
        Jwks { keys }
    }

    /// The published keys ready for [`portcullis_jose::verify_jwt_prepared`]: what this server
    /// checks its own access tokens against at its protected endpoints. Made again only when
    /// the published set changes.
    pub async fn prepared_jwks(&self) -> Arc<PreparedJwks> {
        let jwks = self.jwks().await;
        let kids = |set: &Jwks| {
            set.keys
                .iter()
                .map(|k| k.kid().map(str::to_owned))
                .collect::<Vec<_>>()
        };
        if let Some(prepared) = self.prepared.load_full()
            && kids(prepared.jwks()) == kids(&jwks)
        {
            return prepared;
        }
        let prepared = Arc::new(PreparedJwks::new(jwks));
        self.prepared.store(Some(prepared.clone()));
        prepared
    }

    /// The key that signs with `alg` now.
    ///
    /// # Errors
    /// [`KeyServiceError::NoActiveKey`] if none is active (or it could not be opened).
    pub async fn signer(&self, alg: SigningAlg) -> Result<Arc<SigningKey>, KeyServiceError> {
        let snapshot = self.current().await;
        classify(&snapshot.keys, self.clock.now(), self.timing.retention)
            .into_iter()
            .find(|(key, state)| key.alg == alg && *state == KeyState::Active)
            .and_then(|(key, _)| snapshot.signers.get(&key.kid).cloned())
            .ok_or(KeyServiceError::NoActiveKey(alg))
    }

    /// The JWKS `Cache-Control: max-age`.
    #[must_use]
    pub fn jwks_max_age(&self) -> Duration {
        self.timing.jwks_max_age
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_prepared_set_is_kept_until_the_published_keys_change() {
        let h = crate::routes::tests::harness().await;
        let keys = &h.state.keys;
        let first = keys.prepared_jwks().await;
        assert_eq!(first.jwks(), &keys.jwks().await);
        // Made once for one published set.
        assert!(Arc::ptr_eq(&first, &keys.prepared_jwks().await));
        // A rotation publishes new keys: the next call prepares the new set.
        rotate(
            h.state.store.as_ref(),
            &h.kek,
            &h.rng,
            h.clock.as_ref(),
            &h.state.config.keys,
            &[SigningAlg::Es256],
        )
        .await
        .unwrap();
        keys.reload().await;
        let second = keys.prepared_jwks().await;
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(second.jwks(), &keys.jwks().await);
        assert_eq!(second.jwks().keys.len(), first.jwks().keys.len() + 1);
    }
}
