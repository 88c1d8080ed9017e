//! A `rollout start` interrupted before it wrote everything (its process killed, its
//! answer lost) is resumed by the same start run again, under the rollout's lease:
//! the retry of a pipeline step finishes what the first call began.

use std::time::Duration;

use crate::rollout_support::*;
use serde_json::json;
use tenant_orchestrator::app::RolloutError;
use tenant_orchestrator::domain::rollout::{SkipReason, Skipped};
use tenant_orchestrator::domain::{RolloutId, RolloutSpec, TenantId};
use tenant_orchestrator::ports::Details;
use tenant_orchestrator::record::{Outcome, Phase, RolloutMember, RolloutRecord, INTERRUPTED_START};
use tenant_orchestrator::store::RolloutStore;

fn spec() -> RolloutSpec {
    serde_json::from_value(json!({
        "release": "2.0.0",
        "strategy": {
            "waves": ["1", "100%"], "bake_time": "0s", "bake_checks": 0,
            "approvals": {"after_canary": false, "between_regions": false}
        }
    }))
    .unwrap()
}

/// What a start killed right after it created the rollout leaves: the rollout,
/// preparing, leased to the dead call for `lease`, with some of the items of an older
/// plan (a member and a skipped tenant the plan of the retry does not have).
async fn interrupted_start(fleet: &Fleet, id: &str, lease: Duration) -> RolloutRecord {
    let id = RolloutId::parse(id).unwrap();
    let now = chrono::Utc::now();
    let plan = fleet.commands.plan(&spec(), now).await.unwrap();
    let record = RolloutRecord::from_plan(id.clone(), spec(), &plan, "operator:test", now);
    let created = (fleet.store.create_rollout(&record, "start:killed", lease))
        .await
        .unwrap();
    let mut stray = RolloutMember::from_plan(&plan).remove(0);
    stray.tenant = TenantId::parse("gone-99").unwrap();
    fleet.store.put_members(&id, &[stray]).await.unwrap();
    let skipped = Skipped {
        id: TenantId::parse("gone-98").unwrap(),
        reason: SkipReason::AlreadyOnRelease,
    };
    fleet.store.put_skipped(&id, &[skipped]).await.unwrap();
    created
}

