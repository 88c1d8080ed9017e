//! Planning time for a large fleet: 100,000 tenants in 3 regions.
//!
//!   cargo bench --bench planner
//!
//! Prints the median (and range) of several planning runs of one rollout spec over
//! the same fleet. Some tenants have maintenance windows in various time zones, some
//! are pinned or already on the release, and the strategy sets in-flight limits, so
//! the timeline does real scheduling work. Measured, not asserted.

#[path = "common/allocator.rs"]
mod allocator;
mod common;

use common::{measure_planning, planning_fleet, PLANNING_REGIONS, PLANNING_SPEC, PLANNING_TENANTS};
use tenant_orchestrator::domain::RolloutSpec;
use tenant_orchestrator::rollout::TenantSummaryForPlanning;

fn main() {
    let spec: RolloutSpec = serde_json::from_str(PLANNING_SPEC).unwrap();
    let fleet = planning_fleet();
    let windowed = fleet.iter().filter(|t| t.maintenance.is_some()).count();
    println!(
        "planner: {PLANNING_TENANTS} tenants in {} regions",
        PLANNING_REGIONS.len()
    );
    measure_planning(&format!("{windowed} with maintenance windows"), &spec, &fleet);
    let unwindowed: Vec<_> = (fleet.into_iter())
        .map(|t| TenantSummaryForPlanning {
            maintenance: None,
            ..t
        })
        .collect();
    measure_planning("none with maintenance windows", &spec, &unwindowed);
}
