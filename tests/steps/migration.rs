//! Schema migrations through the worker on the local AWS: CheckArtifact reads the
//! schema a release declares from its image manifest in moto's ECR, Backup snapshots
//! the cluster in moto's RDS, the infrastructure steps (RestoreDatabase among them)
//! run on moto's CloudFormation, Deploy and RollbackDeploy on the Helm stand-in, which
//! runs the chart's migration hook. `ScriptedStep` (the step test double) stands in for
//! configuration, certificates and verify.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tenant_orchestrator::app::{RolloutCommands, TenantCommands};
use tenant_orchestrator::domain::{MigrationRestore, RolloutId, RolloutSpec};
use tenant_orchestrator::machine::{StepKind, TenantEvent, TenantState};
use tenant_orchestrator::record::{Actor, HistoryEvent, TenantRecord};
use tenant_orchestrator::rollout::{Controller, ControllerConfig};
use tenant_orchestrator::step::StepRegistry;
use tenant_orchestrator::steps::platform::PlatformSource;
use tenant_orchestrator::steps::{artifact, backup, helm, infra, StepsConfig};
use tenant_orchestrator::store::{RolloutStore, TenantStore};
use tenant_orchestrator::worker::Worker;

use crate::aws_support::{create_repository, push_image_declaring};
use crate::common::{drain, fast_worker, fresh_store, release, spec, tenant_id, ScriptedStep, TestStore};
use crate::helm_support::{manifest_path, HelmStandin, KUBE_CONTEXT};
use crate::infra_support::{config, store_history, unique_id, LocalAws, REGION, SUBNET_GROUP};
use crate::revision_rollout::HealthyDouble;

/// One tenant on release 1.0.0 (schema 41) with release 1.1.0 (schema 42) published,
/// real steps where the migration matters, a worker stepped by the test.
struct MigrationFleet {
    aws: LocalAws,
    store: TestStore,
    helm: HelmStandin,
    worker: Worker,
    id: String,
}

impl MigrationFleet {
    /// `restore` is the steps configuration's default for upgrades outside a rollout.
    async fn new(restore: MigrationRestore) -> Self {
        let aws = LocalAws::new().await;
        let helm = HelmStandin::new();
        let repository = unique_id("app");
        create_repository(REGION, &repository).await;
        push_image_declaring(REGION, &repository, "1.0.0", Some("41")).await;
        push_image_declaring(REGION, &repository, "1.1.0", Some("42")).await;

        let mut steps: StepsConfig = config(SUBNET_GROUP, false);
        steps.artifact.repository = repository;
        steps.backup.poll_seconds = 0;
        steps.migrations.restore = restore;
        steps.helm.helm_bin = helm.bin();
        steps.helm.chart = manifest_path("charts/tenant").display().to_string();
        steps.helm.timeout = "30s".into();
        steps.regions.get_mut(REGION).unwrap().kube_context = KUBE_CONTEXT.into();
        let steps = Arc::new(steps);
        let registry = infra::register(
            StepRegistry::all(ScriptedStep::new()),
            steps.clone(),
            aws.clients.clone(),
            PlatformSource::default(),
        )
        .with(
            StepKind::CheckArtifact,
            Arc::new(artifact::CheckArtifact::new(
                steps.artifact.clone(),
                aws.clients.clone(),
            )),
        )
        .with(
            StepKind::Backup,
            Arc::new(backup::SnapshotDatabase::before_upgrade(
                steps.backup.clone(),
                aws.clients.clone(),
            )),
        )
        .with(StepKind::Deploy, Arc::new(helm::Deploy::new(steps.clone())))
        .with(
            StepKind::RollbackDeploy,
            Arc::new(helm::RollbackDeploy::new(steps.clone())),
        );
        let store = fresh_store().await;
        let worker = Worker::new(store.arc(), registry, fast_worker("w-migration"));
        let id = unique_id("mig");
        TenantCommands::new(store.arc())
            .create(spec(&id, REGION), release("1.0.0"), &Actor::operator("test"))
            .await
            .expect("tenant created");
        let fleet = Self {
            aws,
            store,
            helm,
            worker,
            id,
        };
        fleet.settle().await;
        let tenant = fleet.tenant().await;
        assert_eq!(on(&tenant), "Active/1.0.0", "{:?}", tenant.last_error);
        assert_eq!(
            schema(&tenant).as_deref(),
            Some("41"),
            "the install migrated to 41"
        );
        fleet
    }

    async fn tenant(&self) -> TenantRecord {
        self.store.load(&tenant_id(&self.id)).await.unwrap()
    }

    async fn history(&self) -> Vec<HistoryEvent> {
        store_history(&self.store.arc(), &self.id).await
    }

    fn tenants(&self) -> TenantCommands {
        TenantCommands::new(self.store.arc())
    }

