//! The overview page (`GET /`) as HTML: a pure function of [`Overview`], so tests can
//! check what it shows (and that it escapes) without a store.

use std::fmt::Write;

use super::actions::{RolloutAction, RolloutForms};
use super::html::{or_dash, page, time, Escaped, Who};
use super::overview::{Overview, RolloutProgress, TroubledTenant, TROUBLE_SHOWN};
use crate::domain::rollout::WaveKind;
use crate::domain::{ReleaseVersion, RolloutId};
use crate::machine::TenantState;
use crate::ports::{OutageBucket, OutageCounts};
use crate::record::{Phase, WaveStatus};

/// Seconds between the page's reloads of itself.
pub const REFRESH_SECONDS: u32 = 10;

/// The overview for `viewer`; with `forms` (a session of scope deploy) each rollout
/// gets the buttons its phase allows, and `done` says which action was just done.
pub fn render(
    overview: &Overview,
    viewer: &Who,
    forms: Option<&RolloutForms>,
    done: Option<&(RolloutAction, RolloutId)>,
) -> String {
    let mut body = String::new();
    if let Some((action, rollout)) = done {
        let _ = write!(
            body,
            "<p class=\"ok\" id=\"action-done\">Rollout {} {}.</p>",
            Escaped(rollout.as_str()),
            action.done()
        );
    }
    let _ = write!(
        body,
        "<p class=\"muted\">As of {}; this page reloads every {REFRESH_SECONDS} s.</p>",
        time(&overview.generated_at)
    );
    fleet(&mut body, overview);
    outages(&mut body, &overview.outages);
    releases(&mut body, overview);
    rollouts(&mut body, &overview.rollouts, forms);
    trouble(&mut body, overview);
    page("Fleet", Some(viewer), Some(REFRESH_SECONDS), &body)
}

fn fleet(out: &mut String, overview: &Overview) {
    let fleet = &overview.fleet;
    let _ = write!(
        out,
        "<section id=\"fleet\"><h2>Fleet: <span id=\"fleet-total\">{}</span> tenants</h2>\
         <p class=\"muted\" id=\"fleet-as-of\">Counts as of {}.</p>",
        fleet.total,
        time(&overview.fleet_as_of)
    );
    if fleet.total == 0 {
        out.push_str("<p>No tenants yet.</p></section>");
        return;
    }
    // Columns: the states that occur, in the machine's order.
    let states: Vec<&str> = TenantState::NAMES
        .into_iter()
        .filter(|s| fleet.by_region.values().any(|m| m.contains_key(*s)))
        .collect();
    out.push_str("<table><thead><tr><th>region</th>");
    for s in &states {
        let _ = write!(out, "<th>{}</th>", Escaped(s));
    }
    out.push_str("<th>total</th></tr></thead><tbody>");
    for (region, counts) in &fleet.by_region {
        let _ = write!(
            out,
            "<tr data-region=\"{r}\"><th>{r}</th>",
            r = Escaped(region.as_str())
        );
        for s in &states {
            let n = counts.get(*s).copied().unwrap_or(0);
            let class = match (*s, n) {
                (_, 0) => "n muted",
                ("Failed", _) | ("RollingBack", _) => "n bad",
                _ => "n",
            };
            let _ = write!(
                out,
                "<td class=\"{class}\" data-state=\"{}\">{n}</td>",
                Escaped(s)
            );
        }
        let _ = write!(out, "<td class=\"n\">{}</td></tr>", counts.values().sum::<u64>());
    }
    out.push_str("</tbody></table></section>");
}

