//! The OpenAPI document, generated from the handlers' annotations and the domain
//! types' schemas, then completed with what holds for every operation alike: the
//! error responses the extractors and the auth layer can give, and the links from a
//! created tenant or rollout to the operations on it.

use serde_json::{json, Map, Value};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    audit, catalog, drift, error, events, fleet, freezes, intake, ops, policy, promotions, rollouts, tenants,
    views,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "tenant-orchestrator", description = "Per-tenant lifecycle state machines: provision, upgrade, roll back, deprovision. Bearer tokens with scopes read < deploy < admin."),
    paths(
        tenants::create, tenants::list, tenants::get, tenants::update, tenants::upgrade, tenants::reconcile, tenants::retry,
        tenants::rollback, tenants::restore, tenants::deprovision, tenants::history,
        policy::get, policy::set_default, policy::unset_default, policy::set_group, policy::unset_group,
        rollouts::plan, rollouts::start, rollouts::list, rollouts::get, rollouts::members, rollouts::skipped, rollouts::pause, rollouts::resume,
        rollouts::abort, rollouts::approve, rollouts::retry,
        fleet::summary, fleet::deployments,
        drift::tenant_drift, drift::fleet_drift,
        events::list, events::redeliver,
        promotions::list, promotions::get, promotions::set, promotions::delete, promotions::approve, promotions::cancel,
        freezes::list, freezes::add, freezes::remove,
        ops::healthz, ops::readyz, ops::metrics,
        catalog::plan, catalog::apply,
        intake::stripe,
        audit::list,
    ),
    components(schemas(
        error::ErrorBody, error::ErrorDetail, super::extract::IdempotencyKey,
        crate::domain::Tier, crate::domain::RolloutSpec, crate::domain::Hostname, crate::domain::PromotionName,
        views::CreateTenant, views::UpdateTenant, views::Upgrade, views::Restore, views::TenantView, views::PlatformView, views::RevisionView, views::RevisionParts, views::LeaseView, views::SchemaView, crate::app::views::MigrationView,
        views::FactsView, views::TenantRow, views::TenantPage, views::HistoryEntry, views::HistoryPage,
        policy::PolicyView, policy::PolicyChangeView, policy::RegionDefault, policy::GroupOverride, views::SetVersions,
        rollouts::StartRollout, rollouts::RolloutView, rollouts::WaveBakeEvidence, rollouts::MemberOutageOverrun, crate::record::BakeCheck, crate::record::AlarmSeen, rollouts::RolloutPage, rollouts::RolloutPartPage,
        fleet::FleetSummaryView, fleet::DeploymentReportView, fleet::ReportRow, fleet::ReportTotals, fleet::OutageView, ops::Health,
        catalog::CatalogRequest, crate::app::catalog::Catalog, crate::app::catalog::CatalogTenant, crate::app::catalog::CatalogPlan,
        crate::app::catalog::PlannedTenant, crate::app::catalog::FieldChange, crate::app::catalog::CatalogAction, crate::app::catalog::ActionStatus,
        crate::app::DriftView, crate::app::drift::DriftFindingView, crate::app::DriftedPage, crate::app::drift::DriftedTenant,
        events::EventView, events::DeliveryView, events::EventList,
        promotions::SetPromotion, promotions::PromotionView, promotions::PromotionList,
        intake::StripeEventBody, crate::app::IntakeReply,
        freezes::NewFreeze, freezes::FreezeList, crate::domain::Freeze, rollouts::FreezeOverride,
        audit::AuditPage, crate::record::AuditEntry, crate::record::AuditOutcome,
    )),
    modifiers(&BearerAuth),
    tags((name = "tenants"), (name = "rollouts"), (name = "policy"), (name = "fleet"), (name = "catalog"), (name = "events"), (name = "promotions"), (name = "freezes"), (name = "intake"), (name = "audit"), (name = "ops"))
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

