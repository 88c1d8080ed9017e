//! RestoreDatabase: replace the tenant's database cluster with one restored from a
//! snapshot, by updating the stack's `RestoreSnapshotIdentifier` (same template, every
//! other parameter unchanged). CloudFormation builds the new cluster, moves the
//! instances and SSM parameters to it, and snapshots the old one.
//!
//! It runs in two phases. Restoring: the snapshot the operator chose. Rolling back a
//! failed upgrade: a schema migration that ran cannot be undone by a Helm rollback, so
//! the step restores the migration's pre-upgrade snapshot when its policy is
//! `automatic`, and stops for an operator's approval (the tenant goes Failed, and the
//! operator's restore of that snapshot is the approval) when it is `approval`. Either
//! restore of that snapshot puts the recorded schema back to the one before.

use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::cfn::{self, StackView, TemplateSource};
use super::job::{StackJob, StackUpdate};
use super::progress::{self, StackWork};
use super::status::{self, Standing};
use super::template::{self, param, ParamValue, CLUSTER_OUTPUT};
use super::{pending, InfraError, InfraSteps};
use crate::domain::MigrationRestore;
use crate::machine::TenantState;
use crate::record::{Migration, TenantFacts};
use crate::step::{StepContext, StepOutcome};

pub(super) async fn run(steps: &InfraSteps, ctx: StepContext<'_>) -> Result<StepOutcome, InfraError> {
    let facts = ctx.tenant.facts.clone();
    let (snapshot, why) = match &ctx.tenant.state {
        TenantState::Restoring { snapshot, .. } => {
            let migration = facts.migration.as_ref().filter(|m| m.snapshot == *snapshot);
            let why = match migration {
                Some(m) => Why::Approved(m.clone()),
                None => Why::Chosen,
            };
            (snapshot.as_str(), why)
        }
        TenantState::RollingBack { .. } => match &facts.migration {
            None => {
                let mut facts = facts;
                facts.progress = None;
                return Ok(StepOutcome::done(
                    "no migration ran; database left as it is",
                    facts,
                ));
            }
            Some(m) if m.restore == MigrationRestore::Approval => {
                return Ok(StepOutcome::fail(approval_needed(ctx.tenant.id().as_str(), m)));
            }
            Some(m) => (m.snapshot.as_str(), Why::Automatic(m.clone())),
        },
        other => {
            return Err(InfraError::Stack(format!(
                "RestoreDatabase runs only while a tenant is restoring or rolling back; this one is {}",
                other.label()
            )))
        }
    };
    let snapshot = snapshot.to_owned();
    let restore = Restore {
        job: StackJob::new(steps, ctx),
        rds: steps.rds(&ctx.tenant.spec),
        snapshot: &snapshot,
        why,
    };
    match progress::read(&facts, ctx.step) {
        Some(StackWork::Update { token, sent }) => restore.job.update(&restore, facts, token, sent).await,
        _ => restore.start(facts).await,
    }
}

/// The reason a rollback stops when restoring the migration's snapshot needs approval:
/// what ran, and the command that approves the restore.
fn approval_needed(tenant: &str, m: &Migration) -> String {
    format!(
        "a migration to schema {} ran; restoring snapshot {} needs an operator's approval: \
         tenantctl tenant restore {tenant} --snapshot {}",
        m.to, m.snapshot, m.snapshot
    )
}

/// Why this snapshot is restored.
enum Why {
    /// The operator chose it.
    Chosen,
    /// The rollback of a failed upgrade restores its migration's snapshot itself.
    Automatic(Migration),
    /// The operator restored a migration's snapshot its rollback waited to have approved.
    Approved(Migration),
}

impl Why {
    /// The migration this restore undoes, if any.
    fn migration(&self) -> Option<&Migration> {
        match self {
            Why::Chosen => None,
            Why::Automatic(m) | Why::Approved(m) => Some(m),
        }
    }

    /// How the summary of a finished restore begins.
    fn preface(&self) -> String {
        let schema = |m: &Migration| {
            m.from
                .as_ref()
                .map_or_else(|| "no recorded schema".to_owned(), |s| format!("schema {s}"))
        };
        match self {
            Why::Chosen => String::new(),
            Why::Automatic(m) => format!(
                "restored automatically after the failed migration to schema {} (back on {}): ",
                m.to,
                schema(m)
            ),
            Why::Approved(m) => format!(
                "restored after approval by {} of the failed migration to schema {} (back on {}): ",
                m.approved_by.as_deref().unwrap_or("an operator"),
                m.to,
                schema(m)
            ),
        }
    }
}

