//! The infrastructure steps (ProvisionInfra, UpdateInfra, RollbackInfra,
//! RestoreDatabase, DeleteStack) against moto's CloudFormation and RDS, with the
//! production template. moto applies stack operations synchronously, so a step that
//! reports Pending is simply run again, as the worker would.

use crate::common::*;
use crate::infra_support::*;
use tenant_orchestrator::machine::StepKind;
use tenant_orchestrator::step::StepOutcome;
use tenant_orchestrator::steps::infra::template::{self, TEMPLATE};

#[tokio::test]
async fn provisioning_creates_the_stack_and_records_its_outputs() {
    let aws = LocalAws::new().await;
    let id = unique_id("prov");
    let steps = aws.steps(config(SUBNET_GROUP, true));
    let mut tenant = provisioning(&id);

    let run = drive(&steps, &mut tenant).await;

    let summary = run.done();
    assert!(summary.contains("CREATE_COMPLETE"), "{summary}");
    let stack = aws.stack(&id).await.expect("stack exists");
    assert_eq!(stack.status, "CREATE_COMPLETE");
    assert_eq!(tenant.facts.stack_id.as_deref(), Some(stack.id.as_str()));
    assert_eq!(tenant.facts.stack_outputs, stack.outputs);
    for name in template::OUTPUTS {
        assert!(
            tenant.facts.stack_outputs.contains_key(name),
            "output {name} not recorded"
        );
    }
    assert_eq!(tenant.facts.stack_outputs["DatabasePort"], "5432");
    assert_eq!(stack.parameters["DBSubnetGroupName"], SUBNET_GROUP);
    assert_eq!(stack.parameters["Tier"], "small");
    assert_eq!(stack.parameters["KubernetesNamespace"], format!("tenant-{id}"));
    assert_eq!(stack.parameters["RestoreSnapshotIdentifier"], "");
    assert!(
        stack.termination_protection,
        "created with termination protection"
    );
    assert!(
        aws.cluster_exists(&tenant.facts.stack_outputs["DatabaseClusterIdentifier"])
            .await
    );
    assert!(
        tenant.facts.progress.is_none(),
        "a finished step leaves no progress"
    );
}

#[tokio::test]
async fn provisioning_twice_leaves_one_stack() {
    let aws = LocalAws::new().await;
    let id = unique_id("twice");
    let steps = aws.steps(config(SUBNET_GROUP, false));
    let mut tenant = provisioning(&id);
    drive(&steps, &mut tenant).await.done();
    let first = aws.stack(&id).await.unwrap();

    // As after a crash before the worker saved the outcome: the same step again.
    tenant.facts = Default::default();
    let summary = drive(&steps, &mut tenant).await.done();

    assert!(summary.contains("already up to date"), "{summary}");
    assert_eq!(
        aws.live_stacks_named(&stack_name(&id)).await,
        vec![first.id.clone()]
    );
    assert_eq!(tenant.facts.stack_id, Some(first.id));
    assert_eq!(tenant.facts.stack_outputs, first.outputs);
}

#[tokio::test]
async fn an_update_without_changes_succeeds_and_records_the_stack_before_it() {
    let aws = LocalAws::new().await;
    let id = unique_id("same");
    let steps = aws.steps(config(SUBNET_GROUP, false));
    let mut tenant = provisioning(&id);
    drive(&steps, &mut tenant).await.done();
    let before = aws.stack(&id).await.unwrap();

    let mut tenant = upgrading(tenant);
    let run = drive(&steps, &mut tenant).await;

    let summary = run.done();
    assert!(summary.contains("already up to date"), "{summary}");
    assert_eq!(
        run.runs, 2,
        "one run records the stack, the next sends the update"
    );
    let previous = tenant
        .facts
        .previous_stack
        .as_ref()
        .expect("previous stack recorded");
    assert_eq!(previous.parameters, before.parameters);
    assert_eq!(previous.template_body, TEMPLATE);
    assert_eq!(
        tenant.facts.previous_stack_upgrade.as_deref(),
        Some("1.0.0 -> 1.1.0")
    );
    assert_eq!(
        aws.stack(&id).await.unwrap().status,
        "CREATE_COMPLETE",
        "nothing was updated"
    );
}

