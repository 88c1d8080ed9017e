//! ProvisionInfra and UpdateInfra: bring the stack to the tenant's template (its
//! platform version's, else the embedded one) with the parameters of its spec and
//! region, creating it when it does not exist. Done, the step records the platform
//! version applied (`facts.stack_platform`).
//!
//! UpdateInfra first records the stack as it is (template body and parameters) in
//! `facts.previous_stack` and persists that before it sends anything, so the record
//! exists exactly once per upgrade and always describes the stack before the upgrade.

use std::collections::BTreeMap;
use std::time::Duration;

use super::cfn::{self, Observed, StackView, TemplateSource};
use super::job::{StackJob, StackUpdate};
use super::progress::{self, StackWork};
use super::status::{self, Operation, Standing};
use super::template::{self, ParamValue};
use super::{finished, pending, InfraError, InfraSteps};
use crate::machine::StepKind;
use crate::record::{StackRevision, TenantFacts};
use crate::step::{StepContext, StepOutcome};

pub(super) async fn run(steps: &InfraSteps, ctx: StepContext<'_>) -> Result<StepOutcome, InfraError> {
    let owned = steps.owned_parameters(&ctx.tenant.spec)?;
    let apply = Apply {
        job: StackJob::new(steps, ctx),
        owned,
        template: steps.template(&ctx.tenant.spec).await?,
    };
    let facts = ctx.tenant.facts.clone();
    match progress::read(&facts, ctx.step) {
        Some(StackWork::Create { token }) => apply.poll_create(facts, token).await,
        Some(StackWork::ReplaceFailedCreate { stack_id }) => {
            apply.replace_failed(facts, stack_id, true).await
        }
        Some(StackWork::Update { token, sent }) => apply.job.update(&apply, facts, token, sent).await,
        Some(StackWork::Delete { .. }) | None => apply.start(facts).await,
    }
}

struct Apply<'a> {
    job: StackJob<'a>,
    owned: BTreeMap<String, String>,
    /// The template body the tenant's platform gives.
    template: String,
}

