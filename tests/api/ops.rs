use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::api_support::{spawn, ADMIN};

/// What `/metrics` answers, which must be 200.
async fn metrics(api: &crate::api_support::TestApi) -> String {
    let reply = api
        .client
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    reply.text().await.unwrap()
}

#[tokio::test]
async fn metrics_show_transitions_requests_and_tenants_by_state() {
    let api = spawn().await;
    api.create_tenant("acme", "eu-west-1", "default").await;
    api.settle().await;
    let text = metrics(&api).await;
    for expected in [
        "tenantctl_transitions_total{from=\"New\",to=\"Provisioning\"}",
        "tenantctl_http_requests_total{method=\"POST\",route=\"/v1/tenants\",status=\"201\"}",
        "tenantctl_step_duration_seconds_bucket{step=\"Verify\",outcome=\"done\"",
        "tenantctl_tenants{region=\"eu-west-1\",state=\"Active\"} 1",
        "tenantctl_fleet_summary_up 1",
    ] {
        assert!(text.contains(expected), "missing {expected} in\n{text}");
    }
}

/// A controller in the process times the stages of its passes over a rollout.
#[tokio::test]
async fn metrics_show_the_stages_of_the_controllers_passes() {
    let api = crate::api_support::spawn_with_tenants(&[("acme", "eu-west-1")]).await;
    let started = api
        .start_rollout(crate::api_support::DEPLOY, "r-metrics", &[])
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let passes = |text: &str, stage: &str| -> u64 {
        let count = format!("tenantctl_controller_pass_seconds_count{{stage=\"{stage}\"}} ");
        (text.lines())
            .find_map(|line| line.strip_prefix(count.as_str()))
            .map_or(0, |n| n.parse().unwrap())
    };
    let stages = ["lease", "observe", "drive", "save"];
    let background = api.run_worker_and_controller("metrics-controller");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let text = metrics(&api).await;
        if stages.iter().all(|stage| passes(&text, stage) >= 1) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a stage of the controller's passes is missing in\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    background.stop().await;
    let member = api.get("/v1/rollouts/r-metrics").await.body["members"][0].clone();
    assert_ne!(
        member["outcome"], "pending",
        "the passes timed started the tenant: {member}"
    );
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let api = spawn().await;
    let doc = api.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(doc.status, StatusCode::OK);
    let paths = doc.body["paths"].as_object().unwrap();
    for path in [
        "/v1/tenants",
        "/v1/tenants/{id}",
        "/v1/tenants/{id}/history",
        "/v1/tenants/{id}/upgrade",
        "/v1/tenants/{id}/retry",
        "/v1/tenants/{id}/rollback",
        "/v1/tenants/{id}/restore",
        "/v1/tenants/{id}/deprovision",
        "/v1/policy",
        "/v1/policy/defaults/{environment}/{region}",
        "/v1/policy/groups/{environment}/{group}",
        "/v1/fleet/summary",
        "/v1/reports/deployments",
        "/v1/events",
        "/v1/events/{id}/redeliver",
        "/healthz",
        "/readyz",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from the OpenAPI document"
        );
    }
    assert_eq!(
        doc.body["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn the_openapi_document_publishes_the_enforced_contract() {
    let api = spawn().await;
    let doc = api.call(Method::GET, "/openapi.json", None, None).await.body;
    let schemas = &doc["components"]["schemas"];
    for (name, pattern_start) in [
        ("TenantId", "^[a-z]"),
        ("Hostname", "^("),
        ("ReleaseVersion", "^v?"),
        ("RolloutId", "^[a-z]"),
    ] {
        let pattern = schemas[name]["pattern"].as_str().unwrap_or_default();
        assert!(pattern.starts_with(pattern_start), "{name}: {pattern:?}");
    }
    let regions = schemas["Region"]["enum"].as_array().expect("regions are an enum");
    assert!(regions.contains(&json!("eu-west-1")) && !regions.contains(&json!("zz-nowhere-9")));
    let spec = &schemas["RolloutSpec"];
    for target in ["release", "platform", "change", "reconcile"] {
        assert!(spec["properties"].get(target).is_some(), "{target}");
    }
    assert_eq!(
        spec["properties"]["strategy"]["additionalProperties"],
        json!(false)
    );
    let summary = &schemas["FleetSummaryView"];
    assert!(
        summary["required"]
            .as_array()
            .unwrap()
            .contains(&json!("by_platform")),
        "{summary}"
    );

    let paths = &doc["paths"];
    let create = &paths["/v1/tenants"]["post"];
    for status in ["400", "401", "403", "409", "413", "415", "422"] {
        assert!(
            create["responses"].get(status).is_some(),
            "create tenant documents no {status}"
        );
    }
    assert_eq!(
        create["responses"]["201"]["links"]["GetTenant"],
        json!({ "operationId": "tenant_get", "parameters": { "id": "$response.body#/id" } })
    );
    let pause = &paths["/v1/rollouts"]["post"]["responses"]["201"]["links"]["PauseRollout"];
    assert_eq!(pause["operationId"], "rollout_pause");
    let redeliver = &paths["/v1/events"]["get"]["responses"]["200"]["links"]["RedeliverEvent"];
    assert_eq!(redeliver["parameters"]["id"], "$response.body#/events/0/id");
    let limit = paths["/v1/tenants"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(
        (
            limit["schema"]["minimum"].as_u64(),
            limit["schema"]["maximum"].as_u64()
        ),
        (Some(1), Some(1000))
    );
    assert!(
        paths["/healthz"]["get"]["responses"].get("401").is_none(),
        "healthz needs no token"
    );
}

#[tokio::test]
async fn bodies_must_be_json_objects() {
    let api = spawn().await;
    api.create_tenant("acme", "eu-west-1", "default").await;
    // serde reads a struct from an array of its fields: `[null, null]` would unpin.
    for body in [json!([null, null]), json!("tier"), json!(3)] {
        let reply = api
            .call(Method::PATCH, "/v1/tenants/acme", Some(ADMIN), Some(body.clone()))
            .await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{body}"
        );
        assert!(
            reply.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("JSON object"),
            "{}",
            reply.body
        );
    }
    let version = api.get("/v1/tenants/acme").await.body["version"].clone();
    let whole = json!({ "expected_version": version.as_f64().unwrap(), "pinned_release": null });
    let reply = api
        .call(Method::PATCH, "/v1/tenants/acme", Some(ADMIN), Some(whole))
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "a version written as {version}.0 is that version: {}",
        reply.body
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_error_shape() {
    let api = spawn().await;
    let missing = api.call(Method::GET, "/v2/nothing", None, None).await;
    assert_eq!(
        (missing.status, missing.code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let method = api.call(Method::DELETE, "/v1/fleet/summary", None, None).await;
    assert_eq!(
        (method.status, method.code()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
}
