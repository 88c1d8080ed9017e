//! A tenant's history as a step timeline: [`Timeline::of`] turns history events into
//! bars, marks and bands on a time axis (pure, no clock of its own), and [`svg`] draws
//! them. Each step's outcome is a bar from the moment the tenant entered the step (the
//! previous event) to the outcome, with its duration and attempts written beside it;
//! a failed step and a rollback step differ by label and outline as well as colour,
//! an operator's or rollout's command is a diamond, and each measured outage is a
//! hatched band. The chart is an `<svg role="img">` with a title and a description;
//! the history table under it carries the same facts as text.

use chrono::{DateTime, Duration, Utc};
use maud::{html, Markup};

use crate::machine::StepKind;
use crate::record::{HistoryEvent, OutageCause, TenantRecord};

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepEnd {
    Succeeded,
    Failed,
}

/// One run of a step, from entering it to its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepBar {
    pub seq: u64,
    pub step: StepKind,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Attempts the step took (`None`: recorded before attempts were).
    pub attempts: Option<u32>,
    pub outcome: StepEnd,
    /// A step of a rollback (undoing an upgrade), not of the operation itself.
    pub rollback: bool,
}

impl StepBar {
    pub fn took(&self) -> Duration {
        self.end - self.start
    }
}

/// A command (an operator's, a rollout's, a spec change) that moved the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandMark {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub cause: String,
    pub actor: String,
    /// The command was a rollback.
    pub rollback: bool,
}

/// A row of the chart, in the order of the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row {
    Step(StepBar),
    Command(CommandMark),
}

/// An outage of an upgrade, reconcile or rollback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutageBand {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub seconds: u64,
    pub cause: Option<OutageCause>,
    /// The outage of the operation in flight, still open.
    pub open: bool,
}

/// A moment drawn as a vertical line: the lease's expiry or the next due time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moment {
    pub at: DateTime<Utc>,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub rows: Vec<Row>,
    pub outages: Vec<OutageBand>,
    pub lease: Option<Moment>,
    pub due: Option<Moment>,
}

const ROLLBACK_STEPS: [StepKind; 3] = [
    StepKind::RollbackDeploy,
    StepKind::RollbackInfra,
    StepKind::VerifyRollback,
];

impl Timeline {
    /// The timeline of `history` (oldest first). `anchor` is the event just before
    /// the first one, if any: the moment the first step shown began. The lease and
    /// due time of `record` are drawn when they fall near the events; `now` ends an
    /// open outage. `None` when there is nothing to draw.
    pub fn of(
        history: &[HistoryEvent],
        anchor: Option<&HistoryEvent>,
        record: &TenantRecord,
        now: DateTime<Utc>,
    ) -> Option<Timeline> {
        let mut rows = Vec::with_capacity(history.len());
        let mut outages = Vec::new();
        let mut previous = anchor.map(|e| e.at);
        for e in history {
            match e.step {
                Some(step) => {
                    let entered = previous.or(e.step_started_at).unwrap_or(e.at);
                    rows.push(Row::Step(StepBar {
                        seq: e.seq,
                        step,
                        start: entered.min(e.at),
                        end: e.at,
                        attempts: e.attempts,
                        outcome: match e.error {
                            Some(_) => StepEnd::Failed,
                            None => StepEnd::Succeeded,
                        },
                        rollback: ROLLBACK_STEPS.contains(&step) || e.from.starts_with("RollingBack"),
                    }))
                }
                None => rows.push(Row::Command(CommandMark {
                    seq: e.seq,
                    at: e.at,
                    cause: e.cause.clone(),
                    actor: e.actor.clone(),
                    rollback: e.cause.starts_with("Rollback"),
                })),
            }
            // History keeps an outage's length and the completion it ended with;
            // the band ends there.
            if let Some(seconds) = e.outage_seconds.filter(|s| *s > 0) {
                outages.push(OutageBand {
                    start: e.at - Duration::seconds(seconds as i64),
                    end: e.at,
                    seconds,
                    cause: e.outage_cause,
                    open: false,
                });
            }
            previous = Some(e.at);
        }
        if let Some(window) = &record.facts.outage {
            outages.push(OutageBand {
                start: window.started_at,
                end: window.ended_at.unwrap_or(now),
                seconds: window.seconds(now),
                cause: Some(window.cause),
                open: window.ended_at.is_none(),
            });
        }
        let starts = rows.iter().map(Row::start).chain(outages.iter().map(|o| o.start));
        let ends = rows.iter().map(Row::end).chain(outages.iter().map(|o| o.end));
        let start = starts.min()?;
        let mut end = ends.max()?.max(start);
        // The lease and the due time stretch the axis by at most half its span (and
        // a minute), so a far one does not squash the history; beyond, they are
        // written but not drawn.
        let reach = end + (end - start) / 2 + Duration::minutes(1);
        let near = |at: DateTime<Utc>| (start..=reach).contains(&at);
        let lease = record.lease.as_ref().map(|l| Moment {
            at: l.expires_at,
            label: format!("lease {} until {}", l.owner, clock(&l.expires_at)),
        });
        let due = record.work_due_at().map(|at| Moment {
            at,
            label: format!("next due {}", clock(&at)),
        });
        let (lease, due) = (lease.filter(|m| near(m.at)), due.filter(|m| near(m.at)));
        for m in lease.iter().chain(due.iter()) {
            end = end.max(m.at);
        }
        Some(Timeline {
            start,
            end,
            rows,
            outages,
            lease,
            due,
        })
    }

