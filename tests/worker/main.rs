//! The worker driving tenants through the machine, with `ScriptedStep` as the test
//! double for the real steps, against DynamoDB Local.

#[path = "../common/mod.rs"]
mod common;
mod store_double;

use std::sync::Arc;
use std::time::Duration;

use common::fleet::{operator, Fleet, TestFleet};
use common::*;
use tenant_orchestrator::app::TenantCommands;
use tenant_orchestrator::machine::{StepKind, TenantEvent, TenantState};
use tenant_orchestrator::ports::Wakeup;
use tenant_orchestrator::record::TenantFacts;
use tenant_orchestrator::step::{StepOutcome, StepRegistry};
use tenant_orchestrator::store::{DynamoStore, TenantStore};
use tenant_orchestrator::worker::{Processed, Worker, WorkerConfig};
use tokio::sync::watch;

fn worker(store: Arc<dyn TenantStore>, step: Arc<ScriptedStep>, config: WorkerConfig) -> Worker {
    Worker::new(store, StepRegistry::all(step), config)
}

#[tokio::test]
async fn a_worker_provisions_a_tenant_and_records_every_transition_in_order() {
    let Fleet { store, .. } = TestFleet::new().with_provisioning("acme", "1.0.0").build().await;
    let step = ScriptedStep::new();
    let w = worker(store.clone(), step.clone(), fast_worker("w1"));
    drain(&w).await;

    let id = tenant_id("acme");
    let r = store.load(&id).await.unwrap();
    assert_eq!(r.state.label(), "Active");
    assert!(r.lease.is_none(), "the lease is released when the tenant settles");
    let history = store.history(&id, 0, 100).await.unwrap().items;
    let labels: Vec<(String, String)> = history.iter().map(|e| (e.from.clone(), e.to.clone())).collect();
    assert_eq!(labels.len(), 7);
    for (i, e) in history.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1, "history sequence has a gap");
        if i > 0 {
            assert_eq!(e.from, history[i - 1].to, "history does not chain at {}", e.seq);
        }
    }
    assert_eq!(history.last().unwrap().to, "Active");
    assert!(history[1..]
        .iter()
        .all(|e| e.actor.starts_with("worker:w1#") && e.step.is_some()));
    assert_eq!(step.calls().len(), 6, "each provisioning step ran once");
}

#[tokio::test]
async fn steps_that_follow_at_once_are_written_together_with_an_event_each() {
    let Fleet { store, .. } = TestFleet::new()
        .with_provisioning("acme", "1.0.0")
        .with_provisioning("bravo", "1.0.0")
        .build()
        .await;
    let step = ScriptedStep::new();
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let together = worker(store.clone(), step.clone(), fast_worker("w1"));
    let one_by_one = worker(
        store.clone(),
        step.clone(),
        WorkerConfig {
            steps_per_write: 1,
            ..fast_worker("w2")
        },
    );
    let mut writes = Vec::new();
    for (id, w) in [("acme", &together), ("bravo", &one_by_one)] {
        let id = tenant_id(id);
        let before = store.load(&id).await.unwrap();
        assert_eq!(w.process(&id, rx.clone()).await.unwrap(), Processed::Idle);
        let after = store.load(&id).await.unwrap();
        assert_eq!(after.state.label(), "Active");
        assert!(after.lease.is_none(), "the lease is given up in the last write");
        writes.push(after.version - before.version);
        let history = store.history(&id, 0, 100).await.unwrap().items;
        assert_eq!(history.len(), 7, "{history:#?}");
        assert_eq!(after.event_seq, 7);
        for (i, e) in history.iter().enumerate().skip(1) {
            assert_eq!(e.seq, i as u64 + 1);
            assert_eq!(e.from, history[i - 1].to, "history does not chain at {}", e.seq);
            assert!(e.step.is_some() && e.step_started_at.is_some_and(|s| s <= e.at));
            assert!(
                e.at >= history[i - 1].at,
                "events keep the order the steps finished in"
            );
        }
    }
    // Six steps, each due as the one before succeeded: one write for all of them
    // against one write each, and one history item for all of their events.
    assert_eq!(writes, vec![1, 6]);
    assert_eq!(step.calls().len(), 12, "each step ran once per tenant");
    let (acme, bravo) = (
        history_items(&store, "acme").await,
        history_items(&store, "bravo").await,
    );
    assert_eq!(
        (acme.len(), bravo.len()),
        (2, 7),
        "the create's event, then the six steps' in one item or one item each"
    );
    // The six events are stored deflated: the item stays within the 1 KB a write is
    // charged by, as one event alone does.
    let six = acme[1]["events_z"]
        .as_b()
        .expect("a binary attribute")
        .as_ref()
        .len();
    assert!(six < 1024, "six events took {six} bytes");
    // Paging stays exact when a page starts or ends inside the item of six.
    let whole = store.history(&tenant_id("acme"), 0, 100).await.unwrap().items;
    for (after, limit) in [(0, 2), (3, 2), (1, 3), (4, 1), (6, 5)] {
        let mut paged = Vec::new();
        let mut from = after;
        loop {
            let page = store.history(&tenant_id("acme"), from, limit).await.unwrap();
            assert!(
                page.items.len() <= limit as usize,
                "a page holds at most its limit"
            );
            paged.extend(page.items);
            match page.next_token {
                Some(token) => from = token.parse().unwrap(),
                None => break,
            }
        }
        assert_eq!(
            paged,
            whole[after as usize..],
            "pages of {limit} after event {after}"
        );
    }
}

