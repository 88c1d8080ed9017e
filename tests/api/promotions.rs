use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::api_support::{spawn, ADMIN, DEPLOY, READ};

#[tokio::test]
async fn promotion_rules_are_set_by_admins_read_with_deploy_scope_and_refused_when_bad() {
    let api = spawn().await;
    let rule = json!({
        "from": "staging", "to": "prod", "soak": "2h", "approval": true,
        "template": { "strategy": { "waves": ["1", "100%"] } }
    });
    let path = "/v1/promotions/staging-to-prod";

    let deploy = api
        .call(Method::PUT, path, Some(DEPLOY), Some(rule.clone()))
        .await;
    assert_eq!(deploy.status, StatusCode::FORBIDDEN, "{}", deploy.body);
    let set = api.call(Method::PUT, path, Some(ADMIN), Some(rule)).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    assert_eq!(set.body["soak"], "2h");
    assert_eq!(set.body["template"]["selector"]["environment"], "prod");
    assert!(
        set.body["updated_by"].as_str().unwrap().starts_with("api:"),
        "{}",
        set.body
    );

    let read_only = api.call(Method::GET, "/v1/promotions", Some(READ), None).await;
    assert_eq!(read_only.status, StatusCode::FORBIDDEN);
    let listed = api.call(Method::GET, "/v1/promotions", Some(DEPLOY), None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(listed.body["promotions"][0]["name"], "staging-to-prod");
    assert!(listed.body["promotions"][0]
        .get("promotion")
        .is_none_or(|p| p.is_null()));

    let early = api
        .call(Method::POST, &format!("{path}/approve"), Some(DEPLOY), None)
        .await;
    assert_eq!(early.status, StatusCode::CONFLICT, "{}", early.body);
    assert_eq!(early.code(), "promotion_refused");

    let with_release =
        json!({"from": "staging", "to": "prod", "soak": "1h", "template": {"release": "1.5.0"}});
    let bad = api.call(Method::PUT, path, Some(ADMIN), Some(with_release)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    assert!(
        bad.body
            .to_string()
            .contains("remove `release` from the template"),
        "{}",
        bad.body
    );
    let to_itself = json!({"from": "prod", "to": "prod", "soak": "1h", "template": {}});
    let bad = api.call(Method::PUT, path, Some(ADMIN), Some(to_itself)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);

    let deleted = api.call(Method::DELETE, path, Some(ADMIN), None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    let gone = api.call(Method::GET, path, Some(DEPLOY), None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "{}", gone.body);
    assert_eq!(gone.code(), "promotion_not_found");
}
