//! Revision rollouts through the worker and the rollout controller on the local AWS:
//! the infrastructure steps on moto's CloudFormation and the Helm steps on the Helm
//! stand-in, both deploying published platform versions from moto S3;
//! `ScriptedStep` (the step test double) for the other steps and `ImageDouble` for
//! the artifact check.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::json;
use tenant_orchestrator::app::{RolloutCommands, TenantCommands};
use tenant_orchestrator::domain::{PlatformVersion, RolloutId, RolloutSpec, TenantSpec};
use tenant_orchestrator::machine::{StepKind, TenantEvent};
use tenant_orchestrator::platform;
use tenant_orchestrator::ports::{PlatformArtifacts, PlatformBundle, TenantHealth, TenantProbe};
use tenant_orchestrator::record::{Actor, Outcome, Phase, RolloutRecord, TenantRecord};
use tenant_orchestrator::rollout::{Controller, ControllerConfig};
use tenant_orchestrator::step::{Step, StepContext, StepOutcome, StepRegistry};
use tenant_orchestrator::steps::platform::PlatformSource;
use tenant_orchestrator::steps::{helm, infra, StepsConfig};
use tenant_orchestrator::store::{RolloutStore, TenantStore};
use tenant_orchestrator::worker::Worker;

use crate::common::{drain, fast_worker, fresh_store, release, spec, tenant_id, ScriptedStep, TestStore};
use crate::helm_support::{digest, manifest_path, HelmStandin, KUBE_CONTEXT, REPOSITORY};
use crate::infra_support::{config, region_settings, unique_id, LocalAws, OTHER_SUBNET_GROUP, SUBNET_GROUP};
use crate::platform_support::{fresh_bucket, repo_bundle};

const REGIONS: [&str; 2] = ["eu-west-1", "us-east-1"];

/// Test double for CheckArtifact: records the release's image by digest, as the real
/// step does once it has found it in the registry.
struct ImageDouble;

#[async_trait]
impl Step for ImageDouble {
    async fn run(&self, ctx: StepContext<'_>) -> StepOutcome {
        let mut facts = ctx.tenant.facts.clone();
        facts.image = Some(format!("{REPOSITORY}@{}", digest('a')));
        facts.progress = None;
        StepOutcome::done("image recorded by the double", facts)
    }
}

/// Test double for the bake's health checks: every tenant is healthy.
pub(crate) struct HealthyDouble;

#[async_trait]
impl TenantProbe for HealthyDouble {
    async fn probe(&self, _: &TenantSpec, _: &tenant_orchestrator::domain::ReleaseVersion) -> TenantHealth {
        TenantHealth::Healthy { alarms: Vec::new() }
    }
}

/// Settings for both regions: the infrastructure's and the Helm stand-in's.
fn steps_config(helm: &HelmStandin) -> StepsConfig {
    let mut config = config(SUBNET_GROUP, false);
    config.helm.helm_bin = helm.bin();
    config.helm.chart = manifest_path("charts/tenant").display().to_string();
    config.helm.timeout = "30s".into();
    for region in REGIONS {
        let mut settings = region_settings(SUBNET_GROUP);
        settings.kube_context = KUBE_CONTEXT.into();
        config.regions.insert(region.into(), settings);
    }
    config
}

/// A fleet on platform version `base`: real infrastructure and Helm steps reading
/// published versions, a worker and a controller stepped by the test.
struct PlatformFleet {
    aws: LocalAws,
    store: TestStore,
    artifacts: Arc<dyn PlatformArtifacts>,
    worker: Worker,
    controller: Controller,
    _helm: HelmStandin,
}

impl PlatformFleet {
    async fn new(bundles: &[&PlatformBundle]) -> Self {
        let aws = LocalAws::new().await;
        let bucket = fresh_bucket().await;
        for bundle in bundles {
            bucket.store.publish(bundle, "test").await.expect("published");
        }
        let artifacts: Arc<dyn PlatformArtifacts> = Arc::new(bucket.store);
        let helm = HelmStandin::new();
        let config = Arc::new(steps_config(&helm));
        let source = PlatformSource::new(Some(artifacts.clone()));
        let registry = infra::register(
            StepRegistry::all(ScriptedStep::new()),
            config.clone(),
            aws.clients.clone(),
            source.clone(),
        )
        .with(StepKind::CheckArtifact, Arc::new(ImageDouble))
        .with(
            StepKind::Deploy,
            Arc::new(helm::Deploy::new(config.clone()).with_platforms(source)),
        )
        .with(
            StepKind::RollbackDeploy,
            Arc::new(helm::RollbackDeploy::new(config)),
        );
        let store = fresh_store().await;
        let mut worker_config = fast_worker("w-revision");
        worker_config.concurrency = 8;
        let worker = Worker::new(store.arc(), registry, worker_config);
        let controller = Controller::new(
            store.arc(),
            store.arc(),
            Arc::new(HealthyDouble),
            ControllerConfig {
                lease_ttl: Duration::from_secs(10),
                ..ControllerConfig::new("controller-revision")
            },
        );
        Self {
            aws,
            store,
            artifacts,
            worker,
            controller,
            _helm: helm,
        }
    }

