//! The EventBridge and Slack sinks and the drift events: events written to the outbox
//! on DynamoDB Local, delivered by the dispatcher to a bus on the local EventBridge
//! (moto, which routes a rule's targets to SQS) and to a local Slack-compatible
//! receiver.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::receiver::ScriptedReceiver;
use common::*;
use serde_json::{json, Value};
use tenant_orchestrator::app::TenantCommands;
use tenant_orchestrator::domain::TenantId;
use tenant_orchestrator::outbox::config::SinkConfig;
use tenant_orchestrator::outbox::eventbridge::EventBridgeSink;
use tenant_orchestrator::outbox::slack::SlackSink;
use tenant_orchestrator::outbox::{Dispatcher, DispatcherConfig, EventsConfig, Sink};
use tenant_orchestrator::ports::{DriftStore, OutboxStore};
use tenant_orchestrator::record::outbox::{RetryPolicy, TENANT_DRIFT_DETECTED, TENANT_TRANSITION};
use tenant_orchestrator::record::{Actor, DeliveryState, DriftCheck, DriftFinding, DriftKind};

fn dispatcher(store: Arc<dyn OutboxStore>, sink: Arc<dyn Sink>, max_attempts: u32) -> Dispatcher {
    Dispatcher::new(
        store,
        vec![sink],
        DispatcherConfig {
            owner: "d1".to_owned(),
            lease_ttl: Duration::from_secs(60),
            poll_interval: Duration::from_millis(50),
            batch: 50,
            retry: RetryPolicy {
                max_attempts,
                base: Duration::ZERO,
                cap: Duration::ZERO,
            },
            retention: Duration::from_secs(3600),
        },
    )
}

async fn create(store: &TestStore, id: &str) {
    TenantCommands::new(store.arc())
        .create(spec(id, "eu-west-1"), release("1.0.0"), &Actor::operator("test"))
        .await
        .unwrap();
}

fn aws_required() {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "integration tests need the local AWS: run `eval \"$(localstack/start.sh)\"` first (scripts/test.sh does it)"
    );
}