    /// Runs the worker until the tenant has no step left to run.
    async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            drain(&self.worker).await;
            let tenant = self.tenant().await;
            if tenant.state.step().is_none() {
                return;
            }
            assert!(Instant::now() < deadline, "still {}", tenant.state.label());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// An operator's command, as `tenantctl tenant …` sends it.
    async fn command(&self, event: TenantEvent, operator: &str) {
        self.tenants()
            .command(&tenant_id(&self.id), event, &Actor::operator(operator))
            .await
            .expect("command accepted");
    }

    /// An operator upgrades the tenant to `to`; the worker runs it until it settles.
    async fn upgrade(&self, to: &str, operator: &str) {
        let event = TenantEvent::Upgrade { release: release(to) };
        self.command(event, operator).await;
        self.settle().await;
    }

    /// Makes the chart's migration Job fail, as a failed migration does.
    fn fail_migrations(&self) {
        self.helm.fail(&self.id, "migrate", "BackoffLimitExceeded");
    }

    /// The stack's restore snapshot parameter.
    async fn restored_from(&self) -> String {
        let stack = self.aws.stack(&self.id).await.unwrap();
        stack.parameters["RestoreSnapshotIdentifier"].clone()
    }
}

fn on(tenant: &TenantRecord) -> String {
    let release = tenant.state.current_release().map(|r| r.to_string());
    format!("{}/{}", tenant.state.name(), release.unwrap_or_default())
}

fn schema(tenant: &TenantRecord) -> Option<String> {
    tenant.facts.schema.as_ref().map(|s| s.to_string())
}

