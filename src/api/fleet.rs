//! `/v1/fleet/summary` and `/v1/reports/deployments`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{Caller, Read};
use super::extract::ApiQuery;
use super::{ApiError, ApiState};
use crate::domain::{Group, Region};
use crate::ports::{
    DeploymentCounts, FleetSummary, FleetTally, ListFilter, ListQuery, ListedTenant, OutageBucket,
    OutageCounts, StoreError,
};
use crate::ports::{ReportQuery, MAX_REPORT_DAYS};

/// Tenants counted by region and state, by release and by platform. The counts come from one
/// pass over the fleet that is reused for up to `max_age_seconds`, so they may lag
/// a change by that long.
#[derive(Debug, Serialize, ToSchema)]
pub struct FleetSummaryView {
    /// When the read that took these counts started.
    pub as_of: DateTime<Utc>,
    /// How long the server reuses one read of the counts (`serve --summary-max-age`).
    pub max_age_seconds: f64,
    pub total: u64,
    /// region → state → tenants.
    pub by_region: BTreeMap<String, BTreeMap<String, u64>>,
    /// release → tenants (`none`: running no release yet or any more).
    pub by_release: BTreeMap<String, u64>,
    /// platform version → tenants (`built-in`: the template and chart built into
    /// `tenantctl`). The platform a tenant runs is its deployed chart's.
    pub by_platform: BTreeMap<String, u64>,
}

#[utoipa::path(operation_id = "fleet_summary", get, path = "/v1/fleet/summary", tag = "fleet", responses((status = 200, body = FleetSummaryView)), security(("bearer" = ["read"])))]
pub async fn summary(
    State(state): State<ApiState>,
    caller: Caller<Read>,
) -> Result<Json<FleetSummaryView>, ApiError> {
    let (s, as_of) = state.fleet_summary_for(&caller.principal()).await?;
    Ok(Json(FleetSummaryView {
        as_of,
        max_age_seconds: state.summary_max_age().as_secs_f64(),
        total: s.total,
        by_region: s.by_region.into_iter().map(|(r, m)| (r.to_string(), m)).collect(),
        by_release: s.by_release,
        by_platform: s.by_platform,
    }))
}

