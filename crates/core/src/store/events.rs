//! Storage of the security-event trail.

use crate::audit::{RecordedEvent, SecurityEvent};

use super::StoreError;

/// The append-only trail. There is deliberately no update or delete: the database refuses them.
#[async_trait::async_trait]
pub trait SecurityEventStore: Send + Sync {
    /// Appends an event and returns its sequence number.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on database failure: the change it records must then fail too.
    async fn append(&self, event: &SecurityEvent) -> Result<i64, StoreError>;

    /// Up to `limit` events after `after_seq`, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] on database failure or an unreadable row.
    async fn list(&self, after_seq: i64, limit: u32) -> Result<Vec<RecordedEvent>, StoreError>;
}
