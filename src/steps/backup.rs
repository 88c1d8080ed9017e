//! Backup and FinalBackup: a manual RDS cluster snapshot of the tenant's database,
//! taken before an upgrade changes anything and before the tenant is removed. The
//! snapshot's identifier is derived from the tenant and the step's history event, so a
//! re-run polls the snapshot it started instead of taking a second one.

mod naming;

use crate::steps::rate_limits::LimitedService;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_rds::types::{DbClusterSnapshot, Tag};
use serde::{Deserialize, Serialize};
use tracing::{info, instrument, warn};

use crate::record::TenantFacts;
use crate::step::{Step, StepContext, StepOutcome};

use super::{aws_failure, names, AwsClients};

pub use naming::{beyond_retention, identifier_prefix, snapshot_identifier, Purpose};

/// The stack output naming the tenant's Aurora cluster (written by the infra step).
pub const CLUSTER_OUTPUT: &str = "DatabaseClusterIdentifier";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupConfig {
    /// Pre-upgrade snapshots kept per tenant: after a successful backup, the tenant's
    /// older ones beyond this many are deleted. The snapshot just taken always stays;
    /// final backups are never deleted.
    pub keep_snapshots: usize,
    /// Seconds between checks of a snapshot that is still being created.
    pub poll_seconds: u64,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            keep_snapshots: 5,
            poll_seconds: 15,
        }
    }
}

/// Where a snapshot stands, from its RDS status.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Progress {
    Creating,
    Available,
    Unusable(String),
}

fn progress(status: &str) -> Progress {
    match status {
        "available" => Progress::Available,
        // `copying` and `pending` only appear briefly on some engines; both end in
        // `available` or `failed`.
        "creating" | "copying" | "pending" => Progress::Creating,
        other => Progress::Unusable(other.to_owned()),
    }
}

/// The `Backup` (purpose `PreUpgrade`) and `FinalBackup` (purpose `Final`) steps.
pub struct SnapshotDatabase {
    purpose: Purpose,
    config: BackupConfig,
    aws: Arc<AwsClients>,
}

impl SnapshotDatabase {
    pub fn before_upgrade(config: BackupConfig, aws: Arc<AwsClients>) -> Self {
        Self {
            purpose: Purpose::PreUpgrade,
            config,
            aws,
        }
    }

    pub fn final_backup(config: BackupConfig, aws: Arc<AwsClients>) -> Self {
        Self {
            purpose: Purpose::Final,
            config,
            aws,
        }
    }

    /// No database to snapshot: nothing to lose when removing the tenant, but an
    /// upgrade must not go ahead without its backup.
    fn no_cluster(&self, ctx: &StepContext<'_>, why: &str) -> StepOutcome {
        match self.purpose {
            Purpose::Final => {
                let mut facts = ctx.tenant.facts.clone();
                facts.progress = None;
                StepOutcome::done(format!("nothing to back up: {why}"), facts)
            }
            Purpose::PreUpgrade => StepOutcome::fail(format!(
                "cannot back up tenant {} before the upgrade: {why}; the upgrade was not started. \
                 Check stack {} and its output {CLUSTER_OUTPUT}, then retry the upgrade",
                ctx.tenant.id(),
                names::stack(&ctx.tenant.spec)
            )),
        }
    }

    /// The snapshot named `id`, if it exists.
    async fn find(
        &self,
        rds: &aws_sdk_rds::Client,
        id: &str,
    ) -> Result<Option<DbClusterSnapshot>, StepOutcome> {
        match rds
            .describe_db_cluster_snapshots()
            .db_cluster_snapshot_identifier(id)
            .send()
            .await
        {
            Ok(out) => Ok(out.db_cluster_snapshots.unwrap_or_default().into_iter().next()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_db_cluster_snapshot_not_found_fault()) =>
            {
                Ok(None)
            }
            Err(err) => Err(aws_failure(&format!("describing snapshot {id}"), err)),
        }
    }

