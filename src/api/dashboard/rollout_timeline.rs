//! A rollout as a timeline: a pure function from the stored rollout and its members
//! to what the rollout page draws, so the geometry is tested without a store or a
//! browser. Per wave a planned bar (the planner's estimate the rollout was started
//! with: each member's `earliest_start`, plus the upgrade time the planner assumes and
//! the strategy's bake) and an actual bar of phases (waiting for approval, deploying,
//! waiting for a maintenance window, baking, halted), and marks for its tenants with
//! their outcome. At most [`MARKS_SHOWN`] marks per wave are drawn, the tenants in
//! trouble first, so a page costs the same for a wave of ten or of ten thousand.
//!
//! `members` may be all of a wave's or a sample of it (fewer than the wave's size,
//! [`crate::app::rollouts::members_to_draw`]): a sampled wave's planned bar and
//! failure count come from its record (`planned_starts`, `tally`), and its marks
//! are drawn from the sample.

use chrono::{DateTime, TimeDelta, Utc};

use crate::app::rollouts::assumed_tenant_duration;
use crate::record::{
    Outcome, Phase, RollbackStatus, RolloutMember, RolloutRecord, StartRange, WaveRecord, WaveStatus,
    WindowWait,
};

/// The most tenant marks drawn per wave; the rest are counted and linked.
pub const MARKS_SHOWN: usize = 40;

/// In a rollout recorded before the controller noted window waits, a pause between
/// two upgrades of a deploying wave longer than this is drawn as waiting for a
/// maintenance window; shorter ones are the controller's ticks.
pub const WINDOW_GAP: TimeDelta = TimeDelta::seconds(60);

/// What a stretch of a wave's actual bar was spent on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    Approval,
    Deploying,
    Window,
    Baking,
    Halted,
}

impl SegmentKind {
    pub const ALL: [SegmentKind; 5] = [
        Self::Approval,
        Self::Deploying,
        Self::Window,
        Self::Baking,
        Self::Halted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approval => "waiting for approval",
            Self::Deploying => "deploying",
            Self::Window => "waiting for a window",
            Self::Baking => "baking",
            Self::Halted => "halted",
        }
    }

    /// The short name used as a CSS class and a `data-` value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Approval => "approval",
            Self::Deploying => "deploying",
            Self::Window => "window",
            Self::Baking => "baking",
            Self::Halted => "halted",
        }
    }
}

/// A stretch of time; `open` when it is still going (it ends now).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub open: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub kind: SegmentKind,
    pub span: Span,
}

/// A tenant's outcome as its mark shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MarkOutcome {
    Failed,
    RolledBack,
    InFlight,
    Skipped,
    Pending,
    Succeeded,
}

impl MarkOutcome {
    pub fn of(member: &RolloutMember) -> Self {
        match (&member.outcome, &member.rollback) {
            (_, Some(RollbackStatus::Done)) => Self::RolledBack,
            (Outcome::Failed { .. }, _) => Self::Failed,
            (Outcome::InFlight, _) => Self::InFlight,
            (Outcome::Skipped { .. }, _) => Self::Skipped,
            (Outcome::Pending, _) => Self::Pending,
            (Outcome::Succeeded, _) => Self::Succeeded,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::RolledBack => "rolled back",
            Self::InFlight => "in flight",
            Self::Skipped => "skipped",
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
        }
    }

    /// The letter drawn in the mark, so the outcome never rests on colour alone.
    pub fn letter(self) -> &'static str {
        match self {
            Self::Failed => "F",
            Self::RolledBack => "R",
            Self::InFlight => "I",
            Self::Skipped => "K",
            Self::Pending => "P",
            Self::Succeeded => "S",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::RolledBack => "rolled-back",
            Self::InFlight => "in-flight",
            Self::Skipped => "skipped",
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
        }
    }
}

/// One tenant of a wave, where and how its mark is drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub tenant: String,
    pub region: String,
    pub outcome: MarkOutcome,
    /// When it started, or the plan's earliest start while pending.
    pub at: DateTime<Utc>,
    /// Why it failed or was skipped, or what it waits for.
    pub why: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaveBars {
    pub index: usize,
    pub status: WaveStatus,
    /// The planner's estimate: from its first tenant's earliest start to the end of
    /// its bake. `None` for a wave without members.
    pub planned: Option<Span>,
    pub actual: Vec<Segment>,
    pub marks: Vec<Mark>,
    /// Members not drawn (beyond [`MARKS_SHOWN`]).
    pub marks_not_shown: usize,
    pub failed: usize,
    pub allowed_failures: usize,
}