    /// Where `at` falls on an axis `width` wide: 0 at the start, `width` at the end.
    pub fn x(&self, at: DateTime<Utc>, width: f64) -> f64 {
        let span = (self.end - self.start).num_milliseconds();
        if span <= 0 {
            return 0.0;
        }
        let offset = (at - self.start).num_milliseconds().clamp(0, span);
        offset as f64 / span as f64 * width
    }

    /// Failed steps, rollback steps and rollback commands, for the chart's description.
    fn counts(&self) -> (usize, usize) {
        let failed = self
            .rows
            .iter()
            .filter(|r| matches!(r, Row::Step(b) if b.outcome == StepEnd::Failed))
            .count();
        let rollbacks = self.rows.iter().filter(|r| r.is_rollback()).count();
        (failed, rollbacks)
    }
}

impl Row {
    fn start(&self) -> DateTime<Utc> {
        match self {
            Row::Step(b) => b.start,
            Row::Command(c) => c.at,
        }
    }

    fn end(&self) -> DateTime<Utc> {
        match self {
            Row::Step(b) => b.end,
            Row::Command(c) => c.at,
        }
    }

    fn is_rollback(&self) -> bool {
        match self {
            Row::Step(b) => b.rollback,
            Row::Command(c) => c.rollback,
        }
    }
}

/// `850 ms`, `12 s`, `4 min 05 s`, `2 h 03 min`.
pub fn duration(d: Duration) -> String {
    let ms = d.num_milliseconds().max(0);
    let s = ms / 1000;
    match s {
        0 => format!("{ms} ms"),
        1..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, s % 3600 / 60),
    }
}

/// `14:03:27`: the chart writes times of day; the table has full dates.
fn clock(at: &DateTime<Utc>) -> String {
    at.format("%H:%M:%S").to_string()
}

/// A bar's words: `12 s · 2 attempts · ✗ failed · ↩ rollback`.
pub fn bar_label(bar: &StepBar) -> String {
    let mut words = vec![duration(bar.took())];
    if let Some(n) = bar.attempts {
        words.push(match n {
            1 => "1 attempt".to_owned(),
            n => format!("{n} attempts"),
        });
    }
    if bar.outcome == StepEnd::Failed {
        words.push("\u{2717} failed".into());
    }
    if bar.rollback {
        words.push("\u{21a9} rollback".into());
    }
    words.join(" \u{b7} ")
}

/// The outage's words: `outage 45 s (failed probe)`, `outage 12 s so far (maintenance)`.
pub fn outage_label(o: &OutageBand) -> String {
    let so_far = if o.open { " so far" } else { "" };
    match o.cause {
        Some(cause) => format!("outage {} s{so_far} ({})", o.seconds, cause.as_str()),
        None => format!("outage {} s{so_far}", o.seconds),
    }
}

const NAMES: f64 = 150.0;
const CHART: f64 = 560.0;
const WORDS: f64 = 270.0;
const ROW: f64 = 20.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 40.0;
const TICKS: i32 = 4;

const OK: &str = "#2e7d32";
const BAD: &str = "#b00020";
const ROLLBACK: &str = "#e07b00";
const COMMAND: &str = "#3559a6";

