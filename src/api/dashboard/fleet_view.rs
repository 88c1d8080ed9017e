//! The overview's fleet at a glance: the filters of its GET form, and what they select
//! from the cached fleet summary (release × region and platform × region matrices,
//! each region's states).
//! Pure: everything here sums [`FleetSummary::cells`], so a filter costs no read.

use std::collections::BTreeMap;

use crate::api::ApiError;
use crate::domain::{Group, PlatformVersion, Region, ReleaseVersion};
use crate::machine::TenantState;
use crate::ports::{FleetCell, FleetSummary, PlatformChoice, BUILT_IN_PLATFORM};

/// Tenants listed per page unless the form asks for another size.
pub const PAGE_SIZE: u32 = 25;
/// The most tenants one page lists, whatever the form asks.
pub const MAX_PAGE_SIZE: u32 = 100;
/// Release rows the matrix shows (newest first); the rest are counted below it.
pub const RELEASES_SHOWN: usize = 30;
/// States that are trouble in any count: the matrix marks cells that hold one.
pub const TROUBLE_STATES: [&str; 2] = ["Failed", "RollingBack"];

/// The overview's form as it arrives: every field optional, empty meaning "any".
#[derive(Debug, Default, serde::Deserialize)]
pub struct FleetQuery {
    region: Option<String>,
    group: Option<String>,
    release: Option<String>,
    /// A platform version, or `built-in`.
    platform: Option<String>,
    state: Option<String>,
    /// A tenant id or a hostname to find.
    q: Option<String>,
    /// Where the tenant list goes on: the previous page's sealed token.
    after: Option<String>,
    limit: Option<String>,
}

/// The filters, checked: what the matrix, the bars and the tenant list show.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetFilter {
    pub region: Option<Region>,
    pub group: Option<Group>,
    pub release: Option<ReleaseVersion>,
    pub platform: Option<PlatformChoice>,
    /// One of [`TenantState::NAMES`].
    pub state: Option<&'static str>,
    pub search: Option<String>,
    pub after: Option<String>,
    pub limit: u32,
}

