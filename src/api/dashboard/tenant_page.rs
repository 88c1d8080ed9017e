//! `/tenants/{id}`: one tenant, its newest history as a step timeline (see
//! [`super::tenant_timeline`]) and the same events as a table, a page of
//! [`HISTORY_SHOWN`] at a time; `?before=<seq>` pages to older events.

use chrono::Utc;
use maud::{html, Markup};

use super::fleet_view::percent_encode;
use super::html::{or_dash, page, time, Who};
use super::tenant_timeline::{self as timeline, Timeline};
use crate::domain::ReleaseVersion;
use crate::record::{HistoryEvent, TenantRecord};

/// History events one page shows, newest first; older ones are a link away, and the
/// API pages through all of them.
pub const HISTORY_SHOWN: u64 = 40;

/// Which events a page shows: the newest [`HISTORY_SHOWN`] before a cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryWindow {
    /// The oldest and newest sequence numbers shown (`first > last`: none).
    pub first: u64,
    pub last: u64,
}

impl HistoryWindow {
    /// The newest events before event `before` (the newest of all when `None`).
    pub fn of(record: &TenantRecord, before: Option<u64>) -> HistoryWindow {
        let last = before.map_or(record.event_seq, |b| b.saturating_sub(1).min(record.event_seq));
        let first = last.saturating_sub(HISTORY_SHOWN - 1).max(1);
        HistoryWindow { first, last }
    }

    /// The history read this window needs: the `after_seq` and the limit. It takes the
    /// event before the first shown too, when there is one: the moment the first step
    /// shown began.
    pub fn read(&self) -> (u64, u32) {
        let after = self.first.saturating_sub(2);
        (after, self.last.saturating_sub(after) as u32)
    }
}

