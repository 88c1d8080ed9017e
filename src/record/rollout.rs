//! A started rollout as the store keeps it: one rollout record (spec, phase, the
//! waves and their progress, what operators did) and one member per tenant and wave
//! (that tenant's outcome). The controller reads both, decides, and writes both back
//! with conditional writes.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Lease;
use crate::domain::rollout::{OutageBudget, Plan, Skipped, SpecRevision, WaveKind, WaveSize};
use crate::domain::{Region, ReleaseVersion, RolloutId, RolloutSpec, TenantId};

/// Where a rollout is in its life. `Completed` and `Aborted` are final: nothing is
/// started any more and the rollout's hold on its tenants ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Members are being written; the rollout starts nothing yet.
    Preparing,
    Running,
    /// Stopped by an operator: nothing new starts, tenants in flight finish.
    Paused,
    /// Stopped by a failure-budget breach (and rolling back as the spec says); waits
    /// for `resume`, `retry` or `abort`.
    Halted,
    Completed,
    Aborted,
}

impl Phase {
    pub const ALL: [Phase; 6] = [
        Phase::Preparing,
        Phase::Running,
        Phase::Paused,
        Phase::Halted,
        Phase::Completed,
        Phase::Aborted,
    ];

    pub fn is_finished(self) -> bool {
        matches!(self, Phase::Completed | Phase::Aborted)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Preparing => "preparing",
            Phase::Running => "running",
            Phase::Paused => "paused",
            Phase::Halted => "halted",
            Phase::Completed => "completed",
            Phase::Aborted => "aborted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where one wave is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaveStatus {
    /// An earlier wave is still going.
    Waiting,
    AwaitingApproval,
    /// Its tenants are being upgraded.
    Deploying,
    /// All its tenants are done; health checks keep running until the bake ends.
    Baking,
    Succeeded,
    /// It failed more tenants than its budget allows.
    Breached,
}

/// The evidence gathered during a bake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BakeProgress {
    pub since: DateTime<Utc>,
    pub checks_passed: u32,
    pub next_check_at: DateTime<Utc>,
    /// The latest check of each tenant checked, the unhealthy ones first (at most
    /// [`BAKE_TENANTS_KEPT`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<BakeCheck>,
}

/// The most tenants whose latest bake check a wave keeps, so the record stays small.
pub const BAKE_TENANTS_KEPT: usize = 50;
/// The most alarms a bake check lists; the rest are only counted.
pub const BAKE_ALARMS_KEPT: usize = 10;

/// One alarm as a check saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AlarmSeen {
    pub name: String,
    /// `OK`, `ALARM`, `INSUFFICIENT_DATA`, or `missing` (a configured alarm that does
    /// not exist).
    pub state: String,
}

/// A tenant's latest bake check: when, what it found, and the alarms it read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BakeCheck {
    #[schema(value_type = String)]
    pub tenant: TenantId,
    pub at: DateTime<Utc>,
    pub healthy: bool,
    /// Why it is unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The alarms checked and their states (at most [`BAKE_ALARMS_KEPT`], those that
    /// are not `OK` first).
    #[serde(default)]
    pub alarms: Vec<AlarmSeen>,
    /// Alarms checked beyond those listed.
    #[serde(default)]
    pub alarms_not_listed: usize,
}

impl BakeCheck {
    /// A check of `tenant` at `at`; `reason` is `None` when it passed. Lists the alarms
    /// that are not `OK` first, and at most [`BAKE_ALARMS_KEPT`] of them.
    pub fn new(
        tenant: TenantId,
        at: DateTime<Utc>,
        reason: Option<String>,
        mut alarms: Vec<AlarmSeen>,
    ) -> Self {
        alarms.sort_by_key(|a| a.state == "OK");
        let alarms_not_listed = alarms.len().saturating_sub(BAKE_ALARMS_KEPT);
        alarms.truncate(BAKE_ALARMS_KEPT);
        Self {
            tenant,
            at,
            healthy: reason.is_none(),
            reason,
            alarms,
            alarms_not_listed,
        }
    }
}