struct Restore<'a> {
    job: StackJob<'a>,
    rds: aws_sdk_rds::Client,
    snapshot: &'a str,
    why: Why,
}

/// What RDS says about the snapshot to restore from.
enum SnapshotState {
    Available,
    NotYet(String),
}

impl Restore<'_> {
    async fn start(&self, facts: TenantFacts) -> Result<StepOutcome, InfraError> {
        let job = &self.job;
        if let SnapshotState::NotYet(status) = self.check_snapshot().await? {
            return Ok(job.poll_later(
                facts,
                None,
                format!(
                    "snapshot {} is {status}; waiting until it is available",
                    self.snapshot
                ),
            ));
        }
        let Some(stack) = cfn::describe(&job.cf, &job.stack).await? else {
            return Err(InfraError::Stack(format!(
                "stack {} does not exist, so there is no database to restore",
                job.stack
            )));
        };
        match status::standing(&stack.status) {
            Standing::Busy => return Ok(job.wait_to_settle(facts, &stack)),
            Standing::Stuck | Standing::FailedCreate => return Err(job.stuck(&stack)),
            Standing::Settled => {}
        }
        match stack.parameters.get(param::RESTORE_SNAPSHOT) {
            None => Err(InfraError::Stack(format!(
                "stack {} has no {} parameter (its template predates restores); upgrade the tenant first",
                job.stack,
                param::RESTORE_SNAPSHOT
            ))),
            Some(current) if current == self.snapshot => Err(InfraError::Stack(format!(
                "the cluster of stack {} was already restored from snapshot {}, and CloudFormation does \
                 not restore from an unchanged value; copy the snapshot (aws rds copy-db-cluster-snapshot) \
                 and restore from the copy",
                job.stack, self.snapshot
            ))),
            Some(_) => {
                // Decided and persisted before sending, so a re-run after the update
                // recognises it as its own instead of "already restored".
                let latest = cfn::latest_event(&job.cf, &stack.id).await?;
                let token = status::request_token(&job.step_token, &format!("{}|{latest}", self.snapshot));
                Ok(pending(
                    facts,
                    job.ctx.step,
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
                self.job.ctx.tenant.spec.region,
                self.job
                    .ctx
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
}

/// RestoreDatabase: the stack's own template, with only the restore snapshot changed.
impl StackUpdate for Restore<'_> {
    const REQUIRES_OUTPUTS: bool = true;
    const ON_FAILURE: &'static str = "CloudFormation kept the existing cluster.";

    fn request(&self, stack: &StackView) -> (TemplateSource<'_>, Vec<(String, ParamValue)>) {
        let parameters = template::restore_parameters(&stack.parameters, self.snapshot);
        (TemplateSource::Previous, parameters)
    }

    // Only this step's own earlier run can have set the snapshot since it checked that
    // the stack had another one.
    fn unchanged(&self, _stack: &StackView) -> String {
        format!(
            "{}database restored from snapshot {}",
            self.why.preface(),
            self.snapshot
        )
    }

    fn succeeded(&self, before: &TenantFacts, stack: &StackView) -> String {
        let after = stack.outputs.get(CLUSTER_OUTPUT).cloned().unwrap_or_default();
        let preface = self.why.preface();
        let restored = match before.stack_outputs.get(CLUSTER_OUTPUT) {
            Some(before) if *before != after => format!(
                "database restored from snapshot {}: cluster {before} replaced by {after}",
                self.snapshot
            ),
            _ => format!(
                "database restored from snapshot {} into cluster {after}",
                self.snapshot
            ),
        };
        format!("{preface}{restored}")
    }

    /// The database is back on the schema from before the migration the snapshot holds.
    fn applied(&self, facts: &mut TenantFacts) {
        if let Some(migration) = self.why.migration() {
            facts.schema = migration.from.clone();
            facts.target_schema = migration.from.clone();
            facts.migration = None;
        }
        if let Why::Approved(_) = self.why {
            // This completes the rollback that waited for the approval: the tenant
            // runs the image it ran before the upgrade again.
            if let Some(previous) = facts.previous_image.clone() {
                facts.image = Some(previous);
            }
        }
    }

    fn running(&self, stack: &StackView) -> String {
        format!(
            "restoring from snapshot {}: stack {} {}",
            self.snapshot, self.job.stack, stack.status
        )
    }

    fn disappeared(&self, sent: bool) -> String {
        let when = if sent { "during" } else { "before" };
        format!("stack {} disappeared {when} the restore", self.job.stack)
    }
}
