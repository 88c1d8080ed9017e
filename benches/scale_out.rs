//! Scale-out: 1, 2 and 4 worker processes on one table and the same fleet, side by
//! side in one run.
//!
//!   eval "$(localstack/start.sh)" && cargo bench --bench scale_out
//!
//! For each process count, a fresh table gets the same fleet of tenants to provision
//! (`SCALE_OUT_TENANTS`, default 400, over four regions) and that many worker
//! processes (this benchmark's binary started again as a worker, with a step test
//! double that returns at once) provision it. Prints transitions per second from
//! the first to the last history event, how the step runs split between the
//! processes, and double starts: a step that succeeded twice for one tenant in its
//! history, or that two processes ran at once (from the run log all processes
//! append to). The benchmark panics when any tenant is not Active or any double
//! start is found.

#[path = "common/allocator.rs"]
mod allocator;
#[allow(dead_code)] // the benchmark uses the run log only
#[path = "../tests/common/child_worker.rs"]
mod child_worker;
#[path = "common/local_fleet.rs"]
mod common;

#[path = "common/fleet_spec.rs"]
mod fleet_spec;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use child_worker::RunLog;
use chrono::Utc;
use tenant_orchestrator::app::TenantCommands;
use tenant_orchestrator::domain::ReleaseVersion;
use tenant_orchestrator::record::Actor;
use tenant_orchestrator::step::{Step, StepContext, StepOutcome, StepRegistry};
use tenant_orchestrator::store::{DynamoStore, TenantReads, TenantStore};
use tenant_orchestrator::worker::{Worker, WorkerConfig};

const PROCESS_COUNTS: [usize; 3] = [1, 2, 4];
const DEFAULT_TENANTS: usize = 400;
/// Steps a provisioning runs: one transition each.
const STEPS_PER_TENANT: usize = 6;
/// Tenants each worker process moves at once.
const CONCURRENCY: usize = 8;
const WORKER_ENV: &str = "SCALE_OUT_WORKER";

/// Test double: returns at once, appending its start and end to the run log every
/// worker process shares.
struct LoggedInstantStep {
    log: RunLog,
}

#[async_trait]
impl Step for LoggedInstantStep {
    async fn run(&self, ctx: StepContext<'_>) -> StepOutcome {
        self.log.append(&ctx, "start");
        self.log.append(&ctx, "end");
        StepOutcome::done("instant", ctx.tenant.facts.clone())
    }
}

/// The worker process: runs until it is killed.
fn worker_process() {
    let env = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set"));
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = Arc::new(DynamoStore::new(common::client().await, env("SCALE_OUT_TABLE")));
        let step = Arc::new(LoggedInstantStep {
            log: RunLog(env("SCALE_OUT_LOG").into()),
        });
        let config = WorkerConfig {
            concurrency: CONCURRENCY,
            poll_interval: Duration::from_millis(50),
            ..WorkerConfig::new(env(WORKER_ENV))
        };
        let (_tx, rx) = tokio::sync::watch::channel(false);
        Worker::new(store, StepRegistry::all(step), config)
            .run(rx)
            .await
            .unwrap();
    });
}

