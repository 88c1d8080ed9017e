//! The Helm steps against `localstack/helm-standin`, the test double for the `helm` CLI
//! that keeps releases and revisions on disk and records every call. Each test has its
//! own stand-in state directory.

use std::path::Path;
use std::sync::Arc;

use crate::common::{release, spec};
use crate::helm_support::*;
use serde_json::{json, Value};
use tenant_orchestrator::domain::{Hostname, TenantSpec};
use tenant_orchestrator::machine::{DeprovisionStep, ProvisionStep, RollbackStep, TenantState, UpgradeStep};
use tenant_orchestrator::record::{TenantFacts, TenantRecord};
use tenant_orchestrator::step::{Step, StepOutcome};
use tenant_orchestrator::steps::helm::{self, Deploy, RollbackDeploy, Uninstall};

fn provisioning(spec: TenantSpec, to: &str, facts: TenantFacts) -> TenantRecord {
    let state = TenantState::Provisioning {
        step: ProvisionStep::Deploy,
        release: release(to),
    };
    let mut record = TenantRecord::new(spec, state, chrono::Utc::now());
    record.facts = facts;
    record
}

fn upgrading(record: &TenantRecord, from: &str, to: &str, image_seed: char) -> TenantRecord {
    let mut next = record.clone();
    next.state = TenantState::Upgrading {
        step: UpgradeStep::Deploy,
        from: release(from),
        to: release(to),
    };
    next.facts.image = Some(format!("{REPOSITORY}@{}", digest(image_seed)));
    next.facts.progress = None;
    next
}

fn rolling_back(record: &TenantRecord, abandoned: &str, previous: &str) -> TenantRecord {
    let mut next = record.clone();
    next.state = TenantState::RollingBack {
        step: RollbackStep::RollbackDeploy,
        abandoned: release(abandoned),
        previous: release(previous),
        cause: "verify failed".into(),
    };
    next.facts.progress = None;
    next
}

fn summary(outcome: &StepOutcome) -> &str {
    match outcome {
        StepOutcome::Done(out) => &out.summary,
        other => panic!("expected Done, got {other:?}"),
    }
}

/// Installs `id` on 1.0.0 and upgrades it to 1.1.0; returns the record after the upgrade.
async fn installed_and_upgraded(helm: &HelmStandin, id: &str) -> TenantRecord {
    let deploy = Deploy::new(steps_config(helm));
    let (out, record) = run_to_end(
        &deploy,
        provisioning(spec(id, "us-east-1"), "1.0.0", deployable_facts(id, 'a')),
    )
    .await;
    summary(&out);
    let (out, record) = run_to_end(&deploy, upgrading(&record, "1.0.0", "1.1.0", 'b')).await;
    summary(&out);
    record
}

#[tokio::test]
async fn install_then_upgrade_make_revisions_1_and_2_and_record_them() {
    let helm = HelmStandin::new();
    let deploy = Deploy::new(steps_config(&helm));
    let ns = "tenant-shop";

    let (out, record) = run_to_end(
        &deploy,
        provisioning(spec("shop", "us-east-1"), "1.0.0", deployable_facts("shop", 'a')),
    )
    .await;
    assert!(
        summary(&out).starts_with("revision 1 deployed: release 1.0.0"),
        "{}",
        summary(&out)
    );
    assert_eq!(record.facts.helm_revision, Some(1));
    assert_eq!(
        record.facts.helm_revision_before_upgrade, None,
        "a fresh install has nothing to return to"
    );

    let (out, record) = run_to_end(&deploy, upgrading(&record, "1.0.0", "1.1.0", 'b')).await;
    assert!(
        summary(&out).starts_with("revision 2 deployed: release 1.1.0"),
        "{}",
        summary(&out)
    );
    assert_eq!(record.facts.helm_revision, Some(2));
    assert_eq!(record.facts.helm_revision_before_upgrade, Some(1));
    assert_eq!(record.facts.progress, None);
    assert_eq!(
        helm.revisions(ns, "shop"),
        [(1, "superseded".into()), (2, "deployed".into())]
    );

    let deployed = helm.values_of(ns, "shop", 2);
    assert_eq!(deployed["release"], "1.1.0");
    assert_eq!(
        deployed["image"],
        json!({"repository": REPOSITORY, "digest": digest('b')})
    );

    // The CLI contract: scope, namespace creation, wait, JSON output, values by file.
    let upgrades = helm.calls_of("upgrade");
    assert_eq!(upgrades.len(), 2);
    let argv = &upgrades[1];
    let chart = manifest_path("charts/tenant").display().to_string();
    assert_eq!(&argv[..4], ["upgrade", "--install", "shop", chart.as_str()]);
    for flag in [
        vec!["--namespace", ns],
        vec!["--kube-context", KUBE_CONTEXT],
        vec!["--create-namespace"],
        vec!["--wait"],
        vec!["--timeout", "30s"],
        vec!["-o", "json"],
    ] {
        assert!(
            argv.windows(flag.len()).any(|w| w == flag.as_slice()),
            "{flag:?} missing from {argv:?}"
        );
    }
    let values_at = argv
        .iter()
        .position(|a| a == "--values")
        .expect("values passed by file")
        + 1;
    assert!(argv[values_at].ends_with(".json"));
    assert!(
        !Path::new(&argv[values_at]).exists(),
        "the values file is removed after the deploy"
    );
    assert!(
        !argv
            .iter()
            .any(|a| a.contains("WorkloadRole") || a.contains("bucket")),
        "values never go on the command line: {argv:?}"
    );
}

