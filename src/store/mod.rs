//! Durable tenant state. One DynamoDB table per environment holds tenants, their
//! history, hostname claims and (later) rollouts and certificate slots; see `state/table.json`.
//!
//! Concurrency model: every write is conditional. Worker writes carry the worker's
//! lease (owner + fence, unexpired) and the record `version`; operator writes carry
//! the `version`. A refused condition is a [`StoreError::Conflict`], never a silent
//! overwrite.

pub mod check;
mod dynamodb;
mod keys;
pub mod report;
pub mod rollouts;
pub mod table;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::{Hostname, Region, TenantId};
use crate::record::{HistoryEvent, Lease, TenantRecord, Transition};

pub use crate::ports::{CertificateSlotStore, Conflict, Entity, RegionSlots, StoreError};
pub use dynamodb::{
    client, retry_config, ClaimBackfill, DynamoStore, FleetSummary, ListFilter, PolicyChange, ReportQuery,
    Reservation, StoredSession, MAX_ATTEMPTS, MAX_REPORT_DAYS,
};
pub use keys::WORK_SHARDS;
pub use rollouts::{RolloutStore, RolloutSummary, TenantDrive};

/// The fleet's version policy, as far as the commands need it.
#[async_trait]
pub trait PolicyStore: Send + Sync {
    /// The policy and its version (0 when none was ever stored).
    async fn load_policy(&self) -> Result<(crate::domain::VersionPolicy, u64), StoreError>;
}

/// A page of results and the token for the next page, if any.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_token: Option<String>,
}

/// What a write must still find true to go through.
#[derive(Debug, Clone, Copy)]
pub enum WriteGuard<'a> {
    /// A worker write: the caller's lease must still be the live one.
    Lease(&'a Lease),
    /// An operator write: only the version is checked; the lease (if any) stays.
    Version,
}

/// Filters for listing tenants; results come back ordered by region, state, id.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub region: Option<Region>,
    /// A state name as in [`crate::machine::TenantState::NAMES`].
    pub state: Option<String>,
    pub limit: Option<u32>,
    pub next_token: Option<String>,
}

/// One row of a tenant listing.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TenantSummary {
    pub id: TenantId,
    pub region: Region,
    pub state: String,
    pub label: String,
    pub release: Option<String>,
    pub group: String,
    pub updated_at: DateTime<Utc>,
}

#[async_trait]
pub trait TenantStore: Send + Sync {
    /// Stores a new tenant and its first history event; `Conflict` if the id is taken.
    async fn create(&self, record: &TenantRecord, first: Transition) -> Result<TenantRecord, StoreError>;
    async fn load(&self, id: &TenantId) -> Result<TenantRecord, StoreError>;
    /// Writes `record` if the stored item is still at `record.version` and `guard`
    /// holds. With `transition`, the state change and its history event are written in
    /// one transaction. Returns the record as stored (version bumped).
    async fn save(
        &self,
        record: &TenantRecord,
        guard: WriteGuard<'_>,
        transition: Option<Transition>,
    ) -> Result<TenantRecord, StoreError>;
    /// Saves an operator's spec change like `save` with [`WriteGuard::Version`], and in
    /// the same transaction claims the record's new hostnames and gives up those of
    /// `before` it no longer has. `HostnameTaken` if another live tenant holds one.
    async fn save_spec(
        &self,
        record: &TenantRecord,
        before: &[Hostname],
        transition: Transition,
    ) -> Result<TenantRecord, StoreError>;
    /// Takes the tenant's lease for `owner` if it is free, expired, or already ours.
    async fn acquire_lease(
        &self,
        id: &TenantId,
        owner: &str,
        ttl: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<TenantRecord, StoreError>;
    /// Extends a live lease; `Conflict` if it was lost.
    async fn renew_lease(
        &self,
        id: &TenantId,
        lease: &Lease,
        ttl: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<Lease, StoreError>;
    /// Gives a lease up so another worker can take the tenant at its due time.
    /// Conditional on the tenant still being at `record.version` (the work index is
    /// recomputed from `record`): `Conflict` if it changed, and the holder decides
    /// again from the stored tenant.
    async fn release_lease(&self, record: &TenantRecord, lease: &Lease) -> Result<(), StoreError>;
    /// History in order, starting after `after_seq`.
    async fn history(
        &self,
        id: &TenantId,
        after_seq: u64,
        limit: u32,
    ) -> Result<Page<HistoryEvent>, StoreError>;
    async fn list(&self, query: &ListQuery) -> Result<Page<TenantSummary>, StoreError>;
    /// Tenants of one region and work shard with a step due at or before `now`.
    async fn due(
        &self,
        region: &Region,
        shard: u32,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<TenantId>, StoreError>;
    /// Every region that has had a tenant, in order.
    async fn regions(&self) -> Result<Vec<Region>, StoreError>;
}
