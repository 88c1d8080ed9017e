//! `/rollouts/{id}`: one rollout as a timeline. A server-drawn SVG chart (each wave's
//! planned bar over its actual phases, its tenants as marks with their outcome),
//! then the same facts as tables (waves, failure budget, tenants, bake evidence, what
//! was done and by whom), then the actions the viewer may take, each behind a
//! confirmation. A pure function of the stored rollout, so tests check it without a
//! store; the geometry is [`super::rollout_timeline`], the drawing [`chart`].

use maud::{html, Markup};

use super::actions::{RolloutAction, RolloutForms};
use super::html::{or_dash, page, time, Who};
use super::rollout_timeline::{Span, Timeline, MARKS_SHOWN};
use crate::record::{Outcome, Phase, RolloutMember, RolloutRecord, WaveRecord, WaveStatus};

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
            (chart::chart(record, timeline))
            (chart::legend())
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

fn span_text(span: &Span) -> String {
    if span.open {
        format!("{} \u{2013} now", time(&span.start))
    } else {
        format!("{} \u{2013} {}", time(&span.start), time(&span.end))
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
                        (bars.marks_not_shown) " more not shown: all of them, a page at a time, at "
                        code { "GET /v1/rollouts/" (record.id.as_str()) "/members?wave=" (w.index) }
                        " or with " code { "tenantctl rollout members " (record.id.as_str()) " --wave " (w.index) }
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
    let own: Vec<&RolloutMember> = members.iter().filter(|m| m.wave == current).collect();
    let failed_seen =
        (own.iter()).any(|m| matches!(m.outcome, Outcome::Failed { .. }) || m.rollback.is_some());
    // Of a wave given as a sample, its tally counts the failures; a rollback happens
    // only after a breach, which an operator's resume records as accepted failures.
    let failed_counted = record.wave().is_some_and(|w| {
        own.len() < w.size && (w.tally.as_ref().is_some_and(|t| t.failed > 0) || w.accepted_failures > 0)
    });
    let failed_now = failed_seen || failed_counted;
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

mod chart;
#[cfg(test)]
mod tests;
