//! Durable rollouts: the rollout record (with the controller's lease) and one member
//! item per tenant and wave, in the tenants' table. Every write is conditional, and
//! starting a tenant is one transaction with the tenant's own state change.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Page, StoreError, WriteGuard};
use crate::domain::rollout::Skipped;
use crate::domain::{ReleaseVersion, RolloutId, TenantId};
use crate::record::{Lease, Phase, RolloutMember, RolloutRecord, TenantRecord, Transition};

/// One row of a rollout listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutSummary {
    pub id: RolloutId,
    pub phase: Phase,
    /// `None` for a rollout that keeps each tenant's release (a platform or spec change).
    pub release: Option<ReleaseVersion>,
    /// What it moves tenants to, in words (`release 1.4.2, platform 2026.12.1`).
    pub target: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A tenant state change made by a rollout, written with the member's new state.
#[derive(Clone)]
pub struct TenantDrive<'a> {
    pub rollout: &'a RolloutRecord,
    /// The controller's lease on the rollout; the write fails if it was lost.
    pub lease: &'a Lease,
    /// The tenant as it should be stored (already moved to its next state), still
    /// carrying the version it was read at.
    pub tenant: &'a TenantRecord,
    pub transition: Transition,
    pub member: &'a RolloutMember,
    /// A finished rollout that still names the tenant as held, which this write
    /// takes over (checked to be finished in the same transaction).
    pub finished_holder: Option<&'a RolloutId>,
    /// The tenant's lease, given in the same write to a worker in this process with
    /// a slot reserved for it; the write then also requires that no live lease is
    /// on the tenant and no lease was taken since it was read.
    pub grant: Option<&'a super::LeaseGrant>,
}

/// Which page of a paged read: at most `limit` items (1 to 1,000), from where
/// `next_token` (the previous page's) says, or from the start.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub limit: u32,
    pub next_token: Option<String>,
}

/// What [`RolloutStore::with_details`] reads back of what a rollout keeps apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Details {
    /// The bake evidence only: what the dashboard's rollout page draws, on every
    /// refresh, without the skipped tenants (tens of thousands in a large fleet).
    BakeEvidence,
    /// The bake evidence and every tenant skipped at planning: the API's rollout and
    /// `rollout status`.
    Everything,
}

/// A rollout store knows the freeze windows: the controller reads them every step.
#[async_trait]
pub trait RolloutStore: super::FreezeStore + Send + Sync {
    /// Stores a new rollout, leased to `owner` while its members and skipped tenants
    /// are written ([`Self::put_members`], [`Self::put_skipped`]; the stored record
    /// keeps only the count of the latter); `Conflict` if the id is taken.
    async fn create_rollout(
        &self,
        record: &RolloutRecord,
        owner: &str,
        ttl: Duration,
    ) -> Result<RolloutRecord, StoreError>;
    /// Writes members of a rollout being prepared (idempotent puts).
    async fn put_members(&self, id: &RolloutId, members: &[RolloutMember]) -> Result<(), StoreError>;
    /// Writes the tenants a rollout being prepared skipped at planning, each in an
    /// item of its own (idempotent puts): a large fleet's would not fit in the
    /// rollout's item, which keeps only their count (`record.skipped_apart`).
    async fn put_skipped(&self, id: &RolloutId, skipped: &[Skipped]) -> Result<(), StoreError>;
    /// Removes the members and skipped tenants of a rollout whose start was
    /// interrupted, before a new plan's are written in their place. Only for a
    /// rollout no controller has run: the caller holds its lease, and it is
    /// preparing or was aborted for that interruption.
    async fn clear_start(&self, id: &RolloutId) -> Result<(), StoreError>;
    async fn load_rollout(&self, id: &RolloutId) -> Result<RolloutRecord, StoreError>;
    /// `record` with what is kept in items of its own put back, for showing it: the
    /// bake checks of its succeeded waves in `waves[].bake.checks` (the stored record
    /// keeps only the evidence of the bake in progress) and, with
    /// [`Details::Everything`], the tenants skipped at planning in `skipped`, so that
    /// the stored record stays small at any fleet size.
    async fn with_details(
        &self,
        record: RolloutRecord,
        details: Details,
    ) -> Result<RolloutRecord, StoreError>;
    /// Writes `record` if it is still at `record.version` (and, with a lease guard,
    /// the lease is still the writer's). A lease guard also extends the lease to
    /// `record.lease`'s expiry. Returns the record as stored.
    async fn save_rollout(
        &self,
        record: &RolloutRecord,
        guard: WriteGuard<'_>,
    ) -> Result<RolloutRecord, StoreError>;
    /// Rollouts newest first, running ones before finished ones.
    async fn list_rollouts(
        &self,
        running_only: bool,
        limit: u32,
        next_token: Option<String>,
    ) -> Result<Page<RolloutSummary>, StoreError>;
    /// Takes the rollout's lease if it is free, expired or already `owner`'s.
    async fn acquire_rollout_lease(
        &self,
        id: &RolloutId,
        owner: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<RolloutRecord, StoreError>;
    /// [`Self::acquire_rollout_lease`] for a holder that comes back every pass (the
    /// controller): a live lease of `owner`'s with more than half of `ttl` left is
    /// kept as it is, and nothing is written.
    async fn hold_rollout_lease(
        &self,
        id: &RolloutId,
        owner: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<RolloutRecord, StoreError>;
    async fn release_rollout_lease(&self, id: &RolloutId, lease: &Lease) -> Result<(), StoreError>;
    /// Members of one wave, or of every wave.
    async fn members(&self, id: &RolloutId, wave: Option<usize>) -> Result<Vec<RolloutMember>, StoreError>;
    /// One page of [`Self::members`], by wave then tenant id.
    async fn members_page(
        &self,
        id: &RolloutId,
        wave: Option<usize>,
        page: PageRequest,
    ) -> Result<Page<RolloutMember>, StoreError>;
    /// Some members of wave `wave` without reading it all: those of `named` (in any
    /// order; a tenant not in the wave is left out) and the first `first` by tenant
    /// id, each once.
    async fn members_sample(
        &self,
        id: &RolloutId,
        wave: usize,
        named: &[TenantId],
        first: u32,
    ) -> Result<Vec<RolloutMember>, StoreError>;
    /// One page of the tenants `record` skipped at planning, by tenant id.
    async fn skipped_page(
        &self,
        record: &RolloutRecord,
        page: PageRequest,
    ) -> Result<Page<Skipped>, StoreError>;
    /// Writes a member if it is still at `member.version`.
    async fn save_member(&self, id: &RolloutId, member: &RolloutMember) -> Result<RolloutMember, StoreError>;
    /// Applies a rollout's change to a tenant and its member in one transaction:
    /// refused if the tenant changed, another running rollout holds it, the member
    /// changed (another controller got there first) or the lease was lost. Returns
    /// the tenant as stored.
    async fn drive_tenant(&self, drive: TenantDrive<'_>) -> Result<TenantRecord, StoreError>;
}