fn outages(out: &mut String, outages: &OutageCounts) {
    out.push_str("<section id=\"outages\"><h2>Upgrade outages, yesterday and today (UTC)</h2>");
    let Some(mean) = outages.mean_seconds() else {
        out.push_str("<p>No upgrade or rollback completed.</p></section>");
        return;
    };
    let _ = write!(
        out,
        "<p>Mean <b id=\"outage-mean\">{mean:.1} s</b> over {} completed upgrades and \
         rollbacks ({} s in all).</p><table><thead><tr>",
        outages.measured, outages.seconds
    );
    for bucket in OutageBucket::ALL {
        let _ = write!(out, "<th>{}</th>", bucket_text(bucket));
    }
    out.push_str("</tr></thead><tbody><tr>");
    for bucket in OutageBucket::ALL {
        let _ = write!(
            out,
            "<td class=\"n\" data-bucket=\"{}\">{}</td>",
            bucket.name(),
            outages.buckets[bucket as usize]
        );
    }
    out.push_str("</tr></tbody></table></section>");
}

fn bucket_text(bucket: OutageBucket) -> &'static str {
    match bucket {
        OutageBucket::None => "none",
        OutageBucket::UpTo30 => "&le; 30 s",
        OutageBucket::UpTo60 => "&le; 60 s",
        OutageBucket::UpTo180 => "&le; 3 min",
        OutageBucket::UpTo600 => "&le; 10 min",
        OutageBucket::Over600 => "&gt; 10 min",
    }
}

fn releases(out: &mut String, overview: &Overview) {
    out.push_str("<section id=\"releases\"><h2>Releases in use</h2>");
    let mut rows: Vec<(&String, &u64)> = overview.fleet.by_release.iter().collect();
    // Newest release first; tenants on no release last.
    rows.sort_by_key(|(release, _)| std::cmp::Reverse(ReleaseVersion::parse(release).ok()));
    if rows.is_empty() {
        out.push_str("<p>None.</p></section>");
        return;
    }
    out.push_str("<table><thead><tr><th>release</th><th>tenants</th></tr></thead><tbody>");
    for (release, n) in rows {
        let _ = write!(
            out,
            "<tr data-release=\"{r}\"><td>{r}</td><td class=\"n\">{n}</td></tr>",
            r = Escaped(release)
        );
    }
    out.push_str("</tbody></table></section>");
}

fn phase_class(phase: Phase) -> &'static str {
    match phase {
        Phase::Halted => "bad",
        Phase::Paused | Phase::Preparing => "warn",
        Phase::Running | Phase::Completed | Phase::Aborted => "ok",
    }
}

fn status_text(status: WaveStatus) -> &'static str {
    match status {
        WaveStatus::Waiting => "waiting",
        WaveStatus::AwaitingApproval => "awaiting approval",
        WaveStatus::Deploying => "deploying",
        WaveStatus::Baking => "baking",
        WaveStatus::Succeeded => "succeeded",
        WaveStatus::Breached => "breached",
    }
}

fn kind_text(kind: WaveKind) -> &'static str {
    match kind {
        WaveKind::Canary => "canary",
        WaveKind::Percent | WaveKind::Count => "wave",
    }
}

