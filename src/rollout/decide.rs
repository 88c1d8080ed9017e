//! The controller's decisions, pure: a rollout record, the members of its current
//! wave and what was observed of their tenants go in; the next record, the member
//! changes and the tenants to drive come out. The controller does the I/O.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::target::{Target, TenantRevision};
use super::window_turn::{whole_seconds, window_turn, WindowTurn};
use crate::domain::rollout::{SkipReason, SpecRevision};
use crate::domain::{
    frozen_by, Environment, Freeze, MaintenanceWindows, Region, ReleaseVersion, RolloutId, TenantId,
};
use crate::machine::{TenantEvent, TenantState};
use crate::record::{
    BakeCheck, BakeProgress, OutageOverrun, Outcome, Phase, RollbackStatus, RolloutMember, RolloutRecord,
    WaveStatus, WaveTally,
};

/// What the controller saw of one member's tenant this tick.
#[derive(Debug, Clone)]
pub struct TenantView {
    pub state: TenantState,
    /// Its environment: freezes are per environment (and region).
    pub environment: Environment,
    /// Another rollout, still running, that holds the tenant.
    pub held_by: Option<RolloutId>,
    pub pinned_release: Option<ReleaseVersion>,
    pub maintenance: Option<MaintenanceWindows>,
    pub last_error: Option<String>,
    /// Its desired platform and tier, and the platform applied.
    pub revision: TenantRevision,
    /// The outage of its last completed upgrade or rollback, in seconds, as verify
    /// measured it (`None`: not measured).
    pub last_outage_seconds: Option<u64>,
}

/// Everything a decision depends on besides the record and the members.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub now: DateTime<Utc>,
    /// By tenant; absent from the map: not loaded; `None`: the tenant no longer exists.
    pub tenants: HashMap<TenantId, Option<TenantView>>,
    /// The results of a bake check round run this tick on the wave's succeeded
    /// tenants: each tenant's check (a `reason` when it failed), with its evidence.
    pub bake_check: Option<Vec<BakeCheck>>,
    /// The stored freeze windows; a pending tenant whose environment and region one
    /// covers now waits (unless the rollout's override names it).
    pub freezes: Vec<Freeze>,
    /// Members whose start a worker in this process is writing with the landing of
    /// another tenant ([`crate::ports::Relay`]): in flight, whatever was read of them.
    pub relaying: HashSet<TenantId>,
}

/// A change of one tenant to write together with the member's new state, atomically:
/// the desired platform and tier to set, and the machine event that applies them.
#[derive(Debug, Clone, PartialEq)]
pub struct Drive {
    pub member: RolloutMember,
    /// `None`: only the spec changes (a tenant whose machine already rolled back gets
    /// its previous desired revision back).
    pub event: Option<TenantEvent>,
    /// `None`: the spec stays as it is.
    pub spec: Option<SpecRevision>,
}

#[derive(Debug, Clone)]
pub struct Decision {
    pub record: RolloutRecord,
    pub members: Vec<RolloutMember>,
    pub drives: Vec<Drive>,
    /// Pending members whose turn has come but for a free slot, in the order they
    /// are to start, at most as many per region as the region's in-flight limit:
    /// each as the drive that starts it, to be started in the place of a tenant of
    /// its region that lands ([`crate::ports::Relay`]). Only tenants without
    /// maintenance windows: the window of a tenant started later than now is not
    /// what this pass checked.
    pub ready: Vec<Drive>,
    /// The tenants in flight as this decision leaves the wave (those it started
    /// among them): the slots a tenant of `ready` may take when one of them lands.
    pub in_flight: HashSet<TenantId>,
}

/// What a pending member waits for when the in-flight limits leave no room for it.
pub const FREE_SLOT: &str = "a free slot (in-flight limit)";

/// The in-flight limits of a rollout: tenants at once in a wave, and in a region.
#[derive(Debug, Clone, Copy)]
struct Limits {
    per_wave: usize,
    per_region: usize,
}

impl Limits {
    fn of(record: &RolloutRecord) -> Self {
        let strategy = &record.spec.strategy;
        Self {
            per_wave: (strategy.max_in_flight_per_wave).map_or(usize::MAX, |n| n.get() as usize),
            per_region: (strategy.max_in_flight_per_region).map_or(usize::MAX, |n| n.get() as usize),
        }
    }
}

