//! `/v1/policy`: the version policy, as `tenantctl policy` shows and edits it.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{Admin, Caller, Read};
use super::extract::ApiJson;
use super::{ApiError, ApiState};
use crate::domain::{Environment, Group, Region, ReleaseVersion, VersionPolicy};
use crate::ports::PolicyChange;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RegionDefault {
    pub environment: String,
    pub region: String,
    pub release: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GroupOverride {
    pub environment: String,
    pub group: String,
    pub release: String,
}

/// Default release per (environment, region); override per (environment, group). A
/// tenant's pin wins over both.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PolicyView {
    pub defaults: Vec<RegionDefault>,
    pub group_overrides: Vec<GroupOverride>,
    /// Who changed the policy and how, oldest first (the newest 100).
    #[serde(default)]
    pub changes: Vec<PolicyChangeView>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PolicyChangeView {
    pub at: chrono::DateTime<chrono::Utc>,
    /// `api:<token name>` or `operator:<user>`.
    pub actor: String,
    pub what: String,
}

impl PolicyView {
    fn of(policy: &VersionPolicy, changes: Vec<PolicyChange>) -> Result<Self, ApiError> {
        let mut view: PolicyView = serde_json::to_value(policy)
            .and_then(serde_json::from_value)
            .map_err(|e| ApiError::Internal(format!("policy view: {e}")))?;
        view.changes = changes
            .into_iter()
            .map(|c| PolicyChangeView {
                at: c.at,
                actor: c.actor,
                what: c.what,
            })
            .collect();
        Ok(view)
    }
}

/// Applies one change to the stored policy as `caller`, recorded as `what`.
async fn change(
    state: &ApiState,
    caller: &Caller<Admin>,
    what: String,
    apply: impl Fn(&mut VersionPolicy) + Send + Sync,
) -> Result<Json<PolicyView>, ApiError> {
    let (policy, changes) = state
        .store()
        .update_policy(&caller.actor().0, &what, &apply)
        .await?;
    tracing::info!(caller = %caller.name, change = %what, "policy changed");
    Ok(Json(PolicyView::of(&policy, changes)?))
}

/// `PUT` body of a default or an override.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRelease {
    pub release: ReleaseVersion,
}

fn path_values<A, B>(
    a: &str,
    b: &str,
    parse_a: fn(&str) -> Result<A, crate::domain::InvalidValue>,
    parse_b: fn(&str) -> Result<B, crate::domain::InvalidValue>,
) -> Result<(A, B), ApiError> {
    Ok((parse_a(a)?, parse_b(b)?))
}

#[utoipa::path(operation_id = "policy_get", get, path = "/v1/policy", tag = "policy", responses((status = 200, body = PolicyView)), security(("bearer" = ["read"])))]
pub async fn get(State(state): State<ApiState>, _: Caller<Read>) -> Result<Json<PolicyView>, ApiError> {
    let (policy, changes) = state.store().load_policy_audited().await?;
    Ok(Json(PolicyView::of(&policy, changes)?))
}

#[utoipa::path(operation_id = "policy_set_default", put, path = "/v1/policy/defaults/{environment}/{region}", tag = "policy",
    params(("environment" = Environment, Path), ("region" = Region, Path)), request_body = SetRelease,
    responses((status = 200, body = PolicyView), (status = 400, body = super::error::ErrorBody)), security(("bearer" = ["admin"])))]
pub async fn set_default(
    State(state): State<ApiState>,
    caller: Caller<Admin>,
    axum::extract::Path((environment, region)): axum::extract::Path<(String, String)>,
    ApiJson(body): ApiJson<SetRelease>,
) -> Result<Json<PolicyView>, ApiError> {
    let (env, region) = path_values(&environment, &region, Environment::parse, Region::parse)?;
    change(
        &state,
        &caller,
        format!("set default {env}/{region} to {}", body.release),
        |p| drop(p.set_default(env.clone(), region.clone(), body.release.clone())),
    )
    .await
}

#[utoipa::path(operation_id = "policy_unset_default", delete, path = "/v1/policy/defaults/{environment}/{region}", tag = "policy",
    params(("environment" = Environment, Path), ("region" = Region, Path)),
    responses((status = 200, body = PolicyView)), security(("bearer" = ["admin"])))]
pub async fn unset_default(
    State(state): State<ApiState>,
    caller: Caller<Admin>,
    axum::extract::Path((environment, region)): axum::extract::Path<(String, String)>,
) -> Result<Json<PolicyView>, ApiError> {
    let (env, region) = path_values(&environment, &region, Environment::parse, Region::parse)?;
    change(&state, &caller, format!("remove default {env}/{region}"), |p| {
        drop(p.remove_default(&env, &region))
    })
    .await
}

#[utoipa::path(operation_id = "policy_set_group", put, path = "/v1/policy/groups/{environment}/{group}", tag = "policy",
    params(("environment" = Environment, Path), ("group" = Group, Path)), request_body = SetRelease,
    responses((status = 200, body = PolicyView), (status = 400, body = super::error::ErrorBody)), security(("bearer" = ["admin"])))]
pub async fn set_group(
    State(state): State<ApiState>,
    caller: Caller<Admin>,
    axum::extract::Path((environment, group)): axum::extract::Path<(String, String)>,
    ApiJson(body): ApiJson<SetRelease>,
) -> Result<Json<PolicyView>, ApiError> {
    let (env, group) = path_values(&environment, &group, Environment::parse, Group::parse)?;
    change(
        &state,
        &caller,
        format!("set group {env}/{group} to {}", body.release),
        |p| drop(p.set_group_override(env.clone(), group.clone(), body.release.clone())),
    )
    .await
}

#[utoipa::path(operation_id = "policy_unset_group", delete, path = "/v1/policy/groups/{environment}/{group}", tag = "policy",
    params(("environment" = Environment, Path), ("group" = Group, Path)),
    responses((status = 200, body = PolicyView)), security(("bearer" = ["admin"])))]
pub async fn unset_group(
    State(state): State<ApiState>,
    caller: Caller<Admin>,
    axum::extract::Path((environment, group)): axum::extract::Path<(String, String)>,
) -> Result<Json<PolicyView>, ApiError> {
    let (env, group) = path_values(&environment, &group, Environment::parse, Group::parse)?;
    change(&state, &caller, format!("remove group {env}/{group}"), |p| {
        drop(p.remove_group_override(&env, &group))
    })
    .await
}
