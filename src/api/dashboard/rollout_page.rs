//! `/rollouts/{id}`: one rollout as a timeline. A server-drawn SVG chart (each wave's
//! planned bar over its actual phases, its tenants as marks with their outcome),
//! then the same facts as tables (waves, failure budget, tenants, bake evidence, what
//! was done and by whom), then the actions the viewer may take, each behind a
//! confirmation. A pure function of the stored rollout, so tests check it without a
//! store; the geometry is [`super::rollout_timeline`].

use chrono::{DateTime, Utc};
use maud::{html, Markup};

use super::actions::{RolloutAction, RolloutForms};
use super::html::{or_dash, page, time, Who};
use super::rollout_timeline::{
    Mark, MarkOutcome, Segment, SegmentKind, Span, Timeline, WaveBars, MARKS_SHOWN,
};
use crate::record::{Outcome, Phase, RolloutMember, RolloutRecord, WaveRecord, WaveStatus};

/// The chart's size in SVG units: a label column, then the time axis.
const WIDTH: f64 = 960.0;
const LABEL: f64 = 120.0;
const AXIS: f64 = WIDTH - LABEL - 16.0;
const TOP: f64 = 30.0;
const ROW: f64 = 62.0;
/// The newest rollout events listed.
pub const EVENTS_SHOWN: usize = 30;

/// Styles of the chart: colours and patterns, each phase and outcome also named in
/// text (labels, titles, letters), so colour is never the only signal.
pub const STYLE: &str = "\
svg.timeline{width:100%;height:auto;font:11px system-ui,sans-serif;border:1px solid #ddd;background:#fff}\
.planned{fill:none;stroke:#555;stroke-dasharray:4 2}\
.seg-deploying{fill:#3a6fd8}.seg-baking{fill:#5aa55a}\
.seg-approval{fill:url(#p-approval)}.seg-window{fill:url(#p-window)}\
.seg-halted{fill:url(#p-halted)}svg.timeline .seg-label{fill:#fff;font-weight:600}\
svg.timeline .mark-succeeded{fill:#116611}svg.timeline .mark-failed{fill:#b00020}\
svg.timeline .mark-rolled-back{fill:#9a5b00}svg.timeline .mark-in-flight{fill:#3a6fd8}\
svg.timeline .mark-skipped,svg.timeline .mark-pending{fill:#888}\
svg.timeline .letter{fill:#fff;font-size:9px;font-weight:700;text-anchor:middle}\
svg.timeline .now{stroke:#b00020;stroke-dasharray:3 3}svg.timeline .tick{stroke:#eee}\
svg.key{width:30px;height:12px;vertical-align:middle;border:1px solid #999}\
details.confirm{display:inline-block;margin-right:1em}details.confirm form{margin:.4em 0}";

/// What the page needs besides the rollout: who looks, the forms they may post, the
/// action just done.
pub struct PageContext<'a> {
    pub viewer: &'a Who<'a>,
    pub forms: Option<&'a RolloutForms<'a>>,
    pub done: Option<RolloutAction>,
}

pub fn render(
    record: &RolloutRecord,
    members: &[RolloutMember],
    timeline: &Timeline,
    cx: &PageContext,
) -> Markup {
    let id = record.id.as_str();
    let body = html! {
        @if let Some(action) = cx.done {
            p.ok #action-done { "Rollout " (id) " " (action.done()) "." }
        }
        section #rollout data-rollout=(id) data-phase=(record.phase) {
            h2 {
                (id) " \u{2192} " (record.target()) " "
                span.badge #rollout-phase data-phase=(record.phase) { (record.phase) }
            }
            p.muted {
                "Started " (time(&record.created_at)) " by " (record.created_by)
                @if let Some(at) = record.not_before { "; no wave starts before " (time(&at)) }
                "; as of " (time(&timeline.now)) "."
            }
            @if let Some(reason) = &record.halt_reason {
                p.bad #halt-reason {
                    "Halted: " span.error { (reason) }
                    @if record.settled { " (rollback done; resume, retry or abort)" } @else { " (rolling back)" }
                }
            }
            @if timeline.not_started {
                p.warn #not-started {
                    "No wave has started yet: the chart shows the plan's estimate only (the planner of "
                    code { "tenantctl rollout plan" } ")."
                }
            }
        }
        section #timeline {
            h2 { "Timeline" }
            (chart(record, timeline))
            (legend())
        }
        (waves_table(record, timeline))
        (tenants(record, timeline))
        (bake_evidence(record))
        (events(record))
        @if let Some(forms) = cx.forms {
            (actions(record, members, forms))
        }
    };
    page(&format!("Rollout {id}"), Some(cx.viewer), None, body)
}

