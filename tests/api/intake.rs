//! Stripe's subscription webhooks at `POST /v1/intake/stripe`: deliveries signed here
//! with the test endpoint secret (HMAC-SHA256 computed by the test, as Stripe does)
//! create, re-tier and deprovision tenants; forged, stale, replayed and unmappable
//! deliveries change nothing.

use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{Duration, Utc};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tenant_orchestrator::api::ApiState;
use tenant_orchestrator::app::{App, IntakeConfig, StripeIntake};

use crate::api_support::{spawn, spawn_with_state, tokens, Reply, TestApi};

const SECRET: &str = "whsec_test_intake_secret";
const MAPPING: &str = "environment: prod\nsecret_env: STRIPE_TEST_SECRET\nrelease: 1.0.0\ngrace_period: 1h\n\
                       prices: {price_basic: small, price_pro: large}\ndefaults: {region: eu-west-1, group: paying}\n";

fn mapping(text: &str) -> IntakeConfig {
    IntakeConfig::parse(Path::new("intake.yaml"), text, |var| {
        (var == "STRIPE_TEST_SECRET").then(|| SECRET.to_owned())
    })
    .unwrap()
}

/// The API with the Stripe intake of `MAPPING`, and the intake itself for sweeps.
async fn spawn_intake() -> (TestApi, StripeIntake) {
    let slot = Arc::new(Mutex::new(None));
    let kept = slot.clone();
    let api = spawn_with_state(move |app: App| {
        let intake = app.stripe_intake(mapping(MAPPING));
        *kept.lock().unwrap() = Some(intake.clone());
        ApiState::new(app, tokens()).with_stripe_intake(intake)
    })
    .await;
    let intake = slot.lock().unwrap().take().unwrap();
    (api, intake)
}

fn subscription_event(id: &str, kind: &str, status: &str, price: &str) -> Value {
    json!({
        "id": id, "object": "event", "type": kind, "livemode": false,
        "data": {"object": {
            "id": "sub_acme", "object": "subscription", "status": status, "cancel_at_period_end": false,
            "metadata": {"tenant_id": "acme", "hostnames": "acme.example.com,shop.acme.example.com"},
            "items": {"object": "list", "data": [{"id": "si_1", "price": {"id": price, "object": "price"}}]}
        }}
    })
}

/// `t=<timestamp>,v1=<HMAC-SHA256 of "{t}.{body}" under secret>`, as Stripe signs.
fn stripe_signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<sha2_hmac::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={timestamp},v1={hex}")
}

