use reqwest::{Method, StatusCode};

use crate::api_support::spawn;

#[tokio::test]
async fn metrics_show_transitions_requests_and_tenants_by_state() {
    let api = spawn().await;
    api.create_tenant("acme", "eu-west-1", "default").await;
    api.settle().await;
    let reply = api
        .client
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    let text = reply.text().await.unwrap();
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
