//! The planner: a pure function from a rollout spec and a snapshot of the fleet to a
//! plan. It reads no clock (the caller passes `now`) and starts nothing, so a dry run
//! is just a call, and the same inputs always give the same plan.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::target::{Target, TenantRevision};
use super::timeline;
use super::window_turn::{window_turn, WindowTurn};
use crate::domain::rollout::{Plan, SkipReason, Skipped, Strategy, WaveSize};
use crate::domain::{
    Group, MaintenanceWindows, Region, ReleaseVersion, RolloutSpec, TenantId, TenantSpec, Tier,
};
use crate::machine::TenantState;
use crate::record::TenantFacts;

/// What the planner needs to know about one tenant. Ids are unique within a fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSummaryForPlanning {
    pub id: TenantId,
    pub region: Region,
    pub group: Group,
    pub tier: Tier,
    pub current_release: Option<ReleaseVersion>,
    pub pinned_release: Option<ReleaseVersion>,
    pub maintenance: Option<MaintenanceWindows>,
    /// Its desired platform and tier, and the platform applied.
    pub revision: TenantRevision,
}

impl TenantSummaryForPlanning {
    /// The summary of a stored tenant: its spec, the release its state serves and the
    /// platform its facts say was applied.
    pub fn from_tenant(spec: &TenantSpec, state: &TenantState, facts: &TenantFacts) -> Self {
        Self {
            id: spec.id.clone(),
            region: spec.region.clone(),
            group: spec.group.clone(),
            tier: spec.tier,
            current_release: state.current_release().cloned(),
            pinned_release: spec.pinned_release.clone(),
            maintenance: spec.maintenance.clone(),
            revision: TenantRevision::of(spec, facts),
        }
    }
}

/// Assumptions for the estimated timeline; they do not change who goes in which wave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanOptions {
    /// How long one tenant's upgrade is assumed to take (backup, stack update, deploy,
    /// verify).
    pub tenant_duration: Duration,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self {
            tenant_duration: Duration::from_secs(30 * 60),
        }
    }
}

/// Plans `spec` over `tenants` as of `now`, assuming the default tenant duration.
pub fn plan(spec: &RolloutSpec, tenants: &[TenantSummaryForPlanning], now: DateTime<Utc>) -> Plan {
    plan_with(spec, tenants, now, &PlanOptions::default())
}

/// Plans `spec` over `tenants` as of `now`.
///
/// Every selected tenant that is not pinned, runs a release, has not reached the
/// spec's target (see [`Target::reached`]) and has a maintenance window that can hold
/// the outage budget (if it has windows and the strategy a budget) lands in exactly
/// one wave. Regions go in the strategy's order (then
/// the rest by name), `max_parallel_regions` at a time in lockstep; within a region
/// tenants go by group order, group and id, and each wave takes the region up to its
/// cumulative target (the canary at least one tenant). Waves that would start nobody
/// are left out.
pub fn plan_with(
    spec: &RolloutSpec,
    tenants: &[TenantSummaryForPlanning],
    now: DateTime<Utc>,
    options: &PlanOptions,
) -> Plan {
    plan_with_limits(spec, tenants, now, options, &StartSpacing::new())
}

/// The shortest time between two upgrade starts, per region, that keeps the region's
/// rate-limited AWS calls under their limits (the steps' `rate_limits`: the slowest
/// service given the calls each upgrade makes of it). A region not named is unlimited.
pub type StartSpacing = BTreeMap<Region, Duration>;

