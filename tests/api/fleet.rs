use reqwest::{Method, StatusCode};
use serde_json::json;

use std::sync::Arc;
use std::time::Duration;

use crate::api_support::{spawn, spawn_with, spawn_with_state, tenant_body, tokens, ADMIN, DEPLOY};
use crate::common::ScriptedStep;
use tenant_orchestrator::api::ApiState;
use tenant_orchestrator::app::App;
use tenant_orchestrator::ports::PlatformArtifacts;
use tenant_orchestrator::store::{DynamoStore, Meter};

#[tokio::test]
async fn the_fleet_summary_counts_by_region_state_and_release() {
    let api = spawn().await;
    api.create_tenant("alpha", "eu-west-1", "default").await;
    api.create_tenant("bravo", "us-east-1", "default").await;
    api.settle().await;
    api.create_tenant("charlie", "us-east-1", "canary").await;
    let mut summary = api.get("/v1/fleet/summary").await;
    assert_eq!(summary.status, StatusCode::OK);
    let counts = summary.body.as_object_mut().unwrap();
    // The test API reads the counts for every request.
    assert_eq!(counts.remove("max_age_seconds"), Some(json!(0.0)));
    let as_of: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(counts.remove("as_of").expect("as_of")).unwrap();
    assert!(as_of <= chrono::Utc::now());
    assert_eq!(
        summary.body,
        json!({
            "total": 3,
            "by_region": {"eu-west-1": {"Active": 1}, "us-east-1": {"Active": 1, "Provisioning": 1}},
            "by_release": {"1.0.0": 3},
            "by_platform": {"built-in": 3}
        })
    );
}

