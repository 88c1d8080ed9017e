//! The preview of a rollout's stack changes (`rollout plan --diff`) and the guard on
//! replacing a tenant's data: real change sets on moto's CloudFormation, the tenants
//! in a DynamoDB Local table, the template from a published platform version.

use std::sync::Arc;

use tenant_orchestrator::app::{RolloutCommands, RolloutError, RolloutHold, SpecChange};
use tenant_orchestrator::domain::change_set::{ChangeAction, Replacement};
use tenant_orchestrator::domain::{LogicalId, PlatformVersion, RolloutSpec};
use tenant_orchestrator::ports::{PlatformArtifacts, PlatformBundle};
use tenant_orchestrator::step::StepRegistry;
use tenant_orchestrator::steps::platform::PlatformSource;
use tenant_orchestrator::steps::{self, infra};

use crate::common::fleet::{operator, TestFleet};
use crate::common::{release, tenant_id};
use crate::infra_support::*;
use crate::platform_support::{fresh_bucket, repo_bundle};

/// The repository's template with the database cluster's database name changed: an
/// update CloudFormation can only make by replacing the cluster.
fn replacing_cluster(v: &str) -> PlatformBundle {
    let mut bundle = repo_bundle(v);
    let name = "DatabaseName: !If [IsRestore, !Ref AWS::NoValue, app]";
    assert!(
        bundle.template.contains(name),
        "the template's cluster changed; adapt the test"
    );
    bundle.template = bundle.template.replacen(
        name,
        "DatabaseName: !If [IsRestore, !Ref AWS::NoValue, tenants]",
        1,
    );
    bundle
}

/// The repository's template with one more tag on the cluster: an in-place change.
fn extra_tag(v: &str) -> PlatformBundle {
    let mut bundle = repo_bundle(v);
    let tags = "        - {Key: managed-by, Value: tenant-orchestrator}\n\n  DatabaseWriter:";
    assert!(
        bundle.template.contains(tags),
        "the template's cluster changed; adapt the test"
    );
    bundle.template = bundle.template.replacen(
        tags,
        "        - {Key: managed-by, Value: tenant-orchestrator}\n        - {Key: cost-centre, Value: tenants}\n\n  DatabaseWriter:",
        1,
    );
    bundle
}

struct Setup {
    commands: RolloutCommands,
    fleet: crate::common::fleet::Fleet,
    id: String,
    store: Arc<dyn PlatformArtifacts>,
}

/// One active tenant in a table, whose stack runs platform `base` on moto, and the
/// rollout commands previewing on the same local AWS and platform bucket.
async fn tenant_on(base: &PlatformBundle, others: &[&PlatformBundle]) -> Setup {
    let aws = LocalAws::new().await;
    let bucket = fresh_bucket().await;
    let store: Arc<dyn PlatformArtifacts> = Arc::new(bucket.store);
    for bundle in std::iter::once(base).chain(others.iter().copied()) {
        store.publish(bundle, "test").await.expect("published");
    }
    let id = unique_id("preview");
    let steps = infra::register(
        StepRegistry::new(),
        Arc::new(config(SUBNET_GROUP, false)),
        aws.clients.clone(),
        PlatformSource::new(Some(store.clone())),
    );
    let mut tenant = provisioning(&id);
    tenant.spec.platform = Some(base.version);
    drive(&steps, &mut tenant).await.done();

    let fleet = TestFleet::new().with_active(&id, "1.0.0").build().await;
    let previewer = steps::change_preview(
        Arc::new(config(SUBNET_GROUP, false)),
        aws.clients.clone(),
        Some(store.clone()),
    );
    let commands =
        RolloutCommands::new(fleet.store.arc(), fleet.store.arc()).with_preview(Arc::new(previewer));
    set_platform(&fleet, &store, &id, base.version).await;
    Setup {
        commands,
        fleet,
        id,
        store,
    }
}

async fn set_platform(
    fleet: &crate::common::fleet::Fleet,
    platforms: &Arc<dyn PlatformArtifacts>,
    id: &str,
    version: PlatformVersion,
) {
    let change = SpecChange {
        platform: Some(Some(version)),
        ..Default::default()
    };
    fleet
        .commands
        .clone()
        .with_platforms(platforms.clone())
        .update_spec(&tenant_id(id), &change, None, &operator(), RolloutHold::Respect)
        .await
        .expect("platform set");
}

