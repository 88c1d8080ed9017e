//! `/v1/policy`: the version policy, as `tenantctl policy` shows and edits it.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{Admin, Caller, Read};
use super::extract::{ApiJson, ApiQuery};
use super::views::SetVersions;
use super::{ApiError, ApiState};
use crate::domain::{Environment, Group, Region, VersionPolicy};
use crate::ports::PolicyChange;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RegionDefault {
    pub environment: String,
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GroupOverride {
    pub environment: String,
    pub group: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

/// Default release and platform version per (environment, region); override per
/// (environment, group). A tenant's pin wins over both.
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

impl SetVersions {
    /// Checks the body names something, and that its platform version is published.
    async fn checked(self, state: &ApiState) -> Result<Self, ApiError> {
        if self.release.is_none() && self.platform.is_none() {
            return Err(ApiError::InvalidRequest(
                "nothing to set; send \"release\", \"platform\" or both".into(),
            ));
        }
        if let Some(platform) = self.platform {
            state.commands().check_platform(platform).await?;
        }
        Ok(self)
    }

    /// What the change says, for the policy's audit trail.
    fn describe(&self, key: &str) -> String {
        let mut parts = Vec::new();
        if let Some(r) = &self.release {
            parts.push(format!("release {r}"));
        }
        if let Some(p) = &self.platform {
            parts.push(format!("platform {p}"));
        }
        format!("set {key} to {}", parts.join(" and "))
    }
}

/// Which versions a `DELETE` removes: both by default.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Unset {
    /// `release` or `platform` removes only that one; without it, both.
    #[param(pattern = "^(release|platform)$")]
    pub only: Option<String>,
}

impl Unset {
    /// `(release, platform)`: which of the two to remove.
    fn which(&self) -> Result<(bool, bool), ApiError> {
        match self.only.as_deref() {
            None => Ok((true, true)),
            Some("release") => Ok((true, false)),
            Some("platform") => Ok((false, true)),
            Some(other) => Err(ApiError::InvalidRequest(format!(
                "only={other} is not known; use only=release or only=platform, or leave it out to remove both"
            ))),
        }
    }

    fn describe(&self, key: &str) -> String {
        match self.only.as_deref() {
            Some(one) => format!("remove {key} {one}"),
            None => format!("remove {key}"),
        }
    }
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
    params(("environment" = Environment, Path), ("region" = Region, Path)), request_body = SetVersions,
    responses((status = 200, body = PolicyView), (status = 400, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody, description = "`unknown_platform_version`: the platform version is not published; `platform_unavailable`: no platform bucket is configured")),
    security(("bearer" = ["admin"])))]
pub async fn set_default(
    State(state): State<ApiState>,
    caller: Caller<Admin>,
    axum::extract::Path((environment, region)): axum::extract::Path<(String, String)>,
    ApiJson(body): ApiJson<SetVersions>,
) -> Result<Json<PolicyView>, ApiError> {
    caller
        .principal()
        .check_fleet_action(
            &state,
            crate::domain::Scope::Admin,
            "set a default of the version policy",
            &format!("policy/defaults/{environment}/{region}"),
        )
        .await?;
    let (env, region) = path_values(&environment, &region, Environment::parse, Region::parse)?;
    let body = body.checked(&state).await?;
    change(
        &state,
        &caller,
        body.describe(&format!("default {env}/{region}")),
        |p| {
            if let Some(release) = &body.release {
                p.set_default(env.clone(), region.clone(), release.clone());
            }
            if let Some(platform) = body.platform {
                p.set_platform_default(env.clone(), region.clone(), platform);
            }
        },
    )
    .await
}

#[utoipa::path(operation_id = "policy_unset_default", delete, path = "/v1/policy/defaults/{environment}/{region}", tag = "policy",
    params(("environment" = Environment, Path), ("region" = Region, Path), Unset),
    responses((status = 200, body = PolicyView), (status = 400, body = super::error::ErrorBody)), security(("bearer" = ["admin"])))]
pub async fn unset_default(
    State(state): State<ApiState>,
    caller: Caller<Admin>,
    axum::extract::Path((environment, region)): axum::extract::Path<(String, String)>,
    ApiQuery(unset): ApiQuery<Unset>,
) -> Result<Json<PolicyView>, ApiError> {
    caller
        .principal()
        .check_fleet_action(
            &state,
            crate::domain::Scope::Admin,
            "remove a default of the version policy",
            &format!("policy/defaults/{environment}/{region}"),
        )
        .await?;
    let (env, region) = path_values(&environment, &region, Environment::parse, Region::parse)?;
    let (release, platform) = unset.which()?;
    change(
        &state,
        &caller,
        unset.describe(&format!("default {env}/{region}")),
        |p| {
            if release {
                p.remove_default(&env, &region);
            }
            if platform {
                p.remove_platform_default(&env, &region);
            }
        },
    )
    .await
}

#[utoipa::path(operation_id = "policy_set_group", put, path = "/v1/policy/groups/{environment}/{group}", tag = "policy",
    params(("environment" = Environment, Path), ("group" = Group, Path)), request_body = SetVersions,
    responses((status = 200, body = PolicyView), (status = 400, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody, description = "`unknown_platform_version`: the platform version is not published; `platform_unavailable`: no platform bucket is configured")),
    security(("bearer" = ["admin"])))]
pub async fn set_group(
    State(state): State<ApiState>,
    caller: Caller<Admin>,
    axum::extract::Path((environment, group)): axum::extract::Path<(String, String)>,
    ApiJson(body): ApiJson<SetVersions>,
) -> Result<Json<PolicyView>, ApiError> {
    caller
        .principal()
        .check_fleet_action(
            &state,
            crate::domain::Scope::Admin,
            "set a group override of the version policy",
            &format!("policy/groups/{environment}/{group}"),
        )
        .await?;
    let (env, group) = path_values(&environment, &group, Environment::parse, Group::parse)?;
    let body = body.checked(&state).await?;
    change(
        &state,
        &caller,
        body.describe(&format!("group {env}/{group}")),
        |p| {
            if let Some(release) = &body.release {
                p.set_group_override(env.clone(), group.clone(), release.clone());
            }
            if let Some(platform) = body.platform {
                p.set_platform_group_override(env.clone(), group.clone(), platform);
            }
        },
    )
    .await
}

#[utoipa::path(operation_id = "policy_unset_group", delete, path = "/v1/policy/groups/{environment}/{group}", tag = "policy",
    params(("environment" = Environment, Path), ("group" = Group, Path), Unset),
    responses((status = 200, body = PolicyView), (status = 400, body = super::error::ErrorBody)), security(("bearer" = ["admin"])))]
pub async fn unset_group(
    State(state): State<ApiState>,
    caller: Caller<Admin>,
    axum::extract::Path((environment, group)): axum::extract::Path<(String, String)>,
    ApiQuery(unset): ApiQuery<Unset>,
) -> Result<Json<PolicyView>, ApiError> {
    caller
        .principal()
        .check_fleet_action(
            &state,
            crate::domain::Scope::Admin,
            "remove a group override of the version policy",
            &format!("policy/groups/{environment}/{group}"),
        )
        .await?;
    let (env, group) = path_values(&environment, &group, Environment::parse, Group::parse)?;
    let (release, platform) = unset.which()?;
    change(
        &state,
        &caller,
        unset.describe(&format!("group {env}/{group}")),
        |p| {
            if release {
                p.remove_group_override(&env, &group);
            }
            if platform {
                p.remove_platform_group_override(&env, &group);
            }
        },
    )
    .await
}
