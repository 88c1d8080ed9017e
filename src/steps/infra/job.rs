//! What every infrastructure step does the same way: find the tenant's stack, wait for
//! an operation it did not start, and follow the one it started. The in-place update
//! (UpdateInfra, RollbackInfra, RestoreDatabase) is written here once; each step says
//! only what it sends and how its outcome reads ([`StackUpdate`]).

use aws_sdk_cloudformation::Client;

use super::cfn::{self, ChangeSetState, Observed, StackView, TemplateSource, UpdateStart};
use super::progress::StackWork;
use super::status::{self, Operation};
use super::template::ParamValue;
use super::{finished, pending, InfraError, InfraSteps};
use crate::domain::change_set::refused_changes;
use crate::record::TenantFacts;
use crate::step::{StepContext, StepOutcome};
use crate::steps::names;
use crate::steps::rate_limits::LimitedService;

/// One run of an infrastructure step on the tenant's stack.
pub(super) struct StackJob<'a> {
    pub steps: &'a InfraSteps,
    pub ctx: StepContext<'a>,
    pub cf: Client,
    /// The stack's name.
    pub stack: String,
    /// The step's idempotency token, from which request tokens are derived.
    pub step_token: String,
}

/// What differs between the steps that update the stack in place.
pub(super) trait StackUpdate: Sync {
    /// Whether later steps read this stack's outputs, so they must be there when done.
    const REQUIRES_OUTPUTS: bool;
    /// Said after CloudFormation's reason when the update failed: where the stack is.
    const ON_FAILURE: &'static str;
    /// The template and parameters that take `stack` where the step wants it.
    fn request(&self, stack: &StackView) -> (TemplateSource<'_>, Vec<(String, ParamValue)>);
    /// The summary when the stack already was what the update asks.
    fn unchanged(&self, stack: &StackView) -> String;
    /// The summary when the update succeeded; `before` are the facts it started from.
    fn succeeded(&self, before: &TenantFacts, stack: &StackView) -> String;
    /// The note while the update runs.
    fn running(&self, stack: &StackView) -> String {
        format!("stack {} {}", stack.name, stack.status)
    }
    /// The failure when the stack is gone, before the update was `sent` or during it.
    fn disappeared(&self, sent: bool) -> String;
    /// Notes in the facts what the stack now runs, once the update is done.
    fn applied(&self, _facts: &mut TenantFacts) {}
    /// Whether the update goes through a change set the replacement guard reads
    /// first: refused when it would replace or remove the tenant's data without the
    /// tenant's `facts.allow_replacement`.
    const GUARDED: bool = false;
}

impl<'a> StackJob<'a> {
    pub fn new(steps: &'a InfraSteps, ctx: StepContext<'a>) -> Self {
        let spec = &ctx.tenant.spec;
        Self {
            steps,
            ctx,
            cf: steps.cloudformation(spec),
            stack: names::stack(spec),
            step_token: ctx.idempotency_token(),
        }
    }

    /// Takes a CloudFormation token for the call about to be sent.
    pub async fn admit_cloudformation(&self) -> Result<(), InfraError> {
        (self.steps)
            .admit(LimitedService::CloudFormation, &self.ctx.tenant.spec)
            .await
    }

    /// The step waits a poll interval; `work` (if any) is what it started and follows.
    pub fn poll_later(
        &self,
        facts: TenantFacts,
        work: Option<StackWork>,
        note: impl Into<String>,
    ) -> StepOutcome {
        pending(facts, self.ctx.step, work, self.steps.poll_after(), note)
    }

    /// Another operation is changing the stack: start nothing until it settles.
    pub fn wait_to_settle(&self, facts: TenantFacts, stack: &StackView) -> StepOutcome {
        self.poll_later(
            facts,
            None,
            format!(
                "stack {} is {}; waiting for it to settle",
                self.stack, stack.status
            ),
        )
    }

    /// The stack is in a state no step continues from.
    pub fn stuck(&self, stack: &StackView) -> InfraError {
        InfraError::Stack(status::stuck_reason(&self.stack, &stack.status))
    }