/// The order a pass considers a wave's pending members in, and starts them: earliest
/// start first, then by tenant id. Sorting a slice already in this order costs one
/// linear check, so the controller sorts a wave once and both [`members_to_observe`]
/// and [`decide`] keep it.
pub fn start_order(a: &RolloutMember, b: &RolloutMember) -> std::cmp::Ordering {
    (a.earliest_start, &a.tenant).cmp(&(b.earliest_start, &b.tenant))
}

/// The members of the current wave whose tenants a pass must read before deciding:
/// those moving or baking, and of the pending ones, every one that waits for
/// something other than a slot (a window, a freeze, a busy tenant: its turn may have
/// come) and, in the order the decision starts them, no more of the others than the
/// in-flight limits could start if every tenant in flight had just finished. The rest
/// could not start this pass whatever their tenants look like, so reading them would
/// only load the store: the decision leaves them waiting for a free slot.
pub fn members_to_observe(
    record: &RolloutRecord,
    members: &[RolloutMember],
    now: DateTime<Utc>,
) -> Vec<TenantId> {
    let halted = record.phase == Phase::Halted;
    let bake_due = bake_check_due(record, now);
    let limits = Limits::of(record);
    let mut order: Vec<&RolloutMember> = members.iter().collect();
    order.sort_by(|a, b| start_order(a, b));
    let (mut room_taken, mut by_region) = (0usize, HashMap::<&Region, usize>::new());
    order
        .into_iter()
        .filter(|m| {
            if m.outcome == Outcome::Pending && !halted {
                let waits_for_other = m.waiting_for.as_deref().is_some_and(|why| why != FREE_SLOT);
                if waits_for_other {
                    return true;
                }
                let in_region = by_region.entry(&m.region).or_default();
                if room_taken >= limits.per_wave || *in_region >= limits.per_region {
                    return false;
                }
                room_taken += 1;
                *in_region += 1;
                return true;
            }
            !m.outcome.is_done()
                || m.rollback == Some(RollbackStatus::InProgress)
                || (halted && m.rollback.is_none() && !matches!(m.outcome, Outcome::Skipped { .. }))
                || (m.outcome == Outcome::Succeeded && bake_due)
        })
        .map(|m| m.tenant.clone())
        .collect()
}

/// When the rollout next has something to do that no worker will wake the
/// controller for: now, for a wave that is to start (the pass before finished the
/// wave ahead of it) or that succeeded; a bake's next check round or its end; the
/// scheduled start. `None` when it waits on its tenants (a worker that settles one
/// wakes the controller), an approval, or nothing at all; the tick covers those,
/// and maintenance windows. A controller sleeps no longer than this, so a wave
/// starts as soon as the one before it has baked rather than a tick later.
pub fn next_due(record: &RolloutRecord, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if record.phase != Phase::Running {
        return None;
    }
    if let Some(at) = record.not_before.filter(|at| now < *at) {
        return Some(at);
    }
    let wave = record.wave()?;
    match wave.status {
        WaveStatus::Waiting if wave.approval_before && wave.approved_by.is_none() => None,
        WaveStatus::Waiting | WaveStatus::Succeeded => Some(now),
        WaveStatus::AwaitingApproval => wave.approved_by.is_some().then_some(now),
        // The bake's end, while ahead; past it, a bake still short of check rounds
        // waits for the next of them.
        WaveStatus::Baking => wave.bake.as_ref().map(|b| {
            let ends = b.since + record.spec.strategy.bake.time();
            if ends > now {
                b.next_check_at.min(ends)
            } else {
                b.next_check_at
            }
        }),
        WaveStatus::Deploying | WaveStatus::Breached => None,
    }
}

/// Whether the wave needs a bake check round now.
pub fn bake_check_due(record: &RolloutRecord, now: DateTime<Utc>) -> bool {
    record.phase == Phase::Running
        && record.wave().is_some_and(|w| {
            w.status == WaveStatus::Baking && w.bake.as_ref().is_some_and(|b| b.next_check_at <= now)
        })
}