fn member_ids(members: &[RolloutMember]) -> Vec<String> {
    let mut ids: Vec<String> = members.iter().map(|m| m.tenant.to_string()).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_interrupted_start_is_refused_while_its_lease_lives_then_resumed_and_carried_out() {
    let all = tenants("resume", "eu-west-1", 3);
    let mut fleet = Fleet::new(&all, "1.0.0").await;
    let id = RolloutId::parse("r-resume").unwrap();
    interrupted_start(&fleet, "r-resume", Duration::from_millis(600)).await;

    // At once: the first call may still be writing, so the retry is told to wait.
    let refused = (fleet.commands.start(id.clone(), spec(), "operator:test"))
        .await
        .unwrap_err();
    let message = refused.to_string();
    assert!(matches!(refused, RolloutError::Refused { .. }), "{refused:?}");
    assert!(
        message.contains("is still being started") && message.contains("run the same start again"),
        "{message}"
    );
    assert_eq!(
        fleet.rollout("r-resume").await.phase,
        Phase::Preparing,
        "nothing changed"
    );

    tokio::time::sleep(Duration::from_millis(700)).await;
    let started = (fleet.commands.start(id.clone(), spec(), "operator:test"))
        .await
        .unwrap();
    assert!(started.created, "this call started it");
    assert_eq!((started.record.phase, started.tenants), (Phase::Running, 3));
    let stored = fleet.rollout("r-resume").await;
    assert_eq!(stored.phase, Phase::Running);
    assert!(stored.lease.is_none(), "the start gave its lease up");
    assert!(
        stored.events.iter().any(|e| e.what.contains("start resumed")),
        "{:#?}",
        stored.events
    );
    let want: Vec<String> = all.iter().map(|(t, _)| t.clone()).collect();
    assert_eq!(
        member_ids(&fleet.members("r-resume").await),
        want,
        "the new plan's, and no stray"
    );
    let shown = (fleet.store.with_details(stored, Details::Everything))
        .await
        .unwrap();
    assert!(
        shown.skipped.is_empty(),
        "the first attempt's skipped tenant is gone: {:?}",
        shown.skipped
    );

    fleet.start_workers(1);
    fleet.start_controller("controller-a");
    fleet
        .wait_for("r-resume", Duration::from_secs(60), "completed", |r| {
            r.phase == Phase::Completed
        })
        .await;
    for (tenant, _) in &all {
        assert_eq!(fleet.release_of(tenant).await, "Active/2.0.0");
        assert_eq!(fleet.upgrades_started(tenant, "2.0.0").await, 1, "{tenant}");
    }
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_start_aborted_for_its_interruption_is_resumed_but_an_operators_abort_stands() {
    let fleet = Fleet::new(&tenants("aborted", "eu-west-1", 2), "1.0.0").await;

    // An operator's abort is final: the same start returns the aborted rollout.
    let by_hand = RolloutId::parse("r-by-hand").unwrap();
    fleet
        .start("r-by-hand", serde_json::to_value(spec()).unwrap())
        .await;
    fleet.commands.abort(&by_hand, "operator:test").await.unwrap();
    let again = (fleet.commands.start(by_hand.clone(), spec(), "operator:test"))
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.record.phase, Phase::Aborted);

    // A start whose lease ran out is aborted by the first controller to see it,
    // which gives the lease up at once.
    let id = RolloutId::parse("r-cut").unwrap();
    interrupted_start(&fleet, "r-cut", Duration::from_millis(1)).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let aborted = fleet.controller("controller-a").step(&id).await.unwrap().unwrap();
    assert_eq!(aborted.phase, Phase::Aborted);
    assert_eq!(aborted.halt_reason.as_deref(), Some(INTERRUPTED_START));
    let stored = fleet.rollout("r-cut").await;
    assert!(stored.lease.is_none(), "{:?}", stored.lease);

    let resumed = (fleet.commands.start(id.clone(), spec(), "operator:test"))
        .await
        .unwrap();
    assert!(resumed.created);
    assert_eq!(resumed.record.phase, Phase::Running);
    assert_eq!(resumed.record.halt_reason, None);
    let events: Vec<&str> = resumed.record.events.iter().map(|e| e.what.as_str()).collect();
    assert!(
        events.iter().any(|e| e.contains("aborted: interrupted"))
            && events
                .iter()
                .any(|e| e.contains("start resumed: the aborted start")),
        "{events:#?}"
    );
    let members = fleet.members("r-cut").await;
    assert_eq!(member_ids(&members), ["aborted-00", "aborted-01"]);
    assert!(members.iter().all(|m| m.outcome == Outcome::Pending));
}

/// Two retries of the same interrupted start at once: one takes it over and writes
/// it; the other is refused or finds it started. Never two plans' members mixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_retries_of_an_interrupted_start_at_once_resume_it_once() {
    let fleet = Fleet::new(&tenants("race", "eu-west-1", 4), "1.0.0").await;
    let id = RolloutId::parse("r-race").unwrap();
    interrupted_start(&fleet, "r-race", Duration::from_millis(1)).await;
    tokio::time::sleep(Duration::from_millis(20)).await;

    let (a, b) = tokio::join!(
        fleet.commands.start(id.clone(), spec(), "operator:a"),
        fleet.commands.start(id.clone(), spec(), "operator:b"),
    );
    let created = [&a, &b]
        .iter()
        .filter(|r| matches!(r, Ok(s) if s.created))
        .count();
    assert_eq!(created, 1, "{a:?}\n{b:?}");
    for other in [&a, &b] {
        match other {
            Ok(started) => assert!(
                started.created || matches!(started.record.phase, Phase::Running | Phase::Preparing),
                "{started:?}"
            ),
            Err(refused) => assert!(
                refused.to_string().contains("is still being started"),
                "{refused}"
            ),
        }
    }
    let stored = fleet.rollout("r-race").await;
    assert_eq!(stored.phase, Phase::Running);
    let resumed = stored
        .events
        .iter()
        .filter(|e| e.what.contains("start resumed"))
        .count();
    assert_eq!(resumed, 1, "{:#?}", stored.events);
    assert_eq!(
        member_ids(&fleet.members("r-race").await),
        ["race-00", "race-01", "race-02", "race-03"]
    );
}
