//! RollbackInfra: put the stack back on the template and parameters UpdateInfra
//! recorded for this upgrade. The database's restore snapshot is never rolled back:
//! changing it would replace the cluster.

use aws_sdk_cloudformation::Client;

use super::cfn::{self, Observed, StackView, TemplateSource, UpdateStart};
use super::progress::{self, StackWork};
use super::status::{self, Operation, Standing};
use super::template;
use super::{finished, pending, InfraError, InfraSteps};
use crate::record::{StackRevision, TenantFacts};
use crate::step::{StepContext, StepOutcome};
use crate::steps::names;

pub(super) async fn run(steps: &InfraSteps, ctx: StepContext<'_>) -> Result<StepOutcome, InfraError> {
    let spec = &ctx.tenant.spec;
    let mut facts = ctx.tenant.facts.clone();
    let stack = names::stack(spec);
    let label = progress::upgrade_label(&ctx.tenant.state);
    let previous = match (&facts.previous_stack, &facts.previous_stack_upgrade) {
        (Some(previous), Some(recorded_for)) if Some(recorded_for) == label.as_ref() => previous.clone(),
        _ => {
            facts.progress = None;
            return Ok(StepOutcome::done(
                format!("nothing to roll back: the upgrade did not change stack {stack}"),
                facts,
            ));
        }
    };
    let job = Rollback {
        steps,
        ctx,
        cf: steps.cloudformation(spec),
        stack,
        previous,
        step_token: ctx.idempotency_token(),
    };
    match progress::read(&facts, ctx.step) {
        Some(StackWork::Update { token, sent }) => job.update(facts, token, sent).await,
        _ => job.start(facts).await,
    }
}

struct Rollback<'a> {
    steps: &'a InfraSteps,
    ctx: StepContext<'a>,
    cf: Client,
    stack: String,
    previous: StackRevision,
    step_token: String,
}

impl Rollback<'_> {
    async fn start(&self, facts: TenantFacts) -> Result<StepOutcome, InfraError> {
        let Some(stack) = cfn::describe(&self.cf, &self.stack).await? else {
            return Err(InfraError::Stack(format!(
                "stack {} does not exist, so it cannot be put back on its previous template",
                self.stack
            )));
        };
        match status::standing(&stack.status) {
            Standing::Busy => Ok(pending(
                facts,
                self.ctx.step,
                None,
                self.steps.poll_after(),
                format!(
                    "stack {} is {}; waiting for it to settle",
                    self.stack, stack.status
                ),
            )),
            Standing::Stuck | Standing::FailedCreate => Err(InfraError::Stack(status::stuck_reason(
                &self.stack,
                &stack.status,
            ))),
            Standing::Settled => {
                // A failed update leaves the stack UPDATE_ROLLBACK_COMPLETE, already on
                // the previous template: confirm, rather than assume, that it matches.
                if self.is_previous(&stack).await? {
                    return finished(
                        facts,
                        &stack,
                        false,
                        format!(
                            "stack {} already on its previous template and parameters ({})",
                            self.stack, stack.status
                        ),
                    );
                }
                let token =
                    status::request_token(&self.step_token, &cfn::latest_event(&self.cf, &stack.id).await?);
                self.update(facts, token, false).await
            }
        }
    }

    async fn is_previous(&self, stack: &StackView) -> Result<bool, InfraError> {
        if !template::same_parameters(&self.previous.parameters, &stack.parameters) {
            return Ok(false);
        }
        Ok(cfn::original_template(&self.cf, &stack.id).await? == self.previous.template_body)
    }

    async fn update(&self, facts: TenantFacts, token: String, sent: bool) -> Result<StepOutcome, InfraError> {
        if !sent {
            let Some(stack) = cfn::describe(&self.cf, &self.stack).await? else {
                return Err(InfraError::Stack(format!(
                    "stack {} disappeared before it could be rolled back",
                    self.stack
                )));
            };
            let parameters = template::rollback_parameters(&self.previous.parameters, &stack.parameters);
            let body = TemplateSource::Body(&self.previous.template_body);
            match cfn::update(&self.cf, &self.stack, body, parameters, &token).await? {
                UpdateStart::NoChanges => {
                    return finished(
                        facts,
                        &stack,
                        false,
                        format!(
                            "stack {} already on its previous template and parameters",
                            self.stack
                        ),
                    )
                }
                UpdateStart::Busy(message) => {
                    return Ok(pending(
                        facts,
                        self.ctx.step,
                        Some(StackWork::Update { token, sent: false }),
                        self.steps.poll_after(),
                        message,
                    ))
                }
                UpdateStart::Started => {}
            }
        }
        let advice = "The stack is still on the upgrade's template; fix the cause and roll back again.";
        match cfn::observe(&self.cf, &self.stack, Operation::Update, Some(&token), advice).await? {
            Observed::Succeeded(stack) => finished(
                facts,
                &stack,
                false,
                format!(
                    "stack {} back on its previous template and parameters ({})",
                    self.stack, stack.status
                ),
            ),
            Observed::Running(stack) => Ok(pending(
                facts,
                self.ctx.step,
                Some(StackWork::Update { token, sent: true }),
                self.steps.poll_after(),
                format!("stack {} {}", self.stack, stack.status),
            )),
            Observed::Gone => Err(InfraError::Stack(format!(
                "stack {} disappeared during its rollback",
                self.stack
            ))),
        }
    }
}
