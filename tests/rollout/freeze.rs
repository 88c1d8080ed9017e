//! Scheduled starts and freeze windows on the local DynamoDB: the controller, stepped
//! at chosen times, starts nothing before a rollout's scheduled time and no tenant a
//! freeze covers, and `rollout start` is refused during a freeze unless overridden.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use tenant_orchestrator::app::{RolloutError, StartOptions};
use tenant_orchestrator::domain::{Environment, Freeze, Region, RolloutId, RolloutSpec};
use tenant_orchestrator::record::{Outcome, WaveStatus};
use tenant_orchestrator::store::{FreezeStore, RolloutStore, StoreError};

use crate::common::wait_for_state;
use crate::rollout_support::*;

fn one_wave() -> RolloutSpec {
    serde_json::from_value(json!({
        "release": "2.0.0",
        "strategy": {
            "waves": ["100%"],
            "max_in_flight_per_wave": 1,
            "bake_time": "0s", "bake_checks": 0,
            "approvals": {"after_canary": false, "between_regions": false}
        }
    }))
    .unwrap()
}

/// A freeze of the test environment (all regions, or one) from `from` until `until`.
async fn freeze(fleet: &Fleet, region: Option<&str>, from: DateTime<Utc>, until: DateTime<Utc>) -> Freeze {
    let freeze = Freeze::new(
        Environment::parse("test").unwrap(),
        region.map(|r| Region::parse(r).unwrap()),
        from,
        until,
        "year-end",
    )
    .unwrap();
    fleet.store.add_freeze(freeze).await.unwrap()
}

fn minutes(m: i64) -> TimeDelta {
    TimeDelta::minutes(m)
}

#[tokio::test]
async fn freezes_are_added_listed_and_removed() {
    let fleet = Fleet::new(&[], "1.0.0").await;
    let now = Utc::now();
    let all = freeze(&fleet, None, now, now + minutes(60)).await;
    let eu = freeze(&fleet, Some("eu-west-1"), now - minutes(5), now + minutes(5)).await;
    assert!(all.id.starts_with("f-") && all.id != eu.id, "{all:?} {eu:?}");

    let listed = fleet.store.list_freezes().await.unwrap();
    assert_eq!(listed, vec![eu.clone(), all.clone()], "by start");

    assert_eq!(fleet.store.remove_freeze(&eu.id).await.unwrap(), eu);
    assert_eq!(fleet.store.list_freezes().await.unwrap(), vec![all]);
    let missing = fleet.store.remove_freeze(&eu.id).await.unwrap_err();
    assert!(matches!(missing, StoreError::NotFound { .. }), "{missing:?}");
}

