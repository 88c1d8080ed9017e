//! The interfaces the core calls out through, and their errors: one trait per kind of
//! stored item (tenants, rollouts, policy, reports, idempotency keys, sessions,
//! certificate slots) with the read models they return, and the answers rollouts need
//! from the outside world (is a release published, is a tenant healthy), and where
//! platform versions are published. Declared here, below both the callers and the
//! implementations, so `steps` never imports `store`, `rollout` never imports `steps`,
//! `api` and `cli` reach the store only through these, and the application layer
//! (`app`) picks what runs behind each.
//!
//! This layer may use `domain`, `machine` and `record`.

mod platform;
mod policy;
mod probes;
pub mod reports;
mod requests;
mod rollouts;
mod slots;
mod tenants;

pub use platform::{ArtifactError, ChartArchive, PlatformArtifacts, PlatformBundle, Published};
pub use policy::{PolicyChange, PolicyEdit, PolicyStore};
pub use probes::{ReleaseRegistry, TenantHealth, TenantProbe};
pub use reports::{
    DeploymentCounts, DeploymentMilestone, DeploymentReport, ReportQuery, ReportStore, MAX_REPORT_DAYS,
};
pub use requests::{IdempotencyStore, Reservation, SessionStore, StoredSession};
pub use rollouts::{RolloutStore, RolloutSummary, TenantDrive};
pub use slots::{CertificateSlotStore, RegionSlots};
pub use tenants::{
    FleetSummary, ListFilter, ListQuery, Page, TenantReads, TenantStore, TenantSummary, WriteGuard,
    WORK_SHARDS,
};

/// Why a store call failed, split by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Someone else changed the item first (version, lease or existence condition).
    /// Reload and decide again; nothing was written.
    #[error("conflict on {what}: {detail}")]
    Conflict {
        what: String,
        detail: String,
        /// What the write ran into, for callers that decide on it.
        kind: Conflict,
    },
    #[error("{what} not found")]
    NotFound { what: String, entity: Entity },
    /// Throttling, timeouts, 5xx: the same call may succeed later.
    #[error("temporary store failure ({context}): {message}")]
    Retryable { context: String, message: String },
    /// Another live tenant owns a hostname this write claims.
    #[error("hostname {hostname} is already used by tenant {owner}; choose another hostname or remove it from {owner} first")]
    HostnameTaken { hostname: String, owner: String },
    /// The caller passed something the store cannot use (e.g. a damaged page token).
    #[error("{context}: {message}")]
    Invalid { context: String, message: String },
    /// Anything a retry cannot fix: a missing table, bad credentials, corrupt item.
    #[error("store failure ({context}): {message}")]
    Fatal { context: String, message: String },
}

/// What a refused conditional write ran into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// The item changed since it was read (its version), or already exists.
    Version,
    /// The tenant's lease is another worker's, or was lost.
    Lease,
    /// The rollout's controller lease is another controller's, or was lost.
    RolloutLease,
    /// Another rollout, still running, holds the tenant.
    HeldBy(crate::domain::RolloutId),
}

/// The kind of item a `NotFound` is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Tenant,
    Rollout,
}
