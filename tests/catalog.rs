//! `tenantctl catalog apply` and `/v1/catalog`: the dry run changes nothing, the apply
//! creates and re-tiers through the operator's commands and is idempotent, tenants
//! left out are kept unless pruned, and a prune over the deletion limit is refused
//! whole. Tenants settle through the `ScriptedStep` test double on DynamoDB Local.

#[path = "api_support/mod.rs"]
mod api_support;
#[path = "common/mod.rs"]
mod common;

use std::process::Output;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tenant_orchestrator::store::TenantStore;

use api_support::{spawn, TestApi, ADMIN, DEPLOY, READ};
use common::tenant_id;

/// acme re-tiered to large, globex new, initech left out.
const CATALOG: &str = "\
version: 1
environment: test
tenants:
  - id: acme
    region: us-east-1
    tier: large
    hostnames: [acme.example.com]
    release: 1.0.0
  - id: globex
    region: us-east-1
    hostnames: [globex.example.com]
    release: 1.0.0
";

/// A table with acme and initech Active (tier small, environment test) and a tenant
/// of another environment the catalog must not touch.
async fn fleet() -> TestApi {
    let api = spawn().await;
    api.create_tenant("acme", "us-east-1", "default").await;
    api.create_tenant("initech", "us-east-1", "default").await;
    let mut other = api_support::tenant_body("umbrella", "us-east-1", "default");
    other["environment"] = json!("staging");
    let reply = api
        .call(Method::POST, "/v1/tenants", Some(DEPLOY), Some(other))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    api.settle().await;
    api
}

