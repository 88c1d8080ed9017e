//! The verify steps against local health endpoints: `HealthResponder`, a scripted
//! HTTP test double in this file, and, end to end through the worker, the health
//! stand-in answering for releases the Helm stand-in deployed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::helm_support::*;
use serde_json::json;
use tenant_orchestrator::app::TenantCommands;
use tenant_orchestrator::domain::Hostname;
use tenant_orchestrator::machine::{RollbackStep, StepKind, TenantEvent, TenantState, UpgradeStep};
use tenant_orchestrator::record::{Actor, TenantRecord};
use tenant_orchestrator::step::{Step, StepOutcome, StepRegistry};
use tenant_orchestrator::steps::helm::{Deploy, RollbackDeploy};
use tenant_orchestrator::steps::verify::{VerifyConfig, VerifyRelease};
use tenant_orchestrator::steps::StepsConfig;
use tenant_orchestrator::store::TenantStore;
use tenant_orchestrator::worker::Worker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Test double for a tenant's health endpoint: answers each request with the next
/// scripted (status, body), repeating the last one, and records the Host headers.
pub struct HealthResponder {
    pub port: u16,
    hosts: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl HealthResponder {
    pub async fn start(script: Vec<(u16, serde_json::Value)>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hosts = Arc::new(Mutex::new(Vec::new()));
        let seen = hosts.clone();
        let task = tokio::spawn(async move {
            let mut served = 0usize;
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request).to_string();
                let host = text
                    .lines()
                    .find_map(|l| l.strip_prefix("host: ").or_else(|| l.strip_prefix("Host: ")))
                    .unwrap_or_default()
                    .to_owned();
                seen.lock().unwrap().push(host);
                let (status, body) = &script[served.min(script.len() - 1)];
                served += 1;
                let body = body.to_string();
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
                let _ = socket.shutdown().await;
            }
        });
        Self { port, hosts, task }
    }

    fn hosts(&self) -> Vec<String> {
        self.hosts.lock().unwrap().clone()
    }
}

impl Drop for HealthResponder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn healthy(release: &str) -> (u16, serde_json::Value) {
    (200, json!({"status": "ok", "release": release}))
}

fn unhealthy(release: &str) -> (u16, serde_json::Value) {
    (503, json!({"status": "unhealthy", "release": release}))
}

pub fn verify_config(port: u16, interval_ms: u64, deadline_seconds: u64) -> VerifyConfig {
    VerifyConfig {
        scheme: "http".into(),
        port,
        resolve_to: Some("127.0.0.1".parse().unwrap()),
        required_passes: 3,
        interval_ms,
        deadline_seconds,
        request_timeout_ms: 1000,
        ..Default::default()
    }
}

/// The verify step on the local AWS (the tenant's alarms are read from moto).
pub async fn step(config: VerifyConfig) -> VerifyRelease {
    let steps = Arc::new(StepsConfig {
        verify: config,
        ..Default::default()
    });
    VerifyRelease::new(steps, crate::aws_support::aws().await)
}

pub fn verifying_upgrade(id: &str, from: &str, to: &str) -> TenantRecord {
    let state = TenantState::Upgrading {
        step: UpgradeStep::Verify,
        from: release(from),
        to: release(to),
    };
    TenantRecord::new(spec(id, "us-east-1"), state, chrono::Utc::now())
}

/// Runs the step as the worker would, sleeping for each `poll_after`, until it
/// finishes or `limit` runs happened; returns the outcome and the number of runs.
pub async fn run_polling(step: &dyn Step, mut record: TenantRecord, limit: usize) -> (StepOutcome, usize) {
    for runs in 1..=limit {
        match step.run(ctx(&record)).await {
            StepOutcome::Pending {
                facts, poll_after, ..
            } => {
                record.facts = facts;
                tokio::time::sleep(poll_after).await;
            }
            other => return (other, runs),
        }
    }
    panic!("the step was still pending after {limit} runs");
}