async fn deliver_signed(api: &TestApi, event: &Value, signature: Option<String>) -> Reply {
    let body = event.to_string();
    let mut request = api
        .client
        .post(format!("{}/v1/intake/stripe", api.base))
        .header("Content-Type", "application/json")
        .body(body);
    if let Some(signature) = signature {
        request = request.header("Stripe-Signature", signature);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    Reply {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        headers,
    }
}

async fn deliver(api: &TestApi, event: &Value) -> Reply {
    let signature = stripe_signature(SECRET, Utc::now().timestamp(), &event.to_string());
    deliver_signed(api, event, Some(signature)).await
}

/// Delivers a basic subscription (`evt_1`), lets its tenant be created, then delivers
/// its cancellation (`evt_2`); returns the answer to the cancellation.
async fn subscribe_then_cancel(api: &TestApi) -> Reply {
    let created = subscription_event("evt_1", "customer.subscription.created", "active", "price_basic");
    deliver(api, &created).await;
    api.settle().await;
    let deleted = subscription_event(
        "evt_2",
        "customer.subscription.deleted",
        "canceled",
        "price_basic",
    );
    deliver(api, &deleted).await
}

async fn history(api: &TestApi, id: &str) -> Vec<Value> {
    let reply = api.get(&format!("/v1/tenants/{id}/history?limit=1000")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_signed_subscription_creates_retiers_and_deprovisions_its_tenant_after_the_grace() {
    let (api, intake) = spawn_intake().await;

    let created = deliver(
        &api,
        &subscription_event("evt_1", "customer.subscription.created", "active", "price_basic"),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    assert_eq!(created.body["status"], "created");
    let tenant = api.get("/v1/tenants/acme").await.body;
    assert_eq!(tenant["tier"], "small");
    assert_eq!(tenant["region"], "eu-west-1");
    assert_eq!(tenant["group"], "paying");
    assert_eq!(tenant["environment"], "prod");
    assert_eq!(
        tenant["hostnames"],
        json!(["acme.example.com", "shop.acme.example.com"])
    );
    assert_eq!(tenant["target_release"], "1.0.0");
    api.settle().await;
    assert_eq!(api.get("/v1/tenants/acme").await.body["state"], "Active");

    let upgraded = deliver(
        &api,
        &subscription_event("evt_2", "customer.subscription.updated", "active", "price_pro"),
    )
    .await;
    assert_eq!(upgraded.status, StatusCode::OK, "{}", upgraded.body);
    assert_eq!(upgraded.body["status"], "tier_changed");
    assert_eq!(api.get("/v1/tenants/acme").await.body["tier"], "large");
    let events = history(&api, "acme").await;
    assert!(
        events
            .iter()
            .any(|e| e["actor"] == "stripe:evt_2" && e["cause"].as_str().unwrap().contains("tier large")),
        "{events:#?}"
    );

    let deleted = deliver(
        &api,
        &subscription_event("evt_3", "customer.subscription.deleted", "canceled", "price_pro"),
    )
    .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert_eq!(deleted.body["status"], "deprovision_scheduled");
    let due: chrono::DateTime<Utc> = deleted.body["deprovision_at"].as_str().unwrap().parse().unwrap();
    assert!(due > Utc::now() + Duration::minutes(59), "{due}");

    assert_eq!(intake.deprovision_due(Utc::now()).await.unwrap(), vec![]);
    assert_eq!(api.get("/v1/tenants/acme").await.body["state"], "Active");
    let started = intake.deprovision_due(due + Duration::seconds(1)).await.unwrap();
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].as_str(), "acme");
    assert_eq!(api.get("/v1/tenants/acme").await.body["state"], "Deprovisioning");
    let last = history(&api, "acme").await.pop().unwrap();
    assert_eq!(last["actor"], "stripe:sub_acme");
    assert_eq!(
        last["to"].as_str().unwrap().split('/').next(),
        Some("Deprovisioning")
    );
    // A second sweep finds nothing left to do.
    assert_eq!(
        intake.deprovision_due(due + Duration::hours(1)).await.unwrap(),
        vec![]
    );
}

#[tokio::test]
async fn a_renewal_within_the_grace_period_cancels_the_scheduled_deprovision() {
    let (api, intake) = spawn_intake().await;
    let deleted = subscribe_then_cancel(&api).await;
    assert_eq!(
        deleted.body["status"], "deprovision_scheduled",
        "{}",
        deleted.body
    );

    let renewed = deliver(
        &api,
        &subscription_event("evt_3", "customer.subscription.created", "active", "price_basic"),
    )
    .await;
    assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.body);
    assert_eq!(renewed.body["status"], "unchanged");

    assert_eq!(
        intake
            .deprovision_due(Utc::now() + Duration::days(30))
            .await
            .unwrap(),
        vec![]
    );
    assert_eq!(api.get("/v1/tenants/acme").await.body["state"], "Active");
    let causes: Vec<(String, String)> = history(&api, "acme")
        .await
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_owned(),
                e["cause"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let scheduled = causes.iter().position(|(actor, cause)| {
        actor == "stripe:evt_2" && cause.starts_with("Subscription: deprovision scheduled")
    });
    let canceled = causes.iter().position(|(actor, cause)| {
        actor == "stripe:evt_3" && cause.contains("is canceled: subscription sub_acme is active again")
    });
    assert!(scheduled.is_some() && canceled > scheduled, "{causes:#?}");
}

#[tokio::test]
async fn forged_stale_replayed_and_unmapped_deliveries_change_nothing() {
    let (api, _intake) = spawn_intake().await;
    let first = subscription_event("evt_1", "customer.subscription.created", "active", "price_basic");
    assert_eq!(deliver(&api, &first).await.body["status"], "created");
    api.settle().await;
    let before = (api.get("/v1/tenants").await.body, history(&api, "acme").await);

    let upgrade = subscription_event("evt_2", "customer.subscription.updated", "active", "price_pro");
    let body = upgrade.to_string();
    let now = Utc::now().timestamp();
    let forged = deliver_signed(
        &api,
        &upgrade,
        Some(stripe_signature("whsec_someone_else", now, &body)),
    )
    .await;
    assert_eq!(
        (forged.status, forged.code()),
        (StatusCode::BAD_REQUEST, "invalid_signature"),
        "{}",
        forged.body
    );
    let unsigned = deliver_signed(&api, &upgrade, None).await;
    assert_eq!(
        (unsigned.status, unsigned.code()),
        (StatusCode::BAD_REQUEST, "invalid_signature")
    );
    let tampered = deliver_signed(
        &api,
        &subscription_event("evt_2", "customer.subscription.updated", "active", "price_basic"),
        Some(stripe_signature(SECRET, now, &body)),
    )
    .await;
    assert_eq!(
        (tampered.status, tampered.code()),
        (StatusCode::BAD_REQUEST, "invalid_signature")
    );
    let stale = deliver_signed(&api, &upgrade, Some(stripe_signature(SECRET, now - 301, &body))).await;
    assert_eq!(
        (stale.status, stale.code()),
        (StatusCode::BAD_REQUEST, "stale_timestamp"),
        "{}",
        stale.body
    );

    let replay = deliver(&api, &first).await;
    assert_eq!(replay.status, StatusCode::OK, "{}", replay.body);
    assert_eq!(replay.body["status"], "duplicate");

    let unmapped = subscription_event(
        "evt_4",
        "customer.subscription.updated",
        "active",
        "price_enterprise",
    );
    let refused = deliver(&api, &unmapped).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "unknown_price"),
        "{}",
        refused.body
    );
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("price_enterprise") && message.contains("intake.yaml"),
        "{message}"
    );

    let after = (api.get("/v1/tenants").await.body, history(&api, "acme").await);
    assert_eq!(before, after, "a refused or replayed delivery changed the table");

    // Nothing was recorded for the unmapped delivery: once the price is mapped,
    // Stripe's retry of the same event acts.
    let fixed = App::new(api.store.clone()).stripe_intake(mapping(
        &format!("{MAPPING}\n").replace("price_pro: large", "price_pro: large, price_enterprise: medium"),
    ));
    let body = unmapped.to_string();
    let retried = fixed
        .receive(
            Some(&stripe_signature(SECRET, Utc::now().timestamp(), &body)),
            body.as_bytes(),
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(retried.status, "tier_changed");
    assert_eq!(api.get("/v1/tenants/acme").await.body["tier"], "medium");
}

