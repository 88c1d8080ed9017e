//! `/v1/policy`: the version policy, as `tenantctl policy` shows and edits it.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{Admin, Caller, Read};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::views::SetVersions;
use super::{ApiError, ApiState};
use crate::domain::{Environment, Group, PlatformVersion, Region, ReleaseVersion, VersionPolicy};
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
    let update = state
        .store()
        .update_policy(&caller.actor().0, &what, &apply)
        .await?;
    match update.changed {
        true => tracing::info!(caller = %caller.name, change = %what, "policy changed"),
        false => tracing::info!(caller = %caller.name, change = %what, "policy already so; nothing changed"),
    }
    Ok(Json(PolicyView::of(&update.policy, update.changes)?))
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

/// What a policy entry is keyed by beside its environment: a region (its default) or
/// a group (its override). The handlers of both kinds take the same checks and record
/// the same way; only the key and the policy's maps differ.
trait EntryKey: Clone + std::fmt::Display + Sized {
    /// The path segment the entries sit under: `defaults`, `groups`.
    const SEGMENT: &'static str;
    /// The entry as the refusals name it: `a default`, `a group override`.
    const NAMED: &'static str;
    /// The entry as the audit trail names it: `default`, `group`.
    const LABEL: &'static str;

    fn parse(text: &str) -> Result<Self, crate::domain::InvalidValue>;
    fn set_release(policy: &mut VersionPolicy, environment: Environment, key: Self, release: ReleaseVersion);
    fn set_platform(
        policy: &mut VersionPolicy,
        environment: Environment,
        key: Self,
        platform: PlatformVersion,
    );
    fn remove_release(policy: &mut VersionPolicy, environment: &Environment, key: &Self);
    fn remove_platform(policy: &mut VersionPolicy, environment: &Environment, key: &Self);
    /// The one region the entry applies to, whose registry must publish its release
    /// (`None`: a group override, which applies in every region).
    fn region(&self) -> Option<&Region> {
        None
    }
}

impl EntryKey for Region {
    const SEGMENT: &'static str = "defaults";
    const NAMED: &'static str = "a default";
    const LABEL: &'static str = "default";

    fn region(&self) -> Option<&Region> {
        Some(self)
    }

    fn parse(text: &str) -> Result<Self, crate::domain::InvalidValue> {
        Region::parse(text)
    }
    fn set_release(policy: &mut VersionPolicy, environment: Environment, key: Self, release: ReleaseVersion) {
        policy.set_default(environment, key, release);
    }
    fn set_platform(
        policy: &mut VersionPolicy,
        environment: Environment,
        key: Self,
        platform: PlatformVersion,
    ) {
        policy.set_platform_default(environment, key, platform);
    }
    fn remove_release(policy: &mut VersionPolicy, environment: &Environment, key: &Self) {
        policy.remove_default(environment, key);
    }
    fn remove_platform(policy: &mut VersionPolicy, environment: &Environment, key: &Self) {
        policy.remove_platform_default(environment, key);
    }
}

impl EntryKey for Group {
    const SEGMENT: &'static str = "groups";
    const NAMED: &'static str = "a group override";
    const LABEL: &'static str = "group";

    fn parse(text: &str) -> Result<Self, crate::domain::InvalidValue> {
        Group::parse(text)
    }
    fn set_release(policy: &mut VersionPolicy, environment: Environment, key: Self, release: ReleaseVersion) {
        policy.set_group_override(environment, key, release);
    }
    fn set_platform(
        policy: &mut VersionPolicy,
        environment: Environment,
        key: Self,
        platform: PlatformVersion,
    ) {
        policy.set_platform_group_override(environment, key, platform);
    }
    fn remove_release(policy: &mut VersionPolicy, environment: &Environment, key: &Self) {
        policy.remove_group_override(environment, key);
    }
    fn remove_platform(policy: &mut VersionPolicy, environment: &Environment, key: &Self) {
        policy.remove_platform_group_override(environment, key);
    }
}

/// An admin may change the policy (refused and recorded otherwise), and the path
/// names a valid environment and key.
async fn checked_entry<K: EntryKey>(
    state: &ApiState,
    caller: &Caller<Admin>,
    verb: &str,
    environment: &str,
    key: &str,
) -> Result<(Environment, K), ApiError> {
    caller
        .principal()
        .check_fleet_action(
            state,
            crate::domain::Scope::Admin,
            &format!("{verb} {} of the version policy", K::NAMED),
            &format!("policy/{}/{environment}/{key}", K::SEGMENT),
        )
        .await?;
    Ok((Environment::parse(environment)?, K::parse(key)?))
}

/// `PUT /v1/policy/{defaults|groups}/{environment}/{key}`.
async fn set_entry<K: EntryKey + Send + Sync>(
    state: &ApiState,
    caller: &Caller<Admin>,
    environment: &str,
    key: &str,
    body: SetVersions,
) -> Result<Json<PolicyView>, ApiError> {
    let (env, key) = checked_entry::<K>(state, caller, "set", environment, key).await?;
    let body = body.checked(state).await?;
    // Refuse a release that has no image where the entry applies (a default: its
    // region; a group override: every region of the fleet), as creating or
    // upgrading a tenant there would be refused.
    if let Some(release) = &body.release {
        state
            .commands()
            .check_policy_release(release, key.region())
            .await?;
    }
    change(
        state,
        caller,
        body.describe(&format!("{} {env}/{key}", K::LABEL)),
        |p| {
            if let Some(release) = &body.release {
                K::set_release(p, env.clone(), key.clone(), release.clone());
            }
            if let Some(platform) = body.platform {
                K::set_platform(p, env.clone(), key.clone(), platform);
            }
        },
    )
    .await
}

