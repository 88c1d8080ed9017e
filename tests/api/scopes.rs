//! Role bindings through the API: a principal bound to one region sees and acts on
//! that region only; a tenant it may not read is as unknown as a missing one; a
//! refused action is recorded in the tenant's history with the principal; a rollout
//! must stay inside its bindings, which combine; fleet-wide settings need the whole
//! fleet.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::api_support::{spawn_with_tenants, TestApi, ADMIN, DEPLOY, EU_DEPLOYER, EU_TEAM, TWO_REGIONS};

fn ids(body: &Value) -> Vec<&str> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect()
}

/// eu-one and eu-two in eu-west-1, us-one in us-east-1, Active on 1.0.0.
async fn two_regions() -> TestApi {
    spawn_with_tenants(&[
        ("eu-one", "eu-west-1"),
        ("eu-two", "eu-west-1"),
        ("us-one", "us-east-1"),
    ])
    .await
}

#[tokio::test]
async fn a_principal_bound_to_one_region_sees_only_that_region() {
    let api = two_regions().await;

    let listed = api.call(Method::GET, "/v1/tenants", Some(EU_TEAM), None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(ids(&listed.body), ["eu-one", "eu-two"]);
    let everyone = api.call(Method::GET, "/v1/tenants", Some(DEPLOY), None).await;
    assert_eq!(
        ids(&everyone.body).len(),
        3,
        "an unrestricted token sees the fleet"
    );

    let summary = api
        .call(Method::GET, "/v1/fleet/summary", Some(EU_TEAM), None)
        .await;
    assert_eq!(summary.status, StatusCode::OK, "{}", summary.body);
    assert_eq!(summary.body["total"], 2, "{}", summary.body);
    assert!(
        summary.body["by_region"].get("us-east-1").is_none(),
        "{}",
        summary.body
    );
    let fleet = api
        .call(Method::GET, "/v1/fleet/summary", Some(DEPLOY), None)
        .await;
    assert_eq!(fleet.body["total"], 3, "{}", fleet.body);

    // Outside its read grant, a tenant is as unknown as a missing one.
    let hidden = api
        .call(Method::GET, "/v1/tenants/us-one", Some(EU_TEAM), None)
        .await;
    let missing = api
        .call(Method::GET, "/v1/tenants/no-such", Some(EU_TEAM), None)
        .await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    assert_eq!(hidden.code(), "tenant_not_found");
    assert_eq!(
        hidden.body["error"]["message"]
            .as_str()
            .unwrap()
            .replace("us-one", "X"),
        missing.body["error"]["message"]
            .as_str()
            .unwrap()
            .replace("no-such", "X"),
        "a hidden tenant answers like a missing one"
    );
    let history = api
        .call(Method::GET, "/v1/tenants/us-one/history", Some(EU_TEAM), None)
        .await;
    assert_eq!(history.status, StatusCode::NOT_FOUND);
    let upgrade = api
        .call(
            Method::POST,
            "/v1/tenants/us-one/upgrade",
            Some(EU_TEAM),
            Some(json!({"release": "1.1.0"})),
        )
        .await;
    assert_eq!(upgrade.status, StatusCode::NOT_FOUND, "{}", upgrade.body);

    // Inside it, it acts.
    let upgrade = api
        .call(
            Method::POST,
            "/v1/tenants/eu-one/upgrade",
            Some(EU_TEAM),
            Some(json!({"release": "1.1.0"})),
        )
        .await;
    assert_eq!(upgrade.status, StatusCode::ACCEPTED, "{}", upgrade.body);
    let retry = api
        .call(Method::POST, "/v1/tenants/eu-two/retry", Some(EU_TEAM), None)
        .await;
    assert_eq!(
        retry.code(),
        "refused_by_state",
        "the binding let the retry reach the machine, which refuses it for an Active tenant: {}",
        retry.body
    );

    // Creating a tenant needs deploy where it is to live.
    let elsewhere = api
        .call(
            Method::POST,
            "/v1/tenants",
            Some(EU_TEAM),
            Some(crate::api_support::tenant_body("us-two", "us-east-1", "default")),
        )
        .await;
    assert_eq!(elsewhere.status, StatusCode::FORBIDDEN, "{}", elsewhere.body);
    assert!(
        elsewhere.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("deploy on regions [eu-west-1]"),
        "{}",
        elsewhere.body
    );
}

#[tokio::test]
async fn an_action_a_reader_may_not_take_is_refused_and_recorded() {
    let api = two_regions().await;

    let seen = api
        .call(Method::GET, "/v1/tenants/us-one", Some(EU_DEPLOYER), None)
        .await;
    assert_eq!(seen.status, StatusCode::OK, "read on every tenant");
    let refused = api
        .call(
            Method::POST,
            "/v1/tenants/us-one/upgrade",
            Some(EU_DEPLOYER),
            Some(json!({"release": "1.1.0"})),
        )
        .await;

    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert_eq!(refused.code(), "forbidden");
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("eu-deployer may not upgrade tenant us-one")
            && message.contains("region us-east-1")
            && message.contains("deploy on regions [eu-west-1]"),
        "says who, what, and which binding is missing: {message}"
    );
    let tenant = api
        .call(Method::GET, "/v1/tenants/us-one", Some(ADMIN), None)
        .await;
    assert_eq!(tenant.body["state"], seen.body["state"], "nothing changed");
    let history = api
        .call(Method::GET, "/v1/tenants/us-one/history", Some(ADMIN), None)
        .await;
    let items = history.body["items"].as_array().unwrap();
    let recorded = items
        .iter()
        .find(|e| e["cause"].as_str().unwrap_or("").starts_with("AccessRefused"))
        .unwrap_or_else(|| panic!("the refusal is in the history: {}", history.body));
    assert_eq!(recorded["actor"], "api:eu-deployer");
    assert!(
        recorded["cause"]
            .as_str()
            .unwrap()
            .contains("needs deploy on tenant us-one"),
        "{recorded}"
    );

    // A refused read writes nothing.
    let before = items.len();
    api.call(Method::GET, "/v1/tenants/us-one", Some(EU_TEAM), None)
        .await;
    let after = api
        .call(Method::GET, "/v1/tenants/us-one/history", Some(ADMIN), None)
        .await;
    assert_eq!(after.body["items"].as_array().unwrap().len(), before);
}

