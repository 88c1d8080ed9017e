//! Rollout makespan against the ideal of its strategy, and planning time for 100,000
//! tenants, in one run.
//!
//!   eval "$(localstack/start.sh)" && cargo bench --bench rollout
//!
//! 1. 1,000 tenants in 3 regions (334/333/333), seeded Active on 1.0.0 in a fresh
//!    table on DynamoDB Local, are rolled to 2.0.0 by the real `Worker`s and the real
//!    `Controller`. `FixedLatencyStep`, a step double, takes 40 ms per step and
//!    `PassingHealth`, a bake-health double, passes every check, so what is measured
//!    is the orchestration around the steps. Prints the makespan from
//!    `RolloutCommands::start` to Completed, the ideal makespan of the same strategy
//!    over the stored waves, their ratio, tenants per second, write capacity units,
//!    and where the time went. Panics unless every tenant ends Active on 2.0.0 after
//!    one attempt, with each upgrade step run exactly once.
//! 2. Planning time for 100,000 tenants: the fleet and spec of `benches/planner.rs`.

#[path = "common/allocator.rs"]
mod allocator;
mod common;

#[path = "common/fleet_spec.rs"]
mod fleet_spec;
#[path = "common/write_units.rs"]
mod write_units;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;

use common::{measure_planning, ms, planning_fleet, PLANNING_SPEC, PLANNING_TENANTS};
use tenant_orchestrator::app::RolloutCommands;
use tenant_orchestrator::domain::{ReleaseVersion, RolloutId, RolloutSpec, TenantId, TenantSpec};
use tenant_orchestrator::machine::{StepKind, TenantEvent, TenantState};
use tenant_orchestrator::ports::{Relay, TenantHealth, TenantProbe, Wakeup};
use tenant_orchestrator::record::{
    Actor, Cause, Outcome, Phase, RolloutMember, RolloutRecord, TenantRecord, Transition, WaveRecord,
};
use tenant_orchestrator::rollout::{
    plan_with, Controller, ControllerConfig, PlanOptions, TenantSummaryForPlanning,
};
use tenant_orchestrator::step::{Step, StepContext, StepOutcome, StepRegistry};
use tenant_orchestrator::store::{table, DynamoStore, Meter, RolloutStore, StoreError, TenantStore};
use tenant_orchestrator::worker::{Worker, WorkerConfig};

const TENANTS: usize = 1_000;
/// In rollout order. Tenant `i` lives in `REGIONS[i % 3]`, so the first has 334.
const REGIONS: [&str; 3] = ["eu-west-1", "us-east-1", "ap-southeast-2"];
const FROM: &str = "1.0.0";
const TO: &str = "2.0.0";
/// The upgrade path: one `FixedLatencyStep` run each (Quiesce and Reopen run on every
/// upgrade; whether they put up the maintenance page is the real steps' decision).
const UPGRADE_STEPS: [StepKind; 9] = [
    StepKind::CheckArtifact,
    StepKind::Quiesce,
    StepKind::Backup,
    StepKind::UpdateInfra,
    StepKind::WriteConfig,
    StepKind::EnsureCertificates,
    StepKind::Deploy,
    StepKind::Verify,
    StepKind::Reopen,
];
const STEP_LATENCY: Duration = Duration::from_millis(40);
const WORKERS: usize = 2;
/// Tenants each worker drives at once: 96 in all, more than the 40 the strategy lets
/// move at once, so the rollout never waits for a free worker slot.
const WORKER_CONCURRENCY: usize = 48;
/// The product's default: the controller names the tenants it starts to the workers
/// beside it, so a poll is their fallback, not how they find the rollout's work.
/// (Until 2026-12-04, 50 ms.)
const WORKER_POLL: Duration = Duration::from_secs(1);
const CONTROLLER_TICK: Duration = Duration::from_millis(100);
/// Shortest time between passes when a worker wakes the controller early.
const CONTROLLER_WOKEN_GAP: Duration = Duration::from_millis(10);
/// Tenants created at once while seeding.
const SEED_PARALLELISM: usize = 16;
/// How often the benchmark looks whether the rollout completed. The makespan ends at
/// the completion's own time in the record, so this only bounds how late the run
/// stops: reading the rollout item (9.5 KB) every 20 ms, as until 2026-12-04, added
/// some 2,700 reads to the store the run measures.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);
const GIVE_UP_AFTER: Duration = Duration::from_secs(600);

