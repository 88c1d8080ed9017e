//! A tenant held by a running rollout, for the tests of what that hold refuses.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use tenant_orchestrator::domain::RolloutId;
use tenant_orchestrator::record::RolloutRecord;
use tenant_orchestrator::rollout::{Controller, ControllerConfig};

use super::{TestApi, DEPLOY};
use crate::common::HealthyProbeDouble;

/// Starts rollout `id` over `tenants` (canary wave of one, then the rest behind an
/// approval gate) and steps the controller and a worker until the canary is done and
/// the gate is reached. Returns the canary, which the running rollout now holds.
#[allow(dead_code)] // the dashboard tests hold no tenant
pub async fn canary_held_by_running_rollout(api: &TestApi, id: &str, tenants: &[&str]) -> String {
    for tenant in tenants {
        api.create_tenant(tenant, "eu-west-1", "default").await;
    }
    api.settle().await;
    let spec = json!({"release": "1.1.0", "strategy": {"waves": ["1", "100%"], "bake_time": "0s",
        "bake_checks": 0, "approvals": {"after_canary": true}}});
    let started = api
        .call(
            Method::POST,
            "/v1/rollouts",
            Some(DEPLOY),
            Some(json!({"id": id, "spec": spec})),
        )
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);

    let controller = Controller::new(
        api.store.clone(),
        api.store.clone(),
        Arc::new(HealthyProbeDouble),
        ControllerConfig::new("hold-test-controller"),
    );
    let (worker, _) = api.scripted_worker();
    let rollout_id = RolloutId::parse(id).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        controller.step(&rollout_id).await.unwrap();
        crate::common::drain(&worker).await;
        let rollout = api.get(&format!("/v1/rollouts/{id}")).await.body;
        let record: RolloutRecord = serde_json::from_value(rollout["rollout"].clone()).unwrap();
        if record
            .wave()
            .is_some_and(|w| format!("{:?}", w.status) == "AwaitingApproval")
        {
            let canary = rollout["members"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["wave"] == 0)
                .expect("a canary member");
            let canary = canary["tenant"].as_str().unwrap().to_owned();
            let record = api.get(&format!("/v1/tenants/{canary}")).await.body;
            assert_eq!(record["state"], "Active", "{record}");
            assert_eq!(record["rollout"], id);
            assert_eq!(rollout["rollout"]["phase"], "running");
            return canary;
        }
        assert!(
            Instant::now() < deadline,
            "never reached the approval gate: {rollout}"
        );
    }
}
