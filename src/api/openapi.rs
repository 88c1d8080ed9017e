//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{error, fleet, ops, policy, rollouts, tenants, views};

#[derive(OpenApi)]
#[openapi(
    info(title = "tenant-orchestrator", description = "Per-tenant lifecycle state machines: provision, upgrade, roll back, deprovision. Bearer tokens with scopes read < deploy < admin."),
    paths(
        tenants::create, tenants::list, tenants::get, tenants::update, tenants::upgrade, tenants::retry,
        tenants::rollback, tenants::restore, tenants::deprovision, tenants::history,
        policy::get, policy::set_default, policy::unset_default, policy::set_group, policy::unset_group,
        rollouts::plan, rollouts::start, rollouts::list, rollouts::get, rollouts::pause, rollouts::resume,
        rollouts::abort, rollouts::approve, rollouts::retry,
        fleet::summary, fleet::deployments,
        ops::healthz, ops::readyz, ops::metrics,
    ),
    components(schemas(
        error::ErrorBody, error::ErrorDetail,
        views::CreateTenant, views::UpdateTenant, views::Upgrade, views::Restore, views::TenantView, views::LeaseView,
        views::FactsView, views::TenantRow, views::TenantPage, views::HistoryEntry, views::HistoryPage,
        policy::PolicyView, policy::PolicyChangeView, policy::RegionDefault, policy::GroupOverride, policy::SetRelease,
        rollouts::StartRollout, rollouts::RolloutView, rollouts::RolloutPage,
        fleet::FleetSummaryView, fleet::DeploymentReportView, fleet::ReportRow, fleet::ReportTotals, ops::Health,
    )),
    modifiers(&BearerAuth),
    tags((name = "tenants"), (name = "rollouts"), (name = "policy"), (name = "fleet"), (name = "ops"))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