/// The history items of tenant `id` in the table, in order.
async fn history_items(
    store: &DynamoStore,
    id: &str,
) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    let out = store
        .client()
        .query()
        .table_name(store.table())
        .key_condition_expression("pk = :pk AND begins_with(sk, :events)")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("TENANT#{id}")),
        )
        .expression_attribute_values(
            ":events",
            aws_sdk_dynamodb::types::AttributeValue::S("EVENT#".into()),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    out.items().to_vec()
}

#[tokio::test]
async fn a_long_step_does_not_hold_back_the_outcome_of_the_step_before_it() {
    let Fleet { store, .. } = TestFleet::new().with_provisioning("acme", "1.0.0").build().await;
    let step = ScriptedStep::new();
    step.delay(StepKind::ProvisionInfra, Duration::from_secs(3));
    let config = WorkerConfig {
        step_write_delay: Duration::from_millis(200),
        ..fast_worker("w1")
    };
    let w = worker(store.clone(), step.clone(), config);
    let id = tenant_id("acme");
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let running = tokio::spawn({
        let (w, id) = (w.clone(), id.clone());
        async move { w.process(&id, rx).await }
    });
    // CheckArtifact succeeds at once and ProvisionInfra takes 3 s: the first outcome
    // is written beside the long step once it has waited 200 ms.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let written = loop {
        let r = store.load(&id).await.unwrap();
        if r.event_seq == 2 || tokio::time::Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        written.state.step(),
        Some(StepKind::ProvisionInfra),
        "{written:?}"
    );
    assert_eq!(
        written.event_seq, 2,
        "CheckArtifact's outcome is stored while ProvisionInfra runs"
    );
    assert!(!running.is_finished(), "ProvisionInfra is still running");
    assert_eq!(running.await.unwrap().unwrap(), Processed::Idle);
    let r = store.load(&id).await.unwrap();
    assert_eq!(r.state.label(), "Active");
    let history = store.history(&id, 0, 100).await.unwrap().items;
    let seqs: Vec<u64> = history.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=7).collect::<Vec<u64>>());
    assert_eq!(step.calls_of("acme", StepKind::ProvisionInfra), 1);
}

#[tokio::test]
async fn a_full_batch_of_outcomes_is_written_beside_the_next_step_not_before_it() {
    let Fleet { store, .. } = TestFleet::new().with_provisioning("acme", "1.0.0").build().await;
    let double = store_double::StoreDouble::new(store.arc());
    let step = ScriptedStep::new();
    // Two outcomes fill a write; the delay alone would hold them for a minute.
    let config = WorkerConfig {
        steps_per_write: 2,
        step_write_delay: Duration::from_secs(60),
        ..fast_worker("w1")
    };
    let w = worker(double.clone(), step.clone(), config);
    let held = double.hold_at(store_double::HoldPoint::AfterSaveInto("Provisioning".into()));
    let (_tx, rx) = watch::channel(false);
    let id = tenant_id("acme");
    let before = store.load(&id).await.unwrap();
    let running = tokio::spawn({
        let (w, id) = (w.clone(), id.clone());
        async move { w.process(&id, rx).await }
    });
    held.reached.await.unwrap();
    // The write of the first two outcomes is held unanswered: the third step runs anyway.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while step.calls().len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the third step waited for the write of the two before it: {:?}",
            step.calls().iter().map(|c| c.step).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stored = store.load(&id).await.unwrap();
    assert_eq!(
        (stored.version, stored.event_seq),
        (before.version + 1, before.event_seq + 2),
        "the two outcomes are stored together, in one write"
    );
    held.go.send(()).unwrap();
    assert_eq!(running.await.unwrap().unwrap(), Processed::Idle);
    let r = store.load(&id).await.unwrap();
    assert_eq!(r.state.label(), "Active");
    let seqs: Vec<u64> = (store.history(&id, 0, 100).await.unwrap().items)
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, (1..=r.event_seq).collect::<Vec<u64>>());
    assert_eq!(step.calls().len(), 6, "each step ran once");
}