fn x(timeline: &Timeline, at: DateTime<Utc>) -> f64 {
    LABEL + timeline.x(at) * AXIS
}

fn span_text(span: &Span) -> String {
    if span.open {
        format!("{} \u{2013} now", time(&span.start))
    } else {
        format!("{} \u{2013} {}", time(&span.start), time(&span.end))
    }
}

/// The chart: a time axis with ticks and a "now" line; per wave a dashed planned bar
/// above its actual phases, and its tenants' marks below.
fn chart(record: &RolloutRecord, timeline: &Timeline) -> Markup {
    let height = TOP + ROW * timeline.waves.len() as f64 + 8.0;
    let summary = chart_summary(record, timeline);
    let ticks: Vec<DateTime<Utc>> = (0..=4)
        .map(|i| timeline.start + (timeline.end - timeline.start) * i / 4)
        .collect();
    html! {
        svg.timeline #timeline-chart role="img" aria-labelledby="timeline-title timeline-desc"
            viewBox={ "0 0 " (WIDTH) " " (height) } xmlns="http://www.w3.org/2000/svg" {
            title #timeline-title { "Timeline of rollout " (record.id.as_str()) }
            desc #timeline-desc { (summary) }
            defs {
                pattern #p-halted width="8" height="8" patternUnits="userSpaceOnUse" patternTransform="rotate(45)" {
                    rect width="8" height="8" fill="#b00020" {}
                    rect width="3" height="8" fill="#fff" {}
                }
                pattern #p-approval width="6" height="6" patternUnits="userSpaceOnUse" {
                    rect width="6" height="6" fill="#f2d98c" {}
                    circle cx="3" cy="3" r="1.2" fill="#9a5b00" {}
                }
                pattern #p-window width="6" height="6" patternUnits="userSpaceOnUse" {
                    rect width="6" height="6" fill="#d9d9e6" {}
                    path d="M0 6L6 0" stroke="#555" {}
                }
            }
            @for (i, at) in ticks.iter().enumerate() {
                @let tx = x(timeline, *at);
                @let anchor = match i { 0 => "start", 4 => "end", _ => "middle" };
                line.tick x1=(tx) x2=(tx) y1=(TOP - 4.0) y2=(height) {}
                text x=(tx) y="12" text-anchor=(anchor) { (at.format("%m-%d %H:%M").to_string()) }
            }
            @if !timeline.not_started {
                @let nx = x(timeline, timeline.now);
                line.now x1=(nx) x2=(nx) y1=(TOP - 12.0) y2=(height) { title { "now: " (time(&timeline.now)) } }
                text x=(nx) y="24" text-anchor="middle" fill="#b00020" { "now" }
            }
            @for (row, wave) in timeline.waves.iter().enumerate() {
                (wave_row(record, timeline, wave, TOP + ROW * row as f64))
            }
        }
    }
}

/// The chart's text alternative in one sentence per wave.
fn chart_summary(record: &RolloutRecord, timeline: &Timeline) -> String {
    let mut text = format!(
        "Rollout {} to {}, {}, {} waves.",
        record.id,
        record.target(),
        record.phase,
        timeline.waves.len()
    );
    for w in &timeline.waves {
        let phases: Vec<&str> = w.actual.iter().map(|s| s.kind.as_str()).collect();
        text.push_str(&format!(
            " Wave {}: {}; {} of {} allowed failures used{}.",
            w.index,
            status_text(w.status),
            w.failed,
            w.allowed_failures,
            if phases.is_empty() {
                String::new()
            } else {
                format!("; phases {}", phases.join(", "))
            }
        ));
    }
    text
}