/// The output of the history's events of `step`.
fn outputs_of(history: &[HistoryEvent], step: StepKind) -> Vec<String> {
    history
        .iter()
        .filter(|e| e.step == Some(step))
        .filter_map(|e| e.output.clone().or(e.error.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upgrade_to_a_release_declaring_a_new_schema_runs_the_migration_hook_and_records_the_schema() {
    let fleet = MigrationFleet::new(MigrationRestore::Approval).await;

    fleet.upgrade("1.1.0", "alice").await;

    let tenant = fleet.tenant().await;
    assert_eq!(on(&tenant), "Active/1.1.0", "{:?}", tenant.last_error);
    assert_eq!(schema(&tenant).as_deref(), Some("42"));
    assert_eq!(tenant.facts.migration, None, "the migration is settled");
    let hooks = fleet.helm.hooks();
    let ran: Vec<_> = hooks
        .iter()
        .map(|h| {
            (
                h["hook"].as_str().unwrap(),
                h["schemaVersion"].as_str().unwrap(),
                h["result"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ran,
        [
            ("pre-install", "41", "succeeded"),
            ("pre-upgrade", "42", "succeeded")
        ]
    );
    assert_eq!(hooks[1]["job"], json!(format!("{}-migrate", fleet.id)));

    let history = fleet.history().await;
    let deploy = outputs_of(&history, StepKind::Deploy);
    assert!(
        deploy
            .iter()
            .any(|o| o.contains("migrated the database from schema 41 to 42")),
        "{deploy:?}"
    );
    let artifact = outputs_of(&history, StepKind::CheckArtifact);
    assert!(
        artifact.iter().any(|o| o.contains("declaring schema 42")),
        "{artifact:?}"
    );
    let revisions: Vec<_> = history.iter().filter_map(|e| e.revision.clone()).collect();
    let first_upgrade = revisions
        .iter()
        .position(|r| r.contains("release 1.1.0"))
        .unwrap();
    assert!(revisions[first_upgrade].ends_with("schema 41"), "{revisions:?}");
    assert!(revisions.last().unwrap().ends_with("schema 42"), "{revisions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_migration_under_a_strategy_asking_for_approval_restores_the_snapshot_once_an_operator_restores_it(
) {
    // The configuration would restore automatically: the rollout's strategy overrides it.
    let fleet = MigrationFleet::new(MigrationRestore::Automatic).await;
    let before = fleet.restored_from().await;
    fleet.fail_migrations();

    let rollout = RolloutId::parse(&unique_id("r-mig")).unwrap();
    let rollout_spec: RolloutSpec = serde_json::from_value(json!({
        "release": "1.1.0",
        "selector": {"tenants": [fleet.id]},
        "strategy": {
            "waves": ["100%"], "bake_time": "0s", "bake_checks": 0,
            "approvals": {"after_canary": false, "between_regions": false},
            "migration_restore": "approval"
        }
    }))
    .unwrap();
    RolloutCommands::new(fleet.store.arc(), fleet.store.arc())
        .start(rollout.clone(), rollout_spec, "operator:test")
        .await
        .expect("rollout started");
    let controller = Controller::new(
        fleet.store.arc(),
        fleet.store.arc(),
        Arc::new(HealthyDouble),
        ControllerConfig {
            lease_ttl: Duration::from_secs(10),
            ..ControllerConfig::new("controller-migration")
        },
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        controller.step(&rollout).await.unwrap();
        fleet.worker.run_once().await.unwrap();
        if fleet.store.load_rollout(&rollout).await.unwrap().is_settled() {
            break;
        }
        assert!(Instant::now() < deadline, "the rollout did not settle");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fleet.settle().await;

    // The rollback stopped before the database, saying what to run.
    let failed = fleet.tenant().await;
    let TenantState::Failed { reason, .. } = &failed.state else {
        panic!("expected Failed, got {}", failed.state.label())
    };
    let migration = failed
        .facts
        .migration
        .clone()
        .expect("the migration stays recorded");
    assert_eq!(migration.restore, MigrationRestore::Approval);
    let snapshot = migration.snapshot.clone();
    assert_eq!(
        failed.facts.pre_upgrade_snapshot.as_deref(),
        Some(snapshot.as_str())
    );
    assert!(snapshot.contains("preupgrade"), "{snapshot}");
    assert!(
        reason.contains(&format!(
            "a migration to schema 42 ran; restoring snapshot {snapshot} needs an operator's approval: \
             tenantctl tenant restore {} --snapshot {snapshot}",
            fleet.id
        )),
        "{reason}"
    );
    assert!(
        reason.contains("BackoffLimitExceeded"),
        "Helm's reason is kept: {reason}"
    );
    assert_eq!(fleet.restored_from().await, before, "nothing was restored yet");

    // The operator approves by restoring that snapshot.
    fleet
        .command(
            TenantEvent::Restore {
                snapshot: snapshot.clone(),
            },
            "alice",
        )
        .await;
    fleet.settle().await;

    let tenant = fleet.tenant().await;
    assert_eq!(on(&tenant), "Active/1.0.0", "{:?}", tenant.last_error);
    assert_eq!(schema(&tenant).as_deref(), Some("41"));
    assert_eq!(tenant.facts.migration, None);
    assert_eq!(fleet.restored_from().await, snapshot, "the pre-upgrade snapshot");
    assert_eq!(
        tenant.facts.image, tenant.facts.previous_image,
        "runs the old image"
    );
    let history = fleet.history().await;
    let restores = outputs_of(&history, StepKind::RestoreDatabase);
    assert!(
        restores
            .iter()
            .any(|o| o.contains("restored after approval by operator:alice") && o.contains(&snapshot)),
        "{restores:?}"
    );
    assert!(
        !restores.iter().any(|o| o.contains("restored automatically")),
        "{restores:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_migration_with_automatic_restore_rolls_back_onto_the_snapshot_without_an_operator() {
    let fleet = MigrationFleet::new(MigrationRestore::Automatic).await;
    fleet.fail_migrations();

    fleet.upgrade("1.1.0", "alice").await;

    let tenant = fleet.tenant().await;
    assert_eq!(
        tenant.state,
        TenantState::Active {
            release: release("1.0.0"),
            failed_upgrade: Some(release("1.1.0")),
        },
        "{:?}",
        tenant.last_error
    );
    assert_eq!(schema(&tenant).as_deref(), Some("41"));
    assert_eq!(tenant.facts.migration, None);
    let snapshot = tenant.facts.pre_upgrade_snapshot.clone().unwrap();
    assert_eq!(fleet.restored_from().await, snapshot);
    let history = fleet.history().await;
    let restores = outputs_of(&history, StepKind::RestoreDatabase);
    assert_eq!(restores.len(), 1, "{restores:?}");
    assert!(
        restores[0]
            .contains("restored automatically after the failed migration to schema 42 (back on schema 41)")
            && restores[0].contains(&snapshot),
        "{restores:?}"
    );
    assert!(
        history.iter().all(|e| !e.actor.starts_with("operator:")
            || e.cause.starts_with("Upgrade")
            || e.cause.starts_with("Provision")),
        "no operator command but the upgrade: {history:#?}"
    );
    let hooks = fleet.helm.hooks();
    assert_eq!(hooks.last().unwrap()["result"], json!("failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rollback_without_a_migration_leaves_the_database_as_it_is() {
    let fleet = MigrationFleet::new(MigrationRestore::Automatic).await;
    let before = fleet.restored_from().await;
    // The same schema again: no migration to record, so nothing to restore.
    let tenant = fleet.tenant().await;
    let repository = tenant.facts.image.clone().unwrap();
    let repository = repository.split('@').next().unwrap().rsplit('/').next().unwrap();
    push_image_declaring(REGION, repository, "1.2.0", Some("41")).await;
    fleet
        .helm
        .fail(&fleet.id, "upgrade", "timed out waiting for the condition");

    fleet.upgrade("1.2.0", "alice").await;

    let tenant = fleet.tenant().await;
    assert_eq!(on(&tenant), "Active/1.0.0", "{:?}", tenant.last_error);
    assert_eq!(schema(&tenant).as_deref(), Some("41"));
    assert_eq!(fleet.restored_from().await, before);
    let restores = outputs_of(&fleet.history().await, StepKind::RestoreDatabase);
    assert_eq!(restores, ["no migration ran; database left as it is"]);
}
