//! The overview's fleet at a glance as HTML: the filter form, the release × region
//! and platform × region matrices, each region's states as a stacked bar, and a page of the selected tenants.
//! Every picture says in text what it shows: the matrix is a table with the count
//! written in each cell and trouble marked with a sign and words, and each bar has a
//! `<title>` and its counts written beside it, so colour is never the only signal.

use maud::{html, Markup};

use super::fleet_view::{states_by_region, Choices, FleetFilter, FleetMatrix, MAX_PAGE_SIZE, RELEASES_SHOWN};
use super::html::{or_dash, time};
use super::overview::TenantList;
use crate::domain::Region;
use crate::ports::FleetSummary;

/// The style of the pictures, added to the page's sheet.
pub const STYLE: &str = "\
form.filters{display:flex;flex-wrap:wrap;gap:.4em 1em;align-items:end;margin:.5em 0}\
form.filters label{display:flex;flex-direction:column;font-size:.9em}\
table.matrix td{text-align:center;min-width:4.5em;font-variant-numeric:tabular-nums}\
td.shade-0{background:#fff;color:#999}td.shade-1{background:#e8f0fb}td.shade-2{background:#c9dcf5}\
td.shade-3{background:#9fc0ec}td.shade-4{background:#6f9fe0;color:#fff}td.shade-5{background:#3f78c9;color:#fff}\
.trouble-mark{display:block;font-size:.8em;font-weight:bold;color:#b00020;background:#fff;border-radius:.2em}\
div.bar{display:grid;grid-template-columns:9em 1fr;gap:1em;align-items:center;margin:.2em 0}\
div.bar svg{width:100%;height:1.3em;border:1px solid #ccc}\
ul.legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:.3em 1.2em;font-size:.9em}\
.swatch{display:inline-block;width:.9em;height:.9em;margin-right:.3em;vertical-align:-.1em;border:1px solid #999}\
nav.pages a{margin-right:1em}";

/// A state's colour in the bars, and a swatch beside its name in the legend.
fn state_colour(state: &str) -> &'static str {
    match state {
        "Active" => "#3d9a50",
        "Failed" => "#c62828",
        "RollingBack" => "#ef8f00",
        "Deleted" => "#9e9e9e",
        "New" => "#b0bec5",
        "Provisioning" => "#64b5f6",
        "Upgrading" => "#1e88e5",
        "Restoring" => "#7e57c2",
        "Deprovisioning" => "#5d6d7e",
        _ => "#444",
    }
}

/// The GET form: filters with the values that occur in the fleet, a search box, a
/// page size; "any" sends an empty value, which the server reads as no filter.
pub fn filter_form(fleet: &FleetSummary, filter: &FleetFilter) -> Markup {
    let choices = Choices::of(fleet);
    let region = filter.region.as_ref().map(|r| r.to_string());
    let group = filter.group.as_ref().map(|g| g.as_str().to_owned());
    let release = filter.release.as_ref().map(|r| r.to_string());
    let platform = filter.platform.as_ref().map(|p| p.to_string());
    let select = |name: &str, label: &str, values: &[String], chosen: Option<&str>| {
        html! {
            label {
                (label)
                select name=(name) {
                    option value="" { "any" }
                    @for value in values {
                        option value=(value) selected[chosen == Some(value.as_str())] { (value) }
                    }
                }
            }
        }
    };
    let states: Vec<String> = choices.states.iter().map(|s| (*s).to_owned()).collect();
    html! {
        form.filters #filters method="get" action="/" {
            (select("region", "region", &choices.regions, region.as_deref()))
            (select("group", "group", &choices.groups, group.as_deref()))
            (select("release", "release", &choices.releases, release.as_deref()))
            (select("platform", "platform", &choices.platforms, platform.as_deref()))
            (select("state", "state", &states, filter.state))
            label {
                "tenant id or hostname"
                input #search type="search" name="q" value=[filter.search.as_deref()];
            }
            label {
                "per page"
                input type="number" name="limit" min="1" max=(MAX_PAGE_SIZE) value=(filter.limit);
            }
            button #apply-filters type="submit" { "Show" }
            @if filter.narrows() || filter.search.is_some() {
                a href="/" { "Clear" }
            }
        }
    }
}

/// Releases as rows, regions as columns: each cell shaded by its share of the busiest
/// cell, its count written in it, and a "⚠ N in trouble" mark where tenants are
/// Failed or rolling back.
pub fn matrix(fleet: &FleetSummary, filter: &FleetFilter) -> Markup {
    matrix_table(
        &FleetMatrix::releases(fleet, filter),
        MatrixKind {
            id: "matrix",
            heading: "Releases by region",
            row: "release",
            caption: "Tenants on each release (rows, newest first) in each region (columns); \
                      darker cells hold more tenants, and \u{26a0} marks tenants Failed or rolling back.",
        },
    )
}

