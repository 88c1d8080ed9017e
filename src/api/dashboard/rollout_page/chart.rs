//! The rollout page's timeline chart, drawn as SVG on the server: a time axis with
//! ticks and a "now" line, per wave its planned bar above its actual phases and its
//! tenants as marks, a text alternative and a legend naming every colour and shape.

use chrono::{DateTime, Utc};
use maud::{html, Markup};

use super::{span_text, status_text};
use crate::api::dashboard::html::time;
use crate::api::dashboard::rollout_timeline::{Mark, MarkOutcome, Segment, SegmentKind, Timeline, WaveBars};
use crate::record::RolloutRecord;

/// The chart's size in SVG units: a label column, then the time axis.
const WIDTH: f64 = 960.0;
const LABEL: f64 = 120.0;
const AXIS: f64 = WIDTH - LABEL - 16.0;
const TOP: f64 = 30.0;
const ROW: f64 = 62.0;

fn x(timeline: &Timeline, at: DateTime<Utc>) -> f64 {
    LABEL + timeline.x(at) * AXIS
}

/// The chart: a time axis with ticks and a "now" line; per wave a dashed planned bar
/// above its actual phases, and its tenants' marks below.
pub(super) fn chart(record: &RolloutRecord, timeline: &Timeline) -> Markup {
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

pub(super) fn legend() -> Markup {
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
