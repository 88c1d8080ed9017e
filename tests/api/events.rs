use reqwest::{Method, StatusCode};

use crate::api_support::{spawn, DEPLOY, READ};

#[tokio::test]
async fn the_outbox_lists_a_created_tenants_event_and_refuses_what_it_cannot_redeliver() {
    let api = spawn().await;
    api.create_tenant("alpha", "eu-west-1", "default").await;

    let listed = api.get("/v1/events?state=pending").await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let events = listed.body["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{}", listed.body);
    assert_eq!(events[0]["type"], "io.tenant-orchestrator.tenant.transition");
    assert_eq!(events[0]["subject"], "tenant/alpha");
    assert_eq!(events[0]["state"], "pending");
    assert_eq!(events[0]["event"]["specversion"], "1.0");
    let id = events[0]["id"].as_str().unwrap();

    let bad = api.get("/v1/events?state=lost").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("use pending, delivered or dead"),
        "{}",
        bad.body
    );

    let path = format!("/v1/events/{id}/redeliver");
    let read_only = api.call(Method::POST, &path, Some(READ), None).await;
    assert_eq!(read_only.status, StatusCode::FORBIDDEN);
    let nothing = api.call(Method::POST, &path, Some(DEPLOY), None).await;
    assert_eq!(nothing.status, StatusCode::CONFLICT, "{}", nothing.body);
    assert_eq!(nothing.code(), "nothing_to_redeliver");
    let missing = api
        .call(Method::POST, "/v1/events/evt_0/redeliver", Some(DEPLOY), None)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.body);
    assert_eq!(missing.code(), "event_not_found");
}

#[tokio::test]
async fn a_redelivery_repeated_with_its_idempotency_key_gets_the_first_answer() {
    use tenant_orchestrator::ports::OutboxStore;
    use tenant_orchestrator::record::outbox::{AttemptOutcome, RetryPolicy};
    let api = spawn().await;
    api.create_tenant("alpha", "eu-west-1", "default").await;
    let listed = api.get("/v1/events?state=pending").await;
    let id = listed.body["events"][0]["id"].as_str().unwrap().to_owned();
    // The sink "hooks" refused it for good, as a dispatcher records it.
    let mut event = api.store.event(&id).await.unwrap();
    let now = chrono::Utc::now();
    event.record_attempt(
        "hooks",
        AttemptOutcome::Permanent("410 Gone".into()),
        &RetryPolicy {
            max_attempts: 5,
            base: std::time::Duration::from_secs(1),
            cap: std::time::Duration::from_secs(60),
        },
        now,
        0.0,
    );
    event.settle(&["hooks"]);
    api.store
        .record_deliveries(&event, std::time::Duration::from_secs(3600))
        .await
        .unwrap();

    let path = format!("/v1/events/{id}/redeliver");
    let key = [("idempotency-key", "redeliver-once")];
    let first = api.send(Method::POST, &path, Some(DEPLOY), None, &key).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["state"], "pending", "{}", first.body);
    // The answer was lost; the retry with the same key gets it again...
    let again = api.send(Method::POST, &path, Some(DEPLOY), None, &key).await;
    assert_eq!((again.status, &again.body), (StatusCode::OK, &first.body));
    // ... where one without a key is told there is nothing left to redeliver.
    let unkeyed = api.call(Method::POST, &path, Some(DEPLOY), None).await;
    assert_eq!(unkeyed.code(), "nothing_to_redeliver", "{}", unkeyed.body);
}
