//! `tenantctl tenant wait` as an Azure Pipelines step sees it: logging commands on
//! stderr while an in-process worker drives the tenant, against DynamoDB Local.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use crate::common::fleet::{Fleet, TestFleet};
use crate::common::*;
use tenant_orchestrator::machine::StepKind;
use tenant_orchestrator::step::{StepOutcome, StepRegistry};
use tenant_orchestrator::worker::Worker;

/// Creates acme, starts `tenantctl tenant wait acme` as the agent would run it
/// (TF_BUILD=True), drives the tenant with `step`, and returns the exit code and stderr.
async fn wait_in_azure(step: Arc<ScriptedStep>) -> (Option<i32>, String) {
    let Fleet { store, .. } = TestFleet::new().with_provisioning("acme", "1.0.0").build().await;
    let child = Command::new(env!("CARGO_BIN_EXE_tenantctl"))
        .args([
            "--table",
            store.table(),
            "tenant",
            "wait",
            "acme",
            "--timeout",
            "60s",
        ])
        .env("TF_BUILD", "True")
        .env("TENANTCTL_LOG", "warn")
        .env_remove("TENANTCTL_PROGRESS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let the wait see the first step before the worker moves the tenant on. The
    // quick steps before Deploy are written beside it once they have waited the
    // worker's write delay (300 ms), and Deploy runs long enough after that for the
    // wait to see it.
    tokio::time::sleep(Duration::from_millis(800)).await;
    step.delay(StepKind::Deploy, Duration::from_millis(1300));
    let w = Worker::new(store.arc(), StepRegistry::all(step), fast_worker("w1"));
    drain(&w).await;
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_tenant_that_becomes_active_reports_a_group_and_progress_to_100_percent() {
    require_local_aws();
    let (code, stderr) = wait_in_azure(ScriptedStep::new()).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.starts_with("##[group]Waiting for acme to be Active (timeout 1m)\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("##vso[task.setprogress value=0;]0/6 acme Provisioning/CheckArtifact\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("##vso[task.setprogress value=66;]4/6 acme Provisioning/Deploy\n"),
        "{stderr}"
    );
    assert!(
        stderr.ends_with("##vso[task.setprogress value=100;]6/6 settled\n##[endgroup]\n"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("task.complete"),
        "success is the exit code's: {stderr}"
    );
}

#[tokio::test]
async fn a_tenant_that_fails_is_an_error_annotation_and_fails_the_task() {
    require_local_aws();
    let step = ScriptedStep::new();
    step.script(
        "acme",
        StepKind::Verify,
        vec![StepOutcome::fail(
            "health endpoint answers 503; 2 of 3 checks failed",
        )],
    );
    let (code, stderr) = wait_in_azure(step).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "##vso[task.logissue type=error;]not Active: acme is Failed: provisioning 1.0.0 failed \
             at Verify: health endpoint answers 503; 2 of 3 checks failed\n"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("##[endgroup]\n##vso[task.complete result=Failed;]\n"),
        "{stderr}"
    );
    assert!(stderr.contains("error: not Active: acme is Failed"), "{stderr}");
}
