//! The overview page (`GET /`) as HTML: a pure function of [`Overview`], so tests can
//! check what it shows (and that it escapes) without a store.

use maud::{html, Markup};

use super::actions::{RolloutAction, RolloutForms};
use super::fleet_html::{filter_form, matrix, platform_matrix, state_bars, tenant_list};
use super::fleet_view::{states_by_region, TROUBLE_STATES};
use super::html::{or_dash, page, time, Who};
use super::overview::{Overview, RolloutProgress, TroubledTenant, TROUBLE_SHOWN};
use super::rollout_page::status_text;
use crate::domain::rollout::WaveKind;
use crate::domain::{PlatformVersion, ReleaseVersion, RolloutId};
use crate::machine::TenantState;
use crate::ports::{OutageBucket, OutageCounts};
use crate::record::Phase;

/// Seconds between the page's reloads of itself.
pub const REFRESH_SECONDS: u32 = 10;

/// The overview for `viewer`; with `forms` (a session of scope deploy) each rollout
/// gets the buttons its phase allows, and `done` says which action was just done.
pub fn render(
    overview: &Overview,
    viewer: &Who,
    forms: Option<&RolloutForms>,
    done: Option<&(RolloutAction, RolloutId)>,
) -> Markup {
    let body = html! {
        @if let Some((action, rollout)) = done {
            p.ok #action-done { "Rollout " (rollout.as_str()) " " (action.done()) "." }
        }
        p.muted {
            "As of " (time(&overview.generated_at)) "; this page reloads every "
            (REFRESH_SECONDS) " s."
        }
        (fleet(overview))
        (outages(&overview.outages))
        (releases(overview))
        (platforms(overview))
        (rollouts(&overview.rollouts, forms))
        (trouble(overview))
    };
    page("Fleet", Some(viewer), Some(REFRESH_SECONDS), body)
}

/// The fleet at a glance: totals, the filter form, the release × region and platform
/// × region matrices, the states of each region as bars and as a table, and a page of
/// the selected tenants.
fn fleet(overview: &Overview) -> Markup {
    let fleet = &overview.fleet;
    let filter = &overview.filter;
    let by_region = states_by_region(fleet, filter);
    // Columns: the states that occur, in the machine's order.
    let states: Vec<&str> = TenantState::NAMES
        .into_iter()
        .filter(|s| by_region.values().any(|m| m.iter().any(|(name, _)| name == s)))
        .collect();
    let selected: u64 = by_region.values().flatten().map(|(_, n)| n).sum();
    html! {
        section #fleet {
            h2 { "Fleet: " span #fleet-total { (fleet.total) } " tenants" }
            p.muted #fleet-as-of { "Counts as of " (time(&overview.fleet_as_of)) "." }
            @if fleet.total == 0 {
                p { "No tenants yet." }
            } @else {
                (filter_form(fleet, filter))
                @if filter.narrows() {
                    p #fleet-selected { (selected) " of them match the filters." }
                }
                (matrix(fleet, filter))
                (platform_matrix(fleet, filter))
                (state_bars(fleet, filter))
                table #state-counts {
                    caption.muted { "Tenants by region and state (the bars above, as numbers)." }
                    thead { tr {
                        th { "region" }
                        @for s in &states { th { (s) } }
                        th { "total" }
                    } }
                    tbody {
                        @for (region, counts) in &by_region {
                            tr data-region=(region.as_str()) {
                                th { (region.as_str()) }
                                @for s in &states {
                                    @let n = counts.iter().find(|(name, _)| name == s).map_or(0, |(_, n)| *n);
                                    @let class = match (*s, n) {
                                        (_, 0) => "n muted",
                                        ("Failed", _) | ("RollingBack", _) => "n bad",
                                        _ => "n",
                                    };
                                    td class=(class) data-state=(s) { (n) }
                                }
                                td.n { (counts.iter().map(|(_, n)| n).sum::<u64>()) }
                            }
                        }
                    }
                }
                (tenant_list(&overview.tenants, filter))
            }
        }
    }
}

