//! The registered resource servers as `/token` reads them: a per-replica snapshot, so that issuing
//! a token does not read the whole table. A snapshot is used for `tokens.resource_cache_secs`;
//! this replica's own admin changes replace it at once, other replicas' are seen within that
//! time. A `resource` the snapshot does not know triggers one reload (at most one a second), so a
//! resource server registered on another replica is usable at once and an attacker naming
//! unknown resources cannot make every request read the table.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use portcullis_core::Clock;
use portcullis_core::client::ClientId;
use portcullis_core::resource::ResourceServer;
use portcullis_core::store::{Store, StoreError};
use serde_json::Value;
use time::{Duration, OffsetDateTime};

/// The fewest seconds between reloads caused by an unknown `resource`.
const MISS_RELOAD_INTERVAL: Duration = Duration::seconds(1);

/// Resource servers at one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    servers: Vec<ResourceServer>,
    by_identifier: HashMap<String, usize>,
    loaded_at: Option<OffsetDateTime>,
}

impl Snapshot {
    fn new(servers: Vec<ResourceServer>, loaded_at: OffsetDateTime) -> Self {
        let by_identifier = servers
            .iter()
            .enumerate()
            .map(|(i, rs)| (rs.resource.clone(), i))
            .collect();
        Self {
            servers,
            by_identifier,
            loaded_at: Some(loaded_at),
        }
    }

    /// The resource server with this identifier.
    #[must_use]
    pub fn find(&self, resource: &str) -> Option<&ResourceServer> {
        self.by_identifier
            .get(resource)
            .and_then(|i| self.servers.get(*i))
    }

    /// Every resource server.
    pub fn all(&self) -> impl Iterator<Item = &ResourceServer> {
        self.servers.iter()
    }

    /// Whether some resource server acts as `client_id` (introspects, revokes, polls as it).
    #[must_use]
    pub fn has_client(&self, client_id: &ClientId) -> bool {
        self.servers
            .iter()
            .any(|rs| rs.client_id.as_ref() == Some(client_id))
    }

    /// Whether `client_id` is the client of a resource server named by a token's `aud` claim
    /// (a string or an array of them).
    #[must_use]
    pub fn client_in_audience(&self, client_id: &ClientId, aud: Option<&Value>) -> bool {
        audience(aud).any(|resource| {
            self.find(resource)
                .is_some_and(|rs| rs.client_id.as_ref() == Some(client_id))
        })
    }

    /// Every resource server that serves any of `scopes`.
    pub fn serving<'a>(&'a self, scopes: &'a [String]) -> impl Iterator<Item = &'a ResourceServer> {
        self.servers
            .iter()
            .filter(move |rs| rs.metadata.scopes.iter().any(|s| scopes.contains(s)))
    }
}

/// The values of a token's `aud` claim: one string or an array of them.
pub fn audience(aud: Option<&Value>) -> impl Iterator<Item = &str> {
    let (one, many) = match aud {
        Some(Value::String(a)) => (Some(a.as_str()), None),
        Some(Value::Array(values)) => (None, Some(values.iter().filter_map(Value::as_str))),
        _ => (None, None),
    };
    one.into_iter().chain(many.into_iter().flatten())
}

/// The per-replica cache.
#[derive(Debug)]
pub struct ResourceCache {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    ttl: Duration,
    current: ArcSwap<Snapshot>,
    reload: tokio::sync::Mutex<()>,
}