    /// Starts the snapshot, or finds it when another run started it meanwhile.
    async fn start(
        &self,
        ctx: &StepContext<'_>,
        rds: &aws_sdk_rds::Client,
        cluster: &str,
        id: &str,
    ) -> Result<DbClusterSnapshot, StepOutcome> {
        let spec = &ctx.tenant.spec;
        let mut tags = vec![
            tag("tenant", spec.id.as_str()),
            tag("environment", spec.environment.as_str()),
            tag("managed-by", "tenant-orchestrator"),
            tag("purpose", self.purpose.as_str()),
        ];
        if let Some(release) = ctx.tenant.state.working_release() {
            tags.push(tag("release", &release.to_string()));
        }
        (self.aws.admit_tenant(LimitedService::Rds, spec).await)
            .map_err(|e| e.into_outcome(&ctx.tenant.facts))?;
        let created = rds
            .create_db_cluster_snapshot()
            .db_cluster_identifier(cluster)
            .db_cluster_snapshot_identifier(id)
            .set_tags(Some(tags))
            .send()
            .await;
        match created {
            Ok(out) => out.db_cluster_snapshot.ok_or_else(|| {
                StepOutcome::retry(format!("creating snapshot {id}: no snapshot in the response"))
            }),
            Err(err) => {
                let Some(service) = err.as_service_error() else {
                    return Err(aws_failure(&format!("creating snapshot {id}"), err));
                };
                if service.is_db_cluster_snapshot_already_exists_fault() {
                    return self.find(rds, id).await?.ok_or_else(|| {
                        StepOutcome::retry(format!("snapshot {id} exists but cannot be described yet"))
                    });
                }
                if service.is_db_cluster_not_found_fault() {
                    return Err(
                        self.no_cluster(ctx, &format!("its database cluster {cluster} does not exist"))
                    );
                }
                if service.is_invalid_db_cluster_state_fault() {
                    // A cluster being modified or backed up accepts snapshots again
                    // shortly; a stopped one needs an operator, hence the hint.
                    return Err(StepOutcome::retry(format!(
                        "database cluster {cluster} cannot be snapshotted in its current state \
                         (it must be available; start it if it is stopped): {}",
                        service.meta().message().unwrap_or("no message")
                    )));
                }
                if service.is_snapshot_quota_exceeded_fault() {
                    return Err(StepOutcome::fail(format!(
                        "cannot create snapshot {id}: the account's snapshot quota is reached; delete \
                         unneeded cluster snapshots or lower backup.keep_snapshots, then retry"
                    )));
                }
                Err(aws_failure(&format!("creating snapshot {id}"), err))
            }
        }
    }

    /// Deletes this tenant's pre-upgrade snapshots beyond the retention. A snapshot
    /// that cannot be deleted now stays recorded and is tried again after the next
    /// backup: retention never fails the backup that triggered it.
    async fn apply_retention(
        &self,
        ctx: &StepContext<'_>,
        rds: &aws_sdk_rds::Client,
        facts: &mut TenantFacts,
    ) -> String {
        let prefix = identifier_prefix(&ctx.tenant.spec, Purpose::PreUpgrade);
        let mut deleted = Vec::new();
        let mut kept = Vec::new();
        for id in beyond_retention(&facts.snapshots, &prefix, self.config.keep_snapshots) {
            if let Err(e) = self.aws.admit_tenant(LimitedService::Rds, &ctx.tenant.spec).await {
                // Retention is never worth a wait: the next backup deletes it.
                warn!(snapshot = %id, reason = %e, "retention left a snapshot for later");
                kept.push(id);
                continue;
            }
            match rds
                .delete_db_cluster_snapshot()
                .db_cluster_snapshot_identifier(&id)
                .send()
                .await
            {
                Ok(_) => deleted.push(id),
                Err(err)
                    if err
                        .as_service_error()
                        .is_some_and(|e| e.is_db_cluster_snapshot_not_found_fault()) =>
                {
                    deleted.push(id)
                }
                Err(err) => {
                    let reason = aws_smithy_types::error::display::DisplayErrorContext(&err).to_string();
                    warn!(snapshot = %id, %reason, "retention could not delete a snapshot; keeping it recorded");
                    kept.push(id);
                }
            }
        }
        facts.snapshots.retain(|id| !deleted.contains(id));
        let mut note = String::new();
        if !deleted.is_empty() {
            note.push_str(&format!("; retention deleted {}", deleted.join(", ")));
        }
        if !kept.is_empty() {
            note.push_str(&format!("; retention could not delete {} yet", kept.join(", ")));
        }
        note
    }
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

#[async_trait]
impl Step for SnapshotDatabase {
    #[instrument(skip_all, fields(tenant = %ctx.tenant.id(), step = %ctx.step))]
    async fn run(&self, ctx: StepContext<'_>) -> StepOutcome {
        let tenant = ctx.tenant;
        let Some(cluster) = tenant.facts.stack_outputs.get(CLUSTER_OUTPUT).cloned() else {
            return self.no_cluster(&ctx, &format!("no stack output {CLUSTER_OUTPUT} is recorded"));
        };
        let release = match self.purpose {
            Purpose::PreUpgrade => match tenant.state.working_release() {
                Some(release) => Some(release),
                None => {
                    return StepOutcome::fail(format!("{} has no target release to back up for", ctx.step))
                }
            },
            Purpose::Final => None,
        };
        let id = snapshot_identifier(&tenant.spec, self.purpose, release, tenant.event_seq);
        let rds = &self.aws.tenant(&tenant.spec).rds;

        let snapshot = match self.find(rds, &id).await {
            Ok(Some(existing)) => existing,
            Ok(None) => match self.start(&ctx, rds, &cluster, &id).await {
                Ok(started) => {
                    info!(snapshot = %id, %cluster, "snapshot started");
                    started
                }
                Err(outcome) => return outcome,
            },
            Err(outcome) => return outcome,
        };
        let of_cluster = snapshot.db_cluster_identifier().unwrap_or_default();
        if of_cluster != cluster {
            return StepOutcome::fail(format!(
                "snapshot {id} already exists but is of cluster {of_cluster:?}, not the tenant's cluster \
                 {cluster}; rename or delete that snapshot, then retry"
            ));
        }

        let described = Described {
            id: &id,
            cluster: &cluster,
            status: snapshot.status().unwrap_or("creating"),
            percent: snapshot.percent_progress(),
        };
        let poll_after = Duration::from_secs(self.config.poll_seconds);
        match described.outcome(tenant.facts.clone(), poll_after) {
            StepOutcome::Done(mut output) => {
                info!(snapshot = %id, "snapshot available");
                if self.purpose == Purpose::PreUpgrade {
                    // The database as it is before the upgrade: what a failed
                    // migration restores.
                    output.facts.pre_upgrade_snapshot = Some(id.clone());
                }
                let retention = self.apply_retention(&ctx, rds, &mut output.facts).await;
                output.summary.push_str(&retention);
                StepOutcome::Done(output)
            }
            waiting_or_failed => waiting_or_failed,
        }
    }
}

/// A snapshot as RDS described it.
struct Described<'a> {
    id: &'a str,
    cluster: &'a str,
    status: &'a str,
    percent: Option<i32>,
}

