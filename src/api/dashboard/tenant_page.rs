//! `/tenants/{id}`: one tenant and its newest history, as HTML.

use maud::{html, Markup};

use super::html::{or_dash, page, time, Who};
use crate::record::{HistoryEvent, TenantRecord};

/// History events shown, newest first; the API pages through all of them.
pub const HISTORY_SHOWN: u64 = 100;

/// The `after_seq` that makes a history read return the newest [`HISTORY_SHOWN`].
pub fn history_start(record: &TenantRecord) -> u64 {
    record.event_seq.saturating_sub(HISTORY_SHOWN)
}

pub fn render(record: &TenantRecord, history: &[HistoryEvent], viewer: &Who) -> Markup {
    let id = record.id().to_string();
    let s = &record.spec;
    let hostnames: Vec<String> = s.hostnames.iter().map(|h| h.to_string()).collect();
    let release = |r: Option<&crate::domain::ReleaseVersion>| r.map(|r| r.to_string());
    let lease = record
        .lease
        .as_ref()
        .map(|l| format!("{} (fence {}) until {}", l.owner, l.fence, time(&l.expires_at)));
    let rollout = record.rollout.as_ref().map(|r| r.to_string());
    let rows: Vec<(&str, Markup)> = vec![
        ("id", html! { span #tenant-id { (id) } }),
        ("region", html! { (s.region.as_str()) }),
        ("environment", html! { (s.environment.as_str()) }),
        ("group", html! { (s.group.as_str()) }),
        ("tier", html! { (s.tier) }),
        ("hostnames", html! { (hostnames.join(", ")) }),
        ("state", html! { b #tenant-state { (record.state.label()) } }),
        (
            "release",
            or_dash(release(record.state.current_release()).as_deref()),
        ),
        (
            "moving to",
            or_dash(release(record.state.target_release()).as_deref()),
        ),
        (
            "pinned to",
            or_dash(release(s.pinned_release.as_ref()).as_deref()),
        ),
        (
            "last error",
            html! { span.error.bad #last-error { (or_dash(record.last_error.as_deref())) } },
        ),
        ("failed attempts", html! { (record.attempt) }),
        ("lease", or_dash(lease.as_deref())),
        ("held by rollout", or_dash(rollout.as_deref())),
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
        section #history {
            h2 { "History" }
            p.muted {
                (record.event_seq) " events"
                @if record.event_seq > HISTORY_SHOWN {
                    "; the newest " (HISTORY_SHOWN) " are shown, all of them at "
                    code { "GET /v1/tenants/" (id) "/history" }
                }
            }
            table {
                thead { tr {
                    th { "#" } th { "at" } th { "from \u{2192} to" } th { "cause" } th { "actor" }
                    th { "step" } th { "output / error" } th { "outage" }
                } }
                tbody {
                    @for e in history.iter().rev() {
                        tr data-seq=(e.seq) {
                            td.n { (e.seq) }
                            td { (time(&e.at)) }
                            td { (e.from) " \u{2192} " (e.to) }
                            td { (e.cause) }
                            td { (e.actor) }
                            td { (or_dash(e.step.map(|s| s.to_string()).as_deref())) }
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
        let html = render(
            &record(),
            &history,
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
        assert!(html.find("data-seq=\"2\"").unwrap() < html.find("data-seq=\"1\"").unwrap());
        assert!(html.contains("<td class=\"n\">45 s (failed probe)</td></tr>"));
    }

    #[test]
    fn only_the_newest_events_are_read() {
        let mut r = record();
        r.event_seq = 250;
        assert_eq!(history_start(&r), 150);
        r.event_seq = 7;
        assert_eq!(history_start(&r), 0);
    }
}
