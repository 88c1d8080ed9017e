//! Crash safety: a worker process is killed with SIGKILL in the middle of a step; a
//! second process takes over once the lease expires and finishes every tenant. The
//! step double appends each run's start and end to a file, so the test can prove that
//! no step ran under two owners at once.
//!
//! The worker processes are this test binary re-executed with `CRASH_CHILD=1`, which
//! runs `crash_child_worker` (ignored in normal runs).

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use common::*;
use serde::{Deserialize, Serialize};
use tenant_orchestrator::app::TenantCommands;
use tenant_orchestrator::machine::StepKind;
use tenant_orchestrator::record::Actor;
use tenant_orchestrator::step::{Step, StepContext, StepOutcome, StepRegistry};
use tenant_orchestrator::store::{DynamoStore, TenantStore};
use tenant_orchestrator::worker::{Worker, WorkerConfig};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunLine {
    tenant: String,
    step: StepKind,
    owner: String,
    fence: u64,
    phase: String,
    at: DateTime<Utc>,
}

/// Test double: appends start/end lines to a log shared by all worker processes, and
/// takes `slow` on the Deploy step so a kill lands mid-step.
struct FileRecordingStep {
    log: std::path::PathBuf,
    slow: Duration,
}

impl FileRecordingStep {
    fn append(&self, line: &RunLine) {
        let mut text = serde_json::to_string(line).unwrap();
        text.push('\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }
}

#[async_trait]
impl Step for FileRecordingStep {
    async fn run(&self, ctx: StepContext<'_>) -> StepOutcome {
        let line = |phase: &str| RunLine {
            tenant: ctx.tenant.id().to_string(),
            step: ctx.step,
            owner: ctx.worker.to_owned(),
            fence: ctx.fence,
            phase: phase.into(),
            at: Utc::now(),
        };
        self.append(&line("start"));
        let pause = if ctx.step == StepKind::Deploy {
            self.slow
        } else {
            Duration::from_millis(20)
        };
        tokio::time::sleep(pause).await;
        self.append(&line("end"));
        StepOutcome::done(format!("{} done", ctx.step), ctx.tenant.facts.clone())
    }
}

const TTL: Duration = Duration::from_millis(2000);

#[test]
#[ignore = "worker process started by the crash test"]
fn crash_child_worker() {
    if std::env::var("CRASH_CHILD").is_err() {
        return;
    }
    let env = |k: &str| std::env::var(k).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let config = aws_config::load_from_env().await;
        let store = Arc::new(DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&config),
            env("CRASH_TABLE"),
        ));
        let step = Arc::new(FileRecordingStep {
            log: env("CRASH_LOG").into(),
            slow: Duration::from_millis(env("CRASH_SLOW_MS").parse().unwrap()),
        });
        let config = WorkerConfig {
            lease_ttl: TTL,
            heartbeat: Duration::from_millis(500),
            poll_interval: Duration::from_millis(100),
            ..WorkerConfig::new(env("CRASH_OWNER"))
        };
        let worker = Worker::new(store, StepRegistry::all(step), config);
        let (_tx, rx) = tokio::sync::watch::channel(false);
        worker.run(rx).await.unwrap();
    });
}