/// The tenant's stack by name, linked to it in the CloudFormation console.
fn stack_link(record: &TenantRecord) -> Markup {
    let Some(arn) = record.facts.stack_id.as_deref() else {
        return or_dash(None);
    };
    // arn:aws:cloudformation:<region>:<account>:stack/<name>/<uuid>
    let name = arn.split('/').nth(1).unwrap_or(arn);
    let region = record.spec.region.as_str();
    let href = format!(
        "https://{region}.console.aws.amazon.com/cloudformation/home?region={region}#/stacks/stackinfo?stackId={}",
        percent_encode(arn)
    );
    html! { a #stack-link href=(href) { (name) } }
}

/// A release, linked to the overview of the tenants on it.
fn release_link(release: Option<&ReleaseVersion>) -> Markup {
    match release {
        Some(r) => {
            html! { a.release href=(format!("/?release={}", percent_encode(&r.to_string()))) { (r) } }
        }
        None => or_dash(None),
    }
}

/// The tenant's snapshots by name, each linked to it in the RDS console.
fn snapshot_links(record: &TenantRecord) -> Markup {
    let region = record.spec.region.as_str();
    html! {
        @if record.facts.snapshots.is_empty() { (or_dash(None)) }
        @for (i, name) in record.facts.snapshots.iter().enumerate() {
            @if i > 0 { ", " }
            a.snapshot href=(format!(
                "https://{region}.console.aws.amazon.com/rds/home?region={region}#db-cluster-snapshot:id={}",
                percent_encode(name)
            )) { (name) }
        }
    }
}

/// How long each step of `history` took, from the event before it (the moment the
/// tenant entered the step) to its outcome; `None` for a command.
fn step_durations(history: &[HistoryEvent], anchor: Option<&HistoryEvent>) -> Vec<Option<String>> {
    let mut previous = anchor.map(|e| e.at);
    history
        .iter()
        .map(|e| {
            let entered = previous.replace(e.at);
            e.step.map(|_| {
                let start = entered.or(e.step_started_at).unwrap_or(e.at).min(e.at);
                timeline::duration(e.at - start)
            })
        })
        .collect()
}

/// The page. `events` are oldest first and may begin with the event before `window`;
/// `actions` is the tenant's action forms (empty for a viewer who may not act).
pub fn render(
    record: &TenantRecord,
    events: &[HistoryEvent],
    window: HistoryWindow,
    actions: Markup,
    viewer: &Who,
) -> Markup {
    let id = record.id().to_string();
    let s = &record.spec;
    let hostnames: Vec<String> = s.hostnames.iter().map(|h| h.to_string()).collect();
    let lease = record
        .lease
        .as_ref()
        .map(|l| format!("{} (fence {}) until {}", l.owner, l.fence, time(&l.expires_at)));
    let due = record.work_due_at().map(|at| time(&at));
    let rollout = record.rollout.as_ref().map(|r| r.to_string());
    let (anchor, history) = match events.split_first() {
        Some((first, rest)) if first.seq < window.first => (Some(first), rest),
        _ => (None, events),
    };
    let chart = Timeline::of(history, anchor, record, Utc::now());
    let took = step_durations(history, anchor);
    let rows: Vec<(&str, Markup)> = vec![
        ("id", html! { span #tenant-id { (id) } }),
        ("region", html! { (s.region.as_str()) }),
        ("environment", html! { (s.environment.as_str()) }),
        ("group", html! { (s.group.as_str()) }),
        ("tier", html! { (s.tier) }),
        ("hostnames", html! { (hostnames.join(", ")) }),
        ("state", html! { b #tenant-state { (record.state.label()) } }),
        ("release", release_link(record.state.current_release())),
        ("moving to", release_link(record.state.target_release())),
        ("pinned to", release_link(s.pinned_release.as_ref())),
        (
            "last error",
            html! { span.error.bad #last-error { (or_dash(record.last_error.as_deref())) } },
        ),
        ("failed attempts", html! { (record.attempt) }),
        ("lease", html! { span #lease { (or_dash(lease.as_deref())) } }),
        ("next due", html! { span #next-due { (or_dash(due.as_deref())) } }),
        ("held by rollout", or_dash(rollout.as_deref())),
        ("stack", stack_link(record)),
        ("snapshots", snapshot_links(record)),
        ("image", or_dash(record.facts.image.as_deref())),
        ("version", html! { (record.version) }),
        ("created", html! { (time(&record.created_at)) }),
        ("updated", html! { (time(&record.updated_at)) }),
    ];
    let body = html! {
        section #tenant {
            h2 { "Tenant" }
            table {
                @for (name, value) in &rows {
                    tr { th { (name) } td { (value) } }
                }
            }
        }
        (actions)
        section #history {
            h2 { "History" }
            p.muted #history-window {
                (record.event_seq) " events"
                @if window.first <= window.last {
                    "; events " (window.first) " to " (window.last) " are shown"
                }
                "; all of them at " code { "GET /v1/tenants/" (id) "/history" }
            }
            nav.pages {
                @if window.last < record.event_seq {
                    a #newer-events href=(format!("/tenants/{id}")) { "Newest events" }
                    " "
                }
                @if window.first > 1 {
                    a #older-events href=(format!("/tenants/{id}?before={}", window.first)) { "Older events" }
                }
            }
            @if let Some(chart) = &chart {
                figure {
                    (timeline::svg(chart, &id))
                    figcaption.muted {
                        "Each step from entering it to its outcome, with its duration and attempts; "
                        "\u{2717} failed steps are hatched, \u{21a9} rollback steps dashed, "
                        "\u{25c6} commands, \u{26a0} outages hatched bands. The table below lists the same events."
                    }
                }
            }
            table #history-table {
                thead { tr {
                    th { "#" } th { "at" } th { "from \u{2192} to" } th { "cause" } th { "actor" }
                    th { "step" } th { "took" } th { "attempts" } th { "output / error" } th { "outage" }
                } }
                tbody {
                    @for (e, took) in history.iter().zip(&took).rev() {
                        tr data-seq=(e.seq) {
                            td.n { (e.seq) }
                            td { (time(&e.at)) }
                            td { (e.from) " \u{2192} " (e.to) }
                            td { (e.cause) }
                            td { (e.actor) }
                            td {
                                @match e.step {
                                    Some(step) => {
                                        (step)
                                        @if e.error.is_some() { " " span.bad { "\u{2717} failed" } }
                                        @if e.from.starts_with("RollingBack") { " " span.warn { "\u{21a9} rollback" } }
                                    },
                                    None => "\u{2013}",
                                }
                            }
                            td.n { (or_dash(took.as_deref())) }
                            td.n { (or_dash(e.attempts.map(|n| n.to_string()).as_deref())) }
                            td {
                                @match (&e.output, &e.error) {
                                    (_, Some(error)) => span.error.bad { (error) },
                                    (Some(output), None) => (output),
                                    (None, None) => "\u{2013}",
                                }
                            }
                            td.n { (or_dash(outage(e).as_deref())) }
                        }
                    }
                }
            }
        }
    };
    page(&format!("Tenant {id}"), Some(viewer), None, body)
}

/// `45 s (failed probe)`, `0 s`, or nothing for a transition that measured none.
fn outage(e: &HistoryEvent) -> Option<String> {
    let seconds = e.outage_seconds?;
    Some(match e.outage_cause {
        Some(cause) => format!("{seconds} s ({})", cause.as_str()),
        None => format!("{seconds} s"),
    })
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::domain::{ReleaseVersion, TenantSpec};
    use crate::machine::TenantState;

    fn record() -> TenantRecord {
        let spec = TenantSpec::example("acme", "eu-west-1");
        let state = TenantState::Active {
            release: ReleaseVersion::parse("1.0.0").unwrap(),
            failed_upgrade: None,
        };
        let mut r = TenantRecord::new(spec, state, Utc::now());
        r.last_error = Some("stack said <b>\"no\"</b>".into());
        r.event_seq = 2;
        r
    }

    fn event(seq: u64, cause: &str, error: Option<&str>) -> HistoryEvent {
        HistoryEvent {
            seq,
            at: Utc::now(),
            from: "New".into(),
            to: "Active".into(),
            cause: cause.into(),
            actor: "api:ops".into(),
            step: None,
            step_started_at: None,
            fence: None,
            output: None,
            error: error.map(Into::into),
            revision: None,
            outage_seconds: None,
            outage_cause: None,
            attempts: None,
        }
    }

    #[test]
    fn the_tenant_and_its_history_are_shown_newest_first_and_escaped() {
        let upgraded = HistoryEvent {
            outage_seconds: Some(45),
            outage_cause: Some(crate::record::OutageCause::FailedProbe),
            ..event(3, "StepSucceeded", None)
        };
        let history = vec![
            event(1, "Provision 1.0.0", None),
            event(2, "StepFailed", Some("<img src=x onerror=alert(1)>")),
            upgraded,
        ];
        let r = record();
        let html = render(
            &r,
            &history,
            HistoryWindow::of(&r, None),
            html! {},
            &Who {
                name: "viewer",
                logout_token: None,
            },
        )
        .into_string();
        assert!(html.contains("<span id=\"tenant-id\">acme</span>"));
        assert!(html.contains("stack said &lt;b&gt;&quot;no&quot;&lt;/b&gt;"));
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(!html.contains("<img"));
        let table = &html[html.find("id=\"history-table\"").unwrap()..];
        assert!(table.find("data-seq=\"2\"").unwrap() < table.find("data-seq=\"1\"").unwrap());
        assert!(html.contains("<td class=\"n\">45 s (failed probe)</td></tr>"));
    }

    #[test]
    fn a_page_reads_the_newest_events_before_its_cursor_and_one_more() {
        let mut r = record();
        r.event_seq = 250;
        let newest = HistoryWindow::of(&r, None);
        assert_eq!((newest.first, newest.last), (211, 250));
        assert_eq!(newest.read(), (209, 41), "events 210 to 250");
        let older = HistoryWindow::of(&r, Some(newest.first));
        assert_eq!((older.first, older.last), (171, 210));
        assert_eq!(HistoryWindow::of(&r, Some(10_000)), newest);
        let start = HistoryWindow::of(&r, Some(5));
        assert_eq!((start.first, start.last), (1, 4));
        assert_eq!(start.read(), (0, 4), "nothing before the first event");
        r.event_seq = 7;
        assert_eq!(HistoryWindow::of(&r, None).read(), (0, 7));
    }

    #[test]
    fn the_page_links_older_events_the_stack_release_and_snapshots_by_name() {
        let mut r = record();
        r.event_seq = 120;
        r.facts.stack_id =
            Some("arn:aws:cloudformation:eu-west-1:123456789012:stack/tenant-prod-acme/0f1e".into());
        r.facts.snapshots = vec!["acme-pre-1-1-0".into(), "acme-pre-1-2-0".into()];
        let window = HistoryWindow::of(&r, Some(100));
        let anchor = event(59, "StepSucceeded", None);
        let shown = event(60, "Upgrade to 1.1.0", None);
        let who = Who {
            name: "viewer",
            logout_token: None,
        };
        let html = render(&r, &[anchor, shown], window, html! {}, &who).into_string();
        assert!(html.contains(">tenant-prod-acme</a>"), "{html}");
        assert!(html.contains("stackId=arn%3Aaws%3Acloudformation%3Aeu-west-1"));
        assert!(html.contains("db-cluster-snapshot:id=acme-pre-1-2-0\">acme-pre-1-2-0</a>"));
        assert!(html.contains("<a class=\"release\" href=\"/?release=1.0.0\">1.0.0</a>"));
        assert!(html.contains("href=\"/tenants/acme?before=60\""));
        assert!(html.contains("id=\"newer-events\""));
        assert!(html.contains("data-seq=\"60\""));
        assert!(
            !html.contains("data-seq=\"59\""),
            "the anchor only starts the first step"
        );
    }
}
