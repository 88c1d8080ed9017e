//! The worker driving a tenant through its life on DynamoDB Local, with the artifact,
//! backup and configuration steps running for real against moto and test doubles
//! standing in for the other steps.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::common::{drain, fast_worker, fresh_store, release, ScriptedStep};
use async_trait::async_trait;
use tenant_orchestrator::app::TenantCommands;
use tenant_orchestrator::machine::{StepKind, TenantEvent, TenantState};
use tenant_orchestrator::record::Actor;
use tenant_orchestrator::step::{Step, StepContext, StepOutcome, StepRegistry};
use tenant_orchestrator::steps::artifact::{ArtifactConfig, CheckArtifact};
use tenant_orchestrator::steps::backup::{BackupConfig, SnapshotDatabase};
use tenant_orchestrator::steps::config::{DeleteConfig, WriteConfig};
use tenant_orchestrator::steps::{self, names, StepsConfig};
use tenant_orchestrator::store::TenantStore;
use tenant_orchestrator::worker::Worker;

use crate::aws_support::*;

/// Test double for the infrastructure steps: records the outputs a real stack would
/// have, as ProvisionInfra and UpdateInfra do, so the steps under test find them.
struct StackOutputsStandIn {
    outputs: BTreeMap<String, String>,
}

#[async_trait]
impl Step for StackOutputsStandIn {
    async fn run(&self, ctx: StepContext<'_>) -> StepOutcome {
        let mut facts = ctx.tenant.facts.clone();
        facts.stack_outputs = self.outputs.clone();
        facts.progress = None;
        StepOutcome::done("stack outputs recorded by the stand-in", facts)
    }
}