/// `DELETE /v1/policy/{defaults|groups}/{environment}/{key}`.
async fn unset_entry<K: EntryKey + Send + Sync>(
    state: &ApiState,
    caller: &Caller<Admin>,
    environment: &str,
    key: &str,
    unset: Unset,
) -> Result<Json<PolicyView>, ApiError> {
    let (env, key) = checked_entry::<K>(state, caller, "remove", environment, key).await?;
    let (release, platform) = unset.which()?;
    change(
        state,
        caller,
        unset.describe(&format!("{} {env}/{key}", K::LABEL)),
        |p| {
            if release {
                K::remove_release(p, &env, &key);
            }
            if platform {
                K::remove_platform(p, &env, &key);
            }
        },
    )
    .await
}

#[utoipa::path(operation_id = "policy_get", get, path = "/v1/policy", tag = "policy", responses((status = 200, body = PolicyView)), security(("bearer" = ["read"])))]
pub async fn get(State(state): State<ApiState>, _: Caller<Read>) -> Result<Json<PolicyView>, ApiError> {
    let (policy, changes) = state.store().load_policy_audited().await?;
    Ok(Json(PolicyView::of(&policy, changes)?))
}

#[utoipa::path(operation_id = "policy_set_default", put, path = "/v1/policy/defaults/{environment}/{region}", tag = "policy",
    params(("environment" = Environment, Path), ("region" = Region, Path)), request_body = SetVersions,
    responses((status = 200, body = PolicyView), (status = 400, body = super::error::ErrorBody, description = "`invalid_request`: nothing to set, or the release has no image in the region"),
        (status = 409, body = super::error::ErrorBody, description = "`unknown_platform_version`: the platform version is not published; `platform_unavailable`: no platform bucket is configured"),
        (status = 503, body = super::error::ErrorBody, description = "`unavailable`: the artifact registry could not say whether the release is published; nothing changed, try again")),
    security(("bearer" = ["admin"])))]
pub async fn set_default(
    State(state): State<ApiState>,
    caller: Caller<Admin>,
    ApiPath((environment, region)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<SetVersions>,
) -> Result<Json<PolicyView>, ApiError> {
    set_entry::<Region>(&state, &caller, &environment, &region, body).await
}

#[utoipa::path(operation_id = "policy_unset_default", delete, path = "/v1/policy/defaults/{environment}/{region}", tag = "policy",
    params(("environment" = Environment, Path), ("region" = Region, Path), Unset),
    responses((status = 200, body = PolicyView), (status = 400, body = super::error::ErrorBody)), security(("bearer" = ["admin"])))]
pub async fn unset_default(
    State(state): State<ApiState>,
    caller: Caller<Admin>,
    ApiPath((environment, region)): ApiPath<(String, String)>,
    ApiQuery(unset): ApiQuery<Unset>,
) -> Result<Json<PolicyView>, ApiError> {
    unset_entry::<Region>(&state, &caller, &environment, &region, unset).await
}

#[utoipa::path(operation_id = "policy_set_group", put, path = "/v1/policy/groups/{environment}/{group}", tag = "policy",
    params(("environment" = Environment, Path), ("group" = Group, Path)), request_body = SetVersions,
    responses((status = 200, body = PolicyView), (status = 400, body = super::error::ErrorBody, description = "`invalid_request`: nothing to set, or the release has no image in one of the fleet's regions"),
        (status = 409, body = super::error::ErrorBody, description = "`unknown_platform_version`: the platform version is not published; `platform_unavailable`: no platform bucket is configured"),
        (status = 503, body = super::error::ErrorBody, description = "`unavailable`: the artifact registry could not say whether the release is published; nothing changed, try again")),
    security(("bearer" = ["admin"])))]
pub async fn set_group(
    State(state): State<ApiState>,
    caller: Caller<Admin>,
    ApiPath((environment, group)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<SetVersions>,
) -> Result<Json<PolicyView>, ApiError> {
    set_entry::<Group>(&state, &caller, &environment, &group, body).await
}

#[utoipa::path(operation_id = "policy_unset_group", delete, path = "/v1/policy/groups/{environment}/{group}", tag = "policy",
    params(("environment" = Environment, Path), ("group" = Group, Path), Unset),
    responses((status = 200, body = PolicyView), (status = 400, body = super::error::ErrorBody)), security(("bearer" = ["admin"])))]
pub async fn unset_group(
    State(state): State<ApiState>,
    caller: Caller<Admin>,
    ApiPath((environment, group)): ApiPath<(String, String)>,
    ApiQuery(unset): ApiQuery<Unset>,
) -> Result<Json<PolicyView>, ApiError> {
    unset_entry::<Group>(&state, &caller, &environment, &group, unset).await
}