impl Apply<'_> {
    /// Nothing in flight: decide from the stack as it is.
    async fn start(&self, facts: TenantFacts) -> Result<StepOutcome, InfraError> {
        let job = &self.job;
        let Some(stack) = cfn::describe(&job.cf, &job.stack).await? else {
            return self.create(facts, job.step_token.clone()).await;
        };
        match status::standing(&stack.status) {
            Standing::Busy => Ok(job.wait_to_settle(facts, &stack)),
            Standing::Stuck => Err(job.stuck(&stack)),
            Standing::FailedCreate => self.delete_failed(facts, &stack).await,
            Standing::Settled => {
                let token =
                    status::request_token(&job.step_token, &cfn::latest_event(&job.cf, &stack.id).await?);
                if job.ctx.step == StepKind::UpdateInfra {
                    return self.record_previous(facts, &stack, token).await;
                }
                job.update(self, facts, token, false).await
            }
        }
    }

    /// Saves the stack's template and parameters for RollbackInfra; the update is sent
    /// on the next run, once this record is persisted.
    async fn record_previous(
        &self,
        mut facts: TenantFacts,
        stack: &StackView,
        token: String,
    ) -> Result<StepOutcome, InfraError> {
        let job = &self.job;
        let template_body = cfn::original_template(&job.cf, &stack.id).await?;
        facts.previous_stack = Some(StackRevision {
            template_body,
            parameters: stack.parameters.clone(),
            platform: facts.stack_platform,
        });
        facts.previous_stack_upgrade = progress::upgrade_label(&job.ctx.tenant.state);
        Ok(pending(
            facts,
            job.ctx.step,
            Some(StackWork::Update { token, sent: false }),
            Duration::ZERO,
            format!(
                "recorded stack {} ({}) before updating it",
                job.stack, stack.status
            ),
        ))
    }

    async fn create(&self, facts: TenantFacts, token: String) -> Result<StepOutcome, InfraError> {
        self.send_create(&token).await?;
        self.poll_create(facts, token).await
    }

    async fn send_create(&self, token: &str) -> Result<(), InfraError> {
        self.job.admit_cloudformation().await?;
        cfn::create(
            &self.job.cf,
            &self.job.stack,
            &self.template,
            &template::create_parameters(&self.owned),
            token,
            self.job.steps.termination_protection(),
        )
        .await
    }

    async fn poll_create(&self, facts: TenantFacts, token: String) -> Result<StepOutcome, InfraError> {
        let job = &self.job;
        let advice = "Fix the cause and retry: the failed stack is then deleted and created again.";
        let mut observed = cfn::observe(&job.cf, &job.stack, Operation::Create, Some(&token), advice).await?;
        if let Observed::Gone = observed {
            // The request was lost before CloudFormation took it: send it again, with
            // the same token in case it was not lost after all.
            self.send_create(&token).await?;
            observed = cfn::observe(&job.cf, &job.stack, Operation::Create, Some(&token), advice).await?;
        }
        match observed {
            Observed::Succeeded(stack) => finished(
                self.applied_to(facts),
                &stack,
                true,
                format!("stack {} {}", job.stack, stack.status),
            ),
            Observed::Running(stack) => Ok(job.poll_later(
                facts,
                Some(StackWork::Create { token }),
                format!("stack {} {}", job.stack, stack.status),
            )),
            Observed::Gone => Err(InfraError::Stack(format!(
                "CloudFormation accepted the creation of stack {} but does not know the stack; retry",
                job.stack
            ))),
        }
    }

    /// A stack whose creation failed cannot be updated, only deleted: that happens when
    /// the operator retries, then the stack is created anew.
    async fn delete_failed(&self, facts: TenantFacts, stack: &StackView) -> Result<StepOutcome, InfraError> {
        tracing::info!(stack = %stack.id, status = %stack.status, "deleting a stack whose creation failed");
        self.send_delete(stack).await?;
        self.replace_failed(facts, stack.id.clone(), false).await
    }

    async fn send_delete(&self, stack: &StackView) -> Result<(), InfraError> {
        let token = status::request_token(&self.job.step_token, &stack.id);
        self.job.admit_cloudformation().await?;
        cfn::delete(&self.job.cf, stack, &token).await
    }

    /// Waits for the failed stack `stack_id` to be gone, then creates the stack again.
    /// `resend` when the deletion was requested by an earlier run and may have been lost.
    async fn replace_failed(
        &self,
        facts: TenantFacts,
        stack_id: String,
        resend: bool,
    ) -> Result<StepOutcome, InfraError> {
        let job = &self.job;
        let old = cfn::describe(&job.cf, &stack_id).await?;
        let waiting = |note: String| {
            let work = StackWork::ReplaceFailedCreate {
                stack_id: stack_id.clone(),
            };
            Ok(job.poll_later(facts.clone(), Some(work), note))
        };
        match old {
            Some(stack) if stack.status == "DELETE_FAILED" => {
                let reason = cfn::failure_reason(&job.cf, &stack.id, None).await?;
                Err(InfraError::Stack(format!(
                    "the failed stack {} could not be deleted: {reason}. Delete it by hand \
                     (aws cloudformation delete-stack), then retry.",
                    job.stack
                )))
            }
            Some(stack) if status::standing(&stack.status) == Standing::FailedCreate => {
                if resend {
                    self.send_delete(&stack).await?;
                }
                waiting(format!(
                    "deleting the failed stack {}: {}",
                    job.stack, stack.status
                ))
            }
            Some(stack) if stack.status.ends_with("_IN_PROGRESS") => waiting(format!(
                "deleting the failed stack {}: {}",
                job.stack, stack.status
            )),
            Some(stack) if stack.status != "DELETE_COMPLETE" => Err(job.stuck(&stack)),
            _ => {
                // A new token: the failed stack's creation may have used this step's
                // token, and CloudFormation takes a create with a known token for a repeat.
                let token = status::request_token(&job.step_token, &stack_id);
                self.create(facts, token).await
            }
        }
    }
}

impl Apply<'_> {
    fn applied_to(&self, mut facts: TenantFacts) -> TenantFacts {
        StackUpdate::applied(self, &mut facts);
        facts
    }
}

/// UpdateInfra (and ProvisionInfra on an existing stack): the tenant's template, with
/// the parameters the orchestrator owns set and the others kept.
impl StackUpdate for Apply<'_> {
    const REQUIRES_OUTPUTS: bool = true;
    const ON_FAILURE: &'static str =
        "CloudFormation put the stack back on its previous template and parameters.";
    const GUARDED: bool = true;

    fn request(&self, stack: &StackView) -> (TemplateSource<'_>, Vec<(String, ParamValue)>) {
        let parameters = template::update_parameters(&self.owned, &stack.parameters);
        (TemplateSource::Body(&self.template), parameters)
    }

    fn applied(&self, facts: &mut TenantFacts) {
        facts.stack_platform = self.job.ctx.tenant.spec.platform;
    }

    fn unchanged(&self, stack: &StackView) -> String {
        format!("stack {} already up to date ({})", self.job.stack, stack.status)
    }

    fn succeeded(&self, _before: &TenantFacts, stack: &StackView) -> String {
        format!("stack {} {}", self.job.stack, stack.status)
    }

    fn disappeared(&self, sent: bool) -> String {
        let when = if sent {
            "during its update"
        } else {
            "before it could be updated"
        };
        format!(
            "stack {} disappeared {when}; retry to create it again",
            self.job.stack
        )
    }
}