/// Everything the rollout page draws, on one time axis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub now: DateTime<Utc>,
    /// No wave has started: the page shows the plan's estimate only.
    pub not_started: bool,
    pub waves: Vec<WaveBars>,
}

impl Timeline {
    /// Where `at` lies on the axis, from 0 (its start) to 1 (its end), clamped.
    pub fn x(&self, at: DateTime<Utc>) -> f64 {
        let total = (self.end - self.start).num_milliseconds();
        if total <= 0 {
            return 0.0;
        }
        let offset = (at - self.start).num_milliseconds() as f64 / total as f64;
        offset.clamp(0.0, 1.0)
    }
}

/// The timeline of `record` with its `members` (any order), as of `now`.
pub fn timeline(record: &RolloutRecord, members: &[RolloutMember], now: DateTime<Utc>) -> Timeline {
    let upgrade = TimeDelta::from_std(assumed_tenant_duration()).unwrap_or(TimeDelta::MAX);
    let bake = TimeDelta::from_std(record.spec.strategy.bake.time()).unwrap_or(TimeDelta::MAX);
    let not_started = record.waves.iter().all(|w| w.started_at.is_none());
    let halted_at = record
        .events
        .iter()
        .rev()
        .find(|e| e.what.starts_with("halted"))
        .map(|e| e.at);
    // A finished rollout's bars end when it last changed, not at every reload's now.
    let until = if record.phase.is_finished() {
        record.updated_at
    } else {
        now
    };
    let mut waves = Vec::with_capacity(record.waves.len());
    let mut previous_end = record
        .not_before
        .unwrap_or(record.created_at)
        .max(record.created_at);
    for wave in &record.waves {
        let own: Vec<&RolloutMember> = members.iter().filter(|m| m.wave == wave.index).collect();
        // Given only a sample of a large wave: its counts come from its tally.
        let sampled = own.len() < wave.size;
        let planned = match wave.planned_starts {
            Some(range) => Some(planned_span(range, upgrade, bake)),
            None => StartRange::of(own.iter().map(|m| m.earliest_start))
                .map(|range| planned_span(range, upgrade, bake)),
        };
        let actual = if not_started {
            Vec::new()
        } else {
            actual_segments(wave, &own, previous_end, until, halted_at, record.phase)
        };
        if let Some(end) = wave.finished_at {
            previous_end = end;
        }
        let failed = match (&wave.tally, sampled) {
            (Some(tally), true) => tally.failed,
            _ => (own.iter())
                .filter(|m| matches!(m.outcome, Outcome::Failed { .. }))
                .count(),
        };
        let marks = marks(&own);
        let marks_not_shown = own.len().max(wave.size) - marks.len();
        waves.push(WaveBars {
            index: wave.index,
            status: wave.status,
            planned,
            actual,
            marks,
            marks_not_shown,
            failed,
            allowed_failures: wave.allowed_failures + wave.accepted_failures,
        });
    }
    let times = waves.iter().flat_map(|w| {
        let planned = w.planned.iter().flat_map(|s| [s.start, s.end]);
        let actual = w.actual.iter().flat_map(|s| [s.span.start, s.span.end]);
        planned.chain(actual).chain(w.marks.iter().map(|m| m.at))
    });
    let (start, end) = times.fold((record.created_at, record.created_at), |(lo, hi), t| {
        (lo.min(t), hi.max(t))
    });
    Timeline {
        start,
        end: if not_started { end } else { end.max(until) },
        now,
        not_started,
        waves,
    }
}

fn planned_span(starts: StartRange, upgrade: TimeDelta, bake: TimeDelta) -> Span {
    let end = (starts.last.checked_add_signed(upgrade)).and_then(|t| t.checked_add_signed(bake));
    Span {
        start: starts.first,
        end: end.unwrap_or(DateTime::<Utc>::MAX_UTC),
        open: false,
    }
}

