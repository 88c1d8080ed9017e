//! Crash safety: a worker process is killed with SIGKILL in the middle of a step; a
//! second process takes over once the lease expires and finishes every tenant. The
//! step double appends each run's start and end to a file, so the test can prove that
//! no step ran under two owners at once.
//!
//! The worker processes are this test binary re-executed with `CRASH_CHILD=1`, which
//! runs `crash_child_worker` (ignored in normal runs).

#[path = "common/child_worker.rs"]
mod child_worker;
mod common;

use std::collections::BTreeMap;
use std::process::Child;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use child_worker::{RunLine, RunLog};
use common::*;
use tenant_orchestrator::app::TenantCommands;
use tenant_orchestrator::machine::StepKind;
use tenant_orchestrator::record::Actor;
use tenant_orchestrator::step::{Step, StepContext, StepOutcome, StepRegistry};
use tenant_orchestrator::store::{DynamoStore, TenantStore};
use tenant_orchestrator::worker::{Worker, WorkerConfig};

/// Test double: appends start/end lines to a log shared by all worker processes, and
/// takes `slow` on the Deploy step so a kill lands mid-step.
struct FileRecordingStep {
    log: RunLog,
    slow: Duration,
}

#[async_trait]
impl Step for FileRecordingStep {
    async fn run(&self, ctx: StepContext<'_>) -> StepOutcome {
        self.log.append(&ctx, "start");
        let pause = if ctx.step == StepKind::Deploy {
            self.slow
        } else {
            Duration::from_millis(20)
        };
        tokio::time::sleep(pause).await;
        self.log.append(&ctx, "end");
        StepOutcome::done(format!("{} done", ctx.step), ctx.tenant.facts.clone())
    }
}

const TTL: Duration = Duration::from_millis(2000);

/// A child process's store and step double, as its environment names them.
async fn child_store_and_step() -> (Arc<DynamoStore>, Arc<FileRecordingStep>) {
    let env = |k: &str| std::env::var(k).unwrap();
    let config = aws_config::load_from_env().await;
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        env("CRASH_TABLE"),
    ));
    let step = Arc::new(FileRecordingStep {
        log: RunLog(env("CRASH_LOG").into()),
        slow: Duration::from_millis(env("CRASH_SLOW_MS").parse().unwrap()),
    });
    (store, step)
}

#[test]
#[ignore = "worker process started by the crash test"]
fn crash_child_worker() {
    if std::env::var("CRASH_CHILD").is_err() {
        return;
    }
    let env = |k: &str| std::env::var(k).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let (store, step) = child_store_and_step().await;
        let config = WorkerConfig {
            lease_ttl: TTL,
            heartbeat: Duration::from_millis(500),
            poll_interval: Duration::from_millis(100),
            step_write_delay: Duration::from_millis(env("CRASH_WRITE_DELAY_MS").parse().unwrap()),
            ..WorkerConfig::new(env("CRASH_OWNER"))
        };
        let worker = Worker::new(store, StepRegistry::all(step), config);
        let (_tx, rx) = tokio::sync::watch::channel(false);
        worker.run(rx).await.unwrap();
    });
}

fn spawn_worker(table: &str, log: &RunLog, owner: &str, slow_ms: u64, write_delay_ms: u64) -> Child {
    child_worker::spawn(
        "crash_child_worker",
        &[
            ("CRASH_CHILD", "1".into()),
            ("CRASH_TABLE", table.into()),
            ("CRASH_LOG", log.0.display().to_string()),
            ("CRASH_OWNER", owner.into()),
            ("CRASH_SLOW_MS", slow_ms.to_string()),
            ("CRASH_WRITE_DELAY_MS", write_delay_ms.to_string()),
        ],
    )
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
    let log = child_worker::log_in(dir.path());

    // Worker A: Deploy takes 30 s, so it is surely mid-step when killed, and the
    // outcomes of the four steps before it wait up to 60 s to be written with the
    // steps after them, so they are surely unwritten when it dies.
    let a = spawn_worker(store.table(), &log, "worker-a", 30_000, 60_000);
    log.wait_for_start("worker-a", StepKind::Deploy, Duration::from_secs(30))
        .await;
    child_worker::kill(a);
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let a_lease_ends = child_worker::lease_ends_of(store.as_ref(), &id_refs, "worker-a").await;

    for id in &ids {
        let r = store.load(&tenant_id(id)).await.unwrap();
        assert_eq!(r.event_seq, 1, "{id}: A's held-back outcomes died with it: {r:?}");
    }
    let b = spawn_worker(store.table(), &log, "worker-b", 100, 1_000);
    for id in &ids {
        wait_for_state(store.as_ref(), &tenant_id(id), "Active", Duration::from_secs(60)).await;
    }
    child_worker::kill(b);

    let runs = log.read();
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

        log.assert_no_step_under_two_owners(id, a_lease_ends.get(id).copied());
        // What A ran but never wrote, B ran again, and only B's run is in the history.
        for step in [
            StepKind::CheckArtifact,
            StepKind::ProvisionInfra,
            StepKind::WriteConfig,
        ] {
            let owners: Vec<&str> = (runs.iter())
                .filter(|l| &l.tenant == id && l.step == step && l.phase == "end")
                .map(|l| l.owner.as_str())
                .collect();
            if owners.contains(&"worker-a") {
                assert!(
                    owners.contains(&"worker-b"),
                    "{id}: {step} was not run again: {owners:?}"
                );
            }
        }
        assert!(
            history[1..]
                .iter()
                .all(|e| e.actor.starts_with("worker:worker-b#")),
            "{id}: {history:#?}"
        );
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

#[test]
#[ignore = "process of a rollout controller beside its worker, started by a crash test"]
fn crash_child_controller_and_worker() {
    use tenant_orchestrator::ports::{Relay, Wakeup};
    use tenant_orchestrator::rollout::{Controller, ControllerConfig};
    if std::env::var("CRASH_CHILD").is_err() {
        return;
    }
    let env = |k: &str| std::env::var(k).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let (store, step) = child_store_and_step().await;
        let owner = env("CRASH_OWNER");
        let config = WorkerConfig {
            lease_ttl: TTL,
            heartbeat: Duration::from_millis(500),
            poll_interval: Duration::from_millis(100),
            ..WorkerConfig::new(owner.clone())
        };
        // Wired as `tenantctl serve` wires them.
        let (due, settled, relay) = (Wakeup::default(), Wakeup::default(), Relay::new());
        let (worker, handoff) = Worker::new(store.clone(), StepRegistry::all(step), config)
            .with_due_wakeup(due.clone())
            .with_settled_wakeup(settled.clone())
            .with_relay(relay.clone())
            .with_handoff();
        let controller = Controller::new(
            store.clone(),
            store,
            Arc::new(HealthyProbeDouble),
            ControllerConfig {
                lease_ttl: TTL,
                tick: Duration::from_millis(100),
                ..ControllerConfig::new(format!("{owner}-controller"))
            },
        )
        .with_wakeups(due, settled)
        .with_handoff(handoff)
        .with_relay(relay);
        let (_tx, rx) = tokio::sync::watch::channel(false);
        tokio::join!(controller.run(rx.clone()), async {
            worker.run(rx).await.unwrap()
        });
    });
}

