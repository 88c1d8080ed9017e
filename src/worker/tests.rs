//! `decide_outcome`: what a step's outcome does to the tenant, without I/O.

use chrono::{TimeZone, Utc};

use super::*;
use crate::domain::{Environment, Group, ReleaseVersion, TenantSpec, Tier};
use crate::record::{Cause, TenantFacts};
use crate::step::StepOutcome;

fn at(second: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, second).unwrap()
}

fn release(v: &str) -> ReleaseVersion {
    ReleaseVersion::parse(v).unwrap()
}

/// A tenant upgrading from 1.0.0 to 1.1.0, at `step`.
fn upgrading_at(step: StepKind) -> TenantRecord {
    let spec = TenantSpec {
        id: TenantId::parse("acme").unwrap(),
        region: Region::parse("eu-west-1").unwrap(),
        environment: Environment::parse("prod").unwrap(),
        group: Group::parse("canary").unwrap(),
        tier: Tier::Small,
        hostnames: Vec::new(),
        pinned_release: None,
        maintenance: None,
        platform: None,
        pinned_platform: None,
    };
    let active = TenantState::Active {
        release: release("1.0.0"),
        failed_upgrade: None,
    };
    let mut state = active
        .apply(&TenantEvent::Upgrade {
            release: release("1.1.0"),
        })
        .unwrap();
    while state.step() != Some(step) {
        state = state.apply(&TenantEvent::StepSucceeded).unwrap();
    }
    let mut record = TenantRecord::new(spec, state, at(0));
    record.attempt = 2;
    record.step_started_at = Some(at(1));
    record
}

fn lease() -> Lease {
    Lease {
        owner: "w1".into(),
        expires_at: at(59),
        fence: 7,
    }
}

fn decide(record: &TenantRecord, outcome: StepOutcome) -> Decided {
    let lease = lease();
    let run = StepRun {
        step: record.state.step().unwrap(),
        started: at(10),
        finished: at(20),
        lease: &lease,
    };
    decide_outcome(record, outcome, &run, &Backoff::default()).unwrap()
}

#[test]
fn a_step_done_moves_the_machine_and_records_who_ran_it() {
    let record = upgrading_at(StepKind::Deploy);
    let facts = TenantFacts {
        helm_revision: Some(4),
        ..TenantFacts::default()
    };
    let decided = decide(&record, StepOutcome::done("revision 4 deployed", facts.clone()));

    assert_eq!(decided.record.state.step(), Some(StepKind::Verify));
    assert_eq!(decided.record.facts, facts);
    assert_eq!(decided.record.attempt, 0, "a new step starts its attempts afresh");
    assert_eq!(decided.record.due_at, Some(at(20)));
    assert!(decided.keeps_lease, "the next step runs under the same lease");
    let t = decided.transition.expect("a transition");
    assert_eq!(t.from, record.state);
    assert_eq!(t.cause, Cause::Event(TenantEvent::StepSucceeded));
    assert_eq!(t.actor, Actor::worker("w1", 7));
    assert_eq!(
        (t.step, t.step_started_at, t.fence),
        (Some(StepKind::Deploy), Some(at(10)), Some(7))
    );
    assert_eq!(t.output.as_deref(), Some("revision 4 deployed"));
    assert_eq!(t.describe_cause(), "StepSucceeded");
    assert_eq!(t.attempts, Some(3), "two failed attempts, then this one");
}

#[test]
fn the_last_step_done_settles_the_tenant_and_gives_the_lease_up() {
    let decided = decide(
        &upgrading_at(StepKind::Reopen),
        StepOutcome::done("maintenance over", TenantFacts::default()),
    );
    assert_eq!(decided.record.state.name(), "Active");
    assert_eq!(decided.record.due_at, None);
    assert!(!decided.keeps_lease);
    assert!(decided.transition.is_some());
}