/// An API whose store counts the requests it sends, reusing fleet counts for
/// `max_age`.
async fn metered_api(max_age: Duration) -> (crate::api_support::TestApi, Meter) {
    let (client, meter) = Meter::attach(&crate::common::dynamodb_client().await);
    let api = spawn_with_state(move |app| {
        let store = Arc::new(DynamoStore::new(client, app.table_name()));
        ApiState::new(App::new(store), tokens()).with_summary_max_age(max_age)
    })
    .await;
    (api, meter)
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_summary_requests_share_one_read_of_the_fleet() {
    let (api, meter) = metered_api(Duration::from_secs(600)).await;
    for (id, region) in [
        ("alpha", "eu-west-1"),
        ("bravo", "us-east-1"),
        ("charlie", "us-east-1"),
    ] {
        api.create_tenant(id, region, "default").await;
    }
    let before = meter.usage();
    let requests: Vec<_> = (0..16)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move { api.get("/v1/fleet/summary").await })
        })
        .collect();
    let mut replies = Vec::new();
    for r in requests {
        replies.push(r.await.unwrap());
    }
    let after = meter.usage();
    for r in &replies {
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["total"], 3);
        assert_eq!(r.body["as_of"], replies[0].body["as_of"], "one read serves all");
        assert_eq!(r.body["max_age_seconds"], 600.0);
    }
    // One pass: per region (two, one page each), one query of the listing and one
    // of each work shard for the tenants in the middle of steps, and the region
    // list unless the store still has it. A pass per request would be 16 times that.
    let pass = 2 * (1 + tenant_orchestrator::ports::WORK_SHARDS as u64);
    let queries = after.requests_of("Query") - before.requests_of("Query");
    assert!(
        (pass..=pass + 1).contains(&queries),
        "16 concurrent requests read the fleet more than once: {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_shows_in_the_summary_once_the_bound_has_passed() {
    let bound = Duration::from_millis(1500);
    let (api, _meter) = metered_api(bound).await;
    api.create_tenant("alpha", "eu-west-1", "default").await;
    let first = api.get("/v1/fleet/summary").await;
    assert_eq!(first.body["total"], 1);
    api.create_tenant("bravo", "eu-west-1", "default").await;
    let as_of = |r: &crate::api_support::Reply| -> chrono::DateTime<chrono::Utc> {
        serde_json::from_value(r.body["as_of"].clone()).unwrap()
    };
    loop {
        let next = api.get("/v1/fleet/summary").await;
        if as_of(&next) == as_of(&first) {
            // Served from the first read: the new tenant is not counted yet.
            assert_eq!(next.body["total"], 1, "{}", next.body);
        } else {
            // A new read, taken only once the bound had passed, counts it.
            assert!(as_of(&next) - as_of(&first) >= chrono::Duration::from_std(bound).unwrap());
            assert_eq!(next.body["total"], 2, "{}", next.body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_deployment_report_counts_starts_successes_failures_and_rollbacks() {
    let api = spawn().await;
    api.create_tenant("alpha", "eu-west-1", "canary").await;
    api.create_tenant("bravo", "eu-west-1", "default").await;
    api.settle().await;
    for id in ["alpha", "bravo"] {
        let up = api
            .call(
                Method::POST,
                &format!("/v1/tenants/{id}/upgrade"),
                Some(DEPLOY),
                Some(json!({"release": "1.1.0"})),
            )
            .await;
        assert_eq!(up.status, StatusCode::ACCEPTED);
    }
    // bravo's deploy fails for good: the upgrade fails and rolls back.
    let (worker, steps) = api.scripted_worker();
    steps.script(
        "bravo",
        tenant_orchestrator::machine::StepKind::Deploy,
        vec![tenant_orchestrator::step::StepOutcome::fail("image crashed")],
    );
    crate::common::drain(&worker).await;
    let _: &ScriptedStep = &steps;

    let today = chrono::Utc::now().date_naive();
    let report = api
        .get(&format!("/v1/reports/deployments?from={today}&to={today}"))
        .await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.body);
    let no_outage = |measured: u64| {
        json!({"measured": measured, "total_seconds": 0, "mean_seconds": if measured > 0 { json!(0.0) } else { json!(null) },
               "buckets": {"none": measured, "le_30s": 0, "le_60s": 0, "le_180s": 0, "le_600s": 0, "over_600s": 0}})
    };
    // alpha's upgrade and bravo's rollback completed with no failed probe: each has
    // its outage measured, 0 s (the provisionings are not upgrades and have none).
    assert_eq!(
        report.body["total"],
        json!({"started": 4, "succeeded": 3, "failed": 1, "rolled_back": 1, "outage": no_outage(2)})
    );
    let canary = api
        .get(&format!(
            "/v1/reports/deployments?from={today}&to={today}&region=eu-west-1&group=canary"
        ))
        .await;
    assert_eq!(
        canary.body["rows"],
        json!([{"region": "eu-west-1", "group": "canary", "started": 2, "succeeded": 2, "failed": 0, "rolled_back": 0,
                "outage": no_outage(1)}])
    );
    let elsewhere = api
        .get(&format!(
            "/v1/reports/deployments?from={today}&to={today}&region=us-east-1"
        ))
        .await;
    assert_eq!(elsewhere.body["rows"], json!([]));
    let yesterday = today.pred_opt().unwrap();
    let before = api
        .get(&format!(
            "/v1/reports/deployments?from={yesterday}&to={yesterday}"
        ))
        .await;
    assert_eq!(before.body["total"]["started"], 0);
    for bad in [
        "from=2026-13-01&to=2026-12-31",
        "from=2026-02-01&to=2026-01-01",
        "from=2020-01-01&to=2026-01-01",
        "to=2026-01-01",
    ] {
        let reply = api.get(&format!("/v1/reports/deployments?{bad}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}: {}", reply.body);
    }
}

#[tokio::test]
async fn the_version_policy_is_read_and_edited() {
    let api = spawn().await;
    let put = |path: &'static str, release: &'static str| {
        let api = api.clone();
        async move {
            api.call(Method::PUT, path, Some(ADMIN), Some(json!({"release": release})))
                .await
        }
    };
    assert_eq!(
        put("/v1/policy/defaults/prod/eu-west-1", "1.4.2").await.status,
        StatusCode::OK
    );
    assert_eq!(
        put("/v1/policy/groups/prod/canary", "1.5.0").await.status,
        StatusCode::OK
    );
    let policy = api.get("/v1/policy").await;
    assert_eq!(
        policy.body["defaults"],
        json!([{"environment": "prod", "region": "eu-west-1", "release": "1.4.2"}])
    );
    assert_eq!(
        policy.body["group_overrides"],
        json!([{"environment": "prod", "group": "canary", "release": "1.5.0"}])
    );
    let changes: Vec<(&str, &str)> = policy.body["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["actor"].as_str().unwrap(), c["what"].as_str().unwrap()))
        .collect();
    assert_eq!(
        changes,
        vec![
            ("api:ops", "set default prod/eu-west-1 to release 1.4.2"),
            ("api:ops", "set group prod/canary to release 1.5.0")
        ],
        "every change records its actor"
    );
    let delete = |path: &'static str| {
        let api = api.clone();
        async move { api.call(Method::DELETE, path, Some(ADMIN), None).await }
    };
    let removed = delete("/v1/policy/groups/prod/canary").await;
    assert_eq!(removed.body["group_overrides"], json!([]));
    let removed = delete("/v1/policy/defaults/prod/eu-west-1").await;
    assert_eq!(removed.body["defaults"], json!([]));
    // Removing it again, or setting an entry to what it is, changes nothing and is
    // not recorded as a change.
    let again = delete("/v1/policy/defaults/prod/eu-west-1").await;
    assert_eq!(again.status, StatusCode::OK);
    for _ in 0..2 {
        let set = put("/v1/policy/defaults/prod/us-east-1", "1.4.2").await;
        assert_eq!(set.status, StatusCode::OK);
    }
    let whats: Vec<String> = (api.get("/v1/policy").await.body["changes"]
        .as_array()
        .unwrap()
        .iter())
    .map(|c| c["what"].as_str().unwrap().to_owned())
    .collect();
    assert_eq!(
        whats[2..],
        [
            "remove group prod/canary",
            "remove default prod/eu-west-1",
            "set default prod/us-east-1 to release 1.4.2"
        ],
        "{whats:?}"
    );
    assert_eq!(
        put("/v1/policy/defaults/prod/nowhere", "1.0.0").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        put("/v1/policy/defaults/prod/eu-west-1", "latest").await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn the_policy_names_published_platform_versions_and_new_tenants_get_them() {
    let bucket = crate::platform_support::fresh_bucket().await;
    bucket
        .store
        .publish(&crate::platform_support::repo_bundle("2.0.0"), "operator:alice")
        .await
        .unwrap();
    let artifacts: std::sync::Arc<dyn tenant_orchestrator::ports::PlatformArtifacts> =
        std::sync::Arc::new(bucket.store);
    let api = spawn_with(|app| app.with_platform_artifacts(artifacts)).await;
    let put = |path: &'static str, body: serde_json::Value| {
        let api = api.clone();
        async move { api.call(Method::PUT, path, Some(ADMIN), Some(body)).await }
    };

    let unknown = put("/v1/policy/defaults/prod/eu-west-1", json!({"platform": "9.9.9"})).await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (StatusCode::CONFLICT, "unknown_platform_version")
    );
    let msg = unknown.body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("tenantctl platform publish --version 9.9.9"),
        "{msg}"
    );
    let nothing = put("/v1/policy/defaults/prod/eu-west-1", json!({})).await;
    assert_eq!(nothing.status, StatusCode::BAD_REQUEST);

    let set = put(
        "/v1/policy/defaults/prod/eu-west-1",
        json!({"release": "1.4.2", "platform": "2.0.0"}),
    )
    .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    assert_eq!(
        set.body["defaults"],
        json!([{"environment": "prod", "region": "eu-west-1", "release": "1.4.2", "platform": "2.0.0"}])
    );

    // A new tenant with no platform of its own gets the policy's.
    let mut body = tenant_body("plat-a", "eu-west-1", "default");
    body.as_object_mut().unwrap().remove("release");
    body["environment"] = json!("prod");
    let created = api
        .call(Method::POST, "/v1/tenants", Some(DEPLOY), Some(body))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["platform"]["desired"], "2.0.0");

    // An unpublished version is refused on a tenant too, and nothing changes.
    let patch = |body: serde_json::Value| {
        let api = api.clone();
        async move {
            api.call(Method::PATCH, "/v1/tenants/plat-a", Some(ADMIN), Some(body))
                .await
        }
    };
    let refused = patch(json!({"platform": "3.1.4"})).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::CONFLICT, "unknown_platform_version")
    );
    assert_eq!(
        api.get("/v1/tenants/plat-a").await.body["platform"]["desired"],
        "2.0.0"
    );

    // Only the platform is removed from the entry; the release stays.
    let removed = api
        .call(
            Method::DELETE,
            "/v1/policy/defaults/prod/eu-west-1?only=platform",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(
        removed.body["defaults"],
        json!([{"environment": "prod", "region": "eu-west-1", "release": "1.4.2"}])
    );
    let bad = api
        .call(
            Method::DELETE,
            "/v1/policy/defaults/prod/eu-west-1?only=everything",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // Pinning a platform needs one: none given and none in the policy any more.
    let mut body = tenant_body("plat-b", "eu-west-1", "default");
    body["environment"] = json!("prod");
    body["pin_platform"] = json!(true);
    let refused = api
        .call(Method::POST, "/v1/tenants", Some(DEPLOY), Some(body))
        .await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::CONFLICT, "no_platform"),
        "{}",
        refused.body
    );
    assert_eq!(api.get("/v1/tenants/plat-b").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_platform_version_is_refused_where_no_platform_bucket_is_configured() {
    let api = spawn().await;
    let refused = api
        .call(
            Method::PUT,
            "/v1/policy/groups/prod/canary",
            Some(ADMIN),
            Some(json!({"platform": "2.0.0"})),
        )
        .await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::CONFLICT, "platform_unavailable")
    );
    let msg = refused.body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("--platform-bucket"), "{msg}");
    assert_eq!(api.get("/v1/policy").await.body["group_overrides"], json!([]));
}
