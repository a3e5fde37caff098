//! Storage of the security-event trail: its events, each in the hash chain of the store instance
//! that wrote it, the chains themselves, and the seals of their heads (see [`crate::audit`]).

use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::chain::ChainHead;
use crate::audit::seal::Seal;
use crate::audit::{RecordedEvent, SecurityEvent};

use super::StoreError;

/// Which events a query wants: every member that is set narrows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Events that occurred at or after this.
    pub since: Option<OffsetDateTime>,
    /// Events that occurred before this.
    pub until: Option<OffsetDateTime>,
    /// Events concerning this client.
    pub client_id: Option<String>,
    /// Events about this subject.
    pub subject: Option<String>,
    /// Events of this type (`action`).
    pub action: Option<String>,
}

/// A chain as the store knows it: registered with the first events of a store instance, or
/// found only in events or seals (which verification reports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainInfo {
    /// The chain.
    pub chain_id: Uuid,
    /// When its first event occurred, as registered.
    pub started_at: Option<OffsetDateTime>,
    /// The host and process that wrote it, as registered.
    pub host: Option<String>,
    /// Whether the chains table has it.
    pub registered: bool,
}

/// The events outside every chain: written before chaining began, or inserted around it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unchained {
    /// How many.
    pub count: u64,
    /// The last one's sequence number.
    pub last_seq: Option<i64>,
    /// The sequence number of the first chained event, if any.
    pub first_chained_seq: Option<i64>,
    /// The first one's sequence number.
    pub first_seq: Option<i64>,
    /// What was outside the chains when chaining began: the last sequence number and the count
    /// (`audit_baseline`); `None` when that record is missing.
    pub baseline: Option<(i64, u64)>,
    /// The first event whose chain columns are damaged (some set and some empty, or a digest
    /// that is not 32 bytes), chained or not.
    pub damaged_seq: Option<i64>,
}

/// The append-only trail. There is deliberately no update or delete: the database refuses them.
#[async_trait::async_trait]
pub trait SecurityEventStore: Send + Sync {
    /// Appends an event to this store instance's chain and returns its sequence number once it
    /// is durable (committed). Concurrent appends are committed together in one transaction.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on database failure: the change it records must then fail too.
    async fn append(&self, event: &SecurityEvent) -> Result<i64, StoreError>;

    /// Up to `limit` events after `after_seq`, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] on database failure or an unreadable row.
    async fn list(&self, after_seq: i64, limit: u32) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Up to `limit` events matching `filter` after `after_seq`, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] on database failure or an unreadable row.
    async fn find(
        &self,
        filter: &EventFilter,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// This store instance's chain head as last committed; `None` before its first event.
    fn head(&self) -> Option<ChainHead>;

    /// Stores a seal.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if the chain has a seal at that position already;
    /// [`StoreError::Backend`] on database failure.
    async fn add_seal(&self, seal: &Seal) -> Result<(), StoreError>;

    /// The seal of `chain_id` at the highest position.
    ///
    /// # Errors
    /// [`StoreError`] on database failure or an unreadable row.
    async fn last_seal(&self, chain_id: Uuid) -> Result<Option<Seal>, StoreError>;

    /// Every chain registered, or named by an event or a seal, in order of `started_at`.
    ///
    /// # Errors
    /// [`StoreError`] on database failure or an unreadable row.
    async fn chains(&self) -> Result<Vec<ChainInfo>, StoreError>;

    /// Up to `limit` events of `chain_id` after position `after` (`(chain_seq, seq)`), in
    /// `chain_seq` order, ties by `seq`.
    ///
    /// # Errors
    /// [`StoreError`] on database failure or an unreadable row.
    async fn chain_events(
        &self,
        chain_id: Uuid,
        after: (i64, i64),
        limit: u32,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Every seal of `chain_id`, in `chain_seq` order.
    ///
    /// # Errors
    /// [`StoreError`] on database failure or an unreadable row.
    async fn seals(&self, chain_id: Uuid) -> Result<Vec<Seal>, StoreError>;

    /// The events outside every chain.
    ///
    /// # Errors
    /// [`StoreError`] on database failure.
    async fn unchained(&self) -> Result<Unchained, StoreError>;
}
