//! Request and response bodies of the API. Requests are parsed straight into domain
//! newtypes and refuse unknown fields; responses are views of the store's records, so
//! the wire format does not change when a record's layout does.

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::openapi::schema::{ArrayBuilder, SchemaType, Type};
use utoipa::ToSchema;

use crate::app::views::{maintenance_text, windows_as_text, windows_text};
pub use crate::app::views::{
    FactsView, HistoryEntry, HistoryPage, LeaseView, PlatformView, RevisionParts, RevisionView, SchemaView,
    TenantPage, TenantRow, TenantView,
};
use crate::domain::{
    Environment, Group, Hostname, MaintenanceWindows, PlatformVersion, Region, ReleaseVersion, SnapshotName,
    TenantId, Tier, MAX_HOSTNAMES,
};

/// `POST /v1/tenants`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    pub id: TenantId,
    pub region: Region,
    pub environment: Environment,
    /// Rollout group (ring); default `default`.
    #[serde(default = "Group::default_group")]
    #[schema(default = "default")]
    pub group: Group,
    #[serde(default = "small")]
    #[schema(default = "small")]
    pub tier: Tier,
    /// One to 40; each once.
    #[schema(schema_with = hostname_list)]
    pub hostnames: Vec<Hostname>,
    /// Release to provision; default: what the version policy gives the tenant.
    #[serde(default)]
    pub release: Option<ReleaseVersion>,
    /// Keep the tenant on its release: rollouts skip it.
    #[serde(default)]
    pub pin: bool,
    /// Weekly windows in which rollouts may start the tenant, in its time zone;
    /// default any time.
    #[serde(
        default,
        deserialize_with = "windows_text",
        serialize_with = "windows_as_text"
    )]
    #[schema(schema_with = maintenance_text)]
    pub maintenance: Option<MaintenanceWindows>,
    /// Published platform version (MAJOR.MINOR.PATCH) whose template and chart the
    /// tenant is deployed with; default: the one the version policy gives the tenant,
    /// else those built into the worker's `tenantctl`. Must be published.
    #[serde(default)]
    pub platform: Option<PlatformVersion>,
    /// Keep the tenant on its platform version: platform rollouts skip it.
    #[serde(default)]
    pub pin_platform: bool,
}

/// As [`windows_as_text`], for a change: `null` removes the windows.
fn change_as_text<S: serde::Serializer>(
    w: &Option<Option<MaintenanceWindows>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    windows_as_text(&w.clone().flatten(), s)
}

/// As [`windows_text`], telling an absent field from `null`.
fn present_windows<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<MaintenanceWindows>>, D::Error> {
    windows_text(d).map(Some)
}

/// Hostnames: one to [`MAX_HOSTNAMES`], each once.
fn hostname_list() -> utoipa::openapi::schema::Array {
    ArrayBuilder::new()
        .items(utoipa::openapi::Ref::from_schema_name(Hostname::name()))
        .min_items(Some(1))
        .max_items(Some(MAX_HOSTNAMES))
        .unique_items(true)
        .build()
}

/// As [`hostname_list`], or `null` for no change.
fn optional_hostname_list() -> utoipa::openapi::schema::Array {
    let mut list = hostname_list();
    list.schema_type = SchemaType::from_iter([Type::Array, Type::Null]);
    list
}

/// A version number. JSON does not tell `3` from `3.0` (JSON Schema calls both the
/// integer 3), so a whole number written with a fraction is read as that number.
fn whole_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    let whole = n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(f))
            .map(|f| f as u64)
    });
    whole.map(Some).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "expected_version {n} is not a version; pass the `version` a GET returned"
        ))
    })
}

