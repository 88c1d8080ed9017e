//! The preview of a tenant's stack update: the template and parameters UpdateInfra
//! would send for a spec, as a CloudFormation change set that is read and deleted
//! again, never executed. Rollouts ask it before they start (`ChangePreview`).

use std::time::Duration;

use super::cfn::{self, ChangeSetState};
use super::{template, InfraError, InfraSteps};
use crate::domain::{ReleaseVersion, TenantSpec};
use crate::ports::StackPreview;
use crate::record::TenantRecord;
use crate::steps::names;

/// How long a change set may take to be computed before the preview gives up.
const READY_WITHIN: Duration = Duration::from_secs(300);
const LOOK_EVERY: Duration = Duration::from_millis(500);

/// The stack half of [`crate::ports::ChangePreview`], on CloudFormation, with the
/// infrastructure steps' settings, clients and platform versions.
pub struct StackPreviewer(pub InfraSteps);

impl StackPreviewer {
    pub async fn preview_stack(
        &self,
        tenant: &TenantRecord,
        desired: &TenantSpec,
        _release: &ReleaseVersion,
    ) -> Result<StackPreview, String> {
        preview(&self.0, &tenant.spec, desired)
            .await
            .map_err(|e| format!("previewing the stack of tenant {}: {e}", tenant.id()))
    }
}

/// The change set of updating the stack of the tenant whose spec is `current` to
/// what `desired` asks.
async fn preview(
    steps: &InfraSteps,
    current: &TenantSpec,
    desired: &TenantSpec,
) -> Result<StackPreview, InfraError> {
    let cf = steps.cloudformation(current);
    let stack = names::stack(current);
    let Some(view) = cfn::describe(&cf, &stack).await? else {
        return Ok(StackPreview::NoStack);
    };
    let owned = template::owned_parameters(desired, steps.settings(desired)?)
        .map_err(|e| InfraError::Configuration(e.to_string()))?;
    let body = steps.template(desired).await?;
    let parameters = template::update_parameters(&owned, &view.parameters);
    let name = format!("tenantctl-preview-{}", uuid::Uuid::new_v4().simple());
    cfn::create_change_set(&cf, &stack, &name, &body, parameters).await?;
    let described = wait_for_change_set(&cf, &stack, &name).await;
    // Deleted whatever the answer: a preview leaves nothing behind.
    let deleted = cfn::delete_change_set(&cf, &stack, &name).await;
    let state = described?;
    deleted?;
    match state {
        ChangeSetState::Ready(changes) => Ok(StackPreview::Changes(changes)),
        ChangeSetState::NoChanges => Ok(StackPreview::Changes(Vec::new())),
        ChangeSetState::Failed(reason) => Err(InfraError::Stack(format!(
            "CloudFormation could not compute the change set of stack {stack}: {reason}"
        ))),
        ChangeSetState::Missing
        | ChangeSetState::Pending
        | ChangeSetState::Executed
        | ChangeSetState::Obsolete => Err(InfraError::Stack(format!(
            "the change set {name} of stack {stack} was gone or changed before it was read; try again"
        ))),
    }
}

/// Describes the change set until CloudFormation has computed it.
pub(super) async fn wait_for_change_set(
    cf: &aws_sdk_cloudformation::Client,
    stack: &str,
    name: &str,
) -> Result<ChangeSetState, InfraError> {
    let deadline = tokio::time::Instant::now() + READY_WITHIN;
    loop {
        match cfn::describe_change_set(cf, stack, name).await? {
            ChangeSetState::Pending if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(LOOK_EVERY).await
            }
            ChangeSetState::Pending => {
                return Err(InfraError::Aws {
                    reason: format!(
                        "CloudFormation did not compute the change set {name} of stack {stack} within {}s; try again",
                        READY_WITHIN.as_secs()
                    ),
                    retryable: true,
                })
            }
            other => return Ok(other),
        }
    }
}