/// The next step of a rollout. `members` are those of the current wave.
pub fn decide(record: &RolloutRecord, members: &[RolloutMember], observed: &Observed) -> Decision {
    let mut d = Deciding {
        before: record,
        record: record.clone(),
        members: members.to_vec(),
        changed: Vec::new(),
        drives: Vec::new(),
        ready: Vec::new(),
        in_flight: HashSet::new(),
        now: observed.now,
        observed,
    };
    d.members.sort_by(start_order);
    if !matches!(record.phase, Phase::Running | Phase::Paused | Phase::Halted) {
        return d.finish();
    }
    // Past the last wave by more than one, or halted with no wave to have halted in:
    // the record was changed outside tenantctl, and no wave can be trusted.
    if record.current_wave > record.waves.len() || (record.phase == Phase::Halted && record.wave().is_none())
    {
        d.halt_on_unknown_wave();
        return d.finish();
    }
    if record.wave().is_none() {
        d.complete();
        return d.finish();
    }
    d.observe_moving_tenants();
    match record.phase {
        Phase::Running if d.scheduled() => {}
        Phase::Running => d.advance(),
        Phase::Halted => d.roll_back(),
        _ => {}
    }
    d.finish()
}

struct Deciding<'a> {
    /// The record as read, which `record` starts from.
    before: &'a RolloutRecord,
    record: RolloutRecord,
    members: Vec<RolloutMember>,
    /// Indexes into `members` of those changed by plain writes.
    changed: Vec<usize>,
    drives: Vec<Drive>,
    ready: Vec<Drive>,
    in_flight: HashSet<TenantId>,
    now: DateTime<Utc>,
    observed: &'a Observed,
}

impl<'a> Deciding<'a> {
    fn finish(mut self) -> Decision {
        // The wave read this pass, counted as this decision leaves it.
        if let Some(wave) = self.members.first().map(|m| m.wave) {
            let fresh = WaveTally::of(&self.members, self.now);
            self.record.refresh_tally(self.before, wave, fresh);
        }
        let mut changed = self.changed;
        changed.sort_unstable();
        changed.dedup();
        let driven: Vec<&TenantId> = self.drives.iter().map(|d| &d.member.tenant).collect();
        let members = changed
            .into_iter()
            .map(|i| self.members[i].clone())
            .filter(|m| !driven.contains(&&m.tenant))
            .collect();
        let (ready, in_flight) = match (self.record.phase, self.record.wave().map(|w| w.status)) {
            (Phase::Running, Some(WaveStatus::Deploying)) => (self.ready, self.in_flight),
            _ => Default::default(),
        };
        Decision {
            record: self.record,
            members,
            drives: self.drives,
            ready,
            in_flight,
        }
    }