    fn tenants(&self) -> TenantCommands {
        TenantCommands::new(self.store.arc())
    }

    /// Creates the tenants on 1.0.0 with `platform`, and provisions them.
    async fn provision(&self, ids: &[(String, &str)], platform: PlatformVersion) {
        for (id, region) in ids {
            let mut spec = spec(id, region);
            spec.platform = Some(platform);
            self.tenants()
                .create(spec, release("1.0.0"), &Actor::operator("test"))
                .await
                .expect("tenant created");
        }
        drain(&self.worker).await;
        for (id, _) in ids {
            let tenant = self.tenant(id).await;
            assert_eq!(on(&tenant), "Active/1.0.0", "{id}: {:?}", tenant.last_error);
            let applied = (tenant.facts.stack_platform, tenant.facts.chart_platform);
            assert_eq!(applied, (Some(platform), Some(platform)), "{id}");
        }
    }

    async fn tenant(&self, id: &str) -> TenantRecord {
        self.store.load(&tenant_id(id)).await.unwrap()
    }

    /// Starts `spec` as rollout `id` and steps the controller and the worker until it
    /// is settled.
    async fn roll_out(&self, id: &str, spec: serde_json::Value) -> RolloutRecord {
        let id = RolloutId::parse(id).unwrap();
        let spec: RolloutSpec = serde_json::from_value(spec).unwrap();
        RolloutCommands::new(self.store.arc(), self.store.arc())
            .with_platforms(self.artifacts.clone())
            .start(id.clone(), spec, "operator:test")
            .await
            .expect("rollout started");
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            self.controller.step(&id).await.unwrap();
            self.worker.run_once().await.unwrap();
            let record = self.store.load_rollout(&id).await.unwrap();
            if record.is_settled() {
                return record;
            }
            assert!(
                Instant::now() < deadline,
                "rollout {id} still {} at wave {}: {:#?}",
                record.phase,
                record.current_wave,
                record.events
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Restores tenant `id` from a snapshot of its database that is deleted again
    /// afterwards: its cluster cannot be replaced any more, so any stack update that
    /// replaces it fails (and CloudFormation rolls the stack back).
    async fn make_irreplaceable(&self, id: &str) {
        let tenant = self.tenant(id).await;
        let snapshot = format!("{id}-snap");
        let cluster = &tenant.facts.stack_outputs["DatabaseClusterIdentifier"];
        self.aws.snapshot_cluster(cluster, &snapshot).await;
        // A snapshot taken outside tenantctl: the restore says so.
        let external = tenant_orchestrator::app::Overrides {
            external_snapshot: true,
            ..Default::default()
        };
        (self.tenants())
            .command_with_hold(
                &tenant_id(id),
                TenantEvent::Restore {
                    snapshot: snapshot.clone(),
                },
                &Actor::operator("test"),
                external,
            )
            .await
            .expect("restore accepted");
        drain(&self.worker).await;
        assert_eq!(on(&self.tenant(id).await), "Active/1.0.0");
        self.aws.delete_snapshot(&snapshot).await;
    }
}

/// The tenant's state and the release it serves: `Active/1.0.0`.
fn on(tenant: &TenantRecord) -> String {
    let release = tenant.state.current_release().map(|r| r.to_string());
    format!("{}/{}", tenant.state.name(), release.unwrap_or_default())
}

fn ids(prefix: &str, region: &'static str, count: usize) -> Vec<(String, &'static str)> {
    (0..count).map(|i| (format!("{prefix}-{i}"), region)).collect()
}

/// The strategy of these tests: a canary per region, then the rest; no bake, no
/// approvals; one failure in a wave of four is within the budget.
fn strategy() -> serde_json::Value {
    json!({
        "waves": ["1", "100%"],
        "bake_time": "0s", "bake_checks": 0,
        "failure_budget": "50%",
        "approvals": {"after_canary": false, "between_regions": false}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_template_change_rolls_out_to_two_regions_and_the_tenant_whose_update_fails_returns_whole() {
    let a = repo_bundle("1.0.0");
    // B moves the database to another subnet group: CloudFormation replaces each
    // tenant's cluster.
    let mut b = repo_bundle("1.1.0");
    b.template = b.template.replacen(
        "DBSubnetGroupName: !Ref DBSubnetGroupName",
        &format!("DBSubnetGroupName: {OTHER_SUBNET_GROUP}"),
        1,
    );
    assert_ne!(a.template, b.template);
    let fleet = PlatformFleet::new(&[&a, &b]).await;
    let prefix = unique_id("tpl");
    let mut all = ids(&format!("{prefix}-eu"), "eu-west-1", 5);
    all.extend(ids(&format!("{prefix}-us"), "us-east-1", 5));
    fleet.provision(&all, a.version).await;
    // Not the canary: the last of its region's tenants.
    let failing = format!("{prefix}-us-4");
    fleet.make_irreplaceable(&failing).await;

    // The move replaces the cluster, which the stack update guard refuses unless the
    // rollout allows it by name.
    let mut strategy = strategy();
    strategy["allow_replacement"] = json!(["DatabaseCluster"]);
    let done = fleet
        .roll_out(
            "r-template",
            json!({ "release": "1.1.0", "platform": "1.1.0", "strategy": strategy }),
        )
        .await;

    assert_eq!(done.phase, Phase::Completed, "{:#?}", done.events);
    let members = fleet.store.members(&done.id, None).await.unwrap();
    assert_eq!(members.len(), 10);
    for (id, _) in &all {
        let tenant = fleet.tenant(id).await;
        let member = members.iter().find(|m| m.tenant.as_str() == id).unwrap();
        let applied = (
            tenant.spec.platform,
            tenant.facts.stack_platform,
            tenant.facts.chart_platform,
        );
        if *id == failing {
            assert!(
                matches!(&member.outcome, Outcome::Failed { reason } if reason.contains("rolled back to 1.0.0")),
                "{:?}",
                member.outcome
            );
            assert_eq!(tenant.state.current_release(), Some(&release("1.0.0")));
            assert_eq!(
                applied,
                (Some(a.version), Some(a.version), Some(a.version)),
                "back on the previous template and chart, and desired again"
            );
            assert_eq!(fleet.aws.template(id).await, a.template);
        } else {
            assert_eq!(member.outcome, Outcome::Succeeded, "{id}");
            assert_eq!(on(&tenant), "Active/1.1.0", "{id}");
            assert_eq!(
                applied,
                (Some(b.version), Some(b.version), Some(b.version)),
                "{id}"
            );
        }
    }
    assert_eq!(
        fleet.aws.template(&format!("{prefix}-us-0")).await,
        b.template,
        "the stack runs the new template"
    );
}

/// The repository's chart with `note` added to its default values: another chart.
fn chart_with_note(note: &str) -> tenant_orchestrator::ports::ChartArchive {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join("tenant");
    copy(&manifest_path("charts/tenant"), &chart);
    let values = chart.join("values.yaml");
    let mut text = std::fs::read_to_string(&values).unwrap();
    text.push_str(&format!("\n# {note}\n"));
    std::fs::write(&values, text).unwrap();
    platform::read_chart(&chart).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_chart_only_platform_change_rolls_out_with_no_new_release() {
    let a = repo_bundle("2.0.0");
    let mut c = repo_bundle("2.0.1");
    c.chart = chart_with_note("chart-only change");
    assert_eq!(a.template, c.template);
    assert_ne!(a.chart.bytes, c.chart.bytes);
    let fleet = PlatformFleet::new(&[&a, &c]).await;
    let prefix = unique_id("chart");
    let all = ids(&prefix, "us-east-1", 3);
    fleet.provision(&all, a.version).await;

    let done = fleet
        .roll_out("r-chart", json!({ "platform": "2.0.1", "strategy": strategy() }))
        .await;

    assert_eq!(done.phase, Phase::Completed, "{:#?}", done.events);
    for (id, _) in &all {
        let tenant = fleet.tenant(id).await;
        assert_eq!(on(&tenant), "Active/1.0.0", "{id}: same release");
        assert_eq!(tenant.spec.platform, Some(c.version));
        assert_eq!(
            tenant.facts.chart_platform,
            Some(c.version),
            "{id}: the new chart deployed"
        );
        assert_eq!(fleet.aws.template(id).await, a.template, "{id}: same template");
        let history = fleet.store.history(&tenant_id(id), 0, 100).await.unwrap().items;
        assert!(
            history.iter().any(|e| e.cause == "Reconcile (rollout r-chart)"),
            "{id}: {:#?}",
            history.iter().map(|e| &e.cause).collect::<Vec<_>>()
        );
    }
    // The platform must be published: an unknown version is refused before planning.
    let refused = RolloutCommands::new(fleet.store.arc(), fleet.store.arc())
        .with_platforms(fleet.artifacts.clone())
        .plan(
            &serde_json::from_value(json!({ "platform": "9.9.9" })).unwrap(),
            chrono::Utc::now(),
        )
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("platform version 9.9.9 is not published"),
        "{refused}"
    );
}