#[tokio::test]
async fn pending_steps_are_polled_and_retryable_failures_backed_off_until_they_pass() {
    let Fleet { store, .. } = TestFleet::new().with_provisioning("acme", "1.0.0").build().await;
    let step = ScriptedStep::new();
    step.script(
        "acme",
        StepKind::ProvisionInfra,
        vec![StepOutcome::Pending {
            poll_after: Duration::from_millis(100),
            facts: TenantFacts {
                stack_id: Some("stack-1".into()),
                ..Default::default()
            },
            note: "CREATE_IN_PROGRESS".into(),
        }],
    );
    step.script(
        "acme",
        StepKind::Deploy,
        vec![StepOutcome::retry("throttled"), StepOutcome::retry("throttled")],
    );
    let w = worker(store.clone(), step.clone(), fast_worker("w1"));
    drain(&w).await;
    let r = store.load(&tenant_id("acme")).await.unwrap();
    assert_eq!(r.state.label(), "Active", "last error: {:?}", r.last_error);
    assert_eq!(
        r.facts.stack_id.as_deref(),
        Some("stack-1"),
        "progress of a pending step is kept"
    );
    assert_eq!(step.calls_of("acme", StepKind::ProvisionInfra), 2);
    let deploys: Vec<u32> = step
        .calls()
        .iter()
        .filter(|c| c.step == StepKind::Deploy)
        .map(|c| c.attempt)
        .collect();
    assert_eq!(deploys, [0, 1, 2], "each retry is a new attempt");
}

#[tokio::test]
async fn a_step_that_keeps_failing_gives_up_after_its_attempts_and_the_machine_decides() {
    let Fleet { store, commands, .. } = TestFleet::new().with_provisioning("acme", "1.0.0").build().await;
    let step = ScriptedStep::new();
    step.script(
        "acme",
        StepKind::WriteConfig,
        vec![StepOutcome::retry("ssm unavailable"); 3],
    );
    let w = worker(store.clone(), step.clone(), fast_worker("w1"));
    drain(&w).await;
    let r = store.load(&tenant_id("acme")).await.unwrap();
    assert_eq!(r.state.name(), "Failed");
    let err = r.last_error.unwrap();
    assert!(
        err.contains("ssm unavailable (gave up after 3 attempts)"),
        "{err}"
    );
    // The operator retries: the tenant resumes at the step that failed.
    commands
        .command(&tenant_id("acme"), TenantEvent::Retry, &operator())
        .await
        .unwrap();
    drain(&w).await;
    assert_eq!(
        store.load(&tenant_id("acme")).await.unwrap().state.label(),
        "Active"
    );
}

#[tokio::test]
async fn a_failed_verify_rolls_the_upgrade_back_to_the_previous_release() {
    let Fleet { store, commands, .. } = TestFleet::new().with_active("acme", "1.0.0").build().await;
    let step = ScriptedStep::new();
    let w = worker(store.clone(), step.clone(), fast_worker("w1"));
    step.script(
        "acme",
        StepKind::Verify,
        vec![StepOutcome::fail("health endpoint reports 1.0.0, want 1.1.0")],
    );
    commands
        .command(
            &tenant_id("acme"),
            TenantEvent::Upgrade {
                release: release("1.1.0"),
            },
            &operator(),
        )
        .await
        .unwrap();
    drain(&w).await;
    let r = store.load(&tenant_id("acme")).await.unwrap();
    assert_eq!(r.state.current_release(), Some(&release("1.0.0")));
    let TenantState::Active { failed_upgrade, .. } = &r.state else {
        panic!("{:?}", r.state)
    };
    assert_eq!(failed_upgrade, &Some(release("1.1.0")));
    let steps: Vec<String> = store
        .history(&tenant_id("acme"), 7, 100)
        .await
        .unwrap()
        .items
        .iter()
        .map(|e| e.to.clone())
        .collect();
    assert_eq!(
        steps,
        [
            "Upgrading/CheckArtifact",
            "Upgrading/Quiesce",
            "Upgrading/Backup",
            "Upgrading/UpdateInfra",
            "Upgrading/WriteConfig",
            "Upgrading/EnsureCertificates",
            "Upgrading/Deploy",
            "Upgrading/Verify",
            "RollingBack/RollbackDeploy",
            "RollingBack/RollbackInfra",
            "RollingBack/RestoreDatabase",
            "RollingBack/VerifyRollback",
            "RollingBack/Reopen",
            "Active",
        ]
    );
}

