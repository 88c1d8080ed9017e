//! Fleet rollouts: moving many tenants to a release in staggered waves across regions.
//!
//! The planner is pure: a [`RolloutSpec`](crate::domain::RolloutSpec), a snapshot of
//! the fleet and the current time go in, a [`Plan`] comes out (which tenant lands in
//! which wave, and when it can start). A dry run is a call to [`plan`]. The durable
//! controller that carries a plan out builds on these types.

mod plan;
mod planner;
mod timeline;

pub use plan::{Plan, PlannedTenant, SkipReason, Skipped, Wave, WaveKind};
pub use planner::{plan, plan_with, PlanOptions, TenantSummaryForPlanning};

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
