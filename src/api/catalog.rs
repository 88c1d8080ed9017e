//! `/v1/catalog`: the plan that reconciles one environment's tenants to a catalog,
//! and its apply (see [`crate::app::catalog`]).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{Caller, Deploy, Read, Scope};
use super::extract::{ApiJson, IdempotencyKey};
use super::{idempotency, ApiError, ApiState};
use crate::app::catalog::{Catalog, CatalogError, CatalogPlan, MAX_DELETIONS};
use crate::record::Actor;

/// `POST /v1/catalog/plan` and `POST /v1/catalog/apply`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CatalogRequest {
    pub catalog: Catalog,
    /// Deprovision the environment's Active or Failed tenants the catalog leaves out
    /// (an apply with it needs an admin token); default false: they are kept.
    #[serde(default)]
    pub prune: bool,
    /// With `prune`, the most tenants an apply may deprovision; more refuses the whole
    /// apply (409 `too_many_deletions`) and nothing changes. Default 0.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 10000)]
    pub max_deletions: u32,
}

impl CatalogRequest {
    /// The catalog, checked, and the deletion limit in range.
    fn checked(&self) -> Result<Catalog, ApiError> {
        if self.max_deletions > MAX_DELETIONS {
            return Err(ApiError::InvalidRequest(format!(
                "max_deletions {} is over {MAX_DELETIONS}; prune in smaller steps",
                self.max_deletions
            )));
        }
        Ok(self.catalog.clone().check()?)
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::Store(s) => s.into(),
            too_many @ CatalogError::TooManyDeletions { .. } => ApiError::Conflict {
                code: "too_many_deletions",
                message: format!("{too_many}; nothing was changed"),
            },
            invalid => ApiError::InvalidRequest(format!("{invalid}; nothing was changed")),
        }
    }
}

#[utoipa::path(operation_id = "catalog_plan", post, path = "/v1/catalog/plan", tag = "catalog", request_body = CatalogRequest,
    responses((status = 200, body = CatalogPlan, description = "The plan (a dry run: nothing changes): per tenant create, change (each field old → new), deprovision (with prune), unchanged, kept or blocked, and notes on what a catalog does not apply (a different release: use a rollout)"),
        (status = 400, body = super::error::ErrorBody, description = "`invalid_request`: an entry is invalid (the message names it), or an id is listed twice")),
    security(("bearer" = ["read"])))]
pub async fn plan(
    State(state): State<ApiState>,
    caller: Caller<Read>,
    ApiJson(body): ApiJson<CatalogRequest>,
) -> Result<Json<CatalogPlan>, ApiError> {
    caller
        .principal()
        .check_fleet_wide(crate::domain::Scope::Read, "plan the catalog")?;
    let catalog = body.checked()?;
    Ok(Json(state.catalog().plan(&catalog, body.prune).await?))
}

#[utoipa::path(operation_id = "catalog_apply", post, path = "/v1/catalog/apply", tag = "catalog", request_body = CatalogRequest,
    params(("Idempotency-Key" = Option<IdempotencyKey>, Header, description = "Replays the first response for a repeated key and body")),
    responses((status = 200, body = CatalogPlan, description = "Applied: each tenant's `status` says whether its action was applied or failed (with `error`); the actions run as `catalog:api:<token>`"),
        (status = 400, body = super::error::ErrorBody, description = "`invalid_request`: an entry is invalid (the message names it), or an id is listed twice; nothing changed"),
        (status = 409, body = super::error::ErrorBody, description = "`too_many_deletions`: prune would deprovision more than `max_deletions`; nothing changed")),
    security(("bearer" = ["deploy"])))]
pub async fn apply(
    State(state): State<ApiState>,
    caller: Caller<Deploy>,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<CatalogRequest>,
) -> Response {
    if let Err(refused) = caller
        .principal()
        .check_fleet_action(
            &state,
            crate::domain::Scope::Deploy,
            "apply the catalog",
            "catalog",
        )
        .await
    {
        return axum::response::IntoResponse::into_response(refused);
    }
    idempotency::run(&state, &caller.name, key, "POST /v1/catalog/apply", &body, || async {
        if body.prune && caller.scope < Scope::Admin {
            return Err(ApiError::Forbidden(
                "prune deprovisions tenants and needs an admin token; leave prune out, or ask an admin".into(),
            ));
        }
        let catalog = body.checked()?;
        let plan = state
            .catalog()
            .apply(
                &catalog,
                body.prune,
                body.max_deletions as usize,
                &Actor::catalog(&caller.actor()),
            )
            .await?;
        tracing::info!(caller = %caller.name, environment = %plan.environment, failed = plan.failed(), "catalog applied");
        Ok((
            StatusCode::OK,
            serde_json::to_value(&plan).expect("views serialize"),
        ))
    })
    .await
}