fn passes(outcome: &StepOutcome) -> u64 {
    let StepOutcome::Pending { facts, .. } = outcome else {
        panic!("{outcome:?}")
    };
    facts.progress.as_ref().unwrap()["verify"]["passes"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn the_release_is_verified_after_the_required_consecutive_passes() {
    let server = HealthResponder::start(vec![healthy("1.1.0")]).await;
    let verify = step(verify_config(server.port, 20, 30)).await;
    let mut record = verifying_upgrade("pass", "1.0.0", "1.1.0");
    record
        .spec
        .hostnames
        .push(Hostname::parse("www.pass.example.com").unwrap());
    let (out, runs) = run_polling(&verify, record, 10).await;
    let StepOutcome::Done(done) = out else {
        panic!("{out:?}")
    };
    assert_eq!(runs, 3);
    assert_eq!(
        done.summary,
        "2 hostname(s) served 1.1.0 healthy 3 times in a row; alarms: none"
    );
    assert_eq!(done.facts.progress, None);
    let mut hosts = server.hosts();
    assert_eq!(hosts.len(), 6, "each hostname is checked once per round");
    hosts.sort();
    hosts.dedup();
    let port = server.port;
    assert_eq!(
        hosts,
        [
            format!("pass.example.com:{port}"),
            format!("www.pass.example.com:{port}")
        ]
    );
}

#[tokio::test]
async fn a_failed_check_starts_the_count_again() {
    let ok = healthy("1.1.0");
    let script = vec![
        ok.clone(),
        ok.clone(),
        unhealthy("1.1.0"),
        ok.clone(),
        ok.clone(),
        ok,
    ];
    let server = HealthResponder::start(script).await;
    let verify = step(verify_config(server.port, 20, 30)).await;
    let (out, runs) = run_polling(&verify, verifying_upgrade("reset", "1.0.0", "1.1.0"), 10).await;
    assert!(matches!(out, StepOutcome::Done(_)), "{out:?}");
    assert_eq!(runs, 6, "two passes, a failure, then three passes");
}

#[tokio::test]
async fn the_wrong_release_fails_at_the_deadline_naming_what_was_answered() {
    let server = HealthResponder::start(vec![healthy("1.0.0")]).await;
    let verify = step(verify_config(server.port, 200, 1)).await;
    let started = Instant::now();
    let (out, _) = run_polling(&verify, verifying_upgrade("stale", "1.0.0", "1.1.0"), 20).await;
    assert_eq!(
        out,
        StepOutcome::fail(
            "stale.example.com answered 200 ok (release 1.0.0) — want 1.1.0, 0/3 passes within 1s"
        )
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(3),
        "took {took:?}"
    );
}

#[tokio::test]
async fn an_unhealthy_answer_fails_the_step() {
    let server = HealthResponder::start(vec![unhealthy("1.1.0")]).await;
    let verify = step(verify_config(server.port, 100, 1)).await;
    let (out, _) = run_polling(&verify, verifying_upgrade("sick", "1.0.0", "1.1.0"), 20).await;
    assert_eq!(
        out,
        StepOutcome::fail(
            "sick.example.com answered 503 unhealthy (release 1.1.0) — want 1.1.0, 0/3 passes within 1s"
        )
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_fails_naming_the_connection_error() {
    let port = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let verify = step(verify_config(port, 100, 1)).await;
    let (out, _) = run_polling(&verify, verifying_upgrade("dark", "1.0.0", "1.1.0"), 20).await;
    let StepOutcome::Failed {
        retryable: false,
        reason,
    } = out
    else {
        panic!("{out:?}")
    };
    assert!(
        reason.starts_with("dark.example.com could not be reached:"),
        "{reason}"
    );
    assert!(reason.ends_with("— want 1.1.0, 0/3 passes within 1s"), "{reason}");
}

#[tokio::test]
async fn a_worker_taking_over_continues_the_count_and_keeps_checks_apart() {
    let server = HealthResponder::start(vec![healthy("1.1.0")]).await;
    let config = verify_config(server.port, 300, 30);
    let mut record = verifying_upgrade("resume", "1.0.0", "1.1.0");

    let first = step(config.clone()).await.run(ctx(&record)).await;
    assert_eq!(passes(&first), 1);
    let StepOutcome::Pending { facts, .. } = first else {
        unreachable!()
    };
    record.facts = facts;

    // The first worker is gone; another runs the step at once, before the interval.
    let successor = step(config).await;
    let early = successor.run(ctx(&record)).await;
    let StepOutcome::Pending { poll_after, note, .. } = &early else {
        panic!("{early:?}")
    };
    assert!(note.contains("not due yet"), "{note}");
    assert!(*poll_after <= Duration::from_millis(300));
    assert_eq!(server.hosts().len(), 1, "no check before the interval has passed");

    tokio::time::sleep(*poll_after).await;
    let second = successor.run(ctx(&record)).await;
    assert_eq!(passes(&second), 2, "the count goes on from the recorded progress");
    let StepOutcome::Pending {
        facts, poll_after, ..
    } = second
    else {
        unreachable!()
    };
    record.facts = facts;
    tokio::time::sleep(poll_after).await;
    assert!(matches!(successor.run(ctx(&record)).await, StepOutcome::Done(_)));
    assert_eq!(server.hosts().len(), 3);
}

#[tokio::test]
async fn the_deadline_counts_from_the_first_check_across_runs() {
    let server = HealthResponder::start(vec![healthy("1.1.0")]).await;
    let verify = step(verify_config(server.port, 10, 300)).await;
    let mut record = verifying_upgrade("late", "1.0.0", "1.1.0");
    let began = chrono::Utc::now() - chrono::Duration::seconds(400);
    record.facts.progress = Some(json!({"verify": {"release": "1.1.0", "passes": 1, "since": began}}));
    let out = verify.run(ctx(&record)).await;
    assert_eq!(
        out,
        StepOutcome::fail(
            "late.example.com answered 200 ok (release 1.1.0); alarms: none — want 1.1.0, 2/3 passes within 300s"
        )
    );
}

#[tokio::test]
async fn verify_rollback_expects_the_previous_release() {
    let server = HealthResponder::start(vec![healthy("1.0.0")]).await;
    let verify = step(verify_config(server.port, 20, 30)).await;
    let state = TenantState::RollingBack {
        step: RollbackStep::VerifyRollback,
        abandoned: release("1.1.0"),
        previous: release("1.0.0"),
        cause: "verify failed".into(),
    };
    let record = TenantRecord::new(spec("back", "us-east-1"), state, chrono::Utc::now());
    let (out, runs) = run_polling(&verify, record, 10).await;
    assert!(matches!(out, StepOutcome::Done(_)), "{out:?}");
    assert_eq!(runs, 3);
}

/// The whole path through the worker and the store: Helm deploys through the stand-in,
/// the health stand-in answers from what was deployed, and a release that answers
/// unhealthy is rolled back to the revision that ran before.
/// A tenant driven by the worker through the real Deploy, RollbackDeploy and Verify
/// steps (with the Helm and health stand-ins); the other steps are `ScriptedStep`.
struct EndToEnd {
    store: TestStore,
    helm: HelmStandin,
    _health: HealthStandin,
    scripted: Arc<ScriptedStep>,
    worker: Worker,
    commands: TenantCommands,
    op: Actor,
    id: tenant_orchestrator::domain::TenantId,
}

impl EndToEnd {
    /// Provisions tenant `e2e` on 1.0.0 (Helm revision 1).
    async fn provisioned() -> Self {
        let store = fresh_store().await;
        let helm = HelmStandin::new();
        let health = HealthStandin::start(&helm);
        let mut config = (*steps_config(&helm)).clone();
        config.verify = VerifyConfig {
            required_passes: 2,
            ..verify_config(health.port, 50, 3)
        };
        let config = Arc::new(config);
        let scripted = ScriptedStep::new();
        scripted.script(
            "e2e",
            StepKind::CheckArtifact,
            vec![StepOutcome::done("resolved", deployable_facts("e2e", 'a'))],
        );
        let verify = Arc::new(VerifyRelease::new(
            config.clone(),
            crate::aws_support::aws().await,
        ));
        let steps = StepRegistry::all(scripted.clone())
            .with(StepKind::Deploy, Arc::new(Deploy::new(config.clone())))
            .with(
                StepKind::RollbackDeploy,
                Arc::new(RollbackDeploy::new(config.clone())),
            )
            .with(StepKind::Verify, verify.clone())
            .with(StepKind::VerifyRollback, verify);
        let e2e = Self {
            worker: Worker::new(store.clone(), steps, fast_worker("w-e2e")),
            commands: TenantCommands::new(store.clone()),
            store,
            helm,
            _health: health,
            scripted,
            op: Actor::operator("test"),
            id: tenant_id("e2e"),
        };
        e2e.commands
            .create(spec("e2e", "us-east-1"), release("1.0.0"), &e2e.op)
            .await
            .unwrap();
        drain(&e2e.worker).await;
        let active = e2e.store.load(&e2e.id).await.unwrap();
        assert_eq!(
            active.state.label(),
            "Active",
            "last error: {:?}",
            active.last_error
        );
        assert_eq!(active.facts.helm_revision, Some(1));
        e2e
    }

    /// Upgrades to 1.1.0, a release whose health endpoint answers 503, and lets the
    /// worker run until it settles.
    async fn upgrade_to_unhealthy_release(&self) -> TenantRecord {
        let mut upgraded_facts = self.store.load(&self.id).await.unwrap().facts;
        upgraded_facts.image = deployable_facts("e2e", 'b').image;
        self.scripted.script(
            "e2e",
            StepKind::CheckArtifact,
            vec![StepOutcome::done("resolved", upgraded_facts)],
        );
        HealthStandin::break_release(&self.helm, "1.1.0");
        let upgrade = TenantEvent::Upgrade {
            release: release("1.1.0"),
        };
        self.commands.command(&self.id, upgrade, &self.op).await.unwrap();
        drain(&self.worker).await;
        self.store.load(&self.id).await.unwrap()
    }
}

#[tokio::test]
async fn an_upgrade_that_answers_unhealthy_is_rolled_back_by_helm_and_verified_on_the_old_release() {
    let e2e = EndToEnd::provisioned().await;
    let r = e2e.upgrade_to_unhealthy_release().await;
    let TenantState::Active {
        release: running,
        failed_upgrade,
    } = &r.state
    else {
        panic!("{:?}", r.state)
    };
    assert_eq!(
        (running, failed_upgrade),
        (&release("1.0.0"), &Some(release("1.1.0")))
    );
    assert_eq!(r.facts.helm_revision, Some(3));
    assert_eq!(
        e2e.helm.values_of("tenant-e2e", "e2e", 3),
        e2e.helm.values_of("tenant-e2e", "e2e", 1)
    );
    let history = e2e.store.history(&e2e.id, 0, 100).await.unwrap().items;
    let verify_failure = history
        .iter()
        .find(|e| e.from == "Upgrading/Verify")
        .and_then(|e| e.error.clone())
        .expect("the failed verification is in the history");
    assert!(
        verify_failure.contains("e2e.example.com answered 503 unhealthy (release 1.1.0) — want 1.1.0"),
        "{verify_failure}"
    );
    assert!(history
        .iter()
        .any(|e| e.from == "RollingBack/VerifyRollback" && e.to == "RollingBack/Reopen"));
}

#[tokio::test]
async fn a_rollback_that_fails_leaves_the_tenant_failed_with_both_reasons_until_retried() {
    let e2e = EndToEnd::provisioned().await;
    e2e.helm.fail(
        "e2e",
        "rollback",
        "Kubernetes cluster unreachable: connection refused",
    );
    let r = e2e.upgrade_to_unhealthy_release().await;
    assert_eq!(r.state.name(), "Failed", "{:?}", r.state);
    let reason = r.last_error.clone().unwrap();
    assert!(
        reason.contains("rollback to 1.0.0 failed at RollbackDeploy"),
        "{reason}"
    );
    assert!(reason.contains("Kubernetes cluster unreachable"), "{reason}");
    assert!(
        reason.contains("failed at Verify: e2e.example.com answered 503"),
        "{reason}"
    );
    assert_eq!(r.state.current_release(), Some(&release("1.0.0")));

    // The operator fixes the cluster and retries: the rollback resumes and completes.
    e2e.helm.heal("e2e", "rollback");
    e2e.commands
        .command(&e2e.id, TenantEvent::Retry, &e2e.op)
        .await
        .unwrap();
    drain(&e2e.worker).await;
    let r = e2e.store.load(&e2e.id).await.unwrap();
    assert_eq!(r.state.label(), "Active", "last error: {:?}", r.last_error);
    assert_eq!(r.state.current_release(), Some(&release("1.0.0")));
}