/// [`plan_with`], with the estimated timeline starting upgrades in each region no
/// closer together than `spacing` allows: a region's throughput is at most one
/// upgrade per spacing, whatever the in-flight limits would let through.
pub fn plan_with_limits(
    spec: &RolloutSpec,
    tenants: &[TenantSummaryForPlanning],
    now: DateTime<Utc>,
    options: &PlanOptions,
    spacing: &StartSpacing,
) -> Plan {
    let mut selection = select(spec, tenants, now);
    let rank = group_ranks(&spec.strategy.group_order);
    for members in selection.by_region.values_mut() {
        order_by_group_then_id(members, &rank);
    }
    let region_order = region_order(&spec.strategy.region_order, &selection.by_region);
    let drafts = carve(&spec.strategy, &region_order, &selection.by_region);
    let waves = timeline::schedule(&spec.strategy, drafts, now, options.tenant_duration, spacing);
    Plan {
        target: spec.target_text(),
        release: spec.release.clone(),
        planned_at: now,
        region_order: region_order.into_iter().cloned().collect(),
        estimated_end: waves.last().map_or(now, |w| w.bake_until),
        waves,
        skipped: selection.skipped,
        not_selected: selection.not_selected,
        assumed_tenant_duration: options.tenant_duration,
    }
}

/// The fleet split into tenants to move (by region), tenants left out with a reason,
/// and the count of tenants the selector does not pick.
struct Selection<'a> {
    by_region: BTreeMap<&'a Region, Vec<&'a TenantSummaryForPlanning>>,
    skipped: Vec<Skipped>,
    not_selected: usize,
}

fn select<'a>(
    spec: &RolloutSpec,
    tenants: &'a [TenantSummaryForPlanning],
    now: DateTime<Utc>,
) -> Selection<'a> {
    let selector = &spec.selector;
    let budget = spec.strategy.outage_budget;
    let mut selection = Selection {
        by_region: BTreeMap::new(),
        skipped: Vec::new(),
        not_selected: 0,
    };
    let mut named_and_found = BTreeSet::new();
    for t in tenants {
        let named = selector.tenants.contains(&t.id);
        if named {
            named_and_found.insert(&t.id);
        }
        let reason = if !selector.matches(&t.id, &t.region, &t.group, t.tier) {
            if !named {
                selection.not_selected += 1;
                continue;
            }
            Some(SkipReason::OutsideSelector)
        } else if selector.excludes(&t.id) {
            Some(SkipReason::Excluded)
        } else if let Some(release) = &t.pinned_release {
            Some(SkipReason::Pinned {
                release: release.clone(),
            })
        } else if let Some(platform) = t.revision.platform_pin_against(spec) {
            Some(SkipReason::PinnedPlatform { platform })
        } else {
            match &t.current_release {
                None => Some(SkipReason::NotDeployed),
                Some(current)
                    if Target::of(spec, current, &t.revision).reached(spec, current, &t.revision) =>
                {
                    Some(match (&spec.platform, &spec.change) {
                        (None, None) => SkipReason::AlreadyOnRelease,
                        _ => SkipReason::AlreadyOnTarget,
                    })
                }
                Some(_) => match window_turn(t.maintenance.as_ref(), budget, now) {
                    WindowTurn::TooShort { longest, budget } => {
                        Some(SkipReason::WindowShorterThanOutageBudget {
                            longest_window: longest,
                            budget,
                        })
                    }
                    _ => None,
                },
            }
        };
        match reason {
            Some(reason) => selection.skipped.push(Skipped {
                id: t.id.clone(),
                reason,
            }),
            None => selection.by_region.entry(&t.region).or_default().push(t),
        }
    }
    for missing in selector.tenants.iter().filter(|id| !named_and_found.contains(id)) {
        selection.skipped.push(Skipped {
            id: missing.clone(),
            reason: SkipReason::NotInFleet,
        });
    }
    selection.skipped.sort_by(|a, b| a.id.cmp(&b.id));
    selection
}

/// Each listed group's position (its first mention); unlisted groups rank after all.
fn group_ranks(order: &[Group]) -> HashMap<&Group, usize> {
    let mut ranks = HashMap::new();
    for (i, g) in order.iter().enumerate() {
        ranks.entry(g).or_insert(i);
    }
    ranks
}

