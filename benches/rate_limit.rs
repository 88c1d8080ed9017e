//! AWS rate limits: many concurrent provisionings through the real engine and the
//! real limiter (token buckets in the table), against a step double that enforces
//! an account quota the way AWS does.
//!
//!   eval "$(localstack/start.sh)" && cargo bench --bench rate_limit
//!
//! Two worker processes (each with its own limiter, as two replicas would have) share
//! one table. Every tenant's ProvisionInfra makes one CloudFormation call: it takes a
//! token from its region's bucket, then calls the double, which records the call's
//! time and answers `Throttling` to any call above the quota (its own exact token
//! bucket at `QUOTA_PER_SECOND`, `QUOTA_BURST`). The limiter is configured a little
//! under the quota, as the defaults are under AWS's. The benchmark prints, per
//! region, the calls' achieved rate against the limit and the quota, the throttling
//! errors (it panics on any), and the planner's estimate of the makespan with the
//! same limits against the measured makespan.

#[path = "common/allocator.rs"]
mod allocator;
#[path = "common/fleet_spec.rs"]
mod fleet_spec;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use tenant_orchestrator::app::TenantCommands;
use tenant_orchestrator::domain::{Region, ReleaseVersion, RolloutSpec, TenantSpec};
use tenant_orchestrator::machine::StepKind;
use tenant_orchestrator::record::Actor;
use tenant_orchestrator::rollout::{plan_with_limits, PlanOptions, StartSpacing, TenantSummaryForPlanning};
use tenant_orchestrator::step::{Step, StepContext, StepOutcome, StepRegistry};
use tenant_orchestrator::steps::rate_limits::{LimitedService, RateLimitsConfig, Throttle};
use tenant_orchestrator::store::{table, DynamoRateLimiter, DynamoStore};
use tenant_orchestrator::worker::{Worker, WorkerConfig};

const TENANTS: usize = 160;
const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];
const WORKERS: usize = 2;
const CONCURRENCY: usize = 16;
/// The account's CloudFormation quota the double enforces, per region.
const QUOTA_PER_SECOND: f64 = 10.0;
const QUOTA_BURST: u32 = 5;
/// The limiter's setting: under the quota, as the defaults are.
const LIMIT_PER_SECOND: f64 = 8.0;
const LIMIT_BURST: u32 = 4;

/// Test double of the CloudFormation API of one account: an exact token bucket per
/// region (GCRA), the time of every call, and the calls it refused.
#[derive(Default)]
struct QuotaEnforcingCloud {
    regions: Mutex<BTreeMap<String, RegionCalls>>,
}

#[derive(Default)]
struct RegionCalls {
    /// When the bucket would be full again, in seconds since the benchmark began.
    tat: f64,
    calls: Vec<f64>,
    throttled: usize,
}

impl QuotaEnforcingCloud {
    /// One call in `region` at `at` (seconds): `false` when AWS would throttle it.
    fn call(&self, region: &str, at: f64) -> bool {
        let mut regions = self.regions.lock().unwrap();
        let calls = regions.entry(region.to_owned()).or_default();
        let interval = 1.0 / QUOTA_PER_SECOND;
        let tolerance = interval * f64::from(QUOTA_BURST - 1);
        if calls.tat - tolerance > at {
            calls.throttled += 1;
            return false;
        }
        calls.tat = calls.tat.max(at) + interval;
        calls.calls.push(at);
        true
    }
}

/// The step double: ProvisionInfra takes a CloudFormation token through the real
/// throttle and calls the quota-enforcing double; every other step succeeds at once.
struct LimitedStep {
    throttle: Throttle,
    cloud: Arc<QuotaEnforcingCloud>,
    began: Instant,
}

#[async_trait]
impl Step for LimitedStep {
    async fn run(&self, ctx: StepContext<'_>) -> StepOutcome {
        if ctx.step != StepKind::ProvisionInfra {
            return StepOutcome::done("instant", ctx.tenant.facts.clone());
        }
        let region = &ctx.tenant.spec.region;
        if let Err(wait) = self
            .throttle
            .admit(LimitedService::CloudFormation, region, None)
            .await
        {
            return wait.into_outcome(&ctx.tenant.facts);
        }
        if self
            .cloud
            .call(region.as_str(), self.began.elapsed().as_secs_f64())
        {
            StepOutcome::done("stack created", ctx.tenant.facts.clone())
        } else {
            StepOutcome::retry("CreateStack: Throttling: Rate exceeded")
        }
    }
}

fn spec(i: usize) -> TenantSpec {
    fleet_spec::bench_spec(&format!("rl-{i:05}"), REGIONS[i % REGIONS.len()])
}

fn limits() -> RateLimitsConfig {
    let mut config = RateLimitsConfig::default();
    config.cloudformation.rate_per_second = LIMIT_PER_SECOND;
    config.cloudformation.burst = LIMIT_BURST;
    config
}

