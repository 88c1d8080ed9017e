//! Rollout phase changes in the outbox.

use crate::rollout_support::*;
use serde_json::json;
use tenant_orchestrator::domain::RolloutId;
use tenant_orchestrator::outbox::SinkFilter;
use tenant_orchestrator::ports::OutboxStore;
use tenant_orchestrator::record::outbox::{ROLLOUT_APPROVAL_REQUESTED, ROLLOUT_PHASE};
use tenant_orchestrator::record::{Phase, WaveStatus};

#[tokio::test]
async fn a_paused_and_resumed_rollout_writes_an_event_per_phase_change() {
    let fleet = Fleet::new(&tenants("eu", "eu-west-1", 2), "1.0.0").await;
    let started = fleet
        .start(
            "r-events",
            json!({"release": "2.0.0", "strategy": {"waves": ["100%"], "approvals": {"after_canary": false, "between_regions": false}}}),
        )
        .await;
    assert_eq!(started.phase, Phase::Running);
    let id = RolloutId::parse("r-events").unwrap();
    fleet.commands.pause(&id, "operator:test").await.unwrap();
    fleet.commands.resume(&id, "operator:test").await.unwrap();

    let events = fleet.store.list_events(None, 50).await.unwrap();
    let mut changes: Vec<(String, String)> = events
        .iter()
        .filter(|e| e.event.subject == "rollout/r-events")
        .map(|e| {
            assert_eq!(e.event.event_type, ROLLOUT_PHASE);
            (
                e.event.data["from"].as_str().unwrap().to_owned(),
                e.event.data["to"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    changes.sort();
    assert!(
        changes.contains(&("running".into(), "paused".into())),
        "{changes:?}"
    );
    assert!(
        changes.contains(&("paused".into(), "running".into())),
        "{changes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wave_waiting_for_approval_writes_one_approval_request() {
    let mut fleet = Fleet::new(&tenants("ask", "eu-west-1", 3), "1.0.0").await;
    fleet.start_workers(1);
    fleet
        .start(
            "r-ask",
            json!({
                "release": "2.0.0",
                "selector": {"environment": "test"},
                "strategy": {
                    "waves": ["1", "100%"],
                    "bake_time": "0s", "bake_checks": 0,
                    "approvals": {"after_canary": true}
                }
            }),
        )
        .await;
    let id = RolloutId::parse("r-ask").unwrap();
    let controller = fleet.controller("controller-a");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let record = controller.step(&id).await.unwrap().expect("no other controller");
        if record
            .wave()
            .is_some_and(|w| w.status == WaveStatus::AwaitingApproval)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the canary did not finish: {:#?}",
            record.events
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // More steps while it waits ask for nothing more.
    for _ in 0..3 {
        controller.step(&id).await.unwrap();
    }

    let requests: Vec<_> = fleet
        .store
        .list_events(None, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event.event_type == ROLLOUT_APPROVAL_REQUESTED)
        .collect();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    let event = &requests[0].event;
    assert_eq!(event.subject, "rollout/r-ask");
    assert_eq!(event.data["wave"], 1);
    assert_eq!(event.data["regions"], json!(["eu-west-1"]));
    assert_eq!(event.data["approve"], "tenantctl rollout approve r-ask");
    assert_eq!(event.data["environment"], "test");
    // Rollout events name their waves' regions and the environment their selector
    // names, so a sink filtered by region or environment gets them.
    let filter = SinkFilter {
        regions: vec!["eu-west-1".into()],
        environments: vec!["test".into()],
        ..SinkFilter::default()
    };
    assert!(filter.matches(event));
    let elsewhere = SinkFilter {
        environments: vec!["prod".into()],
        ..SinkFilter::default()
    };
    assert!(!elsewhere.matches(event));
    fleet.stop().await;
}