impl BakeProgress {
    /// Keeps `latest` as each tenant's check in place of any earlier one, the
    /// unhealthy tenants first, and at most [`BAKE_TENANTS_KEPT`].
    pub fn record_checks(&mut self, latest: Vec<BakeCheck>) {
        self.checks
            .retain(|c| !latest.iter().any(|l| l.tenant == c.tenant));
        self.checks.extend(latest);
        self.checks
            .sort_by(|a, b| (a.healthy, a.tenant.as_str()).cmp(&(b.healthy, b.tenant.as_str())));
        self.checks.truncate(BAKE_TENANTS_KEPT);
    }
}

/// One wave of a started rollout: what the plan said and how far it got. The tenants
/// are members, stored apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveRecord {
    pub index: usize,
    pub kind: WaveKind,
    pub target: WaveSize,
    pub regions: Vec<Region>,
    pub size: usize,
    pub allowed_failures: usize,
    pub approval_before: bool,
    pub status: WaveStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// Failures an operator accepted by resuming after a breach; the budget counts
    /// failures beyond these.
    #[serde(default)]
    pub accepted_failures: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bake: Option<BakeProgress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// When the wave stood still for maintenance windows: nothing of it running and
    /// a pending tenant held by its closed window. Oldest first, at most
    /// [`WINDOW_WAITS_KEPT`]; the last may still be open. `None` in records written
    /// before the controller noted them (a timeline infers their waits instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_waits: Option<Vec<WindowWait>>,
    /// Its members by outcome, so that progress is read from the record rather than
    /// from every member of a fleet-wide rollout. `None` in records written before
    /// waves kept it (their readers count the members).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tally: Option<WaveTally>,
    /// The earliest starts the plan gave its first and last tenant, so its planned
    /// bar is drawn without reading its members. `None` for a wave without members,
    /// and in records written before waves kept it (a timeline reads the members).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_starts: Option<StartRange>,
}

/// The earliest of a wave's planned starts and the latest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartRange {
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
}

impl StartRange {
    /// The range of `starts`; `None` when there are none.
    pub fn of(starts: impl IntoIterator<Item = DateTime<Utc>>) -> Option<Self> {
        starts.into_iter().fold(None, |range, at| {
            Some(match range {
                None => Self { first: at, last: at },
                Some(Self { first, last }) => Self {
                    first: first.min(at),
                    last: last.max(at),
                },
            })
        })
    }
}

/// How long a wave's [`WaveTally`] may lag its members: a controller pass that would
/// save nothing else writes a changed tally only once the stored one is this old.
/// A pass that saves the record anyway, and the pass that ends the wave, write it at
/// once, so a finished wave's tally is exact.
pub const TALLY_EVERY: chrono::TimeDelta = chrono::TimeDelta::seconds(5);

/// The failed members a [`WaveTally`] names; its `failed` counts them all. With
/// reasons cut to [`TALLY_REASON_CHARS`], a tally stays under 3 KB, so the record of
/// a rollout with many waves stays far below DynamoDB's item limit.
pub const TALLY_FAILURES_KEPT: usize = 10;
/// The characters of a failure's reason a [`WaveTally`] keeps (the member keeps it whole).
pub const TALLY_REASON_CHARS: usize = 200;

/// A wave's members by outcome, as its controller last counted them (at `at`), with
/// the first [`TALLY_FAILURES_KEPT`] failed ones by tenant id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveTally {
    pub pending: usize,
    pub in_flight: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub skipped: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<MemberFailure>,
    /// The first [`TALLY_IN_FLIGHT_KEPT`] members in flight, by tenant id, so a
    /// large wave's readers name what is upgrading without reading the wave.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moving: Vec<TenantId>,
    pub at: DateTime<Utc>,
}

/// The members in flight a [`WaveTally`] names; its `in_flight` counts them all.
pub const TALLY_IN_FLIGHT_KEPT: usize = 20;