#[test]
fn pending_keeps_the_state_and_polls_later_without_a_transition() {
    let record = upgrading_at(StepKind::UpdateInfra);
    let decided = decide(
        &record,
        StepOutcome::Pending {
            poll_after: Duration::from_secs(15),
            facts: TenantFacts::default(),
            note: "UPDATE_IN_PROGRESS".into(),
        },
    );
    assert_eq!(decided.record.state, record.state);
    assert_eq!(decided.record.due_at, Some(at(35)));
    assert_eq!(decided.record.attempt, record.attempt);
    assert!(decided.transition.is_none());
    assert!(!decided.keeps_lease);
}

#[test]
fn a_retryable_failure_counts_an_attempt_and_backs_off() {
    let record = upgrading_at(StepKind::Backup);
    let decided = decide(
        &record,
        StepOutcome::Failed {
            retryable: true,
            reason: "throttled".into(),
        },
    );
    assert_eq!(decided.record.state, record.state);
    assert_eq!(decided.record.attempt, 3);
    assert_eq!(decided.record.last_error.as_deref(), Some("throttled"));
    let ceiling = Backoff::default().ceiling(3);
    let due = decided.record.due_at.unwrap();
    assert!(
        due >= at(20) && due <= at(20) + ceiling,
        "{due} within {ceiling:?} of the failure"
    );
    assert!(decided.transition.is_none());
}

#[test]
fn a_failure_for_good_goes_to_the_machine_with_its_reason() {
    let record = upgrading_at(StepKind::Deploy);
    let decided = decide(
        &record,
        StepOutcome::Failed {
            retryable: false,
            reason: "image pull failed".into(),
        },
    );
    assert_eq!(decided.record.state.name(), "RollingBack");
    assert_eq!(decided.record.last_error.as_deref(), Some("image pull failed"));
    let t = decided.transition.expect("a transition");
    assert_eq!(
        t.cause,
        Cause::Event(TenantEvent::StepFailed {
            reason: "image pull failed".into()
        })
    );
    assert_eq!(t.error.as_deref(), Some("image pull failed"));
    assert_eq!(t.describe_cause(), "StepFailed");
    assert!(decided.keeps_lease, "the rollback's first step runs next");
}

#[test]
fn an_outcome_the_machine_refuses_is_an_error_not_a_write() {
    let mut record = upgrading_at(StepKind::Deploy);
    record.state = TenantState::Active {
        release: release("1.1.0"),
        failed_upgrade: None,
    };
    let lease = lease();
    let run = StepRun {
        step: StepKind::Deploy,
        started: at(10),
        finished: at(20),
        lease: &lease,
    };
    let refused = decide_outcome(
        &record,
        StepOutcome::done("x", TenantFacts::default()),
        &run,
        &Backoff::default(),
    );
    assert!(matches!(refused, Err(WorkerError::Machine { .. })), "{refused:?}");
}

#[test]
fn tenants_found_due_are_kept_briefly_for_the_next_free_slots() {
    let id = |s: &str| TenantId::parse(&format!("tenant-{s}")).unwrap();
    let mut known = KnownDue::new(Duration::from_secs(60));
    known.replace([id("a"), id("b"), id("c"), id("d")]);
    let in_flight: HashSet<TenantId> = [id("b")].into();
    assert_eq!(
        known.take(2, &in_flight),
        [id("a"), id("c")],
        "in-flight tenants are passed over"
    );
    assert_eq!(known.take(5, &in_flight), [id("d")]);
    assert!(known.take(1, &in_flight).is_empty());

    // A new poll replaces what was kept; what is too old is forgotten.
    known.replace([id("e")]);
    known.replace([id("f")]);
    assert_eq!(known.take(5, &HashSet::new()), [id("f")]);
    let mut stale = KnownDue::new(Duration::ZERO);
    stale.replace([id("g")]);
    std::thread::sleep(Duration::from_millis(2));
    assert!(
        stale.take(1, &HashSet::new()).is_empty(),
        "a stale entry was handed out"
    );
}
