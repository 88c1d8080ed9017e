//! Idle cost: what a settled fleet costs in DynamoDB reads while nothing happens.
//!
//!   eval "$(localstack/start.sh)" && cargo bench --bench idle_cost
//!
//! Seeds a table with `IDLE_TENANTS` (default 100,000) Active tenants through the
//! store's own create path and reports how long that took. Then runs, in this
//! process, what `tenantctl serve` runs when idle, each part on its own metered
//! DynamoDB client: the worker polling its work index (serve's defaults: 1 s poll,
//! concurrency 8), the rollout controller (2 s tick, no rollout running), the drift
//! sweep (one pass a minute, 10 checks, listing the fleet once per `SWEEP_RELIST` as
//! serve does, with a checker test double that finds no drift)
//! and a client refreshing `/v1/fleet/summary` and `/metrics` every 10 s against the
//! API with serve's default summary bound (30 s). After `IDLE_WINDOW_SECS` (default
//! 120) it prints requests and read capacity units per minute for each part, and
//! this process's resident memory (VmRSS) with the API's counts of the whole fleet
//! cached. Panics when the summary does not count every seeded tenant.

#[path = "common/allocator.rs"]
mod allocator;
#[path = "common/local_fleet.rs"]
mod common;

#[path = "common/fleet_spec.rs"]
mod fleet_spec;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tenant_orchestrator::api::{router, token_hash, ApiState, Tokens, DEFAULT_SUMMARY_MAX_AGE};
use tenant_orchestrator::app::{App, SweepQueue, SWEEP_RELIST};
use tenant_orchestrator::domain::{ReleaseVersion, TenantSpec};
use tenant_orchestrator::ports::{DriftCheckFailed, DriftChecker, TenantHealth, TenantProbe};
use tenant_orchestrator::record::{Actor, DriftFinding, TenantRecord};
use tenant_orchestrator::rollout::{Controller, ControllerConfig};
use tenant_orchestrator::step::StepRegistry;
use tenant_orchestrator::store::{DynamoStore, Meter, Usage};
use tenant_orchestrator::worker::{Worker, WorkerConfig};

const DEFAULT_TENANTS: usize = 100_000;
const DEFAULT_WINDOW_SECS: u64 = 120;
const REFRESH: Duration = Duration::from_secs(10);
const DRIFT_PASS: Duration = Duration::from_secs(60);
const DRIFT_CHECKS_PER_PASS: usize = 10;
const TOKEN: &str = "idle-cost-read-token-0123";

/// Test double: every tenant is in sync.
struct InSync;

#[async_trait]
impl DriftChecker for InSync {
    async fn check(&self, _: &TenantRecord) -> Result<Vec<DriftFinding>, DriftCheckFailed> {
        Ok(Vec::new())
    }
}

/// Test double: never asked while no rollout runs; says healthy if it were.
struct NoProbe;

#[async_trait]
impl TenantProbe for NoProbe {
    async fn probe(&self, _: &TenantSpec, _: &ReleaseVersion) -> TenantHealth {
        TenantHealth::Healthy { alarms: Vec::new() }
    }
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, not {v:?}")),
        Err(_) => default,
    }
}

/// A store on a client of its own, metered.
fn metered(client: &aws_sdk_dynamodb::Client, table: &str) -> (Arc<DynamoStore>, Meter) {
    let (client, meter) = Meter::attach(client);
    (Arc::new(DynamoStore::new(client, table)), meter)
}

fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