async fn tenantctl(api: &TestApi, server: Option<&str>, args: &[&str], catalog: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tenants.yaml");
    std::fs::write(&file, catalog).unwrap();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tenantctl"));
    command
        .env_remove("TENANTCTL_TOKEN")
        .env_remove("TENANTCTL_SERVER")
        .env("TENANTCTL_LOG", "warn")
        .env("TENANTCTL_ACTOR", "alice");
    match server {
        None => command.args(["--table", api.store.table()]),
        Some(token) => command
            .args(["--server", &api.base])
            .env("TENANTCTL_TOKEN", token),
    };
    command
        .args(["catalog", "apply", "-f"])
        .arg(&file)
        .args(args)
        .output()
        .await
        .expect("tenantctl runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_of(o: &Output) -> Value {
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(o), stderr(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

/// The plan's entry for tenant `id`.
fn entry<'a>(plan: &'a Value, id: &str) -> &'a Value {
    plan["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("{id} is not in the plan: {plan}"))
}

/// Every stored tenant's id, state and version: what "nothing changed" compares.
async fn table_state(api: &TestApi) -> Vec<(String, String, u64)> {
    let mut out = Vec::new();
    for id in ["acme", "globex", "initech", "umbrella"] {
        match api.store.load(&tenant_id(id)).await {
            Ok(r) => out.push((id.to_owned(), r.state.label(), r.version)),
            Err(_) => out.push((id.to_owned(), "absent".into(), 0)),
        }
    }
    out
}

#[tokio::test]
async fn the_dry_run_lists_the_plan_and_changes_nothing() {
    let api = fleet().await;
    let before = table_state(&api).await;

    let dry = tenantctl(&api, None, &[], CATALOG).await;
    assert_eq!(dry.status.code(), Some(0), "{}", stderr(&dry));
    let text = stdout(&dry);
    assert!(text.contains("create       globex"), "{text}");
    assert!(text.contains("change       acme"), "{text}");
    assert!(text.contains("tier: small → large"), "{text}");
    assert!(text.contains("kept         initech"), "{text}");
    assert!(text.contains("dry run: nothing changed"), "{text}");
    assert!(
        !text.contains("umbrella"),
        "another environment's tenant is left out: {text}"
    );

    let pruned = json_of(&tenantctl(&api, None, &["--prune", "-o", "json"], CATALOG).await);
    assert_eq!(pruned["applied"], false);
    assert_eq!(entry(&pruned, "initech")["action"], "deprovision");
    assert_eq!(entry(&pruned, "globex")["action"], "create");
    assert_eq!(
        entry(&pruned, "acme")["changes"],
        json!([{"field": "tier", "from": "small", "to": "large"}])
    );

    assert_eq!(table_state(&api).await, before, "a dry run changes nothing");
}

#[tokio::test]
async fn apply_creates_and_re_tiers_keeps_the_rest_and_is_idempotent() {
    let api = fleet().await;

    let applied = json_of(&tenantctl(&api, None, &["--apply", "-o", "json"], CATALOG).await);
    assert_eq!(applied["applied"], true);
    assert_eq!(entry(&applied, "globex")["status"], "applied");
    assert_eq!(entry(&applied, "acme")["status"], "applied");
    assert_eq!(entry(&applied, "initech")["action"], "kept");

    let acme = api.store.load(&tenant_id("acme")).await.unwrap();
    assert_eq!(acme.spec.tier.as_str(), "large");
    let globex = api.store.load(&tenant_id("globex")).await.unwrap();
    assert_eq!(globex.state.name(), "Provisioning");
    let history = api
        .store
        .history(&tenant_id("globex"), 0, 10)
        .await
        .unwrap()
        .items;
    assert_eq!(history[0].actor, "catalog:operator:alice", "{history:?}");
    let initech = api.store.load(&tenant_id("initech")).await.unwrap();
    assert_eq!(initech.state.name(), "Active", "not in the catalog, kept");
    api.settle().await;

    let before = table_state(&api).await;
    let again = json_of(&tenantctl(&api, None, &["--apply", "-o", "json"], CATALOG).await);
    for id in ["acme", "globex"] {
        assert_eq!(entry(&again, id)["action"], "unchanged", "{again}");
        assert_eq!(entry(&again, id)["status"], "planned", "{again}");
    }
    assert_eq!(table_state(&api).await, before, "a second apply changes nothing");
}

#[tokio::test]
async fn prune_over_the_deletion_limit_is_refused_whole() {
    let api = fleet().await;
    let before = table_state(&api).await;

    let refused = tenantctl(&api, None, &["--apply", "--prune"], CATALOG).await;
    assert_eq!(refused.status.code(), Some(2), "{}", stdout(&refused));
    let says = stderr(&refused);
    assert!(
        says.contains("would deprovision 1 tenants (initech)") && says.contains("--max-deletions 1"),
        "{says}"
    );
    assert_eq!(
        table_state(&api).await,
        before,
        "nothing changed, not even the create"
    );

    let pruned = json_of(
        &tenantctl(
            &api,
            None,
            &["--apply", "--prune", "--max-deletions", "1", "-o", "json"],
            CATALOG,
        )
        .await,
    );
    assert_eq!(entry(&pruned, "initech")["status"], "applied");
    let initech = api.store.load(&tenant_id("initech")).await.unwrap();
    assert_eq!(initech.state.name(), "Deprovisioning");
    let umbrella = api.store.load(&tenant_id("umbrella")).await.unwrap();
    assert_eq!(
        umbrella.state.name(),
        "Active",
        "another environment is never pruned"
    );
    api.settle().await;
}

#[tokio::test]
async fn a_bad_entry_is_refused_by_name_and_nothing_changes() {
    let api = fleet().await;
    let before = table_state(&api).await;
    for (bad, says) in [
        (
            CATALOG.replace("tier: large", "tier: huge"),
            "tenants[0] (id acme): unknown variant `huge`",
        ),
        (
            CATALOG.replace("id: globex", "id: acme"),
            "tenants[1] (id acme): id acme is listed twice",
        ),
        (
            CATALOG.replace(
                "region: us-east-1\n    hostnames: [globex",
                "region: mars-1\n    hostnames: [globex",
            ),
            "tenants[1] (id globex)",
        ),
    ] {
        let o = tenantctl(&api, None, &["--apply"], &bad).await;
        assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
        assert!(
            stderr(&o).contains(says) && stderr(&o).contains("nothing was changed"),
            "{}",
            stderr(&o)
        );
    }
    assert_eq!(table_state(&api).await, before);
}

#[tokio::test]
async fn a_failed_action_is_reported_and_the_rest_still_apply() {
    let api = fleet().await;
    // globex asks for initech's hostname: the plan blocks it (as the dry run says) and
    // the apply reports it failed, while acme's change still applies.
    let clash = CATALOG.replace("[globex.example.com]", "[initech.example.com]");
    let dry = tenantctl(&api, None, &[], &clash).await;
    assert!(
        stdout(&dry).contains("hostname initech.example.com is served by tenant initech"),
        "{}",
        stdout(&dry)
    );
    let o = tenantctl(&api, None, &["--apply"], &clash).await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("blocked      globex                       FAILED"),
        "{text}"
    );
    assert!(
        text.contains("change       acme                         applied"),
        "{text}"
    );
    assert!(
        stderr(&o).contains("1 of the catalog's actions failed"),
        "{}",
        stderr(&o)
    );
    let acme = api.store.load(&tenant_id("acme")).await.unwrap();
    assert_eq!(acme.spec.tier.as_str(), "large");
}

/// `catalog` sent to `POST /v1/catalog/{verb}` (`plan` or `apply`) as `token`, without
/// pruning.
async fn post_catalog(api: &TestApi, verb: &str, token: &str, catalog: &str) -> api_support::Reply {
    let path = format!("/v1/catalog/{verb}");
    (api.call(Method::POST, &path, Some(token), Some(body(catalog, false, 0)))).await
}

fn body(catalog: &str, prune: bool, max_deletions: u32) -> Value {
    let catalog: Value = serde_norway::from_str(catalog).unwrap();
    json!({"catalog": catalog, "prune": prune, "max_deletions": max_deletions})
}

#[tokio::test]
async fn the_api_plans_and_applies_with_prune_for_admins_only() {
    let api = fleet().await;

    let plan = api
        .call(
            Method::POST,
            "/v1/catalog/plan",
            Some(READ),
            Some(body(CATALOG, true, 0)),
        )
        .await;
    assert_eq!(plan.status, StatusCode::OK, "{}", plan.body);
    assert_eq!(entry(&plan.body, "initech")["action"], "deprovision");
    assert_eq!(
        api.store
            .load(&tenant_id("acme"))
            .await
            .unwrap()
            .spec
            .tier
            .as_str(),
        "small"
    );

    let forbidden = api
        .call(
            Method::POST,
            "/v1/catalog/apply",
            Some(DEPLOY),
            Some(body(CATALOG, true, 1)),
        )
        .await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN, "{}", forbidden.body);

    let too_many = api
        .call(
            Method::POST,
            "/v1/catalog/apply",
            Some(ADMIN),
            Some(body(CATALOG, true, 0)),
        )
        .await;
    assert_eq!(too_many.status, StatusCode::CONFLICT, "{}", too_many.body);
    assert_eq!(too_many.code(), "too_many_deletions");

    let duplicate = post_catalog(&api, "plan", READ, &CATALOG.replace("id: globex", "id: acme")).await;
    assert_eq!(duplicate.status, StatusCode::BAD_REQUEST, "{}", duplicate.body);
    assert!(duplicate.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("listed twice"));

    let applied = post_catalog(&api, "apply", DEPLOY, CATALOG).await;
    assert_eq!(applied.status, StatusCode::OK, "{}", applied.body);
    assert_eq!(entry(&applied.body, "globex")["status"], "applied");
    let history = api.store.history(&tenant_id("acme"), 0, 100).await.unwrap().items;
    assert_eq!(
        history.last().unwrap().actor,
        "catalog:api:pipeline",
        "{history:?}"
    );
    api.settle().await;

    // Through --server, the CLI answers as locally.
    let remote = json_of(&tenantctl(&api, Some(DEPLOY), &["-o", "json"], CATALOG).await);
    assert_eq!(entry(&remote, "acme")["action"], "unchanged", "{remote}");
    assert_eq!(entry(&remote, "initech")["action"], "kept", "{remote}");
}