/// A new bus on the local EventBridge with a rule sending every event whose source
/// starts with `tenantctl/` to a new SQS queue; returns the bus name and the queue URL.
async fn bus_to_queue(aws: &aws_config::SdkConfig) -> (String, String) {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let events = aws_sdk_eventbridge::Client::new(aws);
    let sqs = aws_sdk_sqs::Client::new(aws);
    let bus = format!("tenant-events-{suffix}");
    events.create_event_bus().name(&bus).send().await.unwrap();
    let queue_url = sqs
        .create_queue()
        .queue_name(format!("tenant-events-{suffix}"))
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    events
        .put_rule()
        .name("tenantctl-events")
        .event_bus_name(&bus)
        .event_pattern(json!({"source": [{"prefix": "tenantctl/"}]}).to_string())
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule("tenantctl-events")
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(queue_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    (bus, queue_url)
}

fn eventbridge_sink(aws: &aws_config::SdkConfig, bus: &str) -> Arc<dyn Sink> {
    let config: SinkConfig = serde_json::from_value(json!({
        "name": "bus",
        "eventbridge": {"event_bus": bus},
        "types": ["io.tenant-orchestrator.tenant."],
        "regions": ["eu-west-1"],
    }))
    .unwrap();
    Arc::new(EventBridgeSink::from_config(&config, aws).unwrap())
}

#[tokio::test]
async fn an_event_reaches_an_eventbridge_bus_and_its_rules_target() {
    aws_required();
    let aws = aws_config::load_from_env().await;
    let store = fresh_store().await;
    let (bus, queue_url) = bus_to_queue(&aws).await;
    create(&store, "acme").await;
    let event = store.list_events(Some(DeliveryState::Pending), 10).await.unwrap()[0]
        .event
        .clone();

    let pass = dispatcher(store.arc(), eventbridge_sink(&aws, &bus), 3)
        .dispatch_once()
        .await
        .unwrap();
    assert_eq!(pass.delivered, 1, "{pass:?}");
    assert_eq!(
        store.event(&event.id).await.unwrap().state,
        DeliveryState::Delivered
    );

    let messages = aws_sdk_sqs::Client::new(&aws)
        .receive_message()
        .queue_url(&queue_url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let bodies: Vec<Value> = messages
        .messages()
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .collect();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let received = &bodies[0];
    assert_eq!(received["source"], "tenantctl/test");
    assert_eq!(received["detail-type"], TENANT_TRANSITION);
    assert_eq!(
        received["detail"]["id"],
        event.id.as_str(),
        "the CloudEvent id is in the detail"
    );
    assert_eq!(received["detail"]["type"], TENANT_TRANSITION);
    assert_eq!(received["detail"]["subject"], "tenant/acme");
}

#[tokio::test]
async fn an_unknown_bus_records_the_attempt_as_failed() {
    aws_required();
    let aws = aws_config::load_from_env().await;
    let store = fresh_store().await;
    create(&store, "acme").await;
    let sink = eventbridge_sink(&aws, &format!("no-such-bus-{}", uuid::Uuid::new_v4().simple()));

    let pass = dispatcher(store.arc(), sink, 3).dispatch_once().await.unwrap();
    assert_eq!((pass.attempts, pass.delivered, pass.dead), (1, 0, 1), "{pass:?}");
    let dead = store.list_events(Some(DeliveryState::Dead), 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    let delivery = &dead[0].deliveries["bus"];
    assert_eq!(delivery.attempts, 1);
    let error = delivery.last_error.as_deref().unwrap();
    assert!(error.contains("ResourceNotFoundException"), "{error}");
}

/// A Slack-compatible incoming webhook on a local port: answers with the scripted
/// statuses in turn (200 once they run out) and keeps every message.
struct SlackReceiver(ScriptedReceiver);

impl SlackReceiver {
    async fn start(answers: &[u16]) -> (Self, String) {
        let (receiver, url) = ScriptedReceiver::start("/services/T0/B0/secret", answers).await;
        (SlackReceiver(receiver), url)
    }

    fn messages(&self) -> Vec<Value> {
        self.0
            .requests()
            .iter()
            .map(|r| {
                let kind = r.headers["content-type"].to_str().unwrap();
                assert!(
                    kind.starts_with("application/json"),
                    "a Slack message is JSON, not {kind}"
                );
                serde_json::from_slice(&r.body).expect("a Slack message is JSON")
            })
            .collect()
    }

    fn texts(&self) -> Vec<String> {
        self.messages()
            .iter()
            .map(|m| m["text"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// A Slack sink whose URL is read from a file of the test's own.
fn slack_sink(url: &str) -> Arc<dyn Sink> {
    let path = std::env::temp_dir().join(format!("slack-url-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, format!("{url}\n")).unwrap();
    let config: SinkConfig = serde_json::from_value(json!({
        "name": "people",
        "slack": {"url_file": path},
    }))
    .unwrap();
    let sink = SlackSink::from_config(&config).unwrap();
    std::fs::remove_file(&path).unwrap();
    Arc::new(sink)
}

#[tokio::test]
async fn a_slack_message_says_what_happened_and_a_throttled_one_is_sent_again() {
    let store = fresh_store().await;
    let (receiver, url) = SlackReceiver::start(&[429]).await;
    create(&store, "acme").await;
    let dispatcher = dispatcher(store.arc(), slack_sink(&url), 3);

    assert_eq!(dispatcher.dispatch_once().await.unwrap().delivered, 0);
    let waiting = store.list_events(Some(DeliveryState::Pending), 10).await.unwrap();
    let error = waiting[0].deliveries["people"].last_error.clone().unwrap();
    assert_eq!(error, "the Slack webhook answered HTTP 429 Too Many Requests");
    assert!(
        !error.contains(&url),
        "the URL is the secret and stays out of errors"
    );
    assert_eq!(dispatcher.dispatch_once().await.unwrap().delivered, 1);

    let expected = ":gear: Tenant acme (test, eu-west-1): New → Provisioning/CheckArtifact — `tenantctl tenant get acme`";
    assert_eq!(receiver.texts(), vec![expected.to_owned(), expected.to_owned()]);
    let message = receiver.messages()[1].clone();
    assert_eq!(message["blocks"][0]["text"]["text"], expected);
}

#[tokio::test]
async fn a_slack_webhook_that_refuses_the_message_dead_letters_it() {
    let store = fresh_store().await;
    let (receiver, url) = SlackReceiver::start(&[404]).await;
    create(&store, "acme").await;

    let pass = dispatcher(store.arc(), slack_sink(&url), 5)
        .dispatch_once()
        .await
        .unwrap();
    assert_eq!(pass.dead, 1, "{pass:?}");
    assert_eq!(receiver.texts().len(), 1);
    let dead = store.list_events(Some(DeliveryState::Dead), 10).await.unwrap();
    assert_eq!(
        dead[0].deliveries["people"].last_error.as_deref(),
        Some("the Slack webhook refused it with HTTP 404 Not Found")
    );
}

fn write_config(value: Value) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("events-{}.json", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, value.to_string()).unwrap();
    path
}

#[test]
fn a_sink_is_exactly_one_kind() {
    for (sink, found) in [
        (json!({"name": "none"}), 0),
        (
            json!({"name": "two", "slack": {"url_env": "X"}, "eventbridge": {}}),
            2,
        ),
    ] {
        let path = write_config(json!({ "sinks": [sink] }));
        let error = EventsConfig::load(&path).unwrap_err().to_string();
        assert!(
            error.contains(&format!(
                "give exactly one of \"webhook\", \"eventbridge\" or \"slack\" (found {found})"
            )),
            "{error}"
        );
    }
    let path = write_config(json!({"sinks": [{"name": "s", "slack": {"url": "https://hooks.slack.com/x"}}]}));
    let error = EventsConfig::load(&path).unwrap_err().to_string();
    assert!(
        error.contains("unknown field `url`"),
        "the URL is never in the configuration: {error}"
    );
    let path = write_config(json!({"sinks": [
        {"name": "bus", "eventbridge": {}},
        {"name": "people", "slack": {"url_env": "SLACK_WEBHOOK_URL"}},
    ]}));
    let config = EventsConfig::load(&path).unwrap();
    assert_eq!(config.sinks[0].eventbridge.as_ref().unwrap().event_bus, "default");
}

fn check(tenant: &str, at_seconds: i64, drifted: bool) -> DriftCheck {
    DriftCheck {
        tenant: TenantId::parse(tenant).unwrap(),
        checked_at: Utc::now() - chrono::Duration::seconds(100 - at_seconds),
        findings: if drifted {
            vec![DriftFinding {
                kind: DriftKind::StackParameter,
                name: "Tier".into(),
                desired: Some("small".into()),
                live: Some("large".into()),
            }]
        } else {
            vec![]
        },
    }
}

async fn drift_events(store: &TestStore) -> Vec<Value> {
    store
        .list_events(None, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event.event_type == TENANT_DRIFT_DETECTED)
        .map(|e| serde_json::to_value(&e.event).unwrap())
        .collect()
}

#[tokio::test]
async fn drift_is_reported_once_per_change_from_in_sync_to_drifted() {
    let store = fresh_store().await;
    create(&store, "acme").await;
    create(&store, "globex").await;

    store.record_drift(&check("acme", 1, false)).await.unwrap();
    assert!(drift_events(&store).await.is_empty(), "in sync reports nothing");
    let drifted = check("acme", 2, true);
    store.record_drift(&drifted).await.unwrap();
    let still = check("acme", 3, true);
    store.record_drift(&still).await.unwrap();
    let events = drift_events(&store).await;
    assert_eq!(events.len(), 1, "a second drifted check writes none: {events:?}");
    let event = &events[0];
    assert_eq!(event["subject"], "tenant/acme");
    assert_eq!(event["source"], "tenantctl/test");
    assert_eq!(event["data"]["environment"], "test");
    assert_eq!(event["data"]["region"], "eu-west-1");
    assert_eq!(event["data"]["summary"], "1 drifted: stack_parameter Tier");
    assert_eq!(
        event["data"]["findings"][0],
        "stack_parameter Tier: desired \"small\", live \"large\""
    );
    assert_eq!(
        store.last_drift(&drifted.tenant).await.unwrap(),
        Some(still),
        "the later drifted check is recorded all the same"
    );

    // Back in sync, then drifted again: a new event.
    store.record_drift(&check("acme", 4, false)).await.unwrap();
    store.record_drift(&check("acme", 5, true)).await.unwrap();
    assert_eq!(drift_events(&store).await.len(), 2);

    // A tenant never checked before that is found drifted is reported too.
    store.record_drift(&check("globex", 1, true)).await.unwrap();
    let events = drift_events(&store).await;
    assert_eq!(events.len(), 3);
    assert!(events.iter().any(|e| e["subject"] == "tenant/globex"));
    let ids: std::collections::BTreeSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3, "every report has an id of its own");
}