fn rollout_spec() -> RolloutSpec {
    serde_json::from_value(json!({
        "release": TO,
        "strategy": {
            "region_order": REGIONS,
            "waves": ["1", "10%", "50%", "100%"],
            "max_in_flight_per_region": 40,
            "bake_time": "2s", "bake_checks": 1, "bake_check_interval": "1s",
            "approvals": {"after_canary": false, "between_regions": false}
        }
    }))
    .unwrap()
}

/// Step double: every step succeeds after `STEP_LATENCY`, like a remote call that
/// always takes the same time. Records each run, to check that every upgrade step ran
/// once per tenant and to see when each tenant's upgrade actually ran.
#[derive(Default)]
struct FixedLatencyStep {
    runs: Mutex<HashMap<TenantId, Vec<StepRun>>>,
}

struct StepRun {
    step: StepKind,
    started: DateTime<Utc>,
    ended: DateTime<Utc>,
}

#[async_trait]
impl Step for FixedLatencyStep {
    async fn run(&self, ctx: StepContext<'_>) -> StepOutcome {
        let started = Utc::now();
        tokio::time::sleep(STEP_LATENCY).await;
        let run = StepRun {
            step: ctx.step,
            started,
            ended: Utc::now(),
        };
        (self.runs.lock().unwrap())
            .entry(ctx.tenant.id().clone())
            .or_default()
            .push(run);
        StepOutcome::done(format!("{} (fixed latency)", ctx.step), ctx.tenant.facts.clone())
    }
}

/// Bake-health double: every tenant is healthy.
#[derive(Default)]
struct PassingHealth {
    checks: AtomicUsize,
}

#[async_trait]
impl TenantProbe for PassingHealth {
    async fn probe(&self, _tenant: &TenantSpec, _release: &ReleaseVersion) -> TenantHealth {
        self.checks.fetch_add(1, Ordering::Relaxed);
        TenantHealth::Healthy { alarms: Vec::new() }
    }
}

fn tenant_spec(i: usize) -> TenantSpec {
    fleet_spec::bench_spec(&format!("tenant-{i:04}"), REGIONS[i % REGIONS.len()])
}

fn active_on(release: &str) -> TenantState {
    TenantState::Active {
        release: ReleaseVersion::parse(release).unwrap(),
        failed_upgrade: None,
    }
}