/// A create naming a release the registry has no image of in the entry's region is
/// blocked in the dry run and fails in the apply, leaving the rest to go on; a
/// registry that cannot be asked leaves the create planned, with a note.
#[tokio::test]
async fn a_create_naming_an_unpublished_release_is_blocked_before_the_apply() {
    use std::sync::Arc;
    let catalog = CATALOG.replace(
        "hostnames: [globex.example.com]\n    release: 1.0.0",
        "hostnames: [globex.example.com]\n    release: 9.9.9",
    );
    let api = api_support::spawn_with(|app| {
        app.with_release_registry(Arc::new(common::RegistryDouble { published: "1.0.0" }))
    })
    .await;

    let plan = post_catalog(&api, "plan", READ, &catalog).await;
    assert_eq!(plan.status, StatusCode::OK, "{}", plan.body);
    let globex = entry(&plan.body, "globex");
    assert_eq!(globex["action"], "blocked", "{}", plan.body);
    assert_eq!(
        globex["notes"],
        json!(["release 9.9.9 has no image in us-east-1; publish it first"])
    );
    assert_eq!(entry(&plan.body, "acme")["action"], "create", "{}", plan.body);

    let applied = post_catalog(&api, "apply", ADMIN, &catalog).await;
    assert_eq!(applied.status, StatusCode::OK, "{}", applied.body);
    assert_eq!(
        entry(&applied.body, "globex")["status"],
        "failed",
        "{}",
        applied.body
    );
    assert_eq!(
        entry(&applied.body, "acme")["status"],
        "applied",
        "{}",
        applied.body
    );
    assert!(matches!(
        api.store.load(&tenant_id("globex")).await,
        Err(tenant_orchestrator::store::StoreError::NotFound { .. })
    ));

    let down =
        api_support::spawn_with(|app| app.with_release_registry(Arc::new(common::RegistryDownDouble))).await;
    let plan = post_catalog(&down, "plan", READ, CATALOG).await;
    assert_eq!(plan.status, StatusCode::OK, "{}", plan.body);
    let globex = entry(&plan.body, "globex");
    assert_eq!(globex["action"], "create", "{}", plan.body);
    assert!(
        globex["notes"][0]
            .as_str()
            .unwrap()
            .starts_with("could not check that release 1.0.0 has an image in us-east-1"),
        "{}",
        plan.body
    );
}