/// A process running a rollout's controller beside its worker, which starts tenants
/// by relay with their neighbours' landings, is killed mid-rollout; a second such
/// process finishes the rollout. Every tenant is upgraded exactly once, every member
/// succeeds on its first attempt, and no step ran under two owners at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_process_starting_tenants_by_relay_is_replaced_and_no_tenant_starts_twice() {
    use tenant_orchestrator::app::RolloutCommands;
    use tenant_orchestrator::domain::{RolloutId, RolloutSpec};
    use tenant_orchestrator::machine::{TenantEvent, TenantState};
    use tenant_orchestrator::record::{Cause, Outcome, Phase, TenantRecord, Transition};
    use tenant_orchestrator::store::RolloutStore;
    let store = fresh_store().await;
    let ids: Vec<String> = (0..10).map(|i| format!("relay-{i}")).collect();
    for id in &ids {
        let active = TenantState::Active {
            release: release("1.0.0"),
            failed_upgrade: None,
        };
        let provision = Cause::Event(TenantEvent::Provision {
            release: release("1.0.0"),
        });
        (store.create(
            &TenantRecord::new(spec(id, "us-east-1"), active, chrono::Utc::now()),
            Transition::new(&TenantState::initial(), provision, Actor("test".into())),
        ))
        .await
        .unwrap();
    }
    let rollout = RolloutId::parse("r-relay-crash").unwrap();
    let strategy: RolloutSpec = serde_json::from_value(serde_json::json!({
        "release": "2.0.0",
        "strategy": {
            "waves": ["1", "100%"], "max_in_flight_per_region": 2,
            "bake_time": "0s", "bake_checks": 0,
            "approvals": {"after_canary": false, "between_regions": false}
        }
    }))
    .unwrap();
    RolloutCommands::new(store.arc(), store.arc())
        .start(rollout.clone(), strategy, "operator:test")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = child_worker::log_in(dir.path());
    let spawn = |owner: &str| {
        child_worker::spawn(
            "crash_child_controller_and_worker",
            &[
                ("CRASH_CHILD", "1".into()),
                ("CRASH_TABLE", store.table().into()),
                ("CRASH_LOG", log.0.display().to_string()),
                ("CRASH_OWNER", owner.into()),
                ("CRASH_SLOW_MS", "400".into()),
            ],
        )
    };

    // Killed once six tenants have started (two at a time after the canary, so the
    // later ones by relay), in the middle of a Deploy.
    let a = spawn("worker-a");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let members = store.members(&rollout, None).await.unwrap();
        if members.iter().filter(|m| m.attempts > 0).count() >= 6 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the first process never got going"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    log.wait_for_start("worker-a", StepKind::Deploy, Duration::from_secs(30))
        .await;
    child_worker::kill(a);
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let a_lease_ends = child_worker::lease_ends_of(store.as_ref(), &id_refs, "worker-a").await;

    let b = spawn("worker-b");
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let done = loop {
        let r = store.load_rollout(&rollout).await.unwrap();
        if r.phase.is_finished() {
            break r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the rollout did not finish: {:#?}",
            r.events
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    child_worker::kill(b);

    assert_eq!(done.phase, Phase::Completed, "{:#?}", done.events);
    let members = store.members(&rollout, None).await.unwrap();
    assert_eq!(members.len(), ids.len(), "no tenant lost");
    for m in &members {
        assert_eq!((&m.outcome, m.attempts), (&Outcome::Succeeded, 1), "{}", m.tenant);
    }
    for id in &ids {
        let r = store.load(&tenant_id(id)).await.unwrap();
        assert_eq!(
            r.state.current_release().map(|v| v.to_string()).as_deref(),
            Some("2.0.0"),
            "{id}"
        );
        let history = store.history(&tenant_id(id), 0, 100).await.unwrap().items;
        let starts = (history.iter())
            .filter(|e| e.cause.starts_with("Upgrade to 2.0.0 (rollout"))
            .count();
        assert_eq!(starts, 1, "{id} started once: {history:#?}");
        log.assert_no_step_under_two_owners(id, a_lease_ends.get(id).copied());
    }
}
