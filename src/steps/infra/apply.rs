//! ProvisionInfra and UpdateInfra: bring the stack to the embedded template with the
//! parameters of the tenant's spec and region, creating it when it does not exist.
//!
//! UpdateInfra first records the stack as it is (template body and parameters) in
//! `facts.previous_stack` and persists that before it sends anything, so the record
//! exists exactly once per upgrade and always describes the stack before the upgrade.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_cloudformation::Client;

use super::cfn::{self, Observed, StackView, TemplateSource, UpdateStart};
use super::progress::{self, StackWork};
use super::status::{self, Operation, Standing};
use super::template::{self, TEMPLATE};
use super::{finished, pending, InfraError, InfraSteps};
use crate::machine::StepKind;
use crate::record::{StackRevision, TenantFacts};
use crate::step::{StepContext, StepOutcome};
use crate::steps::names;

pub(super) async fn run(steps: &InfraSteps, ctx: StepContext<'_>) -> Result<StepOutcome, InfraError> {
    let spec = &ctx.tenant.spec;
    let settings = steps.settings(spec)?;
    let owned =
        template::owned_parameters(spec, settings).map_err(|e| InfraError::Configuration(e.to_string()))?;
    let job = Apply {
        steps,
        ctx,
        cf: steps.cloudformation(spec),
        stack: names::stack(spec),
        owned,
        step_token: ctx.idempotency_token(),
    };
    let facts = ctx.tenant.facts.clone();
    match progress::read(&facts, ctx.step) {
        Some(StackWork::Create { token }) => job.poll_create(facts, token).await,
        Some(StackWork::ReplaceFailedCreate { stack_id }) => job.replace_failed(facts, stack_id, true).await,
        Some(StackWork::Update { token, sent }) => job.update(facts, token, sent).await,
        Some(StackWork::Delete { .. }) | None => job.start(facts).await,
    }
}

struct Apply<'a> {
    steps: &'a InfraSteps,
    ctx: StepContext<'a>,
    cf: Client,
    stack: String,
    owned: BTreeMap<String, String>,
    step_token: String,
}

