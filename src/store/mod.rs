//! Durable tenant state. One DynamoDB table per environment holds tenants, their
//! history, hostname claims and (later) rollouts and certificate slots; see `state/table.json`.
//!
//! Concurrency model: every write is conditional. Worker writes carry the worker's
//! lease (owner + fence, unexpired) and the record `version`; operator writes carry
//! the `version`. A refused condition is a [`StoreError::Conflict`], never a silent
//! overwrite.
//!
//! The interfaces this implements (one trait per kind of item, with the read models
//! they return) live in [`crate::ports`] and are re-exported here.

pub mod check;
mod dynamodb;
mod keys;
pub mod table;

pub use crate::ports::reports as report;
pub use crate::ports::{
    CertificateSlotStore, Conflict, DeploymentCounts, DeploymentReport, DriftStore, DriftSummary, Entity,
    FleetSummary, FreezeStore, IdempotencyStore, ListFilter, ListQuery, Page, PassedStep, PolicyChange,
    PolicyEdit, PolicyStore, PromotionStore, RegionSlots, ReportQuery, ReportStore, Reservation,
    RolloutStore, RolloutSummary, SessionStore, StoreError, StoredSession, TenantDrive, TenantReads,
    TenantStore, TenantSummary, WriteGuard, MAX_REPORT_DAYS,
};
pub use dynamodb::{
    client, retry_config, timeout_config, ClaimBackfill, DynamoRateLimiter, DynamoStore, Meter, Usage,
    ATTEMPT_TIMEOUT, MAX_ATTEMPTS,
};
pub use keys::WORK_SHARDS;
