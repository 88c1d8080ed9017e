//! `GET /v1/audit`: the audit trail of access decisions on rollout and fleet-wide
//! actions, newest first, for principals with admin on the whole fleet.

use axum::extract::State;
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{Admin, Caller, Scope};
use super::extract::ApiQuery;
use super::{ApiError, ApiState};
use crate::ports::AuditQuery;
use crate::record::{AuditEntry, AuditOutcome};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditFilters {
    /// The oldest entries to return: a duration before now (`24h`, `7d`) or an RFC 3339
    /// time; default 24h.
    pub since: Option<String>,
    /// The newest entries to return, in the same forms; default now.
    pub until: Option<String>,
    /// Only this principal's decisions (its name, as recorded as an actor).
    pub principal: Option<String>,
    /// Only `refused` or only `granted` decisions.
    #[param(pattern = "^(refused|granted)$")]
    pub outcome: Option<String>,
    /// 1-1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The `next_token` of the previous page, with the same filters.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_token: Option<String>,
}

#[utoipa::path(operation_id = "audit_list", get, path = "/v1/audit", tag = "audit", params(AuditFilters),
    responses((status = 200, body = AuditPage, description = "Refused and granted rollout and fleet-wide actions, newest first"),
        (status = 400, body = super::error::ErrorBody, description = "`invalid_request`: a bound, the outcome, the limit or the cursor is not valid"),
        (status = 403, body = super::error::ErrorBody, description = "`forbidden`: the audit trail needs admin on the whole fleet")),
    security(("bearer" = ["admin"])))]
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller<Admin>,
    ApiQuery(q): ApiQuery<AuditFilters>,
) -> Result<Json<AuditPage>, ApiError> {
    // Reading the trail is a read: refused, it is logged and counted, not recorded.
    caller
        .principal()
        .check_fleet_wide(Scope::Admin, "read the audit trail")?;
    let limit = super::page_limit(q.limit)?;
    let now = Utc::now();
    let since = AuditQuery::time("since", q.since.as_deref().unwrap_or("24h"), now)
        .map_err(ApiError::InvalidRequest)?;
    let until = match q.until.as_deref() {
        Some(text) => AuditQuery::time("until", text, now).map_err(ApiError::InvalidRequest)?,
        None => now,
    };
    AuditQuery::check_span(since, until).map_err(ApiError::InvalidRequest)?;
    let outcome = q
        .outcome
        .as_deref()
        .map(AuditOutcome::parse)
        .transpose()
        .map_err(ApiError::InvalidRequest)?;
    let page = state
        .store()
        .audit_page(&AuditQuery {
            since,
            until,
            principal: q.principal,
            outcome,
            limit,
            cursor: q.cursor,
        })
        .await?;
    Ok(Json(AuditPage {
        items: page.items,
        next_token: page.next_token,
    }))
}