/// A hostname moving from one tenant to another: the entry that takes it comes first
/// in the file, so its claim is refused while the other still holds it, and is made
/// again once the other's change has let it go.
#[tokio::test]
async fn a_hostname_moved_between_entries_applies_whatever_their_order() {
    let api = fleet().await;
    let moved = "\
version: 1
environment: test
tenants:
  - id: acme
    region: us-east-1
    hostnames: [acme.example.com, initech.example.com]
    release: 1.0.0
  - id: initech
    region: us-east-1
    hostnames: [initech-new.example.com]
    release: 1.0.0
";
    let plan = post_catalog(&api, "plan", READ, moved).await;
    assert_eq!(plan.status, StatusCode::OK, "{}", plan.body);
    for id in ["acme", "initech"] {
        assert_eq!(entry(&plan.body, id)["action"], "change", "{}", plan.body);
    }
    let applied = post_catalog(&api, "apply", ADMIN, moved).await;
    assert_eq!(applied.status, StatusCode::OK, "{}", applied.body);
    for id in ["acme", "initech"] {
        assert_eq!(entry(&applied.body, id)["status"], "applied", "{}", applied.body);
    }
    let hostnames = |record: tenant_orchestrator::record::TenantRecord| {
        (record.spec.hostnames.iter())
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    let acme = api.store.load(&tenant_id("acme")).await.unwrap();
    assert_eq!(hostnames(acme), ["acme.example.com", "initech.example.com"]);
    let initech = api.store.load(&tenant_id("initech")).await.unwrap();
    assert_eq!(hostnames(initech), ["initech-new.example.com"]);

    // A swap has no order that works: both are reported, and nothing moved.
    let swap = "\
version: 1
environment: test
tenants:
  - id: acme
    region: us-east-1
    hostnames: [initech-new.example.com]
    release: 1.0.0
  - id: initech
    region: us-east-1
    hostnames: [acme.example.com, initech.example.com]
    release: 1.0.0
";
    let applied = post_catalog(&api, "apply", ADMIN, swap).await;
    assert_eq!(applied.status, StatusCode::OK, "{}", applied.body);
    for id in ["acme", "initech"] {
        let outcome = entry(&applied.body, id);
        assert_eq!(outcome["status"], "failed", "{}", applied.body);
        let error = outcome["error"].as_str().unwrap();
        assert!(error.contains("is already used by tenant"), "{error}");
    }
    let acme = api.store.load(&tenant_id("acme")).await.unwrap();
    assert_eq!(hostnames(acme), ["acme.example.com", "initech.example.com"]);
}
