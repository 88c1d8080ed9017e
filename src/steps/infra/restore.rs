//! RestoreDatabase: replace the tenant's database cluster with one restored from the
//! snapshot the operator chose, by updating the stack's `RestoreSnapshotIdentifier`
//! (same template, every other parameter unchanged). CloudFormation builds the new
//! cluster, moves the instances and SSM parameters to it, and snapshots the old one.

use aws_sdk_cloudformation::Client;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::cfn::{self, Observed, TemplateSource, UpdateStart};
use super::progress::{self, StackWork};
use super::status::{self, Operation, Standing};
use super::template::{self, param, CLUSTER_OUTPUT};
use super::{finished, pending, InfraError, InfraSteps};
use crate::machine::TenantState;
use crate::record::TenantFacts;
use crate::step::{StepContext, StepOutcome};
use crate::steps::names;

pub(super) async fn run(steps: &InfraSteps, ctx: StepContext<'_>) -> Result<StepOutcome, InfraError> {
    let TenantState::Restoring { snapshot, .. } = &ctx.tenant.state else {
        return Err(InfraError::Stack(format!(
            "RestoreDatabase runs only while a tenant is restoring; this one is {}",
            ctx.tenant.state.label()
        )));
    };
    let spec = &ctx.tenant.spec;
    let job = Restore {
        steps,
        ctx,
        cf: steps.cloudformation(spec),
        rds: steps.rds(spec),
        stack: names::stack(spec),
        snapshot,
        step_token: ctx.idempotency_token(),
    };
    let facts = ctx.tenant.facts.clone();
    match progress::read(&facts, ctx.step) {
        Some(StackWork::Update { token, sent }) => job.update(facts, token, sent).await,
        _ => job.start(facts).await,
    }
}

struct Restore<'a> {
    steps: &'a InfraSteps,
    ctx: StepContext<'a>,
    cf: Client,
    rds: aws_sdk_rds::Client,
    stack: String,
    snapshot: &'a str,
    step_token: String,
}

/// What RDS says about the snapshot to restore from.
enum SnapshotState {
    Available,
    NotYet(String),
}

