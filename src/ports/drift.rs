//! Drift: comparing a tenant's live resources with its desired revision
//! ([`DriftChecker`], implemented by `steps` on AWS and Helm) and keeping each
//! tenant's last result ([`DriftStore`], implemented by `store`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Page, StoreError};
use crate::domain::TenantId;
use crate::record::{DriftCheck, DriftFinding, TenantRecord};

/// Why a drift check could not compare, and whether trying again may help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct DriftCheckFailed {
    pub reason: String,
    /// Throttling, timeouts, 5xx: the next check may get through.
    pub retryable: bool,
}

/// Compares one tenant's live stack, configuration and Helm release with what its
/// spec and release ask for. Reads only; never changes anything.
#[async_trait]
pub trait DriftChecker: Send + Sync {
    /// The differences found (empty: in sync), sorted by kind and name.
    async fn check(&self, tenant: &TenantRecord) -> Result<Vec<DriftFinding>, DriftCheckFailed>;
}

/// One row of the fleet's drift report: a tenant and its last check.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DriftSummary {
    pub tenant: TenantId,
    pub checked_at: DateTime<Utc>,
    pub drifted: bool,
    /// [`DriftCheck::summary`] of the last check.
    pub summary: String,
}

/// The last drift check of each tenant, one small item per tenant apart from the
/// tenant's own item, so recording a check never races with the tenant's machine.
#[async_trait]
pub trait DriftStore: Send + Sync {
    /// Records `check` as the tenant's last one, unless a newer check is recorded;
    /// returns the check it replaced (`None`: the first).
    async fn record_drift(&self, check: &DriftCheck) -> Result<Option<DriftCheck>, StoreError>;
    /// Forgets the tenant's last check (a deleted tenant leaves the report).
    async fn forget_drift(&self, id: &TenantId) -> Result<(), StoreError>;
    /// The tenant's last check, if it was ever checked.
    async fn last_drift(&self, id: &TenantId) -> Result<Option<DriftCheck>, StoreError>;
    /// One page of the tenants whose last check found drift, by id.
    async fn drifted(&self, limit: u32, next_token: Option<&str>) -> Result<Page<DriftSummary>, StoreError>;
    /// When each tenant was last checked and whether it drifted (the whole fleet, from
    /// the listing index: what the sweep orders its checks by).
    async fn drift_summaries(&self) -> Result<Vec<DriftSummary>, StoreError>;
}