#[tokio::test]
async fn a_step_past_its_deadline_fails() {
    let Fleet { store, .. } = TestFleet::new().with_provisioning("acme", "1.0.0").build().await;
    let step = ScriptedStep::new();
    let pending = StepOutcome::Pending {
        poll_after: Duration::from_millis(50),
        facts: TenantFacts::default(),
        note: "waiting".into(),
    };
    step.script("acme", StepKind::CheckArtifact, vec![pending; 100]);
    let config = WorkerConfig {
        step_deadline: Duration::from_millis(400),
        ..fast_worker("w1")
    };
    let w = worker(store.clone(), step.clone(), config);
    drain(&w).await;
    let r = store.load(&tenant_id("acme")).await.unwrap();
    assert_eq!(r.state.name(), "Failed");
    assert!(r
        .last_error
        .unwrap()
        .contains("did not finish within its deadline"));
}

#[tokio::test]
async fn two_workers_share_a_table_and_run_every_step_exactly_once() {
    let ids: Vec<String> = (0..12).map(|i| format!("tenant-{i:02}")).collect();
    let mut fleet = TestFleet::new();
    for (i, id) in ids.iter().enumerate() {
        let region = if i % 2 == 0 { "us-east-1" } else { "eu-west-1" };
        fleet = fleet.in_region(region).with_provisioning(id, "1.0.0");
    }
    let Fleet { store, .. } = fleet.build().await;
    let step = ScriptedStep::new();
    step.delay(StepKind::Deploy, Duration::from_millis(50));
    let (tx, rx) = watch::channel(false);
    let a = worker(store.clone(), step.clone(), fast_worker("wa"));
    let b = worker(store.clone(), step.clone(), fast_worker("wb"));
    let ra = tokio::spawn({
        let rx = rx.clone();
        async move { a.run(rx).await }
    });
    let rb = tokio::spawn(async move { b.run(rx).await });
    for id in &ids {
        wait_for_state(store.as_ref(), &tenant_id(id), "Active", Duration::from_secs(30)).await;
    }
    tx.send(true).unwrap();
    ra.await.unwrap().unwrap();
    rb.await.unwrap().unwrap();

    let calls = step.calls();
    for id in &ids {
        for kind in [
            StepKind::CheckArtifact,
            StepKind::ProvisionInfra,
            StepKind::WriteConfig,
            StepKind::EnsureCertificates,
            StepKind::Deploy,
            StepKind::Verify,
        ] {
            assert_eq!(step.calls_of(id, kind), 1, "{id} ran {kind} more than once");
        }
    }
    let workers: std::collections::BTreeSet<&str> = calls.iter().map(|c| c.worker.as_str()).collect();
    assert_eq!(workers.len(), 2, "both workers took part: {workers:?}");
}