#[tokio::test]
async fn without_a_mapping_file_the_intake_says_how_to_enable_it() {
    let api = spawn().await;
    let reply = api
        .call(
            Method::POST,
            "/v1/intake/stripe",
            None,
            Some(json!({"id": "evt_1"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.code(), "intake_not_configured");
    assert!(reply.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("--stripe-intake"));
}

#[tokio::test]
async fn a_delivery_whose_handler_died_after_claiming_it_is_acted_on_by_a_retry_after_the_takeover_time() {
    use tenant_orchestrator::app::intake::CLAIM_TAKEOVER;
    use tenant_orchestrator::ports::{Claim, IntakeStore};

    let (api, _intake) = spawn_intake().await;
    let event = subscription_event(
        "evt_lost",
        "customer.subscription.created",
        "active",
        "price_basic",
    );
    let keep = Utc::now() + Duration::days(3);

    // A handler claims the delivery and dies before the change: a retry at once is
    // told to come back (409, which Stripe retries), and nothing is created.
    let claimed = api
        .store
        .claim_delivery("evt_lost", Utc::now(), CLAIM_TAKEOVER, keep)
        .await
        .unwrap();
    assert_eq!(claimed, Claim::New);
    let early = deliver(&api, &event).await;
    assert_eq!(early.status, StatusCode::CONFLICT, "{}", early.body);
    assert_eq!(early.body["error"]["code"], "in_progress");
    assert_eq!(api.get("/v1/tenants/acme").await.status, StatusCode::NOT_FOUND);

    // Once the claim is older than the takeover time, the retry acts on it.
    let stale = Utc::now() - Duration::from_std(CLAIM_TAKEOVER).unwrap() - Duration::seconds(1);
    api.store.release_delivery("evt_lost").await.unwrap();
    api.store
        .claim_delivery("evt_lost", stale, CLAIM_TAKEOVER, keep)
        .await
        .unwrap();
    let retried = deliver(&api, &event).await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.body);
    assert_eq!(retried.body["status"], "created");
    assert_eq!(api.get("/v1/tenants/acme").await.status, StatusCode::OK);

    // Completed: a later replay is a duplicate, whatever its age.
    let replay = deliver(&api, &event).await;
    assert_eq!(replay.body["status"], "duplicate", "{}", replay.body);
    let late = api
        .store
        .claim_delivery("evt_lost", Utc::now() + Duration::hours(1), CLAIM_TAKEOVER, keep)
        .await
        .unwrap();
    assert_eq!(late, Claim::Replay);
    api.settle().await;
}

#[tokio::test]
async fn a_due_deprovision_under_a_freeze_keeps_its_schedule_until_the_freeze_is_gone() {
    let (api, intake) = spawn_intake().await;
    let deleted = subscribe_then_cancel(&api).await;
    let due: chrono::DateTime<Utc> = deleted.body["deprovision_at"].as_str().unwrap().parse().unwrap();
    let now = Utc::now();
    let freeze = json!({
        "environment": "prod", "region": "eu-west-1",
        "from": now - Duration::minutes(1), "until": now + Duration::hours(2),
        "reason": "year-end"
    });
    let added = api
        .call(
            Method::POST,
            "/v1/freezes",
            Some(crate::api_support::ADMIN),
            Some(freeze),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    let events = history(&api, "acme").await.len();

    assert_eq!(
        intake.deprovision_due(due + Duration::seconds(1)).await.unwrap(),
        vec![]
    );
    assert_eq!(api.get("/v1/tenants/acme").await.body["state"], "Active");
    assert_eq!(history(&api, "acme").await.len(), events);

    let path = format!("/v1/freezes/{}", added.body["id"].as_str().unwrap());
    let removed = api
        .call(Method::DELETE, &path, Some(crate::api_support::ADMIN), None)
        .await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.body);
    let started = intake.deprovision_due(due + Duration::seconds(2)).await.unwrap();
    assert_eq!(started.len(), 1, "the schedule was kept through the freeze");
    assert_eq!(api.get("/v1/tenants/acme").await.body["state"], "Deprovisioning");
}
