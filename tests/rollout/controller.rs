//! Fleet rollouts on the local DynamoDB: real store, real workers and controllers,
//! with `ScriptedStep` standing in for the AWS steps and `HealthDouble` for the bake
//! health checks.

use std::time::Duration;

use crate::common::RegistryDouble;
use crate::rollout_support::*;
use serde_json::json;
use tenant_orchestrator::domain::rollout::SkipReason;
use tenant_orchestrator::domain::RolloutId;
use tenant_orchestrator::machine::StepKind;
use tenant_orchestrator::record::{Outcome, Phase, RollbackStatus, TenantRecord, WaveStatus};
use tenant_orchestrator::step::StepOutcome;
use tenant_orchestrator::store::{RolloutStore, TenantStore};

const LONG: Duration = Duration::from_secs(60);

/// A controller that passes only hourly acts at once on a command made in its own
/// process, which wakes it; a command made elsewhere waits for its tick.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rollout_command_in_the_controllers_process_wakes_it_before_its_tick() {
    let mut fleet = Fleet::new(&tenants("eu", "eu-west-1", 2), "1.0.0").await;
    fleet.start_workers(1);
    let changed = tenant_orchestrator::ports::Wakeup::default();
    let hourly = tenant_orchestrator::rollout::Controller::new(
        fleet.store.clone(),
        fleet.store.clone(),
        fleet.health.clone(),
        tenant_orchestrator::rollout::ControllerConfig {
            tick: Duration::from_secs(3600),
            ..tenant_orchestrator::rollout::ControllerConfig::new("hourly")
        },
    )
    .with_command_wakeup(changed.clone());
    fleet.run_controller(hourly);
    let spec = json!({
        "release": "2.0.0",
        "strategy": {
            "waves": ["1", "100%"], "max_in_flight_per_region": 1,
            "bake_time": "1s", "bake_checks": 1, "bake_check_interval": "1s",
            "approvals": no_approvals()
        }
    });
    let id = RolloutId::parse("r-woken").unwrap();
    let started = |members: &[tenant_orchestrator::record::RolloutMember]| {
        members.iter().filter(|m| m.outcome != Outcome::Pending).count()
    };

    // Started and paused through commands that wake no controller: nothing moves.
    fleet.start("r-woken", spec).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    fleet.commands.pause(&id, "operator:test").await.unwrap();
    let members = fleet.store.members(&id, None).await.unwrap();
    assert_eq!(
        started(&members),
        0,
        "the controller waits for its tick: {members:?}"
    );

    // Resumed through commands wired to it: the controller starts the first wave.
    let beside = tenant_orchestrator::app::RolloutCommands::new(fleet.store.clone(), fleet.store.clone())
        .with_wakeup(changed);
    beside.resume(&id, "operator:test").await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let members = fleet.store.members(&id, None).await.unwrap();
        if started(&members) == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no tenant started 10 s after the resume: {members:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn no_approvals() -> serde_json::Value {
    json!({"after_canary": false, "between_regions": false})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rollout_of_32_tenants_over_two_regions_completes_region_by_region() {
    let mut all = tenants("eu", "eu-west-1", 16);
    all.extend(tenants("us", "us-east-1", 16));
    let mut fleet = Fleet::new(&all, "1.0.0").await;
    fleet.start_workers(2);
    fleet.start_controller("controller-a");
    fleet.start_controller("controller-b");

    fleet
        .start(
            "r-big",
            json!({
                "release": "2.0.0",
                "strategy": {
                    "region_order": ["eu-west-1", "us-east-1"],
                    "waves": ["1", "50%", "100%"],
                    "max_in_flight_per_region": 6,
                    "bake_time": "1s", "bake_checks": 1, "bake_check_interval": "1s",
                    "approvals": no_approvals()
                }
            }),
        )
        .await;
    let done = fleet
        .wait_for("r-big", LONG, "completed", |r| r.phase.is_finished())
        .await;

    assert_eq!(done.phase, Phase::Completed, "{:#?}", done.events);
    assert_eq!(done.waves.len(), 6, "three waves in each region");
    assert!(done.waves.iter().all(|w| w.status == WaveStatus::Succeeded));
    // The stored record keeps no finished wave's bake checks; showing it puts them back.
    assert!(
        (done.waves.iter()).all(|w| w.bake.as_ref().is_some_and(|b| b.checks.is_empty())),
        "the rollout item still holds finished waves' checks: {:#?}",
        done.waves
    );
    let id = RolloutId::parse("r-big").unwrap();
    let (shown, _) = fleet.commands.get(&id).await.unwrap();
    for wave in &shown.waves {
        let checks = &wave.bake.as_ref().unwrap().checks;
        assert!(
            !checks.is_empty() && checks.iter().all(|c| c.healthy),
            "wave {}: {checks:?}",
            wave.index
        );
    }
    let members = fleet.members("r-big").await;
    assert_eq!(members.len(), 32);
    // Each wave's tally, which progress readers take instead of the members, counts
    // the finished wave exactly.
    for (wave, tally) in done
        .waves
        .iter()
        .zip(done.tallies().expect("every wave keeps a tally"))
    {
        assert_eq!(
            (tally.total(), tally.succeeded),
            (wave.size, wave.size),
            "wave {}: {tally:?}",
            wave.index
        );
    }
    for (id, _) in &all {
        assert_eq!(fleet.release_of(id).await, "Active/2.0.0");
        assert_eq!(
            fleet.upgrades_started(id, "2.0.0").await,
            1,
            "{id} started exactly once"
        );
    }
    assert!(members
        .iter()
        .all(|m| m.outcome == Outcome::Succeeded && m.attempts == 1));
    // One region at a time: every eu tenant finished before the first us tenant started.
    let eu_last = members
        .iter()
        .filter(|m| m.region.as_str() == "eu-west-1")
        .filter_map(|m| m.finished_at)
        .max();
    let us_first = members
        .iter()
        .filter(|m| m.region.as_str() == "us-east-1")
        .filter_map(|m| m.started_at)
        .min();
    assert!(eu_last.unwrap() < us_first.unwrap());
    assert!(
        fleet.health.checks() >= 32,
        "every wave baked with health evidence"
    );
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_budget_breach_halts_and_rolls_the_whole_wave_back() {
    let all = tenants("acme", "eu-west-1", 6);
    let mut fleet = Fleet::new(&all, "1.0.0").await;
    // The second wave (after the canary acme-00) has acme-01..05; two fail verification.
    for bad in ["acme-02", "acme-04"] {
        fleet.steps.script(
            bad,
            StepKind::Verify,
            vec![StepOutcome::fail("health check answered 503")],
        );
    }
    fleet.start_workers(1);
    fleet.start_controller("controller-a");

    fleet
        .start(
            "r-breach",
            json!({
                "release": "2.0.0",
                "strategy": {
                    "waves": ["1", "100%"],
                    "failure_budget": 1,
                    "on_breach": {"rollback": "wave"},
                    "bake_time": "0s", "bake_checks": 0,
                    "approvals": no_approvals()
                }
            }),
        )
        .await;
    let halted = fleet
        .wait_for("r-breach", LONG, "halted and settled", |r| r.is_settled())
        .await;

    assert_eq!(halted.phase, Phase::Halted);
    let reason = halted.halt_reason.clone().unwrap();
    assert!(
        reason.contains("failed 2 of 5") && reason.contains("acme-02"),
        "{reason}"
    );
    assert_eq!(
        fleet.release_of("acme-00").await,
        "Active/2.0.0",
        "the canary's wave did not breach"
    );
    for id in ["acme-01", "acme-02", "acme-03", "acme-04", "acme-05"] {
        assert_eq!(
            fleet.release_of(id).await,
            "Active/1.0.0",
            "{id} is back on 1.0.0"
        );
    }
    let members = fleet.members("r-breach").await;
    for m in members.iter().filter(|m| m.wave == 1) {
        assert_eq!(m.rollback, Some(RollbackStatus::Done), "{}", m.tenant);
    }
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_breach_rolls_back_only_the_failed_tenants_when_the_spec_says_so() {
    let all = tenants("bolt", "eu-west-1", 4);
    let mut fleet = Fleet::new(&all, "1.0.0").await;
    fleet.start_workers(1);
    fleet.start_controller("controller-a");
    // bolt-02 passes its upgrade but turns sick during the bake.
    fleet.health.make_sick("bolt-02");

    fleet
        .start(
            "r-sick",
            json!({
                "release": "2.0.0",
                "strategy": {
                    "waves": ["1", "100%"],
                    "failure_budget": 0,
                    "on_breach": {"rollback": "failed"},
                    "bake_time": "1s", "bake_checks": 1, "bake_check_interval": "1s",
                    "approvals": no_approvals()
                }
            }),
        )
        .await;
    let halted = fleet
        .wait_for("r-sick", LONG, "halted and settled", |r| r.is_settled())
        .await;

    assert_eq!(halted.phase, Phase::Halted);
    assert!(halted
        .halt_reason
        .as_deref()
        .unwrap()
        .contains("unhealthy during the bake"));
    assert_eq!(
        fleet.release_of("bolt-02").await,
        "Active/1.0.0",
        "the sick tenant went back"
    );
    for id in ["bolt-00", "bolt-01", "bolt-03"] {
        assert_eq!(
            fleet.release_of(id).await,
            "Active/2.0.0",
            "{id} stays on the release"
        );
    }
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pause_stops_new_starts_and_resume_finishes_the_rollout() {
    let all = tenants("calm", "eu-west-1", 6);
    let mut fleet = Fleet::new(&all, "1.0.0").await;
    fleet.steps.delay(StepKind::Deploy, Duration::from_millis(300));
    fleet.start_workers(1);
    fleet.start_controller("controller-a");
    fleet
        .start(
            "r-pause",
            json!({
                "release": "2.0.0",
                "strategy": {
                    "waves": ["1", "100%"],
                    "max_in_flight_per_wave": 1,
                    "bake_time": "0s", "bake_checks": 0,
                    "approvals": no_approvals()
                }
            }),
        )
        .await;
    let id = RolloutId::parse("r-pause").unwrap();
    fleet
        .wait_for("r-pause", LONG, "wave 1", |r| r.current_wave == 1)
        .await;
    fleet.commands.pause(&id, "operator:test").await.unwrap();
    // Whatever was in flight finishes; nothing new starts while paused.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = fleet.members("r-pause").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = fleet.members("r-pause").await;
    let started =
        |ms: &[tenant_orchestrator::record::RolloutMember]| ms.iter().filter(|m| m.attempts > 0).count();
    assert_eq!(
        started(&before),
        started(&after),
        "no tenant started while paused"
    );
    assert!(started(&after) < 6, "the pause landed before the end");
    assert_eq!(fleet.rollout("r-pause").await.phase, Phase::Paused);

    fleet.commands.resume(&id, "operator:test").await.unwrap();
    let done = fleet
        .wait_for("r-pause", LONG, "completed", |r| r.phase.is_finished())
        .await;
    assert_eq!(done.phase, Phase::Completed);
    let actors: Vec<&str> = done.events.iter().map(|e| e.actor.as_str()).collect();
    assert!(
        actors.iter().filter(|a| **a == "operator:test").count() >= 3,
        "start, pause and resume recorded"
    );
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_approval_gate_holds_the_rollout_after_the_canary() {
    let all = tenants("gate", "eu-west-1", 4);
    let mut fleet = Fleet::new(&all, "1.0.0").await;
    fleet.start_workers(1);
    fleet.start_controller("controller-a");
    fleet
        .start(
            "r-gate",
            json!({
                "release": "2.0.0",
                "strategy": {
                    "waves": ["1", "100%"],
                    "bake_time": "0s", "bake_checks": 0,
                    "approvals": {"after_canary": true}
                }
            }),
        )
        .await;
    let waiting = fleet
        .wait_for("r-gate", LONG, "awaiting approval", |r| {
            r.wave().is_some_and(|w| w.status == WaveStatus::AwaitingApproval)
        })
        .await;
    assert_eq!(waiting.current_wave, 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    for id in ["gate-01", "gate-02", "gate-03"] {
        assert_eq!(
            fleet.release_of(id).await,
            "Active/1.0.0",
            "{id} waits for the approval"
        );
    }
    let id = RolloutId::parse("r-gate").unwrap();
    let refused = fleet
        .commands
        .pause(&RolloutId::parse("r-none").unwrap(), "x")
        .await;
    assert!(refused.is_err(), "an unknown rollout is refused");

    fleet.commands.approve(&id, "operator:alice").await.unwrap();
    let done = fleet
        .wait_for("r-gate", LONG, "completed", |r| r.phase.is_finished())
        .await;
    assert_eq!(done.phase, Phase::Completed);
    assert_eq!(done.waves[1].approved_by.as_deref(), Some("operator:alice"));
    assert!(
        fleet.commands.approve(&id, "operator:alice").await.is_err(),
        "nothing left to approve"
    );
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_rollouts_never_drive_the_same_tenant() {
    let all = tenants("duo", "eu-west-1", 4);
    let mut fleet = Fleet::new(&all, "1.0.0").await;
    fleet.start_workers(1);
    fleet.start_controller("controller-a");
    let spec = |release: &str| {
        json!({
            "release": release,
            "strategy": {"waves": ["1", "100%"], "bake_time": "0s", "bake_checks": 0,
                         "approvals": {"after_canary": true}}
        })
    };
    fleet.start("r-first", spec("2.0.0")).await;
    fleet
        .wait_for("r-first", LONG, "awaiting approval", |r| {
            r.wave().is_some_and(|w| w.status == WaveStatus::AwaitingApproval)
        })
        .await;
    let second = fleet
        .commands
        .plan(
            &serde_json::from_value(spec("3.0.0")).unwrap(),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let held: Vec<&str> = second
        .skipped
        .iter()
        .filter(|s| matches!(s.reason, SkipReason::HeldByRollout { .. }))
        .map(|s| s.id.as_str())
        .collect();
    assert_eq!(
        held,
        vec!["duo-00", "duo-01", "duo-02", "duo-03"],
        "all held by the running r-first"
    );
    assert_eq!(second.tenant_count(), 0);

    // A tenant the selector names is skipped once, as held, not also as missing from
    // the fleet (a start writes skipped tenants by id).
    let named = json!({"release": "3.0.0", "selector": {"tenants": ["duo-00"]}});
    let named = fleet
        .commands
        .plan(&serde_json::from_value(named).unwrap(), chrono::Utc::now())
        .await
        .unwrap();
    let skipped: Vec<(&str, &SkipReason)> =
        named.skipped.iter().map(|s| (s.id.as_str(), &s.reason)).collect();
    assert_eq!(
        skipped,
        vec![(
            "duo-00",
            &SkipReason::HeldByRollout {
                rollout: RolloutId::parse("r-first").unwrap()
            }
        )]
    );

    // A rollout that could move none of its tenants because they are held is refused,
    // and nothing of it is stored: started, it would have completed as if none needed
    // to move.
    let refused = fleet
        .commands
        .start(
            RolloutId::parse("r-held").unwrap(),
            serde_json::from_value(spec("3.0.0")).unwrap(),
            "operator:test",
        )
        .await
        .expect_err("all its tenants are held");
    let message = refused.to_string();
    assert!(
        matches!(refused, tenant_orchestrator::app::RolloutError::Held { .. })
            && message.contains("4 of those it selects are held by running rollout r-first"),
        "{message}"
    );
    {
        use tenant_orchestrator::store::RolloutStore;
        assert!(fleet
            .store
            .load_rollout(&RolloutId::parse("r-held").unwrap())
            .await
            .is_err());
    }

    // Once r-first is aborted its hold ends, and a new rollout may take the tenants.
    fleet
        .commands
        .abort(&RolloutId::parse("r-first").unwrap(), "operator:test")
        .await
        .unwrap();
    fleet.start("r-second", spec("3.0.0")).await;
    fleet
        .wait_for("r-second", LONG, "awaiting approval", |r| {
            r.wave().is_some_and(|w| w.status == WaveStatus::AwaitingApproval)
        })
        .await;
    assert_eq!(fleet.release_of("duo-00").await, "Active/3.0.0");
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn starting_the_same_rollout_twice_returns_the_first() {
    let all = tenants("twice", "eu-west-1", 2);
    let fleet = Fleet::new(&all, "1.0.0").await;
    let spec = json!({"release": "2.0.0", "strategy": {"bake_time": "0s", "bake_checks": 0}});
    let first = fleet.start("r-twice", spec.clone()).await;
    let again = fleet
        .commands
        .start(
            RolloutId::parse("r-twice").unwrap(),
            serde_json::from_value(spec).unwrap(),
            "operator:test",
        )
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(
        again.tenants, 2,
        "the existing rollout's tenants, not a new plan's"
    );
    assert_eq!(again.record.created_at, first.created_at);
    let other = json!({"release": "2.1.0"});
    let refused = fleet
        .commands
        .start(
            RolloutId::parse("r-twice").unwrap(),
            serde_json::from_value(other).unwrap(),
            "operator:test",
        )
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("different spec"), "{refused}");
    assert_eq!(fleet.members("r-twice").await.len(), 2, "no duplicate members");
}

#[tokio::test]
async fn the_rollout_lease_is_renewed_by_its_holder_and_fenced_for_the_next() {
    use tenant_orchestrator::store::RolloutStore;
    let fleet = Fleet::new(&tenants("lease", "eu-west-1", 1), "1.0.0").await;
    fleet.start("r-lease", json!({"release": "2.0.0"})).await;
    let id = RolloutId::parse("r-lease").unwrap();
    let now = chrono::Utc::now();
    let ttl = Duration::from_secs(5);

    let first = lease_of(&fleet, &id, "ctl-a", ttl, now).await;
    let later = now + chrono::Duration::seconds(2);
    let renewed = lease_of(&fleet, &id, "ctl-a", ttl, later).await;
    assert_eq!(renewed.fence, first.fence, "renewal keeps the fence");
    assert!(renewed.expires_at > first.expires_at, "and extends the lease");

    let refused = fleet
        .store
        .acquire_rollout_lease(&id, "ctl-b", ttl, later)
        .await
        .unwrap_err();
    assert_lost_lease(&refused);
    let after_expiry = later + chrono::Duration::seconds(6);
    let taken = lease_of(&fleet, &id, "ctl-b", ttl, after_expiry).await;
    assert_eq!(taken.owner, "ctl-b");
    assert_eq!(taken.fence, first.fence + 1, "a new holder gets a new fence");
}

/// A controller holds its lease pass after pass without writing it on each: the
/// lease is renewed once less than half its ttl is left, and stays as fenced as one
/// renewed every time (another holder is refused while it is live).
#[tokio::test]
async fn a_held_rollout_lease_is_written_again_only_when_half_its_ttl_is_gone() {
    use tenant_orchestrator::store::RolloutStore;
    let fleet = Fleet::new(&tenants("hold", "eu-west-1", 1), "1.0.0").await;
    fleet.start("r-hold", json!({"release": "2.0.0"})).await;
    let id = RolloutId::parse("r-hold").unwrap();
    // Whole milliseconds, as the lease's expiry is stored.
    let now = chrono::DateTime::from_timestamp_millis(chrono::Utc::now().timestamp_millis()).unwrap();
    let ttl = Duration::from_secs(10);
    let hold = |at: chrono::DateTime<chrono::Utc>| {
        let store = fleet.store.clone();
        let id = id.clone();
        async move {
            let record = store.hold_rollout_lease(&id, "ctl-a", ttl, at).await?;
            Ok::<_, tenant_orchestrator::store::StoreError>(record.lease.expect("held"))
        }
    };

    let taken = hold(now).await.unwrap();
    let written = fleet.store.consumed_write_units();
    let kept = hold(now + chrono::Duration::seconds(4)).await.unwrap();
    assert_eq!(kept, taken, "6 s of 10 left: kept as it is");
    assert_eq!(fleet.store.consumed_write_units(), written, "and nothing written");
    let renewed = hold(now + chrono::Duration::seconds(6)).await.unwrap();
    assert_eq!(renewed.fence, taken.fence, "4 s of 10 left: renewed, same fence");
    assert_eq!(renewed.expires_at, now + chrono::Duration::seconds(16));
    assert!(
        fleet.store.consumed_write_units() > written,
        "the renewal is a write"
    );

    let refused = fleet
        .store
        .hold_rollout_lease(&id, "ctl-b", ttl, now + chrono::Duration::seconds(7))
        .await
        .unwrap_err();
    assert_lost_lease(&refused);
    let after_expiry = now + chrono::Duration::seconds(17);
    let taken_over = fleet
        .store
        .hold_rollout_lease(&id, "ctl-b", ttl, after_expiry)
        .await
        .unwrap()
        .lease
        .unwrap();
    assert_eq!(taken_over.fence, taken.fence + 1, "a new holder gets a new fence");
}

/// The tenants a rollout skipped at planning are kept in items of their own, so a
/// rollout that leaves thousands alone (a fleet mostly on the release already) still
/// fits in DynamoDB's 400 KB item limit, and a reader still sees every one.
#[tokio::test]
async fn a_rollout_skipping_thousands_of_tenants_is_stored_and_shows_every_one() {
    use tenant_orchestrator::domain::rollout::Skipped;
    use tenant_orchestrator::domain::TenantId;
    use tenant_orchestrator::ports::Details;
    use tenant_orchestrator::store::{RolloutStore, WriteGuard};
    let fleet = Fleet::new(&tenants("skips", "eu-west-1", 1), "1.0.0").await;
    let mut record = fleet.start("r-small", json!({"release": "2.0.0"})).await;
    let skipped: Vec<Skipped> = (0..6000)
        .map(|i| Skipped {
            id: TenantId::parse(&format!("a-tenant-with-a-long-name-number-{i:05}")).unwrap(),
            reason: SkipReason::AlreadyOnRelease,
        })
        .collect();
    assert!(
        serde_json::to_vec(&skipped).unwrap().len() > 400 * 1024,
        "more than an item holds"
    );
    record.id = RolloutId::parse("r-big").unwrap();
    record.skipped = skipped.clone();
    record.skipped_apart = None;
    let created = fleet
        .store
        .create_rollout(&record, "starter", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(created.skipped_count(), 6000);
    fleet.store.put_skipped(&record.id, &skipped).await.unwrap();

    let stored = fleet.store.load_rollout(&record.id).await.unwrap();
    assert!(stored.skipped.is_empty(), "the rollout item holds the count only");
    assert_eq!(stored.skipped_count(), 6000);
    let drawn = (fleet.store.with_details(stored.clone(), Details::BakeEvidence))
        .await
        .unwrap();
    assert!(
        drawn.skipped.is_empty(),
        "the dashboard's page does not read them"
    );
    let shown = (fleet.store.with_details(stored, Details::Everything))
        .await
        .unwrap();
    assert_eq!(shown.skipped, skipped, "every one, in id order");

    // A save of the record as shown keeps them apart, and they still read back.
    let mut aborted = shown.clone();
    aborted.phase = Phase::Aborted;
    fleet
        .store
        .save_rollout(&aborted, WriteGuard::Version)
        .await
        .unwrap();
    let stored = fleet.store.load_rollout(&record.id).await.unwrap();
    assert!(stored.skipped.is_empty());
    let shown = (fleet.store.with_details(stored, Details::Everything))
        .await
        .unwrap();
    assert_eq!(shown.skipped, skipped);
}

/// The lease lives in an item of its own, which drives check and renewals write; the
/// rollout item keeps a copy that outlasts it, fenced the same, for saves and for
/// controllers that know only the copy.
#[tokio::test]
async fn a_drive_under_an_expired_lease_is_refused_while_the_copy_still_keeps_copy_readers_out() {
    use tenant_orchestrator::record::{Actor, Cause, Transition};
    use tenant_orchestrator::store::{RolloutStore, TenantDrive};
    let long_ago = chrono::Utc::now() - chrono::Duration::seconds(30);
    let (fleet, record, tenant_id) = one_tenant_rollout("stale", Duration::from_secs(5), long_ago).await;
    let (id, lease) = (record.id.clone(), record.lease.clone().unwrap());
    assert!(
        lease.expires_at < chrono::Utc::now(),
        "the lease item has expired"
    );
    let copy = fleet.rollout("r-stale").await.lease.unwrap();
    assert_eq!((copy.owner.as_str(), copy.fence), ("ctl-a", lease.fence));
    assert!(
        copy.is_live(chrono::Utc::now()),
        "the copy outlasts the lease item, so a reader of the copy alone stays out: {copy:?}"
    );

    let tenant = fleet.store.load(&tenant_id).await.unwrap();
    let member = fleet.members("r-stale").await.remove(0);
    let refused = fleet
        .store
        .drive_tenant(TenantDrive {
            rollout: &record,
            lease: &lease,
            tenant: &tenant,
            transition: Transition::new(
                &tenant.state,
                Cause::SpecChange(vec!["tier".into()]),
                Actor::rollout(&id),
            ),
            member: &member,
            finished_holder: None,
            grant: None,
        })
        .await
        .unwrap_err();
    assert_lost_lease(&refused);
    let after = fleet.store.load(&tenant_id).await.unwrap();
    assert_eq!(after.version, tenant.version, "nothing of the drive was written");
    assert_eq!(fleet.members("r-stale").await[0].version, member.version);

    // Its holder takes it again, but as a new holder: with the next fence, so no
    // drive begun under the expired lease can land after it.
    let retaken = lease_of(&fleet, &id, "ctl-a", Duration::from_secs(60), chrono::Utc::now()).await;
    assert_eq!(retaken.fence, lease.fence + 1);
}

/// A lease written by a controller that knows only the rollout item (no lease item,
/// or another holder's) keeps a controller that knows both out while it is live.
#[tokio::test]
async fn a_lease_held_on_the_rollout_item_alone_keeps_other_controllers_out_until_it_expires() {
    use tenant_orchestrator::store::RolloutStore;
    let fleet = Fleet::new(&tenants("mixed", "eu-west-1", 1), "1.0.0").await;
    fleet.start("r-mixed", json!({"release": "2.0.0"})).await;
    let id = RolloutId::parse("r-mixed").unwrap();
    let now = chrono::Utc::now();
    let first = lease_of(
        &fleet,
        &id,
        "ctl-a",
        Duration::from_secs(1),
        now - chrono::Duration::seconds(300),
    )
    .await;
    // An older controller took it over on the rollout item alone, as it did before
    // the lease had its own item: the lease item still names ctl-a.
    let old_fence = first.fence + 1;
    let expires = (now + chrono::Duration::seconds(30)).timestamp_millis();
    crate::common::dynamodb_client()
        .await
        .update_item()
        .table_name(fleet.store.table())
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("ROLLOUT#r-mixed".into()),
        )
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("ROLLOUT".into()))
        .update_expression("SET lease_owner = :o, lease_expires = :e, lease_fence = :f, last_fence = :f")
        .expression_attribute_values(":o", aws_sdk_dynamodb::types::AttributeValue::S("ctl-old".into()))
        .expression_attribute_values(
            ":e",
            aws_sdk_dynamodb::types::AttributeValue::N(expires.to_string()),
        )
        .expression_attribute_values(
            ":f",
            aws_sdk_dynamodb::types::AttributeValue::N(old_fence.to_string()),
        )
        .send()
        .await
        .unwrap();

    for owner in ["ctl-a", "ctl-b"] {
        let refused = fleet
            .store
            .acquire_rollout_lease(&id, owner, Duration::from_secs(5), now)
            .await
            .unwrap_err();
        assert_lost_lease(&refused);
    }
    let after_expiry = now + chrono::Duration::seconds(31);
    let taken = lease_of(&fleet, &id, "ctl-b", Duration::from_secs(5), after_expiry).await;
    assert_eq!(taken.owner, "ctl-b");
    assert_eq!(
        taken.fence,
        old_fence + 1,
        "the fence moves past the older controller's"
    );
    let renewed = lease_of(&fleet, &id, "ctl-b", Duration::from_secs(5), after_expiry).await;
    assert_eq!(
        renewed.fence, taken.fence,
        "held through the lease item, renewed in place"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_controller_holding_a_rollout_steps_it_on_every_tick_not_once_per_lease() {
    let all = tenants("tick", "eu-west-1", 2);
    let fleet = Fleet::new(&all, "1.0.0").await;
    fleet
        .start(
            "r-tick",
            json!({"release": "2.0.0", "strategy": {"bake_time": "0s", "bake_checks": 0}}),
        )
        .await;
    let controller = fleet.controller("controller-a");
    let id = RolloutId::parse("r-tick").unwrap();

    let first = controller.step(&id).await.unwrap().expect("the lease was free");
    // The next tick comes well within the lease: the holder keeps it and steps again
    // (it is written again once half its ttl is gone).
    let second = controller
        .step(&id)
        .await
        .expect("holding its own lease is no error")
        .expect("the lease is still this controller's");

    let (first, second) = (first.lease.unwrap(), second.lease.unwrap());
    assert_eq!(second.fence, first.fence, "the same holder keeps the fence");
    assert_eq!(
        second.expires_at.timestamp_millis(),
        first.expires_at.timestamp_millis(),
        "well within its ttl, the lease is kept as it was taken"
    );
}

#[tokio::test]
async fn a_rollout_record_edited_to_point_past_its_waves_is_halted_with_a_reason_not_crashed_on() {
    use tenant_orchestrator::store::{RolloutStore, WriteGuard};
    let fleet = Fleet::new(&tenants("edited", "eu-west-1", 2), "1.0.0").await;
    fleet
        .start(
            "r-edited",
            json!({"release": "2.0.0", "strategy": {"waves": ["1", "100%"], "approvals": no_approvals()}}),
        )
        .await;
    let id = RolloutId::parse("r-edited").unwrap();
    // Someone edits the item in the table: halted, at a wave the rollout does not have.
    let mut edited = fleet.rollout("r-edited").await;
    edited.phase = Phase::Halted;
    edited.current_wave = 9;
    fleet
        .store
        .save_rollout(&edited, WriteGuard::Version)
        .await
        .unwrap();

    let refused = fleet.commands.resume(&id, "operator:test").await.unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("is halted at wave 9 but has only 2 waves"),
        "{refused}"
    );

    let stepped = fleet.controller("ctl").step(&id).await.unwrap().unwrap();
    assert_eq!(stepped.phase, Phase::Halted);
    assert!(stepped.settled, "nothing of it moves, so a --wait returns");
    let reason = stepped.halt_reason.unwrap();
    assert!(
        reason.contains("rollout r-edited is at wave 9 but has only 2 waves")
            && reason.contains("tenantctl rollout abort r-edited"),
        "{reason}"
    );

    let aborted = fleet.commands.abort(&id, "operator:test").await.unwrap();
    assert_eq!(aborted.phase, Phase::Aborted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_rollouts_allowance_to_replace_rides_on_the_tenant_for_its_upgrade_only() {
    let all = tenants("allow", "eu-west-1", 1);
    let mut fleet = Fleet::new(&all, "1.0.0").await;
    fleet
        .start(
            "r-allow",
            json!({
                "release": "2.0.0",
                "strategy": {
                    "waves": ["100%"], "bake_time": "0s", "bake_checks": 0,
                    "approvals": no_approvals(),
                    "allow_replacement": ["DatabaseCluster"]
                }
            }),
        )
        .await;
    let id = tenant_orchestrator::domain::TenantId::parse(&all[0].0).unwrap();

    // The controller starts the tenant: its upgrade carries the allowance.
    fleet
        .controller("controller-a")
        .step(&RolloutId::parse("r-allow").unwrap())
        .await
        .unwrap();
    let started = fleet.store.load(&id).await.unwrap();
    assert_eq!(started.state.label(), "Upgrading/CheckArtifact");
    let allowed: Vec<&str> = started
        .facts
        .allow_replacement
        .iter()
        .map(|a| a.as_str())
        .collect();
    assert_eq!(allowed, vec!["DatabaseCluster"]);

    // Once the upgrade is over, the tenant no longer carries it.
    fleet.start_workers(1);
    fleet.start_controller("controller-a");
    fleet
        .wait_for("r-allow", LONG, "completed", |r| r.phase.is_finished())
        .await;
    let done = fleet.store.load(&id).await.unwrap();
    assert_eq!(done.state.label(), "Active");
    assert!(
        done.facts.allow_replacement.is_empty(),
        "{:?}",
        done.facts.allow_replacement
    );
    fleet.stop().await;
}

/// `err` is a refusal because another controller holds the rollout's lease.
/// A fleet of one tenant, `<name>-00`, and rollout `r-<name>` to 2.0.0 started over
/// it, whose lease controller `ctl-a` took at `at` for `ttl`: the fleet, the rollout
/// as the lease left it, and the tenant's id.
pub(crate) async fn one_tenant_rollout(
    name: &str,
    ttl: Duration,
    at: chrono::DateTime<chrono::Utc>,
) -> (
    Fleet,
    tenant_orchestrator::record::RolloutRecord,
    tenant_orchestrator::domain::TenantId,
) {
    use tenant_orchestrator::store::RolloutStore;
    let all = tenants(name, "eu-west-1", 1);
    let fleet = Fleet::new(&all, "1.0.0").await;
    let id = RolloutId::parse(&format!("r-{name}")).unwrap();
    fleet.start(id.as_str(), json!({"release": "2.0.0"})).await;
    let record = fleet
        .store
        .acquire_rollout_lease(&id, "ctl-a", ttl, at)
        .await
        .unwrap();
    let tenant_id = tenant_orchestrator::domain::TenantId::parse(&all[0].0).unwrap();
    (fleet, record, tenant_id)
}

fn assert_lost_lease(err: &tenant_orchestrator::store::StoreError) {
    use tenant_orchestrator::store::{Conflict, StoreError};
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                kind: Conflict::RolloutLease,
                ..
            }
        ),
        "{err}"
    );
}

/// Takes (or renews) rollout `id`'s lease for `owner` as of `at`: the lease got.
async fn lease_of(
    fleet: &Fleet,
    id: &RolloutId,
    owner: &str,
    ttl: Duration,
    at: chrono::DateTime<chrono::Utc>,
) -> tenant_orchestrator::record::Lease {
    use tenant_orchestrator::store::RolloutStore;
    let record = fleet
        .store
        .acquire_rollout_lease(id, owner, ttl, at)
        .await
        .unwrap();
    record.lease.expect("a lease taken is on the record")
}

#[tokio::test]
async fn the_dry_run_refuses_a_release_that_is_not_published_as_the_start_does() {
    let all = tenants("pub", "eu-west-1", 2);
    let fleet = Fleet::new(&all, "1.0.0").await;
    let commands =
        (fleet.commands.clone()).with_registry(std::sync::Arc::new(RegistryDouble { published: "2.0.0" }));
    let spec = |release: &str| serde_json::from_value(json!({"release": release})).unwrap();
    let planned = commands.plan(&spec("2.0.0"), chrono::Utc::now()).await;
    assert!(planned.is_ok_and(|plan| plan.tenant_count() == 2));
    for refused in [
        commands
            .plan(&spec("9.9.9"), chrono::Utc::now())
            .await
            .map(|_| ()),
        (commands.start(
            RolloutId::parse("r-unpublished").unwrap(),
            spec("9.9.9"),
            "operator:test",
        ))
        .await
        .map(|_| ()),
    ] {
        let error = refused.expect_err("9.9.9 is not published");
        assert!(
            error
                .to_string()
                .contains("release 9.9.9 has no image in eu-west-1"),
            "{error}"
        );
    }
}

/// A drive that gives the tenant's lease to a worker writes the lease with the next
/// fence and keeps the tenant out of the work index, and is refused, writing nothing,
/// when a lease was taken since the tenant was read or one is live on it.
#[tokio::test]
async fn a_drive_granting_the_lease_is_refused_when_a_lease_was_taken_since_the_read() {
    use tenant_orchestrator::machine::TenantEvent;
    use tenant_orchestrator::ports::LeaseGrant;
    use tenant_orchestrator::record::{Actor, Cause, Transition};
    use tenant_orchestrator::store::{Conflict, RolloutStore, StoreError, TenantDrive};
    let (fleet, record, tenant_id) =
        one_tenant_rollout("grant", Duration::from_secs(60), chrono::Utc::now()).await;
    let (id, lease) = (record.id.clone(), record.lease.clone().unwrap());
    let member = fleet.members("r-grant").await.remove(0);
    let grant = LeaseGrant {
        owner: "worker-beside".into(),
        ttl: Duration::from_secs(30),
    };
    let upgrade = |read: &TenantRecord| {
        let event = TenantEvent::Upgrade {
            release: crate::common::release("2.0.0"),
        };
        let mut next = read.clone();
        next.enter(read.state.apply(&event).unwrap(), chrono::Utc::now());
        let transition = Transition::new(&read.state, Cause::Event(event), Actor::rollout(&id));
        (next, transition)
    };
    let drive = |tenant, transition| TenantDrive {
        rollout: &record,
        lease: &lease,
        tenant,
        transition,
        member: &member,
        finished_holder: None,
        grant: Some(&grant),
    };

    // A worker takes the lease after the controller read the tenant: the read's
    // fence is stale, though the version is not.
    let take_elsewhere = || {
        (fleet.store).acquire_lease(
            &tenant_id,
            "worker-elsewhere",
            Duration::from_secs(30),
            chrono::Utc::now(),
        )
    };
    let read = fleet.store.load(&tenant_id).await.unwrap();
    let taken = take_elsewhere().await.unwrap();
    assert_eq!(
        taken.version, read.version,
        "a lease write leaves the version alone"
    );
    // A drive from that read is refused; so is one from a read made after, with the
    // other worker's lease live on the tenant.
    let stale_read = read;
    let read = fleet.store.load(&tenant_id).await.unwrap();
    let attempts = [upgrade(&stale_read), upgrade(&read)];
    for (i, (next, transition)) in attempts.iter().enumerate() {
        let refused = (fleet.store)
            .drive_tenant(drive(next, transition.clone()))
            .await
            .unwrap_err();
        assert!(
            matches!(
                refused,
                StoreError::Conflict {
                    kind: Conflict::Version,
                    ..
                }
            ),
            "attempt {i}: {refused}"
        );
    }
    let after = fleet.store.load(&tenant_id).await.unwrap();
    assert_eq!(
        (after.version, after.lease.as_ref().map(|l| l.owner.as_str())),
        (read.version, Some("worker-elsewhere")),
        "nothing of the refused drives was written"
    );

    // Once that lease is given up, the grant lands: the lease is the worker's, with
    // the next fence, and the tenant stays out of the work index while it lasts.
    fleet
        .store
        .release_lease(&taken, taken.lease.as_ref().unwrap())
        .await
        .unwrap();
    let read = fleet.store.load(&tenant_id).await.unwrap();
    let (next, transition) = upgrade(&read);
    let stored = fleet.store.drive_tenant(drive(&next, transition)).await.unwrap();
    let loaded = fleet.store.load(&tenant_id).await.unwrap();
    // As stored, to the millisecond the item keeps its times to.
    let millis = |r: &TenantRecord| {
        let mut r = r.clone();
        let ms = |t: chrono::DateTime<chrono::Utc>| {
            chrono::DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap()
        };
        r.updated_at = ms(r.updated_at);
        r.due_at = r.due_at.map(ms);
        if let Some(lease) = &mut r.lease {
            lease.expires_at = ms(lease.expires_at);
        }
        r
    };
    assert_eq!(millis(&stored), loaded, "the drive returns the tenant as stored");
    let granted = loaded.lease.clone().expect("the grant is on the tenant");
    assert_eq!(
        (granted.owner.as_str(), granted.fence, loaded.last_fence),
        ("worker-beside", read.last_fence + 1, read.last_fence + 1)
    );
    assert_eq!(loaded.state.label(), "Upgrading/CheckArtifact");
    for shard in 0..tenant_orchestrator::store::WORK_SHARDS {
        let due = (fleet.store)
            .due(&loaded.spec.region, shard, chrono::Utc::now(), 10)
            .await
            .unwrap();
        assert!(
            due.is_empty(),
            "a granted tenant is not offered to other workers: {due:?}"
        );
    }
    let refused = take_elsewhere().await.unwrap_err();
    assert!(
        matches!(
            refused,
            StoreError::Conflict {
                kind: Conflict::Lease,
                ..
            }
        ),
        "{refused}"
    );
}