#[tokio::test]
async fn a_scheduled_start_inside_a_freeze_waits_for_its_time_then_for_the_freeze_to_end() {
    let fleet = Fleet::new(&tenants("sched", "eu-west-1", 1), "1.0.0").await;
    let now = Utc::now();
    let at = now + minutes(60);
    freeze(&fleet, None, now + minutes(30), now + minutes(120)).await;
    let started = fleet
        .commands
        .start_with(
            RolloutId::parse("r-sched").unwrap(),
            one_wave(),
            "operator:test",
            StartOptions {
                at: Some(at),
                override_freeze: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        started.record.not_before,
        Some(at),
        "stored at once, with its time"
    );
    let rollout = RolloutId::parse("r-sched").unwrap();
    let controller = fleet.controller("ctl");

    // Before its time: no wave starts.
    let early = controller
        .step_at(&rollout, now + minutes(59))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(early.waves[0].status, WaveStatus::Waiting, "{:#?}", early.events);
    assert_eq!(fleet.members("r-sched").await[0].outcome, Outcome::Pending);

    // Its time has come, but the freeze holds the tenant.
    let held = controller.step_at(&rollout, at).await.unwrap().unwrap();
    assert_eq!(held.waves[0].status, WaveStatus::Deploying);
    let member = fleet.members("r-sched").await.remove(0);
    assert_eq!(member.outcome, Outcome::Pending, "{member:?}");
    let why = member.waiting_for.unwrap();
    assert!(
        why.starts_with("frozen until ") && why.contains(": year-end"),
        "{why}"
    );
    assert_eq!(fleet.release_of("sched-00").await, "Active/1.0.0", "not started");

    // The freeze ended: the tenant starts.
    controller
        .step_at(&rollout, now + minutes(120))
        .await
        .unwrap()
        .unwrap();
    let member = fleet.members("r-sched").await.remove(0);
    assert_eq!(member.outcome, Outcome::InFlight, "{member:?}");
    assert_eq!(fleet.upgrades_started("sched-00", "2.0.0").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_freeze_that_begins_mid_rollout_holds_the_tenants_not_yet_started() {
    let mut fleet = Fleet::new(&tenants("mid", "eu-west-1", 2), "1.0.0").await;
    fleet.start_workers(1);
    fleet
        .commands
        .start(RolloutId::parse("r-mid").unwrap(), one_wave(), "operator:test")
        .await
        .unwrap();
    let now = Utc::now();
    let rollout = RolloutId::parse("r-mid").unwrap();
    let controller = fleet.controller("ctl");
    controller.step_at(&rollout, now).await.unwrap().unwrap();
    let first = fleet.members("r-mid").await;
    let in_flight: Vec<_> = first.iter().filter(|m| m.outcome == Outcome::InFlight).collect();
    assert_eq!(in_flight.len(), 1, "one at a time: {first:#?}");
    let started = in_flight[0].tenant.clone();
    wait_for_state(&**fleet.store, &started, "Active", Duration::from_secs(30)).await;
    assert_eq!(fleet.release_of(started.as_str()).await, "Active/2.0.0");

    freeze(&fleet, Some("eu-west-1"), now + minutes(1), now + minutes(60)).await;
    controller
        .step_at(&rollout, now + minutes(2))
        .await
        .unwrap()
        .unwrap();

    let members = fleet.members("r-mid").await;
    let done = members.iter().find(|m| m.tenant == started).unwrap();
    assert_eq!(done.outcome, Outcome::Succeeded, "the tenant in flight finished");
    let held = members.iter().find(|m| m.tenant != started).unwrap();
    assert_eq!(held.outcome, Outcome::Pending, "{held:?}");
    assert!(
        held.waiting_for.as_deref().unwrap().starts_with("frozen until "),
        "{held:?}"
    );
    assert_eq!(fleet.release_of(held.tenant.as_str()).await, "Active/1.0.0");
}

#[tokio::test]
async fn a_start_during_a_freeze_is_refused_unless_an_admin_overrides_it() {
    let fleet = Fleet::new(&tenants("frozen", "eu-west-1", 1), "1.0.0").await;
    let now = Utc::now();
    let f = freeze(&fleet, None, now - minutes(1), now + minutes(60)).await;
    let id = RolloutId::parse("r-frozen").unwrap();

    let refused = fleet
        .commands
        .start(id.clone(), one_wave(), "operator:test")
        .await
        .unwrap_err();
    let RolloutError::Frozen { message, .. } = &refused else {
        panic!("expected frozen, got {refused:?}");
    };
    assert!(
        message.contains("year-end") && message.contains("--override-freeze"),
        "{message}"
    );
    let nothing = fleet.store.load_rollout(&id).await.unwrap_err();
    assert!(matches!(nothing, StoreError::NotFound { .. }), "nothing stored");

    let started = fleet
        .commands
        .start_with(
            id.clone(),
            one_wave(),
            "operator:admin",
            StartOptions {
                at: None,
                override_freeze: Some("security fix".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(started.record.overridden_freezes, vec![f.id.clone()]);
    let event = started
        .record
        .events
        .iter()
        .find(|e| e.what.contains("override"))
        .unwrap();
    assert_eq!(event.actor, "operator:admin");
    assert_eq!(
        event.what,
        format!("admin override of freeze {}: security fix", f.id)
    );

    // The controller starts the tenant through the overridden freeze.
    fleet.controller("ctl").step_at(&id, now).await.unwrap().unwrap();
    assert_eq!(fleet.members("r-frozen").await[0].outcome, Outcome::InFlight);
    assert_eq!(fleet.upgrades_started("frozen-00", "2.0.0").await, 1);
}

#[tokio::test]
async fn a_scheduled_start_in_the_past_or_too_far_ahead_is_refused() {
    let fleet = Fleet::new(&tenants("when", "eu-west-1", 1), "1.0.0").await;
    for (at, words) in [
        (Utc::now() - minutes(10), "is in the past"),
        (Utc::now() + TimeDelta::days(91), "more than 90 days ahead"),
    ] {
        let e = fleet
            .commands
            .start_with(
                RolloutId::parse("r-when").unwrap(),
                one_wave(),
                "operator:test",
                StartOptions {
                    at: Some(at),
                    override_freeze: None,
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(e, RolloutError::BadSchedule(_)) && e.to_string().contains(words),
            "{e}"
        );
    }
}