#[tokio::test]
async fn the_stack_before_an_upgrade_is_recorded_once() {
    let aws = LocalAws::new().await;
    let id = unique_id("once");
    let mut tenant = provisioning(&id);
    drive(&aws.steps(config(SUBNET_GROUP, false)), &mut tenant)
        .await
        .done();
    let moved = aws.steps(config(OTHER_SUBNET_GROUP, false));
    let mut tenant = allowing_database_replacement(upgrading(tenant));

    let first = run_once(&moved, &tenant).await;
    let StepOutcome::Pending { facts: recorded, .. } = first else {
        panic!("expected the stack to be recorded first, got {first:?}")
    };
    tenant.facts = recorded.clone();
    let summary = drive(&moved, &mut tenant).await.done();
    assert!(summary.contains("UPDATE_COMPLETE"), "{summary}");
    assert_eq!(
        aws.stack(&id).await.unwrap().parameters["DBSubnetGroupName"],
        OTHER_SUBNET_GROUP
    );

    // The worker crashed before saving Done: the step runs again from the facts it
    // saved after recording, and must not record the already updated stack.
    tenant.facts = recorded;
    let summary = drive(&moved, &mut tenant).await.done();

    assert!(summary.contains("UPDATE_COMPLETE"), "{summary}");
    assert_eq!(
        aws.stack_events(&id, "UPDATE_IN_PROGRESS").await,
        1,
        "the repeated request (same token) started no second update"
    );
    let previous = tenant.facts.previous_stack.expect("previous stack kept");
    assert_eq!(previous.parameters["DBSubnetGroupName"], SUBNET_GROUP);
}

#[tokio::test]
async fn a_failed_update_reports_the_stacks_reason_and_leaves_the_stack_as_it_was() {
    let aws = LocalAws::new().await;
    let id = unique_id("fail");
    let steps = aws.steps(config(SUBNET_GROUP, false));
    let mut tenant = provisioning(&id);
    drive(&steps, &mut tenant).await.done();
    // A cluster restored from a snapshot that was deleted since cannot be replaced:
    // moving it to another subnet group makes CloudFormation restore it again.
    let snapshot = format!("{id}-snap");
    aws.snapshot_cluster(
        &tenant.facts.stack_outputs["DatabaseClusterIdentifier"],
        &snapshot,
    )
    .await;
    let mut tenant = restoring(tenant, &snapshot);
    drive(&steps, &mut tenant).await.done();
    aws.delete_snapshot(&snapshot).await;
    let before = aws.stack(&id).await.unwrap();

    let mut tenant = allowing_database_replacement(upgrading(tenant));
    let run = drive(&aws.steps(config(OTHER_SUBNET_GROUP, false)), &mut tenant).await;

    let reason = run.failed_for_good();
    assert!(reason.contains("UPDATE_ROLLBACK_COMPLETE"), "{reason}");
    assert!(
        reason.contains(&format!("DBClusterSnapshot {snapshot} not found")),
        "{reason}"
    );
    assert!(
        reason.contains("DatabaseCluster"),
        "names the failed resource: {reason}"
    );
    let after = aws.stack(&id).await.unwrap();
    assert_eq!(after.status, "UPDATE_ROLLBACK_COMPLETE");
    let previous = tenant
        .facts
        .previous_stack
        .clone()
        .expect("previous stack recorded");
    assert_eq!(after.parameters, previous.parameters);
    assert_eq!(after.parameters, before.parameters);
    assert_eq!(aws.template(&id).await, previous.template_body);

    // The machine rolls back next; the stack already is where it should be.
    let mut tenant = rolling_back(tenant);
    let summary = drive(&steps, &mut tenant).await.done();
    assert!(summary.contains("already on its previous template"), "{summary}");
    assert_eq!(aws.stack(&id).await.unwrap().status, "UPDATE_ROLLBACK_COMPLETE");
}

#[tokio::test]
async fn a_rollback_puts_back_the_previous_template_and_parameters() {
    let aws = LocalAws::new().await;
    let id = unique_id("back");
    // The tenant's stack as an older release of the orchestrator left it.
    let older_template = TEMPLATE.replacen(
        "infrastructure of one SaaS tenant",
        "infrastructure of one SaaS tenant (older release)",
        1,
    );
    assert_ne!(older_template, TEMPLATE);
    aws.create_stack(&id, &older_template, SUBNET_GROUP).await;
    let before = aws.stack(&id).await.unwrap();
    let moved = aws.steps(config(OTHER_SUBNET_GROUP, false));
    let mut tenant = allowing_database_replacement(upgrading(provisioning(&id)));
    let summary = drive(&moved, &mut tenant).await.done();
    assert!(summary.contains("UPDATE_COMPLETE"), "{summary}");
    assert_eq!(aws.template(&id).await, TEMPLATE);

    let mut tenant = rolling_back(tenant);
    let summary = drive(&moved, &mut tenant).await.done();

    assert!(summary.contains("back on its previous template"), "{summary}");
    let after = aws.stack(&id).await.unwrap();
    assert_eq!(after.status, "UPDATE_COMPLETE");
    assert_eq!(aws.template(&id).await, older_template);
    assert_eq!(after.parameters, before.parameters);
    assert_eq!(after.parameters["DBSubnetGroupName"], SUBNET_GROUP);
    assert_eq!(tenant.facts.stack_outputs, after.outputs);

    // Running the rollback again finds nothing left to do.
    tenant.facts.progress = None;
    let summary = drive(&moved, &mut tenant).await.done();
    assert!(summary.contains("already on its previous template"), "{summary}");
}

