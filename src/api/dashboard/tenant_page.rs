//! `/tenants/{id}`: one tenant and its newest history, as HTML.

use std::fmt::Write;

use super::html::{or_dash, page, time, Escaped, Who};
use crate::record::{HistoryEvent, TenantRecord};

/// History events shown, newest first; the API pages through all of them.
pub const HISTORY_SHOWN: u64 = 100;

/// The `after_seq` that makes a history read return the newest [`HISTORY_SHOWN`].
pub fn history_start(record: &TenantRecord) -> u64 {
    record.event_seq.saturating_sub(HISTORY_SHOWN)
}

pub fn render(record: &TenantRecord, history: &[HistoryEvent], viewer: &Who) -> String {
    let id = record.id().to_string();
    let s = &record.spec;
    let mut body = String::new();
    let row = |body: &mut String, name: &str, value: String| {
        let _ = write!(body, "<tr><th>{name}</th><td>{value}</td></tr>");
    };
    body.push_str("<section id=\"tenant\"><h2>Tenant</h2><table>");
    row(
        &mut body,
        "id",
        format!("<span id=\"tenant-id\">{}</span>", Escaped(&id)),
    );
    row(&mut body, "region", Escaped(s.region.as_str()).to_string());
    row(
        &mut body,
        "environment",
        Escaped(s.environment.as_str()).to_string(),
    );
    row(&mut body, "group", Escaped(s.group.as_str()).to_string());
    row(&mut body, "tier", Escaped(&s.tier.to_string()).to_string());
    let hostnames: Vec<String> = s.hostnames.iter().map(|h| h.to_string()).collect();
    row(&mut body, "hostnames", Escaped(&hostnames.join(", ")).to_string());
    row(
        &mut body,
        "state",
        format!("<b id=\"tenant-state\">{}</b>", Escaped(&record.state.label())),
    );
    let release = |r: Option<&crate::domain::ReleaseVersion>| r.map(|r| r.to_string());
    row(
        &mut body,
        "release",
        or_dash(release(record.state.current_release()).as_deref()),
    );
    row(
        &mut body,
        "moving to",
        or_dash(release(record.state.target_release()).as_deref()),
    );
    row(
        &mut body,
        "pinned to",
        or_dash(release(s.pinned_release.as_ref()).as_deref()),
    );
    row(
        &mut body,
        "last error",
        format!(
            "<span id=\"last-error\" class=\"error bad\">{}</span>",
            or_dash(record.last_error.as_deref())
        ),
    );
    row(&mut body, "failed attempts", record.attempt.to_string());
    let lease = record
        .lease
        .as_ref()
        .map(|l| format!("{} (fence {}) until {}", l.owner, l.fence, time(&l.expires_at)));
    row(&mut body, "lease", or_dash(lease.as_deref()));
    let rollout = record.rollout.as_ref().map(|r| r.to_string());
    row(&mut body, "held by rollout", or_dash(rollout.as_deref()));
    row(&mut body, "image", or_dash(record.facts.image.as_deref()));
    row(&mut body, "version", record.version.to_string());
    row(&mut body, "created", time(&record.created_at));
    row(&mut body, "updated", time(&record.updated_at));
    body.push_str("</table></section>");

    let _ = write!(
        body,
        "<section id=\"history\"><h2>History</h2><p class=\"muted\">{} events{}</p>",
        record.event_seq,
        if record.event_seq > HISTORY_SHOWN {
            format!(
                "; the newest {HISTORY_SHOWN} are shown, all of them at <code>GET /v1/tenants/{}/history</code>",
                Escaped(&id)
            )
        } else {
            String::new()
        }
    );
    body.push_str(
        "<table><thead><tr><th>#</th><th>at</th><th>from &rarr; to</th><th>cause</th><th>actor</th>\
         <th>step</th><th>output / error</th><th>outage</th></tr></thead><tbody>",
    );
    for e in history.iter().rev() {
        let step = e.step.map(|s| s.to_string());
        let detail = match (&e.output, &e.error) {
            (_, Some(error)) => format!("<span class=\"error bad\">{}</span>", Escaped(error)),
            (Some(output), None) => Escaped(output).to_string(),
            (None, None) => "&ndash;".to_owned(),
        };
        let _ = write!(
            body,
            "<tr data-seq=\"{seq}\"><td class=\"n\">{seq}</td><td>{at}</td><td>{from} &rarr; {to}</td>\
             <td>{cause}</td><td>{actor}</td><td>{step}</td><td>{detail}</td><td class=\"n\">{outage}</td></tr>",
            seq = e.seq,
            at = time(&e.at),
            from = Escaped(&e.from),
            to = Escaped(&e.to),
            cause = Escaped(&e.cause),
            actor = Escaped(&e.actor),
            step = or_dash(step.as_deref()),
            outage = or_dash(outage(e).as_deref()),
        );
    }
    body.push_str("</tbody></table></section>");
    page(&format!("Tenant {id}"), Some(viewer), None, &body)
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
        );
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