/// The phases of one wave, in order: the approval wait (from the previous wave's end),
/// deploying with its long pauses as window waits, the bake, and a halt.
fn actual_segments(
    wave: &WaveRecord,
    members: &[&RolloutMember],
    previous_end: DateTime<Utc>,
    now: DateTime<Utc>,
    halted_at: Option<DateTime<Utc>>,
    phase: Phase,
) -> Vec<Segment> {
    let mut segments = Vec::new();
    let mut push = |kind, start: DateTime<Utc>, end: Option<DateTime<Utc>>| {
        let (end, open) = match end {
            Some(end) => (end, false),
            None => (now, true),
        };
        if end >= start {
            segments.push(Segment {
                kind,
                span: Span { start, end, open },
            });
        }
    };
    if wave.approval_before && (wave.started_at.is_some() || wave.status == WaveStatus::AwaitingApproval) {
        push(SegmentKind::Approval, previous_end, wave.started_at);
    }
    let Some(started) = wave.started_at else {
        return segments;
    };
    let breached = wave.status == WaveStatus::Breached;
    let halt = breached.then(|| halted_at.unwrap_or(now).max(started));
    let bake_since = wave.bake.as_ref().map(|b| b.since);
    // Deploying lasts until the bake begins, the wave breaches, or it ends.
    let deploy_end = match (bake_since, halt, wave.status) {
        (Some(since), _, _) => Some(since),
        (None, Some(at), _) => Some(at),
        (None, None, WaveStatus::Deploying) => None,
        (None, None, _) => wave.finished_at,
    };
    let deploy_until = deploy_end.unwrap_or(now);
    let gaps = match &wave.window_waits {
        Some(waits) => stored_window_waits(waits, started, deploy_end, deploy_until),
        None => inferred_window_waits(members, started, deploy_end, deploy_until, now),
    };
    let mut from = started;
    let mut ended = false;
    for (gap_start, gap_end) in gaps {
        if gap_start > from {
            push(SegmentKind::Deploying, from, Some(gap_start));
        }
        push(SegmentKind::Window, gap_start, gap_end);
        from = gap_end.unwrap_or(deploy_until);
        ended = gap_end.is_none() || gap_end == deploy_end;
    }
    if !ended {
        push(SegmentKind::Deploying, from, deploy_end);
    }
    if let Some(since) = bake_since {
        let bake_end = halt.or(wave.finished_at);
        push(SegmentKind::Baking, since, bake_end);
    }
    if let Some(at) = halt {
        let end = if phase == Phase::Halted {
            None
        } else {
            wave.finished_at.or(Some(now))
        };
        push(SegmentKind::Halted, at, end);
    }
    segments
}

/// The window waits the controller recorded, within the wave's deploying: a wait
/// still open lasts as long as the deploying does.
fn stored_window_waits(
    waits: &[WindowWait],
    started: DateTime<Utc>,
    deploy_end: Option<DateTime<Utc>>,
    deploy_until: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> {
    waits
        .iter()
        .filter(|w| w.from < deploy_until)
        .map(|w| {
            let start = w.from.max(started);
            let end = match w.until {
                Some(until) => Some(until.min(deploy_until)),
                None => deploy_end,
            };
            (start, end)
        })
        .collect()
}

/// The window waits of a wave recorded before the controller noted them, inferred:
/// long pauses with nothing running while a tenant waited.
fn inferred_window_waits(
    members: &[&RolloutMember],
    started: DateTime<Utc>,
    deploy_end: Option<DateTime<Utc>>,
    deploy_until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> {
    let mut runs: Vec<(DateTime<Utc>, DateTime<Utc>)> = members
        .iter()
        .filter_map(|m| Some((m.started_at?, m.finished_at.unwrap_or(now))))
        .collect();
    runs.sort();
    // Long pauses with nothing running are waits for a maintenance window.
    let mut gaps: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> = Vec::new();
    let mut cursor = started;
    for (run_start, run_end) in runs {
        if run_start.min(deploy_until) - cursor > WINDOW_GAP {
            gaps.push((cursor, Some(run_start.min(deploy_until))));
        }
        cursor = cursor.max(run_end);
    }
    let waiting = members
        .iter()
        .any(|m| m.outcome == Outcome::Pending && m.waiting_for.is_some());
    if waiting && deploy_until - cursor > WINDOW_GAP {
        gaps.push((cursor, deploy_end));
    }
    gaps
}

/// The marks of a wave's members, tenants in trouble first, then by time; at most
/// [`MARKS_SHOWN`].
fn marks(members: &[&RolloutMember]) -> Vec<Mark> {
    let mut marks: Vec<Mark> = members
        .iter()
        .map(|m| Mark {
            tenant: m.tenant.to_string(),
            region: m.region.to_string(),
            outcome: MarkOutcome::of(m),
            at: m.started_at.unwrap_or(m.earliest_start),
            why: match &m.outcome {
                Outcome::Failed { reason } | Outcome::Skipped { reason } => Some(reason.clone()),
                Outcome::Pending => m.waiting_for.clone(),
                _ => None,
            },
        })
        .collect();
    marks.sort_by(|a, b| (a.outcome, a.at, &a.tenant).cmp(&(b.outcome, b.at, &b.tenant)));
    marks.truncate(MARKS_SHOWN);
    marks.sort_by(|a, b| (a.at, &a.tenant).cmp(&(b.at, &b.tenant)));
    marks
}

#[cfg(test)]
pub(super) mod tests;
