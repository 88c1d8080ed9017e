//! The estimated timeline: when each wave and each tenant can start.
//!
//! Waves run one after another: a wave begins when the previous wave's bake ends
//! (approvals are assumed to be given as soon as asked). Within a wave, tenants start
//! as soon as their maintenance window is open (and stays open for the strategy's
//! outage budget) and the in-flight limits (per wave, per region) leave room; each upgrade is assumed to take the same time. When room is
//! short it goes first to the tenant whose window closes first. This is a greedy
//! schedule, not an optimum: an estimate for a dry run, and the order the controller
//! can follow.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::num::NonZeroU32;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::planner::{TenantSummaryForPlanning, WaveDraft};
use super::window_turn::{whole_seconds, window_turn, WindowTurn};
use crate::domain::rollout::{Deferral, OutageBudget, PlannedTenant, Strategy, Wave, WaveKind};

pub(super) fn schedule(
    strategy: &Strategy,
    drafts: Vec<WaveDraft<'_>>,
    now: DateTime<Utc>,
    tenant_duration: Duration,
    spacing: &super::planner::StartSpacing,
) -> Vec<Wave> {
    let upgrade = delta(tenant_duration);
    let bake = delta(strategy.bake.time());
    let mut begin = now;
    let mut waves = Vec::with_capacity(drafts.len());
    for (index, draft) in drafts.into_iter().enumerate() {
        let limits = Limits {
            per_wave: strategy.max_in_flight_per_wave,
            per_region: strategy.max_in_flight_per_region,
            regions: draft.regions.len(),
        };
        let budget = strategy.outage_budget;
        let gaps: Vec<TimeDelta> = (draft.regions.iter())
            .map(|r| spacing.get(r).map_or(TimeDelta::zero(), |d| delta(*d)))
            .collect();
        let starts = start_times(&draft, begin, upgrade, limits, budget, &gaps);
        let finish = starts.iter().map(|&s| later(s, upgrade)).max().unwrap_or(begin);
        let bake_until = later(finish, bake);
        let tenants = (draft.members.iter().zip(starts))
            .map(|(m, earliest_start)| PlannedTenant {
                id: m.tenant.id.clone(),
                region: draft.regions[m.region].clone(),
                earliest_start,
                deferred: deferral(m.tenant, begin, budget),
            })
            .collect::<Vec<_>>();
        waves.push(Wave {
            index,
            kind: WaveKind::of(draft.stage, draft.target),
            target: draft.target,
            stage: draft.stage,
            allowed_failures: strategy.failure_budget.allowed_failures(tenants.len()),
            regions: draft.regions,
            tenants,
            approval_before: draft.approval_before,
            earliest_start: begin,
            estimated_finish: finish,
            bake_until,
        });
        begin = bake_until;
    }
    waves
}

#[derive(Clone, Copy)]
struct Limits {
    per_wave: Option<NonZeroU32>,
    per_region: Option<NonZeroU32>,
    regions: usize,
}

type Queue<T> = BinaryHeap<Reverse<T>>;

/// One region of a wave: tenants whose window is open, by when it closes, and the
/// ends of the upgrades running there.
#[derive(Default)]
struct Lane {
    open: Queue<(DateTime<Utc>, usize)>,
    running: Queue<DateTime<Utc>>,
    /// The earliest the region's rate limits let its next upgrade start.
    next_start: Option<DateTime<Utc>>,
}

impl Lane {
    fn rate_allows(&self, now: DateTime<Utc>) -> bool {
        self.next_start.is_none_or(|t| t <= now)
    }
}