fn small() -> Tier {
    Tier::Small
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `PATCH /v1/tenants/{id}`: fields left out stay as they are.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    /// Apply only if the tenant is still at this version (from GET); else 409.
    #[serde(
        default,
        deserialize_with = "whole_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub expected_version: Option<u64>,
    /// A release pins the tenant (rollouts skip it); `null` unpins.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<ReleaseVersion>)]
    pub pinned_release: Option<Option<ReleaseVersion>>,
    /// Replaces the hostnames (one to 40; each once); they take effect at the next
    /// deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = optional_hostname_list)]
    pub hostnames: Option<Vec<Hostname>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
    /// Weekly windows in which rollouts may start the tenant; `null` removes them.
    #[serde(
        default,
        deserialize_with = "present_windows",
        serialize_with = "change_as_text",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(schema_with = maintenance_text)]
    pub maintenance: Option<Option<MaintenanceWindows>>,
    /// A published platform version (MAJOR.MINOR.PATCH) whose template and chart the
    /// tenant's next deployment (upgrade or reconcile) applies; `null` returns it to
    /// the built-in ones.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<PlatformVersion>)]
    pub platform: Option<Option<PlatformVersion>>,
    /// A published platform version pins the tenant to it (and makes it its platform;
    /// platform rollouts skip it); `null` unpins, keeping the platform.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<PlatformVersion>)]
    pub pinned_platform: Option<Option<PlatformVersion>>,
}

impl UpdateTenant {
    /// The body that asks for `change`, at `expected_version` if given.
    pub fn of(change: &crate::app::SpecChange, expected_version: Option<u64>) -> Self {
        UpdateTenant {
            expected_version,
            pinned_release: change.pinned_release.clone(),
            hostnames: change.hostnames.clone(),
            tier: change.tier,
            maintenance: change.maintenance.clone(),
            platform: change.platform,
            pinned_platform: change.pinned_platform,
        }
    }
}

/// `PUT` body of a default or an override: the release, the platform version, or
/// both; what is left out stays as it is.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetVersions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<ReleaseVersion>,
    /// A published platform version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformVersion>,
}

/// `POST /v1/tenants/{id}/upgrade`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Upgrade {
    pub release: ReleaseVersion,
}

/// `POST /v1/tenants/{id}/restore`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Restore {
    /// An RDS cluster snapshot identifier: one of the tenant's `facts.snapshots`, or,
    /// with `external`, one taken outside tenantctl.
    pub snapshot: SnapshotName,
    /// The snapshot was taken outside tenantctl (it is not in `facts.snapshots`):
    /// restore from it anyway. A restore from a snapshot that does not exist fails
    /// the tenant. Default false: such a snapshot is refused (400).
    #[serde(default)]
    pub external: bool,
}

/// `limit` and `next_token` of a paged request.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// 1-1000; default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// From the previous page.
    pub next_token: Option<String>,
}

/// Query parameters of the tenant commands and `PATCH /v1/tenants/{id}`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HoldOverride {
    /// Act although a running rollout holds the tenant (admin scope only); the
    /// tenant's history records the override. Default false: refused with 409
    /// `held_by_rollout`.
    #[serde(default)]
    pub override_rollout_hold: bool,
    /// Act although a freeze holds the tenant's environment and region (admin scope
    /// only), saying why; the tenant's history records the freeze, the actor and the
    /// reason. Absent: refused with 409 `frozen`. `retry` is not held by freezes and
    /// ignores it.
    #[param(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub override_freeze: Option<String>,
}

/// Filters of `GET /v1/tenants`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TenantFilters {
    #[param(value_type = Option<Region>)]
    pub region: Option<String>,
    /// A state name, e.g. `Active` or `Failed`.
    #[param(schema_with = state_names)]
    pub state: Option<String>,
    /// Current release (or the one being provisioned).
    #[param(value_type = Option<ReleaseVersion>)]
    pub release: Option<String>,
    #[param(value_type = Option<Group>)]
    pub group: Option<String>,
    /// 1-1000; default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    pub next_token: Option<String>,
}

/// The tenant states a listing can filter on.
fn state_names() -> utoipa::openapi::schema::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(crate::machine::TenantState::NAMES))
        .build()
}