/// The document `/openapi.json` serves.
pub fn document() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serializes");
    doc["components"]["responses"] = error_responses();
    doc["components"]["schemas"]["Maintenance"] =
        serde_json::to_value(crate::domain::MaintenanceWindows::text_schema()).expect("schemas serialize");
    let paths = doc["paths"].as_object_mut().expect("the document has paths");
    for (path, item) in paths.iter_mut() {
        for operation in item.as_object_mut().expect("path items are objects").values_mut() {
            unwrap_optional_parameters(operation);
            add_error_responses(path, operation);
        }
    }
    add_links(&mut doc);
    require_a_change(&mut doc["components"]["schemas"]["UpdateTenant"]);
    require_a_version(&mut doc["components"]["schemas"]["SetVersions"]);
    describe_promotion_template(&mut doc["components"]["schemas"]);
    doc
}

/// A promotion rule's template is a rollout spec without its target: the spec's
/// schema with only `selector`, `strategy` and `on_complete`; its soak a duration.
fn describe_promotion_template(schemas: &mut Value) {
    let spec = &schemas["RolloutSpec"]["properties"];
    let properties: Map<String, Value> = ["selector", "strategy", "on_complete"]
        .into_iter()
        .filter_map(|name| spec.get(name).map(|p| (name.to_owned(), p.clone())))
        .collect();
    let rule = &mut schemas["SetPromotion"]["properties"];
    rule["template"] = json!({
        "type": "object",
        "description": "A rollout spec without `release` and `platform` (selector, strategy, on_complete); its selector's environment is `to`.",
        "additionalProperties": false,
        "properties": properties,
    });
    rule["soak"]["pattern"] = json!("^ *([0-9]+ *[A-Za-z]+ *)+$");
}

/// A policy entry's PUT names a release, a platform version or both; `null` for either
/// means "leave it as it is", so it does not count.
fn require_a_version(set: &mut Value) {
    set["anyOf"] = json!([
        { "required": ["release"], "properties": { "release": { "type": "string" } } },
        { "required": ["platform"], "properties": { "platform": { "type": "string" } } },
    ]);
}

/// A PATCH must change something: one of the fields other than `expected_version`,
/// where `null` for `tier` or `hostnames` means "no change" (and so does not count)
/// but `null` for `pinned_release`, `maintenance`, `platform` or `pinned_platform`
/// removes the value (or returns to the built-in platform).
fn require_a_change(update: &mut Value) {
    update["anyOf"] = json!([
        { "required": ["pinned_release"] },
        { "required": ["maintenance"] },
        { "required": ["platform"] },
        { "required": ["pinned_platform"] },
        { "required": ["hostnames"], "properties": { "hostnames": { "type": "array" } } },
        { "required": ["tier"], "properties": { "tier": { "type": "string" } } },
    ]);
}

/// The error responses shared by many operations, each with the error body.
fn error_responses() -> Value {
    let response = |description: &str| {
        json!({
            "description": description,
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } },
        })
    };
    json!({
        "BadRequest": response("`invalid_request`: a parameter or the body is malformed or out of range; the message says which and how to fix it"),
        "Unauthenticated": response("`unauthenticated`: no bearer token, or one the server does not know"),
        "Forbidden": response("`forbidden`: the token's scope is too low for this operation"),
        "NotFound": response("`tenant_not_found`, `rollout_not_found` or `event_not_found`: nothing has this id"),
        "PayloadTooLarge": response("`payload_too_large`: the body is over 64 KiB"),
        "UnsupportedMediaType": response("`unsupported_media_type`: send the body as `application/json`"),
        "IdempotencyKeyReused": response("`idempotency_key_reused`: the Idempotency-Key was used with another request or body"),
    })
}

/// An optional parameter is left out rather than sent as `null`: its schema is the
/// value's schema, not "null or the value" as for an optional body field.
fn unwrap_optional_parameters(operation: &mut Value) {
    let Some(parameters) = operation.get_mut("parameters").and_then(Value::as_array_mut) else {
        return;
    };
    for parameter in parameters {
        let schema = &mut parameter["schema"];
        if let Some([null, value]) = schema["oneOf"].as_array().map(Vec::as_slice) {
            if null["type"] == "null" {
                *schema = value.clone();
            }
        }
    }
}

