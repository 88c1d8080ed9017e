use chrono::{Duration, TimeZone};

use super::*;
use crate::domain::{Environment, Group, Hostname, Region, ReleaseVersion, TenantSpec, Tier};
use crate::machine::{TenantEvent, TenantState};
use crate::record::Lease;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

fn tenant(id: &str, state: TenantState) -> TenantFacts {
    let spec = TenantSpec {
        id: TenantId::parse(id).unwrap(),
        region: Region::parse("us-east-1").unwrap(),
        environment: Environment::parse("prod").unwrap(),
        group: Group::default_group(),
        tier: Tier::Small,
        hostnames: vec![Hostname::parse(&format!("{id}.example.com")).unwrap()],
        pinned_release: None,
        maintenance: None,
        platform: None,
        pinned_platform: None,
    };
    let mut record = TenantRecord::new(spec, state, now());
    record.event_seq = 3;
    let in_work_index = record.state.step().is_some();
    TenantFacts {
        record,
        in_work_index,
        history: (1..=3).collect(),
    }
}

fn provisioning_state() -> TenantState {
    TenantState::initial()
        .apply(&TenantEvent::Provision {
            release: ReleaseVersion::parse("1.0.0").unwrap(),
        })
        .unwrap()
}

fn active(id: &str) -> TenantFacts {
    let mut state = provisioning_state();
    while state.step().is_some() {
        state = state.apply(&TenantEvent::StepSucceeded).unwrap();
    }
    assert_eq!(state.name(), "Active");
    tenant(id, state)
}

fn provisioning(id: &str) -> TenantFacts {
    tenant(id, provisioning_state())
}

fn invariants(snapshot: &FleetSnapshot) -> Vec<&'static str> {
    check(snapshot, now())
        .violations
        .iter()
        .map(|v| v.invariant)
        .collect()
}

#[test]
fn a_consistent_fleet_has_no_violations() {
    let snapshot = FleetSnapshot {
        tenants: vec![active("acme"), provisioning("globex")],
        rollouts: vec![],
    };
    let result = check(&snapshot, now());
    assert!(result.is_sound(), "{:?}", result.violations);
    assert_eq!(result.tenants, 2);
}

#[test]
fn a_tenant_with_a_step_but_no_work_entry_is_stranded() {
    let mut stranded = provisioning("acme");
    stranded.in_work_index = false;
    let snapshot = FleetSnapshot {
        tenants: vec![stranded],
        rollouts: vec![],
    };
    assert_eq!(invariants(&snapshot), ["missing_work_entry"]);
}

#[test]
fn a_settled_tenant_keeping_an_expired_lease_is_reported_but_a_live_one_is_not() {
    let mut expired = active("acme");
    expired.record.lease = Some(Lease {
        owner: "w1".into(),
        expires_at: now() - Duration::seconds(1),
        fence: 4,
    });
    let mut live = active("globex");
    live.record.lease = Some(Lease {
        owner: "w1".into(),
        expires_at: now() + Duration::seconds(10),
        fence: 2,
    });
    let snapshot = FleetSnapshot {
        tenants: vec![expired, live],
        rollouts: vec![],
    };
    let result = check(&snapshot, now());
    assert_eq!(result.violations.len(), 1);
    assert_eq!(result.violations[0].invariant, "expired_lease");
    assert_eq!(result.violations[0].subject, "acme");
}

#[test]
fn missing_and_extra_history_events_are_gaps() {
    let mut missing = active("acme");
    missing.history = [1, 3].into();
    let mut extra = active("globex");
    extra.history = [1, 2, 3, 4].into();
    let snapshot = FleetSnapshot {
        tenants: vec![missing, extra],
        rollouts: vec![],
    };
    assert_eq!(invariants(&snapshot), ["history_gap", "history_gap"]);
}

fn rollout(id: &str, phase: Phase, members: Vec<(&str, Outcome)>) -> RolloutFacts {
    RolloutFacts {
        id: RolloutId::parse(id).unwrap(),
        phase,
        members: members
            .into_iter()
            .map(|(t, o)| (TenantId::parse(t).unwrap(), o))
            .collect(),
    }
}

#[test]
fn started_members_of_a_running_rollout_must_be_held_by_it() {
    let mut held = active("acme");
    held.record.rollout = Some(RolloutId::parse("r-1").unwrap());
    let unheld = active("globex");
    let snapshot = FleetSnapshot {
        tenants: vec![held, unheld, active("initech")],
        rollouts: vec![rollout(
            "r-1",
            Phase::Running,
            vec![
                ("acme", Outcome::Succeeded),
                ("globex", Outcome::InFlight),
                ("initech", Outcome::Pending),
            ],
        )],
    };
    let result = check(&snapshot, now());
    assert_eq!(result.violations.len(), 1, "{:?}", result.violations);
    assert_eq!(result.violations[0].invariant, "rollout_hold");
    assert!(result.violations[0].detail.contains("globex"));
}

#[test]
fn a_tenant_held_by_a_running_rollout_must_be_its_member_but_finished_rollouts_are_ignored() {
    let mut stray = active("acme");
    stray.record.rollout = Some(RolloutId::parse("r-1").unwrap());
    let mut old = active("globex");
    old.record.rollout = Some(RolloutId::parse("r-0").unwrap());
    let snapshot = FleetSnapshot {
        tenants: vec![stray, old],
        rollouts: vec![
            rollout("r-1", Phase::Paused, vec![]),
            rollout("r-0", Phase::Completed, vec![("initech", Outcome::InFlight)]),
        ],
    };
    let result = check(&snapshot, now());
    assert_eq!(result.violations.len(), 1, "{:?}", result.violations);
    assert!(result.violations[0].detail.contains("tenant acme is held"));
}
