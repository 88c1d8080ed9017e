//! What is persisted, as plain data: a tenant's record (spec, machine state, lease,
//! the facts its steps recorded) with its history, a rollout's record with its
//! members, the certificate slots tenants share, and the manifest of a published
//! platform version. This layer imports only `domain` and `machine`, so the store,
//! the worker, the rollout controller and the API all speak of the same types
//! without importing one another.

mod audit;
mod drift;
pub mod outbox;
mod platform;
mod promotion;
mod rollout;
pub mod slot;
mod tenant;

pub use audit::{AuditEntry, AuditOutcome};
pub use drift::{DriftCheck, DriftFinding, DriftKind};
pub use outbox::{CloudEvent, DeliveryState, OutboxEvent};
pub use platform::{ContentDigest, PlatformManifest, StoredArtifact, StoredChart};
pub use promotion::{
    Promotion, PromotionBlock, PromotionDue, PromotionRecord, PromotionState, PROMOTION_CLAIM,
};
pub use rollout::{
    AlarmSeen, BakeCheck, BakeProgress, MemberFailure, OutageOverrun, Outcome, Phase, RollbackStatus,
    RolloutEvent, RolloutMember, RolloutRecord, StartRange, WaveRecord, WaveStatus, WaveTally, WindowWait,
    BAKE_ALARMS_KEPT, BAKE_TENANTS_KEPT, INTERRUPTED_START, TALLY_EVERY, TALLY_FAILURES_KEPT,
    TALLY_IN_FLIGHT_KEPT, WINDOW_WAITS_KEPT,
};
pub use tenant::{
    revision_line, Actor, AppliedSpec, Cause, HistoryEvent, Lease, Maintenance, Migration, Origin,
    OutageCause, OutageWindow, StackRevision, TenantFacts, TenantRecord, Transition,
};
