//! DeleteStack: turn termination protection off and delete the stack. The template's
//! deletion policies keep the bucket and leave a final snapshot of the cluster.

use super::cfn::{self, StackView};
use super::job::StackJob;
use super::progress::{self, StackWork};
use super::status::{self, Operation, Standing, Verdict};
use super::{InfraError, InfraSteps};
use crate::record::TenantFacts;
use crate::step::{StepContext, StepOutcome};

pub(super) async fn run(steps: &InfraSteps, ctx: StepContext<'_>) -> Result<StepOutcome, InfraError> {
    let delete = Delete {
        job: StackJob::new(steps, ctx),
    };
    let facts = ctx.tenant.facts.clone();
    match progress::read(&facts, ctx.step) {
        Some(StackWork::Delete { token, stack_id }) => delete.watch(facts, token, stack_id, true).await,
        _ => delete.start(facts).await,
    }
}

struct Delete<'a> {
    job: StackJob<'a>,
}

impl Delete<'_> {
    async fn start(&self, facts: TenantFacts) -> Result<StepOutcome, InfraError> {
        let job = &self.job;
        let Some(stack) = cfn::describe(&job.cf, &job.stack).await? else {
            return Ok(self.deleted(
                facts,
                format!("stack {} does not exist (already deleted)", job.stack),
            ));
        };
        let token = status::request_token(&job.step_token, &stack.id);
        if stack.status == "DELETE_IN_PROGRESS" {
            return self.watch(facts, token, stack.id.clone(), false).await;
        }
        // DELETE_FAILED is deleted again: the operator retried after fixing the cause.
        if status::standing(&stack.status) == Standing::Busy {
            return Ok(job.wait_to_settle(facts, &stack));
        }
        self.send(&stack, &token).await?;
        self.watch(facts, token, stack.id.clone(), false).await
    }

    async fn send(&self, stack: &StackView, token: &str) -> Result<(), InfraError> {
        tracing::info!(stack = %stack.id, status = %stack.status, protected = stack.termination_protection, "deleting stack");
        self.job.admit_cloudformation().await?;
        cfn::delete(&self.job.cf, stack, token).await
    }

    /// Follows the deletion of `stack_id`; `resend` when an earlier run asked for it and
    /// the request may have been lost.
    async fn watch(
        &self,
        facts: TenantFacts,
        token: String,
        stack_id: String,
        resend: bool,
    ) -> Result<StepOutcome, InfraError> {
        let job = &self.job;
        let Some(stack) = cfn::describe(&job.cf, &stack_id).await? else {
            return Ok(self.deleted(facts, format!("stack {} deleted", job.stack)));
        };
        let waiting = |facts, token, stack_id| {
            job.poll_later(
                facts,
                Some(StackWork::Delete { token, stack_id }),
                format!("deleting stack {}: {}", job.stack, stack.status),
            )
        };
        match status::verdict(Operation::Delete, &stack.status) {
            Verdict::Succeeded => Ok(self.deleted(
                facts,
                format!(
                    "stack {} deleted (its bucket is retained and its cluster left a final snapshot)",
                    job.stack
                ),
            )),
            Verdict::Running => Ok(waiting(facts, token, stack_id)),
            Verdict::Failed if stack.status == "DELETE_FAILED" => {
                let reason = cfn::failure_reason(&job.cf, &stack.id, Some(&token)).await?;
                Err(InfraError::Stack(format!(
                    "stack {} is DELETE_FAILED: {reason}. Fix or remove that resource, then retry.",
                    job.stack
                )))
            }
            // The deletion has not begun: the request was lost, or is not visible yet.
            Verdict::Failed => {
                if resend {
                    self.send(&stack, &token).await?;
                }
                Ok(waiting(facts, token, stack_id))
            }
        }
    }

    fn deleted(&self, mut facts: TenantFacts, summary: String) -> StepOutcome {
        // The outputs and the saved revision described a stack that no longer exists;
        // the stack id stays, to find the deleted stack in CloudFormation's history.
        facts.stack_outputs.clear();
        facts.previous_stack = None;
        facts.previous_stack_upgrade = None;
        facts.progress = None;
        StepOutcome::done(summary, facts)
    }
}