/// A member whose upgrade failed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberFailure {
    pub tenant: TenantId,
    pub reason: String,
}

impl WaveTally {
    /// A wave of `size` members none of which has started.
    pub fn pending(size: usize, at: DateTime<Utc>) -> Self {
        Self {
            pending: size,
            in_flight: 0,
            succeeded: 0,
            failed: 0,
            skipped: 0,
            failures: Vec::new(),
            moving: Vec::new(),
            at,
        }
    }

    /// `members` counted by outcome.
    pub fn of<'a>(members: impl IntoIterator<Item = &'a RolloutMember>, at: DateTime<Utc>) -> Self {
        let mut tally = Self::pending(0, at);
        for m in members {
            match &m.outcome {
                Outcome::Pending => tally.pending += 1,
                Outcome::InFlight => {
                    tally.in_flight += 1;
                    tally.moving.push(m.tenant.clone());
                }
                Outcome::Succeeded => tally.succeeded += 1,
                Outcome::Skipped { .. } => tally.skipped += 1,
                Outcome::Failed { reason } => {
                    tally.failed += 1;
                    tally.failures.push(MemberFailure {
                        tenant: m.tenant.clone(),
                        reason: reason.chars().take(TALLY_REASON_CHARS).collect(),
                    });
                }
            }
        }
        tally.failures.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        tally.failures.truncate(TALLY_FAILURES_KEPT);
        tally.moving.sort();
        tally.moving.truncate(TALLY_IN_FLIGHT_KEPT);
        tally
    }

    /// Members counted, whatever their outcome.
    pub fn total(&self) -> usize {
        self.pending + self.in_flight + self.succeeded + self.failed + self.skipped
    }

    /// Members whose outcome is final (succeeded, failed or skipped).
    pub fn done(&self) -> usize {
        self.succeeded + self.failed + self.skipped
    }

    /// Whether `other` counts the same, whenever it was counted.
    pub fn same_as(&self, other: &WaveTally) -> bool {
        Self {
            at: other.at,
            ..self.clone()
        } == *other
    }
}

impl RolloutRecord {
    /// Each wave's tally, if every wave keeps one (a record written before waves kept
    /// them does not: count its members instead).
    pub fn tallies(&self) -> Option<Vec<&WaveTally>> {
        self.waves.iter().map(|w| w.tally.as_ref()).collect()
    }

    /// Puts `fresh`, the tally of wave `wave` counted this pass, in `self` (the
    /// record a controller pass decided, from `before`) when it changed and the
    /// record is saved anyway, or the stored one is [`TALLY_EVERY`] old.
    pub fn refresh_tally(&mut self, before: &RolloutRecord, wave: usize, fresh: WaveTally) {
        let saved_anyway = *self != *before;
        let Some(w) = self.waves.get_mut(wave) else {
            return;
        };
        let due = match &w.tally {
            Some(kept) if kept.same_as(&fresh) => false,
            Some(kept) => saved_anyway || fresh.at - kept.at >= TALLY_EVERY,
            None => true,
        };
        if due {
            w.tally = Some(fresh);
        }
    }
}

/// The newest window waits a wave keeps; older ones are dropped.
pub const WINDOW_WAITS_KEPT: usize = 50;

/// A time a wave waited for its tenants' maintenance windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowWait {
    pub from: DateTime<Utc>,
    /// `None`: still waiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
}

impl WaveRecord {
    /// Notes whether the wave waits for a maintenance window at `now`: opens a wait
    /// when it starts, closes the open one when it ends, and changes nothing while
    /// it goes on (so a tick that finds the same has nothing to write).
    pub fn note_window_wait(&mut self, waiting: bool, now: DateTime<Utc>) {
        let waits = self.window_waits.get_or_insert_with(Vec::new);
        let open = waits.last_mut().filter(|w| w.until.is_none());
        match (waiting, open) {
            (true, None) => {
                waits.push(WindowWait {
                    from: now,
                    until: None,
                });
                let over = waits.len().saturating_sub(WINDOW_WAITS_KEPT);
                waits.drain(..over);
            }
            (false, Some(wait)) => wait.until = Some(now),
            _ => {}
        }
    }
}

