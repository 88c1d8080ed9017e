//! The outbox on DynamoDB Local: events written with the transitions they report,
//! delivered by the dispatcher to a webhook receiver that checks every signature.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use axum::http::HeaderMap;
use base64::Engine;
use chrono::Utc;
use common::receiver::{ScriptedReceiver, HANG};
use common::*;
use hmac::{Hmac, KeyInit, Mac};
use tenant_orchestrator::app::{EventCommands, TenantCommands};
use tenant_orchestrator::outbox::config::SinkConfig;
use tenant_orchestrator::outbox::webhook::WebhookSink;
use tenant_orchestrator::outbox::{Dispatcher, DispatcherConfig, Sink};
use tenant_orchestrator::ports::OutboxStore;
use tenant_orchestrator::record::outbox::{RetryPolicy, OUTBOX_PARTITIONS};
use tenant_orchestrator::record::{Actor, CloudEvent, DeliveryState};
use tenant_orchestrator::store::TenantStore;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One request the receiver got, with whether its signature checked out.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    signature_valid: bool,
    event: CloudEvent,
}

/// A webhook receiver on a local port that checks each request's signature as a
/// receiver following Standard Webhooks would, with the secret it shares with the sink.
struct Receiver(ScriptedReceiver);

fn valid_signature(headers: &HeaderMap, body: &[u8]) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = Hmac::<sha2_hmac::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.", header("webhook-id"), header("webhook-timestamp")).as_bytes());
    mac.update(body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    header("webhook-signature").split(' ').any(|s| s == expected)
}

impl Receiver {
    /// Starts the receiver, answering with `answers` in turn; returns it and its URL.
    async fn start(answers: &[u16]) -> (Self, String) {
        let (receiver, url) = ScriptedReceiver::start("/hook", answers).await;
        (Receiver(receiver), url)
    }

    fn received(&self) -> Vec<Received> {
        self.0
            .requests()
            .into_iter()
            .map(|r| Received {
                id: r.headers["webhook-id"].to_str().unwrap().to_owned(),
                signature_valid: valid_signature(&r.headers, &r.body),
                event: serde_json::from_slice(&r.body).expect("the body is a CloudEvent"),
            })
            .collect()
    }
}

fn webhook(url: &str) -> Arc<dyn Sink> {
    webhook_with_timeout(url, "5s")
}

fn webhook_with_timeout(url: &str, timeout: &str) -> Arc<dyn Sink> {
    // Every test sets the same value, so tests running at once agree.
    std::env::set_var("OUTBOX_TEST_WEBHOOK_SECRET", SECRET);
    let config: SinkConfig = serde_json::from_value(serde_json::json!({
        "name": "ops",
        "webhook": { "url": url, "secret_env": "OUTBOX_TEST_WEBHOOK_SECRET", "timeout": timeout },
        "types": ["io.tenant-orchestrator.tenant."],
    }))
    .unwrap();
    Arc::new(WebhookSink::from_config(&config).unwrap())
}

