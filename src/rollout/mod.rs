//! Fleet rollouts: moving many tenants to a revision (a release, a platform version, a
//! spec change, or all applied again) in staggered waves across regions.
//!
//! The planner is pure: a [`RolloutSpec`](crate::domain::RolloutSpec), a snapshot of
//! the fleet and the current time go in, a [`Plan`] comes out (which tenant lands in
//! which wave, and when it can start). A dry run is a call to [`plan`].
//! [`crate::app::RolloutCommands::start`] stores a plan as a rollout record with one member per
//! tenant; every replica's [`Controller`] competes for its lease and carries it out.

mod completion;
mod controller;
mod decide;
mod planner;
mod target;
mod timeline;
mod window_turn;

pub use controller::{Controller, ControllerConfig};
pub use decide::{bake_check_due, decide, Decision, Drive, Observed, TenantView};
pub use planner::{plan, plan_with, plan_with_limits, PlanOptions, StartSpacing, TenantSummaryForPlanning};
pub use target::{Target, TenantRevision};
pub use window_turn::{window_turn, WindowTurn};

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
