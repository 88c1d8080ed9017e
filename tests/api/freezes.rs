use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::api_support::{spawn, ADMIN, DEPLOY};

#[tokio::test]
async fn an_admin_adds_and_removes_freezes_and_a_frozen_start_is_refused_unless_an_admin_overrides() {
    let api = spawn().await;
    api.create_tenant("alpha", "eu-west-1", "default").await;
    api.settle().await;
    let now = chrono::Utc::now();
    let body = json!({
        "environment": "test", "region": "eu-west-1",
        "from": now - chrono::TimeDelta::minutes(1), "until": now + chrono::TimeDelta::hours(1),
        "reason": "year-end"
    });

    let deploy = api
        .call(Method::POST, "/v1/freezes", Some(DEPLOY), Some(body.clone()))
        .await;
    assert_eq!(deploy.status, StatusCode::FORBIDDEN, "{}", deploy.body);
    let mut backwards = body.clone();
    backwards["until"] = json!(now - chrono::TimeDelta::hours(1));
    let bad = api
        .call(Method::POST, "/v1/freezes", Some(ADMIN), Some(backwards))
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    assert_eq!(bad.code(), "invalid_freeze");
    assert!(bad.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("ends before it begins"));
    // Sent twice with one Idempotency-Key (a retried request), it adds one freeze.
    let key = [("Idempotency-Key", "freeze-year-end")];
    let added = api
        .send(Method::POST, "/v1/freezes", Some(ADMIN), Some(body.clone()), &key)
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    let again = api
        .send(Method::POST, "/v1/freezes", Some(ADMIN), Some(body), &key)
        .await;
    assert_eq!((again.status, &again.body), (StatusCode::CREATED, &added.body));
    assert_eq!(
        again.headers.get("idempotent-replayed").map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    let id = added.body["id"].as_str().unwrap().to_owned();
    let listed = api.get("/v1/freezes").await;
    assert_eq!(listed.body["freezes"][0]["id"], id.as_str(), "{}", listed.body);
    assert_eq!(
        listed.body["freezes"].as_array().unwrap().len(),
        1,
        "{}",
        listed.body
    );

    let start = json!({"id": "r-frozen", "spec": {"release": "2.0.0"}});
    let refused = api
        .call(Method::POST, "/v1/rollouts", Some(DEPLOY), Some(start.clone()))
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert_eq!(refused.code(), "frozen");
    let mut overriding = start.clone();
    overriding["override_freeze"] = json!({"reason": "security fix"});
    let not_admin = api
        .call(
            Method::POST,
            "/v1/rollouts",
            Some(DEPLOY),
            Some(overriding.clone()),
        )
        .await;
    assert_eq!(not_admin.status, StatusCode::FORBIDDEN, "{}", not_admin.body);
    let started = api
        .call(Method::POST, "/v1/rollouts", Some(ADMIN), Some(overriding))
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    assert_eq!(started.body["rollout"]["overridden_freezes"][0], id.as_str());

    let path = format!("/v1/freezes/{id}");
    let removed = api.call(Method::DELETE, &path, Some(ADMIN), None).await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.body);
    let again = api.call(Method::DELETE, &path, Some(ADMIN), None).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "{}", again.body);
    assert_eq!(again.code(), "freeze_not_found");
}
