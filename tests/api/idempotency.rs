use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::api_support::{spawn, tenant_body, DEPLOY};

#[tokio::test]
async fn the_same_key_and_body_replays_the_first_response() {
    let api = spawn().await;
    let key = [("idempotency-key", "create-acme-1")];
    let body = tenant_body("acme", "eu-west-1", "default");
    let first = api
        .send(
            Method::POST,
            "/v1/tenants",
            Some(DEPLOY),
            Some(body.clone()),
            &key,
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = api
        .send(Method::POST, "/v1/tenants", Some(DEPLOY), Some(body), &key)
        .await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    assert_eq!(again.body, first.body);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let history = api.get("/v1/tenants/acme/history").await;
    assert_eq!(history.body["items"].as_array().unwrap().len(), 1, "acted once");
}

#[tokio::test]
async fn the_same_key_with_another_body_is_refused() {
    let api = spawn().await;
    let key = [("idempotency-key", "k-1")];
    api.send(
        Method::POST,
        "/v1/tenants",
        Some(DEPLOY),
        Some(tenant_body("acme", "eu-west-1", "default")),
        &key,
    )
    .await;
    let other = api
        .send(
            Method::POST,
            "/v1/tenants",
            Some(DEPLOY),
            Some(tenant_body("bravo", "eu-west-1", "default")),
            &key,
        )
        .await;
    assert_eq!(
        (other.status, other.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
    );
    assert!(other.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("use a new key"));
    assert_eq!(api.get("/v1/tenants/bravo").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn concurrent_requests_with_one_key_act_once() {
    let api = spawn().await;
    let body = tenant_body("acme", "eu-west-1", "default");
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (api, body) = (api.clone(), body.clone());
        calls.spawn(async move {
            api.send(
                Method::POST,
                "/v1/tenants",
                Some(DEPLOY),
                Some(body),
                &[("idempotency-key", "race")],
            )
            .await
        });
    }
    let replies = calls.join_all().await;
    let created = replies.iter().filter(|r| r.status == StatusCode::CREATED).count();
    for r in &replies {
        assert!(
            r.status == StatusCode::CREATED || r.code() == "idempotency_key_in_progress",
            "{} {}",
            r.status,
            r.body
        );
        assert_ne!(r.code(), "tenant_exists", "a second request acted");
    }
    assert!(created >= 1);
    let history = api.get("/v1/tenants/acme/history").await;
    assert_eq!(history.body["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_refused_request_releases_its_key() {
    let api = spawn().await;
    api.create_tenant("acme", "eu-west-1", "default").await;
    let key = [("idempotency-key", "up-1")];
    let body = Some(json!({"release": "1.1.0"}));
    let refused = api
        .send(
            Method::POST,
            "/v1/tenants/acme/upgrade",
            Some(DEPLOY),
            body.clone(),
            &key,
        )
        .await;
    assert_eq!(refused.code(), "refused_by_state");
    api.settle().await;
    let acted = api
        .send(Method::POST, "/v1/tenants/acme/upgrade", Some(DEPLOY), body, &key)
        .await;
    assert_eq!(acted.status, StatusCode::ACCEPTED, "{}", acted.body);
    let bad = api
        .send(
            Method::POST,
            "/v1/tenants/acme/retry",
            Some(DEPLOY),
            None,
            &[("idempotency-key", "")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}
