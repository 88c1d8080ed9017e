//! What the planner answers: the waves in order, who is in each and when each tenant
//! can start, and who is left out and why. A dry run prints this; the controller
//! follows it.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{OutageBudget, WaveSize};
use crate::domain::{Region, ReleaseVersion, TenantId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// What the rollout moves tenants to, in words (`release 1.4.2, platform 2026.12.1`).
    pub target: String,
    /// The release it moves tenants to; `None`: each keeps the release it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<ReleaseVersion>,
    pub planned_at: DateTime<Utc>,
    /// The regions with tenants to move, in the order they are visited.
    pub region_order: Vec<Region>,
    pub waves: Vec<Wave>,
    /// Selected (or named) tenants the rollout leaves alone, by id.
    pub skipped: Vec<Skipped>,
    /// Tenants of the fleet the selector does not pick (not listed one by one).
    pub not_selected: usize,
    /// The per-tenant upgrade time the timeline assumes.
    #[serde(with = "crate::domain::duration::as_text")]
    pub assumed_tenant_duration: Duration,
    /// When the last wave's bake ends, if every approval is given as soon as asked.
    pub estimated_end: DateTime<Utc>,
}

impl Plan {
    /// How many tenants the rollout moves.
    pub fn tenant_count(&self) -> usize {
        self.waves.iter().map(|w| w.tenants.len()).sum()
    }
}

/// One wave: a step of the strategy's wave list applied to one region, or to a group
/// of regions moving together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wave {
    /// Position in the plan, from 0.
    pub index: usize,
    pub kind: WaveKind,
    /// The entry of the strategy's wave list this wave carries out, and its position.
    pub target: WaveSize,
    pub stage: usize,
    pub regions: Vec<Region>,
    /// In start order of the strategy: by region, then group order, then id.
    pub tenants: Vec<PlannedTenant>,
    /// Whether an operator must approve before this wave starts.
    pub approval_before: bool,
    /// How many of this wave's tenants may fail before the rollout halts.
    pub allowed_failures: usize,
    /// The earliest the wave can begin: when the previous wave's bake ends.
    pub earliest_start: DateTime<Utc>,
    /// When its last tenant is expected to be done.
    pub estimated_finish: DateTime<Utc>,
    /// When its bake ends and the next wave may start.
    pub bake_until: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaveKind {
    /// The first wave of each region.
    Canary,
    /// A wave sized as a share of its regions' tenants.
    Percent,
    /// A wave sized as a number of tenants.
    Count,
}

impl WaveKind {
    pub(crate) fn of(stage: usize, target: WaveSize) -> Self {
        match target {
            _ if stage == 0 => WaveKind::Canary,
            WaveSize::Percent(_) => WaveKind::Percent,
            WaveSize::Count(_) => WaveKind::Count,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedTenant {
    pub id: TenantId,
    pub region: Region,
    /// The earliest the tenant can start: within its maintenance window, after the
    /// wave begins and once the in-flight limits leave room.
    pub earliest_start: DateTime<Utc>,
    /// Set when its window is open as the wave begins but closes before the outage
    /// budget would run out, so it waits for a later window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deferred: Option<Deferral>,
}

/// Why a tenant starts in a later maintenance window than the one open as its wave
/// begins: that one closes before its outage budget would run out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deferral {
    /// How long the open window stays open after the wave begins.
    #[serde(with = "crate::domain::duration::as_text")]
    pub window_closes_in: Duration,
    pub budget: OutageBudget,
    /// When the next window that holds the budget opens.
    pub next_window: DateTime<Utc>,
}

/// `window closes in 4m, budget 10m; next window 2026-12-06 02:00 UTC`
impl fmt::Display for Deferral {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "window closes in {}, budget {}; next window {}",
            humantime::format_duration(self.window_closes_in),
            self.budget,
            self.next_window.format("%Y-%m-%d %H:%M UTC")
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub id: TenantId,
    /// In JSON beside the id: `{"id": "acme", "reason": "pinned", "release": "1.3.0"}`.
    #[serde(flatten)]
    pub reason: SkipReason,
}

/// Why a tenant is left out of a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum SkipReason {
    /// Listed in the selector's `exclude`.
    Excluded,
    /// Pinned to a release; rollouts never move a pinned tenant.
    Pinned { release: ReleaseVersion },
    /// Pinned to a platform version other than the rollout's.
    PinnedPlatform {
        platform: crate::domain::PlatformVersion,
    },
    /// Already runs the rollout's release.
    AlreadyOnRelease,
    /// Already runs the rollout's whole target revision (release, platform, spec).
    AlreadyOnTarget,
    /// Runs no release yet (being provisioned) or any more (being deleted).
    NotDeployed,
    /// Named in the selector's `tenants` but no such tenant exists.
    NotInFleet,
    /// Named in the selector's `tenants` but outside its regions, groups or tiers.
    OutsideSelector,
    /// Another rollout that is still running holds it.
    HeldByRollout { rollout: crate::domain::RolloutId },
    /// None of its maintenance windows stays open for the strategy's outage budget, so
    /// it can never start in one.
    WindowShorterThanOutageBudget {
        #[serde(with = "crate::domain::duration::as_text")]
        longest_window: Duration,
        budget: OutageBudget,
    },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Excluded => f.write_str("excluded by the rollout's selector"),
            SkipReason::Pinned { release } => write!(f, "pinned to {release}"),
            SkipReason::PinnedPlatform { platform } => write!(f, "pinned to platform version {platform}"),
            SkipReason::AlreadyOnRelease => f.write_str("already on the release"),
            SkipReason::AlreadyOnTarget => f.write_str("already on the rollout's release, platform and spec"),
            SkipReason::NotDeployed => f.write_str("runs no release (not provisioned, or deleted)"),
            SkipReason::NotInFleet => f.write_str("named in the selector but not in the fleet"),
            SkipReason::OutsideSelector => {
                f.write_str("named in the selector but outside its regions, groups or tiers")
            }
            SkipReason::HeldByRollout { rollout } => {
                write!(f, "held by rollout {rollout}, which is still running")
            }
            SkipReason::WindowShorterThanOutageBudget { longest_window, budget } => write!(
                f,
                "its maintenance windows stay open at most {}, shorter than the outage budget {budget}; \
                 widen a window (`tenantctl tenant update --maintenance`) or raise the strategy's outage_budget",
                humantime::format_duration(*longest_window)
            ),
        }
    }
}