/// Platform versions as rows, regions as columns, drawn like the release matrix:
/// which platform versions the fleet runs, where, and where they are in trouble.
pub fn platform_matrix(fleet: &FleetSummary, filter: &FleetFilter) -> Markup {
    matrix_table(
        &FleetMatrix::platforms(fleet, filter),
        MatrixKind {
            id: "platform-matrix",
            heading: "Platform versions by region",
            row: "platform",
            caption: "Tenants on each platform version (rows, newest first, the platform built into \
                      tenantctl last) in each region (columns); darker cells hold more tenants, and \
                      \u{26a0} marks tenants Failed or rolling back.",
        },
    )
}

/// What a matrix counts, in words and in the page's ids.
struct MatrixKind {
    id: &'static str,
    heading: &'static str,
    /// What a row is, singular: `release`, `platform`.
    row: &'static str,
    caption: &'static str,
}

fn matrix_table(m: &FleetMatrix, kind: MatrixKind) -> Markup {
    html! {
        section id=(kind.id) {
            h3 { (kind.heading) }
            @if m.rows.is_empty() {
                p { "No tenant matches the filters." }
            } @else {
                table.matrix {
                    caption.muted { (kind.caption) }
                    thead { tr {
                        th scope="col" { (kind.row) }
                        @for region in &m.regions { th scope="col" { (region.as_str()) } }
                    } }
                    tbody {
                        @for row in &m.rows {
                            tr data-matrix-release=[(kind.row == "release").then_some(row)]
                                data-matrix-platform=[(kind.row == "platform").then_some(row)] {
                                th scope="row" { (row) }
                                @for region in &m.regions {
                                    @let cell = m.cell(row, region);
                                    td class={ "shade-" (m.shade(cell)) }
                                        data-region=(region.as_str()) data-tenants=(cell.tenants)
                                        data-trouble=(cell.trouble) {
                                        (cell.tenants)
                                        @if cell.trouble > 0 {
                                            span.trouble-mark { "\u{26a0} " (cell.trouble) " in trouble" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                @if m.rows_not_shown > 0 {
                    p.muted {
                        (m.rows_not_shown) " older " (kind.row) "s not shown (the newest "
                        (RELEASES_SHOWN) " are); filter by " (kind.row) " to see one."
                    }
                }
            }
        }
    }
}

/// Each region's tenants by state as a stacked bar, with the counts in words beside
/// it and a legend of the colours.
pub fn state_bars(fleet: &FleetSummary, filter: &FleetFilter) -> Markup {
    let regions = states_by_region(fleet, filter);
    let mut shown: Vec<&'static str> = Vec::new();
    for states in regions.values() {
        for (name, _) in states {
            if !shown.contains(name) {
                shown.push(name);
            }
        }
    }
    html! {
        section #state-bars {
            h3 { "States by region" }
            @if !regions.is_empty() {
                ul.legend aria-label="colours of the states" {
                    @for name in &shown {
                        li { span.swatch style={ "background:" (state_colour(name)) } {} (name) }
                    }
                }
            }
            @for (region, states) in &regions {
                (bar(region, states))
            }
        }
    }
}

fn bar(region: &Region, states: &[(&'static str, u64)]) -> Markup {
    let total: u64 = states.iter().map(|(_, n)| n).sum();
    let words: Vec<String> = states.iter().map(|(name, n)| format!("{n} {name}")).collect();
    let description = format!("{region}: {} of {total} tenants", words.join(", "));
    let mut x = 0.0;
    let segments: Vec<(f64, f64, &str, u64)> = states
        .iter()
        .map(|(name, n)| {
            let width = 1000.0 * *n as f64 / total.max(1) as f64;
            let segment = (x, width, *name, *n);
            x += width;
            segment
        })
        .collect();
    html! {
        div.bar data-region=(region.as_str()) {
            b { (region.as_str()) }
            div {
                svg role="img" aria-label=(description) viewBox="0 0 1000 20" preserveAspectRatio="none" {
                    title { (description) }
                    @for (x, width, name, n) in &segments {
                        rect x=(format!("{x:.1}")) y="0" width=(format!("{width:.1}")) height="20"
                            fill=(state_colour(name)) data-state=(name) {
                            title { (n) " " (name) }
                        }
                    }
                }
                div.muted.counts { (words.join(" \u{b7} ")) }
            }
        }
    }
}

/// A page of the tenants the filters select (or the search found), with a link to
/// the next page that keeps the filters.
pub fn tenant_list(list: &TenantList, filter: &FleetFilter) -> Markup {
    html! {
        section #tenants {
            h3 {
                @if let Some(search) = &filter.search { "Tenant with id or hostname \u{201c}" (search) "\u{201d}" }
                @else { "Tenants" }
            }
            @if list.items.is_empty() {
                p #no-tenants {
                    @if filter.search.is_some() { "No tenant has that id or hostname." }
                    @else { "No tenant matches the filters." }
                }
            } @else {
                table {
                    thead { tr {
                        th { "tenant" } th { "region" } th { "group" } th { "state" } th { "release" } th { "updated" }
                    } }
                    tbody {
                        @for t in &list.items {
                            tr data-listed=(t.id.as_str()) {
                                td { a href={ "/tenants/" (t.id.as_str()) } { (t.id.as_str()) } }
                                td { (t.region.as_str()) }
                                td { (t.group) }
                                td { (t.label) }
                                td { (or_dash(t.release.as_deref())) }
                                td { (time(&t.updated_at)) }
                            }
                        }
                    }
                }
            }
            nav.pages aria-label="pages of tenants" {
                @if filter.after.is_some() {
                    a #first-page href=(filter.query_with_after(None)) { "First page" }
                }
                @if let Some(next) = &list.next_token {
                    a #next-page href=(filter.query_with_after(Some(next))) { "Next page \u{2192}" }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::FleetCell;

    fn fleet() -> FleetSummary {
        let cell = |release: &str, region: &str, state: &str, tenants| FleetCell {
            release: release.into(),
            platform: if release == "1.1.0" {
                "2026.12.1"
            } else {
                "built-in"
            }
            .into(),
            region: Region::parse(region).unwrap(),
            group: "default".into(),
            state: state.into(),
            tenants,
        };
        FleetSummary {
            cells: vec![
                cell("1.0.0", "eu-west-1", "Active", 3),
                cell("1.0.0", "eu-west-1", "Failed", 1),
                cell("1.1.0", "us-east-1", "Active", 2),
            ],
            ..FleetSummary::default()
        }
    }

    #[test]
    fn a_matrix_cell_writes_its_count_and_marks_trouble_in_words() {
        let html = matrix(&fleet(), &FleetFilter::default()).into_string();
        assert!(html.contains("<caption"), "{html}");
        assert!(
            html.contains(
                "data-region=\"eu-west-1\" data-tenants=\"4\" data-trouble=\"1\">4\
                 <span class=\"trouble-mark\">\u{26a0} 1 in trouble</span></td>"
            ),
            "{html}"
        );
        assert!(html.contains("class=\"shade-0\" data-region=\"us-east-1\" data-tenants=\"0\""));
        assert!(
            html.find("data-matrix-release=\"1.1.0\"").unwrap()
                < html.find("data-matrix-release=\"1.0.0\"").unwrap()
        );
    }

    #[test]
    fn the_platform_matrix_draws_each_version_with_trouble_in_words() {
        let html = platform_matrix(&fleet(), &FleetFilter::default()).into_string();
        assert!(html.contains("<h3>Platform versions by region</h3>"), "{html}");
        assert!(
            html.find("data-matrix-platform=\"2026.12.1\"").unwrap()
                < html.find("data-matrix-platform=\"built-in\"").unwrap(),
            "{html}"
        );
        assert!(
            html.contains(
                "data-region=\"eu-west-1\" data-tenants=\"4\" data-trouble=\"1\">4\
                 <span class=\"trouble-mark\">\u{26a0} 1 in trouble</span></td>"
            ),
            "{html}"
        );
        assert!(!html.contains("data-matrix-release"), "{html}");
        let filter = FleetFilter {
            platform: Some(crate::ports::PlatformChoice::parse("2026.12.1").unwrap()),
            ..FleetFilter::default()
        };
        let form = filter_form(&fleet(), &filter).into_string();
        assert!(
            form.contains("<option value=\"2026.12.1\" selected>2026.12.1</option>"),
            "{form}"
        );
        assert!(
            form.contains("<option value=\"built-in\">built-in</option>"),
            "{form}"
        );
    }

    #[test]
    fn a_bar_says_its_counts_in_text() {
        let html = state_bars(&fleet(), &FleetFilter::default()).into_string();
        assert!(
            html.contains("<title>eu-west-1: 3 Active, 1 Failed of 4 tenants</title>"),
            "{html}"
        );
        assert!(html.contains("3 Active \u{b7} 1 Failed"), "{html}");
        assert!(html.contains("<rect x=\"0.0\" y=\"0\" width=\"750.0\""), "{html}");
    }

    #[test]
    fn the_form_keeps_the_chosen_filters() {
        let filter = FleetFilter {
            region: Some(Region::parse("us-east-1").unwrap()),
            search: Some("\"><b>".into()),
            limit: 10,
            ..FleetFilter::default()
        };
        let html = filter_form(&fleet(), &filter).into_string();
        assert!(
            html.contains("<option value=\"us-east-1\" selected>us-east-1</option>"),
            "{html}"
        );
        assert!(
            html.contains("<option value=\"eu-west-1\">eu-west-1</option>"),
            "{html}"
        );
        assert!(html.contains("value=\"&quot;&gt;&lt;b&gt;\""), "{html}");
        assert!(
            html.contains("name=\"limit\" min=\"1\" max=\"100\" value=\"10\""),
            "{html}"
        );
    }
}