fn main() {
    common::require_local_aws("idle_cost");
    let tenants: usize = env_number("IDLE_TENANTS", DEFAULT_TENANTS);
    let window = Duration::from_secs(env_number("IDLE_WINDOW_SECS", DEFAULT_WINDOW_SECS));
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let client = common::client().await;
        let table = common::fresh_table(&client, "idle").await;
        let seeder = Arc::new(DynamoStore::new(client.clone(), table.clone()));
        let seeding = common::seed_settled(&seeder, "idle", tenants, 32).await;
        println!(
            "seeded {tenants} Active tenants in {:.1} s ({:.0} tenants/s, store create path, 32 at a time)",
            seeding.as_secs_f64(),
            common::per_second(tenants as f64, seeding)
        );
        let rss_before = resident_kib();

        let (stop, rx) = tokio::sync::watch::channel(false);
        let (worker_store, worker_meter) = metered(&client, &table);
        let worker = Worker::new(
            worker_store,
            StepRegistry::all(Arc::new(common::InstantStep)),
            WorkerConfig {
                poll_interval: Duration::from_secs(1),
                concurrency: 8,
                ..WorkerConfig::new("idle-worker")
            },
        );
        let worker_rx = rx.clone();
        let worker = tokio::spawn(async move { worker.run(worker_rx).await });

        let (controller_store, controller_meter) = metered(&client, &table);
        let controller = Controller::new(
            controller_store.clone(),
            controller_store,
            Arc::new(NoProbe),
            ControllerConfig {
                tick: Duration::from_secs(2),
                ..ControllerConfig::new("idle-controller")
            },
        );
        let controller_rx = rx.clone();
        let controller = tokio::spawn(async move { controller.run(controller_rx).await });

        let (drift_store, drift_meter) = metered(&client, &table);
        let drift = App::new(drift_store).with_drift_checker(Arc::new(InSync)).drift().clone();
        let mut drift_rx = rx.clone();
        let drift = tokio::spawn(async move {
            let mut queue = SweepQueue::default();
            loop {
                drift
                    .sweep(
                        &mut queue,
                        DRIFT_CHECKS_PER_PASS,
                        Duration::from_secs(6 * 3600),
                        SWEEP_RELIST,
                        &Actor::operator("idle-drift"),
                    )
                    .await
                    .unwrap();
                tokio::select! {
                    _ = tokio::time::sleep(DRIFT_PASS) => {}
                    _ = drift_rx.wait_for(|s| *s) => return,
                }
            }
        });

        let (api_store, api_meter) = metered(&client, &table);
        let tokens = Tokens::parse(&format!("- {{name: viewer, scope: read, sha256: {}}}\n", token_hash(TOKEN))).unwrap();
        let app = router(ApiState::new(App::new(api_store), tokens).with_summary_max_age(DEFAULT_SUMMARY_MAX_AGE));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let http = reqwest::Client::new();
        let mut refreshes = 0;
        let started = Instant::now();
        while started.elapsed() < window {
            let summary: serde_json::Value = http
                .get(format!("{base}/v1/fleet/summary"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(summary["total"], tenants as u64, "the summary does not count every tenant: {summary}");
            let metrics = http.get(format!("{base}/metrics")).send().await.unwrap();
            assert!(metrics.status().is_success());
            refreshes += 1;
            tokio::time::sleep(REFRESH).await;
        }
        let elapsed = started.elapsed();
        let rss_after = resident_kib();
        let _ = stop.send(true);
        worker.await.unwrap().unwrap();
        controller.await.unwrap();
        drift.await.unwrap();

        let minutes = elapsed.as_secs_f64() / 60.0;
        println!(
            "idle window {:.0} s, {refreshes} summary + /metrics refreshes ({} s apart, summary bound {} s)",
            elapsed.as_secs_f64(),
            REFRESH.as_secs(),
            DEFAULT_SUMMARY_MAX_AGE.as_secs()
        );
        let rows: [(&str, Usage); 4] = [
            ("worker polling", worker_meter.usage()),
            ("rollout controller", controller_meter.usage()),
            ("drift sweep", drift_meter.usage()),
            ("summary and /metrics", api_meter.usage()),
        ];
        let (mut requests, mut units) = (0.0, 0.0);
        for (source, usage) in &rows {
            let (r, u) = (usage.total_requests() as f64 / minutes, usage.read_units / minutes);
            requests += r;
            units += u;
            println!("  {source:<22} {r:>9.1} requests/min {u:>11.1} read units/min  {:?}", usage.requests);
        }
        println!("  {:<22} {requests:>9.1} requests/min {units:>11.1} read units/min", "total");
        println!(
            "resident memory of this process: {:.1} MiB after seeding, {:.1} MiB with everything running and the fleet's counts cached",
            rss_before as f64 / 1024.0,
            rss_after as f64 / 1024.0
        );
        let _ = client.delete_table().table_name(&table).send().await;
    });
}