#[tokio::test]
async fn deploying_the_same_values_again_makes_no_new_revision() {
    let helm = HelmStandin::new();
    let deploy = Deploy::new(steps_config(&helm));
    let first = provisioning(
        spec("repeat", "us-east-1"),
        "1.0.0",
        deployable_facts("repeat", 'a'),
    );
    let (_, record) = run_to_end(&deploy, first.clone()).await;
    let (out, again) = run_to_end(&deploy, record).await;
    assert_eq!(
        summary(&out),
        "revision 1 already runs release 1.0.0 with these values"
    );
    assert_eq!(again.facts.helm_revision, Some(1));

    // An upgrade whose helm upgrade went through but whose outcome was never saved
    // (a crash) finds its revision on the re-run and records the same facts.
    let upgrade = upgrading(&again, "1.0.0", "1.1.0", 'b');
    let (_, upgraded) = run_to_end(&deploy, upgrade.clone()).await;
    let mut before_the_crash = upgrade;
    before_the_crash.facts.helm_revision_before_upgrade = Some(1);
    before_the_crash.facts.progress = Some(json!({"deploy": {"release": "1.1.0", "before_recorded": true}}));
    let (out, rerun) = run_to_end(&deploy, before_the_crash).await;
    assert_eq!(
        summary(&out),
        "revision 2 already runs release 1.1.0 with these values"
    );
    assert_eq!(rerun.facts, upgraded.facts);
    assert_eq!(helm.revisions("tenant-repeat", "repeat").len(), 2);
    assert_eq!(helm.calls_of("upgrade").len(), 2);
}

#[tokio::test]
async fn a_new_upgrade_forgets_the_revision_recorded_by_the_last_one() {
    let helm = HelmStandin::new();
    let record = installed_and_upgraded(&helm, "stale").await;
    assert_eq!(record.facts.helm_revision_before_upgrade, Some(1));
    // The next upgrade cannot resolve its image; the rollback that follows must not
    // return to revision 1, recorded by the previous upgrade.
    let mut next = upgrading(&record, "1.1.0", "1.2.0", 'c');
    next.facts.image = None;
    let deploy = Deploy::new(steps_config(&helm));
    let (out, after) = run_to_end(&deploy, next).await;
    let StepOutcome::Failed { retryable, reason } = out else {
        panic!("{out:?}")
    };
    assert!(!retryable);
    assert!(reason.starts_with("artifact not resolved"), "{reason}");
    assert_eq!(
        after.facts.helm_revision_before_upgrade,
        Some(2),
        "the revision running before this upgrade"
    );

    let rollback = RollbackDeploy::new(steps_config(&helm));
    let (out, _) = run_to_end(&rollback, rolling_back(&after, "1.2.0", "1.1.0")).await;
    assert_eq!(summary(&out), "revision 2 is deployed");
    assert!(helm.calls_of("rollback").is_empty());
}