#[tokio::test]
async fn a_rollout_must_stay_inside_one_binding() {
    let api = two_regions().await;

    let across = api.start_rollout(EU_TEAM, "r-all", &[]).await;
    assert_eq!(across.status, StatusCode::FORBIDDEN, "{}", across.body);
    assert!(
        across.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("narrow the selector"),
        "{}",
        across.body
    );
    let both = api
        .start_rollout(EU_TEAM, "r-both", &["eu-west-1", "us-east-1"])
        .await;
    assert_eq!(both.status, StatusCode::FORBIDDEN, "{}", both.body);

    let inside = api.start_rollout(EU_TEAM, "r-eu", &["eu-west-1"]).await;
    assert_eq!(inside.status, StatusCode::CREATED, "{}", inside.body);
    assert_eq!(inside.body["rollout"]["created_by"], "api:eu-team");
    let paused = api
        .call(Method::POST, "/v1/rollouts/r-eu/pause", Some(EU_TEAM), None)
        .await;
    assert_eq!(paused.status, StatusCode::OK, "{}", paused.body);

    // A fleet-wide rollout started by an unrestricted token is out of its sight.
    let fleet = api.start_rollout(DEPLOY, "r-us", &["us-east-1"]).await;
    assert_eq!(fleet.status, StatusCode::CREATED, "{}", fleet.body);
    let listed = api
        .call(Method::GET, "/v1/rollouts?all=true", Some(EU_TEAM), None)
        .await;
    assert_eq!(ids(&listed.body), ["r-eu"], "{}", listed.body);
    let hidden = api
        .call(Method::GET, "/v1/rollouts/r-us", Some(EU_TEAM), None)
        .await;
    assert_eq!(hidden.code(), "rollout_not_found");
    let abort = api
        .call(Method::POST, "/v1/rollouts/r-us/abort", Some(EU_DEPLOYER), None)
        .await;
    assert_eq!(
        abort.status,
        StatusCode::FORBIDDEN,
        "read but not deploy: {}",
        abort.body
    );

    // Fleet-wide settings need a binding on the whole fleet.
    let freeze = api
        .call(
            Method::POST,
            "/v1/promotions/eu-to-prod/approve",
            Some(EU_TEAM),
            None,
        )
        .await;
    assert_eq!(freeze.status, StatusCode::FORBIDDEN, "{}", freeze.body);
    assert!(
        freeze.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("acts on the whole fleet"),
        "{}",
        freeze.body
    );
}