/// Counts over the tenants `principal` may read, from the listing of the regions its
/// read bindings reach, a page of 1000 at a time.
pub(super) async fn counts_for(
    state: &ApiState,
    principal: &super::access::Principal<'_>,
) -> Result<FleetSummary, StoreError> {
    let regions: Vec<Option<Region>> = match principal.access.regions(crate::domain::Scope::Read) {
        Some(regions) => regions.into_iter().map(Some).collect(),
        None => vec![None],
    };
    let mut tally = FleetTally::default();
    for region in regions {
        let mut next_token = None;
        loop {
            let query = ListQuery {
                region: region.clone(),
                state: None,
                limit: Some(1000),
                next_token,
            };
            let page = state
                .store()
                .list_matching(&query, &ListFilter::default())
                .await?;
            for row in principal.visible(state, page.items).await? {
                tally.add(ListedTenant::from(&row));
            }
            match page.next_token {
                Some(token) => next_token = Some(token),
                None => break,
            }
        }
    }
    Ok(tally.finish())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportParams {
    /// First day (UTC), `YYYY-MM-DD`.
    #[param(value_type = String, format = Date)]
    pub from: String,
    /// Last day (UTC), `YYYY-MM-DD`, included; not before `from`, at most 366 days after it.
    #[param(value_type = String, format = Date)]
    pub to: String,
    #[param(value_type = Option<crate::domain::Region>)]
    pub region: Option<String>,
    #[param(value_type = Option<crate::domain::Group>)]
    pub group: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReportRow {
    pub region: String,
    pub group: String,
    /// Provisionings and upgrades started (an operator retry starts one again).
    pub started: u64,
    /// Finished on their target release.
    pub succeeded: u64,
    /// Ended by a step failure (a rollback may have followed).
    pub failed: u64,
    /// Rollbacks that finished, back on the previous release.
    pub rolled_back: u64,
    pub outage: OutageView,
}

/// Outages of the upgrades, reconciles and rollbacks that completed, from the first
/// failed probe (or the maintenance page) to the first healthy round of verify.
/// Counters can only add, so there is no maximum: the highest non-empty bucket bounds it.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct OutageView {
    /// Completed upgrades, reconciles and rollbacks whose outage was measured (a
    /// measured 0 included).
    pub measured: u64,
    /// Their outages added up, in seconds.
    pub total_seconds: u64,
    /// `total_seconds / measured`; null when nothing was measured.
    pub mean_seconds: Option<f64>,
    /// How many fell in each bucket: `none` (0 s), `le_30s`, `le_60s`, `le_180s`,
    /// `le_600s`, `over_600s`.
    pub buckets: BTreeMap<String, u64>,
}

impl From<&OutageCounts> for OutageView {
    fn from(c: &OutageCounts) -> Self {
        Self {
            measured: c.measured,
            total_seconds: c.seconds,
            mean_seconds: c.mean_seconds(),
            buckets: OutageBucket::ALL
                .iter()
                .map(|b| (b.name().to_owned(), c.buckets[*b as usize]))
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeploymentReportView {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub rows: Vec<ReportRow>,
    pub total: ReportTotals,
}

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct ReportTotals {
    pub started: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub rolled_back: u64,
    pub outage: OutageView,
}

fn day(name: &str, value: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| {
        ApiError::InvalidRequest(format!(
            "{name} {:?} is not a date; use YYYY-MM-DD (UTC)",
            value.chars().take(40).collect::<String>()
        ))
    })
}

#[utoipa::path(operation_id = "fleet_deployments", get, path = "/v1/reports/deployments", tag = "fleet", params(ReportParams),
    responses((status = 200, body = DeploymentReportView), (status = 400, body = super::error::ErrorBody)), security(("bearer" = ["read"])))]
pub async fn deployments(
    State(state): State<ApiState>,
    caller: Caller<Read>,
    ApiQuery(q): ApiQuery<ReportParams>,
) -> Result<Json<DeploymentReportView>, ApiError> {
    caller
        .principal()
        .check_fleet_wide(crate::domain::Scope::Read, "read the fleet's deployment report")?;
    let (from, to) = (day("from", &q.from)?, day("to", &q.to)?);
    if to < from {
        return Err(ApiError::InvalidRequest(format!(
            "to ({to}) is before from ({from}); swap them"
        )));
    }
    if (to - from).num_days() >= MAX_REPORT_DAYS {
        return Err(ApiError::InvalidRequest(format!(
            "the range spans more than {MAX_REPORT_DAYS} days; ask for a shorter range"
        )));
    }
    let query = ReportQuery {
        from,
        to,
        region: q.region.as_deref().map(Region::parse).transpose()?,
        group: q.group.as_deref().map(Group::parse).transpose()?,
    };
    let report = state.store().deployment_report(&query).await?;
    let mut all = DeploymentCounts::default();
    let rows = report
        .into_iter()
        .map(|((region, group), c): (_, DeploymentCounts)| {
            all.merge(&c);
            ReportRow {
                region: region.to_string(),
                group: group.to_string(),
                started: c.started,
                succeeded: c.succeeded,
                failed: c.failed,
                rolled_back: c.rolled_back,
                outage: OutageView::from(&c.outage),
            }
        })
        .collect();
    let total = ReportTotals {
        started: all.started,
        succeeded: all.succeeded,
        failed: all.failed,
        rolled_back: all.rolled_back,
        outage: OutageView::from(&all.outage),
    };
    Ok(Json(DeploymentReportView {
        from,
        to,
        rows,
        total,
    }))
}