/// Sorts a region's tenants into the order they are started: listed groups first (in
/// the strategy's order), then other groups by name, and by id within a group, so the
/// canary is the same tenant every time the same fleet is planned.
fn order_by_group_then_id(members: &mut Vec<&TenantSummaryForPlanning>, ranks: &HashMap<&Group, usize>) {
    let mut keyed: Vec<(usize, &TenantSummaryForPlanning)> = (members.iter())
        .map(|&t| (ranks.get(&t.group).copied().unwrap_or(usize::MAX), t))
        .collect();
    keyed.sort_unstable_by(|(rank_a, a), (rank_b, b)| {
        (rank_a.cmp(rank_b))
            .then_with(|| a.group.cmp(&b.group))
            .then_with(|| a.id.cmp(&b.id))
    });
    *members = keyed.into_iter().map(|(_, t)| t).collect();
}

/// The regions that have tenants to move: those the strategy lists, in its order,
/// then the others by name.
fn region_order<'a, T>(listed: &[Region], by_region: &BTreeMap<&'a Region, T>) -> Vec<&'a Region> {
    let mut order: Vec<&Region> = Vec::with_capacity(by_region.len());
    for region in listed {
        if let Some((&r, _)) = by_region.get_key_value(region) {
            if !order.contains(&r) {
                order.push(r);
            }
        }
    }
    for &r in by_region.keys() {
        if !order.contains(&r) {
            order.push(r);
        }
    }
    order
}

/// A wave before its timeline: who is in it, in order, and whether it waits for an
/// approval. `regions` indexes each member's region.
pub(super) struct WaveDraft<'a> {
    pub stage: usize,
    pub target: WaveSize,
    pub regions: Vec<Region>,
    pub members: Vec<Member<'a>>,
    pub approval_before: bool,
}

pub(super) struct Member<'a> {
    pub tenant: &'a TenantSummaryForPlanning,
    /// Index into the wave's `regions`.
    pub region: usize,
}

/// Cuts each region's ordered tenants at the cumulative targets of the wave list, and
/// puts the regions of one batch (`max_parallel_regions` of them) into the same waves.
fn carve<'a>(
    strategy: &Strategy,
    order: &[&'a Region],
    by_region: &BTreeMap<&'a Region, Vec<&'a TenantSummaryForPlanning>>,
) -> Vec<WaveDraft<'a>> {
    let sizes = strategy.waves.sizes();
    let approvals = strategy.approvals;
    let mut drafts = Vec::new();
    let mut follows_canary = false;
    for (batch_number, batch) in order
        .chunks(strategy.max_parallel_regions.get() as usize)
        .enumerate()
    {
        let mut taken = vec![0; batch.len()];
        let mut first_of_batch = true;
        for (stage, &target) in sizes.iter().enumerate() {
            let mut regions = Vec::new();
            let mut members = Vec::new();
            for (i, &region) in batch.iter().enumerate() {
                let tenants = &by_region[region];
                let mut reach = target.cumulative_target(tenants.len());
                if stage == 0 {
                    reach = reach.clamp(1, tenants.len());
                }
                if reach > taken[i] {
                    let region_index = regions.len();
                    regions.push(region.clone());
                    members.extend(tenants[taken[i]..reach].iter().map(|&tenant| Member {
                        tenant,
                        region: region_index,
                    }));
                    taken[i] = reach;
                }
            }
            if members.is_empty() {
                continue;
            }
            let approval_before = (approvals.after_canary && follows_canary)
                || (approvals.between_regions && first_of_batch && batch_number > 0);
            follows_canary = stage == 0;
            first_of_batch = false;
            drafts.push(WaveDraft {
                stage,
                target,
                regions,
                members,
                approval_before,
            });
        }
        debug_assert!(batch.iter().zip(&taken).all(|(r, &n)| n == by_region[r].len()));
    }
    drafts
}