#[tokio::test]
async fn bindings_on_two_regions_together_allow_a_rollout_over_both() {
    let api = two_regions().await;

    let both = api
        .start_rollout(TWO_REGIONS, "r-both", &["eu-west-1", "us-east-1"])
        .await;
    assert_eq!(both.status, StatusCode::CREATED, "{}", both.body);
    let seen = api
        .call(Method::GET, "/v1/rollouts/r-both", Some(TWO_REGIONS), None)
        .await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    let paused = api
        .call(Method::POST, "/v1/rollouts/r-both/pause", Some(TWO_REGIONS), None)
        .await;
    assert_eq!(paused.status, StatusCode::OK, "{}", paused.body);

    // Every region, now or later: neither binding reaches a region added tomorrow.
    let everywhere = api.start_rollout(TWO_REGIONS, "r-all", &[]).await;
    assert_eq!(everywhere.status, StatusCode::FORBIDDEN, "{}", everywhere.body);
    // One binding alone still does not reach the other region.
    let eu_only = api
        .call(Method::POST, "/v1/rollouts/r-both/resume", Some(EU_TEAM), None)
        .await;
    assert_eq!(eu_only.status, StatusCode::NOT_FOUND, "{}", eu_only.body);
}

#[tokio::test]
async fn a_create_refused_for_a_taken_id_or_hostname_names_no_tenant_the_principal_may_not_see() {
    let api = two_regions().await;
    let create = |token: &'static str, id: &'static str, hostname: &'static str| {
        let api = api.clone();
        async move {
            let mut body = crate::api_support::tenant_body(id, "eu-west-1", "default");
            body["hostnames"] = json!([hostname]);
            api.call(Method::POST, "/v1/tenants", Some(token), Some(body))
                .await
        }
    };
    // us-one is outside EU_TEAM's bindings: its id is taken, but nothing points at it.
    let taken = create(EU_TEAM, "us-one", "fresh.example.com").await;
    assert_eq!(
        (taken.status, taken.code()),
        (StatusCode::CONFLICT, "tenant_exists")
    );
    assert_eq!(
        taken.body["error"]["message"],
        "tenant id us-one is taken; pick another id"
    );
    let held = create(EU_TEAM, "eu-three", "us-one.example.com").await;
    assert_eq!(
        (held.status, held.code()),
        (StatusCode::CONFLICT, "hostname_taken")
    );
    assert_eq!(
        held.body["error"]["message"],
        "hostname us-one.example.com is already used by another tenant; choose another hostname"
    );
    // A tenant it may see is named, as to a principal bound to the whole fleet.
    let own = create(EU_TEAM, "eu-three", "eu-one.example.com").await;
    assert!(
        own.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tenant eu-one"),
        "{}",
        own.body
    );
    let fleet_wide = create(DEPLOY, "eu-three", "us-one.example.com").await;
    assert!(
        fleet_wide.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tenant us-one"),
        "{}",
        fleet_wide.body
    );
    let fleet_wide = create(DEPLOY, "us-one", "fresh.example.com").await;
    assert!(
        fleet_wide.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("GET /v1/tenants/us-one"),
        "{}",
        fleet_wide.body
    );
}