fn spawn_worker(table: &str, log: &std::path::Path, owner: &str, slow_ms: u64) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_child_worker",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CRASH_CHILD", "1")
        .env("CRASH_TABLE", table)
        .env("CRASH_LOG", log)
        .env("CRASH_OWNER", owner)
        .env("CRASH_SLOW_MS", slow_ms.to_string())
        .env("TENANTCTL_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn read_log(path: &std::path::Path) -> Vec<RunLine> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_mid_step_is_replaced_and_no_step_runs_under_two_owners_at_once() {
    let store = fresh_store().await;
    let commands = TenantCommands::new(store.clone());
    let ids: Vec<String> = (0..4).map(|i| format!("crash-{i}")).collect();
    for id in &ids {
        commands
            .create(spec(id, "us-east-1"), release("1.0.0"), &Actor::operator("test"))
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("runs.jsonl");

    // Worker A: Deploy takes 30 s, so it is surely mid-step when killed.
    let mut a = spawn_worker(store.table(), &log, "worker-a", 30_000);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !read_log(&log)
        .iter()
        .any(|l| l.owner == "worker-a" && l.step == StepKind::Deploy)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "worker A never reached Deploy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.kill().unwrap(); // SIGKILL: no shutdown, no lease release
    a.wait().unwrap();

    // The leases A held when it died: their expiry is when A's claim truly ended.
    let mut a_lease_ends: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
    for id in &ids {
        let r = store.load(&tenant_id(id)).await.unwrap();
        if let Some(l) = r.lease.filter(|l| l.owner == "worker-a") {
            a_lease_ends.insert(id.clone(), l.expires_at);
        }
    }
    assert!(
        !a_lease_ends.is_empty(),
        "worker A held no lease when it was killed"
    );

    let mut b = spawn_worker(store.table(), &log, "worker-b", 100);
    for id in &ids {
        wait_for_state(store.as_ref(), &tenant_id(id), "Active", Duration::from_secs(60)).await;
    }
    b.kill().unwrap();
    b.wait().unwrap();

    let runs = read_log(&log);
    for id in &ids {
        // No tenant lost: every one is Active with a complete, ordered history in
        // which each provisioning step succeeded exactly once, under growing fences.
        let history = store.history(&tenant_id(id), 0, 100).await.unwrap().items;
        let seqs: Vec<u64> = history.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=7).collect::<Vec<u64>>(), "{id}: {history:#?}");
        let mut succeeded: BTreeMap<StepKind, usize> = BTreeMap::new();
        for e in &history[1..] {
            assert_eq!(e.cause, "StepSucceeded");
            *succeeded.entry(e.step.unwrap()).or_default() += 1;
        }
        assert!(succeeded.values().all(|n| *n == 1), "{id}: {succeeded:?}");
        let fences: Vec<u64> = history.iter().filter_map(|e| e.fence).collect();
        assert!(
            fences.windows(2).all(|w| w[0] <= w[1]),
            "{id}: fences went back: {fences:?}"
        );

        // No step under two owners at once: each run lasts from its start to its end,
        // or, for a run killed with its worker, to the expiry of that worker's lease.
        let mut spans: Vec<(String, StepKind, DateTime<Utc>, DateTime<Utc>)> = Vec::new();
        for start in runs.iter().filter(|l| &l.tenant == id && l.phase == "start") {
            let end = runs
                .iter()
                .find(|l| {
                    l.tenant == start.tenant
                        && l.step == start.step
                        && l.fence == start.fence
                        && l.phase == "end"
                })
                .map(|l| l.at)
                .unwrap_or_else(|| a_lease_ends[id]);
            spans.push((start.owner.clone(), start.step, start.at, end));
        }
        for (i, x) in spans.iter().enumerate() {
            for y in &spans[i + 1..] {
                if x.0 != y.0 && x.1 == y.1 {
                    let overlap = x.2 < y.3 && y.2 < x.3;
                    assert!(
                        !overlap,
                        "{id}: {:?} ran under {} and {} at once: {x:?} {y:?}",
                        x.1, x.0, y.0
                    );
                }
            }
        }
    }
    // The killed step really was re-run by the new owner, after A's lease ran out.
    let killed: Vec<&RunLine> = runs
        .iter()
        .filter(|l| l.owner == "worker-a" && l.step == StepKind::Deploy && l.phase == "start")
        .collect();
    assert!(!killed.is_empty());
    for k in killed {
        let rerun = runs
            .iter()
            .find(|l| {
                l.owner == "worker-b"
                    && l.tenant == k.tenant
                    && l.step == StepKind::Deploy
                    && l.phase == "start"
            })
            .expect("the interrupted Deploy was run again by worker B");
        assert!(
            rerun.at >= a_lease_ends[&k.tenant],
            "B started before A's lease expired"
        );
        assert!(rerun.fence > k.fence);
    }
}