fn rollouts(out: &mut String, rollouts: &[RolloutProgress], forms: Option<&RolloutForms>) {
    out.push_str("<section id=\"rollouts\"><h2>Rollouts in progress</h2>");
    if rollouts.is_empty() {
        out.push_str("<p>None.</p>");
    }
    for r in rollouts {
        let id = Escaped(&r.id);
        let _ = write!(
            out,
            "<section class=\"rollout\" data-rollout=\"{id}\"><h3>{id} &rarr; {release} \
             <span class=\"badge {class}\" data-phase=\"{phase}\">{phase}</span></h3>\
             <p class=\"muted\">started {at} by {by}; {progress}</p>",
            release = Escaped(&r.release),
            class = phase_class(r.phase),
            phase = r.phase,
            at = time(&r.created_at),
            by = Escaped(&r.created_by),
            progress = match r.waves.len() {
                n if r.current_wave >= n => format!("all {n} waves done"),
                n => format!("at wave {} of waves 0&ndash;{}", r.current_wave, n - 1),
            },
        );
        if let Some(reason) = &r.halt_reason {
            let settled = if r.settled {
                "rollback done; resume, retry or abort"
            } else {
                "rolling back"
            };
            let _ = write!(
                out,
                "<p class=\"bad halt\">Halted: <span class=\"error\">{}</span> ({settled})</p>",
                Escaped(reason)
            );
        }
        if let Some(wave) = r.awaiting_approval() {
            let _ = write!(
                out,
                "<p class=\"warn approval\">Wave {} is waiting for approval: \
                 <code>tenantctl rollout approve {id}</code></p>",
                wave.index
            );
        }
        out.push_str(
            "<table><thead><tr><th>wave</th><th>regions</th><th>status</th><th>succeeded</th>\
             <th>failed / budget</th><th>in flight</th><th>pending</th><th>skipped</th></tr></thead><tbody>",
        );
        for w in &r.waves {
            let c = &w.counts;
            let current = if w.index == r.current_wave {
                " class=\"current\""
            } else {
                ""
            };
            let approved = w
                .approved_by
                .as_deref()
                .map(|a| format!(" <span class=\"muted\">approved by {}</span>", Escaped(a)))
                .unwrap_or_default();
            let failed_class = if c.failed > w.allowed_failures {
                "n bad"
            } else {
                "n"
            };
            let _ = write!(
                out,
                "<tr{current} data-wave=\"{index}\"><td>{index} {kind} ({target})</td><td>{regions}</td>\
                 <td data-status=\"{status}\">{status}{approved}</td><td class=\"n\">{}</td>\
                 <td class=\"{failed_class}\">{} / {}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                 <td class=\"n\">{}</td></tr>",
                c.succeeded,
                c.failed,
                w.allowed_failures,
                c.in_flight,
                c.pending,
                c.skipped,
                index = w.index,
                kind = kind_text(w.kind),
                target = Escaped(&w.target),
                regions = Escaped(&w.regions.join(", ")),
                status = status_text(w.status),
            );
        }
        out.push_str("</tbody></table>");
        if let Some(event) = &r.last_event {
            let _ = write!(out, "<p class=\"muted\">last: {}</p>", Escaped(event));
        }
        if let Some(forms) = forms {
            action_forms(out, r, forms);
        }
        out.push_str("</section>");
    }
    out.push_str("</section>");
}

/// The actions the rollout's phase allows, as the same commands `tenantctl rollout`
/// runs would accept them: approve a waiting wave, pause a running rollout, resume a
/// paused or halted one, abort one not finished (behind a confirmation box).
fn allowed_actions(r: &RolloutProgress) -> Vec<RolloutAction> {
    if r.phase.is_finished() {
        return Vec::new();
    }
    let mut actions = Vec::new();
    if r.awaiting_approval().is_some() {
        actions.push(RolloutAction::Approve);
    }
    match r.phase {
        Phase::Running => actions.push(RolloutAction::Pause),
        Phase::Paused | Phase::Halted => actions.push(RolloutAction::Resume),
        _ => {}
    }
    actions.push(RolloutAction::Abort);
    actions
}

fn action_forms(out: &mut String, r: &RolloutProgress, forms: &RolloutForms) {
    let id = Escaped(&r.id);
    let _ = write!(out, "<p class=\"actions\" data-actions=\"{id}\">");
    for action in allowed_actions(r) {
        let name = action.as_str();
        let (label, confirm) = match action {
            RolloutAction::Approve => (
                r.awaiting_approval()
                    .map(|w| format!("Approve wave {}", w.index))
                    .unwrap_or_default(),
                "",
            ),
            RolloutAction::Pause => ("Pause".to_owned(), ""),
            RolloutAction::Resume => ("Resume".to_owned(), ""),
            RolloutAction::Abort => (
                "Abort".to_owned(),
                "<label><input type=\"checkbox\" name=\"confirm\" value=\"yes\" required> I am sure</label> ",
            ),
        };
        let _ = write!(
            out,
            "<form class=\"action\" method=\"post\" action=\"/rollouts/{id}/{name}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{token}\">{confirm}\
             <button type=\"submit\" data-action=\"{name}\">{label}</button></form>",
            token = Escaped(&forms.token(action, &r.id)),
        );
    }
    out.push_str("</p>");
}