#[tokio::test]
async fn a_rollback_without_a_stack_recorded_for_its_upgrade_changes_nothing() {
    let aws = LocalAws::new().await;
    let id = unique_id("none");
    let steps = aws.steps(config(OTHER_SUBNET_GROUP, false));
    let mut tenant = provisioning(&id);
    drive(&aws.steps(config(SUBNET_GROUP, false)), &mut tenant)
        .await
        .done();
    let before = aws.stack(&id).await.unwrap();

    // Never recorded (the upgrade failed before UpdateInfra).
    let mut never = rolling_back(upgrading(tenant.clone()));
    let summary = drive(&steps, &mut never).await.done();
    assert!(summary.contains("nothing to roll back"), "{summary}");

    // Recorded by an earlier upgrade: applying it would undo that upgrade.
    let mut stale = rolling_back(upgrading(tenant));
    stale.facts.previous_stack = Some(tenant_orchestrator::record::StackRevision {
        template_body: "an older template".into(),
        parameters: [("DBSubnetGroupName".to_owned(), "very-old".to_owned())].into(),
        platform: None,
    });
    stale.facts.previous_stack_upgrade = Some("0.9.0 -> 1.0.0".into());
    let summary = drive(&steps, &mut stale).await.done();
    assert!(summary.contains("nothing to roll back"), "{summary}");

    assert_eq!(aws.stack(&id).await.unwrap(), before, "the stack was not touched");
}

#[tokio::test]
async fn a_restore_replaces_the_cluster_with_one_from_the_snapshot_and_later_updates_keep_it() {
    let aws = LocalAws::new().await;
    let id = unique_id("restore");
    let steps = aws.steps(config(SUBNET_GROUP, false));
    let mut tenant = provisioning(&id);
    drive(&steps, &mut tenant).await.done();
    let original = tenant.facts.stack_outputs["DatabaseClusterIdentifier"].clone();
    let snapshot = format!("{id}-before-incident");
    aws.snapshot_cluster(&original, &snapshot).await;

    let mut tenant = restoring(tenant, &snapshot);
    let run = drive(&steps, &mut tenant).await;

    let summary = run.done();
    let restored = tenant.facts.stack_outputs["DatabaseClusterIdentifier"].clone();
    assert_ne!(restored, original, "the cluster is replaced");
    assert!(
        summary.contains(&snapshot) && summary.contains(&restored),
        "{summary}"
    );
    assert!(aws.cluster_exists(&restored).await);
    assert!(!aws.cluster_exists(&original).await, "the old cluster is gone");
    let stack = aws.stack(&id).await.unwrap();
    assert_eq!(stack.parameters["RestoreSnapshotIdentifier"], snapshot);
    assert_eq!(tenant.facts.stack_outputs, stack.outputs);

    // The next upgrade keeps the restored cluster (clearing the snapshot would not).
    let mut upgraded = upgrading(tenant.clone());
    drive(&steps, &mut upgraded).await.done();
    assert_eq!(
        upgraded.facts.stack_outputs["DatabaseClusterIdentifier"],
        restored
    );
    assert_eq!(
        aws.stack(&id).await.unwrap().parameters["RestoreSnapshotIdentifier"],
        snapshot
    );

    // Restoring from the same snapshot again cannot work through the stack: say so.
    let mut again = restoring(tenant, &snapshot);
    again.facts.progress = None;
    let reason = drive(&steps, &mut again).await.failed_for_good();
    assert!(reason.contains("already restored from snapshot"), "{reason}");
    assert!(reason.contains("copy-db-cluster-snapshot"), "{reason}");
}