fn rollout(allow: &[&str]) -> RolloutSpec {
    let mut spec = RolloutSpec::new(release("1.1.0"));
    spec.strategy.allow_replacement = allow.iter().map(|a| LogicalId::parse(a).unwrap()).collect();
    spec
}

#[tokio::test]
async fn a_change_that_replaces_the_database_is_refused_unless_the_spec_allows_it() {
    let base = repo_bundle("1.0.0");
    let next = replacing_cluster("1.1.0");
    let setup = tenant_on(&base, &[&next]).await;
    set_platform(&setup.fleet, &setup.store, &setup.id, next.version).await;

    // Without the allowance: the preview shows the replacement and refuses it.
    let (_, preview) = setup
        .commands
        .preview(&rollout(&[]), chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(preview.groups.len(), 1);
    let group = &preview.groups[0];
    assert_eq!(group.representative.as_str(), setup.id);
    let cluster = group
        .changes
        .iter()
        .find(|c| c.logical_id == "DatabaseCluster")
        .expect("the cluster changes");
    assert_eq!(
        (cluster.action, cluster.replacement),
        (ChangeAction::Modify, Replacement::Always)
    );
    assert_eq!(cluster.properties, vec!["DatabaseName".to_owned()]);
    let refused: Vec<&str> = group.refused.iter().map(|r| r.logical_id.as_str()).collect();
    assert!(refused.contains(&"DatabaseCluster"), "{refused:?}");
    let refusal = preview.refusal().expect("refused");
    assert!(
        refusal.contains("strategy.allow_replacement: [\"DatabaseCluster\"]"),
        "{refusal}"
    );

    // Starting it is refused the same way, and nothing is stored.
    let err = setup
        .commands
        .start(
            tenant_orchestrator::domain::RolloutId::parse("r-replace").unwrap(),
            rollout(&[]),
            "test",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RolloutError::ReplacementRefused(_)), "{err}");
    assert!(err.to_string().contains("DatabaseCluster"), "{err}");

    // With the allowance for the cluster: shown as a replacement, not refused (the
    // instances that follow it hold no data of their own).
    let allowed = rollout(&["DatabaseCluster"]);
    let (_, preview) = setup
        .commands
        .preview(&allowed, chrono::Utc::now())
        .await
        .unwrap();
    let group = &preview.groups[0];
    let cluster = group
        .changes
        .iter()
        .find(|c| c.logical_id == "DatabaseCluster")
        .expect("the cluster changes");
    assert_eq!(cluster.replacement, Replacement::Always);
    assert!(group.refused.is_empty(), "{:?}", group.refused);
    assert!(preview.refusal().is_none());
    drop(setup.store);
}