impl Restore<'_> {
    async fn start(&self, facts: TenantFacts) -> Result<StepOutcome, InfraError> {
        if let SnapshotState::NotYet(status) = self.check_snapshot().await? {
            return Ok(pending(
                facts,
                self.ctx.step,
                None,
                self.steps.poll_after(),
                format!(
                    "snapshot {} is {status}; waiting until it is available",
                    self.snapshot
                ),
            ));
        }
        let Some(stack) = cfn::describe(&self.cf, &self.stack).await? else {
            return Err(InfraError::Stack(format!(
                "stack {} does not exist, so there is no database to restore",
                self.stack
            )));
        };
        match status::standing(&stack.status) {
            Standing::Busy => {
                return Ok(pending(
                    facts,
                    self.ctx.step,
                    None,
                    self.steps.poll_after(),
                    format!(
                        "stack {} is {}; waiting for it to settle",
                        self.stack, stack.status
                    ),
                ))
            }
            Standing::Stuck | Standing::FailedCreate => {
                return Err(InfraError::Stack(status::stuck_reason(
                    &self.stack,
                    &stack.status,
                )))
            }
            Standing::Settled => {}
        }
        match stack.parameters.get(param::RESTORE_SNAPSHOT) {
            None => Err(InfraError::Stack(format!(
                "stack {} has no {} parameter (its template predates restores); upgrade the tenant first",
                self.stack,
                param::RESTORE_SNAPSHOT
            ))),
            Some(current) if current == self.snapshot => Err(InfraError::Stack(format!(
                "the cluster of stack {} was already restored from snapshot {}, and CloudFormation does \
                 not restore from an unchanged value; copy the snapshot (aws rds copy-db-cluster-snapshot) \
                 and restore from the copy",
                self.stack, self.snapshot
            ))),
            Some(_) => {
                // Decided and persisted before sending, so a re-run after the update
                // recognises it as its own instead of "already restored".
                let latest = cfn::latest_event(&self.cf, &stack.id).await?;
                let token = status::request_token(&self.step_token, &format!("{}|{latest}", self.snapshot));
                Ok(pending(
                    facts,
                    self.ctx.step,
                    Some(StackWork::Update { token, sent: false }),
                    std::time::Duration::ZERO,
                    format!("snapshot {} is available; restoring from it", self.snapshot),
                ))
            }
        }
    }

    async fn check_snapshot(&self) -> Result<SnapshotState, InfraError> {
        let mut request = self
            .rds
            .describe_db_cluster_snapshots()
            .db_cluster_snapshot_identifier(self.snapshot);
        // RDS lists automated snapshots only when asked for them by type.
        let name = self
            .snapshot
            .rsplit(":cluster-snapshot:")
            .next()
            .unwrap_or(self.snapshot);
        if name.starts_with("rds:") {
            request = request.snapshot_type("automated");
        }
        let missing = || {
            InfraError::Stack(format!(
                "snapshot {} does not exist in region {}: choose one of the cluster's snapshots \
                 (aws rds describe-db-cluster-snapshots --db-cluster-identifier {}) and restore again",
                self.snapshot,
                self.ctx.tenant.spec.region,
                self.ctx
                    .tenant
                    .facts
                    .stack_outputs
                    .get(CLUSTER_OUTPUT)
                    .map(String::as_str)
                    .unwrap_or("<cluster>")
            ))
        };
        let response = match request.send().await {
            Ok(r) => r,
            Err(err) if err.code() == Some("DBClusterSnapshotNotFoundFault") => return Err(missing()),
            Err(err) => {
                return Err(InfraError::aws(
                    &format!("looking up snapshot {}", self.snapshot),
                    err,
                ))
            }
        };
        let Some(found) = response.db_cluster_snapshots().first() else {
            return Err(missing());
        };
        match found.status().unwrap_or("available") {
            "available" => Ok(SnapshotState::Available),
            "creating" | "copying" => Ok(SnapshotState::NotYet(found.status().unwrap_or_default().into())),
            other => Err(InfraError::Stack(format!(
                "snapshot {} is {other} and cannot be restored from; choose another snapshot",
                self.snapshot
            ))),
        }
    }

    async fn update(&self, facts: TenantFacts, token: String, sent: bool) -> Result<StepOutcome, InfraError> {
        let before = facts.stack_outputs.get(CLUSTER_OUTPUT).cloned();
        if !sent {
            let Some(stack) = cfn::describe(&self.cf, &self.stack).await? else {
                return Err(InfraError::Stack(format!(
                    "stack {} disappeared before the restore",
                    self.stack
                )));
            };
            let parameters = template::restore_parameters(&stack.parameters, self.snapshot);
            match cfn::update(
                &self.cf,
                &self.stack,
                TemplateSource::Previous,
                parameters,
                &token,
            )
            .await?
            {
                // Only this step's own earlier run can have set the snapshot since it
                // checked that the stack had another one.
                UpdateStart::NoChanges => {
                    return finished(
                        facts,
                        &stack,
                        true,
                        format!("database restored from snapshot {}", self.snapshot),
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
        let advice = "CloudFormation kept the existing cluster.";
        match cfn::observe(&self.cf, &self.stack, Operation::Update, Some(&token), advice).await? {
            Observed::Succeeded(stack) => {
                let after = stack.outputs.get(CLUSTER_OUTPUT).cloned().unwrap_or_default();
                let summary = match before {
                    Some(before) if before != after => format!(
                        "database restored from snapshot {}: cluster {before} replaced by {after}",
                        self.snapshot
                    ),
                    _ => format!(
                        "database restored from snapshot {} into cluster {after}",
                        self.snapshot
                    ),
                };
                finished(facts, &stack, true, summary)
            }
            Observed::Running(stack) => Ok(pending(
                facts,
                self.ctx.step,
                Some(StackWork::Update { token, sent: true }),
                self.steps.poll_after(),
                format!(
                    "restoring from snapshot {}: stack {} {}",
                    self.snapshot, self.stack, stack.status
                ),
            )),
            Observed::Gone => Err(InfraError::Stack(format!(
                "stack {} disappeared during the restore",
                self.stack
            ))),
        }
    }
}