fn outages(outages: &OutageCounts) -> Markup {
    html! {
        section #outages {
            h2 { "Upgrade outages, yesterday and today (UTC)" }
            @if let Some(mean) = outages.mean_seconds() {
                p {
                    "Mean " b #outage-mean { (format!("{mean:.1} s")) } " over " (outages.measured)
                    " completed upgrades and rollbacks (" (outages.seconds) " s in all)."
                }
                table {
                    thead { tr { @for bucket in OutageBucket::ALL { th { (bucket_text(bucket)) } } } }
                    tbody { tr {
                        @for bucket in OutageBucket::ALL {
                            td.n data-bucket=(bucket.name()) { (outages.buckets[bucket as usize]) }
                        }
                    } }
                }
            } @else {
                p { "No upgrade or rollback completed." }
            }
        }
    }
}

fn bucket_text(bucket: OutageBucket) -> &'static str {
    match bucket {
        OutageBucket::None => "none",
        OutageBucket::UpTo30 => "\u{2264} 30 s",
        OutageBucket::UpTo60 => "\u{2264} 60 s",
        OutageBucket::UpTo180 => "\u{2264} 3 min",
        OutageBucket::UpTo600 => "\u{2264} 10 min",
        OutageBucket::Over600 => "> 10 min",
    }
}

fn releases(overview: &Overview) -> Markup {
    let mut rows: Vec<(&String, &u64)> = overview.fleet.by_release.iter().collect();
    // Newest release first; tenants on no release last.
    rows.sort_by_key(|(release, _)| std::cmp::Reverse(ReleaseVersion::parse(release).ok()));
    html! {
        section #releases {
            h2 { "Releases in use" }
            @if rows.is_empty() {
                p { "None." }
            } @else {
                table {
                    thead { tr { th { "release" } th { "tenants" } } }
                    tbody {
                        @for (release, n) in rows {
                            tr data-release=(release) { td { (release) } td.n { (n) } }
                        }
                    }
                }
            }
        }
    }
}