fn wave_row(record: &RolloutRecord, timeline: &Timeline, wave: &WaveBars, y: f64) -> Markup {
    let regions = record
        .waves
        .get(wave.index)
        .map(|w| {
            w.regions
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    html! {
        g.wave data-wave=(wave.index) data-status=(status_text(wave.status)) {
            text x="4" y=(y + 16.0) font-weight="600" { "wave " (wave.index) }
            text x="4" y=(y + 30.0) { (short(&regions, 18)) }
            text x="4" y=(y + 44.0) { (wave.failed) "/" (wave.allowed_failures) " failed" }
            @if let Some(planned) = &wave.planned {
                @let (x0, x1) = (x(timeline, planned.start), x(timeline, planned.end));
                rect.planned x=(x0) y=(y + 4.0) width=((x1 - x0).max(2.0)) height="8" {
                    title { "wave " (wave.index) " planned: " (span_text(planned)) }
                }
            }
            @for segment in &wave.actual {
                (segment_bar(timeline, wave.index, segment, y + 16.0))
            }
            @for (mark, mx) in spread(timeline, &wave.marks) {
                (mark_shape(wave.index, mark, mx, y + 48.0))
            }
            @if wave.marks_not_shown > 0 {
                text x=(LABEL + AXIS) y=(y + 60.0) text-anchor="end" { "+" (wave.marks_not_shown) " more" }
            }
        }
    }
}

fn segment_bar(timeline: &Timeline, wave: usize, segment: &Segment, y: f64) -> Markup {
    let (x0, x1) = (x(timeline, segment.span.start), x(timeline, segment.span.end));
    let width = (x1 - x0).max(3.0);
    let name = segment.kind.name();
    html! {
        rect class={ "seg seg-" (name) } data-segment=(name) x=(x0) y=(y) width=(width) height="16" {
            title { "wave " (wave) " " (segment.kind.as_str()) ": " (span_text(&segment.span)) }
        }
        @if width > 56.0 {
            text.seg-label x=(x0 + 4.0) y=(y + 12.0) { (short(segment.kind.as_str(), (width / 6.5) as usize)) }
        }
    }
}

/// Each mark's x, moved right just enough that marks do not hide one another.
fn spread<'a>(timeline: &Timeline, marks: &'a [Mark]) -> Vec<(&'a Mark, f64)> {
    let mut last = f64::MIN;
    marks
        .iter()
        .map(|m| {
            let mx = x(timeline, m.at).max(last + 13.0);
            last = mx;
            (m, mx)
        })
        .collect()
}

/// A tenant's mark: its shape and letter both say its outcome, its title says all.
fn mark_shape(wave: usize, mark: &Mark, cx: f64, cy: f64) -> Markup {
    let class = format!("mark mark-{}", mark.outcome.name());
    let title = format!(
        "{} ({}) in wave {wave}: {}{}",
        mark.tenant,
        mark.region,
        mark.outcome.as_str(),
        mark.why.as_deref().map(|w| format!(": {w}")).unwrap_or_default()
    );
    let shape = match mark.outcome {
        MarkOutcome::Succeeded | MarkOutcome::InFlight => html! {
            circle class=(class) cx=(cx) cy=(cy) r="6" {}
        },
        MarkOutcome::Failed | MarkOutcome::Pending => html! {
            rect class=(class) x=(cx - 6.0) y=(cy - 6.0) width="12" height="12" {}
        },
        MarkOutcome::RolledBack | MarkOutcome::Skipped => html! {
            polygon class=(class)
                points={ (cx) "," (cy - 7.0) " " (cx + 7.0) "," (cy) " " (cx) "," (cy + 7.0) " " (cx - 7.0) "," (cy) } {}
        },
    };
    html! {
        g data-tenant=(mark.tenant) data-outcome=(mark.outcome.name()) {
            title { (title) }
            (shape)
            text.letter x=(cx) y=(cy + 3.0) { (mark.outcome.letter()) }
        }
    }
}

fn short(text: &str, max: usize) -> String {
    if text.chars().count() <= max.max(2) {
        text.to_owned()
    } else {
        let kept: String = text.chars().take(max.max(2) - 1).collect();
        format!("{kept}\u{2026}")
    }
}

fn legend() -> Markup {
    html! {
        ul.legend #timeline-legend aria-label="what the chart's bars and marks mean" {
            li { svg.key viewBox="0 0 30 12" role="presentation" { rect.planned x="1" y="2" width="28" height="8" {} } " planned (estimate)" }
            @for kind in SegmentKind::ALL {
                li {
                    svg.key viewBox="0 0 30 12" role="presentation" {
                        rect class={ "seg-" (kind.name()) } width="30" height="12" {}
                    }
                    " " (kind.as_str())
                }
            }
            @for outcome in [MarkOutcome::Succeeded, MarkOutcome::Failed, MarkOutcome::RolledBack,
                             MarkOutcome::InFlight, MarkOutcome::Skipped, MarkOutcome::Pending] {
                li { b { (outcome.letter()) } " " (outcome.as_str()) }
            }
        }
    }
}

