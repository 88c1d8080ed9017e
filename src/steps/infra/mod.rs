//! The tenant's infrastructure stack on CloudFormation: create or update it
//! (ProvisionInfra, UpdateInfra), put it back after a failed upgrade (RollbackInfra),
//! restore its database from a snapshot (RestoreDatabase) and delete it (DeleteStack).
//!
//! Every step either starts one stack operation or polls the one it started, as
//! recorded in `facts.progress` with the request token it sent, so a re-run never
//! starts a second operation. The template is the published platform version the
//! spec names, else the one embedded in the binary.

mod apply;
mod cfn;
mod delete;
mod job;
mod preview;
mod progress;
mod restore;
mod rollback;
mod status;
pub mod template;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde::{Deserialize, Serialize};
use tracing::instrument;

use crate::domain::TenantSpec;
use crate::machine::StepKind;
use crate::record::TenantFacts;
use crate::step::{Step, StepContext, StepOutcome, StepRegistry};
use crate::steps::platform::{PlatformSource, PlatformUnavailable};
use crate::steps::rate_limits::{Admission, LimitedService};
use crate::steps::verify::{AlarmArn, AlarmWatch};
use crate::steps::{aws_failure, AwsClients, RegionSettings, StepsConfig};
use aws_sdk_cloudformation::types::{RollbackConfiguration, RollbackTrigger};

pub use self::preview::StackPreviewer;

use self::cfn::StackView;
use self::progress::StackWork;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InfraConfig {
    /// Seconds between two looks at a stack operation in progress.
    pub poll_seconds: u64,
    /// Create stacks with termination protection, so only DeleteStack (which turns it
    /// off first) can delete them.
    pub termination_protection: bool,
    /// Minutes CloudFormation watches the tenant's alarms (its rollback triggers) after
    /// a stack update before it finishes it; 0 checks them only while the update runs.
    /// CloudFormation allows 0 to 180.
    pub rollback_monitoring_minutes: u32,
}

impl Default for InfraConfig {
    fn default() -> Self {
        Self {
            poll_seconds: 15,
            termination_protection: true,
            rollback_monitoring_minutes: 5,
        }
    }
}

impl InfraConfig {
    /// `rollback_monitoring_minutes` as CloudFormation takes it, 0 to 180.
    fn monitoring_minutes(&self) -> Result<i32, InfraError> {
        let minutes = self.rollback_monitoring_minutes;
        match i32::try_from(minutes) {
            Ok(m) if minutes <= MAX_MONITORING_MINUTES => Ok(m),
            _ => Err(InfraError::Configuration(format!(
                "infra.rollback_monitoring_minutes is {minutes}; CloudFormation allows 0 to \
                 {MAX_MONITORING_MINUTES}: set it in that range in the steps configuration"
            ))),
        }
    }
}