/// Something that happened to a rollout, and who did it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutEvent {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub what: String,
}

/// The newest events a rollout record keeps; older ones are dropped.
pub const EVENTS_KEPT: usize = 200;

/// A started rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutRecord {
    pub id: RolloutId,
    pub spec: RolloutSpec,
    pub phase: Phase,
    pub waves: Vec<WaveRecord>,
    /// The wave being worked on; equals `waves.len()` once all are done.
    pub current_wave: usize,
    pub skipped: Vec<Skipped>,
    pub not_selected: usize,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halt_reason: Option<String>,
    /// Once halted: whether the rollback the spec asks for is done (nothing of the
    /// breached wave is still moving).
    #[serde(default)]
    pub settled: bool,
    #[serde(default)]
    pub events: Vec<RolloutEvent>,
    /// A scheduled start (`rollout start --at`): no wave starts before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<DateTime<Utc>>,
    /// Freezes an admin overrode for this rollout: they do not hold its tenants.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overridden_freezes: Vec<String>,
    /// Store bookkeeping, not part of the JSON blob.
    #[serde(skip)]
    pub version: u64,
    #[serde(skip)]
    pub lease: Option<Lease>,
    /// Store bookkeeping: how many tenants were skipped at planning when the list is
    /// kept in items of its own rather than in `skipped` (which then holds it only
    /// once [`crate::ports::RolloutStore::with_details`] put it back), so a rollout
    /// over a fleet of any size fits in DynamoDB's item limit.
    #[serde(skip)]
    pub skipped_apart: Option<usize>,
}

/// Why a controller aborted a rollout whose start was interrupted (its starter's
/// lease ran out while it was still preparing).
pub const INTERRUPTED_START: &str =
    "interrupted while being started; run the same start again (same id and spec) to resume it";

impl RolloutRecord {
    /// A rollout about to be written, from its plan; its members come from
    /// [`RolloutMember::from_plan`].
    pub fn from_plan(id: RolloutId, spec: RolloutSpec, plan: &Plan, actor: &str, now: DateTime<Utc>) -> Self {
        let waves = plan
            .waves
            .iter()
            .map(|w| WaveRecord {
                index: w.index,
                kind: w.kind,
                target: w.target,
                regions: w.regions.clone(),
                size: w.tenants.len(),
                allowed_failures: w.allowed_failures,
                approval_before: w.approval_before,
                status: WaveStatus::Waiting,
                approved_by: None,
                accepted_failures: 0,
                started_at: None,
                bake: None,
                finished_at: None,
                window_waits: Some(Vec::new()),
                tally: Some(WaveTally::pending(w.tenants.len(), now)),
                planned_starts: StartRange::of(w.tenants.iter().map(|t| t.earliest_start)),
            })
            .collect();
        let mut record = Self {
            id,
            spec,
            phase: Phase::Preparing,
            waves,
            current_wave: 0,
            skipped: plan.skipped.clone(),
            not_selected: plan.not_selected,
            created_by: actor.to_owned(),
            created_at: now,
            updated_at: now,
            halt_reason: None,
            settled: false,
            events: Vec::new(),
            not_before: None,
            overridden_freezes: Vec::new(),
            version: 0,
            lease: None,
            skipped_apart: None,
        };
        record.log(
            now,
            actor,
            format!(
                "started: {} tenants in {} waves, {} skipped",
                plan.tenant_count(),
                plan.waves.len(),
                plan.skipped.len()
            ),
        );
        record
    }

