//! Relayed starts: a worker beside the controller starts the next tenant of a rollout
//! in the write that lands one, within the limits the controller counted, once per
//! tenant, and not after an operator paused the rollout.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tenant_orchestrator::domain::RolloutId;
use tenant_orchestrator::machine::StepKind;
use tenant_orchestrator::record::{Outcome, Phase};
use tenant_orchestrator::store::RolloutStore;

use crate::common::Call;
use crate::rollout_support::*;

const LONG: Duration = Duration::from_secs(60);
const LIMIT: usize = 3;

/// The most tenants whose steps overlapped at any moment, each counted from its first
/// step's start to its last step's end: no more than were in flight.
fn most_at_once(calls: &[Call]) -> usize {
    let mut spans: std::collections::HashMap<&str, (DateTime<Utc>, DateTime<Utc>)> = Default::default();
    for c in calls {
        let end = c.ended.unwrap_or(c.started);
        let span = spans.entry(c.tenant.as_str()).or_insert((c.started, end));
        span.0 = span.0.min(c.started);
        span.1 = span.1.max(end);
    }
    let mut edges: Vec<(DateTime<Utc>, i64)> =
        spans.values().flat_map(|(s, e)| [(*s, 1), (*e, -1)]).collect();
    // An end before a start at the same instant.
    edges.sort_by_key(|(at, delta)| (*at, *delta));
    let (mut now, mut most) = (0i64, 0i64);
    for (_, delta) in edges {
        now += delta;
        most = most.max(now);
    }
    most as usize
}

