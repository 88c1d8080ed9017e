//! The outbox's store: the events written with the changes they report, the
//! per-partition leases of the dispatchers delivering them, and their delivery
//! bookkeeping.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::record::{DeliveryState, OutboxEvent};

#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Takes or renews the lease on outbox partition `partition` for `owner` until
    /// `now + ttl`. `false`: another live dispatcher holds it.
    async fn lease_partition(
        &self,
        partition: u32,
        owner: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// The pending events of `partition`, oldest first, at most `limit`.
    async fn pending_events(&self, partition: u32, limit: usize) -> Result<Vec<OutboxEvent>, StoreError>;

    /// Stores `event`'s delivery bookkeeping if nobody changed it since it was read
    /// (its `version`); a settled event is kept for `retention`, then expires.
    async fn record_deliveries(&self, event: &OutboxEvent, retention: Duration) -> Result<(), StoreError>;

    /// Events of every partition, newest first, at most `limit`, in `state` if given.
    async fn list_events(
        &self,
        state: Option<DeliveryState>,
        limit: usize,
    ) -> Result<Vec<OutboxEvent>, StoreError>;

    /// The event with id `id`.
    async fn event(&self, id: &str) -> Result<OutboxEvent, StoreError>;
}