fn given(field: &Option<String>) -> Option<&str> {
    field.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl FleetQuery {
    /// The filters this form names; a value that is not valid is refused with what
    /// was wrong, not ignored (a silently dropped filter would show the whole fleet
    /// as if it were the selection).
    pub fn filter(&self) -> Result<FleetFilter, ApiError> {
        let state = given(&self.state)
            .map(|s| {
                TenantState::parse_name(s).map_err(|e| {
                    ApiError::InvalidRequest(format!("filter state: {e}; pick one of the form's states"))
                })
            })
            .transpose()?;
        let limit = match given(&self.limit) {
            None => PAGE_SIZE,
            Some(text) => match text.parse::<u32>() {
                Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
                _ => {
                    return Err(ApiError::InvalidRequest(format!(
                        "page size {:?} is not a whole number from 1 to {MAX_PAGE_SIZE}; \
                         leave it empty for {PAGE_SIZE}",
                        text.chars().take(20).collect::<String>()
                    )))
                }
            },
        };
        Ok(FleetFilter {
            region: given(&self.region).map(Region::parse).transpose()?,
            group: given(&self.group).map(Group::parse).transpose()?,
            release: given(&self.release).map(ReleaseVersion::parse).transpose()?,
            platform: given(&self.platform).map(PlatformChoice::parse).transpose()?,
            state,
            search: given(&self.q).map(str::to_owned),
            after: given(&self.after).map(str::to_owned),
            limit,
        })
    }
}

impl FleetFilter {
    /// Whether `cell` is in the selection.
    pub fn selects(&self, cell: &FleetCell) -> bool {
        self.region.as_ref().is_none_or(|r| *r == cell.region)
            && self.group.as_ref().is_none_or(|g| g.as_str() == cell.group)
            && self
                .release
                .as_ref()
                .is_none_or(|r| r.to_string() == cell.release)
            && self
                .platform
                .as_ref()
                .is_none_or(|p| p.to_string() == cell.platform)
            && self.state.is_none_or(|s| s == cell.state)
    }

    /// Whether any filter (not the search or the page) is set.
    pub fn narrows(&self) -> bool {
        self.region.is_some()
            || self.group.is_some()
            || self.release.is_some()
            || self.platform.is_some()
            || self.state.is_some()
    }

    /// The form's fields as a query string with `after` for the next page (the
    /// values are percent-encoded).
    pub fn query_with_after(&self, after: Option<&str>) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        let mut push = |name, value: Option<String>| {
            if let Some(v) = value {
                pairs.push((name, v));
            }
        };
        push("region", self.region.as_ref().map(|r| r.to_string()));
        push("group", self.group.as_ref().map(|g| g.as_str().to_owned()));
        push("release", self.release.as_ref().map(|r| r.to_string()));
        push("platform", self.platform.as_ref().map(|p| p.to_string()));
        push("state", self.state.map(str::to_owned));
        push("q", self.search.clone());
        push("limit", (self.limit != PAGE_SIZE).then(|| self.limit.to_string()));
        push("after", after.map(str::to_owned));
        let encoded: Vec<String> = pairs
            .into_iter()
            .map(|(name, value)| format!("{name}={}", percent_encode(&value)))
            .collect();
        format!("?{}", encoded.join("&"))
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub(super) fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Tenants of one release in one region.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MatrixCell {
    pub tenants: u64,
    /// Of them, Failed or rolling back.
    pub trouble: u64,
}

/// Releases or platform versions (rows, newest first, `none` or `built-in` last) by
/// regions (columns).
#[derive(Debug, Default, PartialEq)]
pub struct FleetMatrix {
    pub rows: Vec<String>,
    pub regions: Vec<Region>,
    pub cells: BTreeMap<(String, Region), MatrixCell>,
    /// The largest cell: shading is relative to it.
    pub busiest: u64,
    /// Rows beyond [`RELEASES_SHOWN`], not drawn.
    pub rows_not_shown: usize,
}

impl FleetMatrix {
    /// Releases by region.
    pub fn releases(summary: &FleetSummary, filter: &FleetFilter) -> Self {
        Self::of(
            summary,
            filter,
            |cell| &cell.release,
            |release| ReleaseVersion::parse(release).ok(),
        )
    }

    /// Platform versions by region; the built-in platform last.
    pub fn platforms(summary: &FleetSummary, filter: &FleetFilter) -> Self {
        Self::of(
            summary,
            filter,
            |cell| &cell.platform,
            |platform| PlatformVersion::parse(platform).ok(),
        )
    }

    /// Counts the selected cells by `row` and region; rows sort by `version`,
    /// newest first, rows without one last.
    fn of<K: Ord>(
        summary: &FleetSummary,
        filter: &FleetFilter,
        row: fn(&FleetCell) -> &String,
        version: fn(&str) -> Option<K>,
    ) -> Self {
        let mut cells: BTreeMap<(String, Region), MatrixCell> = BTreeMap::new();
        for cell in summary.cells.iter().filter(|c| filter.selects(c)) {
            let entry = cells.entry((row(cell).clone(), cell.region.clone())).or_default();
            entry.tenants += cell.tenants;
            if TROUBLE_STATES.contains(&cell.state.as_str()) {
                entry.trouble += cell.tenants;
            }
        }
        let mut rows: Vec<String> = cells.keys().map(|(row, _)| row.clone()).collect();
        rows.dedup();
        rows.sort_by_key(|row| std::cmp::Reverse(version(row)));
        let rows_not_shown = rows.len().saturating_sub(RELEASES_SHOWN);
        rows.truncate(RELEASES_SHOWN);
        let mut regions: Vec<Region> = cells.keys().map(|(_, region)| region.clone()).collect();
        regions.sort();
        regions.dedup();
        FleetMatrix {
            busiest: cells.values().map(|c| c.tenants).max().unwrap_or(0),
            rows,
            regions,
            cells,
            rows_not_shown,
        }
    }

    pub fn cell(&self, row: &str, region: &Region) -> MatrixCell {
        self.cells
            .get(&(row.to_owned(), region.clone()))
            .copied()
            .unwrap_or_default()
    }

    /// A shade from 0 (no tenant) to 5 (the busiest cell), so darker means more.
    pub fn shade(&self, cell: MatrixCell) -> u64 {
        match (cell.tenants, self.busiest) {
            (0, _) | (_, 0) => 0,
            (n, busiest) => (n * 5).div_ceil(busiest).clamp(1, 5),
        }
    }
}

/// Each region's tenants by state (states in the machine's order), for the bars.
pub fn states_by_region(
    summary: &FleetSummary,
    filter: &FleetFilter,
) -> BTreeMap<Region, Vec<(&'static str, u64)>> {
    let mut counts: BTreeMap<Region, BTreeMap<&str, u64>> = BTreeMap::new();
    for cell in summary.cells.iter().filter(|c| filter.selects(c)) {
        *counts
            .entry(cell.region.clone())
            .or_default()
            .entry(cell.state.as_str())
            .or_default() += cell.tenants;
    }
    counts
        .into_iter()
        .map(|(region, states)| {
            let ordered = TenantState::NAMES
                .into_iter()
                .filter_map(|name| states.get(name).map(|n| (name, *n)))
                .collect();
            (region, ordered)
        })
        .collect()
}

/// The distinct values the form offers: regions, groups, releases and platforms
/// (newest first) and states (the machine's order) that occur in the fleet.
pub struct Choices {
    pub regions: Vec<String>,
    pub groups: Vec<String>,
    pub releases: Vec<String>,
    /// Platform versions, then `built-in` if a tenant runs it.
    pub platforms: Vec<String>,
    pub states: Vec<&'static str>,
}

impl Choices {
    pub fn of(summary: &FleetSummary) -> Self {
        let distinct = |f: fn(&FleetCell) -> &str| {
            let mut values: Vec<String> = summary.cells.iter().map(|c| f(c).to_owned()).collect();
            values.sort();
            values.dedup();
            values
        };
        let mut releases: Vec<String> = distinct(|c| &c.release)
            .into_iter()
            .filter(|r| ReleaseVersion::parse(r).is_ok())
            .collect();
        releases.sort_by_key(|release| std::cmp::Reverse(ReleaseVersion::parse(release).ok()));
        let mut platforms: Vec<String> = distinct(|c| &c.platform)
            .into_iter()
            .filter(|p| PlatformChoice::parse(p).is_ok())
            .collect();
        platforms.sort_by_key(|p| {
            (
                p == BUILT_IN_PLATFORM,
                std::cmp::Reverse(PlatformVersion::parse(p).ok()),
            )
        });
        Choices {
            regions: distinct(|c| c.region.as_str()),
            groups: distinct(|c| &c.group),
            releases,
            platforms,
            states: TenantState::NAMES
                .into_iter()
                .filter(|s| summary.cells.iter().any(|c| c.state == *s))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(release: &str, region: &str, group: &str, state: &str, tenants: u64) -> FleetCell {
        FleetCell {
            release: release.into(),
            platform: BUILT_IN_PLATFORM.into(),
            region: Region::parse(region).unwrap(),
            group: group.into(),
            state: state.into(),
            tenants,
        }
    }

    fn summary() -> FleetSummary {
        FleetSummary {
            cells: vec![
                cell("1.0.0", "eu-west-1", "default", "Active", 6),
                cell("1.0.0", "eu-west-1", "default", "Failed", 1),
                cell("1.10.0", "eu-west-1", "beta", "Active", 2),
                cell("1.0.0", "us-east-1", "default", "Active", 3),
                cell("none", "us-east-1", "default", "Provisioning", 1),
            ],
            ..FleetSummary::default()
        }
    }

    fn query(pairs: &[(&str, &str)]) -> FleetQuery {
        let text: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        serde_json::from_value(serde_json::Value::Object(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), serde_json::Value::String((*v).to_owned())))
                .collect(),
        ))
        .unwrap_or_else(|e| panic!("{}: {e}", text.join("&")))
    }

    #[test]
    fn the_matrix_counts_each_release_in_each_region_and_marks_trouble() {
        let m = FleetMatrix::releases(&summary(), &FleetFilter::default());
        assert_eq!(m.rows, ["1.10.0", "1.0.0", "none"], "newest first, none last");
        let eu = Region::parse("eu-west-1").unwrap();
        let us = Region::parse("us-east-1").unwrap();
        assert_eq!(m.regions, [eu.clone(), us.clone()]);
        assert_eq!(
            m.cell("1.0.0", &eu),
            MatrixCell {
                tenants: 7,
                trouble: 1
            }
        );
        assert_eq!(
            m.cell("1.0.0", &us),
            MatrixCell {
                tenants: 3,
                trouble: 0
            }
        );
        assert_eq!(m.cell("1.10.0", &us), MatrixCell::default());
        assert_eq!(m.busiest, 7);
        assert_eq!(m.shade(m.cell("1.0.0", &eu)), 5);
        assert_eq!(m.shade(m.cell("none", &us)), 1);
        assert_eq!(m.shade(MatrixCell::default()), 0);
    }

    #[test]
    fn filters_narrow_the_matrix_and_the_bars_without_another_read() {
        let filter = query(&[("region", "eu-west-1"), ("state", "Active"), ("group", "")])
            .filter()
            .unwrap();
        let m = FleetMatrix::releases(&summary(), &filter);
        let eu = Region::parse("eu-west-1").unwrap();
        assert_eq!(m.regions, std::slice::from_ref(&eu));
        assert_eq!(
            m.cell("1.0.0", &eu),
            MatrixCell {
                tenants: 6,
                trouble: 0
            }
        );
        let bars = states_by_region(&summary(), &filter);
        assert_eq!(bars.len(), 1);
        assert_eq!(bars[&eu], [("Active", 8)]);

        let beta = query(&[("group", "beta")]).filter().unwrap();
        assert_eq!(FleetMatrix::releases(&summary(), &beta).rows, ["1.10.0"]);
        let all = states_by_region(&summary(), &FleetFilter::default());
        assert_eq!(all[&eu], [("Active", 8), ("Failed", 1)], "the machine's order");
    }

    fn on_platform(platform: &str, cell: FleetCell) -> FleetCell {
        FleetCell {
            platform: platform.into(),
            ..cell
        }
    }

    #[test]
    fn the_platform_matrix_counts_each_version_in_each_region_and_filters_by_it() {
        let mut fleet = summary();
        fleet.cells.extend([
            on_platform("2026.9.0", cell("1.0.0", "eu-west-1", "default", "Failed", 2)),
            on_platform("2026.12.1", cell("1.10.0", "us-east-1", "beta", "Active", 4)),
        ]);
        let m = FleetMatrix::platforms(&fleet, &FleetFilter::default());
        assert_eq!(
            m.rows,
            ["2026.12.1", "2026.9.0", "built-in"],
            "newest first, built-in last"
        );
        let eu = Region::parse("eu-west-1").unwrap();
        assert_eq!(
            m.cell("2026.9.0", &eu),
            MatrixCell {
                tenants: 2,
                trouble: 2
            }
        );
        assert_eq!(m.cell("built-in", &eu).tenants, 9);

        let filter = query(&[("platform", "2026.9.0")]).filter().unwrap();
        assert!(filter.narrows());
        assert_eq!(FleetMatrix::releases(&fleet, &filter).rows, ["1.0.0"]);
        assert_eq!(states_by_region(&fleet, &filter)[&eu], [("Failed", 2)]);
        let built_in = query(&[("platform", "built-in")]).filter().unwrap();
        assert_eq!(FleetMatrix::platforms(&fleet, &built_in).rows, ["built-in"]);
        assert_eq!(
            built_in.query_with_after(None),
            "?platform=built-in",
            "the next page keeps the platform"
        );
        assert_eq!(
            Choices::of(&fleet).platforms,
            ["2026.12.1", "2026.9.0", "built-in"]
        );

        let bad = query(&[("platform", "v2")]).filter().unwrap_err().to_string();
        assert!(bad.contains("platform") && bad.contains("built-in"), "{bad}");
    }

    #[test]
    fn a_bad_filter_says_what_was_wrong() {
        let state = query(&[("state", "upgrading")]).filter().unwrap_err().to_string();
        assert!(
            state.contains("upgrading") && state.contains("filter state"),
            "{state}"
        );
        let limit = query(&[("limit", "5000")]).filter().unwrap_err().to_string();
        assert!(limit.contains("from 1 to 100"), "{limit}");
        assert!(query(&[("release", "latest")]).filter().is_err());
        assert_eq!(query(&[]).filter().unwrap().limit, PAGE_SIZE);
    }

    #[test]
    fn the_next_page_keeps_the_filters_and_encodes_the_token() {
        let filter = query(&[("region", "eu-west-1"), ("limit", "2"), ("q", "a b")])
            .filter()
            .unwrap();
        assert_eq!(
            filter.query_with_after(Some("t+/=")),
            "?region=eu-west-1&q=a%20b&limit=2&after=t%2B%2F%3D"
        );
    }

    #[test]
    fn the_form_offers_what_occurs() {
        let choices = Choices::of(&summary());
        assert_eq!(choices.releases, ["1.10.0", "1.0.0"]);
        assert_eq!(choices.groups, ["beta", "default"]);
        assert_eq!(choices.states, ["Provisioning", "Active", "Failed"]);
    }
}