    /// Whether the start that wrote this rollout was interrupted before it finished:
    /// still preparing, or aborted by a controller for it ([`INTERRUPTED_START`]).
    /// The same start again (same id and spec) resumes it; nothing of it has run.
    pub fn start_unfinished(&self) -> bool {
        match self.phase {
            Phase::Preparing => true,
            Phase::Aborted => self.halt_reason.as_deref() == Some(INTERRUPTED_START),
            _ => false,
        }
    }

    /// Why `wave` names no wave of this rollout, if it does not.
    pub fn no_wave(&self, wave: usize) -> Option<String> {
        (wave >= self.waves.len()).then(|| {
            format!(
                "rollout {} has no wave {wave}: its waves are 0 to {}",
                self.id,
                self.waves.len().saturating_sub(1)
            )
        })
    }

    /// How many tenants were skipped at planning, whether or not their list is loaded.
    pub fn skipped_count(&self) -> usize {
        self.skipped_apart.unwrap_or(self.skipped.len())
    }

    /// What the rollout moves tenants to, in words.
    pub fn target(&self) -> String {
        self.spec.target_text()
    }

    pub fn wave(&self) -> Option<&WaveRecord> {
        self.waves.get(self.current_wave)
    }

    pub fn wave_mut(&mut self) -> Option<&mut WaveRecord> {
        self.waves.get_mut(self.current_wave)
    }

    /// Appends an event, keeping the newest [`EVENTS_KEPT`].
    pub fn log(&mut self, at: DateTime<Utc>, actor: &str, what: impl Into<String>) {
        self.events.push(RolloutEvent {
            at,
            actor: actor.to_owned(),
            what: what.into(),
        });
        if self.events.len() > EVENTS_KEPT {
            let excess = self.events.len() - EVENTS_KEPT;
            self.events.drain(..excess);
        }
    }

    /// Whether `--wait` can stop: the rollout finished, or halted and its rollback
    /// is done.
    pub fn is_settled(&self) -> bool {
        self.phase.is_finished() || (self.phase == Phase::Halted && self.settled)
    }
}

/// How one tenant's part in a rollout went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Not started yet.
    Pending,
    /// Its upgrade runs.
    InFlight,
    /// On the release (and healthy through the bake so far).
    Succeeded,
    /// Its upgrade failed, or it turned unhealthy during the bake.
    Failed { reason: String },
    /// Left alone when its turn came.
    Skipped { reason: String },
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Pending => "pending",
            Outcome::InFlight => "in_flight",
            Outcome::Succeeded => "succeeded",
            Outcome::Failed { .. } => "failed",
            Outcome::Skipped { .. } => "skipped",
        }
    }

    /// Whether nothing more will happen to this tenant's upgrade.
    pub fn is_done(&self) -> bool {
        matches!(
            self,
            Outcome::Succeeded | Outcome::Failed { .. } | Outcome::Skipped { .. }
        )
    }
}

/// A breach's rollback of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rollback", rename_all = "snake_case")]
pub enum RollbackStatus {
    InProgress,
    Done,
    Failed { reason: String },
}

/// One tenant in one wave of a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutMember {
    pub wave: usize,
    pub tenant: TenantId,
    pub region: Region,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The release it ran when the rollout started it: where a rollback returns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_release: Option<ReleaseVersion>,
    /// Its desired platform and tier when the rollout started it, which a rollback
    /// restores together with `from_release`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<SpecRevision>,
    /// How many times the rollout started it (a retry starts it again).
    #[serde(default)]
    pub attempts: u32,
    /// The earliest the plan said it could start (its maintenance window).
    pub earliest_start: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackStatus>,
    /// Why it is still waiting (e.g. its maintenance window), for status output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
    /// Set when its upgrade's measured outage was longer than the strategy's budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outage_overrun: Option<OutageOverrun>,
    #[serde(skip)]
    pub version: u64,
}

/// An upgrade that kept its tenant out of service longer than the rollout allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutageOverrun {
    /// The outage verify measured.
    pub seconds: u64,
    /// The strategy's `outage_budget`.
    pub budget: OutageBudget,
}

