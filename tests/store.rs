//! The DynamoDB store against a real DynamoDB Local.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::*;
use tenant_orchestrator::app::{CommandError, TenantCommands};
use tenant_orchestrator::machine::{TenantEvent, TenantState};
use tenant_orchestrator::record::{Actor, Cause, Transition};
use tenant_orchestrator::store::{table, DynamoStore, ListQuery, StoreError, TenantStore, WriteGuard};

fn operator() -> Actor {
    Actor::operator("test")
}

/// An operator's spec change out of `from`, described as `what`.
fn changed(from: &TenantState, what: &str) -> Transition {
    Transition::new(from, Cause::SpecChange(vec![what.to_owned()]), operator())
}

async fn create(commands: &TenantCommands, id: &str, region: &str) {
    commands
        .create(spec(id, region), release("1.0.0"), &operator())
        .await
        .unwrap();
}

#[tokio::test]
async fn creating_the_table_twice_is_harmless() {
    let store = fresh_store().await;
    let again = table::ensure_table(store.client(), store.table()).await.unwrap();
    assert_eq!(again, table::TableOutcome::AlreadyExisted);
}

#[tokio::test]
async fn a_tenant_is_created_once_and_loads_back_as_written() {
    let store = fresh_store().await;
    let commands = TenantCommands::new(store.clone());
    let created = commands
        .create(spec("acme", "us-east-1"), release("1.0.0"), &operator())
        .await
        .unwrap();
    let loaded = store.load(&tenant_id("acme")).await.unwrap();
    assert_eq!(loaded, created);
    assert_eq!(loaded.state.label(), "Provisioning/CheckArtifact");
    assert_eq!(loaded.version, 1);

    let err = commands
        .create(spec("acme", "eu-west-1"), release("2.0.0"), &operator())
        .await
        .unwrap_err();
    assert!(
        matches!(err, CommandError::Store(StoreError::Conflict { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("already exists"), "{err}");
    // The failed create changed nothing.
    assert_eq!(store.load(&tenant_id("acme")).await.unwrap(), created);
}

#[tokio::test]
async fn loading_an_unknown_tenant_is_not_found() {
    let store = fresh_store().await;
    let err = store.load(&tenant_id("nobody")).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    assert_eq!(err.to_string(), "tenant nobody not found");
}

#[tokio::test]
async fn many_tenants_load_in_batches_in_the_order_asked_without_the_missing_ones() {
    let store = fresh_store().await;
    let commands = TenantCommands::new(store.clone());
    // More than one request's worth (100 keys), so the batches are stitched together.
    let names: Vec<String> = (0..130).map(|i| format!("batch-{i:03}")).collect();
    for name in &names {
        create(&commands, name, "us-east-1").await;
    }
    let mut asked: Vec<_> = names.iter().rev().map(|n| tenant_id(n)).collect();
    asked.insert(7, tenant_id("nobody"));
    let loaded = store.load_many(&asked).await.unwrap();
    let ids: Vec<String> = loaded.iter().map(|r| r.id().to_string()).collect();
    let expected: Vec<String> = names.iter().rev().cloned().collect();
    assert_eq!(ids, expected);
    assert_eq!(loaded[0], store.load(&tenant_id("batch-129")).await.unwrap());
    assert!(store.load_many(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_table_made_without_the_listing_index_gets_it_from_creating_the_table_again() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
        ProjectionType, ScalarAttributeType,
    };
    // The table as an operator leaves it after deleting `by-region` to recreate it with
    // a wider projection: the same keys, only the `work` index.
    let client = dynamodb_client().await;
    let name = format!("test-{}", uuid::Uuid::new_v4().simple());
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    client
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .attribute_definitions(attribute("pk"))
        .attribute_definitions(attribute("sk"))
        .attribute_definitions(attribute("work_pk"))
        .attribute_definitions(attribute("work_sk"))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("work")
                .key_schema(key("work_pk", KeyType::Hash))
                .key_schema(key("work_sk", KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::KeysOnly)
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let commands = TenantCommands::new(std::sync::Arc::new(DynamoStore::new(
        client.clone(),
        name.clone(),
    )));
    create(&commands, "acme", "us-east-1").await;
    let gaps = table::index_gaps(&client, &name).await.unwrap();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert!(gaps[0].index_missing, "{gaps:?}");
    assert_eq!(gaps[0].to_string(), "index by-region is missing");

    let again = table::ensure_table(&client, &name).await.unwrap();
    assert_eq!(again, table::TableOutcome::AlreadyExisted);
    // Added (DynamoDB builds it from the items in the background).
    assert_eq!(table::index_gaps(&client, &name).await.unwrap(), vec![]);
    let again = table::ensure_table(&client, &name).await.unwrap();
    assert_eq!(
        again,
        table::TableOutcome::AlreadyExisted,
        "adding it again is harmless"
    );
}

#[tokio::test]
async fn of_two_writers_of_one_version_the_second_gets_a_conflict_and_loses_nothing() {
    let store = fresh_store().await;
    let commands = TenantCommands::new(store.clone());
    create(&commands, "acme", "us-east-1").await;
    let id = tenant_id("acme");
    let mut first = store.load(&id).await.unwrap();
    let mut second = first.clone();
    let first_state = first.state.clone();

    first.facts.image = Some("repo@sha256:aaa".into());
    store
        .save(&first, WriteGuard::Version, Some(changed(&first_state, "first")))
        .await
        .unwrap();

    second.last_error = Some("second writer's note".into());
    let err = store
        .save(
            &second,
            WriteGuard::Version,
            Some(changed(&first_state, "second")),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert!(err.to_string().contains("version 2, not 1"), "{err}");

    // The loser reloads and applies its change again; both changes survive.
    let mut retried = store.load(&id).await.unwrap();
    retried.last_error = Some("second writer's note".into());
    store
        .save(
            &retried,
            WriteGuard::Version,
            Some(changed(&first_state, "second")),
        )
        .await
        .unwrap();
    let end = store.load(&id).await.unwrap();
    assert_eq!(end.facts.image.as_deref(), Some("repo@sha256:aaa"));
    assert_eq!(end.last_error.as_deref(), Some("second writer's note"));
    let causes: Vec<String> = store
        .history(&id, 0, 100)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.cause)
        .collect();
    assert_eq!(
        causes,
        ["Provision 1.0.0", "UpdateSpec: first", "UpdateSpec: second"]
    );
}

#[tokio::test]
async fn concurrent_operator_commands_are_serialized_by_version() {
    let store = fresh_store().await;
    let commands = TenantCommands::new(store.clone());
    create(&commands, "acme", "us-east-1").await;
    let id = tenant_id("acme");
    // Ten writers race to change the same tenant; conditional writes plus reload make
    // every one of them land, in some order, with one history event each.
    let mut tasks = Vec::new();
    for i in 0..10 {
        let store = store.clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let mut r = store.load(&id).await.unwrap();
                r.facts.snapshots.push(format!("snap-{i}"));
                let t = changed(&r.state, &format!("writer {i}"));
                match store.save(&r, WriteGuard::Version, Some(t)).await {
                    Ok(_) => return,
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => panic!("{e}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let end = store.load(&id).await.unwrap();
    let mut snaps = end.facts.snapshots.clone();
    snaps.sort();
    assert_eq!(snaps.len(), 10, "a write was lost: {snaps:?}");
    assert_eq!(end.version, 11);
    assert_eq!(store.history(&id, 0, 100).await.unwrap().items.len(), 11);
}

#[tokio::test]
async fn a_lease_excludes_others_until_it_expires_then_the_old_holder_cannot_write() {
    let store = fresh_store().await;
    let commands = TenantCommands::new(store.clone());
    create(&commands, "acme", "us-east-1").await;
    let id = tenant_id("acme");
    let ttl = Duration::from_millis(800);

    let a = store
        .acquire_lease(&id, "worker-a", ttl, Utc::now())
        .await
        .unwrap();
    let a_lease = a.lease.clone().unwrap();
    assert_eq!(a_lease.fence, 1);
    let busy = store
        .acquire_lease(&id, "worker-b", ttl, Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(busy, StoreError::Conflict { .. }), "{busy}");

    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    let b = store
        .acquire_lease(&id, "worker-b", ttl, Utc::now())
        .await
        .unwrap();
    let b_lease = b.lease.clone().unwrap();
    assert_eq!(b_lease.fence, 2, "fences grow with every acquisition");

    // Worker A wakes up and tries to write its result: refused, nothing changes.
    let mut stale = a.clone();
    stale.facts.image = Some("from-a".into());
    let err = store
        .save(&stale, WriteGuard::Lease(&a_lease), None)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("lease lost: held by worker-b (fence 2)"),
        "{err}"
    );
    let renew = store
        .renew_lease(&id, &a_lease, ttl, Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(renew, StoreError::Conflict { .. }), "{renew}");
    assert_eq!(store.load(&id).await.unwrap().facts.image, None);

    // Worker B can.
    let mut fresh = b.clone();
    fresh.facts.image = Some("from-b".into());
    store
        .save(&fresh, WriteGuard::Lease(&b_lease), None)
        .await
        .unwrap();
    assert_eq!(
        store.load(&id).await.unwrap().facts.image.as_deref(),
        Some("from-b")
    );
}

#[tokio::test]
async fn an_expired_lease_cannot_write_even_if_nobody_took_it() {
    let store = fresh_store().await;
    let commands = TenantCommands::new(store.clone());
    create(&commands, "acme", "us-east-1").await;
    let id = tenant_id("acme");
    let held = store
        .acquire_lease(&id, "worker-a", Duration::from_millis(300), Utc::now())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(450)).await;
    let err = store
        .save(&held, WriteGuard::Lease(held.lease.as_ref().unwrap()), None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert!(err.to_string().contains("expired"), "{err}");
}

#[tokio::test]
async fn the_work_index_holds_only_tenants_with_a_step_due() {
    let store = fresh_store().await;
    let commands = TenantCommands::new(store.clone());
    create(&commands, "due-now", "us-east-1").await;
    create(&commands, "due-later", "us-east-1").await;
    create(&commands, "settled", "us-east-1").await;

    let mut later = store.load(&tenant_id("due-later")).await.unwrap();
    later.due_at = Some(Utc::now() + chrono::Duration::minutes(10));
    store.save(&later, WriteGuard::Version, None).await.unwrap();
    let mut settled = store.load(&tenant_id("settled")).await.unwrap();
    settled.state = TenantState::initial()
        .apply(&TenantEvent::Provision {
            release: release("1.0.0"),
        })
        .unwrap();
    while settled.state.step().is_some() {
        let next = settled.state.apply(&TenantEvent::StepSucceeded).unwrap();
        settled.enter(next, Utc::now());
    }
    store.save(&settled, WriteGuard::Version, None).await.unwrap();

    let region = tenant_orchestrator::domain::Region::parse("us-east-1").unwrap();
    let mut due = Vec::new();
    for shard in 0..tenant_orchestrator::store::WORK_SHARDS {
        due.extend(store.due(&region, shard, Utc::now(), 100).await.unwrap());
    }
    assert_eq!(due, [tenant_id("due-now")]);
}

#[tokio::test]
async fn a_step_saved_while_the_lease_is_kept_leaves_the_work_index_alone() {
    let store = fresh_store().await;
    let commands = TenantCommands::new(store.clone());
    create(&commands, "acme", "us-east-1").await;
    let id = tenant_id("acme");
    let ttl = Duration::from_secs(60);
    let held = store
        .acquire_lease(&id, "worker-a", ttl, Utc::now())
        .await
        .unwrap();
    let lease = held.lease.clone().unwrap();
    let index_units = || -> f64 {
        store
            .write_units_by_operation()
            .iter()
            .filter(|(part, _)| part.ends_with("index work"))
            .map(|(_, units)| units)
            .sum()
    };

    // The step succeeds and the worker keeps the lease, extended, for the next step.
    let before = index_units();
    let mut next = held.clone();
    let from = next.state.clone();
    next.enter(from.apply(&TenantEvent::StepSucceeded).unwrap(), Utc::now());
    next.lease = Some(tenant_orchestrator::record::Lease {
        expires_at: Utc::now() + chrono::Duration::seconds(90),
        ..lease.clone()
    });
    let transition = Transition::new(
        &from,
        Cause::Event(TenantEvent::StepSucceeded),
        Actor::worker("worker-a", lease.fence),
    );
    let saved = store
        .save(&next, WriteGuard::Lease(&lease), Some(transition))
        .await
        .unwrap();
    assert_eq!(index_units(), before, "the work index was rewritten");

    // Still hidden from other workers; back in the index once the lease is given up.
    assert!(due_in_us_east_1(&store).await.is_empty());
    let kept = saved.lease.clone().unwrap();
    let mut done = saved.clone();
    done.lease = None;
    store.save(&done, WriteGuard::Lease(&kept), None).await.unwrap();
    assert_eq!(due_in_us_east_1(&store).await, [id]);
}

/// Runs the steps of tenant `id` to the state they end in, a save each.
async fn settle(store: &DynamoStore, id: &str) -> tenant_orchestrator::record::TenantRecord {
    let mut record = store.load(&tenant_id(id)).await.unwrap();
    while record.state.step().is_some() {
        let from = record.state.clone();
        record.enter(from.apply(&TenantEvent::StepSucceeded).unwrap(), Utc::now());
        let transition = Transition::new(&from, Cause::Event(TenantEvent::StepSucceeded), operator());
        record = store
            .save(&record, WriteGuard::Version, Some(transition))
            .await
            .unwrap();
    }
    record
}

/// The tenants of us-east-1 the work index lists as due now.
async fn due_in_us_east_1(store: &DynamoStore) -> Vec<tenant_orchestrator::domain::TenantId> {
    let region = tenant_orchestrator::domain::Region::parse("us-east-1").unwrap();
    let mut due = Vec::new();
    for shard in 0..tenant_orchestrator::store::WORK_SHARDS {
        due.extend(store.due(&region, shard, Utc::now(), 100).await.unwrap());
    }
    due
}

#[tokio::test]
async fn a_step_leaves_the_listing_entry_alone_and_the_listing_still_shows_the_step() {
    let store = fresh_store().await;
    let commands = TenantCommands::new(store.clone());
    create(&commands, "acme", "us-east-1").await;
    let id = tenant_id("acme");
    let listing_units = || -> f64 {
        (store.write_units_by_operation().iter())
            .filter(|(part, _)| part.ends_with("index by-region"))
            .map(|(_, units)| units)
            .sum()
    };
    let listed = || async {
        let page = store.list(&ListQuery::default()).await.unwrap();
        assert_eq!(page.items.len(), 1);
        page.items.into_iter().next().unwrap()
    };
    let step = |record: &tenant_orchestrator::record::TenantRecord| {
        let mut next = record.clone();
        let from = next.state.clone();
        next.enter(from.apply(&TenantEvent::StepSucceeded).unwrap(), Utc::now());
        let transition = Transition::new(&from, Cause::Event(TenantEvent::StepSucceeded), operator());
        (next, transition)
    };

    // A step within Provisioning: the entry is not written, the listing follows it.
    let before = listing_units();
    let (next, transition) = step(&store.load(&id).await.unwrap());
    let saved = store
        .save(&next, WriteGuard::Version, Some(transition))
        .await
        .unwrap();
    assert_eq!(listing_units(), before, "a step rewrote the listing entry");
    let shown = listed().await;
    assert_eq!(shown.label, "Provisioning/ProvisionInfra");
    assert_eq!(shown.updated_at, saved.updated_at);
    assert_eq!(store.load(&id).await.unwrap().updated_at, saved.updated_at);

    // The last step lands in Active: the entry moves, and reads as the item does.
    let mut record = saved;
    while record.state.step().is_some() {
        let (next, transition) = step(&record);
        record = store
            .save(&next, WriteGuard::Version, Some(transition))
            .await
            .unwrap();
    }
    assert!(
        listing_units() > before,
        "the move to Active left the listing entry behind"
    );
    let shown = listed().await;
    assert_eq!((shown.state.as_str(), shown.label.as_str()), ("Active", "Active"));
    assert_eq!(shown.updated_at, record.updated_at);
    let active = store
        .list(&ListQuery {
            state: Some("Active".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(active.items.len(), 1);
}

#[tokio::test]
async fn an_upgrade_leaves_the_listing_entry_where_the_tenant_rested_and_reads_show_it_upgrading() {
    use tenant_orchestrator::ports::{ListFilter, TenantReads};

    let store = fresh_store().await;
    let commands = TenantCommands::new(store.clone());
    for id in ["alpha", "bravo", "charlie", "delta"] {
        create(&commands, id, "us-east-1").await;
        settle(&store, id).await;
    }
    let listing_units = || -> f64 {
        (store.write_units_by_operation().iter())
            .filter(|(part, _)| part.ends_with("index by-region"))
            .map(|(_, units)| units)
            .sum()
    };
    let entry_key = |id: &'static str| {
        let store = store.clone();
        async move {
            let item = store
                .client()
                .get_item()
                .table_name(store.table())
                .key(
                    "pk",
                    aws_sdk_dynamodb::types::AttributeValue::S(format!("TENANT#{id}")),
                )
                .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("TENANT".into()))
                .consistent_read(true)
                .send()
                .await
                .unwrap()
                .item
                .unwrap();
            item["list_sk"].as_s().unwrap().clone()
        }
    };
    let ids = |page: tenant_orchestrator::store::Page<tenant_orchestrator::store::TenantSummary>| {
        page.items
            .into_iter()
            .map(|t| t.id.to_string())
            .collect::<Vec<_>>()
    };
    let in_state = |state: &str, limit: u32, next_token: Option<String>| ListQuery {
        state: Some(state.to_owned()),
        limit: Some(limit),
        next_token,
        ..Default::default()
    };

    // Three tenants begin an upgrade: their entries stay under Active, unwritten.
    let before = listing_units();
    for id in ["alpha", "charlie", "delta"] {
        let mut record = store.load(&tenant_id(id)).await.unwrap();
        let from = record.state.clone();
        let upgrade = TenantEvent::Upgrade {
            release: release("2.0.0"),
        };
        record.enter(from.apply(&upgrade).unwrap(), Utc::now());
        let transition = Transition::new(&from, Cause::Event(upgrade), operator());
        store
            .save(&record, WriteGuard::Version, Some(transition))
            .await
            .unwrap();
    }
    assert_eq!(
        listing_units(),
        before,
        "entering steps rewrote the listing entry"
    );
    assert_eq!(entry_key("alpha").await, "Active#alpha");

    // Reads show them as their items say.
    let active = store.list(&in_state("Active", 10, None)).await.unwrap();
    assert_eq!(ids(active), ["bravo"]);
    let first = store.list(&in_state("Upgrading", 2, None)).await.unwrap();
    assert!(first
        .items
        .iter()
        .all(|t| t.label.starts_with("Upgrading/") && t.release.as_deref() == Some("1.0.0")));
    let token = first.next_token.clone().expect("a second page");
    assert_eq!(ids(first), ["alpha", "charlie"]);
    let second = store.list(&in_state("Upgrading", 2, Some(token))).await.unwrap();
    assert_eq!(second.next_token, None);
    assert_eq!(ids(second), ["delta"]);
    let all = store.list(&ListQuery::default()).await.unwrap();
    let shown: Vec<(String, String)> = (all.items.into_iter())
        .map(|t| (t.id.to_string(), t.state))
        .collect();
    assert_eq!(
        shown,
        [
            ("alpha".to_owned(), "Upgrading".to_owned()),
            ("bravo".to_owned(), "Active".to_owned()),
            ("charlie".to_owned(), "Upgrading".to_owned()),
            ("delta".to_owned(), "Upgrading".to_owned()),
        ]
    );
    let on_other = ListFilter {
        release: Some(release("2.0.0")),
        ..ListFilter::default()
    };
    let page = store
        .list_matching(&in_state("Upgrading", 10, None), &on_other)
        .await
        .unwrap();
    assert!(
        page.items.is_empty(),
        "a tenant upgrading lists under the release it serves"
    );
    let summary = store.fleet_summary().await.unwrap();
    let by_state: Vec<(&str, u64)> = (summary.cells.iter())
        .map(|c| (c.state.as_str(), c.tenants))
        .collect();
    assert_eq!(by_state, [("Active", 1), ("Upgrading", 3)]);

    // Back at rest on the new release: the entry is written again, under the same key.
    let done = settle(&store, "alpha").await;
    assert_eq!(done.state.name(), "Active");
    assert_eq!(entry_key("alpha").await, "Active#alpha");
    let active = store.list(&in_state("Active", 10, None)).await.unwrap();
    let shown: Vec<(String, Option<String>)> = (active.items.into_iter())
        .map(|t| (t.id.to_string(), t.release))
        .collect();
    assert_eq!(
        shown,
        [
            ("alpha".to_owned(), Some("2.0.0".to_owned())),
            ("bravo".to_owned(), Some("1.0.0".to_owned()))
        ]
    );
    let upgrading = store.list(&in_state("Upgrading", 10, None)).await.unwrap();
    assert_eq!(ids(upgrading), ["charlie", "delta"]);
    let in_flight = |limit| {
        let store = store.clone();
        async move {
            let found = store.in_flight(limit).await.unwrap();
            (found.into_iter())
                .map(|t| (t.id.to_string(), t.state))
                .collect::<Vec<_>>()
        }
    };
    let upgrading = |id: &str| (id.to_owned(), "Upgrading".to_owned());
    assert_eq!(in_flight(10).await, [upgrading("charlie"), upgrading("delta")]);
    assert_eq!(in_flight(1).await, [upgrading("charlie")]);

    // A reader that loads every record anyway lists the ids as the entries hold
    // them: one query of the listing, none of the work index.
    let (client, meter) = tenant_orchestrator::store::Meter::attach(&dynamodb_client().await);
    let metered = DynamoStore::new(client, store.table());
    let queries = || meter.usage().requests_of("Query");
    let before = queries();
    let listed = metered.list_ids(&ListQuery::default()).await.unwrap();
    let listed: Vec<String> = listed.items.iter().map(ToString::to_string).collect();
    assert_eq!(listed, ["alpha", "bravo", "charlie", "delta"]);
    assert_eq!(queries() - before, 1);
    let before = queries();
    metered.list(&ListQuery::default()).await.unwrap();
    let work_shards = tenant_orchestrator::store::WORK_SHARDS as u64;
    assert_eq!(
        queries() - before,
        1 + work_shards,
        "the listing follows the tenants in flight"
    );
}

#[tokio::test]
async fn tenants_are_listed_by_region_and_state_a_page_at_a_time() {
    let store = fresh_store().await;
    let commands = TenantCommands::new(store.clone());
    for i in 0..5 {
        create(&commands, &format!("east-{i}"), "us-east-1").await;
    }
    for i in 0..3 {
        create(&commands, &format!("west-{i}"), "us-west-2").await;
    }
    commands
        .command(&tenant_id("west-1"), TenantEvent::Retry, &operator())
        .await
        .unwrap_err();

    // All tenants, pages of 3, regions in order, each tenant exactly once.
    let mut seen = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = store
            .list(&ListQuery {
                limit: Some(3),
                next_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(page.items.len() <= 3);
        seen.extend(page.items.into_iter().map(|t| t.id.to_string()));
        pages += 1;
        token = page.next_token;
        if token.is_none() {
            break;
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(
        seen,
        ["east-0", "east-1", "east-2", "east-3", "east-4", "west-0", "west-1", "west-2"]
    );

    let west = store
        .list(&ListQuery {
            region: Some(tenant_orchestrator::domain::Region::parse("us-west-2").unwrap()),
            state: Some("Provisioning".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(west.items.len(), 3);
    assert!(west
        .items
        .iter()
        .all(|t| t.label == "Provisioning/CheckArtifact" && t.release.as_deref() == Some("1.0.0")));
    let none_active = store
        .list(&ListQuery {
            state: Some("Active".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none_active.items.is_empty());

    let bad = store
        .list(&ListQuery {
            next_token: Some("garbage!".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        bad.to_string()
            .contains("next_token was not issued for this query; start from the first page"),
        "{bad}"
    );
}

#[tokio::test]
async fn every_store_on_a_table_shares_its_page_token_key() {
    let store = fresh_store().await;
    let commands = TenantCommands::new(store.clone());
    for id in ["alpha", "bravo"] {
        create(&commands, id, "us-east-1").await;
    }
    let first = store
        .list(&ListQuery {
            limit: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    // A second replica: a fresh store on the same table, with nothing cached.
    let replica = tenant_orchestrator::store::DynamoStore::new(dynamodb_client().await, store.table());
    let second = replica
        .list(&ListQuery {
            limit: Some(1),
            next_token: first.next_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(second.items[0].id.as_str(), "bravo");

    let elsewhere = fresh_store().await;
    let refused = elsewhere
        .list(&ListQuery {
            next_token: first.next_token,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(refused, StoreError::Invalid { .. }), "{refused}");
}

#[tokio::test]
async fn operator_commands_refused_by_the_state_change_nothing() {
    let store = fresh_store().await;
    let commands = TenantCommands::new(store.clone());
    create(&commands, "acme", "us-east-1").await;
    let before = store.load(&tenant_id("acme")).await.unwrap();
    let err = commands
        .command(
            &tenant_id("acme"),
            TenantEvent::Upgrade {
                release: release("2.0.0"),
            },
            &operator(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("a step is in progress"), "{err}");
    assert_eq!(store.load(&tenant_id("acme")).await.unwrap(), before);
}

#[tokio::test]
async fn a_hostname_another_live_tenant_holds_is_refused_and_nothing_is_written() {
    let store = fresh_store().await;
    let commands = TenantCommands::new(store.clone());
    create(&commands, "acme", "us-east-1").await;
    let mut other = spec("globex", "us-east-1");
    other
        .hostnames
        .push(tenant_orchestrator::domain::Hostname::parse("ACME.example.com").unwrap());
    let taken = commands
        .create(other, release("1.0.0"), &operator())
        .await
        .unwrap_err();
    assert!(
        matches!(&taken, CommandError::Store(StoreError::HostnameTaken { hostname, owner })
            if hostname == "acme.example.com" && owner == "acme"),
        "{taken}"
    );
    assert!(matches!(
        store.load(&tenant_id("globex")).await,
        Err(StoreError::NotFound { .. })
    ));
}

#[tokio::test]
async fn the_fleet_summary_counts_platforms_and_an_item_written_before_they_were_listed_as_built_in() {
    use tenant_orchestrator::domain::PlatformVersion;
    use tenant_orchestrator::ports::{ListFilter, PlatformChoice, TenantReads};

    let store = fresh_store().await;
    let commands = TenantCommands::new(store.clone());
    for id in ["alpha", "bravo", "charlie"] {
        create(&commands, id, "us-east-1").await;
        settle(&store, id).await;
    }
    let platform = PlatformVersion::parse("2026.12.1").unwrap();
    for id in ["alpha", "bravo"] {
        let mut record = store.load(&tenant_id(id)).await.unwrap();
        record.facts.helm_revision = Some(1);
        record.facts.chart_platform = Some(platform);
        record.facts.stack_platform = Some(platform);
        store.save(&record, WriteGuard::Version, None).await.unwrap();
    }
    // bravo's item as a release before the index projected the platform wrote it.
    store
        .client()
        .update_item()
        .table_name(store.table())
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("TENANT#bravo".into()),
        )
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("TENANT".into()))
        .update_expression("REMOVE platform")
        .send()
        .await
        .unwrap();

    let summary = store.fleet_summary().await.unwrap();
    assert_eq!(
        summary.by_platform,
        [("2026.12.1".to_owned(), 1), ("built-in".to_owned(), 2)].into()
    );
    let on_platform: Vec<(&str, u64)> = summary
        .cells
        .iter()
        .map(|c| (c.platform.as_str(), c.tenants))
        .collect();
    assert_eq!(on_platform, [("2026.12.1", 1), ("built-in", 2)]);

    let listed = |choice| {
        let store = store.clone();
        async move {
            let filter = ListFilter {
                platform: Some(choice),
                ..ListFilter::default()
            };
            let page = store.list_matching(&ListQuery::default(), &filter).await.unwrap();
            page.items
                .into_iter()
                .map(|t| (t.id.to_string(), t.platform))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        listed(PlatformChoice::Version(platform)).await,
        [("alpha".to_owned(), Some("2026.12.1".to_owned()))]
    );
    assert_eq!(
        listed(PlatformChoice::BuiltIn).await,
        [("bravo".to_owned(), None), ("charlie".to_owned(), None)]
    );
}

#[tokio::test]
async fn a_policy_update_says_whether_it_changed_anything_and_records_only_changes() {
    use tenant_orchestrator::domain::{Environment, Region};
    use tenant_orchestrator::ports::PolicyStore;
    let store = fresh_store().await;
    let (env, region) = (
        Environment::parse("prod").unwrap(),
        Region::parse("eu-west-1").unwrap(),
    );
    let set = |p: &mut tenant_orchestrator::domain::VersionPolicy| {
        p.set_default(env.clone(), region.clone(), release("1.2.0"));
    };
    let first = store
        .update_policy("test", "default prod/eu-west-1", &set)
        .await
        .unwrap();
    assert!(first.changed);
    assert_eq!(first.changes.len(), 1);
    let again = store
        .update_policy("test", "default prod/eu-west-1", &set)
        .await
        .unwrap();
    assert!(!again.changed, "setting what is there changes nothing");
    assert_eq!(again.changes, first.changes, "and records nothing");
    assert_eq!(again.policy, first.policy);
}
