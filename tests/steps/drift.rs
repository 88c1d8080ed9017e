//! Drift on the local AWS: a tenant provisioned with the real infrastructure,
//! configuration and Helm steps (moto, the Helm stand-in) is changed out of band, the
//! check and the sweep find it and record it in the history, and a reconcile puts it
//! back.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_cloudformation::types::{Capability, Parameter};
use tenant_orchestrator::app::{DriftCommands, RolloutCommands, TenantCommands};
use tenant_orchestrator::domain::{RolloutId, RolloutSpec};
use tenant_orchestrator::machine::StepKind;
use tenant_orchestrator::record::{Actor, DriftKind};
use tenant_orchestrator::rollout::{Controller, ControllerConfig};
use tenant_orchestrator::step::{Step, StepContext, StepOutcome, StepRegistry};
use tenant_orchestrator::steps::config::WriteConfig;
use tenant_orchestrator::steps::drift::AwsDriftChecker;
use tenant_orchestrator::steps::helm::Deploy;
use tenant_orchestrator::steps::infra;
use tenant_orchestrator::steps::platform::PlatformSource;
use tenant_orchestrator::steps::{names, StepsConfig};
use tenant_orchestrator::store::RolloutStore;
use tenant_orchestrator::store::{DriftStore, TenantStore};
use tenant_orchestrator::worker::Worker;

use crate::common::{drain, fast_worker, fresh_store, release, spec, ScriptedStep};
use crate::helm_support::{digest, manifest_path, HelmStandin, KUBE_CONTEXT, REPOSITORY};
use crate::infra_support::{config, unique_id, LocalAws, REGION, SUBNET_GROUP};

/// Test double for CheckArtifact: records the image by digest the real step would
/// resolve, so the real Deploy has one.
struct ImageStandIn;

#[async_trait]
impl Step for ImageStandIn {
    async fn run(&self, ctx: StepContext<'_>) -> StepOutcome {
        let mut facts = ctx.tenant.facts.clone();
        facts.image = Some(format!("{REPOSITORY}@{}", digest('d')));
        facts.progress = None;
        StepOutcome::done("image recorded by the stand-in", facts)
    }
}

/// Infrastructure on moto, Helm on the stand-in, both in region `REGION`.
fn steps_config(helm: &HelmStandin) -> StepsConfig {
    let mut config = config(SUBNET_GROUP, false);
    let region = config.regions.get_mut(REGION).unwrap();
    region.kube_context = KUBE_CONTEXT.into();
    config.helm.helm_bin = helm.bin();
    config.helm.chart = manifest_path("charts/tenant").display().to_string();
    config.helm.timeout = "30s".into();
    config
}