/// Each member's start, in member order, found by stepping from event to event (an
/// upgrade ends, a window opens). At each moment free room goes to the tenant whose
/// window closes first, ties in member order; tenants without windows never close,
/// so they take what windowed tenants leave. A tenant whose window closes before it
/// gets room waits for its next window.
fn start_times(
    draft: &WaveDraft<'_>,
    begin: DateTime<Utc>,
    upgrade: TimeDelta,
    limits: Limits,
    budget: Option<OutageBudget>,
    gaps: &[TimeDelta],
) -> Vec<DateTime<Utc>> {
    let members = &draft.members;
    let per_wave = limits.per_wave.map_or(usize::MAX, |n| n.get() as usize);
    let per_region = limits.per_region.map_or(usize::MAX, |n| n.get() as usize);
    let mut starts = vec![begin; members.len()];
    let mut unstarted = members.len();
    // Tenants whose window is not open yet, by when it opens.
    let mut closed: Queue<(DateTime<Utc>, usize)> = (members.iter().enumerate())
        .map(|(i, m)| Reverse((opening(m.tenant, begin, budget), i)))
        .collect();
    let mut lanes: Vec<Lane> = (0..limits.regions).map(|_| Lane::default()).collect();
    let mut running: Queue<DateTime<Utc>> = BinaryHeap::new();
    let mut now = begin;
    while unstarted > 0 {
        for queue in std::iter::once(&mut running).chain(lanes.iter_mut().map(|l| &mut l.running)) {
            while queue.peek().is_some_and(|Reverse(end)| *end <= now) {
                queue.pop();
            }
        }
        while let Some(&Reverse((opens, i))) = closed.peek() {
            if opens > now {
                break;
            }
            closed.pop();
            let member = &members[i];
            match open_until(member.tenant, now) {
                Some(closes) if may_start(member.tenant, now, budget) => {
                    lanes[member.region].open.push(Reverse((closes, i)))
                }
                _ => closed.push(Reverse((opening(member.tenant, now, budget), i))),
            }
        }
        while running.len() < per_wave {
            let next = (lanes.iter().enumerate())
                .filter(|(_, lane)| lane.running.len() < per_region && lane.rate_allows(now))
                .filter_map(|(r, lane)| lane.open.peek().map(|Reverse(key)| (*key, r)))
                .min();
            let Some(((closes, i), r)) = next else { break };
            lanes[r].open.pop();
            if closes <= now || !may_start(members[i].tenant, now, budget) {
                closed.push(Reverse((opening(members[i].tenant, now, budget), i)));
                continue;
            }
            starts[i] = now;
            unstarted -= 1;
            if gaps[r] > TimeDelta::zero() {
                lanes[r].next_start = Some(later(now, gaps[r]));
            }
            let done = later(now, upgrade);
            running.push(Reverse(done));
            lanes[r].running.push(Reverse(done));
        }
        // Whatever is still open waits for room, so something is running.
        let rate_opens = (lanes.iter())
            .filter(|lane| !lane.open.is_empty())
            .filter_map(|lane| lane.next_start.filter(|t| *t > now))
            .min();
        let next_event = [
            closed.peek().map(|Reverse((t, _))| *t),
            running.peek().map(|Reverse(t)| *t),
            rate_opens,
        ];
        match next_event.into_iter().flatten().min() {
            Some(t) => now = t,
            None => break,
        }
    }
    starts
}

/// When the tenant may next start, from `at` on: when a maintenance window is open
/// that holds the outage budget (see [`window_turn`]).
fn opening(
    tenant: &TenantSummaryForPlanning,
    at: DateTime<Utc>,
    budget: Option<OutageBudget>,
) -> DateTime<Utc> {
    match window_turn(tenant.maintenance.as_ref(), budget, at) {
        WindowTurn::Open => at,
        WindowTurn::Closed { next } | WindowTurn::ClosesTooSoon { next, .. } => next,
        // The planner leaves such a tenant out; should its windows hold the budget in no
        // week but this one (a daylight saving change), it follows its windows alone.
        WindowTurn::TooShort { .. } => tenant.maintenance.as_ref().map_or(at, |w| w.next_start(at)),
    }
}

fn may_start(tenant: &TenantSummaryForPlanning, at: DateTime<Utc>, budget: Option<OutageBudget>) -> bool {
    opening(tenant, at, budget) == at
}

/// The tenant's deferral when its window is open as the wave begins but closes before
/// the budget would run out.
fn deferral(
    tenant: &TenantSummaryForPlanning,
    begin: DateTime<Utc>,
    budget: Option<OutageBudget>,
) -> Option<Deferral> {
    match window_turn(tenant.maintenance.as_ref(), budget, begin) {
        WindowTurn::ClosesTooSoon { closes, next, budget } => Some(Deferral {
            window_closes_in: whole_seconds(closes - begin),
            budget,
            next_window: next,
        }),
        _ => None,
    }
}

/// Until when the tenant may start, if it may start at `at`.
fn open_until(tenant: &TenantSummaryForPlanning, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match &tenant.maintenance {
        Some(w) => w.open_until(at),
        None => Some(DateTime::<Utc>::MAX_UTC),
    }
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// `t + d`, saturating at the end of representable time.
fn later(t: DateTime<Utc>, d: TimeDelta) -> DateTime<Utc> {
    t.checked_add_signed(d).unwrap_or(DateTime::<Utc>::MAX_UTC)
}
