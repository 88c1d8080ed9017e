use chrono::Utc;

use super::*;

fn record(id: &str, environment: &str, tier: Tier) -> TenantRecord {
    let mut spec = TenantSpec::example(id, "us-east-1");
    spec.environment = Environment::parse(environment).unwrap();
    spec.tier = tier;
    let state = TenantState::Active {
        release: ReleaseVersion::parse("1.0.0").unwrap(),
        failed_upgrade: None,
    };
    TenantRecord::new(spec, state, Utc::now())
}

const CATALOG: &str = "
version: 1
environment: prod
tenants:
  - id: acme
    region: us-east-1
    tier: large
    hostnames: [acme.example.com]
    release: 1.1.0
  - id: globex
    region: us-east-1
    hostnames: [globex.example.com]
";

fn action(plan: &CatalogPlan, id: &str) -> PlannedTenant {
    plan.tenants
        .iter()
        .find(|t| t.id.as_str() == id)
        .cloned()
        .unwrap_or_else(|| panic!("{id} is not in the plan: {plan:?}"))
}

#[test]
fn the_plan_creates_changes_and_keeps_or_prunes() {
    let catalog = Catalog::parse(CATALOG).unwrap();
    let records = [
        record("acme", "prod", Tier::Small),
        record("initech", "prod", Tier::Small),
        record("umbrella", "staging", Tier::Small),
    ];
    let kept = plan(&catalog, &records, false);
    assert_eq!(action(&kept, "globex").action, CatalogAction::Create);
    let acme = action(&kept, "acme");
    assert_eq!(acme.action, CatalogAction::Change);
    assert_eq!(
        acme.changes,
        [FieldChange {
            field: "tier".into(),
            from: "small".into(),
            to: "large".into()
        }]
    );
    assert_eq!(acme.notes, ["release differs: 1.0.0 → 1.1.0 (use a rollout)"]);
    assert_eq!(action(&kept, "initech").action, CatalogAction::Kept);
    assert!(
        kept.tenants.iter().all(|t| t.id.as_str() != "umbrella"),
        "other environments are left out"
    );

    let pruned = plan(&catalog, &records, true);
    assert_eq!(action(&pruned, "initech").action, CatalogAction::Deprovision);
}

#[test]
fn a_matching_tenant_is_unchanged() {
    let catalog = Catalog::parse(
        r#"{"environment": "prod", "tenants": [{"id": "acme", "region": "us-east-1", "hostnames": ["acme.example.com"]}]}"#,
    )
    .unwrap();
    let plan = plan(&catalog, &[record("acme", "prod", Tier::Small)], true);
    assert_eq!(action(&plan, "acme").action, CatalogAction::Unchanged);
    assert_eq!(plan.tenants.len(), 1);
}

#[test]
fn a_bad_entry_is_named_with_its_field() {
    let bad = CATALOG.replace("tier: large", "tier: huge");
    let err = Catalog::parse(&bad).unwrap_err().to_string();
    assert!(err.starts_with("catalog entry tenants[0] (id acme): "), "{err}");
    assert!(err.contains("huge") && err.contains("small"), "{err}");

    let twice = CATALOG.replace("id: globex", "id: acme");
    let err = Catalog::parse(&twice).unwrap_err().to_string();
    assert!(
        err.contains("tenants[1] (id acme)") && err.contains("listed twice"),
        "{err}"
    );

    let err = Catalog::parse(&CATALOG.replace("version: 1", "version: 2"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("write `version: 1`"), "{err}");

    let err = Catalog::parse(&CATALOG.replace("[globex.example.com]", "[]"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tenants[1] (id globex)") && err.contains("at least one hostname"),
        "{err}"
    );
}

#[test]
fn a_hostname_listed_twice_is_refused_and_one_another_tenant_keeps_blocks_its_entry() {
    let twice = CATALOG.replace("[globex.example.com]", "[globex.example.com, acme.example.com]");
    let err = Catalog::parse(&twice).unwrap_err().to_string();
    assert!(
        err.contains("tenants[1] (id globex)")
            && err.contains("hostname acme.example.com is also listed for tenant acme (tenants[0])"),
        "{err}"
    );

    // initech (stored, not in the catalog) serves the hostname globex asks for.
    let catalog = Catalog::parse(&CATALOG.replace("[globex.example.com]", "[initech.example.com]")).unwrap();
    let records = [
        record("acme", "prod", Tier::Large),
        record("initech", "prod", Tier::Small),
    ];
    let globex = action(&plan(&catalog, &records, false), "globex");
    assert_eq!(globex.action, CatalogAction::Blocked);
    assert_eq!(
        globex.notes,
        ["hostname initech.example.com is served by tenant initech; remove it from initech first, or from this entry"]
    );

    // A hostname the catalog moves off its owner's entry is not in the way.
    let moved = "
version: 1
environment: prod
tenants:
  - id: acme
    region: us-east-1
    hostnames: [acme.example.com]
  - id: initech
    region: us-east-1
    hostnames: [initech-new.example.com]
  - id: globex
    region: us-east-1
    hostnames: [initech.example.com]
";
    let catalog = Catalog::parse(moved).unwrap();
    let planned = plan(&catalog, &records, false);
    assert_eq!(action(&planned, "globex").action, CatalogAction::Create);
    assert_eq!(action(&planned, "initech").action, CatalogAction::Change);
}