#[tokio::test]
async fn drift_in_a_stack_parameter_and_an_ssm_parameter_is_found_recorded_and_reconciled() {
    // Arrange: a tenant provisioned by the real stack, configuration and Helm steps.
    let aws = LocalAws::new().await;
    let helm = HelmStandin::new();
    let config = Arc::new(steps_config(&helm));
    let steps = infra::register(
        StepRegistry::all(ScriptedStep::new()),
        config.clone(),
        aws.clients.clone(),
        PlatformSource::default(),
    )
    .with(StepKind::CheckArtifact, Arc::new(ImageStandIn))
    .with(
        StepKind::WriteConfig,
        Arc::new(WriteConfig::new(aws.clients.clone())),
    )
    .with(StepKind::Deploy, Arc::new(Deploy::new(config.clone())));
    let store = fresh_store().await;
    let commands = TenantCommands::new(store.clone());
    let worker = Worker::new(store.clone(), steps, fast_worker("w1"));
    let id = unique_id("drift");
    let spec = spec(&id, REGION);
    let op = Actor::operator("test");
    commands
        .create(spec.clone(), release("1.0.0"), &op)
        .await
        .unwrap();
    drain(&worker).await;
    let tenant = store.load(&spec.id).await.unwrap();
    assert_eq!(
        tenant.state.label(),
        "Active",
        "last error: {:?}",
        tenant.last_error
    );

    let checker = Arc::new(AwsDriftChecker::new(config.clone(), aws.clients.clone(), None));
    let drift = DriftCommands::new(store.arc(), store.arc()).with_checker(checker);
    let sweep = Actor("drift-sweep:test".into());
    let fresh = drift.check(&spec.id, &op).await.unwrap();
    assert!(
        fresh.findings.is_empty(),
        "a freshly provisioned tenant drifted: {:?}",
        fresh.findings
    );

    // Act: the tier parameter of the stack and the tier in SSM are changed out of band.
    let region = aws.clients.region(&spec.region);
    let stack = names::stack(&spec);
    let described = region
        .cloudformation
        .describe_stacks()
        .stack_name(&stack)
        .send()
        .await
        .unwrap();
    let parameters: Vec<Parameter> = described.stacks()[0]
        .parameters()
        .iter()
        .map(|p| match p.parameter_key() {
            Some("Tier") => Parameter::builder()
                .parameter_key("Tier")
                .parameter_value("large")
                .build(),
            key => Parameter::builder()
                .set_parameter_key(key.map(str::to_owned))
                .use_previous_value(true)
                .build(),
        })
        .collect();
    region
        .cloudformation
        .update_stack()
        .stack_name(&stack)
        .use_previous_template(true)
        .set_parameters(Some(parameters))
        .capabilities(Capability::CapabilityIam)
        .send()
        .await
        .unwrap();
    let tier_parameter = format!("{}/config/tier", names::ssm_prefix(&spec));
    region
        .ssm
        .put_parameter()
        .name(&tier_parameter)
        .value("large")
        .overwrite(true)
        .send()
        .await
        .unwrap();

    // Assert: the sweep checks the tenant and finds both, with what it should be.
    let pass = drift.sweep_once(10, Duration::ZERO, &sweep).await.unwrap();
    assert_eq!((pass.checked, pass.drifted, pass.failed), (1, 1, 0), "{pass:?}");
    let last = store.last_drift(&spec.id).await.unwrap().unwrap();
    let found: Vec<(DriftKind, &str, Option<&str>, Option<&str>)> = last
        .findings
        .iter()
        .map(|f| (f.kind, f.name.as_str(), f.desired.as_deref(), f.live.as_deref()))
        .collect();
    assert_eq!(
        found,
        vec![
            (DriftKind::StackParameter, "Tier", Some("small"), Some("large")),
            (
                DriftKind::SsmParameter,
                "config/tier",
                Some("small"),
                Some("large")
            ),
        ]
    );
    let drifted = drift.drifted(10, None).await.unwrap();
    assert_eq!(drifted.items.len(), 1);
    assert_eq!(drifted.items[0].tenant, spec.id);
    let history = store.history(&spec.id, 0, 100).await.unwrap().items;
    let found_event = history
        .iter()
        .find(|e| e.cause.starts_with("DriftCheck: 2 drifted"))
        .unwrap_or_else(|| panic!("no drift event in {history:#?}"));
    assert_eq!(
        (found_event.from.as_str(), found_event.to.as_str()),
        ("Active", "Active")
    );
    assert_eq!(found_event.actor, "drift-sweep:test");
    let detail = found_event.output.clone().unwrap_or_default();
    assert!(
        detail.contains("stack_parameter Tier") && detail.contains("ssm_parameter config/tier"),
        "{detail}"
    );

    // A second pass soon after checks nothing: the interval has not passed.
    let again = drift
        .sweep_once(10, Duration::from_secs(3600), &sweep)
        .await
        .unwrap();
    assert_eq!(again.checked, 0);

    // A reconcile rollout of the drifted tenants puts the stack and the configuration
    // back; the next check is in sync.
    let rollout = RolloutId::parse(&format!("r-{id}")).unwrap();
    let reconcile: RolloutSpec = serde_json::from_value(serde_json::json!({
        "reconcile": true,
        "selector": {"drifted": true},
        "strategy": {"waves": ["100%"], "bake_time": "0s", "bake_checks": 0,
                     "approvals": {"after_canary": false, "between_regions": false}}
    }))
    .unwrap();
    let started = RolloutCommands::new(store.arc(), store.arc())
        .with_drift(store.arc())
        .start(rollout.clone(), reconcile, "operator:test")
        .await
        .expect("reconcile rollout started");
    assert_eq!(started.tenants, 1, "only the drifted tenant");
    let controller = Controller::new(
        store.arc(),
        store.arc(),
        Arc::new(crate::revision_rollout::HealthyDouble),
        ControllerConfig::new("controller-drift"),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !store.load_rollout(&rollout).await.unwrap().is_settled() {
        assert!(
            std::time::Instant::now() < deadline,
            "the reconcile rollout did not settle"
        );
        controller.step(&rollout).await.unwrap();
        worker.run_once().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        store.load_rollout(&rollout).await.unwrap().phase,
        tenant_orchestrator::record::Phase::Completed
    );
    let tenant = store.load(&spec.id).await.unwrap();
    assert_eq!(
        tenant.state.label(),
        "Active",
        "last error: {:?}",
        tenant.last_error
    );
    let after = drift.check(&spec.id, &op).await.unwrap();
    assert!(
        after.findings.is_empty(),
        "still drifted after reconcile: {:?}\nhistory: {:#?}",
        after.findings,
        store.history(&spec.id, 0, 100).await.unwrap().items
    );
    assert!(drift.drifted(10, None).await.unwrap().items.is_empty());
    let history = store.history(&spec.id, 0, 100).await.unwrap().items;
    let causes: Vec<&str> = history.iter().map(|e| e.cause.as_str()).collect();
    let drifted_at = causes
        .iter()
        .position(|c| c.starts_with("DriftCheck: 2 drifted"))
        .unwrap();
    let reconciled_at = causes
        .iter()
        .position(|c| c.starts_with("Reconcile"))
        .unwrap_or_else(|| panic!("no reconcile in {causes:?}"));
    let in_sync_at = causes.iter().rposition(|c| *c == "DriftCheck: in sync").unwrap();
    assert!(
        drifted_at < reconciled_at && reconciled_at < in_sync_at,
        "{causes:?}"
    );
}