/// Stores the fleet, Active on `FROM`, `SEED_PARALLELISM` creates at a time. Every
/// create also adds the region to one shared item, so transactions can collide;
/// those are retried. Returns how many retries were needed.
async fn seed(store: &Arc<DynamoStore>) -> usize {
    let mut lanes = JoinSet::new();
    for lane in 0..SEED_PARALLELISM {
        let store = store.clone();
        lanes.spawn(async move {
            let mut retries = 0;
            for i in (lane..TENANTS).step_by(SEED_PARALLELISM) {
                let record = TenantRecord::new(tenant_spec(i), active_on(FROM), Utc::now());
                loop {
                    let first = Transition::new(
                        &TenantState::initial(),
                        Cause::Event(TenantEvent::Provision {
                            release: ReleaseVersion::parse(FROM).unwrap(),
                        }),
                        Actor("bench".into()),
                    );
                    match store.create(&record, first).await {
                        Ok(_) => break,
                        Err(StoreError::Retryable { .. }) if retries < 100 => {
                            retries += 1;
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        Err(e) => panic!("seeding {}: {e}", record.id()),
                    }
                }
            }
            retries
        });
    }
    lanes.join_all().await.into_iter().sum()
}

/// The rollout as it ended, and what it took.
struct Run {
    record: RolloutRecord,
    members: Vec<RolloutMember>,
    started_at: DateTime<Utc>,
    seeding: Duration,
    seed_retries: usize,
    start_call: Duration,
    makespan: Duration,
    write_units: f64,
    /// Write units per tenant by operation and part written.
    write_breakdown: Vec<(String, f64)>,
    reads: Reads,
    /// DynamoDB calls of the rollout by operation: how many, and their seconds in all.
    calls: Vec<(String, f64, f64)>,
    bake_checks: usize,
}

/// The reads of a rollout, from its start to its completion (workers, controller and
/// the benchmark's own watch of the rollout item, every `WATCH_INTERVAL`, together).
struct Reads {
    units: f64,
    batch_gets: u64,
    queries: u64,
}

async fn run_rollout(client: aws_sdk_dynamodb::Client, steps: Arc<FixedLatencyStep>) -> Run {
    let name = format!("bench-rollout-{}", uuid::Uuid::new_v4().simple());
    table::ensure_table(&client, &name).await.unwrap();
    // Every read of the run counts into `meter`: the passes' tenant loads are most of it.
    let (client, meter) = Meter::attach(&client);
    let store = Arc::new(DynamoStore::new(client, name));
    let seeding = Instant::now();
    let seed_retries = seed(&store).await;
    let seeding = seeding.elapsed();

    let health = Arc::new(PassingHealth::default());
    // The workers and the controller share this process, as in `tenantctl serve`.
    let (due, settled, commanded) = (Wakeup::default(), Wakeup::default(), Wakeup::default());
    let (shutdown, _) = watch::channel(false);
    let mut running = JoinSet::new();
    let mut handoffs = Vec::new();
    // `ROLLOUT_RELAY=off` runs the rollout without relayed starts, as before them.
    let relay = (std::env::var("ROLLOUT_RELAY").as_deref() != Ok("off")).then(Relay::new);
    for i in 0..WORKERS {
        let config = WorkerConfig {
            concurrency: WORKER_CONCURRENCY,
            poll_interval: WORKER_POLL,
            ..WorkerConfig::new(format!("bench-worker-{i}"))
        };
        let mut worker = Worker::new(store.clone(), StepRegistry::all(steps.clone()), config)
            .with_due_wakeup(due.clone())
            .with_settled_wakeup(settled.clone());
        if let Some(relay) = &relay {
            worker = worker.with_relay(relay.clone());
        }
        let (worker, handoff) = worker.with_handoff();
        handoffs.push(handoff);
        let stop = shutdown.subscribe();
        running.spawn(async move { worker.run(stop).await.unwrap() });
    }
    let controller = Controller::new(
        store.clone(),
        store.clone(),
        health.clone(),
        ControllerConfig {
            tick: CONTROLLER_TICK,
            woken_gap: CONTROLLER_WOKEN_GAP,
            ..ControllerConfig::new("bench-controller")
        },
    )
    .with_wakeups(due, settled)
    .with_command_wakeup(commanded.clone());
    let mut controller = handoffs.into_iter().fold(controller, Controller::with_handoff);
    if let Some(relay) = relay {
        controller = controller.with_relay(relay);
    }
    let stop = shutdown.subscribe();
    running.spawn(async move { controller.run(stop).await });

    let commands = RolloutCommands::new(store.clone(), store.clone()).with_wakeup(commanded);
    let id = RolloutId::parse("r-bench").unwrap();
    let units_before = store.consumed_write_units();
    let reads_before = meter.usage();
    let calls_before = dynamodb_calls();
    let units_mark = write_units::mark(&store);
    let started_at = Utc::now();
    let clock = Instant::now();
    commands
        .start(id.clone(), rollout_spec(), "operator:bench")
        .await
        .unwrap();
    let start_call = clock.elapsed();
    let record = loop {
        let record = store.load_rollout(&id).await.unwrap();
        if record.phase.is_finished() {
            break record;
        }
        assert!(
            clock.elapsed() < GIVE_UP_AFTER,
            "the rollout did not finish within {GIVE_UP_AFTER:?}; it is {} at wave {}: {:#?}",
            record.phase,
            record.current_wave,
            record.events
        );
        tokio::time::sleep(WATCH_INTERVAL).await;
    };
    // The completing save stamps the record just before it is sent.
    let makespan = (record.updated_at - started_at)
        .to_std()
        .expect("the rollout completed after it started");
    let write_units = store.consumed_write_units() - units_before;
    let reads_after = meter.usage();
    let calls = (dynamodb_calls().into_iter())
        .map(|(operation, (count, sum))| {
            let (count_before, sum_before) = calls_before.get(&operation).copied().unwrap_or_default();
            (operation, count - count_before, sum - sum_before)
        })
        .filter(|(_, count, _)| *count > 0.0)
        .collect();
    let reads = Reads {
        units: reads_after.read_units - reads_before.read_units,
        batch_gets: reads_after.requests_of("BatchGetItem") - reads_before.requests_of("BatchGetItem"),
        queries: reads_after.requests_of("Query") - reads_before.requests_of("Query"),
    };
    let write_breakdown = write_units::since(&store, &units_mark, TENANTS as f64);
    shutdown.send(true).unwrap();
    running.join_all().await;

    let members = store.members(&id, None).await.unwrap();
    assert_correct(&store, &record, &members, &steps).await;
    Run {
        record,
        members,
        started_at,
        seeding,
        seed_retries,
        start_call,
        makespan,
        write_units,
        write_breakdown,
        reads,
        calls,
        bake_checks: health.checks.load(Ordering::Relaxed),
    }
}

/// Panics unless the rollout did exactly what it should: every tenant Active on `TO`,
/// every member succeeded on its first attempt, every upgrade step ran once.
async fn assert_correct(
    store: &Arc<DynamoStore>,
    record: &RolloutRecord,
    members: &[RolloutMember],
    steps: &FixedLatencyStep,
) {
    assert_eq!(record.phase, Phase::Completed, "{:#?}", record.events);
    assert!(record.skipped.is_empty(), "skipped: {:?}", record.skipped);
    assert_eq!(members.len(), TENANTS, "one member per tenant");
    for m in members {
        assert!(
            m.outcome == Outcome::Succeeded && m.attempts == 1,
            "{} ended {:?} after {} attempts",
            m.tenant,
            m.outcome,
            m.attempts
        );
    }
    let mut loads = JoinSet::new();
    for lane in 0..SEED_PARALLELISM {
        let store = store.clone();
        loads.spawn(async move {
            for i in (lane..TENANTS).step_by(SEED_PARALLELISM) {
                let id = tenant_spec(i).id;
                let tenant = store.load(&id).await.unwrap();
                assert_eq!(tenant.state, active_on(TO), "{id}");
            }
        });
    }
    loads.join_all().await;
    let runs = steps.runs.lock().unwrap();
    assert_eq!(runs.len(), TENANTS, "every tenant ran its upgrade");
    for (id, runs) in runs.iter() {
        let ran: Vec<StepKind> = runs.iter().map(|r| r.step).collect();
        assert_eq!(ran, UPGRADE_STEPS, "{id} ran each upgrade step once, in order");
    }
}

fn upgrade_time() -> Duration {
    STEP_LATENCY * UPGRADE_STEPS.len() as u32
}

/// How many tenants of `wave` the strategy lets upgrade at once.
fn slots(record: &RolloutRecord, wave: &WaveRecord) -> usize {
    let strategy = &record.spec.strategy;
    let limit = |n: Option<std::num::NonZeroU32>| n.map_or(usize::MAX, |n| n.get() as usize);
    let per_region = limit(strategy.max_in_flight_per_region).saturating_mul(wave.regions.len());
    per_region
        .min(limit(strategy.max_in_flight_per_wave))
        .min(wave.size)
        .max(1)
}

/// Upgrade rounds the wave needs if every slot is refilled the moment it frees.
fn rounds(record: &RolloutRecord, wave: &WaveRecord) -> usize {
    wave.size.div_ceil(slots(record, wave))
}

/// The makespan with no overhead at all: per wave, full rounds of upgrades back to
/// back, then the bake. One region at a time (`max_parallel_regions` 1), so waves
/// follow each other; with more regions per wave the per-region limit counts once
/// per region.
fn ideal_makespan(record: &RolloutRecord) -> Duration {
    assert_eq!(
        record.spec.strategy.max_parallel_regions.get(),
        1,
        "the ideal below assumes waves run one after another"
    );
    let bake = record.spec.strategy.bake.time();
    (record.waves.iter())
        .map(|w| upgrade_time() * rounds(record, w) as u32 + bake)
        .sum()
}

/// The planner's own estimate for the same fleet, told that an upgrade takes
/// `upgrade_time()`: a check that the ideal above is the strategy's schedule.
fn planner_estimate(spec: &RolloutSpec) -> Duration {
    let fleet: Vec<TenantSummaryForPlanning> = (0..TENANTS)
        .map(|i| {
            TenantSummaryForPlanning::from_tenant(&tenant_spec(i), &active_on(FROM), &Default::default())
        })
        .collect();
    let now = Utc::now();
    let options = PlanOptions {
        tenant_duration: upgrade_time(),
    };
    let plan = plan_with(spec, &fleet, now, &options);
    (plan.estimated_end - now).to_std().unwrap()
}

fn since(later: DateTime<Utc>, earlier: DateTime<Utc>) -> f64 {
    (later - earlier).num_microseconds().unwrap() as f64 / 1e6
}

/// Mean, median and 95th percentile, in milliseconds.
fn spread(mut seconds: Vec<f64>) -> String {
    seconds.sort_by(f64::total_cmp);
    let mean = seconds.iter().sum::<f64>() / seconds.len() as f64;
    let at = |q: f64| seconds[((seconds.len() - 1) as f64 * q).round() as usize];
    format!(
        "mean {:>6.0} ms, median {:>6.0}, p95 {:>6.0}",
        mean * 1e3,
        at(0.5) * 1e3,
        at(0.95) * 1e3
    )
}

/// Where the makespan went: per wave, the wait before it, its deploy against the
/// ideal and its bake; per tenant, the lag until a worker started it, the upgrade
/// itself, and the lag until the controller saw it done.
fn print_breakdown(run: &Run, steps: &FixedLatencyStep) {
    let record = &run.record;
    let bake = record.spec.strategy.bake.time().as_secs_f64();
    println!("  per wave (s):");
    println!(
        "    wave region          size slots rounds | wait before | deploy ideal actual | bake ideal actual"
    );
    let mut previous_end = run.started_at;
    for w in &record.waves {
        let (Some(started), Some(baked), Some(finished)) =
            (w.started_at, w.bake.as_ref().map(|b| b.since), w.finished_at)
        else {
            panic!("wave {} has no start, bake or end: {w:?}", w.index)
        };
        println!(
            "    {:>4} {:<15} {:>4} {:>5} {:>6} | {:>11.2} | {:>12.2} {:>6.2} | {:>10.2} {:>6.2}",
            w.index,
            w.regions[0].as_str(),
            w.size,
            slots(record, w),
            rounds(record, w),
            since(started, previous_end),
            (upgrade_time() * rounds(record, w) as u32).as_secs_f64(),
            since(baked, started),
            bake,
            since(finished, baked),
        );
        previous_end = finished;
    }
    let runs = steps.runs.lock().unwrap();
    let (mut pickup, mut upgrade, mut noticed) = (Vec::new(), Vec::new(), Vec::new());
    for m in &run.members {
        let runs = &runs[&m.tenant];
        let (first, last) = (runs[0].started, runs[runs.len() - 1].ended);
        pickup.push(since(first, m.started_at.unwrap()));
        upgrade.push(since(last, first));
        noticed.push(since(m.finished_at.unwrap(), last));
    }
    println!("  per tenant:");
    println!(
        "    controller starts it -> first step starts: {}",
        spread(pickup)
    );
    println!(
        "    first step starts -> last step ends:       {} (steps alone {:.0} ms)",
        spread(upgrade),
        ms(upgrade_time())
    );
    println!(
        "    last step ends -> controller records it:   {} (the tick reads its clock first, so it can be < 0)",
        spread(noticed)
    );
}

/// The DynamoDB calls so far as `tenantctl_aws_call_seconds` on `/metrics` counts
/// them: by operation, how many and their seconds in all.
fn dynamodb_calls() -> std::collections::BTreeMap<String, (f64, f64)> {
    let text = tenant_orchestrator::api::metrics::handle().render();
    let mut calls = std::collections::BTreeMap::<String, (f64, f64)>::new();
    for line in text.lines() {
        let (kind, rest) = if let Some(rest) = line.strip_prefix("tenantctl_aws_call_seconds_count{") {
            ("count", rest)
        } else if let Some(rest) = line.strip_prefix("tenantctl_aws_call_seconds_sum{") {
            ("sum", rest)
        } else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        if !labels.contains("service=\"dynamodb\"") {
            continue;
        }
        let Some(operation) = labels
            .split(',')
            .find_map(|l| l.strip_prefix("operation=\""))
            .map(|o| o.trim_end_matches('"').to_owned())
        else {
            continue;
        };
        let value: f64 = value.trim().parse().unwrap_or(0.0);
        let entry = calls.entry(operation).or_default();
        match kind {
            "count" => entry.0 = value,
            _ => entry.1 = value,
        }
    }
    calls
}

/// The controller's passes as `tenantctl_controller_pass_seconds` on `/metrics` counts
/// them: per stage, in pass order, how many passes reached it and their mean time.
fn pass_stages() -> Vec<(&'static str, u64, Duration)> {
    let text = tenant_orchestrator::api::metrics::handle().render();
    let series = |kind: &str, stage: &str| -> f64 {
        let prefix = format!("tenantctl_controller_pass_seconds_{kind}{{stage=\"{stage}\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(prefix.as_str()))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0.0)
    };
    ["lease", "observe", "drive", "save"]
        .into_iter()
        .map(|stage| {
            let count = series("count", stage);
            let mean = if count > 0.0 {
                series("sum", stage) / count
            } else {
                0.0
            };
            (stage, count as u64, Duration::from_secs_f64(mean))
        })
        .collect()
}

fn main() {
    if std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_err() {
        eprintln!("the rollout benchmark needs DynamoDB Local: run `eval \"$(localstack/start.sh)\"` first");
        std::process::exit(2);
    }
    // The controller times its passes into the process's recorder, as in `serve`.
    tenant_orchestrator::api::metrics::handle();
    let steps = Arc::new(FixedLatencyStep::default());
    let run = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let config = aws_config::load_from_env().await;
        run_rollout(tenant_orchestrator::store::client(&config), steps.clone()).await
    });
    let ideal = ideal_makespan(&run.record);
    let ratio = run.makespan.as_secs_f64() / ideal.as_secs_f64();
    let per_region: Vec<usize> = (0..REGIONS.len())
        .map(|r| (r..TENANTS).step_by(REGIONS.len()).count())
        .collect();
    println!(
        "rollout: {TENANTS} tenants in {} regions {per_region:?}, {} waves, {} upgrade steps of {} ms, \
         {WORKERS} workers x {WORKER_CONCURRENCY}, controller tick {} ms",
        REGIONS.len(),
        run.record.waves.len(),
        UPGRADE_STEPS.len(),
        STEP_LATENCY.as_millis(),
        CONTROLLER_TICK.as_millis()
    );
    println!(
        "  seeding: {:.1} s ({} retried creates); start call (plan + members): {:.2} s; {} bake checks",
        run.seeding.as_secs_f64(),
        run.seed_retries,
        run.start_call.as_secs_f64(),
        run.bake_checks
    );
    print_breakdown(&run, &steps);
    let stages = pass_stages();
    let passes = stages.first().map_or(0, |(_, count, _)| *count);
    let per_stage: Vec<String> = stages
        .iter()
        .map(|(stage, count, mean)| format!("{stage} {:.1} ms ({count})", ms(*mean)))
        .collect();
    println!(
        "  controller passes over the rollout: {passes}, mean per stage (passes that reached it): {}",
        per_stage.join(", ")
    );
    let calls: Vec<String> = (run.calls.iter())
        .map(|(operation, count, sum)| format!("{operation} {count} ({:.1} ms)", sum / count * 1e3))
        .collect();
    println!(
        "  DynamoDB calls of the rollout (mean time each, retries included): {}",
        calls.join(", ")
    );
    println!(
        "  planner's estimate with a {} ms upgrade: {:.2} s",
        upgrade_time().as_millis(),
        planner_estimate(&rollout_spec()).as_secs_f64()
    );
    println!(
        "  makespan, start to completed:  {:>8.2} s",
        run.makespan.as_secs_f64()
    );
    println!("  ideal makespan:                {:>8.2} s", ideal.as_secs_f64());
    println!("  ratio makespan / ideal:        {ratio:>8.2}");
    println!(
        "  tenants per second:            {:>8.2}",
        TENANTS as f64 / run.makespan.as_secs_f64()
    );
    println!(
        "  write capacity units:          {:>8.0} ({:.1} per tenant)",
        run.write_units,
        run.write_units / TENANTS as f64
    );
    println!("  write capacity units per tenant, by operation and part written:");
    for (part, units) in &run.write_breakdown {
        println!("    {part:<52} {units:>8.2}");
    }
    println!(
        "  read capacity units:           {:>8.0} ({:.1} per tenant; {} BatchGetItem, {} Query)",
        run.reads.units,
        run.reads.units / TENANTS as f64,
        run.reads.batch_gets,
        run.reads.queries
    );
    println!("  correct: all {TENANTS} Active on {TO}, every member succeeded on its first attempt");

    let spec: RolloutSpec = serde_json::from_str(PLANNING_SPEC).unwrap();
    let fleet = planning_fleet();
    let windowed = fleet.iter().filter(|t| t.maintenance.is_some()).count();
    println!("planner: {PLANNING_TENANTS} tenants, as benches/planner.rs");
    let planning = measure_planning(&format!("{windowed} with maintenance windows"), &spec, &fleet);

    println!("summary:");
    println!(
        "  rollout of {TENANTS}: makespan {:.2} s, ideal {:.2} s, ratio {ratio:.2}",
        run.makespan.as_secs_f64(),
        ideal.as_secs_f64()
    );
    println!("  planning {PLANNING_TENANTS}: median {:.0} ms", ms(planning));
}
