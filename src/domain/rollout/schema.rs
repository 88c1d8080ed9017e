//! The JSON Schema of a rollout spec, field by field as `RolloutSpec`, `Selector` and
//! `Strategy` read it. Rules between fields (at least one target, waves that grow and
//! end at "100%", bake checks that fit the bake time, a tenant not both selected and
//! excluded) are beyond what the OpenAPI document carries; the server answers them
//! with 400 and a message.

use serde_json::json;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;

use super::RolloutSpec;
use crate::domain::{Environment, Group, PlatformVersion, Region, ReleaseVersion, TenantId, Tier};

fn component(name: &str) -> serde_json::Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// Durations as humantime reads them: `30m`, `4h`, `1h30m`, `1h 30m`.
const DURATION: &str = "^ *([0-9]+ *[A-Za-z]+ *)+$";

impl RolloutSpec {
    fn json_schema() -> serde_json::Value {
        let list = |name: &str| json!({ "type": "array", "items": component(name) });
        let order = |name: &str| json!({ "type": "array", "items": component(name), "uniqueItems": true });
        let limit = json!({ "type": ["integer", "null"], "minimum": 1, "maximum": u32::MAX });
        let wave = json!({ "oneOf": [
            { "type": "integer", "minimum": 1, "maximum": 999_999_999 },
            { "type": "string", "pattern": "^ *([1-9][0-9]{0,8}|([1-9][0-9]?|100) *%) *$" },
        ]});
        let budget = json!({ "oneOf": [
            { "type": "integer", "minimum": 0, "maximum": 999_999_999 },
            { "type": "string", "pattern": "^ *([0-9]{1,9}|([0-9]{1,2}|100) *%) *$" },
        ]});
        json!({
            "type": "object",
            "description": "A rollout: move the selected tenants to a target revision, following `strategy`. \
                The target is any of `release`, `platform`, `change` and `reconcile: true`, at least one (a spec \
                with none is answered with 400); what it leaves out, each tenant keeps (a platform rollout runs \
                each tenant on the release it runs).",
            "additionalProperties": false,
            "properties": {
                "release": component("ReleaseVersion"),
                "platform": component("PlatformVersion"),
                "change": {
                    "type": "object",
                    "description": "Spec fields set on every selected tenant; a rollback restores each tenant's own.",
                    "additionalProperties": false,
                    "minProperties": 1,
                    "properties": { "tier": component("Tier") },
                },
                "reconcile": {
                    "type": "boolean",
                    "description": "Apply each selected tenant's desired revision again even where it looks applied (e.g. after drift).",
                },
                "selector": {
                    "type": "object",
                    "description": "Which tenants: each non-empty list narrows the selection; `exclude` removes tenants (not also listed in `tenants`); `drifted: true` keeps only tenants whose last drift check found drift; `environment` keeps only that environment's tenants.",
                    "additionalProperties": false,
                    "properties": {
                        "regions": list("Region"),
                        "groups": list("Group"),
                        "tiers": list("Tier"),
                        "tenants": list("TenantId"),
                        "exclude": list("TenantId"),
                        "drifted": { "type": "boolean" },
                        "environment": { "oneOf": [{ "type": "null" }, component("Environment")] },
                    },
                },
                "on_complete": {
                    "type": "object",
                    "description": "What follows completion. `advance_policy: true` sets the version policy of `selector.environment` (required) to the rollout's release and platform: the default of each region its waves covered, or the override of its group when the selector names exactly one group.",
                    "additionalProperties": false,
                    "properties": { "advance_policy": { "type": "boolean" } },
                },
                "strategy": {
                    "type": "object",
                    "description": "How the rollout moves; every field has a default.",
                    "additionalProperties": false,
                    "properties": {
                        "region_order": order("Region"),
                        "max_parallel_regions": { "type": "integer", "minimum": 1, "maximum": u32::MAX },
                        "group_order": order("Group"),
                        "waves": {
                            "type": "array",
                            "description": "Cumulative wave sizes per region, growing, the last \"100%\": a count of tenants or a percentage.",
                            "minItems": 1,
                            "items": wave,
                            "example": ["1", "10%", "50%", "100%"],
                        },
                        "max_in_flight_per_wave": limit,
                        "max_in_flight_per_region": limit,
                        "bake_time": { "type": "string", "pattern": DURATION, "description": "At most 7d; 0s skips baking.", "example": "30m" },
                        "bake_checks": { "type": "integer", "minimum": 0, "maximum": u32::MAX, "description": "Passing health checks needed, one every bake_check_interval, within bake_time." },
                        "bake_check_interval": { "type": "string", "pattern": DURATION, "description": "At least 1s.", "example": "5m" },
                        "failure_budget": budget,
                        "on_breach": {
                            "type": "object",
                            "additionalProperties": false,
                            "properties": {
                                "action": { "type": "string", "enum": ["halt"] },
                                "rollback": { "type": "string", "enum": ["failed", "wave", "none"] },
                            },
                        },
                        "approvals": {
                            "type": "object",
                            "additionalProperties": false,
                            "properties": {
                                "after_canary": { "type": "boolean" },
                                "between_regions": { "type": "boolean" },
                            },
                        },
                        "allow_replacement": {
                            "type": "array",
                            "description": "Logical ids of stack resources (e.g. Database) this rollout may replace or remove; any other replacement or removal of a database or bucket is refused.",
                            "items": { "type": "string", "pattern": "^[A-Za-z0-9]{1,255}$" },
                            "uniqueItems": true,
                            "example": ["Database"],
                        },
                        "migration_restore": {
                            "type": "string",
                            "enum": ["automatic", "approval"],
                            "description": "When an upgrade fails after its schema migration ran: restore the pre-upgrade snapshot at once (automatic), or stop the tenant Failed until an operator restores it (approval, the default).",
                        },
                        "outage_budget": {
                            "type": ["string", "null"],
                            "pattern": DURATION,
                            "description": "The longest a tenant may be out of service during its upgrade, 1s to 7d; left out or null: no budget. A tenant with maintenance windows starts only in a window that stays open this long, and an upgrade whose measured outage is longer is flagged in the rollout's outcome.",
                            "example": "10m",
                        },
                    },
                },
            },
            "example": { "release": "1.4.2", "selector": { "regions": ["eu-west-1"] }, "strategy": { "waves": ["1", "50%", "100%"], "bake_time": "0s", "bake_checks": 0 } },
        })
    }
}