/// The planner's makespan for the same tenants, one CloudFormation call each, with
/// `tenant_duration` the time one tenant takes when nothing limits it.
fn planned_makespan(tenant_duration: Duration) -> Duration {
    let release = ReleaseVersion::parse("1.0.0").unwrap();
    let fleet: Vec<TenantSummaryForPlanning> = (0..TENANTS)
        .map(|i| {
            let spec = spec(i);
            TenantSummaryForPlanning {
                id: spec.id,
                region: spec.region,
                group: spec.group,
                tier: spec.tier,
                current_release: Some(release.clone()),
                pinned_release: None,
                maintenance: None,
                revision: tenant_orchestrator::rollout::TenantRevision::built_in(spec.tier),
            }
        })
        .collect();
    let rollout: RolloutSpec = serde_json::from_str(&format!(
        r#"{{"release": "1.1.0", "strategy": {{"waves": ["100%"], "max_in_flight_per_region": {}, "bake_time": "0s", "bake_checks": 0}}}}"#,
        WORKERS * CONCURRENCY
    ))
    .unwrap();
    let spacing: StartSpacing = REGIONS
        .iter()
        .map(|r| {
            (
                Region::parse(r).unwrap(),
                Duration::from_secs_f64(1.0 / LIMIT_PER_SECOND),
            )
        })
        .collect();
    let now = Utc::now();
    let options = PlanOptions { tenant_duration };
    let plan = plan_with_limits(&rollout, &fleet, now, &options, &spacing);
    (plan.waves.last().unwrap().estimated_finish - now)
        .to_std()
        .unwrap()
}

#[tokio::main]
async fn main() {
    assert!(
        std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_ok(),
        "run `eval \"$(localstack/start.sh)\"` first"
    );
    let config = aws_config::load_from_env().await;
    let client = tenant_orchestrator::store::client(&config);
    let name = format!("bench-ratelimit-{}", uuid::Uuid::new_v4().simple());
    table::ensure_table(&client, &name).await.unwrap();
    let store = Arc::new(DynamoStore::new(client, name));
    let commands = TenantCommands::new(store.clone());
    for i in 0..TENANTS {
        (commands.create(
            spec(i),
            ReleaseVersion::parse("1.0.0").unwrap(),
            &Actor::operator("bench"),
        ))
        .await
        .unwrap();
    }

    let cloud = Arc::new(QuotaEnforcingCloud::default());
    let began = Instant::now();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let step = LimitedStep {
            throttle: Throttle::new(Arc::new(DynamoRateLimiter::new(store.clone())), limits()),
            cloud: cloud.clone(),
            began,
        };
        let config = WorkerConfig {
            concurrency: CONCURRENCY,
            poll_interval: Duration::from_millis(20),
            ..WorkerConfig::new(format!("bench-{w}"))
        };
        let worker = Worker::new(store.clone(), StepRegistry::all(Arc::new(step)), config);
        let rx = rx.clone();
        workers.push(tokio::spawn(async move { worker.run(rx).await }));
    }
    fleet_spec::wait_until_provisioned(&*store).await;
    let makespan = began.elapsed();
    tx.send(true).unwrap();
    for w in workers {
        w.await.unwrap().unwrap();
    }

    println!("rate_limit: {TENANTS} provisionings, {WORKERS} workers × {CONCURRENCY}, regions {REGIONS:?}");
    println!(
        "  CloudFormation quota (double) {QUOTA_PER_SECOND}/s burst {QUOTA_BURST}; limiter {LIMIT_PER_SECOND}/s burst {LIMIT_BURST}"
    );
    let regions = cloud.regions.lock().unwrap();
    let mut throttled = 0;
    let mut calls = 0;
    for (region, r) in regions.iter() {
        let span = r.calls.last().unwrap() - r.calls.first().unwrap();
        // Beyond the burst, the calls came at this rate.
        let achieved = (r.calls.len() as f64 - f64::from(LIMIT_BURST)) / span;
        println!(
            "  {region}: {} calls in {span:.2}s, achieved {achieved:.2}/s (limit {LIMIT_PER_SECOND}/s, quota {QUOTA_PER_SECOND}/s, {:.2} of the limit), throttling errors {}",
            r.calls.len(),
            achieved / LIMIT_PER_SECOND,
            r.throttled
        );
        throttled += r.throttled;
        calls += r.calls.len();
    }
    // Unlimited, a tenant takes what the engine takes for its six steps.
    let per_tenant = Duration::from_millis(200);
    let planned = planned_makespan(per_tenant);
    println!(
        "  makespan {:.2}s; planner's estimate with the limits {:.2}s (ratio measured/estimate {:.2})",
        makespan.as_secs_f64(),
        planned.as_secs_f64(),
        makespan.as_secs_f64() / planned.as_secs_f64()
    );
    assert_eq!(calls, TENANTS, "every tenant made its one call");
    assert_eq!(throttled, 0, "the limiter let a call through above the quota");
}