pub fn status_text(status: WaveStatus) -> &'static str {
    match status {
        WaveStatus::Waiting => "waiting",
        WaveStatus::AwaitingApproval => "awaiting approval",
        WaveStatus::Deploying => "deploying",
        WaveStatus::Baking => "baking",
        WaveStatus::Succeeded => "succeeded",
        WaveStatus::Breached => "breached",
    }
}

/// The chart as a table: each wave's plan, phases, outcomes and failure budget.
fn waves_table(record: &RolloutRecord, timeline: &Timeline) -> Markup {
    let used: usize = timeline.waves.iter().map(|w| w.failed).sum();
    html! {
        section #waves {
            h2 { "Waves" }
            p #budget {
                "Failure budget: " b { (used) } " tenants failed in all; each wave's own budget below ("
                (record.spec.strategy.failure_budget.to_string()) " per wave)."
            }
            table #waves-table {
                caption.muted { "The timeline above, as a table." }
                thead { tr {
                    th { "wave" } th { "regions" } th { "status" } th { "planned" }
                    th { "actual phases" } th { "tenants" } th { "failed / allowed" }
                } }
                tbody {
                    @for (w, bars) in record.waves.iter().zip(&timeline.waves) {
                        tr data-wave=(w.index) {
                            td { (w.index) " (" (w.target.to_string()) ")" }
                            td { (w.regions.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")) }
                            td data-status=(status_text(w.status)) { (status_text(w.status)) (approved(w)) }
                            td { (or_dash(bars.planned.as_ref().map(span_text).as_deref())) }
                            td {
                                @if bars.actual.is_empty() { "\u{2013}" }
                                @for s in &bars.actual {
                                    div data-segment=(s.kind.name()) { b { (s.kind.as_str()) } " " (span_text(&s.span)) }
                                }
                            }
                            td.n { (w.size) }
                            td.n.bad[bars.failed > bars.allowed_failures] data-budget=(w.index) {
                                (bars.failed) " / " (bars.allowed_failures)
                            }
                        }
                    }
                }
            }
        }
    }
}

fn approved(w: &WaveRecord) -> Markup {
    html! {
        @if let Some(by) = &w.approved_by { " " span.muted { "approved by " (by) } }
    }
}

/// Each wave's tenants as drawn, with what became of them; the rest are counted and
/// linked to the lists that have them all.
fn tenants(record: &RolloutRecord, timeline: &Timeline) -> Markup {
    html! {
        section #tenants {
            h2 { "Tenants" }
            p.muted { "At most " (MARKS_SHOWN) " per wave, those in trouble first." }
            @for (w, bars) in record.waves.iter().zip(&timeline.waves) {
                h3 { "Wave " (w.index) }
                @if bars.marks.is_empty() { p { "No tenants." } } @else {
                    table data-wave-tenants=(w.index) {
                        thead { tr { th { "tenant" } th { "region" } th { "outcome" } th { "started / earliest" } th { "why" } } }
                        tbody {
                            @for m in &bars.marks {
                                tr data-member=(m.tenant) data-outcome=(m.outcome.name()) {
                                    td { a href={ "/tenants/" (m.tenant) } { (m.tenant) } }
                                    td { (m.region) }
                                    td { b { (m.outcome.letter()) } " " (m.outcome.as_str()) }
                                    td { (time(&m.at)) }
                                    td.error { (or_dash(m.why.as_deref())) }
                                }
                            }
                        }
                    }
                }
                @if bars.marks_not_shown > 0 {
                    p.warn data-not-shown=(w.index) {
                        (bars.marks_not_shown) " more not shown: all of them at "
                        code { "GET /v1/rollouts/" (record.id.as_str()) }
                        @for region in &w.regions {
                            "; the tenants of " a href={ "/?region=" (region.as_str()) } { (region.as_str()) }
                        }
                    }
                }
            }
        }
    }
}