impl Apply<'_> {
    fn step(&self) -> StepKind {
        self.ctx.step
    }

    /// Nothing in flight: decide from the stack as it is.
    async fn start(&self, facts: TenantFacts) -> Result<StepOutcome, InfraError> {
        let Some(stack) = cfn::describe(&self.cf, &self.stack).await? else {
            return self.create(facts, self.step_token.clone()).await;
        };
        match status::standing(&stack.status) {
            Standing::Busy => Ok(pending(
                facts,
                self.step(),
                None,
                self.steps.poll_after(),
                format!(
                    "stack {} is {}; waiting for it to settle",
                    self.stack, stack.status
                ),
            )),
            Standing::Stuck => Err(InfraError::Stack(status::stuck_reason(
                &self.stack,
                &stack.status,
            ))),
            Standing::FailedCreate => self.delete_failed(facts, &stack).await,
            Standing::Settled => {
                let token =
                    status::request_token(&self.step_token, &cfn::latest_event(&self.cf, &stack.id).await?);
                if self.step() == StepKind::UpdateInfra {
                    return self.record_previous(facts, &stack, token).await;
                }
                self.update(facts, token, false).await
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
        let template_body = cfn::original_template(&self.cf, &stack.id).await?;
        facts.previous_stack = Some(StackRevision {
            template_body,
            parameters: stack.parameters.clone(),
        });
        facts.previous_stack_upgrade = progress::upgrade_label(&self.ctx.tenant.state);
        Ok(pending(
            facts,
            self.step(),
            Some(StackWork::Update { token, sent: false }),
            Duration::ZERO,
            format!(
                "recorded stack {} ({}) before updating it",
                self.stack, stack.status
            ),
        ))
    }

    async fn create(&self, facts: TenantFacts, token: String) -> Result<StepOutcome, InfraError> {
        self.send_create(&token).await?;
        self.poll_create(facts, token).await
    }

    async fn send_create(&self, token: &str) -> Result<(), InfraError> {
        cfn::create(
            &self.cf,
            &self.stack,
            TEMPLATE,
            &template::create_parameters(&self.owned),
            token,
            self.steps.termination_protection(),
        )
        .await
    }

    async fn poll_create(&self, facts: TenantFacts, token: String) -> Result<StepOutcome, InfraError> {
        let advice = "Fix the cause and retry: the failed stack is then deleted and created again.";
        let mut observed =
            cfn::observe(&self.cf, &self.stack, Operation::Create, Some(&token), advice).await?;
        if let Observed::Gone = observed {
            // The request was lost before CloudFormation took it: send it again, with
            // the same token in case it was not lost after all.
            self.send_create(&token).await?;
            observed = cfn::observe(&self.cf, &self.stack, Operation::Create, Some(&token), advice).await?;
        }
        match observed {
            Observed::Succeeded(stack) => finished(
                facts,
                &stack,
                true,
                format!("stack {} {}", self.stack, stack.status),
            ),
            Observed::Running(stack) => Ok(pending(
                facts,
                self.step(),
                Some(StackWork::Create { token }),
                self.steps.poll_after(),
                format!("stack {} {}", self.stack, stack.status),
            )),
            Observed::Gone => Err(InfraError::Stack(format!(
                "CloudFormation accepted the creation of stack {} but does not know the stack; retry",
                self.stack
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
        cfn::delete(
            &self.cf,
            stack,
            &status::request_token(&self.step_token, &stack.id),
        )
        .await
    }

    /// Waits for the failed stack `stack_id` to be gone, then creates the stack again.
    /// `resend` when the deletion was requested by an earlier run and may have been lost.
    async fn replace_failed(
        &self,
        facts: TenantFacts,
        stack_id: String,
        resend: bool,
    ) -> Result<StepOutcome, InfraError> {
        let old = cfn::describe(&self.cf, &stack_id).await?;
        let waiting = |note: String| {
            Ok(pending(
                facts.clone(),
                self.step(),
                Some(StackWork::ReplaceFailedCreate {
                    stack_id: stack_id.clone(),
                }),
                self.steps.poll_after(),
                note,
            ))
        };
        match old {
            Some(stack) if stack.status == "DELETE_FAILED" => {
                let reason = cfn::failure_reason(&self.cf, &stack.id, None).await?;
                Err(InfraError::Stack(format!(
                    "the failed stack {} could not be deleted: {reason}. Delete it by hand \
                     (aws cloudformation delete-stack), then retry.",
                    self.stack
                )))
            }
            Some(stack) if status::standing(&stack.status) == Standing::FailedCreate => {
                if resend {
                    self.send_delete(&stack).await?;
                }
                waiting(format!(
                    "deleting the failed stack {}: {}",
                    self.stack, stack.status
                ))
            }
            Some(stack) if stack.status.ends_with("_IN_PROGRESS") => waiting(format!(
                "deleting the failed stack {}: {}",
                self.stack, stack.status
            )),
            Some(stack) if stack.status != "DELETE_COMPLETE" => Err(InfraError::Stack(status::stuck_reason(
                &self.stack,
                &stack.status,
            ))),
            _ => {
                // A new token: the failed stack's creation may have used this step's
                // token, and CloudFormation takes a create with a known token for a repeat.
                let token = status::request_token(&self.step_token, &stack_id);
                self.create(facts, token).await
            }
        }
    }

    async fn update(&self, facts: TenantFacts, token: String, sent: bool) -> Result<StepOutcome, InfraError> {
        if !sent {
            let Some(stack) = cfn::describe(&self.cf, &self.stack).await? else {
                return Err(InfraError::Stack(format!(
                    "stack {} disappeared before it could be updated; retry to create it again",
                    self.stack
                )));
            };
            let parameters = template::update_parameters(&self.owned, &stack.parameters);
            match cfn::update(
                &self.cf,
                &self.stack,
                TemplateSource::Body(TEMPLATE),
                parameters,
                &token,
            )
            .await?
            {
                UpdateStart::NoChanges => {
                    return finished(
                        facts,
                        &stack,
                        true,
                        format!("stack {} already up to date ({})", self.stack, stack.status),
                    )
                }
                UpdateStart::Busy(message) => {
                    return Ok(pending(
                        facts,
                        self.step(),
                        Some(StackWork::Update { token, sent: false }),
                        self.steps.poll_after(),
                        message,
                    ))
                }
                UpdateStart::Started => {}
            }
        }
        let advice = "CloudFormation put the stack back on its previous template and parameters.";
        match cfn::observe(&self.cf, &self.stack, Operation::Update, Some(&token), advice).await? {
            Observed::Succeeded(stack) => finished(
                facts,
                &stack,
                true,
                format!("stack {} {}", self.stack, stack.status),
            ),
            Observed::Running(stack) => Ok(pending(
                facts,
                self.step(),
                Some(StackWork::Update { token, sent: true }),
                self.steps.poll_after(),
                format!("stack {} {}", self.stack, stack.status),
            )),
            Observed::Gone => Err(InfraError::Stack(format!(
                "stack {} disappeared during its update; retry to create it again",
                self.stack
            ))),
        }
    }
}
