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

/// Rule `name` (staging to prod, with approval) with a promotion of rollout `r-staging`
/// whose soak passed: it awaits an approval.
async fn awaiting_approval(api: &crate::api_support::TestApi, name: &str) {
    use tenant_orchestrator::domain::{ReleaseVersion, RolloutId, TenantId};
    use tenant_orchestrator::ports::PromotionStore;
    use tenant_orchestrator::record::Promotion;

    let rule = json!({"from": "staging", "to": "prod", "soak": "1h", "approval": true, "template": {}});
    let path = format!("/v1/promotions/{name}");
    let set = api.call(Method::PUT, &path, Some(ADMIN), Some(rule)).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    let mut record = api
        .store
        .load_promotion(&tenant_orchestrator::domain::PromotionName::parse(name).unwrap())
        .await
        .unwrap();
    let completed = chrono::Utc::now() - chrono::Duration::hours(2);
    let mut promotion = Promotion::of_completed(
        &record.rule,
        &RolloutId::parse("r-staging").unwrap(),
        Some(ReleaseVersion::parse("1.1.0").unwrap()),
        None,
        vec![TenantId::parse("acme").unwrap()],
        completed,
        std::time::Duration::from_secs(60),
    );
    promotion.ask_approval(chrono::Utc::now());
    record.promotion = Some(promotion);
    api.store.save_promotion(&record).await.unwrap();
}

#[tokio::test]
async fn an_approval_or_cancel_retried_with_its_key_replays_the_first_answer() {
    let api = spawn().await;
    for (rule, verb, state) in [
        ("approve-me", "approve", "awaiting_approval"),
        ("cancel-me", "cancel", "cancelled"),
    ] {
        awaiting_approval(&api, rule).await;
        let path = format!("/v1/promotions/{rule}/{verb}");
        let key = format!("promotion-{verb}-1");
        let key = [("idempotency-key", key.as_str())];
        let first = api.send(Method::POST, &path, Some(DEPLOY), None, &key).await;
        assert_eq!(first.status, StatusCode::OK, "{verb}: {}", first.body);
        // A retry after a lost answer gets that answer again, not a refusal because
        // the promotion has moved on.
        let again = api.send(Method::POST, &path, Some(DEPLOY), None, &key).await;
        assert_eq!(again.status, StatusCode::OK, "{verb} replayed: {}", again.body);
        assert_eq!(again.body, first.body);
        assert_eq!(again.headers["idempotent-replayed"], "true");
        // Without the key the same command is refused: the first one acted.
        let fresh = api.call(Method::POST, &path, Some(DEPLOY), None).await;
        assert_eq!(
            (fresh.status, fresh.code()),
            (StatusCode::CONFLICT, "promotion_refused"),
            "{verb} without a key: {}",
            fresh.body
        );
        let stored = api
            .call(Method::GET, &format!("/v1/promotions/{rule}"), Some(DEPLOY), None)
            .await;
        let promotion = &stored.body["promotion"];
        match verb {
            "approve" => {
                let said = fresh.body["error"]["message"].as_str().unwrap();
                assert!(said.contains("already approved by api:"), "{said}");
                assert_eq!(promotion["state"], state, "{}", stored.body);
                assert!(
                    promotion["approved_by"].as_str().unwrap().starts_with("api:"),
                    "{}",
                    stored.body
                );
            }
            _ => assert_eq!(promotion["state"], state, "{}", stored.body),
        }
    }
}