/// Starts rollout `id` to 2.0.0: a canary, then the rest, `LIMIT` at a time, no bake.
async fn start_two_waves(fleet: &Fleet, id: &str) {
    let spec = json!({
        "release": "2.0.0",
        "strategy": {
            "waves": ["1", "100%"], "max_in_flight_per_region": LIMIT,
            "bake_time": "0s", "bake_checks": 0,
            "approvals": {"after_canary": false, "between_regions": false}
        }
    });
    fleet.start(id, spec).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_landing_starts_the_next_tenant_in_its_write_within_the_limits_and_once() {
    let fleet_tenants = tenants("relay", "eu-west-1", 16);
    let mut fleet = Fleet::new(&fleet_tenants, "1.0.0").await;
    fleet.steps.delay(StepKind::Deploy, Duration::from_millis(150));
    fleet.start_in_process("controller-r", 2);
    start_two_waves(&fleet, "r-relay").await;
    let done = fleet
        .wait_for("r-relay", LONG, "completed", |r| r.phase.is_finished())
        .await;
    assert_eq!(done.phase, Phase::Completed, "{:#?}", done.events);

    let relayed: f64 = (fleet.store.write_units_by_operation().into_iter())
        .filter(|(operation, _)| operation.starts_with("relay transaction"))
        .map(|(_, units)| units)
        .sum();
    assert!(
        relayed > 0.0,
        "no tenant was started with a landing: {:?}",
        fleet.store.write_units_by_operation()
    );
    for (id, _) in &fleet_tenants {
        assert_eq!(fleet.release_of(id).await, "Active/2.0.0");
        assert_eq!(
            fleet.upgrades_started(id, "2.0.0").await,
            1,
            "{id} started exactly once"
        );
        assert_eq!(
            fleet.steps.calls_of(id, StepKind::Deploy),
            1,
            "{id} deployed once"
        );
    }
    let members = fleet.members("r-relay").await;
    assert!(
        members
            .iter()
            .all(|m| m.outcome == Outcome::Succeeded && m.attempts == 1),
        "{members:#?}"
    );
    let calls = fleet.steps.calls();
    assert!(
        most_at_once(&calls) <= LIMIT,
        "{} tenants upgraded at once, over the limit of {LIMIT}",
        most_at_once(&calls)
    );
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_tenant_starts_by_relay_once_the_rollout_is_paused() {
    let fleet_tenants = tenants("hold", "eu-west-1", 16);
    let mut fleet = Fleet::new(&fleet_tenants, "1.0.0").await;
    fleet.steps.delay(StepKind::Deploy, Duration::from_millis(300));
    fleet.start_in_process("controller-p", 1);
    start_two_waves(&fleet, "r-hold").await;
    let id = RolloutId::parse("r-hold").unwrap();
    let started = |members: &[tenant_orchestrator::record::RolloutMember]| {
        members.iter().filter(|m| m.outcome != Outcome::Pending).count()
    };
    // Paused once the second wave is under way.
    let deadline = std::time::Instant::now() + LONG;
    while started(&fleet.store.members(&id, None).await.unwrap()) < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the second wave never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fleet.commands.pause(&id, "operator:test").await.unwrap();
    // A pass that read the rollout before the pause may still start what it decided
    // then, as without relays; what follows it may not.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let at_pause = started(&fleet.store.members(&id, None).await.unwrap());
    // The tenants in flight land (each Deploy takes 300 ms) and start nothing more.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let members = fleet.store.members(&id, None).await.unwrap();
    assert_eq!(
        started(&members),
        at_pause,
        "tenants started after the pause: {members:#?}"
    );
    assert!(
        !members.iter().any(|m| m.outcome == Outcome::InFlight),
        "the tenants in flight at the pause landed: {members:#?}"
    );
    assert!(
        started(&members) < fleet_tenants.len(),
        "the pause came too late to test anything"
    );

    fleet.commands.resume(&id, "operator:test").await.unwrap();
    let done = fleet
        .wait_for("r-hold", LONG, "completed", |r| r.phase.is_finished())
        .await;
    assert_eq!(done.phase, Phase::Completed, "{:#?}", done.events);
    for (tenant, _) in &fleet_tenants {
        assert_eq!(
            fleet.upgrades_started(tenant, "2.0.0").await,
            1,
            "{tenant} started exactly once"
        );
    }
    fleet.stop().await;
}

/// The joint write: the landing and the next tenant's start land together, the next
/// tenant leased to the landing's worker; when the start's part is refused (the next
/// tenant changed since the pass read it) the landing is written alone and nothing of
/// the start is.
#[tokio::test]
async fn a_landing_and_a_start_are_written_together_or_the_landing_alone() {
    use tenant_orchestrator::machine::{TenantEvent, TenantState};
    use tenant_orchestrator::ports::LeaseGrant;
    use tenant_orchestrator::record::{Actor, Cause, TenantRecord, Transition};
    use tenant_orchestrator::store::{PassedStep, TenantDrive, TenantStore, WriteGuard};
    let (fleet, record, next_id) = crate::controller::one_tenant_rollout("joint", LONG, Utc::now()).await;
    let (rollout_id, rollout_lease) = (record.id.clone(), record.lease.clone().unwrap());
    let mut member = fleet.members("r-joint").await.remove(0);
    member.outcome = Outcome::InFlight;
    member.attempts = 1;
    let landing = TenantRecord::new(
        crate::common::spec("joint-landing", "eu-west-1"),
        TenantState::Active {
            release: crate::common::release("2.0.0"),
            failed_upgrade: None,
        },
        Utc::now(),
    );
    let provision = Cause::Event(TenantEvent::Provision {
        release: crate::common::release("2.0.0"),
    });
    (fleet.store)
        .create(
            &landing,
            Transition::new(&TenantState::initial(), provision.clone(), Actor("test".into())),
        )
        .await
        .unwrap();
    let grant = LeaseGrant {
        owner: "worker-w".into(),
        ttl: LONG,
    };
    // The landing tenant, leased to worker-w, writes one more transition and gives
    // its lease up; the next tenant's start is the drive the pass decided.
    let land = || async {
        let leased = (fleet.store)
            .acquire_lease(landing.id(), "worker-w", LONG, Utc::now())
            .await
            .unwrap();
        let lease = leased.lease.clone().unwrap();
        let mut after = leased.clone();
        after.lease = None;
        let step = PassedStep {
            transition: Transition::new(&leased.state, provision.clone(), Actor("worker-w".into())),
            after: after.clone(),
            at: Utc::now(),
        };
        (after, lease, vec![step])
    };
    let start = |read: &TenantRecord| {
        let event = TenantEvent::Upgrade {
            release: crate::common::release("2.0.0"),
        };
        let mut next = read.clone();
        next.enter(read.state.apply(&event).unwrap(), Utc::now());
        let transition = Transition::new(&read.state, Cause::Event(event), Actor::rollout(&rollout_id));
        (next, transition)
    };

    // The landing written with the start of the next tenant, as read in `read`.
    let land_and_start = |read: TenantRecord| {
        let (next, transition) = start(&read);
        let (record, rollout_lease, member, grant, land) = (&record, &rollout_lease, &member, &grant, &land);
        let store = &fleet.store;
        async move {
            let (after, lease, passed) = land().await;
            let drive = TenantDrive {
                rollout: record,
                lease: rollout_lease,
                tenant: &next,
                transition,
                member,
                finished_holder: None,
                grant: Some(grant),
            };
            (store.save_steps_and_drive(&after, &lease, passed, drive))
                .await
                .unwrap()
        }
    };

    // Refused: the next tenant was written after the pass read it.
    let read = fleet.store.load(&next_id).await.unwrap();
    let changed = (fleet.store)
        .save(&read, WriteGuard::Version, None)
        .await
        .unwrap();
    let written = land_and_start(read.clone()).await;
    assert!(written.next.is_none(), "the start was refused");
    assert!(written.landed.lease.is_none());
    let stored = fleet.store.load(landing.id()).await.unwrap();
    assert_eq!(
        (stored.version, stored.lease.is_none()),
        (written.landed.version, true),
        "the landing was written"
    );
    let untouched = fleet.store.load(&next_id).await.unwrap();
    assert_eq!(
        untouched.version, changed.version,
        "nothing of the start was written"
    );
    assert!(untouched.lease.is_none());

    // Written together: the next tenant upgrades, leased to the landing's worker.
    let written = land_and_start(untouched).await;
    let started = written.next.expect("the start was written with the landing");
    let loaded = fleet.store.load(&next_id).await.unwrap();
    assert_eq!(loaded.state.label(), started.state.label());
    assert!(
        matches!(loaded.state, TenantState::Upgrading { .. }),
        "{:?}",
        loaded.state
    );
    assert_eq!(loaded.lease.as_ref().map(|l| l.owner.as_str()), Some("worker-w"));
    let members = fleet.members("r-joint").await;
    assert_eq!(
        members[0].outcome,
        Outcome::InFlight,
        "the member's start is in the same write"
    );
    assert!(fleet.store.load(landing.id()).await.unwrap().lease.is_none());
}
