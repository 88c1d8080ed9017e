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
//!
//! It also holds [`aws_calls`], the interceptor every AWS client (the store's, the
//! steps', the outbox's) carries, so each of those layers can reach it.

mod audit;
pub mod aws_calls;
mod drift;
mod freezes;
mod handoff;
mod intake;
mod outbox;
mod platform;
mod policy;
mod preview;
mod probes;
mod promotions;
mod rate_limits;
mod relay;
pub mod reports;
mod requests;
mod rollouts;
mod slots;
mod tenants;
mod wake;

pub use audit::{AuditQuery, AuditStore, DEFAULT_AUDIT_RETENTION, MAX_AUDIT_DAYS};
pub use drift::{DriftCheckFailed, DriftChecker, DriftStore, DriftSummary};
pub use freezes::FreezeStore;
pub use handoff::{Handed, HandoffInbox, LeaseGrant, LeaseHandoff, ReservedSlot};
pub use intake::{Claim, IntakeStore, ScheduledDeprovision};
pub use outbox::OutboxStore;
pub use platform::{ArtifactError, ChartArchive, PlatformArtifacts, PlatformBundle, Published};
pub use policy::{PolicyChange, PolicyEdit, PolicyStore, PolicyUpdate};
pub use preview::{ChangePreview, StackPreview};
pub use probes::{ReleaseCheckError, ReleaseRegistry, TenantHealth, TenantProbe};
pub use promotions::{PromotionDriver, PromotionStore};
pub use rate_limits::{Acquired, BucketKey, BucketShape, RateLimiter};
pub use relay::{Relay, RelayDrive, RELAY_VALID_FOR};
pub use reports::{
    DeploymentCounts, DeploymentMilestone, DeploymentReport, OutageBucket, OutageCounts, ReportQuery,
    ReportStore, MAX_REPORT_DAYS,
};
pub use requests::{IdempotencyStore, Reservation, SessionStore, StoredSession};
pub use rollouts::{Details, PageRequest, RolloutStore, RolloutSummary, TenantDrive};
pub use slots::{CertificateSlotStore, RegionSlots};
pub use tenants::{
    FleetCell, FleetSummary, FleetTally, ListFilter, ListQuery, ListedTenant, Page, PassedStep,
    PlatformChoice, Relayed, TenantReads, TenantStore, TenantSummary, WriteGuard, BUILT_IN_PLATFORM,
    WORK_SHARDS,
};
pub use wake::{woken, Wakeup, WakeupListener};

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
    Retryable {
        context: String,
        /// What went wrong, in short; the full detail is in `source`.
        message: String,
        #[source]
        source: Option<Cause>,
    },
    /// Another live tenant owns a hostname this write claims.
    #[error("hostname {hostname} is already used by tenant {owner}; choose another hostname or remove it from {owner} first")]
    HostnameTaken { hostname: String, owner: String },
    /// The caller passed something the store cannot use (e.g. a damaged page token).
    #[error("{context}: {message}")]
    Invalid { context: String, message: String },
    /// Anything a retry cannot fix: a missing table, bad credentials, corrupt item.
    #[error("store failure ({context}): {message}")]
    Fatal {
        context: String,
        /// What went wrong and what to do, in short; the full detail is in `source`.
        message: String,
        #[source]
        source: Option<Cause>,
    },
}

/// The underlying error a store failure was made from (an SDK error, a serde error of
/// a corrupt item, a failed task), kept so `{:#}` and `source()` show it.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

impl StoreError {
    /// A failure a retry may fix, with no underlying error; add one with [`Self::with_source`].
    pub fn retryable(context: impl Into<String>, message: impl Into<String>) -> Self {
        StoreError::Retryable {
            context: context.into(),
            message: message.into(),
            source: None,
        }
    }

    /// A failure a retry cannot fix, with no underlying error; add one with [`Self::with_source`].
    pub fn fatal(context: impl Into<String>, message: impl Into<String>) -> Self {
        StoreError::Fatal {
            context: context.into(),
            message: message.into(),
            source: None,
        }
    }

    /// Keeps `cause` as the source of a `Retryable` or `Fatal` failure. The message
    /// should then not repeat the cause's text: printing the chain shows both.
    /// The other kinds are decisions, not failures, and carry no source; they are
    /// returned unchanged.
    pub fn with_source(mut self, cause: impl Into<Cause>) -> Self {
        if let StoreError::Retryable { source, .. } | StoreError::Fatal { source, .. } = &mut self {
            *source = Some(cause.into());
        }
        self
    }

    /// This error's text followed by each source's, joined by ": " as anyhow's `{:#}`
    /// prints them: for logs, where the detail a response leaves out is wanted.
    pub fn detailed(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
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
    Event,
    Promotion,
    Freeze,
}