/// Adds the responses every operation of its kind can give: 401/403 where a token is
/// needed, 400 where parameters or a body are parsed, 404 for an id in the path,
/// 413/415 for a body, and 409/422 for an `Idempotency-Key`.
fn add_error_responses(path: &str, operation: &mut Value) {
    let parameters = operation["parameters"].as_array().cloned().unwrap_or_default();
    let has_body = operation.get("requestBody").is_some();
    let idempotent = parameters.iter().any(|p| p["name"] == "Idempotency-Key");
    let secured = operation.get("security").is_some();
    let responses = operation["responses"]
        .as_object_mut()
        .expect("operations have responses");
    let mut add = |status: &str, name: &str| {
        responses
            .entry(status)
            .or_insert_with(|| json!({ "$ref": format!("#/components/responses/{name}") }));
    };
    if secured {
        add("401", "Unauthenticated");
        add("403", "Forbidden");
    }
    if !parameters.is_empty() || has_body {
        add("400", "BadRequest");
    }
    if path.contains("/{id}") {
        add("404", "NotFound");
    }
    if has_body {
        add("413", "PayloadTooLarge");
        add("415", "UnsupportedMediaType");
    }
    if idempotent {
        add("422", "IdempotencyKeyReused");
        responses.entry("409").or_insert_with(|| {
            json!({
                "description": "`idempotency_key_in_progress`: a request with this key is still running",
                "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } },
            })
        });
    }
}

/// Links from the response that creates a tenant, a rollout, a freeze or a promotion
/// rule to the operations on it,
/// so a client (or a fuzzer) can follow them with the id it got back.
fn add_links(doc: &mut Value) {
    let tenant =
        |operation: &str| json!({ "operationId": operation, "parameters": { "id": "$response.body#/id" } });
    let rollout = |operation: &str| json!({ "operationId": operation, "parameters": { "id": "$response.body#/rollout/id" } });
    let tenant_links: Map<String, Value> = [
        ("GetTenant", "tenant_get"),
        ("UpdateTenant", "tenant_update"),
        ("TenantHistory", "tenant_history"),
        ("TenantDrift", "tenant_drift"),
        ("UpgradeTenant", "tenant_upgrade"),
        ("ReconcileTenant", "tenant_reconcile"),
        ("RetryTenant", "tenant_retry"),
        ("RollBackTenant", "tenant_rollback"),
        ("RestoreTenant", "tenant_restore"),
        ("DeprovisionTenant", "tenant_deprovision"),
    ]
    .into_iter()
    .map(|(name, operation)| (name.to_owned(), tenant(operation)))
    .collect();
    let rollout_links: Map<String, Value> = [
        ("GetRollout", "rollout_get"),
        ("PauseRollout", "rollout_pause"),
        ("ResumeRollout", "rollout_resume"),
        ("AbortRollout", "rollout_abort"),
        ("ApproveRollout", "rollout_approve"),
        ("RetryRollout", "rollout_retry"),
    ]
    .into_iter()
    .map(|(name, operation)| (name.to_owned(), rollout(operation)))
    .collect();
    let paths = &mut doc["paths"];
    paths["/v1/tenants"]["post"]["responses"]["201"]["links"] = Value::Object(tenant_links);
    for status in ["201", "200"] {
        paths["/v1/rollouts"]["post"]["responses"][status]["links"] = Value::Object(rollout_links.clone());
    }
    paths["/v1/freezes"]["post"]["responses"]["201"]["links"] = json!({
        "RemoveFreeze": { "operationId": "freeze_remove", "parameters": { "id": "$response.body#/id" } }
    });
    let promotion = |operation: &str| json!({ "operationId": operation, "parameters": { "name": "$response.body#/name" } });
    paths["/v1/promotions/{name}"]["put"]["responses"]["200"]["links"] = json!({
        "GetPromotion": promotion("promotion_get"),
        "ApprovePromotion": promotion("promotion_approve"),
        "CancelPromotion": promotion("promotion_cancel"),
        "DeletePromotion": promotion("promotion_delete"),
    });
    // Event ids are made by the server (one per transition), never by a client: a
    // listing is where a caller finds one to redeliver.
    paths["/v1/events"]["get"]["responses"]["200"]["links"] = json!({
        "RedeliverEvent": { "operationId": "event_redeliver", "parameters": { "id": "$response.body#/events/0/id" } }
    });
}