#[tokio::test]
async fn shutdown_abandons_a_long_step_after_the_grace_period_and_releases_the_lease() {
    let Fleet { store, .. } = TestFleet::new().with_provisioning("acme", "1.0.0").build().await;
    let step = ScriptedStep::new();
    step.delay(StepKind::CheckArtifact, Duration::from_secs(60));
    let w = worker(store.clone(), step.clone(), fast_worker("w1"));
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn({
        let w = w.clone();
        async move { w.process(&tenant_id("acme"), rx).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    tx.send(true).unwrap();
    let processed = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("shutdown within grace")
        .unwrap()
        .unwrap();
    assert_eq!(processed, Processed::Interrupted);
    let r = store.load(&tenant_id("acme")).await.unwrap();
    assert!(r.lease.is_none(), "lease released on shutdown");
    assert_eq!(
        r.state.label(),
        "Provisioning/CheckArtifact",
        "nothing was recorded for the abandoned step"
    );
    // Another worker picks it up at once.
    let quick = ScriptedStep::new();
    let other = worker(store.clone(), quick, fast_worker("w2"));
    drain(&other).await;
    assert_eq!(
        store.load(&tenant_id("acme")).await.unwrap().state.label(),
        "Active"
    );
}

#[tokio::test]
async fn an_operator_abandoning_an_upgrade_mid_step_wins_over_the_step_result() {
    let Fleet { store, commands, .. } = TestFleet::new().with_active("acme", "1.0.0").build().await;
    let step = ScriptedStep::new();
    let w = worker(store.clone(), step.clone(), fast_worker("w1"));
    commands
        .command(
            &tenant_id("acme"),
            TenantEvent::Upgrade {
                release: release("1.1.0"),
            },
            &operator(),
        )
        .await
        .unwrap();
    step.delay(StepKind::CheckArtifact, Duration::from_millis(600));
    let (_tx, rx) = watch::channel(false);
    let task = tokio::spawn({
        let w = w.clone();
        async move { w.process(&tenant_id("acme"), rx).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    commands
        .command(&tenant_id("acme"), TenantEvent::Rollback, &operator())
        .await
        .unwrap();
    task.await.unwrap().unwrap();
    let r = store.load(&tenant_id("acme")).await.unwrap();
    assert_eq!(r.state.label(), "Active");
    assert_eq!(r.state.current_release(), Some(&release("1.0.0")));
    let causes: Vec<String> = store
        .history(&tenant_id("acme"), 7, 100)
        .await
        .unwrap()
        .items
        .iter()
        .map(|e| e.cause.clone())
        .collect();
    assert_eq!(
        causes,
        ["Upgrade to 1.1.0", "Rollback"],
        "the stale step result was not recorded"
    );
}

async fn upgrade(commands: &TenantCommands, id: &str, to: &str) {
    commands
        .command(
            &tenant_id(id),
            TenantEvent::Upgrade { release: release(to) },
            &operator(),
        )
        .await
        .unwrap();
}

/// Holds a worker processing `acme` at `point`, lands an upgrade to 2.0.0 right there,
/// lets the worker go on, and checks that the upgrade is carried out.
async fn upgrade_landing_at(point: store_double::HoldPoint, settled_first: bool) {
    let Fleet {
        store: dynamo,
        commands,
        ..
    } = TestFleet::new().with_provisioning("acme", "1.0.0").build().await;
    let double = store_double::StoreDouble::new(dynamo.clone());
    let w = worker(double.clone(), ScriptedStep::new(), fast_worker("w1"));
    if settled_first {
        drain(&w).await;
    }
    let held = double.hold_at(point.clone());
    let (_tx, rx) = watch::channel(false);
    let task = tokio::spawn({
        let w = w.clone();
        async move { w.process(&tenant_id("acme"), rx).await }
    });
    held.reached.await.unwrap();
    upgrade(&commands, "acme", "2.0.0").await;
    held.go.send(()).unwrap();
    task.await.unwrap().unwrap();

    drain(&w).await;
    let r = dynamo.load(&tenant_id("acme")).await.unwrap();
    assert_eq!(
        (r.state.label(), r.state.current_release().cloned()),
        ("Active".to_owned(), Some(release("2.0.0"))),
        "the upgrade that landed at {point:?} was carried out (last error: {:?})",
        r.last_error
    );
}

#[tokio::test]
async fn a_command_landing_as_the_worker_settles_a_tenant_is_carried_out() {
    // The worker is held right after it wrote Active, before it hears back.
    upgrade_landing_at(store_double::HoldPoint::AfterSaveInto("Active".into()), false).await;
}

#[tokio::test]
async fn a_command_landing_while_the_worker_gives_up_an_idle_lease_is_carried_out() {
    // A worker that found the tenant due a moment ago takes its lease, sees nothing to
    // do and gives the lease up; the upgrade lands in between.
    upgrade_landing_at(store_double::HoldPoint::BeforeRelease, true).await;
}

#[tokio::test]
async fn commands_sent_the_moment_tenants_settle_always_take_effect() {
    let ids: Vec<String> = (0..16).map(|i| format!("settle-{i:02}")).collect();
    let Fleet { store, .. } = provisioning(&ids).build().await;
    let step = ScriptedStep::new();
    let (tx, rx) = watch::channel(false);
    let running: Vec<_> = ["wa", "wb"]
        .into_iter()
        .map(|name| {
            let w = worker(store.clone(), step.clone(), fast_worker(name));
            let rx = rx.clone();
            tokio::spawn(async move { w.run(rx).await })
        })
        .collect();
    // Each tenant goes through three upgrades, each sent the moment the previous
    // change settled, racing the worker that is letting go of it.
    let racers: Vec<_> = ids
        .iter()
        .map(|id| {
            let store = store.clone();
            let commands = TenantCommands::new(store.clone());
            let id = id.clone();
            tokio::spawn(async move {
                for to in ["2.0.0", "3.0.0", "4.0.0"] {
                    wait_settled(store.as_ref(), &id).await;
                    upgrade(&commands, &id, to).await;
                }
            })
        })
        .collect();
    for racer in racers {
        racer.await.unwrap();
    }
    for id in &ids {
        let r = wait_for_state(store.as_ref(), &tenant_id(id), "Active", Duration::from_secs(30)).await;
        assert_eq!(
            r.state.current_release(),
            Some(&release("4.0.0")),
            "{id} ended elsewhere"
        );
    }
    tx.send(true).unwrap();
    for task in running {
        task.await.unwrap().unwrap();
    }
    assert_fleet_sound(&store).await;
}

/// Waits until the tenant is Active (polling quickly, to land right after it settles).
async fn wait_settled(store: &dyn TenantStore, id: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = store.load(&tenant_id(id)).await.unwrap();
        if r.state.label() == "Active" {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{id} never settled: {}",
            r.state.label()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A fleet of new tenants at 1.0.0 in us-east-1, about to be provisioned.
fn provisioning(ids: &[String]) -> TestFleet {
    ids.iter()
        .fold(TestFleet::new(), |fleet, id| fleet.with_provisioning(id, "1.0.0"))
}

/// `count` new tenants (`chain-<n>`) about to be provisioned, and a step double whose
/// every step takes `each`: chains of six steps for the workers to run.
async fn provisioning_chains(count: usize, each: Duration) -> (TestStore, Vec<String>, Arc<ScriptedStep>) {
    let ids: Vec<String> = (0..count).map(|i| format!("chain-{i}")).collect();
    let Fleet { store, .. } = provisioning(&ids).build().await;
    let step = ScriptedStep::new();
    for kind in StepKind::ALL {
        step.delay(kind, each);
    }
    (store, ids, step)
}

/// Runs `first` until it has started a step, then `second` beside it, until every
/// tenant is Active; returns every step call both made.
async fn race_two_workers(
    store: &DynamoStore,
    ids: &[String],
    step: &Arc<ScriptedStep>,
    first: Worker,
    second: Worker,
) -> Vec<Call> {
    let (tx, rx) = watch::channel(false);
    let first_task = tokio::spawn({
        let rx = rx.clone();
        async move { first.run(rx).await }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while step.calls().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the first worker never started a step"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second_task = tokio::spawn(async move { second.run(rx).await });
    for id in ids {
        wait_for_state(store, &tenant_id(id), "Active", Duration::from_secs(60)).await;
    }
    tx.send(true).unwrap();
    first_task.await.unwrap().unwrap();
    second_task.await.unwrap().unwrap();
    step.calls()
}

#[tokio::test]
async fn a_chain_of_steps_each_shorter_than_the_heartbeat_keeps_its_lease() {
    let Fleet { store, .. } = TestFleet::new().with_provisioning("acme", "1.0.0").build().await;
    // Six provisioning steps of 350 ms each under a 400 ms heartbeat: 2.1 s in a row,
    // longer than the 1.5 s lease, with no step long enough for a per-step heartbeat.
    let step = ScriptedStep::new();
    for kind in StepKind::ALL {
        step.delay(kind, Duration::from_millis(350));
    }
    let w = worker(store.clone(), step.clone(), fast_worker("w1"));
    let (_tx, rx) = watch::channel(false);
    let processed = w.process(&tenant_id("acme"), rx).await.unwrap();

    assert_eq!(
        processed,
        Processed::Idle,
        "the worker held the tenant through the whole chain"
    );
    let r = store.load(&tenant_id("acme")).await.unwrap();
    assert_eq!(r.state.label(), "Active");
    let fences: std::collections::BTreeSet<Option<u64>> = store
        .history(&tenant_id("acme"), 1, 100)
        .await
        .unwrap()
        .items
        .iter()
        .map(|e| e.fence)
        .collect();
    assert_eq!(fences.len(), 1, "one lease ran every step: {fences:?}");
}

#[tokio::test]
async fn two_workers_never_run_a_step_at_once_on_chains_longer_than_the_lease() {
    let (store, ids, step) = provisioning_chains(4, Duration::from_millis(350)).await;
    let first = worker(store.clone(), step.clone(), fast_worker("first"));
    let second = worker(store.clone(), step.clone(), fast_worker("second"));
    let calls = race_two_workers(&store, &ids, &step, first, second).await;
    let overlaps = overlapping_calls(&calls);
    assert!(
        overlaps.is_empty(),
        "a step ran in two workers at once: {overlaps:#?}"
    );
}

#[tokio::test]
async fn a_slow_worker_keeps_its_lease_across_a_chain_of_short_steps() {
    let (dynamo, ids, step) = provisioning_chains(6, Duration::from_millis(100)).await;
    // One worker's every call to DynamoDB takes 450 ms longer: a chain of six steps
    // with their saves outlasts the 1.5 s lease many times over.
    let slow_store = store_double::StoreDouble::new(dynamo.clone());
    slow_store.set_latency(Duration::from_millis(450));
    let slow = worker(slow_store.clone(), step.clone(), fast_worker("slow"));
    let fast = worker(dynamo.clone(), step.clone(), fast_worker("fast"));
    let calls = race_two_workers(&dynamo, &ids, &step, slow, fast).await;
    let overlaps = overlapping_calls(&calls);
    assert!(
        overlaps.is_empty(),
        "a step ran in two workers at once: {overlaps:#?}"
    );
    assert_fleet_sound(&dynamo).await;
}

/// Runs a worker that polls once at its start and then only every hour, woken by
/// `due` and waking `settled`; stops when the returned sender says so.
fn run_polling_hourly(
    store: Arc<dyn TenantStore>,
    step: Arc<ScriptedStep>,
    due: &Wakeup,
    settled: Wakeup,
) -> (
    watch::Sender<bool>,
    tokio::task::JoinHandle<Result<(), tenant_orchestrator::worker::WorkerError>>,
) {
    let w = worker(
        store,
        step,
        WorkerConfig {
            poll_interval: Duration::from_secs(3600),
            ..fast_worker("w1")
        },
    )
    .with_due_wakeup(due.clone())
    .with_settled_wakeup(settled);
    let (stop, rx) = watch::channel(false);
    (stop, tokio::spawn(async move { w.run(rx).await }))
}

#[tokio::test]
async fn a_worker_between_polls_starts_a_tenant_made_due_when_woken_and_wakes_its_controller_when_it_settles()
{
    let Fleet { store, commands, .. } = TestFleet::new().with_provisioning("acme", "1.0.0").build().await;
    let step = ScriptedStep::new();
    drain(&worker(store.clone(), step.clone(), fast_worker("w0"))).await;
    let (due, settled) = (Wakeup::default(), Wakeup::default());
    let mut settled_seen = settled.listen();
    // Polls once, finds nothing, and would not look again for an hour.
    let (stop, running) = run_polling_hourly(store.clone(), step, &due, settled);

    upgrade(&commands, "acme", "2.0.0").await;
    due.wake();
    tokio::time::timeout(Duration::from_secs(60), settled_seen.woken())
        .await
        .expect("the worker settled the tenant and said so");

    let r = store.load(&tenant_id("acme")).await.unwrap();
    assert_eq!(
        (r.state.label(), r.state.current_release().cloned()),
        ("Active".to_owned(), Some(release("2.0.0"))),
        "woken, the worker upgraded the tenant without waiting for its next poll"
    );
    stop.send(true).unwrap();
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_worker_takes_the_tenants_a_wake_up_names_without_polling_for_them() {
    let Fleet { store, commands, .. } = TestFleet::new().with_provisioning("acme", "1.0.0").build().await;
    let step = ScriptedStep::new();
    drain(&worker(store.clone(), step.clone(), fast_worker("w0"))).await;
    let double = store_double::StoreDouble::new(store.arc());
    let (due, settled) = (Wakeup::default(), Wakeup::default());
    let mut settled_seen = settled.listen();
    let (stop, running) = run_polling_hourly(double.clone(), step.clone(), &due, settled);
    // Its first poll, of every shard, finds nothing due.
    while double.due_queries() == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let first_poll = double.due_queries();

    // Verify, the upgrade's late step, runs long enough to look at the queries
    // while the tenant is still in flight.
    step.delay(StepKind::Verify, Duration::from_millis(500));
    upgrade(&commands, "acme", "2.0.0").await;
    let region = store.load(&tenant_id("acme")).await.unwrap().spec.region;
    due.wake_for([(tenant_id("acme"), region)]);
    tokio::time::timeout(Duration::from_secs(30), async {
        while step.calls_of("acme", StepKind::Verify) < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the worker took the named tenant");
    assert_eq!(
        double.due_queries(),
        first_poll,
        "the named tenant was taken without querying the work index"
    );
    tokio::time::timeout(Duration::from_secs(60), settled_seen.woken())
        .await
        .expect("the worker settled the named tenant");
    let r = store.load(&tenant_id("acme")).await.unwrap();
    assert_eq!(r.state.current_release(), Some(&release("2.0.0")));
    // Its slot is free again, but its one poll had found fewer tenants than it asked
    // for, so had seen the whole index: nothing is polled before the next interval.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        double.due_queries(),
        first_poll,
        "the freed slot polled the work index though the last poll had seen all of it"
    );
    stop.send(true).unwrap();
    running.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_tenants_a_controller_starts_are_handed_to_the_worker_beside_it_lease_and_all() {
    use tenant_orchestrator::app::RolloutCommands;
    use tenant_orchestrator::domain::RolloutId;
    use tenant_orchestrator::record::Phase;
    use tenant_orchestrator::rollout::{Controller, ControllerConfig};
    use tenant_orchestrator::store::RolloutStore;
    let names = ["acme", "bravo", "carol", "delta"];
    let fleet = (names.iter()).fold(TestFleet::new(), |f, name| f.with_active(name, "1.0.0"));
    let Fleet { store, .. } = fleet.build().await;
    let step = ScriptedStep::new();
    let double = store_double::StoreDouble::new(store.arc());
    let (due, settled) = (Wakeup::default(), Wakeup::default());
    // Polls once at its start, then only every hour: only a handoff or a named
    // wake-up can bring it a tenant.
    let config = WorkerConfig {
        poll_interval: Duration::from_secs(3600),
        concurrency: 8,
        ..fast_worker("w1")
    };
    let (w, handoff) = worker(double.clone(), step.clone(), config)
        .with_due_wakeup(due.clone())
        .with_settled_wakeup(settled.clone())
        .with_handoff();
    let controller = Controller::new(
        store.clone(),
        store.clone(),
        Arc::new(HealthyProbeDouble),
        ControllerConfig {
            tick: Duration::from_millis(50),
            lease_ttl: Duration::from_secs(2),
            ..ControllerConfig::new("c1")
        },
    )
    .with_wakeups(due, settled)
    .with_handoff(handoff);
    let (stop, rx) = watch::channel(false);
    let running_worker = tokio::spawn(async move { w.run(rx).await });
    let rx = stop.subscribe();
    let running_controller = tokio::spawn(async move { controller.run(rx).await });

    let id = RolloutId::parse("r-handed").unwrap();
    let spec = serde_json::from_value(serde_json::json!({
        "release": "2.0.0",
        "strategy": {
            "waves": ["1", "100%"],
            "bake_time": "1s", "bake_checks": 1, "bake_check_interval": "1s",
            "approvals": {"after_canary": false, "between_regions": false}
        }
    }))
    .unwrap();
    (RolloutCommands::new(store.clone(), store.clone()))
        .start(id.clone(), spec, "operator:test")
        .await
        .unwrap();
    let done = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let r = store.load_rollout(&id).await.unwrap();
            if r.phase.is_finished() {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the rollout finished");
    stop.send(true).unwrap();
    running_worker.await.unwrap().unwrap();
    running_controller.await.unwrap();

    assert_eq!(done.phase, Phase::Completed, "{:#?}", done.events);
    for name in names {
        let r = store.load(&tenant_id(name)).await.unwrap();
        assert_eq!(
            (r.state.label(), r.state.current_release().cloned()),
            ("Active".to_owned(), Some(release("2.0.0"))),
            "{name}"
        );
        assert!(
            r.lease.is_none(),
            "{name}: the handed lease was given up when it settled"
        );
        assert_eq!(
            step.calls_of(name, StepKind::Verify),
            1,
            "{name}: its upgrade ran once"
        );
    }
    assert_eq!(
        double.lease_takes(),
        0,
        "every tenant came to the worker with its lease: it took none itself"
    );
}

#[tokio::test]
async fn a_stopped_worker_offers_no_slot_and_gives_back_a_lease_handed_to_it_after_it_stopped() {
    let Fleet { store, .. } = TestFleet::new().with_active("acme", "1.0.0").build().await;
    let id = tenant_id("acme");
    let region = store.load(&id).await.unwrap().spec.region;
    let other = tenant_orchestrator::domain::Region::parse("ap-southeast-2").unwrap();
    assert_ne!(region, other);
    let config = WorkerConfig {
        regions: Some(vec![region.clone()]),
        concurrency: 1,
        ..fast_worker("w1")
    };
    let (w, handoff) = worker(store.clone(), ScriptedStep::new(), config).with_handoff();
    assert!(
        handoff.reserve(&other).is_none(),
        "no slot for a region it does not serve"
    );
    let slot = handoff.reserve(&region).expect("its one slot is free");
    assert!(handoff.reserve(&region).is_none(), "its one slot is reserved");

    let (stop, rx) = watch::channel(false);
    let running = tokio::spawn(async move { w.run(rx).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(true).unwrap();
    running.await.unwrap().unwrap();
    // The lease a drive gave this worker in the meantime, as the drive stored it.
    let granted = store
        .acquire_lease(&id, "w1", Duration::from_secs(60), chrono::Utc::now())
        .await
        .unwrap();
    slot.give(granted).await;
    assert!(
        store.load(&id).await.unwrap().lease.is_none(),
        "the lease was given back at once, not left to run out"
    );
    assert!(
        handoff.reserve(&region).is_none(),
        "a stopped worker offers no slot, even one given back"
    );
}