    fn view(&self, tenant: &TenantId) -> Option<Option<&'a TenantView>> {
        self.observed.tenants.get(tenant).map(Option::as_ref)
    }

    fn set(&mut self, i: usize, change: impl FnOnce(&mut RolloutMember)) {
        let before = self.members[i].clone();
        change(&mut self.members[i]);
        if self.members[i] != before {
            self.changed.push(i);
        }
    }

    /// The release a started member moves to: the rollout's, or the one it ran.
    fn target_release(&self, m: &RolloutMember) -> Option<ReleaseVersion> {
        (self.record.spec.release.clone()).or_else(|| m.from_release.clone())
    }

    /// Records how in-flight upgrades and rollbacks ended. A tenant whose machine
    /// rolled back a failed upgrade runs its previous template, chart and release
    /// again; its desired platform and tier return to the previous ones with it.
    fn observe_moving_tenants(&mut self) {
        let now = self.now;
        for i in 0..self.members.len() {
            let m = self.members[i].clone();
            let Some(view) = self.view(&m.tenant) else {
                continue;
            };
            if m.outcome == Outcome::InFlight {
                let Some(target) = self.target_release(&m) else {
                    continue;
                };
                let Some(outcome) = judge_upgrade(view, &target, m.from_release.as_ref()) else {
                    continue;
                };
                let failed = matches!(outcome, Outcome::Failed { .. });
                let overrun = self.outage_overrun(view);
                if let Some(overrun) = &overrun {
                    self.record.log(
                        now,
                        "controller",
                        format!(
                            "{}: outage of {}s overran the budget of {}",
                            m.tenant, overrun.seconds, overrun.budget
                        ),
                    );
                }
                self.set(i, |m| {
                    m.outcome = outcome;
                    m.finished_at = Some(now);
                    m.outage_overrun = overrun;
                });
                if let (true, Some(view), Some(from)) = (failed, view, m.from) {
                    if rolled_back_by_machine(view, &target, m.from_release.as_ref())
                        && view.revision.desired() != from
                    {
                        self.drives.push(Drive {
                            member: self.members[i].clone(),
                            event: None,
                            spec: Some(from),
                        });
                    }
                }
            } else if m.rollback == Some(RollbackStatus::InProgress) {
                let from = m.from_release.clone();
                if let Some(status) = judge_rollback(view, from.as_ref()) {
                    self.set(i, |m| m.rollback = Some(status));
                }
            }
        }
    }

    /// The outage verify measured for a tenant that just finished, if it was longer
    /// than the strategy's budget.
    fn outage_overrun(&self, view: Option<&TenantView>) -> Option<OutageOverrun> {
        let budget = self.record.spec.strategy.outage_budget?;
        let seconds = view?.last_outage_seconds?;
        budget
            .overrun_by(seconds)
            .then_some(OutageOverrun { seconds, budget })
    }

    fn failures(&self) -> usize {
        self.members
            .iter()
            .filter(|m| matches!(m.outcome, Outcome::Failed { .. }))
            .count()
    }

    /// Halts the rollout if the wave failed more tenants than its budget allows,
    /// beyond the failures an operator accepted by resuming.
    fn breached(&mut self) -> bool {
        let failures = self.failures();
        let budget = self.record.spec.strategy.failure_budget;
        let Some(wave) = self.record.wave() else {
            return false;
        };
        if !budget.is_breached(failures.saturating_sub(wave.accepted_failures), wave.size) {
            return false;
        }
        let failed: Vec<String> = self
            .members
            .iter()
            .filter_map(|m| match &m.outcome {
                Outcome::Failed { reason } => Some(format!("{} ({reason})", m.tenant)),
                _ => None,
            })
            .take(5)
            .collect();
        let reason = format!(
            "wave {} ({}) failed {failures} of {} tenants, more than its budget of {}: {}",
            wave.index,
            regions(&wave.regions),
            wave.size,
            budget.allowed_failures(wave.size) + wave.accepted_failures,
            failed.join("; ")
        );
        let scope = self.record.spec.strategy.on_breach.rollback;
        let now = self.now;
        self.record.phase = Phase::Halted;
        self.record.settled = false;
        self.record.halt_reason = Some(reason.clone());
        self.set_wave_status(WaveStatus::Breached);
        self.record.log(
            now,
            "controller",
            format!("halted: {reason}; rolling back {}", scope_text(scope)),
        );
        true
    }

    /// Sets the current wave's status; a rollout past its last wave has none to set.
    fn set_wave_status(&mut self, status: WaveStatus) {
        if let Some(w) = self.record.wave_mut() {
            w.status = status;
        }
    }

    /// Halts a rollout whose current wave is not one of its waves. Nothing of it is
    /// started or rolled back any more, so it is settled at once; an operator aborts it.
    fn halt_on_unknown_wave(&mut self) {
        let reason = format!(
            "rollout {} is at wave {} but has only {} waves (numbered from 0); its record was \
             changed outside tenantctl, so no wave's tenants can be found. Abort it \
             (`tenantctl rollout abort {}`) and start a new rollout for the tenants it has not moved",
            self.record.id,
            self.record.current_wave,
            self.record.waves.len(),
            self.record.id
        );
        if self.record.phase == Phase::Halted && self.record.halt_reason.as_ref() == Some(&reason) {
            return;
        }
        let now = self.now;
        self.record.phase = Phase::Halted;
        self.record.settled = true;
        self.record.halt_reason = Some(reason.clone());
        self.record.log(now, "controller", format!("halted: {reason}"));
    }

    fn advance(&mut self) {
        let now = self.now;
        let Some(wave) = self.record.wave().cloned() else {
            return;
        };
        match wave.status {
            WaveStatus::Waiting if wave.approval_before && wave.approved_by.is_none() => {
                self.set_wave_status(WaveStatus::AwaitingApproval);
                self.record.log(
                    now,
                    "controller",
                    format!(
                        "wave {} ({}) waits for approval: `tenantctl rollout approve {}`",
                        wave.index,
                        regions(&wave.regions),
                        self.record.id
                    ),
                );
            }
            WaveStatus::Waiting | WaveStatus::AwaitingApproval
                if !wave.approval_before || wave.approved_by.is_some() =>
            {
                if let Some(w) = self.record.wave_mut() {
                    w.status = WaveStatus::Deploying;
                    w.started_at = Some(now);
                }
                self.record.log(
                    now,
                    "controller",
                    format!(
                        "wave {} ({}) started: {} tenants",
                        wave.index,
                        regions(&wave.regions),
                        wave.size
                    ),
                );
                self.deploy();
            }
            WaveStatus::Deploying | WaveStatus::Breached => self.deploy(),
            WaveStatus::Baking => self.bake(),
            WaveStatus::Succeeded => self.next_wave(),
            WaveStatus::Waiting | WaveStatus::AwaitingApproval => {}
        }
    }

    fn deploy(&mut self) {
        let now = self.now;
        if self.breached() {
            if let Some(wave) = self.record.wave_mut() {
                wave.note_window_wait(false, now);
            }
            self.roll_back();
            return;
        }
        self.set_wave_status(WaveStatus::Deploying);
        let held_by_window = self.start_pending();
        // The wave stands still for windows when nothing of it runs and a pending
        // tenant waits for its window (not for a freeze, a slot or a busy tenant).
        let idle = !self.members.iter().any(|m| m.outcome == Outcome::InFlight);
        if let Some(wave) = self.record.wave_mut() {
            wave.note_window_wait(held_by_window && idle, now);
        }
        if self.members.iter().all(|m| m.outcome.is_done()) {
            self.wave_deployed();
        }
    }

    /// Every tenant of the wave is done: the wave bakes, or succeeds at once when the
    /// spec asks for no bake.
    fn wave_deployed(&mut self) {
        let bake = self.record.spec.strategy.bake;
        let now = self.now;
        let Some(w) = self.record.wave_mut() else {
            return;
        };
        if bake.time().is_zero() {
            w.status = WaveStatus::Succeeded;
            self.next_wave();
        } else {
            w.status = WaveStatus::Baking;
            w.bake = Some(BakeProgress {
                since: now,
                checks_passed: 0,
                next_check_at: now + bake.check_interval(),
                checks: Vec::new(),
            });
            let index = w.index;
            self.record.log(
                now,
                "controller",
                format!(
                    "wave {index} deployed; baking for {}",
                    humantime::format_duration(bake.time())
                ),
            );
        }
    }

    /// Whether the rollout's scheduled start is still ahead: no wave starts before it.
    fn scheduled(&self) -> bool {
        self.record.not_before.is_some_and(|at| self.now < at)
    }

    /// Starts pending tenants whose turn has come, within the in-flight limits;
    /// whether a pending tenant is left waiting for its maintenance window.
    fn start_pending(&mut self) -> bool {
        let mut held_by_window = false;
        let Limits { per_wave, per_region } = Limits::of(&self.record);
        let mut in_flight = self
            .members
            .iter()
            .filter(|m| m.outcome == Outcome::InFlight)
            .count();
        let mut by_region: HashMap<Region, usize> = HashMap::new();
        for m in self.members.iter().filter(|m| m.outcome == Outcome::InFlight) {
            *by_region.entry(m.region.clone()).or_default() += 1;
            self.in_flight.insert(m.tenant.clone());
        }
        // A pending member whose tenant is in the middle of steps, or whose start a
        // worker here is writing, takes a slot as much as one in flight: its start
        // may have been written after its member was read (a relayed start).
        for m in self.members.iter().filter(|m| m.outcome == Outcome::Pending) {
            let busy = self
                .view(&m.tenant)
                .flatten()
                .is_some_and(|v| v.state.step().is_some());
            if busy || self.observed.relaying.contains(&m.tenant) {
                in_flight += 1;
                *by_region.entry(m.region.clone()).or_default() += 1;
                self.in_flight.insert(m.tenant.clone());
            }
        }
        let mut ready_in: HashMap<Region, usize> = HashMap::new();
        let now = self.now;
        for i in 0..self.members.len() {
            if self.members[i].outcome != Outcome::Pending
                || self.observed.relaying.contains(&self.members[i].tenant)
            {
                continue;
            }
            let region = self.members[i].region.clone();
            let Some(view) = self.view(&self.members[i].tenant) else {
                // Not read this pass (`members_to_observe`): it could not have started.
                let full = in_flight >= per_wave || by_region.get(&region).is_some_and(|n| *n >= per_region);
                if full {
                    self.set(i, |m| m.waiting_for = Some(FREE_SLOT.to_owned()));
                }
                continue;
            };
            let (view, running) = match self.turn_of(view, &region) {
                Turn::Skip(why) => {
                    self.set(i, |m| skip(m, &why, now));
                    continue;
                }
                Turn::AlreadyThere(view, release) => {
                    self.set(i, |m| {
                        m.outcome = Outcome::Succeeded;
                        m.from_release = Some(release);
                        m.from = Some(view.revision.desired());
                        m.finished_at = Some(now);
                        m.waiting_for = None;
                    });
                    continue;
                }
                Turn::Wait(why) => {
                    self.set(i, |m| m.waiting_for = Some(why));
                    continue;
                }
                Turn::WaitForWindow(why) => {
                    held_by_window = true;
                    self.set(i, |m| m.waiting_for = Some(why));
                    continue;
                }
                Turn::Start(view, running) => (view, running),
            };
            let region_count = by_region.entry(self.members[i].region.clone()).or_default();
            if in_flight >= per_wave || *region_count >= per_region {
                self.set(i, |m| m.waiting_for = Some(FREE_SLOT.to_owned()));
                let ready = ready_in.entry(region).or_default();
                if *ready < per_region && view.maintenance.is_none() {
                    *ready += 1;
                    let drive = self.start(i, view, &running);
                    self.ready.push(drive);
                }
                continue;
            }
            in_flight += 1;
            *region_count += 1;
            let drive = self.start(i, view, &running);
            self.members[i] = drive.member.clone();
            self.in_flight.insert(drive.member.tenant.clone());
            self.drives.push(drive);
        }
        held_by_window
    }

    /// The drive that starts member `i`, whose tenant runs `running`.
    fn start(&self, i: usize, view: &TenantView, running: &ReleaseVersion) -> Drive {
        let target = Target::of(&self.record.spec, running, &view.revision);
        let mut member = self.members[i].clone();
        member.outcome = Outcome::InFlight;
        member.from = Some(view.revision.desired());
        member.from_release = Some(running.clone());
        member.attempts += 1;
        member.started_at = Some(self.now);
        member.finished_at = None;
        member.waiting_for = None;
        Drive {
            member,
            event: Some(target.event(running)),
            spec: Some(target.spec),
        }
    }

    /// What a pending member's tenant allows now, before the in-flight limits.
    fn turn_of(&self, view: Option<&'a TenantView>, region: &Region) -> Turn<'a> {
        let now = self.now;
        let Some(view) = view else {
            return Turn::Skip("the tenant no longer exists".into());
        };
        if let Some(other) = &view.held_by {
            return Turn::Skip(format!(
                "held by rollout {other}, which is still running; abort or finish it first"
            ));
        }
        if let Some(pin) = &view.pinned_release {
            return Turn::Skip(format!("pinned to {pin} since the rollout was planned"));
        }
        if let Some(pin) = view.revision.platform_pin_against(&self.record.spec) {
            return Turn::Skip(format!(
                "pinned to platform version {pin} since the rollout was planned"
            ));
        }
        match &view.state {
            TenantState::Active { release, .. }
                if Target::of(&self.record.spec, release, &view.revision).reached(
                    &self.record.spec,
                    release,
                    &view.revision,
                ) =>
            {
                Turn::AlreadyThere(view, release.clone())
            }
            TenantState::Active { .. } if self.frozen(view, region).is_some() => {
                Turn::Wait(self.frozen(view, region).expect("checked"))
            }
            TenantState::Active { release, .. } => {
                let budget = self.record.spec.strategy.outage_budget;
                let at = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M UTC");
                match window_turn(view.maintenance.as_ref(), budget, now) {
                    WindowTurn::Open => Turn::Start(view, release.clone()),
                    WindowTurn::Closed { next } => Turn::WaitForWindow(match budget {
                        None => format!("its maintenance window, next opening {}", at(next)),
                        Some(budget) => format!(
                            "a maintenance window that holds its outage budget of {budget}, next opening {}",
                            at(next)
                        ),
                    }),
                    WindowTurn::ClosesTooSoon { closes, next, budget } => Turn::WaitForWindow(format!(
                        "a maintenance window that holds its outage budget of {budget}: the open one closes in {}, \
                         the next that holds it opens {}",
                        humantime::format_duration(whole_seconds(closes - now)),
                        at(next)
                    )),
                    WindowTurn::TooShort { longest, budget } => Turn::Skip(
                        SkipReason::WindowShorterThanOutageBudget {
                            longest_window: longest,
                            budget,
                        }
                        .to_string(),
                    ),
                }
            }
            TenantState::Failed { reason, .. } => Turn::Skip(format!(
                "the tenant is Failed ({reason}); repair it, then `tenantctl rollout retry {}`",
                self.record.id
            )),
            TenantState::Deleted {} | TenantState::Deprovisioning { .. } => {
                Turn::Skip("the tenant is being deleted".into())
            }
            busy => Turn::Wait(format!("the tenant to finish {}", busy.label())),
        }
    }

    /// The freeze that holds a pending tenant now, unless the rollout overrides it.
    fn frozen(&self, view: &TenantView, region: &Region) -> Option<String> {
        let freezes: Vec<Freeze> = (self.observed.freezes.iter())
            .filter(|f| !self.record.overridden_freezes.contains(&f.id))
            .cloned()
            .collect();
        frozen_by(&freezes, &view.environment, region, self.now).map(|hold| hold.to_string())
    }

    fn bake(&mut self) {
        let now = self.now;
        let Some(wave) = self.record.wave() else {
            return;
        };
        if wave.bake.is_none() {
            // Baking with no record of when it began (an edited record): baking again
            // from now can only make the wave wait longer, never shorter.
            let index = wave.index;
            self.record.log(
                now,
                "controller",
                format!("wave {index} was baking with no bake progress recorded; its bake starts again"),
            );
            self.wave_deployed();
            return;
        }
        if let Some(checks) = self.observed.bake_check.clone() {
            for check in &checks {
                let Some(reason) = &check.reason else {
                    continue;
                };
                if let Some(i) = self.members.iter().position(|m| m.tenant == check.tenant) {
                    let reason = format!("unhealthy during the bake: {reason}");
                    self.set(i, |m| m.outcome = Outcome::Failed { reason });
                }
            }
            if let Some(bake) = self.record.wave_mut().and_then(|w| w.bake.as_mut()) {
                bake.record_checks(checks);
            }
            if self.breached() {
                self.roll_back();
                return;
            }
            let interval = self.record.spec.strategy.bake.check_interval();
            if let Some(bake) = self.record.wave_mut().and_then(|w| w.bake.as_mut()) {
                bake.checks_passed += 1;
                bake.next_check_at = now + interval;
            }
        }
        let spec_bake = self.record.spec.strategy.bake;
        let Some(wave) = self.record.wave() else {
            return;
        };
        let Some(bake) = wave.bake.clone() else {
            return;
        };
        let index = wave.index;
        if now >= bake.since + spec_bake.time() && bake.checks_passed >= spec_bake.checks() {
            let passed = bake.checks_passed;
            self.set_wave_status(WaveStatus::Succeeded);
            self.record.log(
                now,
                "controller",
                format!("wave {index} baked: {passed} health check rounds passed"),
            );
            self.next_wave();
        }
    }

    fn next_wave(&mut self) {
        let now = self.now;
        if let Some(w) = self.record.wave_mut() {
            w.finished_at = Some(now);
        }
        self.record.current_wave += 1;
        if self.record.wave().is_none() {
            self.complete();
        }
    }

    fn complete(&mut self) {
        if self.record.phase != Phase::Completed {
            self.record.phase = Phase::Completed;
            let now = self.now;
            self.record
                .log(now, "controller", "completed: every wave succeeded");
        }
    }
}

/// Where a pending member stands, as far as its tenant is concerned.
enum Turn<'a> {
    /// Leave it out of the rollout, for this reason.
    Skip(String),
    /// It has reached the target already (someone else moved it): a success. With the
    /// release it runs.
    AlreadyThere(&'a TenantView, ReleaseVersion),
    /// Not yet: it waits for this.
    Wait(String),
    /// Not yet: its maintenance window is closed (or closes too soon); as `Wait`.
    WaitForWindow(String),
    /// It may start from the release it runs, room permitting.
    Start(&'a TenantView, ReleaseVersion),
}

fn skip(m: &mut RolloutMember, why: &str, now: DateTime<Utc>) {
    m.outcome = Outcome::Skipped {
        reason: why.to_owned(),
    };
    m.finished_at = Some(now);
    m.waiting_for = None;
}

mod outcomes;
mod rollback;

pub(crate) use outcomes::regions;
use outcomes::{judge_rollback, judge_upgrade, rolled_back_by_machine, scope_text};

#[cfg(test)]
mod tests;