#[tokio::test]
async fn a_harmless_change_is_an_in_place_modify_and_no_change_is_empty() {
    let base = repo_bundle("1.0.0");
    let tagged = extra_tag("1.0.1");
    let setup = tenant_on(&base, &[&tagged]).await;

    // The platform the stack already runs: nothing to change.
    let (_, preview) = setup
        .commands
        .preview(&rollout(&[]), chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(preview.groups.len(), 1);
    assert!(preview.groups[0].stack_exists);
    assert_eq!(preview.groups[0].changes, vec![]);

    // One more tag on the cluster: modified in place, never replaced, not refused.
    set_platform(&setup.fleet, &setup.store, &setup.id, tagged.version).await;
    let (_, preview) = setup
        .commands
        .preview(&rollout(&[]), chrono::Utc::now())
        .await
        .unwrap();
    let group = &preview.groups[0];
    let cluster = group
        .changes
        .iter()
        .find(|c| c.logical_id == "DatabaseCluster")
        .expect("the cluster changes");
    assert_eq!(
        (cluster.action, cluster.replacement),
        (ChangeAction::Modify, Replacement::Never)
    );
    assert_eq!(cluster.properties, vec!["Tags".to_owned()]);
    assert!(
        group.changes.iter().all(|c| c.replacement == Replacement::Never),
        "{:?}",
        group.changes
    );
    assert!(preview.refusal().is_none());
}

/// The infrastructure steps reading platform versions from `store`.
fn infra_steps(aws: &LocalAws, store: Arc<dyn PlatformArtifacts>) -> StepRegistry {
    infra::register(
        StepRegistry::new(),
        Arc::new(config(SUBNET_GROUP, false)),
        aws.clients.clone(),
        PlatformSource::new(Some(store)),
    )
}

async fn change_sets(aws: &LocalAws, id: &str) -> Vec<String> {
    let region = tenant_orchestrator::domain::Region::parse(REGION).unwrap();
    let cf = &aws.clients.region(&region).cloudformation;
    let listed = cf
        .list_change_sets()
        .stack_name(stack_name(id))
        .send()
        .await
        .unwrap();
    listed
        .summaries()
        .iter()
        .filter(|s| s.execution_status().map(|e| e.as_str()) == Some("AVAILABLE"))
        .filter_map(|s| s.change_set_name().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn update_infra_refuses_to_replace_the_database_unless_the_operation_allows_it() {
    let aws = LocalAws::new().await;
    let bucket = fresh_bucket().await;
    let store: Arc<dyn PlatformArtifacts> = Arc::new(bucket.store);
    let base = repo_bundle("1.0.0");
    let next = replacing_cluster("1.1.0");
    for bundle in [&base, &next] {
        store.publish(bundle, "test").await.expect("published");
    }
    let steps = infra_steps(&aws, store);
    let id = unique_id("guard");
    let mut tenant = provisioning(&id);
    tenant.spec.platform = Some(base.version);
    drive(&steps, &mut tenant).await.done();
    let before = aws.stack(&id).await.expect("stack");

    // An upgrade (or a reconcile) to a template that replaces the cluster, unallowed.
    tenant.spec.platform = Some(next.version);
    let mut tenant = upgrading(tenant);
    let reason = drive(&steps, &mut tenant).await.failed_for_good();

    assert!(reason.contains("refused to update stack"), "{reason}");
    assert!(
        reason.contains("replace DatabaseCluster (AWS::RDS::DBCluster)"),
        "{reason}"
    );
    assert!(
        reason.contains("strategy.allow_replacement: [\"DatabaseCluster\"]"),
        "{reason}"
    );
    assert_eq!(aws.template(&id).await, base.template, "the stack is untouched");
    let after = aws.stack(&id).await.expect("stack");
    assert_eq!(
        (after.status, after.outputs),
        (before.status.clone(), before.outputs.clone())
    );
    assert_eq!(
        change_sets(&aws, &id).await,
        Vec::<String>::new(),
        "no change set is left behind"
    );

    // The same step of an operation that allows it: the change set is executed.
    let mut tenant = allowing_database_replacement(tenant);
    drive(&steps, &mut tenant).await.done();
    assert_eq!(aws.template(&id).await, next.template);
    assert_eq!(tenant.facts.stack_platform, Some(next.version));
}

#[tokio::test]
async fn update_infra_applies_a_harmless_change_through_its_change_set() {
    let aws = LocalAws::new().await;
    let bucket = fresh_bucket().await;
    let store: Arc<dyn PlatformArtifacts> = Arc::new(bucket.store);
    let base = repo_bundle("1.0.0");
    let tagged = extra_tag("1.0.1");
    for bundle in [&base, &tagged] {
        store.publish(bundle, "test").await.expect("published");
    }
    let steps = infra_steps(&aws, store);
    let id = unique_id("guard-ok");
    let mut tenant = provisioning(&id);
    tenant.spec.platform = Some(base.version);
    drive(&steps, &mut tenant).await.done();
    let cluster = aws.stack(&id).await.expect("stack").outputs["DatabaseClusterIdentifier"].clone();

    tenant.spec.platform = Some(tagged.version);
    let mut tenant = upgrading(tenant);
    drive(&steps, &mut tenant).await.done();

    let after = aws.stack(&id).await.expect("stack");
    assert_eq!(aws.template(&id).await, tagged.template);
    assert_eq!(after.status, "UPDATE_COMPLETE");
    assert_eq!(
        after.outputs["DatabaseClusterIdentifier"], cluster,
        "the same cluster"
    );
    assert!(aws.stack_events(&id, "UPDATE_COMPLETE").await >= 1);

    // Run again (as after a crash once the update was sent): nothing more to do.
    let mut again = upgrading(tenant);
    again.facts.progress = None;
    drive(&steps, &mut again).await.done();
    assert_eq!(aws.template(&id).await, tagged.template);
}
