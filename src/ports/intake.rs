//! What subscription intake keeps: the ids of the deliveries it has acted on (so a
//! replay changes nothing) and the deprovisions that canceled subscriptions scheduled.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::domain::TenantId;

/// A tenant to deprovision once `due_at` passes, unless its subscription comes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledDeprovision {
    pub tenant: TenantId,
    pub due_at: DateTime<Utc>,
    /// The canceled subscription (`sub_…`).
    pub subscription: String,
    /// The event that canceled it (`evt_…`).
    pub event: String,
}

/// What claiming a delivery found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Nobody had it, or a claim that was never completed went stale: act on it.
    New,
    /// It was acted on before: a replay, answered without acting.
    Replay,
    /// Another request claimed it moments ago and has not finished.
    InProgress,
}

#[async_trait]
pub trait IntakeStore: Send + Sync {
    /// Claims delivery `event_id` at `now`, kept until `expires_at`. A claim that was
    /// never completed and is older than `stale_after` (its process died between the
    /// claim and the change) is taken over, so the sender's retry acts.
    async fn claim_delivery(
        &self,
        event_id: &str,
        now: DateTime<Utc>,
        stale_after: std::time::Duration,
        expires_at: DateTime<Utc>,
    ) -> Result<Claim, StoreError>;
    /// Marks a claimed delivery acted on: from now on it is a replay.
    async fn complete_delivery(&self, event_id: &str) -> Result<(), StoreError>;
    /// Forgets a claimed delivery whose change failed, so the sender's retry acts.
    async fn release_delivery(&self, event_id: &str) -> Result<(), StoreError>;
    /// Stores `deprovision` unless the tenant has one scheduled already; answers the
    /// one in force and whether it is the new one.
    async fn schedule_deprovision(
        &self,
        deprovision: &ScheduledDeprovision,
    ) -> Result<(ScheduledDeprovision, bool), StoreError>;
    /// Removes the tenant's scheduled deprovision, answering it if there was one.
    async fn cancel_deprovision(&self, tenant: &TenantId)
        -> Result<Option<ScheduledDeprovision>, StoreError>;
    /// Every scheduled deprovision, due or not, soonest first.
    async fn scheduled_deprovisions(&self) -> Result<Vec<ScheduledDeprovision>, StoreError>;
}