    /// Sends the update decided with `token` unless it was `sent`, then follows it.
    pub async fn update<U: StackUpdate>(
        &self,
        change: &U,
        mut facts: TenantFacts,
        token: String,
        sent: bool,
    ) -> Result<StepOutcome, InfraError> {
        if !sent {
            let Some(stack) = cfn::describe(&self.cf, &self.stack).await? else {
                return Err(InfraError::Stack(change.disappeared(false)));
            };
            let (template, parameters) = change.request(&stack);
            self.admit_cloudformation().await?;
            let start = match template {
                TemplateSource::Body(body) if U::GUARDED => {
                    self.start_guarded(&facts, body, parameters, &token).await?
                }
                template => cfn::update(&self.cf, &self.stack, template, parameters, &token).await?,
            };
            match start {
                UpdateStart::NoChanges => {
                    let summary = change.unchanged(&stack);
                    change.applied(&mut facts);
                    return finished(facts, &stack, U::REQUIRES_OUTPUTS, summary);
                }
                UpdateStart::Busy(message) => {
                    let work = StackWork::Update { token, sent: false };
                    return Ok(self.poll_later(facts, Some(work), message));
                }
                UpdateStart::Started => {}
            }
        }
        match cfn::observe(
            &self.cf,
            &self.stack,
            Operation::Update,
            Some(&token),
            U::ON_FAILURE,
        )
        .await?
        {
            Observed::Succeeded(stack) => {
                let summary = change.succeeded(&facts, &stack);
                change.applied(&mut facts);
                finished(facts, &stack, U::REQUIRES_OUTPUTS, summary)
            }
            Observed::Running(stack) => {
                let work = StackWork::Update { token, sent: true };
                Ok(self.poll_later(facts, Some(work), change.running(&stack)))
            }
            Observed::Gone => Err(InfraError::Stack(change.disappeared(true))),
        }
    }

    /// Starts the update through a change set named after `token`, so a run that
    /// follows a crash finds the one an earlier run created: computed, inspected by the
    /// replacement guard, then executed, or deleted and refused. The tenant's alarms
    /// are its rollback triggers: one in ALARM during the update (or its monitoring
    /// time) makes CloudFormation roll it back, and the step fails naming it.
    async fn start_guarded(
        &self,
        facts: &TenantFacts,
        body: &str,
        parameters: Vec<(String, ParamValue)>,
        token: &str,
    ) -> Result<UpdateStart, InfraError> {
        let name = format!("tenantctl-{token}");
        let rollback = self.steps.rollback_configuration(&self.ctx.tenant.spec).await?;
        cfn::create_update_change_set(&self.cf, &self.stack, &name, body, parameters, Some(rollback)).await?;
        match cfn::describe_change_set(&self.cf, &self.stack, &name).await? {
            ChangeSetState::Pending | ChangeSetState::Missing => Ok(UpdateStart::Busy(format!(
                "change set {name} of stack {} is being computed",
                self.stack
            ))),
            ChangeSetState::Executed => Ok(UpdateStart::Started),
            ChangeSetState::Obsolete => {
                cfn::delete_change_set(&self.cf, &self.stack, &name).await?;
                Ok(UpdateStart::Busy(format!(
                    "change set {name} of stack {} was out of date; computing it again",
                    self.stack
                )))
            }
            ChangeSetState::NoChanges => {
                cfn::delete_change_set(&self.cf, &self.stack, &name).await?;
                Ok(UpdateStart::NoChanges)
            }
            ChangeSetState::Failed(reason) => {
                cfn::delete_change_set(&self.cf, &self.stack, &name).await?;
                Err(InfraError::Stack(format!(
                    "CloudFormation could not compute the update of stack {}: {reason}",
                    self.stack
                )))
            }
            ChangeSetState::Ready(changes) => {
                let refused = refused_changes(&changes, &facts.allow_replacement);
                if refused.is_empty() {
                    self.admit_cloudformation().await?;
                    cfn::execute_change_set(&self.cf, &self.stack, &name, token).await?;
                    return Ok(UpdateStart::Started);
                }
                cfn::delete_change_set(&self.cf, &self.stack, &name).await?;
                let what: Vec<String> = refused.iter().map(ToString::to_string).collect();
                Err(InfraError::Stack(format!(
                    "refused to update stack {}, which is left as it was: {}",
                    self.stack,
                    what.join("; ")
                )))
            }
        }
    }
}