/// Why an infrastructure step cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InfraError {
    /// The steps configuration cannot describe the tenant's stack.
    #[error("{0}")]
    Configuration(String),
    /// A CloudFormation or RDS call failed; throttling, timeouts and 5xx are retryable.
    #[error("{reason}")]
    Aws { reason: String, retryable: bool },
    /// The stack (or the snapshot) is not in a state the step can continue from.
    #[error("{0}")]
    Stack(String),
    /// The tenant's platform version cannot be fetched.
    #[error(transparent)]
    Platform(#[from] PlatformUnavailable),
    /// No CloudFormation or RDS token is left in the region: the step waits.
    #[error(transparent)]
    Throttled(#[from] crate::steps::rate_limits::Throttled),
}

impl InfraError {
    pub fn aws<E, R>(what: &str, err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug,
    {
        match aws_failure(what, err) {
            StepOutcome::Failed { retryable, reason } => InfraError::Aws { reason, retryable },
            other => InfraError::Aws {
                reason: format!("{what}: {other:?}"),
                retryable: false,
            },
        }
    }

    fn into_outcome(self, facts: &TenantFacts) -> StepOutcome {
        match self {
            InfraError::Aws { reason, retryable } => StepOutcome::Failed { retryable, reason },
            InfraError::Throttled(throttled) => throttled.into_outcome(facts),
            InfraError::Platform(unavailable) => unavailable.into_outcome(),
            other => StepOutcome::fail(other.to_string()),
        }
    }
}

/// What the infrastructure steps share: their settings and the per-region clients.
#[derive(Clone)]
pub struct InfraSteps {
    config: Arc<StepsConfig>,
    aws: Arc<AwsClients>,
    platforms: PlatformSource,
}

impl InfraSteps {
    pub fn new(config: Arc<StepsConfig>, aws: Arc<AwsClients>, platforms: PlatformSource) -> Self {
        Self {
            config,
            aws,
            platforms,
        }
    }

    /// The template the spec asks for: its platform version's, else the embedded one.
    pub(crate) async fn template(&self, spec: &TenantSpec) -> Result<String, InfraError> {
        match spec.platform {
            Some(version) => Ok(self.platforms.template(spec, version).await?),
            None => Ok(template::TEMPLATE.to_owned()),
        }
    }

    /// The parameters ProvisionInfra and UpdateInfra set on the tenant's stack.
    pub(crate) fn owned_parameters(
        &self,
        spec: &TenantSpec,
    ) -> Result<std::collections::BTreeMap<String, String>, InfraError> {
        template::owned_parameters(spec, self.settings(spec)?)
            .map_err(|e| InfraError::Configuration(e.to_string()))
    }

    /// The tenant's stack as it is: its parameters and the template it was last
    /// given; `None` when it does not exist.
    pub(crate) async fn live_stack(
        &self,
        spec: &TenantSpec,
    ) -> Result<Option<(std::collections::BTreeMap<String, String>, String)>, InfraError> {
        let cf = self.cloudformation(spec);
        let Some(stack) = cfn::describe(&cf, &crate::steps::names::stack(spec)).await? else {
            return Ok(None);
        };
        let template = cfn::original_template(&cf, &stack.id).await?;
        Ok(Some((stack.parameters, template)))
    }

    fn settings(&self, spec: &TenantSpec) -> Result<&RegionSettings, InfraError> {
        self.config
            .region(&spec.region)
            .map_err(InfraError::Configuration)
    }

    fn cloudformation(&self, spec: &TenantSpec) -> aws_sdk_cloudformation::Client {
        self.aws.tenant(spec).cloudformation.clone()
    }

    fn rds(&self, spec: &TenantSpec) -> aws_sdk_rds::Client {
        self.aws.tenant(spec).rds.clone()
    }

    /// Takes a token for one call of `service` in the tenant's region.
    async fn admit(&self, service: LimitedService, spec: &TenantSpec) -> Result<(), InfraError> {
        self.aws.admit_tenant(service, spec).await.map_err(|e| match e {
            Admission::Wait(throttled) => InfraError::Throttled(throttled),
            unavailable => InfraError::Aws {
                reason: unavailable.to_string(),
                retryable: true,
            },
        })
    }

    fn poll_after(&self) -> Duration {
        Duration::from_secs(self.config.infra.poll_seconds)
    }

    fn termination_protection(&self) -> bool {
        self.config.infra.termination_protection
    }

    /// The rollback configuration of a stack update: the tenant's alarms as rollback
    /// triggers (see [`rollback_triggers`]), watched `infra.rollback_monitoring_minutes`.
    async fn rollback_configuration(&self, spec: &TenantSpec) -> Result<RollbackConfiguration, InfraError> {
        let minutes = self.config.infra.monitoring_minutes()?;
        let watch =
            AlarmWatch::new(&self.config.verify, self.aws.clone()).map_err(InfraError::Configuration)?;
        let arns = watch.arns(spec).await.map_err(|e| {
            InfraError::aws(
                &format!(
                    "reading the alarms of tenant {} for the stack's rollback triggers",
                    spec.id
                ),
                e,
            )
        })?;
        let triggers = rollback_triggers(arns);
        Ok(RollbackConfiguration::builder()
            .set_rollback_triggers(Some(triggers))
            .monitoring_time_in_minutes(minutes)
            .build())
    }
}

/// CloudFormation's limits on a rollback configuration.
const MAX_MONITORING_MINUTES: u32 = 180;
const MAX_ROLLBACK_TRIGGERS: usize = 5;

/// The first [`MAX_ROLLBACK_TRIGGERS`] alarms in verify's order, the stack's own (by
/// name) before the extra ones as configured; those past the limit are no triggers
/// (verify and the bake still read them), and the log says which.
fn rollback_triggers(alarms: Vec<AlarmArn>) -> Vec<RollbackTrigger> {
    if alarms.len() > MAX_ROLLBACK_TRIGGERS {
        let left_out: Vec<&str> = alarms[MAX_ROLLBACK_TRIGGERS..]
            .iter()
            .map(|a| a.arn.as_str())
            .collect();
        tracing::warn!(
            ?left_out,
            "CloudFormation takes at most {MAX_ROLLBACK_TRIGGERS} rollback triggers; these alarms are not triggers"
        );
    }
    alarms
        .into_iter()
        .take(MAX_ROLLBACK_TRIGGERS)
        .map(|alarm| {
            let kind = if alarm.composite {
                "AWS::CloudWatch::CompositeAlarm"
            } else {
                "AWS::CloudWatch::Alarm"
            };
            RollbackTrigger::builder().arn(alarm.arn).r#type(kind).build()
        })
        .collect()
}

/// Wires the infrastructure steps into `registry`.
pub fn register(
    registry: StepRegistry,
    config: Arc<StepsConfig>,
    aws: Arc<AwsClients>,
    platforms: PlatformSource,
) -> StepRegistry {
    let steps = InfraSteps::new(config, aws, platforms);
    let apply: Arc<dyn Step> = Arc::new(ApplyStack(steps.clone()));
    registry
        .with(StepKind::ProvisionInfra, apply.clone())
        .with(StepKind::UpdateInfra, apply)
        .with(StepKind::RollbackInfra, Arc::new(RollbackStack(steps.clone())))
        .with(
            StepKind::RestoreDatabase,
            Arc::new(RestoreDatabase(steps.clone())),
        )
        .with(StepKind::DeleteStack, Arc::new(DeleteStack(steps)))
}

/// ProvisionInfra and UpdateInfra: creates the stack when it does not exist and
/// updates it to the tenant's template and current parameters when it does.
pub struct ApplyStack(pub InfraSteps);

/// RollbackInfra: puts the stack back on the template and parameters UpdateInfra
/// recorded before it changed them.
pub struct RollbackStack(pub InfraSteps);

/// RestoreDatabase: replaces the database cluster with one restored from the
/// operator's snapshot, through the stack's `RestoreSnapshotIdentifier`.
pub struct RestoreDatabase(pub InfraSteps);

/// DeleteStack: turns termination protection off and deletes the stack.
pub struct DeleteStack(pub InfraSteps);

/// Each infrastructure step runs its module's `run`; an [`InfraError`] becomes its outcome.
macro_rules! infra_step {
    ($step:ident, $module:ident) => {
        #[async_trait]
        impl Step for $step {
            #[instrument(skip_all, fields(tenant = %ctx.tenant.id(), step = %ctx.step))]
            async fn run(&self, ctx: StepContext<'_>) -> StepOutcome {
                $module::run(&self.0, ctx)
                    .await
                    .unwrap_or_else(|e| e.into_outcome(&ctx.tenant.facts))
            }
        }
    };
}

infra_step!(ApplyStack, apply);
infra_step!(RollbackStack, rollback);
infra_step!(RestoreDatabase, restore);
infra_step!(DeleteStack, delete);

/// The step waits; `work` (if any) is what it started and will poll.
fn pending(
    mut facts: TenantFacts,
    step: StepKind,
    work: Option<StackWork>,
    poll_after: Duration,
    note: impl Into<String>,
) -> StepOutcome {
    match work {
        Some(work) => progress::write(&mut facts, step, work),
        None => facts.progress = None,
    }
    StepOutcome::Pending {
        poll_after,
        facts,
        note: note.into(),
    }
}

/// The step is done with `stack` as it is now: its id and outputs become facts.
/// `require_outputs` when later steps will read them from this stack.
fn finished(
    mut facts: TenantFacts,
    stack: &StackView,
    require_outputs: bool,
    summary: impl Into<String>,
) -> Result<StepOutcome, InfraError> {
    if require_outputs {
        let missing = template::missing_outputs(&stack.outputs);
        if !missing.is_empty() {
            return Err(InfraError::Stack(format!(
                "stack {} is {} but has no output {}; the stack does not come from the orchestrator's template",
                stack.name,
                stack.status,
                missing.join(", ")
            )));
        }
    }
    facts.stack_id = Some(stack.id.clone());
    facts.stack_outputs = stack.outputs.clone();
    facts.progress = None;
    Ok(StepOutcome::done(summary, facts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alarm(name: &str, composite: bool) -> AlarmArn {
        AlarmArn {
            arn: format!("arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}"),
            composite,
        }
    }

    #[test]
    fn the_monitoring_time_is_five_minutes_by_default_and_at_most_three_hours() {
        assert_eq!(InfraConfig::default().monitoring_minutes(), Ok(5));
        let config = |minutes| InfraConfig {
            rollback_monitoring_minutes: minutes,
            ..InfraConfig::default()
        };
        assert_eq!(config(0).monitoring_minutes(), Ok(0));
        assert_eq!(config(180).monitoring_minutes(), Ok(180));
        let err = config(181).monitoring_minutes().unwrap_err().to_string();
        assert!(
            err.contains("infra.rollback_monitoring_minutes is 181") && err.contains("0 to 180"),
            "{err}"
        );
    }

    #[test]
    fn the_first_five_alarms_become_triggers_of_their_type() {
        let alarms: Vec<AlarmArn> = (1..=7).map(|i| alarm(&format!("a{i}"), i == 2)).collect();
        let triggers = rollback_triggers(alarms);
        let arns: Vec<&str> = triggers.iter().filter_map(|t| t.arn()).collect();
        assert_eq!(arns.len(), MAX_ROLLBACK_TRIGGERS);
        assert!(
            arns[0].ends_with(":alarm:a1") && arns[4].ends_with(":alarm:a5"),
            "{arns:?}"
        );
        assert_eq!(triggers[0].r#type(), Some("AWS::CloudWatch::Alarm"));
        assert_eq!(triggers[1].r#type(), Some("AWS::CloudWatch::CompositeAlarm"));
        assert!(rollback_triggers(Vec::new()).is_empty());
    }
}
