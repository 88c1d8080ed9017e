use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tenant_orchestrator::api::ApiState;
use tenant_orchestrator::app::{DriftCommands, SweepQueue};
use tenant_orchestrator::ports::{DriftCheckFailed, DriftChecker};
use tenant_orchestrator::record::Actor;
use tenant_orchestrator::record::{DriftFinding, DriftKind, TenantRecord};

use crate::api_support::{spawn, spawn_with, spawn_with_state, tokens, READ};

/// Test double for the drift checker: answers with the findings it is given.
#[derive(Default)]
struct DriftCheckerDouble {
    findings: Mutex<Vec<DriftFinding>>,
}

#[async_trait]
impl DriftChecker for DriftCheckerDouble {
    async fn check(&self, _tenant: &TenantRecord) -> Result<Vec<DriftFinding>, DriftCheckFailed> {
        Ok(self.findings.lock().unwrap().clone())
    }
}

#[tokio::test]
async fn a_tenants_drift_is_checked_recorded_and_listed_for_the_fleet() {
    let checker = Arc::new(DriftCheckerDouble::default());
    let double = checker.clone();
    let api = spawn_with(move |state| state.with_drift_checker(double)).await;
    api.create_tenant("alpha", "eu-west-1", "default").await;
    api.create_tenant("bravo", "eu-west-1", "default").await;

    // Not Active yet: there is no one revision to compare with.
    let early = api.get("/v1/tenants/alpha/drift").await;
    assert_eq!(early.status, StatusCode::CONFLICT, "{}", early.body);
    assert_eq!(early.code(), "refused_by_state");

    api.settle().await;
    *checker.findings.lock().unwrap() = vec![DriftFinding {
        kind: DriftKind::SsmParameter,
        name: "config/tier".into(),
        desired: Some("small".into()),
        live: Some("large".into()),
    }];
    let drifted = api.get("/v1/tenants/alpha/drift").await;
    assert_eq!(drifted.status, StatusCode::OK, "{}", drifted.body);
    assert_eq!(drifted.body["drifted"], true);
    assert_eq!(
        drifted.body["findings"],
        json!([{"kind": "ssm_parameter", "name": "config/tier", "desired": "small", "live": "large"}])
    );
    checker.findings.lock().unwrap().clear();
    // Asked again at once, the check is answered from the one just made, not
    // compared live again (the double now finds nothing).
    let again = api.get("/v1/tenants/alpha/drift").await;
    assert_eq!(
        (again.status, &again.body["drifted"], &again.body["findings"]),
        (StatusCode::OK, &json!(true), &drifted.body["findings"]),
        "{}",
        again.body
    );
    let clean = api.get("/v1/tenants/bravo/drift").await;
    assert_eq!(
        (clean.status, &clean.body["drifted"]),
        (StatusCode::OK, &json!(false))
    );

    let fleet = api.get("/v1/fleet/drift").await;
    assert_eq!(fleet.status, StatusCode::OK, "{}", fleet.body);
    let listed: Vec<&str> = fleet.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec!["alpha"]);

    let history = api.get("/v1/tenants/alpha/history").await;
    let causes: Vec<&str> = history.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.get("cause").and_then(|c| c.as_str()).unwrap_or_default())
        .collect();
    assert!(
        causes.contains(&"DriftCheck: 1 drifted: ssm_parameter config/tier"),
        "{causes:?}"
    );
    // A rollout selecting drifted tenants plans only alpha; bravo is not selected.
    let plan = api
        .call(
            Method::POST,
            "/v1/rollouts/plan",
            Some(READ),
            Some(json!({"release": "1.1.0", "selector": {"drifted": true}})),
        )
        .await;
    assert_eq!(plan.status, StatusCode::OK, "{}", plan.body);
    let planned: Vec<&str> = plan.body["waves"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|w| w["tenants"].as_array().unwrap())
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(planned, vec!["alpha"], "{}", plan.body);
    assert_eq!(plan.body["not_selected"], 1, "{}", plan.body);

    let metrics = api
        .client
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for counted in [
        "tenantctl_drift_checks_total{result=\"drifted\"} 1",
        "tenantctl_drift_checks_total{result=\"in_sync\"} 1",
    ] {
        assert!(metrics.contains(counted), "{counted} not in {metrics}");
    }

    let bravo = api.get("/v1/tenants/bravo/history").await;
    assert!(
        !bravo.body.to_string().contains("DriftCheck"),
        "a first check in sync is not news: {}",
        bravo.body
    );
}

#[tokio::test]
async fn drift_needs_a_token_a_known_tenant_and_a_checker() {
    let api = spawn_with(|app| app.with_drift_checker(Arc::new(DriftCheckerDouble::default()))).await;
    let anonymous = api.call(Method::GET, "/v1/tenants/acme/drift", None, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let unknown = api
        .call(Method::GET, "/v1/tenants/nobody/drift", Some(READ), None)
        .await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (StatusCode::NOT_FOUND, "tenant_not_found")
    );

    let without_checker = spawn().await;
    without_checker
        .create_tenant("alpha", "eu-west-1", "default")
        .await;
    without_checker.settle().await;
    let refused = without_checker.get("/v1/tenants/alpha/drift").await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::CONFLICT, "drift_unavailable"),
        "{}",
        refused.body
    );
    assert!(refused.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("--steps-config"));
}

#[tokio::test]
async fn the_running_sweep_lists_the_fleet_once_per_relist_and_checks_from_its_queue_between() {
    let slot: Arc<Mutex<Option<DriftCommands>>> = Arc::default();
    let kept = slot.clone();
    let api = spawn_with_state(move |app| {
        let app = app.with_drift_checker(Arc::new(DriftCheckerDouble::default()));
        *kept.lock().unwrap() = Some(app.drift().clone());
        ApiState::new(app, tokens())
    })
    .await;
    let drift = slot.lock().unwrap().take().unwrap();
    let actor = Actor::operator("sweep-test");
    let hour = std::time::Duration::from_secs(3600);
    let always = std::time::Duration::ZERO;
    api.create_tenant("alpha", "eu-west-1", "default").await;
    api.settle().await;

    let mut queue = SweepQueue::default();
    let first = drift.sweep(&mut queue, 10, always, hour, &actor).await.unwrap();
    assert_eq!(first.checked, 1, "the first pass lists the fleet: {first:?}");

    // bravo becomes Active after the listing: within the hour the sweep works from
    // its queue, so it neither lists the fleet again nor sees bravo.
    api.create_tenant("bravo", "eu-west-1", "default").await;
    api.settle().await;
    let between = drift.sweep(&mut queue, 10, always, hour, &actor).await.unwrap();
    assert_eq!(between.checked, 0, "{between:?}");

    // Once the listing is older than the relist period, both are due again.
    let relisted = drift.sweep(&mut queue, 10, always, always, &actor).await.unwrap();
    assert_eq!(relisted.checked, 2, "{relisted:?}");
}
