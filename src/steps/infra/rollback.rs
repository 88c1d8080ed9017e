//! RollbackInfra: put the stack back on the template and parameters UpdateInfra
//! recorded for this upgrade. The database's restore snapshot is never rolled back:
//! changing it would replace the cluster.

use super::cfn::{self, StackView, TemplateSource};
use super::job::{StackJob, StackUpdate};
use super::progress::{self, StackWork};
use super::status::{self, Standing};
use super::template::{self, ParamValue};
use super::{finished, InfraError, InfraSteps};
use crate::record::{StackRevision, TenantFacts};
use crate::step::{StepContext, StepOutcome};
use crate::steps::names;

pub(super) async fn run(steps: &InfraSteps, ctx: StepContext<'_>) -> Result<StepOutcome, InfraError> {
    let mut facts = ctx.tenant.facts.clone();
    let label = progress::upgrade_label(&ctx.tenant.state);
    let previous = match (&facts.previous_stack, &facts.previous_stack_upgrade) {
        (Some(previous), Some(recorded_for)) if Some(recorded_for) == label.as_ref() => previous.clone(),
        _ => {
            facts.progress = None;
            return Ok(StepOutcome::done(
                format!(
                    "nothing to roll back: the upgrade did not change stack {}",
                    names::stack(&ctx.tenant.spec)
                ),
                facts,
            ));
        }
    };
    let rollback = Rollback {
        job: StackJob::new(steps, ctx),
        previous,
    };
    match progress::read(&facts, ctx.step) {
        Some(StackWork::Update { token, sent }) => rollback.job.update(&rollback, facts, token, sent).await,
        _ => rollback.start(facts).await,
    }
}

struct Rollback<'a> {
    job: StackJob<'a>,
    previous: StackRevision,
}

impl Rollback<'_> {
    async fn start(&self, facts: TenantFacts) -> Result<StepOutcome, InfraError> {
        let job = &self.job;
        let Some(stack) = cfn::describe(&job.cf, &job.stack).await? else {
            return Err(InfraError::Stack(format!(
                "stack {} does not exist, so it cannot be put back on its previous template",
                job.stack
            )));
        };
        match status::standing(&stack.status) {
            Standing::Busy => Ok(job.wait_to_settle(facts, &stack)),
            Standing::Stuck | Standing::FailedCreate => Err(job.stuck(&stack)),
            Standing::Settled => {
                // A failed update leaves the stack UPDATE_ROLLBACK_COMPLETE, already on
                // the previous template: confirm, rather than assume, that it matches.
                if self.is_previous(&stack).await? {
                    let mut facts = facts;
                    self.applied(&mut facts);
                    return finished(
                        facts,
                        &stack,
                        Self::REQUIRES_OUTPUTS,
                        format!(
                            "stack {} already on its previous template and parameters ({})",
                            job.stack, stack.status
                        ),
                    );
                }
                let token =
                    status::request_token(&job.step_token, &cfn::latest_event(&job.cf, &stack.id).await?);
                job.update(self, facts, token, false).await
            }
        }
    }

    async fn is_previous(&self, stack: &StackView) -> Result<bool, InfraError> {
        if !template::same_parameters(&self.previous.parameters, &stack.parameters) {
            return Ok(false);
        }
        Ok(cfn::original_template(&self.job.cf, &stack.id).await? == self.previous.template_body)
    }
}

/// RollbackInfra: the recorded template and parameters, the restore snapshot kept.
impl StackUpdate for Rollback<'_> {
    const REQUIRES_OUTPUTS: bool = false;
    const ON_FAILURE: &'static str =
        "The stack is still on the upgrade's template; fix the cause and roll back again.";

    fn request(&self, stack: &StackView) -> (TemplateSource<'_>, Vec<(String, ParamValue)>) {
        let parameters = template::rollback_parameters(&self.previous.parameters, &stack.parameters);
        (TemplateSource::Body(&self.previous.template_body), parameters)
    }

    fn unchanged(&self, _stack: &StackView) -> String {
        format!(
            "stack {} already on its previous template and parameters",
            self.job.stack
        )
    }

    fn succeeded(&self, _before: &TenantFacts, stack: &StackView) -> String {
        format!(
            "stack {} back on its previous template and parameters ({})",
            self.job.stack, stack.status
        )
    }

    fn disappeared(&self, sent: bool) -> String {
        let when = if sent {
            "during its rollback"
        } else {
            "before it could be rolled back"
        };
        format!("stack {} disappeared {when}", self.job.stack)
    }

    /// The stack is back on the template, and so the platform version, it had.
    fn applied(&self, facts: &mut TenantFacts) {
        facts.stack_platform = self.previous.platform;
    }
}
