//! Rollout phase changes in the outbox.

use crate::rollout_support::*;
use serde_json::json;
use tenant_orchestrator::domain::RolloutId;
use tenant_orchestrator::ports::OutboxStore;
use tenant_orchestrator::record::outbox::ROLLOUT_PHASE;
use tenant_orchestrator::record::Phase;

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