impl ResourceCache {
    /// A cache whose snapshots live `ttl_secs` (0: every read loads).
    #[must_use]
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, ttl_secs: u32) -> Self {
        Self {
            store,
            clock,
            ttl: Duration::seconds(i64::from(ttl_secs)),
            current: ArcSwap::from_pointee(Snapshot::default()),
            reload: tokio::sync::Mutex::new(()),
        }
    }

    fn younger_than(snapshot: &Snapshot, age: Duration, now: OffsetDateTime) -> bool {
        snapshot.loaded_at.is_some_and(|at| now - at < age)
    }

    /// A snapshot no older than the TTL.
    ///
    /// # Errors
    /// [`StoreError`] when a reload fails.
    pub async fn snapshot(&self) -> Result<Arc<Snapshot>, StoreError> {
        let current = self.current.load_full();
        if Self::younger_than(&current, self.ttl, self.clock.now()) {
            return Ok(current);
        }
        self.reload_if_older_than(self.ttl).await
    }

    /// The resource server named `resource`, reloading once (rate-limited) if the snapshot does
    /// not know it.
    ///
    /// # Errors
    /// [`StoreError`] when a reload fails.
    pub async fn find(&self, resource: &str) -> Result<Option<ResourceServer>, StoreError> {
        let snapshot = self.snapshot().await?;
        if let Some(rs) = snapshot.find(resource) {
            return Ok(Some(rs.clone()));
        }
        let snapshot = self.reload_if_older_than(MISS_RELOAD_INTERVAL).await?;
        Ok(snapshot.find(resource).cloned())
    }

    /// Forgets the snapshot: the next read loads (after a change made on this replica).
    pub fn invalidate(&self) {
        self.current.store(Arc::new(Snapshot::default()));
    }

    /// Reloads unless another caller did within `age`: one reload at a time, the others wait for
    /// it and use its result.
    async fn reload_if_older_than(&self, age: Duration) -> Result<Arc<Snapshot>, StoreError> {
        let _one_at_a_time = self.reload.lock().await;
        let current = self.current.load_full();
        let now = self.clock.now();
        if Self::younger_than(&current, age, now) && !age.is_zero() {
            return Ok(current);
        }
        let mut servers: Vec<ResourceServer> = Vec::new();
        loop {
            let after = servers.last().map(|rs| rs.resource.clone());
            let page = self
                .store
                .resource_servers()
                .list(after.as_deref(), 500)
                .await?;
            let done = page.len() < 500;
            servers.extend(page);
            if done {
                break;
            }
        }
        let snapshot = Arc::new(Snapshot::new(servers, now));
        self.current.store(snapshot.clone());
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::ManualClock;
    use portcullis_core::resource::ResourceMetadata;

    struct Fixture {
        store: Arc<dyn Store>,
        clock: Arc<ManualClock>,
        _dir: tempfile::TempDir,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = portcullis_store::connect_and_migrate(
            &format!("sqlite:{}", dir.path().join("t.db").display()),
            &portcullis_store::PoolOptions::default(),
        )
        .await
        .unwrap();
        let clock = Arc::new(ManualClock::new(
            OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
        ));
        Fixture {
            store,
            clock,
            _dir: dir,
        }
    }

    async fn add(f: &Fixture, resource: &str, scope: &str) {
        let now = f.clock.now();
        f.store
            .resource_servers()
            .add(&ResourceServer {
                resource: resource.into(),
                metadata: ResourceMetadata {
                    scopes: vec![scope.into()],
                    ..ResourceMetadata::default()
                },
                client_id: None,
                created_at: now,
                updated_at: now,
            })
            .await
            .unwrap();
    }

    fn cache(f: &Fixture, ttl: u32) -> ResourceCache {
        ResourceCache::new(f.store.clone(), f.clock.clone(), ttl)
    }

    #[tokio::test]
    async fn snapshots_live_their_ttl_and_local_changes_invalidate_them() {
        let f = fixture().await;
        add(&f, "https://api.bank.example/accounts", "accounts").await;
        let cache = cache(&f, 5);
        let first = cache.snapshot().await.unwrap();
        assert_eq!(first.serving(&["accounts".into()]).count(), 1);
        // Another replica adds a resource server: unseen until the snapshot ages out…
        add(&f, "https://api.bank.example/payments", "payments").await;
        assert!(Arc::ptr_eq(&first, &cache.snapshot().await.unwrap()));
        assert_eq!(
            cache
                .snapshot()
                .await
                .unwrap()
                .serving(&["payments".into()])
                .count(),
            0
        );
        f.clock.advance(Duration::seconds(5));
        let second = cache.snapshot().await.unwrap();
        assert_eq!(second.serving(&["payments".into()]).count(), 1);
        // …while a change on this replica is seen at once.
        add(&f, "https://api.bank.example/cards", "cards").await;
        cache.invalidate();
        assert!(
            cache
                .snapshot()
                .await
                .unwrap()
                .find("https://api.bank.example/cards")
                .is_some()
        );
    }

    #[tokio::test]
    async fn an_unknown_resource_reloads_at_most_once_a_second() {
        let f = fixture().await;
        let cache = cache(&f, 60);
        assert!(
            cache
                .find("https://api.bank.example/accounts")
                .await
                .unwrap()
                .is_none()
        );
        // Registered on another replica just now: the reload for a miss is rate-limited…
        add(&f, "https://api.bank.example/accounts", "accounts").await;
        assert!(
            cache
                .find("https://api.bank.example/accounts")
                .await
                .unwrap()
                .is_none()
        );
        // …to one a second, well before the TTL.
        f.clock.advance(Duration::seconds(1));
        let found = cache
            .find("https://api.bank.example/accounts")
            .await
            .unwrap();
        assert_eq!(found.unwrap().metadata.scopes, vec!["accounts".to_owned()]);
    }

    #[tokio::test]
    async fn a_zero_ttl_reads_every_time_and_large_registries_are_read_whole() {
        let f = fixture().await;
        for i in 0..501 {
            add(&f, &format!("https://api.bank.example/r{i:04}"), "s").await;
        }
        let cache = cache(&f, 0);
        assert_eq!(
            cache
                .snapshot()
                .await
                .unwrap()
                .serving(&["s".into()])
                .count(),
            501
        );
        add(&f, "https://api.bank.example/z", "z").await;
        assert_eq!(
            cache
                .snapshot()
                .await
                .unwrap()
                .serving(&["z".into()])
                .count(),
            1
        );
    }
}