/// The chart: an SVG image with a title and a description of what it shows.
pub fn svg(t: &Timeline, tenant: &str) -> Markup {
    let height = TOP + ROW * t.rows.len() as f64 + BOTTOM;
    let width = NAMES + CHART + WORDS;
    let x = |at: DateTime<Utc>| NAMES + t.x(at, CHART);
    let (failed, rollbacks) = t.counts();
    let outage_words: Vec<String> = t.outages.iter().map(outage_label).collect();
    let description = format!(
        "{} events from {} to {} UTC: {failed} failed step(s), {rollbacks} rollback step(s) or command(s){}{}{}.",
        t.rows.len(),
        t.start.format("%Y-%m-%d %H:%M:%S"),
        t.end.format("%Y-%m-%d %H:%M:%S"),
        if outage_words.is_empty() { String::new() } else { format!("; {}", outage_words.join(", ")) },
        t.lease.as_ref().map(|m| format!("; {}", m.label)).unwrap_or_default(),
        t.due.as_ref().map(|m| format!("; {}", m.label)).unwrap_or_default(),
    );
    let bottom = TOP + ROW * t.rows.len() as f64;
    html! {
        svg #timeline xmlns="http://www.w3.org/2000/svg" role="img"
            aria-labelledby="timeline-title timeline-desc"
            viewBox=(format!("0 0 {width} {height}")) width=(width) height=(height)
            font-family="system-ui,sans-serif" font-size="11" {
            title #timeline-title { "Step timeline of tenant " (tenant) }
            desc #timeline-desc { (description) }
            defs {
                pattern #hatch-failed patternUnits="userSpaceOnUse" width="6" height="6" patternTransform="rotate(45)" {
                    rect width="6" height="6" fill=(BAD) {}
                    line x1="0" y1="0" x2="0" y2="6" stroke="white" stroke-width="2" {}
                }
                pattern #hatch-outage patternUnits="userSpaceOnUse" width="8" height="8" patternTransform="rotate(-45)" {
                    line x1="0" y1="0" x2="0" y2="8" stroke=(BAD) stroke-width="2" stroke-opacity="0.35" {}
                }
            }
            @for i in 0..=TICKS {
                @let at = t.start + (t.end - t.start) * i / TICKS;
                @let tx = x(at);
                line.tick x1=(tx) x2=(tx) y1=(TOP - 6.0) y2=(bottom) stroke="#ddd" {}
                text x=(tx) y=(TOP - 10.0) text-anchor="middle" fill="#555" { (clock(&at)) }
            }
            @for o in &t.outages {
                @let (x0, x1) = (x(o.start), x(o.end));
                g.outage {
                    title { (outage_label(o)) }
                    rect x=(x0) y=(TOP) width=((x1 - x0).max(2.0)) height=(bottom - TOP)
                        fill="url(#hatch-outage)" stroke=(BAD) stroke-dasharray="2 2" {}
                    text x=(x0) y=(bottom + 12.0) fill=(BAD) { "\u{26a0} " (outage_label(o)) }
                }
            }
            @for (i, row) in t.rows.iter().enumerate() {
                @let y = TOP + ROW * i as f64;
                @match row {
                    Row::Step(bar) => {
                        @let (x0, x1) = (x(bar.start), x(bar.end));
                        @let (fill, stroke, class) = match (bar.outcome, bar.rollback) {
                            (StepEnd::Failed, _) => ("url(#hatch-failed)", BAD, "bar failed"),
                            (StepEnd::Succeeded, true) => (ROLLBACK, ROLLBACK, "bar rollback"),
                            (StepEnd::Succeeded, false) => (OK, OK, "bar succeeded"),
                        };
                        g class=(class) data-seq=(bar.seq) {
                            title { "#" (bar.seq) " " (bar.step) ": " (bar_label(bar)) }
                            text x=(NAMES - 6.0) y=(y + 14.0) text-anchor="end" {
                                @if bar.rollback { "\u{21a9} " } (bar.step)
                            }
                            rect x=(x0) y=(y + 4.0) width=((x1 - x0).max(3.0)) height=(ROW - 8.0)
                                fill=(fill) stroke=(stroke)
                                stroke-dasharray=(if bar.rollback { "3 2" } else { "none" }) {}
                            text x=(NAMES + CHART + 6.0) y=(y + 14.0)
                                fill=(if bar.outcome == StepEnd::Failed { BAD } else { "#1d1d1f" }) {
                                (bar_label(bar))
                            }
                        }
                    }
                    Row::Command(c) => {
                        @let cx = x(c.at);
                        @let colour = if c.rollback { ROLLBACK } else { COMMAND };
                        g.command data-seq=(c.seq) {
                            title { "#" (c.seq) " " (c.cause) " by " (c.actor) }
                            text x=(NAMES - 6.0) y=(y + 14.0) text-anchor="end" font-weight="bold" {
                                @if c.rollback { "\u{21a9} " } (first_word(&c.cause))
                            }
                            polygon points=(format!("{},{} {},{} {},{} {},{}", cx, y + 3.0, cx + 7.0, y + 10.0, cx, y + 17.0, cx - 7.0, y + 10.0))
                                fill=(colour) {}
                            text x=(NAMES + CHART + 6.0) y=(y + 14.0) { (c.cause) " \u{b7} " (c.actor) }
                        }
                    }
                }
            }
            @for (m, dash, dy) in t.lease.iter().map(|m| (m, "6 3", 24.0)).chain(t.due.iter().map(|m| (m, "1 3", 36.0))) {
                @let mx = x(m.at);
                g.moment {
                    line x1=(mx) x2=(mx) y1=(TOP - 6.0) y2=(bottom + dy - 10.0) stroke="#1d1d1f" stroke-dasharray=(dash) {}
                    text x=(mx) y=(bottom + dy) text-anchor="middle" { (m.label) }
                }
            }
        }
    }
}

