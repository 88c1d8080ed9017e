//! The fleet's version policy and its audit trail.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::VersionPolicy;

/// One change of the policy: when, by whom, what.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PolicyChange {
    pub at: chrono::DateTime<chrono::Utc>,
    pub actor: String,
    pub what: String,
}

/// A change to apply to the stored policy (applied again if a concurrent change won).
pub type PolicyEdit<'a> = &'a (dyn Fn(&mut VersionPolicy) + Send + Sync);

#[async_trait]
pub trait PolicyStore: Send + Sync {
    /// The policy and its version (0 when none was ever stored).
    async fn load_policy(&self) -> Result<(VersionPolicy, u64), StoreError>;
    /// The policy and its latest changes, oldest first.
    async fn load_policy_audited(&self) -> Result<(VersionPolicy, Vec<PolicyChange>), StoreError>;
    /// Applies `change` to the stored policy and records it as `what` by `actor`;
    /// retried on a concurrent change. A change that leaves the policy as it was is
    /// neither written nor recorded. Returns the policy and changes as stored.
    async fn update_policy(
        &self,
        actor: &str,
        what: &str,
        change: PolicyEdit<'_>,
    ) -> Result<PolicyUpdate, StoreError>;
}

/// What [`PolicyStore::update_policy`] left stored.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyUpdate {
    pub policy: VersionPolicy,
    /// The latest changes, oldest first.
    pub changes: Vec<PolicyChange>,
    /// Whether this update changed the policy (and so was recorded); `false` when it
    /// set what was there or removed what was not.
    pub changed: bool,
}