#[tokio::test]
async fn rollback_returns_to_the_recorded_revision_once() {
    let helm = HelmStandin::new();
    let record = installed_and_upgraded(&helm, "undo").await;
    let rollback = RollbackDeploy::new(steps_config(&helm));

    let (out, rolled) = run_to_end(&rollback, rolling_back(&record, "1.1.0", "1.0.0")).await;
    assert_eq!(summary(&out), "rolled back to revision 1 (now revision 3)");
    assert_eq!(rolled.facts.helm_revision, Some(3));
    assert_eq!(
        helm.values_of("tenant-undo", "undo", 3),
        helm.values_of("tenant-undo", "undo", 1)
    );
    assert_eq!(helm.values_of("tenant-undo", "undo", 3)["release"], "1.0.0");

    // Running it again (a crash before the outcome was saved) changes nothing.
    let (out, _) = run_to_end(&rollback, rolling_back(&record, "1.1.0", "1.0.0")).await;
    assert_eq!(summary(&out), "revision 3 already runs the values of revision 1");
    assert_eq!(helm.calls_of("rollback").len(), 1);
    assert_eq!(helm.revisions("tenant-undo", "undo").len(), 3);
    let argv = &helm.calls_of("rollback")[0];
    assert_eq!(&argv[..3], ["rollback", "undo", "1"]);
    assert!(argv.contains(&"--wait".to_owned()) && argv.contains(&KUBE_CONTEXT.to_owned()));
}

#[tokio::test]
async fn rollback_without_a_recorded_revision_has_nothing_to_do() {
    let helm = HelmStandin::new();
    let deploy = Deploy::new(steps_config(&helm));
    let (_, record) = run_to_end(
        &deploy,
        provisioning(
            spec("fresh", "us-east-1"),
            "1.0.0",
            deployable_facts("fresh", 'a'),
        ),
    )
    .await;
    let rollback = RollbackDeploy::new(steps_config(&helm));
    let (out, _) = run_to_end(&rollback, rolling_back(&record, "1.1.0", "1.0.0")).await;
    assert!(
        summary(&out).starts_with("nothing to roll back"),
        "{}",
        summary(&out)
    );
    assert!(helm.calls_of("rollback").is_empty());
}

#[tokio::test]
async fn a_failing_upgrade_fails_the_step_with_helms_message() {
    let helm = HelmStandin::new();
    let deploy = Deploy::new(steps_config(&helm));
    let (_, record) = run_to_end(
        &deploy,
        provisioning(
            spec("broken", "us-east-1"),
            "1.0.0",
            deployable_facts("broken", 'a'),
        ),
    )
    .await;
    helm.fail(
        "broken",
        "upgrade",
        "UPGRADE FAILED: timed out waiting for the condition",
    );
    let (out, after) = run_to_end(&deploy, upgrading(&record, "1.0.0", "1.1.0", 'b')).await;
    assert_eq!(
        out,
        StepOutcome::Failed {
            retryable: false,
            reason: "helm upgrade failed: UPGRADE FAILED: timed out waiting for the condition".into()
        }
    );
    assert_eq!(
        after.facts.helm_revision_before_upgrade,
        Some(1),
        "recorded before helm was asked"
    );
    assert_eq!(
        helm.revisions("tenant-broken", "broken"),
        [(1, "deployed".into()), (2, "failed".into())]
    );

    // The machine rolls back: to revision 1, past the failed revision 2.
    let rollback = RollbackDeploy::new(steps_config(&helm));
    let (out, _) = run_to_end(&rollback, rolling_back(&after, "1.1.0", "1.0.0")).await;
    assert_eq!(summary(&out), "revision 1 is deployed");
}

#[tokio::test]
async fn another_helm_operation_in_progress_is_waited_for_not_failed() {
    let helm = HelmStandin::new();
    let deploy = Deploy::new(steps_config(&helm));
    helm.fail(
        "busy",
        "upgrade",
        "UPGRADE FAILED: another operation (install/upgrade/rollback) is in progress",
    );
    let record = provisioning(spec("busy", "us-east-1"), "1.0.0", deployable_facts("busy", 'a'));
    let out = deploy.run(ctx(&record)).await;
    let StepOutcome::Pending { poll_after, note, .. } = out else {
        panic!("{out:?}")
    };
    assert!(note.contains("another operation"), "{note}");
    assert!(poll_after.as_secs() >= 1);

    helm.heal("busy", "upgrade");
    let (out, _) = run_to_end(&deploy, record).await;
    assert!(summary(&out).contains("deployed"), "{}", summary(&out));
}

