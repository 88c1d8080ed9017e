//! `/v1/tenants/{id}/drift` (check one tenant now) and `/v1/fleet/drift` (the
//! tenants whose last check found drift).

use axum::extract::State;
use axum::Json;

use super::auth::{Caller, Read};
use super::extract::{ApiQuery, TenantPath};
use super::views::PageParams;
use super::{ApiError, ApiState};
use crate::app::{DriftError, DriftView, DriftedPage};

impl From<DriftError> for ApiError {
    fn from(e: DriftError) -> Self {
        match e {
            DriftError::NotActive { .. } => ApiError::Conflict {
                code: "refused_by_state",
                message: e.to_string(),
            },
            // Not a passing outage to retry: this server is configured not to check.
            DriftError::NoChecker => ApiError::Conflict {
                code: "drift_unavailable",
                message: "this server was started without a steps configuration, so it cannot check drift; \
                     start `tenantctl serve` with --steps-config"
                    .into(),
            },
            DriftError::Check { ref failed, .. } if failed.retryable => ApiError::Unavailable(e.to_string()),
            DriftError::Check { .. } => ApiError::Conflict {
                code: "drift_check_failed",
                message: e.to_string(),
            },
            DriftError::Store(store) => store.into(),
        }
    }
}

/// How old a tenant's last drift check may be for `GET /v1/tenants/{id}/drift` to
/// answer with it instead of comparing the live resources again.
pub const DRIFT_REUSED_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

#[utoipa::path(operation_id = "tenant_drift", get, path = "/v1/tenants/{id}/drift", tag = "tenants",
    params(("id" = crate::domain::TenantId, Path, description = "The tenant's id")),
    responses((status = 200, body = DriftView, description = "Checked now, or answered from a check of the tenant less than 30 s old (`checked_at` says when), which bounds the live AWS and Helm calls any callers make; the result is recorded and a change is added to the history"),
        (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody, description = "`refused_by_state`: the tenant is not Active; `drift_check_failed`: the live resources could not be compared (the message says why); `drift_unavailable`: the server has no steps configuration"),
        (status = 503, body = super::error::ErrorBody, description = "AWS or Helm did not answer; try again")),
    security(("bearer" = ["read"])))]
pub async fn tenant_drift(
    State(state): State<ApiState>,
    caller: Caller<Read>,
    TenantPath(id): TenantPath,
) -> Result<Json<DriftView>, ApiError> {
    if !caller.access.is_unrestricted(crate::domain::Scope::Read) {
        caller
            .principal()
            .tenant(&state, &id, crate::domain::Scope::Read, "check the drift of")
            .await?;
    }
    let check = (state.drift())
        .check_at_most_every(&id, &caller.actor(), DRIFT_REUSED_WITHIN)
        .await?;
    Ok(Json(DriftView::from(&check)))
}

#[utoipa::path(operation_id = "fleet_drift", get, path = "/v1/fleet/drift", tag = "fleet", params(PageParams),
    responses((status = 200, body = DriftedPage, description = "Tenants whose last recorded check found drift, by id")),
    security(("bearer" = ["read"])))]
pub async fn fleet_drift(
    State(state): State<ApiState>,
    caller: Caller<Read>,
    ApiQuery(q): ApiQuery<PageParams>,
) -> Result<Json<DriftedPage>, ApiError> {
    let limit = super::page_limit(q.limit)?;
    let page = state.drift().drifted(limit, q.next_token.as_deref()).await?;
    let mut page: DriftedPage = page.into();
    if !caller.access.is_unrestricted(crate::domain::Scope::Read) {
        // A restricted caller's page costs a point read per drifted tenant listed.
        let principal = caller.principal();
        let mut seen = Vec::with_capacity(page.items.len());
        for item in page.items {
            let Ok(id) = crate::domain::TenantId::parse(&item.tenant) else {
                continue;
            };
            if principal.sees_tenant(&state, &id).await? {
                seen.push(item);
            }
        }
        page.items = seen;
    }
    Ok(Json(page))
}