fn dispatcher(store: Arc<dyn OutboxStore>, owner: &str, url: &str, max_attempts: u32) -> Dispatcher {
    Dispatcher::new(
        store,
        vec![webhook(url)],
        DispatcherConfig {
            owner: owner.to_owned(),
            lease_ttl: Duration::from_secs(60),
            poll_interval: Duration::from_millis(50),
            batch: 50,
            // No wait between attempts: each pass retries what failed in the one before.
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

#[tokio::test]
async fn a_transition_is_delivered_once_with_a_valid_signature() {
    let store = fresh_store().await;
    let (receiver, url) = Receiver::start(&[]).await;
    create(&store, "acme").await;

    let pending = store.list_events(Some(DeliveryState::Pending), 10).await.unwrap();
    assert_eq!(pending.len(), 1, "the create wrote one event: {pending:?}");
    let event = &pending[0].event;
    assert_eq!(event.specversion, "1.0");
    assert_eq!(event.event_type, "io.tenant-orchestrator.tenant.transition");
    assert_eq!(event.subject, "tenant/acme");
    assert_eq!(event.source, "tenantctl/test");
    assert_eq!(event.data["to"], "Provisioning/CheckArtifact");
    assert_eq!(event.data["region"], "eu-west-1");

    let dispatcher = dispatcher(store.arc(), "d1", &url, 3);
    let pass = dispatcher.dispatch_once().await.unwrap();
    assert_eq!(pass.partitions_held, OUTBOX_PARTITIONS);
    assert_eq!(pass.delivered, 1);
    // A second pass has nothing left to deliver.
    assert_eq!(dispatcher.dispatch_once().await.unwrap().attempts, 0);

    let received = receiver.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert!(
        received[0].signature_valid,
        "the signature checks out with the shared secret"
    );
    assert_eq!(received[0].id, event.id);
    assert_eq!(&received[0].event, event);
    let stored = store.event(&event.id).await.unwrap();
    assert_eq!(stored.state, DeliveryState::Delivered);
    assert_eq!(stored.deliveries["ops"].attempts, 1);
    assert!(stored.deliveries["ops"].delivered_at.is_some());
}

#[tokio::test]
async fn a_failing_receiver_is_retried_until_it_accepts() {
    let store = fresh_store().await;
    let (receiver, url) = Receiver::start(&[500, 503]).await;
    create(&store, "acme").await;
    let dispatcher = dispatcher(store.arc(), "d1", &url, 5);

    assert_eq!(dispatcher.dispatch_once().await.unwrap().delivered, 0);
    let waiting = store.list_events(Some(DeliveryState::Pending), 10).await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(
        waiting[0].deliveries["ops"].last_error.as_deref(),
        Some("the receiver answered HTTP 500 Internal Server Error")
    );
    assert_eq!(dispatcher.dispatch_once().await.unwrap().delivered, 0);
    assert_eq!(dispatcher.dispatch_once().await.unwrap().delivered, 1);

    let received = receiver.received();
    assert_eq!(received.len(), 3);
    assert!(received.iter().all(|r| r.signature_valid));
    assert!(
        received.iter().all(|r| r.id == received[0].id),
        "every attempt has the event's id"
    );
    let stored = store.event(&received[0].id).await.unwrap();
    assert_eq!(stored.state, DeliveryState::Delivered);
    assert_eq!(stored.deliveries["ops"].attempts, 3);
}

#[tokio::test]
async fn a_refusing_receiver_dead_letters_the_event_and_redelivery_delivers_it() {
    let store = fresh_store().await;
    let (receiver, url) = Receiver::start(&[400]).await;
    create(&store, "acme").await;
    let dispatcher = dispatcher(store.arc(), "d1", &url, 5);

    let pass = dispatcher.dispatch_once().await.unwrap();
    assert_eq!((pass.attempts, pass.dead), (1, 1), "a 400 is not retried");
    let dead = store.list_events(Some(DeliveryState::Dead), 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].deliveries["ops"].dead);
    assert_eq!(
        dispatcher.dispatch_once().await.unwrap().attempts,
        0,
        "dead stays dead"
    );

    let id = dead[0].event.id.clone();
    let events = EventCommands::new(store.arc());
    let again = events.redeliver(&id, None).await.unwrap();
    assert_eq!(again.state, DeliveryState::Pending);
    // Nothing is left to redeliver until it is dead again.
    let err = events.redeliver(&id, None).await.unwrap_err();
    assert!(err.to_string().contains("no sink gave it up"), "{err}");

    assert_eq!(dispatcher.dispatch_once().await.unwrap().delivered, 1);
    assert_eq!(receiver.received().len(), 2);
    assert_eq!(store.event(&id).await.unwrap().state, DeliveryState::Delivered);
}

#[tokio::test]
async fn events_list_and_redeliver_on_the_command_line() {
    let store = fresh_store().await;
    let (receiver, url) = Receiver::start(&[410]).await;
    create(&store, "acme").await;
    let dispatcher = dispatcher(store.arc(), "d1", &url, 5);
    dispatcher.dispatch_once().await.unwrap();
    let tenantctl = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tenantctl"))
            .args(["--table", store.table()])
            .args(args)
            .output()
            .unwrap()
    };

    let listed = tenantctl(&["events", "list", "--state", "dead", "--output", "json"]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["state"], "dead");
    assert_eq!(listed[0]["deliveries"]["ops"]["attempts"], 1);
    let id = listed[0]["id"].as_str().unwrap().to_owned();

    let bad = tenantctl(&["events", "list", "--state", "lost"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("use pending, delivered or dead"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let missing = tenantctl(&["events", "redeliver", "evt_0000"]);
    assert_eq!(
        missing.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );

    let redelivered = tenantctl(&["events", "redeliver", &id, "--sink", "ops"]);
    assert!(
        redelivered.status.success(),
        "{}",
        String::from_utf8_lossy(&redelivered.stderr)
    );
    assert_eq!(dispatcher.dispatch_once().await.unwrap().delivered, 1);
    assert_eq!(receiver.received().len(), 2);
}

#[tokio::test]
async fn a_refused_transition_writes_no_event() {
    let store = fresh_store().await;
    create(&store, "acme").await;
    // Creating it again is refused: the tenant exists.
    TenantCommands::new(store.arc())
        .create(
            spec("acme", "eu-west-1"),
            release("2.0.0"),
            &Actor::operator("test"),
        )
        .await
        .unwrap_err();
    let events = store.list_events(None, 10).await.unwrap();
    assert_eq!(
        events.len(),
        1,
        "only the create that was written has an event: {events:?}"
    );
    assert_eq!(events[0].event.data["seq"], 1);
}

#[tokio::test]
async fn the_events_of_steps_written_together_are_one_item_and_delivered_one_by_one_in_order() {
    let store = fresh_store().await;
    // The third request (the second step's event) fails once.
    let (receiver, url) = Receiver::start(&[200, 200, 500]).await;
    create(&store, "acme").await;
    let worker = tenant_orchestrator::worker::Worker::new(
        store.arc(),
        tenant_orchestrator::step::StepRegistry::all(ScriptedStep::new()),
        fast_worker("w1"),
    );
    drain(&worker).await;
    assert_eq!(
        store.load(&tenant_id("acme")).await.unwrap().state.label(),
        "Active"
    );
    let items = outbox_items(&store).await;
    assert_eq!(
        items.len(),
        2,
        "the create's event, then the six steps' in one item"
    );
    let six = items[1]["events_z"]
        .as_b()
        .expect("a binary attribute")
        .as_ref()
        .len();
    assert!(
        six < 1024,
        "the six events take {six} bytes, within the KB a write is charged by"
    );

    let pending = store
        .list_events(Some(DeliveryState::Pending), 100)
        .await
        .unwrap();
    let seqs = |events: &[tenant_orchestrator::record::OutboxEvent]| -> Vec<u64> {
        events
            .iter()
            .map(|e| e.event.data["seq"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(
        seqs(&pending),
        [7, 6, 5, 4, 3, 2, 1],
        "newest first, each on its own"
    );

    let dispatcher = dispatcher(store.arc(), "d1", &url, 5);
    let pass = dispatcher.dispatch_once().await.unwrap();
    assert_eq!((pass.attempts, pass.delivered), (7, 6));
    let waiting = store
        .list_events(Some(DeliveryState::Pending), 100)
        .await
        .unwrap();
    assert_eq!(seqs(&waiting), [3], "only the refused event waits");
    assert_eq!(dispatcher.dispatch_once().await.unwrap().delivered, 1);
    assert_eq!(dispatcher.dispatch_once().await.unwrap().attempts, 0);

    let received: Vec<u64> = (receiver.received().iter())
        .map(|r| {
            assert!(r.signature_valid);
            r.event.data["seq"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(
        received,
        [1, 2, 3, 4, 5, 6, 7, 3],
        "in order, the refused one again"
    );
    let delivered = store
        .list_events(Some(DeliveryState::Delivered), 100)
        .await
        .unwrap();
    assert_eq!(seqs(&delivered), [7, 6, 5, 4, 3, 2, 1]);
    let refused = &delivered[4];
    assert_eq!(refused.event.data["seq"], 3);
    let found = store.event(&refused.event.id).await.unwrap();
    assert_eq!(
        found, *refused,
        "an event is found by id inside the item it shares"
    );
    assert_eq!(found.deliveries["ops"].attempts, 2);

    // Settled, the item is kept for the retention (an hour here), not the 14 days
    // of a pending one; redelivering one of its events makes it pending again.
    let expires = |items: &[Item]| match items[1].get("expires_at") {
        Some(AttributeValue::N(n)) => n.parse::<i64>().unwrap() - Utc::now().timestamp(),
        other => panic!("expires_at: {other:?}"),
    };
    let kept = expires(&outbox_items(&store).await);
    assert!((3500..=3600).contains(&kept), "{kept} s");
    let again = EventCommands::new(store.arc())
        .redeliver(&refused.event.id, Some("ops"))
        .await
        .unwrap();
    assert_eq!(again.state, DeliveryState::Pending);
    assert!(expires(&outbox_items(&store).await) > 13 * 86_400);
    assert_eq!(dispatcher.dispatch_once().await.unwrap().delivered, 1);
    assert_eq!(receiver.received().last().unwrap().event.id, refused.event.id);
    assert!((3500..=3600).contains(&expires(&outbox_items(&store).await)));
}

type Item = std::collections::HashMap<String, AttributeValue>;

/// Every outbox event item, in key order.
async fn outbox_items(store: &TestStore) -> Vec<Item> {
    let mut items = Vec::new();
    for partition in 0..OUTBOX_PARTITIONS {
        let out = store
            .client()
            .query()
            .table_name(store.table())
            .key_condition_expression("pk = :p AND begins_with(sk, :e)")
            .expression_attribute_values(":p", AttributeValue::S(format!("OUTBOX#{partition}")))
            .expression_attribute_values(":e", AttributeValue::S("EV#".into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        items.extend(out.items().iter().cloned());
    }
    items
}

/// `expires_at` of every outbox item holding one event, by event id, in epoch seconds.
async fn event_expiries(store: &TestStore) -> Vec<(String, i64)> {
    let number = |v: Option<&AttributeValue>| match v {
        Some(AttributeValue::N(n)) => n.parse().unwrap(),
        other => panic!("expires_at: {other:?}"),
    };
    let text = |v: Option<&AttributeValue>| match v {
        Some(AttributeValue::S(s)) => s.clone(),
        other => panic!("event_id: {other:?}"),
    };
    (outbox_items(store).await.iter())
        .map(|item| (text(item.get("event_id")), number(item.get("expires_at"))))
        .collect()
}

#[tokio::test]
async fn an_event_no_dispatcher_delivers_expires_instead_of_piling_up() {
    let store = fresh_store().await;
    let before = Utc::now().timestamp();
    create(&store, "acme").await;
    let expiries = event_expiries(&store).await;
    assert_eq!(expiries.len(), 1, "{expiries:?}");
    let days = (expiries[0].1 - before) as f64 / 86_400.0;
    assert!(
        (13.9..=14.1).contains(&days),
        "a pending event is removed by the table's TTL after 14 days, not kept for ever: {days} days"
    );
}

#[tokio::test]
async fn events_committed_while_no_dispatcher_ran_are_delivered_by_the_next_one() {
    let store = fresh_store().await;
    let (receiver, url) = Receiver::start(&[]).await;
    // A dispatcher took every partition, then its process was killed: its leases
    // ran out without a renewal.
    let long_ago = Utc::now() - chrono::Duration::minutes(10);
    for partition in 0..OUTBOX_PARTITIONS {
        assert!(store
            .lease_partition(partition, "killed", Duration::from_secs(30), long_ago)
            .await
            .unwrap());
    }
    for id in ["acme", "globex", "initech"] {
        create(&store, id).await;
    }

    let survivor = dispatcher(store.arc(), "survivor", &url, 3);
    let pass = survivor.dispatch_once().await.unwrap();
    assert_eq!(
        pass.partitions_held, OUTBOX_PARTITIONS,
        "expired leases are taken over"
    );
    assert_eq!(pass.delivered, 3);
    let mut subjects: Vec<String> = receiver.received().into_iter().map(|r| r.event.subject).collect();
    subjects.sort();
    assert_eq!(subjects, ["tenant/acme", "tenant/globex", "tenant/initech"]);

    // While the survivor's leases live, another dispatcher delivers nothing.
    create(&store, "umbrella").await;
    let other = dispatcher(store.arc(), "other", &url, 3)
        .dispatch_once()
        .await
        .unwrap();
    assert_eq!((other.partitions_held, other.attempts), (0, 0));
    assert_eq!(survivor.dispatch_once().await.unwrap().delivered, 1);
}

/// The process the test below kills: creates a tenant (the state change), then
/// dispatches its event with a one-second partition lease. Run only as a child.
#[test]
#[ignore = "run by a_process_killed_between_the_change_and_its_delivery_loses_no_event"]
fn outbox_child() {
    if std::env::var("OUTBOX_CHILD").is_err() {
        return;
    }
    let env = |k: &str| std::env::var(k).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let config = aws_config::load_from_env().await;
        let store = Arc::new(tenant_orchestrator::store::DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&config),
            env("OUTBOX_TABLE"),
        ));
        TenantCommands::new(store.clone())
            .create(
                spec("acme", "eu-west-1"),
                release("1.0.0"),
                &Actor::operator("test"),
            )
            .await
            .unwrap();
        let dispatcher = Dispatcher::new(
            store,
            vec![webhook_with_timeout(&env("OUTBOX_URL"), "1h")],
            DispatcherConfig {
                owner: "child".into(),
                lease_ttl: Duration::from_secs(1),
                poll_interval: Duration::from_millis(50),
                batch: 50,
                retry: RetryPolicy {
                    max_attempts: 3,
                    base: Duration::ZERO,
                    cap: Duration::ZERO,
                },
                retention: Duration::from_secs(3600),
            },
        );
        let (_tx, rx) = tokio::sync::watch::channel(false);
        dispatcher.run(rx).await;
    });
}

#[tokio::test]
async fn a_process_killed_between_the_change_and_its_delivery_loses_no_event() {
    let store = fresh_store().await;
    // The first delivery never gets an answer: the child is killed while it waits.
    let (receiver, url) = Receiver::start(&[HANG]).await;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "outbox_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("OUTBOX_CHILD", "1")
        .env("OUTBOX_TABLE", store.table())
        .env("OUTBOX_URL", &url)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    for _ in 0..600 {
        if !receiver.received().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        receiver.received().len(),
        1,
        "the child committed the change and began the delivery"
    );
    child.kill().unwrap(); // SIGKILL: the delivery is never recorded
    child.wait().unwrap();
    let pending = store.list_events(Some(DeliveryState::Pending), 10).await.unwrap();
    assert_eq!(pending.len(), 1, "the event outlived its process: {pending:?}");
    assert_eq!(pending[0].deliveries.get("ops"), None, "no attempt was recorded");

    // Another process takes the partition over once the child's lease runs out.
    let survivor = dispatcher(store.arc(), "survivor", &url, 3);
    let mut delivered = 0;
    for _ in 0..300 {
        delivered += survivor.dispatch_once().await.unwrap().delivered;
        if delivered > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(delivered, 1);
    let received = receiver.received();
    assert_eq!(received.len(), 2, "delivered again after the kill: {received:?}");
    assert_eq!(
        received[0].id, received[1].id,
        "with the same id, for the receiver to deduplicate"
    );
    assert!(received[1].signature_valid);
    assert_eq!(
        store.event(&received[0].id).await.unwrap().state,
        DeliveryState::Delivered
    );
}