fn spawn_worker(owner: &str, table: &str, log: &RunLog) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .env(WORKER_ENV, owner)
        .env("SCALE_OUT_TABLE", table)
        .env("SCALE_OUT_LOG", &log.0)
        .env("TENANTCTL_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

struct Run {
    processes: usize,
    transitions: usize,
    elapsed: Duration,
    runs_by_owner: BTreeMap<String, usize>,
    double_starts: usize,
}

async fn run(client: &aws_sdk_dynamodb::Client, processes: usize, tenants: usize) -> Run {
    let table = common::fresh_table(client, "scale-out").await;
    let store = Arc::new(DynamoStore::new(client.clone(), table.clone()));
    let commands = Arc::new(TenantCommands::new(store.clone()));
    common::for_each_concurrently(tenants, 16, |i| {
        let commands = commands.clone();
        async move {
            commands
                .create(
                    common::spec("scale", i),
                    ReleaseVersion::parse("1.0.0").unwrap(),
                    &Actor::operator("bench"),
                )
                .await
                .unwrap();
        }
    })
    .await;

    let dir = tempfile::tempdir().unwrap();
    let log = child_worker::log_in(dir.path());
    let started_at = Utc::now();
    let children: Vec<Child> = (0..processes)
        .map(|p| spawn_worker(&format!("worker-{p}"), &table, &log))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let summary = store.fleet_summary().await.unwrap();
        let active: u64 = summary.by_region.values().filter_map(|s| s.get("Active")).sum();
        if active == tenants as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{processes} processes: only {active} of {tenants} tenants Active after 600 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for child in children {
        child_worker::kill(child);
    }

    let mut transitions = 0;
    let mut double_starts = 0;
    let mut last_event = started_at;
    for i in 0..tenants {
        let id = common::spec("scale", i).id;
        let history = store.history(&id, 0, 100).await.unwrap().items;
        let mut succeeded: BTreeMap<_, usize> = BTreeMap::new();
        for e in history.iter().filter(|e| e.cause == "StepSucceeded") {
            *succeeded.entry(e.step).or_default() += 1;
            transitions += 1;
            last_event = last_event.max(e.at);
        }
        double_starts += succeeded.values().map(|n| n.saturating_sub(1)).sum::<usize>();
        log.assert_no_step_under_two_owners(id.as_str(), None);
    }
    let lines = log.read();
    let mut starts: BTreeMap<(&str, _), usize> = BTreeMap::new();
    let mut runs_by_owner: BTreeMap<String, usize> = BTreeMap::new();
    for l in lines.iter().filter(|l| l.phase == "start") {
        *starts.entry((l.tenant.as_str(), l.step)).or_default() += 1;
        *runs_by_owner.entry(l.owner.clone()).or_default() += 1;
    }
    // A step run twice by the run log but recorded once: the second run lost its
    // lease before it could commit, which is a double start all the same.
    double_starts = double_starts.max(starts.values().map(|n| n.saturating_sub(1)).sum());
    let _ = store.client().delete_table().table_name(&table).send().await;
    Run {
        processes,
        transitions,
        elapsed: (last_event - started_at).to_std().unwrap_or_default(),
        runs_by_owner,
        double_starts,
    }
}

fn main() {
    if std::env::var(WORKER_ENV).is_ok() {
        return worker_process();
    }
    common::require_local_aws("scale_out");
    let tenants: usize = std::env::var("SCALE_OUT_TENANTS")
        .map(|v| {
            v.parse()
                .expect("SCALE_OUT_TENANTS must be a whole number of tenants")
        })
        .unwrap_or(DEFAULT_TENANTS);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let client = common::client().await;
        // Warm-up (DynamoDB Local's JIT, the binary in the page cache), not reported.
        let _ = run(&client, 1, 40).await;
        let runs: Vec<Run> = {
            let mut runs = Vec::new();
            for processes in PROCESS_COUNTS {
                runs.push(run(&client, processes, tenants).await);
            }
            runs
        };
        println!(
            "tenants: {tenants} (4 regions), steps per tenant: {STEPS_PER_TENANT}, concurrency per process: {CONCURRENCY}"
        );
        let base = common::per_second(runs[0].transitions as f64, runs[0].elapsed);
        for r in &runs {
            let tps = common::per_second(r.transitions as f64, r.elapsed);
            let split: Vec<String> = r.runs_by_owner.iter().map(|(o, n)| format!("{o} {n}")).collect();
            println!(
                "{} process(es): {:>7.1} transitions/s ({:.2}x of 1 process), {} transitions in {:.2} s, double starts {}; step runs: {}",
                r.processes,
                tps,
                tps / base,
                r.transitions,
                r.elapsed.as_secs_f64(),
                r.double_starts,
                split.join(", ")
            );
        }
        for r in &runs {
            assert_eq!(
                r.transitions,
                tenants * STEPS_PER_TENANT,
                "{} processes: {} transitions recorded, expected {}",
                r.processes,
                r.transitions,
                tenants * STEPS_PER_TENANT
            );
            assert_eq!(r.double_starts, 0, "{} processes: double starts", r.processes);
            assert_eq!(r.runs_by_owner.len(), r.processes, "{} processes: not every process ran steps", r.processes);
        }
    });
}
