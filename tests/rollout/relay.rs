//! The joint write of a landing and a rollout's next start.

use std::time::Duration;

use chrono::Utc;
use tenant_orchestrator::record::Outcome;

const LONG: Duration = Duration::from_secs(60);

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

    // Refused: the next tenant was written after the pass read it.
    let read = fleet.store.load(&next_id).await.unwrap();
    let changed = (fleet.store)
        .save(&read, WriteGuard::Version, None)
        .await
        .unwrap();
    let (next, transition) = start(&read);
    let (after, lease, passed) = land().await;
    let drive = TenantDrive {
        rollout: &record,
        lease: &rollout_lease,
        tenant: &next,
        transition,
        member: &member,
        finished_holder: None,
        grant: Some(&grant),
    };
    let written = (fleet.store)
        .save_steps_and_drive(&after, &lease, passed, drive)
        .await
        .unwrap();
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
    let (next, transition) = start(&untouched);
    let (after, lease, passed) = land().await;
    let drive = TenantDrive {
        rollout: &record,
        lease: &rollout_lease,
        tenant: &next,
        transition,
        member: &member,
        finished_holder: None,
        grant: Some(&grant),
    };
    let written = (fleet.store)
        .save_steps_and_drive(&after, &lease, passed, drive)
        .await
        .unwrap();
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