/// Tenants per platform version, newest first and the built-in platform last, with
/// how many of them are in trouble: the platform beside the releases.
fn platforms(overview: &Overview) -> Markup {
    let mut rows: Vec<(&String, &u64)> = overview.fleet.by_platform.iter().collect();
    rows.sort_by_key(|(platform, _)| std::cmp::Reverse(PlatformVersion::parse(platform).ok()));
    let trouble = |platform: &str| -> u64 {
        overview
            .fleet
            .cells
            .iter()
            .filter(|c| c.platform == platform && TROUBLE_STATES.contains(&c.state.as_str()))
            .map(|c| c.tenants)
            .sum()
    };
    html! {
        section #platforms {
            h2 { "Platform versions in use" }
            @if rows.is_empty() {
                p { "None." }
            } @else {
                table {
                    thead { tr { th { "platform" } th { "tenants" } th { "in trouble" } } }
                    tbody {
                        @for (platform, n) in rows {
                            @let in_trouble = trouble(platform);
                            tr data-platform=(platform) {
                                td { (platform) }
                                td.n { (n) }
                                td.n { @if in_trouble > 0 { "\u{26a0} " } (in_trouble) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn phase_class(phase: Phase) -> &'static str {
    match phase {
        Phase::Halted => "bad",
        Phase::Paused | Phase::Preparing => "warn",
        Phase::Running | Phase::Completed | Phase::Aborted => "ok",
    }
}

fn kind_text(kind: WaveKind) -> &'static str {
    match kind {
        WaveKind::Canary => "canary",
        WaveKind::Percent | WaveKind::Count => "wave",
    }
}

fn rollouts(rollouts: &[RolloutProgress], forms: Option<&RolloutForms>) -> Markup {
    html! {
        section #rollouts {
            h2 { "Rollouts in progress" }
            @if rollouts.is_empty() {
                p { "None." }
            }
            @for r in rollouts {
                (rollout(r, forms))
            }
        }
    }
}

fn rollout(r: &RolloutProgress, forms: Option<&RolloutForms>) -> Markup {
    let progress = match r.waves.len() {
        n if r.current_wave >= n => format!("all {n} waves done"),
        n => format!("at wave {} of waves 0\u{2013}{}", r.current_wave, n - 1),
    };
    html! {
        section.rollout data-rollout=(r.id) {
            h3 {
                a href={ "/rollouts/" (r.id) } { (r.id) } " \u{2192} " (r.release) " "
                span class={ "badge " (phase_class(r.phase)) } data-phase=(r.phase) { (r.phase) }
            }
            p.muted { "started " (time(&r.created_at)) " by " (r.created_by) "; " (progress) }
            @if let Some(reason) = &r.halt_reason {
                p.bad.halt {
                    "Halted: " span.error { (reason) } " ("
                    @if r.settled { "rollback done; resume, retry or abort" } @else { "rolling back" }
                    ")"
                }
            }
            @if let Some(wave) = r.awaiting_approval() {
                p.warn.approval {
                    "Wave " (wave.index) " is waiting for approval: "
                    code { "tenantctl rollout approve " (r.id) }
                }
            }
            table {
                thead { tr {
                    th { "wave" } th { "regions" } th { "status" } th { "succeeded" }
                    th { "failed / budget" } th { "in flight" } th { "pending" } th { "skipped" }
                } }
                tbody {
                    @for w in &r.waves {
                        @let c = &w.counts;
                        tr.current[w.index == r.current_wave] data-wave=(w.index) {
                            td { (w.index) " " (kind_text(w.kind)) " (" (w.target) ")" }
                            td { (w.regions.join(", ")) }
                            td data-status=(status_text(w.status)) {
                                (status_text(w.status))
                                @if let Some(by) = &w.approved_by {
                                    " " span.muted { "approved by " (by) }
                                }
                            }
                            td.n { (c.succeeded) }
                            td.n.bad[c.failed > w.allowed_failures] { (c.failed) " / " (w.allowed_failures) }
                            td.n { (c.in_flight) }
                            td.n { (c.pending) }
                            td.n { (c.skipped) }
                        }
                    }
                }
            }
            @if let Some(event) = &r.last_event {
                p.muted { "last: " (event) }
            }
            @if let Some(forms) = forms {
                (action_forms(r, forms))
            }
        }
    }
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

fn action_forms(r: &RolloutProgress, forms: &RolloutForms) -> Markup {
    html! {
        p.actions data-actions=(r.id) {
            @for action in allowed_actions(r) {
                @let name = action.as_str();
                form.action method="post" action={ "/rollouts/" (r.id) "/" (name) } {
                    input type="hidden" name="csrf" value=(forms.token(action, &r.id));
                    @if action == RolloutAction::Abort {
                        label { input type="checkbox" name="confirm" value="yes" required; " I am sure" }
                        " "
                    }
                    button type="submit" data-action=(name) {
                        @match action {
                            RolloutAction::Approve => {
                                @if let Some(w) = r.awaiting_approval() { "Approve wave " (w.index) }
                            }
                            RolloutAction::Pause => "Pause",
                            RolloutAction::Resume => "Resume",
                            RolloutAction::Abort => "Abort",
                            RolloutAction::Retry => "Retry",
                        }
                    }
                }
            }
        }
    }
}

fn trouble(overview: &Overview) -> Markup {
    html! {
        section #trouble {
            h2 { "Tenants in trouble" }
            @if overview.trouble.is_empty() {
                p.ok { "None: no tenant is Failed, rolling back or retrying an error." }
            } @else {
                table {
                    thead { tr {
                        th { "tenant" } th { "region" } th { "state" } th { "release" } th { "last error" }
                    } }
                    tbody { @for t in &overview.trouble { (troubled_row(t)) } }
                }
            }
            @if overview.trouble_not_listed > 0 {
                p.warn {
                    (overview.trouble_not_listed) " more not listed (the first " (TROUBLE_SHOWN)
                    " are); list them with " code { "GET /v1/tenants?state=Failed" } "."
                }
            }
        }
    }
}

fn troubled_row(t: &TroubledTenant) -> Markup {
    let class = if t.label.starts_with("Failed") || t.label.starts_with("RollingBack") {
        "bad"
    } else {
        "warn"
    };
    html! {
        tr data-tenant=(t.id) {
            td { a href={ "/tenants/" (t.id) } { (t.id) } }
            td { (t.region) }
            td class=(class) { (t.label) }
            td { (or_dash(t.release.as_deref())) }
            td.error {
                (or_dash(t.last_error.as_deref()))
                @if let Some((rollout, reason)) = &t.rollout_failure {
                    div { "failed in rollout " (rollout) ": " (reason) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::record::WaveStatus;
    use std::collections::BTreeMap;

    use chrono::Utc;

    use super::super::fleet_view::FleetFilter;
    use super::super::overview::TenantList;
    use super::super::overview::{OutcomeCounts, WaveProgress};
    use super::*;
    use crate::domain::Region;
    use crate::ports::{FleetCell, FleetSummary};

    const VIEWER: Who = Who {
        name: "viewer",
        logout_token: Some("form-token"),
    };

    fn cell(release: &str, state: &str, tenants: u64) -> FleetCell {
        FleetCell {
            release: release.into(),
            platform: if release == "1.10.0" {
                "2026.12.1"
            } else {
                "built-in"
            }
            .into(),
            region: Region::parse("eu-west-1").unwrap(),
            group: "default".into(),
            state: state.into(),
            tenants,
        }
    }

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
                by_platform: BTreeMap::from([("2026.12.1".to_owned(), 1), ("built-in".to_owned(), 3)]),
                cells: vec![
                    cell("1.0.0", "Active", 2),
                    cell("1.10.0", "Active", 1),
                    cell("none", "Failed", 1),
                ],
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
            filter: FleetFilter::default(),
            tenants: TenantList::default(),
            generated_at: Utc::now(),
        }
    }

    #[test]
    fn the_overview_shows_counts_rollouts_and_trouble() {
        let html = render(&overview(), &VIEWER, None, None).into_string();
        assert!(html.contains("<span id=\"fleet-total\">4</span>"));
        assert!(html.contains("data-rollout=\"r-1\""));
        assert!(html.contains("tenantctl rollout approve r-1"));
        assert!(html.contains("awaiting approval"));
        assert!(html.contains("<a href=\"/tenants/broken\">broken</a>"));
        assert!(html.contains("&lt;script&gt;alert('x')&lt;/script&gt;"));
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
        let version = html.find(
            "<tr data-platform=\"2026.12.1\"><td>2026.12.1</td><td class=\"n\">1</td><td class=\"n\">0</td>",
        );
        let built_in = html.find(
            "<tr data-platform=\"built-in\"><td>built-in</td><td class=\"n\">3</td>\
             <td class=\"n\">\u{26a0} 1</td>",
        );
        assert!(version.unwrap() < built_in.unwrap(), "{html}");
        assert!(html.contains("id=\"platform-matrix\""), "{html}");
    }

    #[test]
    fn a_deploy_session_gets_the_buttons_the_phase_allows_and_a_read_one_none() {
        let mut overview = overview();
        let read = render(&overview, &VIEWER, None, None).into_string();
        assert!(!read.contains("/rollouts/r-1/"), "{read}");

        let forms = RolloutForms {
            session_id: "session",
        };
        let html = render(&overview, &VIEWER, Some(&forms), None).into_string();
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
        let halted = render(&overview, &VIEWER, Some(&forms), None).into_string();
        assert!(halted.contains("action=\"/rollouts/r-1/resume\""));
        assert!(!halted.contains("/rollouts/r-1/pause") && !halted.contains("/rollouts/r-1/approve"));

        overview.rollouts[0].phase = Phase::Aborted;
        let aborted = render(&overview, &VIEWER, Some(&forms), None).into_string();
        assert!(!aborted.contains("/rollouts/r-1/"));
    }

    #[test]
    fn a_done_action_is_said_once_named() {
        let done = (RolloutAction::Pause, RolloutId::parse("r-1").unwrap());
        let html = render(&overview(), &VIEWER, None, Some(&done)).into_string();
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
            filter: FleetFilter::default(),
            tenants: TenantList::default(),
            generated_at: Utc::now(),
        };
        let html = render(&empty, &VIEWER, None, None).into_string();
        assert!(html.contains("No tenants yet."));
        assert!(html.contains("No upgrade or rollback completed."));
        assert!(html.contains("None: no tenant is Failed"));
    }
}