impl RolloutMember {
    /// Every member of a plan, wave by wave.
    pub fn from_plan(plan: &Plan) -> Vec<Self> {
        plan.waves
            .iter()
            .flat_map(|w| {
                (w.tenants.iter())
                    .map(move |t| Self::planned(w.index, t.id.clone(), t.region.clone(), t.earliest_start))
            })
            .collect()
    }

    /// A member as planned: pending, not yet started, written for the first time.
    pub fn planned(wave: usize, tenant: TenantId, region: Region, earliest_start: DateTime<Utc>) -> Self {
        RolloutMember {
            wave,
            tenant,
            region,
            outcome: Outcome::Pending,
            from_release: None,
            from: None,
            attempts: 0,
            earliest_start,
            started_at: None,
            finished_at: None,
            rollback: None,
            waiting_for: None,
            outage_overrun: None,
            version: 0,
        }
    }
}

#[cfg(test)]
mod window_wait_tests {
    use chrono::TimeZone;

    use super::*;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 7, 8, minute, 0).unwrap()
    }

    fn wave() -> WaveRecord {
        serde_json::from_value(serde_json::json!({
            "index": 0, "kind": "canary", "target": "1", "regions": ["eu-west-1"], "size": 1,
            "allowed_failures": 0, "approval_before": false, "status": "deploying"
        }))
        .unwrap()
    }

    #[test]
    fn a_wait_opens_once_closes_once_and_only_the_newest_are_kept() {
        let mut wave = wave();
        assert_eq!(wave.window_waits, None, "a record from before the field");
        wave.note_window_wait(false, at(0));
        assert_eq!(wave.window_waits, Some(Vec::new()), "noted: no wait");
        wave.note_window_wait(true, at(1));
        wave.note_window_wait(true, at(2));
        wave.note_window_wait(false, at(3));
        wave.note_window_wait(false, at(4));
        assert_eq!(
            wave.window_waits,
            Some(vec![WindowWait {
                from: at(1),
                until: Some(at(3))
            }])
        );
        for minute in 5..5 + WINDOW_WAITS_KEPT as u32 {
            wave.note_window_wait(true, at(minute));
            wave.note_window_wait(false, at(minute));
        }
        let waits = wave.window_waits.unwrap();
        assert_eq!(waits.len(), WINDOW_WAITS_KEPT);
        assert_eq!(waits[0].from, at(5), "the oldest is dropped");
    }
}

#[cfg(test)]
mod tally_tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn a_tally_counts_every_member_and_names_the_first_failed_and_in_flight_by_id() {
        let at = Utc.with_ymd_and_hms(2030, 1, 7, 8, 0, 0).unwrap();
        let region = Region::parse("eu-west-1").unwrap();
        let members: Vec<RolloutMember> = (0..60)
            .rev()
            .map(|i| {
                let tenant = TenantId::parse(&format!("t-{i:03}")).unwrap();
                let outcome = match i % 3 {
                    0 => Outcome::InFlight,
                    1 => Outcome::Failed {
                        reason: "x".repeat(TALLY_REASON_CHARS + 50),
                    },
                    _ => Outcome::Succeeded,
                };
                RolloutMember {
                    outcome,
                    ..RolloutMember::planned(0, tenant, region.clone(), at)
                }
            })
            .collect();
        let tally = WaveTally::of(&members, at);
        assert_eq!((tally.in_flight, tally.failed, tally.succeeded), (20, 20, 20));
        assert_eq!(tally.total(), 60);
        let moving: Vec<&str> = tally.moving.iter().map(TenantId::as_str).collect();
        assert_eq!(moving.len(), TALLY_IN_FLIGHT_KEPT);
        assert_eq!(moving[..2], ["t-000", "t-003"], "by tenant id");
        assert_eq!(tally.failures.len(), TALLY_FAILURES_KEPT);
        assert_eq!(tally.failures[0].tenant.as_str(), "t-001");
        assert_eq!(tally.failures[0].reason.chars().count(), TALLY_REASON_CHARS);
    }
}