impl utoipa::PartialSchema for RolloutSpec {
    fn schema() -> RefOr<Schema> {
        serde_json::from_value(Self::json_schema()).expect("the rollout spec schema is a valid schema")
    }
}

impl utoipa::ToSchema for RolloutSpec {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        use utoipa::PartialSchema;
        schemas.push((ReleaseVersion::name().into(), ReleaseVersion::schema()));
        schemas.push((PlatformVersion::name().into(), PlatformVersion::schema()));
        schemas.push((Region::name().into(), Region::schema()));
        schemas.push((Group::name().into(), Group::schema()));
        schemas.push((Tier::name().into(), Tier::schema()));
        schemas.push((TenantId::name().into(), TenantId::schema()));
        schemas.push((Environment::name().into(), Environment::schema()));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::RolloutSpec;

    /// Specs the parser takes must fit the schema, and the schema must refuse what
    /// the parser refuses field by field.
    #[test]
    fn the_schema_agrees_with_the_parser() {
        let mut schema = RolloutSpec::json_schema();
        let mut components = serde_json::Map::new();
        for (name, value) in [
            (
                "ReleaseVersion",
                serde_json::to_value(<crate::domain::ReleaseVersion as utoipa::PartialSchema>::schema()),
            ),
            (
                "PlatformVersion",
                serde_json::to_value(<crate::domain::PlatformVersion as utoipa::PartialSchema>::schema()),
            ),
            (
                "Region",
                serde_json::to_value(<crate::domain::Region as utoipa::PartialSchema>::schema()),
            ),
            (
                "Group",
                serde_json::to_value(<crate::domain::Group as utoipa::PartialSchema>::schema()),
            ),
            (
                "Tier",
                serde_json::to_value(<crate::domain::Tier as utoipa::PartialSchema>::schema()),
            ),
            (
                "TenantId",
                serde_json::to_value(<crate::domain::TenantId as utoipa::PartialSchema>::schema()),
            ),
            (
                "Environment",
                serde_json::to_value(<crate::domain::Environment as utoipa::PartialSchema>::schema()),
            ),
        ] {
            components.insert(name.to_owned(), value.unwrap());
        }
        schema["components"] = json!({ "schemas": components });
        let validator = jsonschema::validator_for(&schema).unwrap();
        let samples = [
            json!({ "release": "1.4.2" }),
            json!({ "release": "1.4.2", "selector": { "regions": ["eu-west-1"], "tiers": ["small"], "exclude": ["acme"] } }),
            json!({ "release": "1.4.2", "strategy": { "waves": [1, "10 %", "100%"], "bake_time": "1h 30m", "bake_checks": 2,
                "bake_check_interval": "5m", "failure_budget": "10%", "max_in_flight_per_wave": null,
                "on_breach": { "rollback": "wave" }, "approvals": { "after_canary": false } } }),
            json!({ "release": "1.4.2", "strategy": { "failure_budget": 0, "max_parallel_regions": 2, "region_order": ["us-east-1", "eu-west-1"] } }),
            json!({ "platform": "2026.12.1" }),
            json!({ "change": { "tier": "large" }, "selector": { "groups": ["eu-enterprise"] } }),
            json!({ "reconcile": true }),
            json!({ "release": "1.4.2", "selector": { "environment": "staging" }, "on_complete": { "advance_policy": true } }),
            json!({ "release": "1.4.2", "selector": { "environment": "s" } }),
            json!({ "release": "1.4.2", "on_complete": { "advance": true } }),
            json!({ "release": "1.4.2", "platform": "2026.12.1", "reconcile": false }),
            json!({ "change": {} }),
            json!({ "change": { "tier": "huge" } }),
            json!({ "change": { "tier": "large", "group": "a" } }),
            json!({ "platform": "v2026.12.1" }),
            json!({ "release": "1.4.2", "strategy": { "allow_replacement": ["Database", "Bucket2"] } }),
            json!({ "release": "1.4.2", "strategy": { "allow_replacement": ["Data-base"] } }),
            json!({ "release": "1.4.2", "strategy": { "allow_replacement": ["Database", "Database"] } }),
            json!({ "release": "1.4.2", "strategy": { "migration_restore": "automatic" } }),
            json!({ "release": "1.4.2", "strategy": { "migration_restore": "never" } }),
            json!({ "release": "latest" }),
            json!({ "release": "1.4.2", "extra": 1 }),
            json!({ "release": "1.4.2", "selector": { "region": ["eu-west-1"] } }),
            json!({ "release": "1.4.2", "selector": { "tiers": ["huge"] } }),
            json!({ "release": "1.4.2", "strategy": { "waves": [] } }),
            json!({ "release": "1.4.2", "strategy": { "waves": ["0%", "100%"] } }),
            json!({ "release": "1.4.2", "strategy": { "waves": ["101%"] } }),
            json!({ "release": "1.4.2", "strategy": { "max_parallel_regions": 0 } }),
            json!({ "release": "1.4.2", "strategy": { "max_in_flight_per_region": 0 } }),
            json!({ "release": "1.4.2", "strategy": { "region_order": ["eu-west-1", "eu-west-1"] } }),
            json!({ "release": "1.4.2", "strategy": { "bake_time": "soon" } }),
            json!({ "release": "1.4.2", "strategy": { "failure_budget": "150%" } }),
            json!({ "release": "1.4.2", "strategy": { "on_breach": { "action": "continue" } } }),
            json!({ "release": "1.4.2", "strategy": { "approvals": { "after_canary": "yes" } } }),
            json!({ "release": "1.4.2", "strategy": { "outage_budget": "10m" } }),
            json!({ "release": "1.4.2", "strategy": { "outage_budget": null } }),
            json!({ "release": "1.4.2", "strategy": { "outage_budget": 600 } }),
            json!({ "release": "1.4.2", "strategy": { "outage_budget": "ten minutes" } }),
        ];
        for sample in samples {
            let by_schema = validator.is_valid(&sample);
            let by_parse = serde_json::from_value::<RolloutSpec>(sample.clone());
            assert_eq!(
                by_schema,
                by_parse.is_ok(),
                "{sample}: schema {by_schema}, parse {by_parse:?}"
            );
        }
    }

    /// What the OpenAPI document publishes keeps every target field and the rule that
    /// a change names a field.
    #[test]
    fn the_published_schema_keeps_the_target_fields() {
        let published = serde_json::to_value(<RolloutSpec as utoipa::PartialSchema>::schema()).unwrap();
        for field in [
            "release",
            "platform",
            "change",
            "reconcile",
            "selector",
            "strategy",
        ] {
            assert!(
                published["properties"].get(field).is_some(),
                "{field}: {published:#}"
            );
        }
        assert_eq!(
            published["properties"]["change"]["minProperties"], 1,
            "{published:#}"
        );
        assert!(published.get("required").is_none(), "no single field is required");
    }
}
