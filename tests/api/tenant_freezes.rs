//! A freeze over a tenant's environment and region holds the operator commands that
//! change what runs, unless an admin overrides it; the history records the override.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::api_support::{spawn, tenant_body, TestApi, ADMIN, DEPLOY};

/// Freezes environment `test` in eu-west-1 from a minute ago for an hour; its id.
async fn freeze_eu(api: &TestApi) -> String {
    let now = chrono::Utc::now();
    let body = json!({
        "environment": "test", "region": "eu-west-1",
        "from": now - chrono::TimeDelta::minutes(1), "until": now + chrono::TimeDelta::hours(1),
        "reason": "year-end"
    });
    let added = api
        .call(Method::POST, "/v1/freezes", Some(ADMIN), Some(body))
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    added.body["id"].as_str().unwrap().to_owned()
}

async fn history(api: &TestApi, id: &str) -> Vec<Value> {
    let page = api.get(&format!("/v1/tenants/{id}/history")).await.body;
    page["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_freeze_refuses_upgrades_and_reshaping_spec_changes_of_its_tenants_unless_an_admin_overrides() {
    let api = spawn().await;
    api.create_tenant("alpha", "eu-west-1", "default").await;
    api.settle().await;
    let freeze = freeze_eu(&api).await;
    let base = "/v1/tenants/alpha";
    let before = api.get(base).await.body;
    let events = history(&api, "alpha").await.len();

    let upgrade = json!({"release": "1.2.0"});
    let refused = api
        .call(
            Method::POST,
            &format!("{base}/upgrade"),
            Some(DEPLOY),
            Some(upgrade.clone()),
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert_eq!(refused.code(), "frozen");
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("year-end") && message.contains(&freeze) && message.contains("override_freeze"),
        "{message}"
    );
    let tier = api
        .call(Method::PATCH, base, Some(ADMIN), Some(json!({"tier": "large"})))
        .await;
    assert_eq!(tier.status, StatusCode::CONFLICT, "{}", tier.body);
    assert_eq!(tier.code(), "frozen");
    let deprovision = api
        .call(Method::POST, &format!("{base}/deprovision"), Some(ADMIN), None)
        .await;
    assert_eq!(deprovision.code(), "frozen", "{}", deprovision.body);

    // Nothing changed: state, spec and history are as before.
    let after = api.get(base).await.body;
    assert_eq!(after["state"], before["state"]);
    assert_eq!(after["tier"], before["tier"]);
    assert_eq!(after["version"], before["version"]);
    assert_eq!(history(&api, "alpha").await.len(), events);

    // Overriding is an admin's decision.
    let overriding = format!("{base}/upgrade?override_freeze=security%20fix");
    let forbidden = api
        .call(Method::POST, &overriding, Some(DEPLOY), Some(upgrade.clone()))
        .await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN, "{}", forbidden.body);
    assert_eq!(history(&api, "alpha").await.len(), events);

    let retiered = api
        .call(
            Method::PATCH,
            &format!("{base}?override_freeze=security%20fix"),
            Some(ADMIN),
            Some(json!({"tier": "large"})),
        )
        .await;
    assert_eq!(retiered.status, StatusCode::OK, "{}", retiered.body);
    assert_eq!(retiered.body["tier"], "large");
    let last = history(&api, "alpha").await.pop().unwrap();
    assert_eq!(
        last["cause"],
        format!("UpdateSpec: tier large (freeze {freeze} overridden by api:ops: security fix)")
    );

    let upgraded = api
        .call(Method::POST, &overriding, Some(ADMIN), Some(upgrade))
        .await;
    assert_eq!(upgraded.status, StatusCode::ACCEPTED, "{}", upgraded.body);
    assert_eq!(upgraded.body["state"], "Upgrading");
    let last = history(&api, "alpha").await.pop().unwrap();
    assert_eq!(last["actor"], "api:ops");
    assert_eq!(
        last["cause"],
        format!("Upgrade to 1.2.0 (freeze {freeze} overridden by api:ops: security fix)")
    );
}

#[tokio::test]
async fn a_freeze_holds_only_its_environment_and_region_and_lets_tenants_be_created_and_windows_change() {
    let api = spawn().await;
    api.create_tenant("alpha", "eu-west-1", "default").await;
    api.create_tenant("bravo", "us-east-1", "default").await;
    let mut staging = tenant_body("charlie", "eu-west-1", "default");
    staging["environment"] = json!("staging");
    let created = api
        .call(Method::POST, "/v1/tenants", Some(DEPLOY), Some(staging))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    api.settle().await;
    freeze_eu(&api).await;

    // A new tenant in the frozen region: nothing of it runs yet.
    api.create_tenant("delta", "eu-west-1", "default").await;
    // Maintenance windows only say when; the freeze does not hold them.
    let windows = api
        .call(
            Method::PATCH,
            "/v1/tenants/alpha",
            Some(ADMIN),
            Some(json!({"maintenance": "UTC Sun 02:00 4h"})),
        )
        .await;
    assert_eq!(windows.status, StatusCode::OK, "{}", windows.body);
    for other in ["bravo", "charlie"] {
        let upgraded = api
            .call(
                Method::POST,
                &format!("/v1/tenants/{other}/upgrade"),
                Some(DEPLOY),
                Some(json!({"release": "1.2.0"})),
            )
            .await;
        assert_eq!(
            upgraded.status,
            StatusCode::ACCEPTED,
            "{other}: {}",
            upgraded.body
        );
    }
}