fn trouble(out: &mut String, overview: &Overview) {
    out.push_str("<section id=\"trouble\"><h2>Tenants in trouble</h2>");
    if overview.trouble.is_empty() {
        out.push_str("<p class=\"ok\">None: no tenant is Failed, rolling back or retrying an error.</p>");
    } else {
        out.push_str(
            "<table><thead><tr><th>tenant</th><th>region</th><th>state</th><th>release</th>\
             <th>last error</th></tr></thead><tbody>",
        );
        for t in &overview.trouble {
            troubled_row(out, t);
        }
        out.push_str("</tbody></table>");
    }
    if overview.trouble_not_listed > 0 {
        let _ = write!(
            out,
            "<p class=\"warn\">{} more not listed (the first {TROUBLE_SHOWN} are); \
             list them with <code>GET /v1/tenants?state=Failed</code>.</p>",
            overview.trouble_not_listed
        );
    }
    out.push_str("</section>");
}

fn troubled_row(out: &mut String, t: &TroubledTenant) {
    let id = Escaped(&t.id);
    let class = if t.label.starts_with("Failed") || t.label.starts_with("RollingBack") {
        "bad"
    } else {
        "warn"
    };
    let rollout = t
        .rollout_failure
        .as_ref()
        .map(|(rollout, reason)| {
            format!(
                "<div>failed in rollout {}: {}</div>",
                Escaped(rollout),
                Escaped(reason)
            )
        })
        .unwrap_or_default();
    let _ = write!(
        out,
        "<tr data-tenant=\"{id}\"><td><a href=\"/tenants/{id}\">{id}</a></td><td>{region}</td>\
         <td class=\"{class}\">{label}</td><td>{release}</td><td class=\"error\">{error}{rollout}</td></tr>",
        region = Escaped(&t.region),
        label = Escaped(&t.label),
        release = or_dash(t.release.as_deref()),
        error = or_dash(t.last_error.as_deref()),
    );
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::Utc;

    use super::super::overview::{OutcomeCounts, WaveProgress};
    use super::*;
    use crate::domain::Region;
    use crate::ports::FleetSummary;

    const VIEWER: Who = Who {
        name: "viewer",
        logout_token: Some("form-token"),
    };

    fn overview() -> Overview {
        let mut by_region = BTreeMap::new();
        by_region.insert(
            Region::parse("eu-west-1").unwrap(),
            BTreeMap::from([("Active".to_owned(), 3), ("Failed".to_owned(), 1)]),
        );
        Overview {
            fleet_as_of: Utc::now(),
            fleet: FleetSummary {
                total: 4,
                by_region,
                by_release: BTreeMap::from([
                    ("1.0.0".to_owned(), 2),
                    ("1.10.0".to_owned(), 1),
                    ("none".to_owned(), 1),
                ]),
            },
            rollouts: vec![RolloutProgress {
                id: "r-1".into(),
                release: "1.10.0".into(),
                phase: Phase::Running,
                halt_reason: None,
                settled: false,
                created_by: "api:<ci>".into(),
                created_at: Utc::now(),
                current_wave: 1,
                waves: vec![
                    WaveProgress {
                        index: 0,
                        kind: WaveKind::Canary,
                        target: "1".into(),
                        regions: vec!["eu-west-1".into()],
                        status: WaveStatus::Succeeded,
                        approved_by: None,
                        allowed_failures: 0,
                        counts: OutcomeCounts {
                            succeeded: 1,
                            ..OutcomeCounts::default()
                        },
                    },
                    WaveProgress {
                        index: 1,
                        kind: WaveKind::Percent,
                        target: "100%".into(),
                        regions: vec!["eu-west-1".into()],
                        status: WaveStatus::AwaitingApproval,
                        approved_by: None,
                        allowed_failures: 0,
                        counts: OutcomeCounts {
                            pending: 2,
                            ..OutcomeCounts::default()
                        },
                    },
                ],
                last_event: None,
            }],
            trouble: vec![TroubledTenant {
                id: "broken".into(),
                region: "eu-west-1".into(),
                label: "Failed".into(),
                release: None,
                last_error: Some("<script>alert('x')</script>".into()),
                rollout_failure: None,
            }],
            trouble_not_listed: 0,
            outages: {
                let mut outages = OutageCounts::default();
                outages.add(0);
                outages.add(45);
                outages
            },
            generated_at: Utc::now(),
        }
    }

    #[test]
    fn the_overview_shows_counts_rollouts_and_trouble() {
        let html = render(&overview(), &VIEWER, None, None);
        assert!(html.contains("<span id=\"fleet-total\">4</span>"));
        assert!(html.contains("data-rollout=\"r-1\""));
        assert!(html.contains("tenantctl rollout approve r-1"));
        assert!(html.contains("awaiting approval"));
        assert!(html.contains("<a href=\"/tenants/broken\">broken</a>"));
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        assert!(!html.contains("<script>"));
        assert!(html.contains("api:&lt;ci&gt;"));
        assert!(html.contains("<b id=\"outage-mean\">22.5 s</b> over 2 completed"));
        assert!(html.contains("<td class=\"n\" data-bucket=\"le_60s\">1</td>"));
        let newest = html.find("data-release=\"1.10.0\"").unwrap();
        let older = html.find("data-release=\"1.0.0\"").unwrap();
        let none = html.find("data-release=\"none\"").unwrap();
        assert!(
            newest < older && older < none,
            "releases go newest first, none last"
        );
    }

    #[test]
    fn a_deploy_session_gets_the_buttons_the_phase_allows_and_a_read_one_none() {
        let mut overview = overview();
        let read = render(&overview, &VIEWER, None, None);
        assert!(!read.contains("/rollouts/r-1/"), "{read}");

        let forms = RolloutForms {
            session_id: "session",
        };
        let html = render(&overview, &VIEWER, Some(&forms), None);
        let token = forms.token(RolloutAction::Approve, "r-1");
        assert!(html.contains(&format!(
            "action=\"/rollouts/r-1/approve\"><input type=\"hidden\" name=\"csrf\" value=\"{token}\">"
        )));
        assert!(html.contains(">Approve wave 1</button>"));
        assert!(html.contains("action=\"/rollouts/r-1/pause\""));
        assert!(!html.contains("/rollouts/r-1/resume"));
        assert!(html.contains("name=\"confirm\" value=\"yes\" required"));
        assert!(html.contains("action=\"/rollouts/r-1/abort\""));

        overview.rollouts[0].phase = Phase::Halted;
        overview.rollouts[0].waves[1].status = WaveStatus::Breached;
        let halted = render(&overview, &VIEWER, Some(&forms), None);
        assert!(halted.contains("action=\"/rollouts/r-1/resume\""));
        assert!(!halted.contains("/rollouts/r-1/pause") && !halted.contains("/rollouts/r-1/approve"));

        overview.rollouts[0].phase = Phase::Aborted;
        let aborted = render(&overview, &VIEWER, Some(&forms), None);
        assert!(!aborted.contains("/rollouts/r-1/"));
    }

    #[test]
    fn a_done_action_is_said_once_named() {
        let done = (RolloutAction::Pause, RolloutId::parse("r-1").unwrap());
        let html = render(&overview(), &VIEWER, None, Some(&done));
        assert!(html.contains("<p class=\"ok\" id=\"action-done\">Rollout r-1 paused"));
    }

    #[test]
    fn an_empty_fleet_says_so() {
        let empty = Overview {
            fleet_as_of: Utc::now(),
            fleet: FleetSummary::default(),
            rollouts: Vec::new(),
            trouble: Vec::new(),
            trouble_not_listed: 0,
            outages: OutageCounts::default(),
            generated_at: Utc::now(),
        };
        let html = render(&empty, &VIEWER, None, None);
        assert!(html.contains("No tenants yet."));
        assert!(html.contains("No upgrade or rollback completed."));
        assert!(html.contains("None: no tenant is Failed"));
    }
}