/// What the bakes found: per wave, the checks passed and each tenant's latest check
/// with the alarms it read.
fn bake_evidence(record: &RolloutRecord) -> Markup {
    let baked: Vec<&WaveRecord> = record.waves.iter().filter(|w| w.bake.is_some()).collect();
    html! {
        section #bake {
            h2 { "Bake evidence" }
            @if baked.is_empty() { p { "No wave has baked yet." } }
            @for w in baked {
                @if let Some(bake) = &w.bake {
                    h3 { "Wave " (w.index) }
                    p data-bake=(w.index) {
                        "Baking since " (time(&bake.since)) ": " (bake.checks_passed) " check rounds passed"
                        @if w.status == WaveStatus::Baking { "; next check " (time(&bake.next_check_at)) }
                        "."
                    }
                    @if !bake.checks.is_empty() {
                        table {
                            thead { tr { th { "tenant" } th { "checked" } th { "health" } th { "alarms" } } }
                            tbody {
                                @for c in &bake.checks {
                                    tr data-check=(c.tenant.as_str()) {
                                        td { (c.tenant.as_str()) }
                                        td { (time(&c.at)) }
                                        td {
                                            @if c.healthy { span.ok { "\u{2713} healthy" } }
                                            @else { span.bad { "\u{2717} unhealthy" } ": " (or_dash(c.reason.as_deref())) }
                                        }
                                        td {
                                            @for a in &c.alarms { (a.name) " " b { (a.state) } "; " }
                                            @if c.alarms_not_listed > 0 { (c.alarms_not_listed) " more" }
                                            @if c.alarms.is_empty() && c.alarms_not_listed == 0 { "\u{2013}" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn events(record: &RolloutRecord) -> Markup {
    html! {
        section #events {
            h2 { "What happened" }
            table {
                thead { tr { th { "at" } th { "who" } th { "what" } } }
                tbody {
                    @for e in record.events.iter().rev().take(EVENTS_SHOWN) {
                        tr { td { (time(&e.at)) } td.actor { (e.actor) } td { (e.what) } }
                    }
                }
            }
        }
    }
}

/// The actions the rollout's state allows, as its commands would accept them.
pub fn allowed_actions(record: &RolloutRecord, members: &[RolloutMember]) -> Vec<RolloutAction> {
    if record.phase.is_finished() {
        return Vec::new();
    }
    let mut actions = Vec::new();
    if record
        .wave()
        .is_some_and(|w| w.status == WaveStatus::AwaitingApproval)
    {
        actions.push(RolloutAction::Approve);
    }
    match record.phase {
        Phase::Running => actions.push(RolloutAction::Pause),
        Phase::Paused | Phase::Halted => actions.push(RolloutAction::Resume),
        _ => {}
    }
    let current = record.current_wave;
    let failed_now = members
        .iter()
        .any(|m| m.wave == current && (matches!(m.outcome, Outcome::Failed { .. }) || m.rollback.is_some()));
    if record.phase == Phase::Halted || failed_now {
        actions.push(RolloutAction::Retry);
    }
    actions.push(RolloutAction::Abort);
    actions
}

/// Each action behind a confirmation: a disclosure that opens on its form, whose
/// button says exactly what it does. No script: the form posts, the page comes back.
fn actions(record: &RolloutRecord, members: &[RolloutMember], forms: &RolloutForms) -> Markup {
    let id = record.id.as_str();
    let wave = record.current_wave;
    html! {
        section #actions data-actions=(id) {
            h2 { "Actions" }
            @for action in allowed_actions(record, members) {
                @let name = action.as_str();
                details.confirm data-action=(name) {
                    summary { (action_label(action, wave)) "\u{2026}" }
                    form.action method="post" action={ "/rollouts/" (id) "/" (name) } {
                        input type="hidden" name="csrf" value=(forms.token(action, id));
                        input type="hidden" name="back" value="rollout";
                        p { (action_effect(action)) }
                        @if action == RolloutAction::Abort {
                            label { input type="checkbox" name="confirm" value="yes" required; " I am sure" }
                            " "
                        }
                        button type="submit" data-confirm=(name) { "Confirm: " (action_label(action, wave)) }
                    }
                }
            }
        }
    }
}

fn action_label(action: RolloutAction, wave: usize) -> String {
    match action {
        RolloutAction::Approve => format!("Approve wave {wave}"),
        RolloutAction::Pause => "Pause".into(),
        RolloutAction::Resume => "Resume".into(),
        RolloutAction::Retry => format!("Retry wave {wave}'s failed tenants"),
        RolloutAction::Abort => "Abort".into(),
    }
}

fn action_effect(action: RolloutAction) -> &'static str {
    match action {
        RolloutAction::Approve => "The waiting wave starts on the controller's next tick.",
        RolloutAction::Pause => {
            "No further tenant starts until the rollout is resumed; tenants in flight finish."
        }
        RolloutAction::Resume => "The rollout goes on; after a halt, the failures so far are accepted.",
        RolloutAction::Retry => "The current wave's failed and rolled-back tenants start again.",
        RolloutAction::Abort => "The rollout ends for good: no further tenant starts.",
    }
}

#[cfg(test)]
mod tests;