#[tokio::test]
async fn a_restore_from_a_missing_snapshot_fails_clearly_and_changes_nothing() {
    let aws = LocalAws::new().await;
    let id = unique_id("missing");
    let steps = aws.steps(config(SUBNET_GROUP, false));
    let mut tenant = provisioning(&id);
    drive(&steps, &mut tenant).await.done();
    let before = aws.stack(&id).await.unwrap();
    let snapshot = format!("{id}-no-such-snapshot");

    let mut tenant = restoring(tenant, &snapshot);
    let reason = drive(&steps, &mut tenant).await.failed_for_good();

    assert!(
        reason.contains(&format!("snapshot {snapshot} does not exist")),
        "{reason}"
    );
    assert!(
        reason.contains("describe-db-cluster-snapshots"),
        "says how to find one: {reason}"
    );
    assert_eq!(aws.stack(&id).await.unwrap(), before);
}

#[tokio::test]
async fn delete_stack_deletes_the_stack_and_a_second_run_succeeds() {
    let aws = LocalAws::new().await;
    let id = unique_id("delete");
    let steps = aws.steps(config(SUBNET_GROUP, false));
    let mut tenant = provisioning(&id);
    drive(&steps, &mut tenant).await.done();
    let stack_id = tenant.facts.stack_id.clone().unwrap();

    let mut tenant = deprovisioning(tenant);
    let summary = drive(&steps, &mut tenant).await.done();

    assert!(summary.contains("deleted"), "{summary}");
    assert!(aws.stack(&id).await.is_none());
    assert_eq!(aws.stack(&stack_id).await.unwrap().status, "DELETE_COMPLETE");
    assert!(
        tenant.facts.stack_outputs.is_empty(),
        "outputs of a deleted stack are dropped"
    );

    tenant.facts.progress = None;
    let summary = drive(&steps, &mut tenant).await.done();
    assert!(summary.contains("does not exist"), "{summary}");
}

#[tokio::test]
async fn a_retry_after_a_failed_create_deletes_the_failed_stack_and_creates_it_again() {
    let aws = LocalAws::new().await;
    let id = unique_id("retry");
    let steps = aws.steps(config(SUBNET_GROUP, false));
    // A parameter left behind by an earlier tenant of the same name blocks the stack.
    let leftover = format!("/test/tenants/{id}/infra/database-endpoint");
    aws.put_parameter(&leftover).await;
    let mut tenant = provisioning(&id);

    let reason = drive(&steps, &mut tenant).await.failed_for_good();

    assert!(reason.contains("ROLLBACK_COMPLETE"), "{reason}");
    assert!(reason.contains("parameter already exists"), "{reason}");
    assert!(
        reason.contains("retry"),
        "tells the operator what to do: {reason}"
    );
    let failed = aws.stack(&id).await.unwrap();
    assert_eq!(failed.status, "ROLLBACK_COMPLETE");

    // The operator removes the leftover and retries: the step starts afresh.
    aws.delete_parameter(&leftover).await;
    tenant.facts.progress = None;
    let run = drive(&steps, &mut tenant).await;

    let summary = run.done();
    assert!(summary.contains("CREATE_COMPLETE"), "{summary}");
    let created = aws.stack(&id).await.unwrap();
    assert_ne!(created.id, failed.id, "a new stack");
    assert_eq!(created.status, "CREATE_COMPLETE");
    assert_eq!(aws.stack(&failed.id).await.unwrap().status, "DELETE_COMPLETE");
    assert_eq!(tenant.facts.stack_id, Some(created.id));
}

#[tokio::test]
async fn an_unconfigured_region_fails_without_touching_aws() {
    let aws = LocalAws::new().await;
    let id = unique_id("noregion");
    let mut steps_config = config(SUBNET_GROUP, false);
    steps_config.regions.clear();
    let steps = aws.steps(steps_config);
    let mut tenant = provisioning(&id);

    let reason = drive(&steps, &mut tenant).await.failed_for_good();

    assert!(reason.contains("region us-east-1 is not configured"), "{reason}");
    assert!(aws.stack(&id).await.is_none());
}

#[tokio::test]
async fn a_worker_provisions_a_tenant_with_the_real_stack_step() {
    let aws = LocalAws::new().await;
    let id = unique_id("worker");
    let store = fresh_store().await;
    let tenant = provision_with_worker(&aws, store.clone(), &id).await;

    assert_eq!(tenant.state.name(), "Active");
    let stack = aws.stack(&id).await.unwrap();
    assert_eq!(
        tenant.facts.stack_outputs, stack.outputs,
        "outputs persisted in the tenant"
    );
    let history = store_history(&store, &id).await;
    let provisioned = history
        .iter()
        .find(|e| e.step == Some(StepKind::ProvisionInfra))
        .expect("ProvisionInfra in the history");
    assert!(
        provisioned
            .output
            .as_deref()
            .unwrap_or_default()
            .contains("CREATE_COMPLETE"),
        "{provisioned:?}"
    );
}