impl Described<'_> {
    /// The outcome of this run, with the snapshot recorded in the facts (oldest first,
    /// once): done when it is available (retention is still to apply), poll again while
    /// it is being created, fail for good when it can no longer become available.
    fn outcome(&self, mut facts: TenantFacts, poll_after: Duration) -> StepOutcome {
        let (id, cluster, status) = (self.id, self.cluster, self.status);
        if !facts.snapshots.iter().any(|s| s == id) {
            facts.snapshots.push(id.to_owned());
        }
        facts.progress = None;
        match progress(status) {
            Progress::Available => {
                StepOutcome::done(format!("snapshot {id} of {cluster} is available"), facts)
            }
            Progress::Creating => StepOutcome::Pending {
                poll_after,
                facts,
                note: match self.percent {
                    Some(p) => format!("snapshot {id} of {cluster} is {status} ({p}%)"),
                    None => format!("snapshot {id} of {cluster} is {status}"),
                },
            },
            Progress::Unusable(status) => StepOutcome::fail(format!(
                "snapshot {id} of cluster {cluster} ended in status {status}; check the cluster's events in \
                 the RDS console, then retry"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_statuses_map_to_progress() {
        assert_eq!(progress("available"), Progress::Available);
        assert_eq!(progress("creating"), Progress::Creating);
        assert_eq!(progress("failed"), Progress::Unusable("failed".into()));
        assert_eq!(progress("deleting"), Progress::Unusable("deleting".into()));
    }

    fn described(status: &str) -> Described<'_> {
        Described {
            id: "tenant-prod-acme-preupgrade-1-1-0-7",
            cluster: "acme-db",
            status,
            percent: Some(40),
        }
    }

    fn earlier() -> TenantFacts {
        TenantFacts {
            snapshots: vec!["tenant-prod-acme-preupgrade-1-0-0-3".into()],
            ..TenantFacts::default()
        }
    }

    #[test]
    fn a_snapshot_being_created_is_recorded_and_polled() {
        let poll = Duration::from_secs(15);
        match described("creating").outcome(earlier(), poll) {
            StepOutcome::Pending {
                poll_after,
                facts,
                note,
            } => {
                assert_eq!(poll_after, poll);
                assert_eq!(
                    facts.snapshots,
                    [
                        "tenant-prod-acme-preupgrade-1-0-0-3",
                        "tenant-prod-acme-preupgrade-1-1-0-7"
                    ]
                );
                assert!(note.contains("40%"), "{note}");
            }
            other => panic!("expected Pending, got {other:?}"),
        }
    }

    #[test]
    fn an_available_snapshot_is_recorded_once() {
        let done = |facts| match described("available").outcome(facts, Duration::ZERO) {
            StepOutcome::Done(output) => output.facts,
            other => panic!("expected Done, got {other:?}"),
        };
        let once = done(earlier());
        let twice = done(once.clone());
        assert_eq!(once.snapshots.len(), 2);
        assert_eq!(twice, once);
    }

    #[test]
    fn a_failed_snapshot_fails_the_step_for_good() {
        match described("failed").outcome(earlier(), Duration::ZERO) {
            StepOutcome::Failed { retryable, reason } => {
                assert!(!retryable);
                assert!(
                    reason.contains("status failed") && reason.contains("acme-db"),
                    "{reason}"
                );
            }
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn config_defaults_apply_to_missing_fields() {
        let c: BackupConfig = serde_json::from_str(r#"{"keep_snapshots": 2}"#).unwrap();
        assert_eq!(
            c,
            BackupConfig {
                keep_snapshots: 2,
                poll_seconds: 15
            }
        );
        assert_eq!(
            serde_json::from_str::<BackupConfig>("{}").unwrap().keep_snapshots,
            5
        );
        assert!(serde_json::from_str::<BackupConfig>(r#"{"keep": 2}"#).is_err());
    }
}