#[tokio::test]
async fn a_tenant_lives_through_provisioning_upgrades_and_removal_with_real_artifact_backup_and_config() {
    let repo = unique("app");
    let uri = create_repository(REGION, &repo).await;
    let first_image = format!("{uri}@{}", push_image(REGION, &repo, "1.0.0").await);
    let second_image = format!("{uri}@{}", push_image(REGION, &repo, "1.1.0").await);
    let cluster = create_cluster().await;
    let aws = aws().await;
    let backup = BackupConfig {
        keep_snapshots: 5,
        poll_seconds: 1,
    };
    let artifact = ArtifactConfig {
        repository: repo.clone(),
        registry_region: None,
    };
    let stand_ins = ScriptedStep::new();
    let infra = Arc::new(StackOutputsStandIn {
        outputs: stack_outputs(&cluster),
    });
    let steps = StepRegistry::all(stand_ins.clone())
        .with(
            StepKind::CheckArtifact,
            Arc::new(CheckArtifact::new(artifact, aws.clone())),
        )
        .with(
            StepKind::Backup,
            Arc::new(SnapshotDatabase::before_upgrade(backup.clone(), aws.clone())),
        )
        .with(
            StepKind::FinalBackup,
            Arc::new(SnapshotDatabase::final_backup(backup, aws.clone())),
        )
        .with(StepKind::WriteConfig, Arc::new(WriteConfig::new(aws.clone())))
        .with(StepKind::DeleteConfig, Arc::new(DeleteConfig::new(aws.clone())))
        .with(StepKind::ProvisionInfra, infra.clone())
        .with(StepKind::UpdateInfra, infra);
    let store = fresh_store().await;
    let commands = TenantCommands::new(store.clone());
    let worker = Worker::new(store.clone(), steps, fast_worker("w1"));
    let spec = tenant_spec();
    let id = spec.id.clone();
    let op = Actor::operator("test");

    // Provisioning resolves the image and writes the configuration.
    commands
        .create(spec.clone(), release("1.0.0"), &op)
        .await
        .unwrap();
    drain(&worker).await;
    let r = store.load(&id).await.unwrap();
    assert_eq!(r.state.label(), "Active", "last error: {:?}", r.last_error);
    assert_eq!(r.facts.image.as_deref(), Some(first_image.as_str()));
    let config_tier = ssm()
        .await
        .get_parameter()
        .name(format!("{}/config/tier", names::ssm_prefix(&spec)))
        .send()
        .await
        .unwrap();
    assert_eq!(config_tier.parameter().and_then(|p| p.value()), Some("small"));

    // An upgrade takes a snapshot before anything changes.
    commands
        .command(
            &id,
            TenantEvent::Upgrade {
                release: release("1.1.0"),
            },
            &op,
        )
        .await
        .unwrap();
    drain(&worker).await;
    let r = store.load(&id).await.unwrap();
    assert_eq!(r.state, active("1.1.0"), "last error: {:?}", r.last_error);
    assert_eq!(r.facts.image.as_deref(), Some(second_image.as_str()));
    assert_eq!(r.facts.previous_image.as_deref(), Some(first_image.as_str()));
    assert_eq!(r.facts.snapshots.len(), 1);
    let backup_snapshot = r.facts.snapshots[0].clone();
    assert_eq!(manual_snapshots(&cluster).await, vec![backup_snapshot.clone()]);
    let history = store.history(&id, 0, 100).await.unwrap().items;
    let backup_event = history
        .iter()
        .find(|e| e.step == Some(StepKind::Backup))
        .expect("the backup is in the history");
    assert!(
        backup_event
            .output
            .as_deref()
            .unwrap_or_default()
            .contains(&backup_snapshot),
        "{backup_event:?}"
    );

    // An upgrade to a release that was never pushed stops at CheckArtifact and leaves
    // the tenant on its release, with no snapshot taken and nothing else run.
    let deploys_before = stand_ins.calls_of(id.as_str(), StepKind::Deploy);
    commands
        .command(
            &id,
            TenantEvent::Upgrade {
                release: release("1.9.9"),
            },
            &op,
        )
        .await
        .unwrap();
    drain(&worker).await;
    let r = store.load(&id).await.unwrap();
    match &r.state {
        TenantState::Active {
            release: on,
            failed_upgrade,
        } => {
            assert_eq!(on, &release("1.1.0"));
            assert_eq!(failed_upgrade.as_ref(), Some(&release("1.9.9")));
        }
        other => panic!("expected Active on 1.1.0, got {}", other.label()),
    }
    let error = r.last_error.clone().unwrap_or_default();
    assert!(error.contains("1.9.9") && error.contains(&repo), "{error}");
    assert_eq!(r.facts.image.as_deref(), Some(second_image.as_str()));
    assert_eq!(manual_snapshots(&cluster).await, vec![backup_snapshot.clone()]);
    assert_eq!(stand_ins.calls_of(id.as_str(), StepKind::Deploy), deploys_before);

    // Removal keeps a final snapshot and takes the configuration away.
    commands
        .command(&id, TenantEvent::Deprovision, &op)
        .await
        .unwrap();
    drain(&worker).await;
    let r = store.load(&id).await.unwrap();
    assert_eq!(r.state.label(), "Deleted", "last error: {:?}", r.last_error);
    let snapshots = manual_snapshots(&cluster).await;
    assert_eq!(snapshots.len(), 2, "{snapshots:?}");
    let final_snapshot = r.facts.snapshots.last().unwrap();
    assert!(final_snapshot.contains("-final-") && snapshots.contains(final_snapshot));
    let left = ssm()
        .await
        .get_parameters_by_path()
        .path(names::ssm_prefix(&spec))
        .recursive(true)
        .send()
        .await
        .unwrap();
    assert!(left.parameters().is_empty(), "{:?}", left.parameters());
}

#[tokio::test]
async fn the_product_registry_runs_these_steps() {
    let config = Arc::new(StepsConfig::default());
    let registry = steps::registry(config, aws().await, fresh_store().await.arc(), None);
    for kind in [
        StepKind::CheckArtifact,
        StepKind::Backup,
        StepKind::FinalBackup,
        StepKind::WriteConfig,
        StepKind::DeleteConfig,
    ] {
        assert!(registry.get(kind).is_some(), "{kind} is not wired");
    }
}
