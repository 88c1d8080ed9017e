//! A tenant a running rollout holds is the rollout's to move: direct commands are
//! refused with 409 `held_by_rollout` until the rollout is paused or finished, or an
//! admin overrides the hold, which the tenant's history records.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::api_support::holds::canary_held_by_running_rollout;
use crate::api_support::{spawn, Reply, TestApi, ADMIN, DEPLOY};

fn assert_held(reply: &Reply, rollout: &str) {
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
    assert_eq!(reply.code(), "held_by_rollout");
    let message = reply.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "held by rollout {rollout}, which is running; pause or abort rollout {rollout}"
        )) && message.contains("admin override"),
        "{message}"
    );
}

async fn post(api: &TestApi, path: &str, token: &str, body: Option<Value>) -> Reply {
    api.call(Method::POST, path, Some(token), body).await
}

#[tokio::test]
async fn direct_commands_on_a_held_tenant_are_refused_until_overridden_or_paused() {
    let api = spawn().await;
    let canary = canary_held_by_running_rollout(&api, "r-hold", &["alpha", "bravo"]).await;
    let before = api.get(&format!("/v1/tenants/{canary}")).await.body;

    let upgrade = json!({"release": "1.2.0"});
    let base = format!("/v1/tenants/{canary}");
    assert_held(
        &post(&api, &format!("{base}/upgrade"), DEPLOY, Some(upgrade.clone())).await,
        "r-hold",
    );
    assert_held(
        &post(&api, &format!("{base}/deprovision"), ADMIN, None).await,
        "r-hold",
    );
    let restore = json!({"snapshot": "alpha-preupgrade-1"});
    assert_held(
        &post(&api, &format!("{base}/restore"), ADMIN, Some(restore)).await,
        "r-hold",
    );
    for change in [
        json!({"tier": "medium"}),
        json!({"pinned_release": "1.0.0"}),
        json!({"hostnames": ["x.example.com"]}),
    ] {
        let reply = api.call(Method::PATCH, &base, Some(ADMIN), Some(change)).await;
        assert_held(&reply, "r-hold");
    }
    let after = api.get(&base).await.body;
    assert_eq!(after["version"], before["version"], "nothing was written");

    // Maintenance windows only say when a rollout may start the tenant.
    let windows = json!({"maintenance": "UTC Sun 02:00 4h"});
    let patched = api.call(Method::PATCH, &base, Some(ADMIN), Some(windows)).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);

    // A tenant the rollout has not started is not held.
    let other = if canary == "alpha" { "bravo" } else { "alpha" };
    let free = post(
        &api,
        &format!("/v1/tenants/{other}/upgrade"),
        DEPLOY,
        Some(upgrade.clone()),
    )
    .await;
    assert_eq!(free.status, StatusCode::ACCEPTED, "{}", free.body);

    // The override is an admin's decision, and the history says it was taken.
    let overriding = format!("{base}/upgrade?override_rollout_hold=true");
    let forbidden = post(&api, &overriding, DEPLOY, Some(upgrade.clone())).await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN, "{}", forbidden.body);
    assert!(forbidden.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("admin"));
    let overridden = post(&api, &overriding, ADMIN, Some(upgrade)).await;
    assert_eq!(overridden.status, StatusCode::ACCEPTED, "{}", overridden.body);
    assert_eq!(overridden.body["state"], "Upgrading");
    let history = api.get(&format!("{base}/history")).await.body;
    let last = history["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["actor"], "api:ops");
    assert_eq!(
        last["cause"],
        "Upgrade to 1.2.0 (admin override of the hold of rollout r-hold, running)"
    );

    // Paused, the rollout lets operators act: the pin changes without an override.
    let paused = post(&api, "/v1/rollouts/r-hold/pause", DEPLOY, None).await;
    assert_eq!(paused.status, StatusCode::OK, "{}", paused.body);
    let pin = api
        .call(
            Method::PATCH,
            &base,
            Some(ADMIN),
            Some(json!({"pinned_release": "1.2.0"})),
        )
        .await;
    assert_eq!(pin.status, StatusCode::OK, "{}", pin.body);
}