/// `Upgrade` of `Upgrade to 1.1.0 (rollout r-1)`: what fits the name column.
fn first_word(cause: &str) -> &str {
    cause.split([' ', ':']).next().unwrap_or(cause)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::{ReleaseVersion, TenantSpec};
    use crate::machine::TenantState;
    use crate::record::{Lease, OutageWindow};

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    fn event(seq: u64, s: i64, cause: &str, step: Option<StepKind>) -> HistoryEvent {
        HistoryEvent {
            seq,
            at: at(s),
            from: "Upgrading/Deploy".into(),
            to: "Upgrading/Verify".into(),
            cause: cause.into(),
            actor: "api:ops".into(),
            step,
            step_started_at: None,
            fence: None,
            output: None,
            error: None,
            revision: None,
            outage_seconds: None,
            outage_cause: None,
            attempts: step.map(|_| 1),
        }
    }

    fn record() -> TenantRecord {
        let state = TenantState::Active {
            release: ReleaseVersion::parse("1.0.0").unwrap(),
            failed_upgrade: None,
        };
        TenantRecord::new(TenantSpec::example("acme", "eu-west-1"), state, at(0))
    }

    /// An upgrade whose Deploy fails after three attempts and is rolled back, with a
    /// measured outage on the rollback's completion.
    fn failed_upgrade() -> Vec<HistoryEvent> {
        vec![
            event(2, 10, "Upgrade to 1.1.0", None),
            HistoryEvent {
                attempts: Some(3),
                error: Some("helm said no".into()),
                ..event(3, 70, "StepFailed", Some(StepKind::Deploy))
            },
            HistoryEvent {
                from: "RollingBack/RollbackDeploy".into(),
                ..event(4, 82, "StepSucceeded", Some(StepKind::RollbackDeploy))
            },
            HistoryEvent {
                outage_seconds: Some(30),
                outage_cause: Some(OutageCause::FailedProbe),
                from: "RollingBack/VerifyRollback".into(),
                ..event(5, 100, "StepSucceeded", Some(StepKind::VerifyRollback))
            },
        ]
    }

    #[test]
    fn each_step_is_a_bar_from_entering_it_to_its_outcome() {
        let anchor = event(1, 0, "Provision 1.0.0", None);
        let t = Timeline::of(&failed_upgrade(), Some(&anchor), &record(), at(200)).unwrap();
        let bars: Vec<&StepBar> = t
            .rows
            .iter()
            .filter_map(|r| match r {
                Row::Step(b) => Some(b),
                Row::Command(_) => None,
            })
            .collect();
        assert_eq!(bars.len(), 3);
        let deploy = bars[0];
        assert_eq!((deploy.start, deploy.end), (at(10), at(70)));
        assert_eq!(deploy.outcome, StepEnd::Failed);
        assert!(!deploy.rollback);
        assert_eq!(
            bar_label(deploy),
            "1 min 00 s \u{b7} 3 attempts \u{b7} \u{2717} failed"
        );
        assert_eq!((bars[1].start, bars[1].end), (at(70), at(82)));
        assert!(bars[1].rollback && bars[2].rollback);
        assert_eq!(bars[2].outcome, StepEnd::Succeeded);
        assert_eq!(
            bar_label(bars[2]),
            "18 s \u{b7} 1 attempt \u{b7} \u{21a9} rollback"
        );
        assert_eq!(
            t.rows[0],
            Row::Command(CommandMark {
                seq: 2,
                at: at(10),
                cause: "Upgrade to 1.1.0".into(),
                actor: "api:ops".into(),
                rollback: false,
            })
        );
        assert_eq!(
            t.outages,
            vec![OutageBand {
                start: at(70),
                end: at(100),
                seconds: 30,
                cause: Some(OutageCause::FailedProbe),
                open: false
            }]
        );
        assert_eq!((t.start, t.end), (at(10), at(100)));
    }

    #[test]
    fn the_first_step_shown_starts_at_its_run_without_an_anchor() {
        let mut first = event(7, 50, "StepSucceeded", Some(StepKind::Backup));
        first.step_started_at = Some(at(40));
        let t = Timeline::of(&[first], None, &record(), at(60)).unwrap();
        assert!(matches!(&t.rows[0], Row::Step(b) if b.start == at(40) && b.end == at(50)));
    }

    #[test]
    fn a_rollback_command_and_an_open_outage_are_marked() {
        let mut r = record();
        r.facts.outage = Some(OutageWindow {
            started_at: at(20),
            cause: OutageCause::Maintenance,
            ended_at: None,
        });
        let history = [event(2, 10, "Rollback", None)];
        let t = Timeline::of(&history, None, &r, at(40)).unwrap();
        assert!(matches!(&t.rows[0], Row::Command(c) if c.rollback));
        let band = &t.outages[0];
        assert!(band.open);
        assert_eq!((band.start, band.end, band.seconds), (at(20), at(40), 20));
        assert_eq!(outage_label(band), "outage 20 s so far (maintenance)");
        assert_eq!(t.end, at(40));
    }

    #[test]
    fn a_near_lease_and_due_time_stretch_the_axis_and_a_far_one_does_not() {
        let mut r = TenantRecord::new(
            TenantSpec::example("acme", "eu-west-1"),
            TenantState::Upgrading {
                from: ReleaseVersion::parse("1.0.0").unwrap(),
                to: ReleaseVersion::parse("1.1.0").unwrap(),
                step: crate::machine::UpgradeStep::Verify,
            },
            at(0),
        );
        r.lease = Some(Lease {
            owner: "w1".into(),
            expires_at: at(130),
            fence: 4,
        });
        r.due_at = Some(at(120));
        let history = failed_upgrade();
        let t = Timeline::of(&history, None, &r, at(100)).unwrap();
        assert_eq!(t.lease.as_ref().map(|m| m.at), Some(at(130)));
        assert_eq!(
            t.due.as_ref().map(|m| m.at),
            Some(at(130)),
            "not before the lease runs out"
        );
        assert!(t.lease.unwrap().label.starts_with("lease w1 until "));
        assert_eq!(t.end, at(130));

        r.lease.as_mut().unwrap().expires_at = at(100_000);
        let t = Timeline::of(&history, None, &r, at(100)).unwrap();
        assert_eq!((t.lease, t.due, t.end), (None, None, at(100)));
    }

    #[test]
    fn times_map_onto_the_axis_and_stay_inside_it() {
        let t = Timeline::of(&failed_upgrade(), None, &record(), at(100)).unwrap();
        assert_eq!(t.x(at(10), 500.0), 0.0);
        assert_eq!(t.x(at(100), 500.0), 500.0);
        assert_eq!(t.x(at(55), 500.0), 250.0);
        assert_eq!(t.x(at(-50), 500.0), 0.0);
        assert_eq!(t.x(at(1000), 500.0), 500.0);
    }

    #[test]
    fn nothing_to_draw_without_events() {
        assert_eq!(Timeline::of(&[], None, &record(), at(0)), None);
    }

    #[test]
    fn the_chart_has_a_text_alternative_and_marks_failure_and_rollback_in_words() {
        let t = Timeline::of(&failed_upgrade(), None, &record(), at(100)).unwrap();
        let out = svg(&t, "<acme>").into_string();
        assert!(out.contains("role=\"img\""));
        assert!(out.contains("<title id=\"timeline-title\">Step timeline of tenant &lt;acme&gt;</title>"));
        assert!(
            out.contains("1 failed step(s), 2 rollback step(s) or command(s); outage 30 s (failed probe).")
        );
        assert!(out.contains("\u{2717} failed"));
        assert!(out.contains("\u{21a9} RollbackDeploy"));
        assert!(out.contains("class=\"bar failed\" data-seq=\"3\""));
    }

    #[test]
    fn durations_read_in_the_largest_sensible_unit() {
        assert_eq!(duration(Duration::milliseconds(850)), "850 ms");
        assert_eq!(duration(Duration::seconds(12)), "12 s");
        assert_eq!(duration(Duration::seconds(245)), "4 min 05 s");
        assert_eq!(duration(Duration::seconds(7380)), "2 h 03 min");
        assert_eq!(duration(Duration::seconds(-5)), "0 ms");
    }
}
