//! What more than one benchmark uses: the 100,000-tenant planning fleet and how its
//! planning is timed, so `planner` and `rollout` report the same figure the same way.

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tenant_orchestrator::domain::{
    Group, MaintenanceWindows, Region, ReleaseVersion, RolloutSpec, TenantId, Tier,
};
use tenant_orchestrator::rollout::{plan, TenantRevision, TenantSummaryForPlanning};

pub const PLANNING_TENANTS: usize = 100_000;
pub const PLANNING_REGIONS: [&str; 3] = ["eu-west-1", "us-east-1", "ap-southeast-2"];
const GROUPS: [&str; 4] = ["canary", "ring-1", "ring-2", "default"];
/// Planning runs per measurement; the median is reported.
pub const PLANNING_RUNS: usize = 7;

pub const PLANNING_SPEC: &str = r#"{
  "release": "1.5.0",
  "strategy": {
    "region_order": ["ap-southeast-2", "eu-west-1"],
    "group_order": ["canary", "ring-1", "ring-2"],
    "waves": ["1", "10", "1%", "10%", "50%", "100%"],
    "max_in_flight_per_wave": 200,
    "max_in_flight_per_region": 100,
    "bake_time": "30m", "bake_checks": 3, "bake_check_interval": "5m",
    "failure_budget": "2%"
  }
}"#;

/// 100,000 tenants in 3 regions and four groups: 5% already on the release, 2%
/// pinned, 30% with weekly maintenance windows in three time zones.
pub fn planning_fleet() -> Vec<TenantSummaryForPlanning> {
    let windows: Vec<MaintenanceWindows> = [
        "Europe/Berlin Sun 02:00 4h, Wed 22:00 2h",
        "America/New_York Sat 22:00 6h",
        "Australia/Sydney Tue 01:00 3h",
    ]
    .iter()
    .map(|w| w.parse().unwrap())
    .collect();
    let old = ReleaseVersion::parse("1.4.2").unwrap();
    let new = ReleaseVersion::parse("1.5.0").unwrap();
    (0..PLANNING_TENANTS)
        .map(|i| {
            // A cheap, fixed scramble so regions and groups do not follow the id order.
            let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
            let tier = Tier::ALL[(h / 12 % 3) as usize];
            TenantSummaryForPlanning {
                id: TenantId::parse(&format!("tenant-{i:06}")).unwrap(),
                region: Region::parse(PLANNING_REGIONS[(h % 3) as usize]).unwrap(),
                group: Group::parse(GROUPS[(h / 3 % 4) as usize]).unwrap(),
                tier,
                revision: TenantRevision::built_in(tier),
                current_release: Some(if h % 20 == 0 { new.clone() } else { old.clone() }),
                pinned_release: (h % 50 == 1).then(|| old.clone()),
                maintenance: (h % 10 < 3).then(|| windows[(h / 10 % 3) as usize].clone()),
            }
        })
        .collect()
}

/// Plans `PLANNING_RUNS` times, prints the plan's shape and the median planning time,
/// and returns the median.
pub fn measure_planning(label: &str, spec: &RolloutSpec, fleet: &[TenantSummaryForPlanning]) -> Duration {
    let now: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-11-23T08:00:00Z")
        .unwrap()
        .into();
    let mut times: Vec<Duration> = Vec::with_capacity(PLANNING_RUNS);
    let mut last = None;
    for _ in 0..PLANNING_RUNS {
        let start = Instant::now();
        let plan = plan(black_box(spec), black_box(fleet), now);
        times.push(start.elapsed());
        last = Some(plan);
    }
    times.sort();
    let plan = last.unwrap();
    println!("  {label}:");
    println!(
        "    plan: {} waves, {} tenants planned, {} skipped, estimated end {}",
        plan.waves.len(),
        plan.tenant_count(),
        plan.skipped.len(),
        plan.estimated_end.to_rfc3339()
    );
    println!(
        "    planning time: median {:.1} ms (min {:.1}, max {:.1}) over {PLANNING_RUNS} runs",
        ms(times[PLANNING_RUNS / 2]),
        ms(times[0]),
        ms(times[PLANNING_RUNS - 1])
    );
    times[PLANNING_RUNS / 2]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