#[tokio::test]
async fn uninstall_twice_succeeds_and_forgets_the_revisions() {
    let helm = HelmStandin::new();
    let record = installed_and_upgraded(&helm, "gone").await;
    let mut record = record;
    record.state = TenantState::Deprovisioning {
        step: DeprovisionStep::Uninstall,
    };
    let uninstall = Uninstall::new(steps_config(&helm));
    for _ in 0..2 {
        let (out, after) = run_to_end(&uninstall, record.clone()).await;
        assert_eq!(
            summary(&out),
            "release gone uninstalled from namespace tenant-gone (or was already gone)"
        );
        assert_eq!(
            (
                after.facts.helm_revision,
                after.facts.helm_revision_before_upgrade
            ),
            (None, None)
        );
        assert!(helm.release("tenant-gone", "gone").is_none());
    }
    let calls = helm.calls_of("uninstall");
    assert_eq!(calls.len(), 2);
    assert!(calls[0].contains(&"--ignore-not-found".to_owned()));
}

#[tokio::test]
async fn configuration_and_artifact_problems_fail_without_calling_helm() {
    let helm = HelmStandin::new();
    let mut facts = deployable_facts("nodigest", 'a');
    facts.image = None;
    let deploy = Deploy::new(steps_config(&helm));
    let (out, _) = run_to_end(
        &deploy,
        provisioning(spec("nodigest", "us-east-1"), "1.0.0", facts),
    )
    .await;
    let StepOutcome::Failed {
        retryable: false,
        reason,
    } = out
    else {
        panic!("{out:?}")
    };
    assert!(reason.starts_with("artifact not resolved"), "{reason}");

    let record = provisioning(
        spec("elsewhere", "eu-west-1"),
        "1.0.0",
        deployable_facts("elsewhere", 'a'),
    );
    let (out, _) = run_to_end(&deploy, record).await;
    let StepOutcome::Failed {
        retryable: false,
        reason,
    } = out
    else {
        panic!("{out:?}")
    };
    assert!(reason.contains("region eu-west-1 is not configured"), "{reason}");
    assert!(helm.calls_of("upgrade").is_empty());

    let mut config = (*steps_config(&helm)).clone();
    config.helm.helm_bin = "/nonexistent/helm".into();
    let record = provisioning(
        spec("nobin", "us-east-1"),
        "1.0.0",
        deployable_facts("nobin", 'a'),
    );
    let out = Deploy::new(Arc::new(config)).run(ctx(&record)).await;
    let StepOutcome::Failed {
        retryable: false,
        reason,
    } = out
    else {
        panic!("{out:?}")
    };
    assert!(reason.contains("cannot run `/nonexistent/helm`"), "{reason}");
}

/// The chart's defaults (values.yaml) under the rendered values: what Helm validates.
fn merged_with_chart_defaults(values: &Value) -> Value {
    fn merge(base: &mut Value, extra: &Value) {
        match (base, extra) {
            (Value::Object(b), Value::Object(e)) => {
                for (k, v) in e {
                    merge(b.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
            (b, e) => *b = e.clone(),
        }
    }
    let defaults = std::fs::read_to_string(manifest_path("charts/tenant/values.yaml")).unwrap();
    let mut merged: Value = serde_norway::from_str(&defaults).unwrap();
    merge(&mut merged, values);
    merged
}

fn chart_schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(manifest_path("charts/tenant/values.schema.json")).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

#[tokio::test]
async fn the_values_given_to_helm_pass_the_charts_schema() {
    let helm = HelmStandin::new();
    let mut tenant = spec("schema-check", "us-east-1");
    tenant
        .hostnames
        .push(Hostname::parse("app.schema-check.example.net").unwrap());
    let deploy = Deploy::new(steps_config(&helm));
    run_to_end(
        &deploy,
        provisioning(tenant, "1.0.0", deployable_facts("schema-check", 'a')),
    )
    .await;
    let given = helm.values_of("tenant-schema-check", "schema-check", 1);
    let schema = chart_schema();
    let merged = merged_with_chart_defaults(&given);
    let errors: Vec<String> = schema.iter_errors(&merged).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "the chart's schema refuses the values: {errors:?}"
    );
    assert_eq!(given["ingress"]["groupName"], "tenants-us-east-1");
    assert_eq!(given["config"]["ssmPrefix"], "/test/tenants/schema-check");

    // The check can fail: a tag instead of a digest is refused.
    let mut tagged = merged.clone();
    tagged["image"]["digest"] = json!("1.0.0");
    assert!(!schema.is_valid(&tagged));
}

#[test]
fn rendering_without_stack_outputs_names_the_missing_output() {
    let mut facts = deployable_facts("nooutputs", 'a');
    facts.stack_outputs.clear();
    let err = helm::render_values(
        &spec("nooutputs", "us-east-1"),
        &release("1.0.0"),
        &facts,
        "tenants-",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("stack output DatabasePort is missing"), "{err}");
}
