//! What a change would do to a tenant before it is made: rollouts ask before they
//! start (`rollout plan --diff`, `rollout start`), and `steps` answer from
//! CloudFormation and Helm, so `app` and `api` need not import `steps`.

use async_trait::async_trait;

use crate::domain::change_set::ResourceChange;
use crate::domain::{ReleaseVersion, TenantSpec};
use crate::record::TenantRecord;

/// What the tenant's infrastructure stack would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StackPreview {
    /// The stack does not exist yet: the change would create it.
    NoStack,
    /// The resources the update would add, modify or remove (empty: no change).
    Changes(Vec<ResourceChange>),
}

/// Previews the change of one tenant to `desired` (its spec after the change) on
/// `release`: the exact template and parameters its infrastructure step would send,
/// as a change set that is deleted again. Leaves the tenant untouched.
#[async_trait]
pub trait ChangePreview: Send + Sync {
    /// `Err` says what could not be asked (the stack, the platform version, the
    /// steps configuration) and what to do.
    async fn preview_stack(
        &self,
        tenant: &TenantRecord,
        desired: &TenantSpec,
        release: &ReleaseVersion,
    ) -> Result<StackPreview, String>;

    /// The unified diff of the tenant's release manifests, from the chart as deployed
    /// now to the chart `desired` on `release` would deploy (empty: no change). `Err`
    /// says what could not be rendered.
    async fn preview_chart(
        &self,
        tenant: &TenantRecord,
        desired: &TenantSpec,
        release: &ReleaseVersion,
    ) -> Result<String, String>;
}
