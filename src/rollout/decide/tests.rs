use std::collections::HashMap;

use chrono::{DateTime, TimeZone, Utc};

use super::*;
use crate::domain::rollout::{Approvals, Bake, FailureBudget, OnBreach, RollbackScope, WaveSize, Waves};
use crate::domain::{Group, RolloutSpec, Tier};
use crate::record::{AlarmSeen, RolloutMember};
use crate::rollout::{plan, TenantRevision, TenantSummaryForPlanning};

mod freeze;
mod revision;

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap() + chrono::Duration::seconds(seconds)
}

fn release(v: &str) -> ReleaseVersion {
    ReleaseVersion::parse(v).unwrap()
}

fn id(s: &str) -> TenantId {
    TenantId::parse(s).unwrap()
}

fn spec(budget: FailureBudget, scope: RollbackScope, bake: Bake, approvals: Approvals) -> RolloutSpec {
    let mut spec: RolloutSpec = serde_json::from_str(r#"{"release": "2.0.0"}"#).unwrap();
    spec.strategy.waves = Waves::new(vec![
        WaveSize::Count(std::num::NonZeroU32::MIN),
        WaveSize::Percent(crate::domain::rollout::Percent::FULL),
    ])
    .unwrap();
    spec.strategy.failure_budget = budget;
    spec.strategy.on_breach = OnBreach {
        rollback: scope,
        ..OnBreach::default()
    };
    spec.strategy.bake = bake;
    spec.strategy.approvals = approvals;
    spec
}

/// Two tenants in one region, no failure allowed, and a bake of `seconds` that needs
/// two check rounds 20 s apart; started.
fn baking_two(seconds: u64) -> (RolloutRecord, Vec<RolloutMember>) {
    let bake = Bake::new(
        std::time::Duration::from_secs(seconds),
        2,
        std::time::Duration::from_secs(20),
    )
    .unwrap();
    started(
        spec(
            FailureBudget::Count(0),
            RollbackScope::Failed,
            bake,
            no_approvals(),
        ),
        2,
    )
}

fn no_approvals() -> Approvals {
    Approvals {
        after_canary: false,
        between_regions: false,
    }
}

/// A rollout of tenants t0..t{n} in one region, started and written to members.
fn started(spec: RolloutSpec, n: usize) -> (RolloutRecord, Vec<RolloutMember>) {
    let fleet: Vec<TenantSummaryForPlanning> = (0..n)
        .map(|i| TenantSummaryForPlanning {
            id: id(&format!("ten{i}")),
            region: Region::parse("eu-west-1").unwrap(),
            group: Group::default_group(),
            tier: Tier::Small,
            current_release: Some(release("1.0.0")),
            pinned_release: None,
            maintenance: None,
            revision: TenantRevision::built_in(Tier::Small),
        })
        .collect();
    let plan = plan(&spec, &fleet, at(0));
    let mut record =
        RolloutRecord::from_plan(RolloutId::parse("r-test").unwrap(), spec, &plan, "tester", at(0));
    record.phase = Phase::Running;
    (record, RolloutMember::from_plan(&plan))
}

fn active(v: &str, failed: Option<&str>) -> Option<TenantView> {
    Some(TenantView {
        state: TenantState::Active {
            release: release(v),
            failed_upgrade: failed.map(release),
        },
        environment: Environment::parse("prod").unwrap(),
        held_by: None,
        pinned_release: None,
        maintenance: None,
        last_error: None,
        revision: TenantRevision::built_in(Tier::Small),
        last_outage_seconds: None,
    })
}

fn observed(now: DateTime<Utc>, tenants: &[(&str, Option<TenantView>)]) -> Observed {
    Observed {
        now,
        tenants: tenants
            .iter()
            .map(|(t, v)| (id(t), v.clone()))
            .collect::<HashMap<_, _>>(),
        bake_check: None,
        freezes: Vec::new(),
        relaying: Default::default(),
    }
}

/// Applies a decision's member changes as the controller would.
fn apply(members: &mut [RolloutMember], d: &Decision) {
    for changed in d.members.iter().chain(d.drives.iter().map(|d| &d.member)) {
        let m = members
            .iter_mut()
            .find(|m| m.tenant == changed.tenant && m.wave == changed.wave)
            .unwrap();
        *m = changed.clone();
    }
}

#[test]
fn the_canary_starts_alone_then_the_next_wave_after_it_succeeds() {
    let (record, mut members) = started(
        spec(
            FailureBudget::Count(0),
            RollbackScope::Failed,
            Bake::none(),
            no_approvals(),
        ),
        3,
    );
    let d = decide(
        &record,
        &members[..1],
        &observed(at(1), &[("ten0", active("1.0.0", None))]),
    );
    assert_eq!(d.drives.len(), 1);
    assert_eq!(
        d.drives[0].event,
        Some(TenantEvent::Upgrade {
            release: release("2.0.0")
        })
    );
    assert_eq!(d.record.wave().unwrap().status, WaveStatus::Deploying);
    apply(&mut members, &d);

    let d = decide(
        &d.record,
        &members[..1],
        &observed(at(2), &[("ten0", active("2.0.0", None))]),
    );
    assert!(d.drives.is_empty());
    assert_eq!(d.record.current_wave, 1, "no bake: the next wave follows at once");
    assert_eq!(d.members[0].outcome, Outcome::Succeeded);
}

/// The wave read in a pass is counted as the decision leaves it: at once when the
/// record is saved anyway (the wave starts or ends), otherwise only once the kept
/// tally is `TALLY_EVERY` old, so a pass that changes only members writes no record.
#[test]
fn a_waves_tally_follows_its_members_at_once_on_a_save_and_otherwise_within_its_bound() {
    let (record, mut members) = started(
        spec(
            FailureBudget::Count(5),
            RollbackScope::Failed,
            Bake::none(),
            no_approvals(),
        ),
        4,
    );
    let counts = |r: &RolloutRecord, wave: usize| {
        let t = r.waves[wave].tally.as_ref().unwrap();
        (t.pending, t.in_flight, t.succeeded, t.failed, t.skipped)
    };
    assert_eq!(
        (counts(&record, 0), counts(&record, 1)),
        ((1, 0, 0, 0, 0), (3, 0, 0, 0, 0))
    );

    // The canary's wave, then the second wave: each start is a save, counted at once.
    let d = decide(
        &record,
        &members[..1],
        &observed(at(1), &[("ten0", active("1.0.0", None))]),
    );
    assert_eq!(counts(&d.record, 0), (0, 1, 0, 0, 0));
    apply(&mut members, &d);
    let d = decide(
        &d.record,
        &members[..1],
        &observed(at(2), &[("ten0", active("2.0.0", None))]),
    );
    assert_eq!(d.record.current_wave, 1);
    assert_eq!(
        counts(&d.record, 0),
        (0, 0, 1, 0, 0),
        "the wave that ended, exact"
    );
    apply(&mut members, &d);
    let wave: Vec<RolloutMember> = members[1..].to_vec();
    let views = [
        ("ten1", active("1.0.0", None)),
        ("ten2", active("1.0.0", None)),
        ("ten3", active("1.0.0", None)),
    ];
    let d = decide(&d.record, &wave, &observed(at(3), &views));
    assert_eq!(counts(&d.record, 1), (0, 3, 0, 0, 0));
    let record = d.record.clone();
    apply(&mut members, &d);

    // One tenant fails within the budget (the two others still upgrade, unread): only
    // a member changes, so the record keeps its tally until that is old enough.
    let wave: Vec<RolloutMember> = members[1..].to_vec();
    let views = [("ten1", active("1.0.0", Some("2.0.0")))];
    let d = decide(&record, &wave, &observed(at(4), &views));
    assert!(
        (d.members.iter()).any(|m| m.tenant == id("ten1") && matches!(m.outcome, Outcome::Failed { .. })),
        "{:?}",
        d.members
    );
    assert_eq!(d.record, record, "nothing to save yet");
    let later = at(3) + crate::record::TALLY_EVERY;
    let d = decide(&record, &wave, &observed(later, &views));
    assert_eq!(counts(&d.record, 1), (0, 2, 0, 1, 0));
    let failures = &d.record.waves[1].tally.as_ref().unwrap().failures;
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].tenant, id("ten1"));
    assert!(!failures[0].reason.is_empty());
}

#[test]
fn a_failure_beyond_the_budget_halts_and_rolls_the_wave_back() {
    let (mut record, mut members) = started(
        spec(
            FailureBudget::Count(0),
            RollbackScope::Wave,
            Bake::none(),
            no_approvals(),
        ),
        4,
    );
    record.current_wave = 1;
    let wave: Vec<RolloutMember> = members.iter().filter(|m| m.wave == 1).cloned().collect();
    let views: Vec<(&str, Option<TenantView>)> = vec![
        ("ten1", active("1.0.0", None)),
        ("ten2", active("1.0.0", None)),
        ("ten3", active("1.0.0", None)),
    ];
    let d = decide(&record, &wave, &observed(at(1), &views));
    assert_eq!(d.drives.len(), 3, "no in-flight limit: all start");
    apply(&mut members, &d);
    let wave: Vec<RolloutMember> = members.iter().filter(|m| m.wave == 1).cloned().collect();
    let views = vec![
        ("ten1", active("1.0.0", Some("2.0.0"))),
        ("ten2", active("2.0.0", None)),
        ("ten3", active("2.0.0", None)),
    ];
    let d = decide(&d.record, &wave, &observed(at(2), &views));
    assert_eq!(d.record.phase, Phase::Halted);
    assert!(d.record.halt_reason.as_deref().unwrap().contains("ten1"));
    let back: Vec<&TenantId> = d.drives.iter().map(|d| &d.member.tenant).collect();
    assert_eq!(
        back,
        vec![&id("ten2"), &id("ten3")],
        "the succeeded tenants go back; t1 already is"
    );
    assert!(d.drives.iter().all(|d| d.event
        == Some(TenantEvent::Upgrade {
            release: release("1.0.0")
        })));
    assert!(!d.record.settled);
}

#[test]
fn an_approval_gate_holds_the_wave_until_approved() {
    let approvals = Approvals {
        after_canary: true,
        between_regions: false,
    };
    let (mut record, members) = started(
        spec(
            FailureBudget::Count(0),
            RollbackScope::Failed,
            Bake::none(),
            approvals,
        ),
        3,
    );
    record.current_wave = 1;
    let wave: Vec<RolloutMember> = members.iter().filter(|m| m.wave == 1).cloned().collect();
    let views = vec![("ten1", active("1.0.0", None)), ("ten2", active("1.0.0", None))];
    let d = decide(&record, &wave, &observed(at(1), &views));
    assert_eq!(d.record.wave().unwrap().status, WaveStatus::AwaitingApproval);
    assert!(d.drives.is_empty());
    let mut approved = d.record.clone();
    approved.wave_mut().unwrap().approved_by = Some("alice".into());
    let d = decide(&approved, &wave, &observed(at(2), &views));
    assert_eq!(d.drives.len(), 2);
}

#[test]
fn a_bake_needs_both_its_time_and_its_passing_checks() {
    let (record, mut members) = baking_two(60);
    let canary = &mut members[0];
    canary.outcome = Outcome::Succeeded;
    let d = decide(&record, &members[..1], &observed(at(0), &[]));
    assert_eq!(d.record.wave().unwrap().status, WaveStatus::Baking);
    assert!(!bake_check_due(&d.record, at(10)));
    assert!(bake_check_due(&d.record, at(20)));
    let mut checked = observed(at(61), &[]);
    checked.bake_check = Some(vec![]);
    let d1 = decide(&d.record, &members[..1], &checked);
    assert_eq!(
        d1.record.wave().unwrap().status,
        WaveStatus::Baking,
        "time is up but one check passed of two"
    );
    let d2 = decide(&d1.record, &members[..1], &checked);
    assert_eq!(d2.record.current_wave, 1);
}

/// The controller sleeps no longer than `next_due`: a bake's check rounds and its end
/// are due at their times, a wave whose predecessor has baked at once, and a wave
/// whose tenants are moving not at all (a settling worker wakes the controller).
#[test]
fn a_rollout_is_due_at_its_bake_checks_and_end_and_at_once_when_a_wave_is_to_start() {
    let (record, mut members) = baking_two(50);
    assert_eq!(
        next_due(&record, at(0)),
        Some(at(0)),
        "the first wave is to start"
    );
    let d = decide(
        &record,
        &members[..1],
        &observed(at(0), &[("ten0", active("1.0.0", None))]),
    );
    assert_eq!(d.record.wave().unwrap().status, WaveStatus::Deploying);
    assert_eq!(next_due(&d.record, at(0)), None, "its tenant is moving");

    members[0].outcome = Outcome::Succeeded;
    let baking = decide(&d.record, &members[..1], &observed(at(1), &[])).record;
    assert_eq!(baking.wave().unwrap().status, WaveStatus::Baking);
    assert_eq!(next_due(&baking, at(2)), Some(at(21)), "the first check round");
    let mut checked = observed(at(41), &[]);
    checked.bake_check = Some(vec![]);
    let twice = decide(
        &decide(&baking, &members[..1], &checked).record,
        &members[..1],
        &checked,
    )
    .record;
    assert_eq!(twice.wave().unwrap().bake.as_ref().unwrap().checks_passed, 2);
    assert_eq!(
        next_due(&twice, at(42)),
        Some(at(51)),
        "both rounds passed: the bake's end, before the next round"
    );
    let mut once = decide(&baking, &members[..1], &checked).record;
    assert_eq!(
        next_due(&once, at(55)),
        Some(at(61)),
        "past the end with a round short: the next round, not at once"
    );

    let baked = decide(&twice, &members[..1], &observed(at(51), &[])).record;
    assert_eq!(baked.current_wave, 1);
    assert_eq!(
        next_due(&baked, at(51)),
        Some(at(51)),
        "the next wave starts at once"
    );

    once.phase = Phase::Paused;
    assert_eq!(
        next_due(&once, at(0)),
        None,
        "a paused rollout waits for its operator"
    );
}

#[test]
fn an_unhealthy_tenant_during_the_bake_counts_against_the_budget() {
    let (record, mut members) = baking_two(60);
    members[0].outcome = Outcome::Succeeded;
    members[0].from_release = Some(release("1.0.0"));
    let d = decide(&record, &members[..1], &observed(at(0), &[]));
    let mut checked = observed(at(20), &[("ten0", active("2.0.0", None))]);
    let latency = AlarmSeen {
        name: "tenant-test-ten0/latency".into(),
        state: "ALARM".into(),
    };
    checked.bake_check = Some(vec![BakeCheck::new(
        id("ten0"),
        at(20),
        Some("failing alarms: tenant-test-ten0/latency ALARM".into()),
        vec![latency.clone()],
    )]);
    let d = decide(&d.record, &members[..1], &checked);
    assert_eq!(d.record.phase, Phase::Halted);
    let evidence = &d.record.waves[0].bake.as_ref().unwrap().checks;
    assert_eq!(
        evidence.len(),
        1,
        "the breached wave keeps the check that breached it"
    );
    assert_eq!(
        (evidence[0].healthy, &evidence[0].alarms),
        (false, &vec![latency])
    );
    assert_eq!(d.drives.len(), 1, "the unhealthy tenant is returned to 1.0.0");
    assert_eq!(
        d.drives[0].event,
        Some(TenantEvent::Upgrade {
            release: release("1.0.0")
        })
    );
}

#[test]
fn in_flight_limits_and_tenants_held_elsewhere() {
    let mut s = spec(
        FailureBudget::Count(0),
        RollbackScope::Failed,
        Bake::none(),
        no_approvals(),
    );
    s.strategy.max_in_flight_per_region = std::num::NonZeroU32::new(1);
    let (mut record, members) = started(s, 4);
    record.current_wave = 1;
    let wave: Vec<RolloutMember> = members.iter().filter(|m| m.wave == 1).cloned().collect();
    let mut held = active("1.0.0", None);
    held.as_mut().unwrap().held_by = Some(RolloutId::parse("r-other").unwrap());
    let views = vec![
        ("ten1", held),
        ("ten2", active("1.0.0", None)),
        ("ten3", active("1.0.0", None)),
    ];
    let d = decide(&record, &wave, &observed(at(1), &views));
    assert_eq!(d.drives.len(), 1, "one per region at a time");
    let skipped = d.members.iter().find(|m| m.tenant == id("ten1")).unwrap();
    assert!(matches!(&skipped.outcome, Outcome::Skipped { reason } if reason.contains("r-other")));
}

/// A pass offers the tenants it would start but for a free slot, in start order and
/// no more per region than the region's limit; a tenant being relayed, or whose
/// tenant is already in the middle of steps under a member read before its start was
/// written, takes a slot and is neither started nor offered again.
#[test]
fn a_pass_offers_the_tenants_ready_but_for_a_slot_and_counts_relayed_ones_in_flight() {
    let mut s = spec(
        FailureBudget::Count(0),
        RollbackScope::Failed,
        Bake::none(),
        no_approvals(),
    );
    s.strategy.max_in_flight_per_region = std::num::NonZeroU32::new(2);
    let (mut record, members) = started(s, 7);
    record.current_wave = 1;
    record.waves[1].status = WaveStatus::Deploying;
    let wave: Vec<RolloutMember> = members.iter().filter(|m| m.wave == 1).cloned().collect();
    let names: Vec<String> = wave.iter().map(|m| m.tenant.to_string()).collect();
    let mut windowed = active("1.0.0", None);
    windowed.as_mut().unwrap().maintenance = Some("Europe/Berlin Sun 12:00 4h".parse().unwrap());
    let mut views: Vec<(&str, Option<TenantView>)> = names
        .iter()
        .map(|n| (n.as_str(), active("1.0.0", None)))
        .collect();
    views[2].1 = windowed;

    // Two start, the next two (the windowed one passed over) are offered.
    let d = decide(&record, &wave, &observed(at(1), &views));
    let started: Vec<&TenantId> = d.drives.iter().map(|d| &d.member.tenant).collect();
    assert_eq!(started, [&wave[0].tenant, &wave[1].tenant]);
    let offered: Vec<&TenantId> = d.ready.iter().map(|d| &d.member.tenant).collect();
    assert_eq!(
        offered,
        [&wave[3].tenant, &wave[4].tenant],
        "a tenant with maintenance windows is never offered"
    );
    assert_eq!(
        d.in_flight,
        [wave[0].tenant.clone(), wave[1].tenant.clone()].into(),
        "the slots an offered tenant may take"
    );
    let ready = &d.ready[0];
    assert_eq!(ready.member.outcome, Outcome::InFlight);
    assert_eq!(ready.member.attempts, 1);
    assert_eq!(
        ready.event, d.drives[0].event,
        "offered as the drive that starts it"
    );
    assert!(
        (d.members.iter()).any(|m| m.tenant == wave[3].tenant && m.waiting_for.as_deref() == Some(FREE_SLOT)),
        "an offered tenant's member still says it waits for a slot"
    );

    // One slot of two taken by a member being relayed, one by a tenant whose start
    // landed after its member was read: nothing starts, and neither is offered.
    let mut seen = observed(at(2), &views);
    seen.relaying.insert(wave[0].tenant.clone());
    seen.tenants.insert(
        wave[1].tenant.clone(),
        Some(TenantView {
            state: (active("1.0.0", None).unwrap().state)
                .apply(&d.drives[1].event.clone().unwrap())
                .unwrap(),
            ..active("1.0.0", None).unwrap()
        }),
    );
    let d = decide(&record, &wave, &seen);
    assert!(d.drives.is_empty(), "{:?}", d.drives);
    assert!(
        !(d.members.iter()).any(|m| m.tenant == wave[0].tenant),
        "the relayed member is left as it is"
    );
    let offered: Vec<&TenantId> = d.ready.iter().map(|d| &d.member.tenant).collect();
    assert_eq!(offered, [&wave[3].tenant, &wave[4].tenant]);
    assert_eq!(
        d.in_flight,
        [wave[0].tenant.clone(), wave[1].tenant.clone()].into()
    );

    // A paused rollout offers nothing.
    record.phase = Phase::Paused;
    let d = decide(&record, &wave, &observed(at(3), &views));
    assert!(d.ready.is_empty());
}

#[test]
fn a_pass_reads_no_more_pending_tenants_than_it_could_start() {
    let mut s = spec(
        FailureBudget::Count(0),
        RollbackScope::Failed,
        Bake::none(),
        no_approvals(),
    );
    s.strategy.max_in_flight_per_wave = std::num::NonZeroU32::new(2);
    let (mut record, members) = started(s, 7);
    record.current_wave = 1;
    let mut wave: Vec<RolloutMember> = members.iter().filter(|m| m.wave == 1).cloned().collect();
    wave.sort_by(|a, b| a.tenant.cmp(&b.tenant));
    // ten1 is in flight, ten2 waits for its window, ten3.. wait for a slot or are new.
    wave[0].outcome = Outcome::InFlight;
    wave[1].waiting_for = Some("its maintenance window, next opening soon".into());
    wave[2].waiting_for = Some(FREE_SLOT.into());
    let wanted = members_to_observe(&record, &wave, at(1));
    let names: Vec<&str> = wanted.iter().map(TenantId::as_str).collect();
    assert_eq!(
        names,
        ["ten1", "ten2", "ten3", "ten4"],
        "the one in flight, the one waiting for its window, and two more: the limit's room"
    );

    // ten1 is still in flight (its upgrade is not judged without its tenant), so one
    // slot is left; the tenants not read are marked as waiting for one, never started.
    let views: Vec<(&str, Option<TenantView>)> =
        (names[1..].iter()).map(|t| (*t, active("1.0.0", None))).collect();
    let d = decide(&record, &wave, &observed(at(1), &views));
    let started: Vec<&str> = d.drives.iter().map(|d| d.member.tenant.as_str()).collect();
    assert_eq!(
        started,
        ["ten2"],
        "ten2's window is open in this view, so it starts first"
    );
    let waiting: Vec<(&str, Option<&str>)> = (d.members.iter())
        .map(|m| (m.tenant.as_str(), m.waiting_for.as_deref()))
        .collect();
    assert_eq!(
        waiting,
        [
            ("ten4", Some(FREE_SLOT)),
            ("ten5", Some(FREE_SLOT)),
            ("ten6", Some(FREE_SLOT))
        ],
        "ten3 was already marked; the rest, read or not, wait for a slot"
    );

    // Halted: every member is read, to roll back what moved.
    record.phase = Phase::Halted;
    assert_eq!(members_to_observe(&record, &wave, at(1)).len(), wave.len());
}

#[test]
fn a_tenant_starts_only_inside_its_maintenance_window() {
    let (mut record, members) = started(
        spec(
            FailureBudget::Count(0),
            RollbackScope::Failed,
            Bake::none(),
            no_approvals(),
        ),
        3,
    );
    record.current_wave = 1;
    let wave: Vec<RolloutMember> = members.iter().filter(|m| m.wave == 1).cloned().collect();
    // at(0) is Sunday 2026-11-22 12:00 UTC, 13:00 in Berlin.
    let window = |w: &str| {
        let mut v = active("1.0.0", None);
        v.as_mut().unwrap().maintenance = Some(w.parse().unwrap());
        v
    };
    let views = vec![
        ("ten1", window("Europe/Berlin Sun 02:00 4h")),
        ("ten2", window("Europe/Berlin Sun 12:00 4h")),
    ];
    let d = decide(&record, &wave, &observed(at(0), &views));
    let started: Vec<&TenantId> = d.drives.iter().map(|d| &d.member.tenant).collect();
    assert_eq!(started, vec![&id("ten2")], "only the tenant whose window is open");
    let waiting = d.members.iter().find(|m| m.tenant == id("ten1")).unwrap();
    assert_eq!(waiting.outcome, Outcome::Pending);
    let why = waiting.waiting_for.as_deref().unwrap();
    assert!(
        why.contains("maintenance window") && why.contains("2026-11-29 01:00 UTC"),
        "{why}"
    );
}

fn no_bake_spec() -> RolloutSpec {
    spec(
        FailureBudget::Count(0),
        RollbackScope::Failed,
        Bake::none(),
        no_approvals(),
    )
}

#[test]
fn a_rollout_whose_wave_index_is_past_its_waves_halts_and_says_what_to_do() {
    for phase in [Phase::Running, Phase::Paused, Phase::Halted] {
        let (mut record, _) = started(no_bake_spec(), 3);
        record.phase = phase;
        record.current_wave = 7;
        let d = decide(&record, &[], &observed(at(1), &[]));
        assert_eq!(d.record.phase, Phase::Halted, "from {phase}");
        assert!(d.record.settled, "nothing of it moves, so --wait returns");
        assert!(d.drives.is_empty() && d.members.is_empty());
        let reason = d.record.halt_reason.as_deref().unwrap();
        assert!(
            reason.contains("rollout r-test is at wave 7 but has only 2 waves")
                && reason.contains("tenantctl rollout abort r-test"),
            "{reason}"
        );
        assert_eq!(d.record.events.last().unwrap().what, format!("halted: {reason}"));

        let again = decide(&d.record, &[], &observed(at(2), &[]));
        assert_eq!(again.record, d.record, "halted once, not again every tick");
    }
}

#[test]
fn a_halted_rollout_with_no_current_wave_is_not_taken_for_completed() {
    let (mut record, _) = started(no_bake_spec(), 3);
    record.phase = Phase::Halted;
    record.current_wave = record.waves.len();
    let d = decide(&record, &[], &observed(at(1), &[]));
    assert_eq!(d.record.phase, Phase::Halted);
    assert!(d
        .record
        .halt_reason
        .as_deref()
        .unwrap()
        .contains("is at wave 2 but has only 2 waves"));
}

#[test]
fn a_running_rollout_just_past_its_last_wave_completes() {
    let (mut record, _) = started(no_bake_spec(), 3);
    record.current_wave = record.waves.len();
    let d = decide(&record, &[], &observed(at(1), &[]));
    assert_eq!(d.record.phase, Phase::Completed);
}

#[test]
fn a_wave_baking_without_bake_progress_bakes_again_from_now() {
    let (mut record, mut members) = baking_two(60);
    members[0].outcome = Outcome::Succeeded;
    record.wave_mut().unwrap().status = WaveStatus::Baking;
    record.wave_mut().unwrap().bake = None;
    let mut checked = observed(at(100), &[]);
    checked.bake_check = Some(vec![]);

    let d = decide(&record, &members[..1], &checked);

    let wave = d.record.wave().unwrap();
    assert_eq!(wave.status, WaveStatus::Baking);
    assert_eq!(
        wave.bake,
        Some(BakeProgress {
            since: at(100),
            checks_passed: 0,
            next_check_at: at(120),
            checks: Vec::new(),
        }),
        "the bake counts from now, and the round run without a record of it does not count"
    );
    assert!(d
        .record
        .events
        .iter()
        .any(|e| e.what == "wave 0 was baking with no bake progress recorded; its bake starts again"));
}

#[test]
fn bake_evidence_keeps_each_tenants_latest_check_and_stays_small() {
    let ok = |n: usize| AlarmSeen {
        name: format!("a{n:02}"),
        state: "OK".into(),
    };
    let mut alarms: Vec<AlarmSeen> = (0..15).map(ok).collect();
    alarms.push(AlarmSeen {
        name: "z-late".into(),
        state: "ALARM".into(),
    });
    let check = BakeCheck::new(id("ten0"), at(1), Some("failing".into()), alarms);
    assert_eq!(check.alarms.len(), crate::record::BAKE_ALARMS_KEPT);
    assert_eq!(
        check.alarms[0].name, "z-late",
        "the alarm that is not OK is listed first"
    );
    assert_eq!(check.alarms_not_listed, 6);

    let mut bake = BakeProgress {
        since: at(0),
        checks_passed: 0,
        next_check_at: at(1),
        checks: Vec::new(),
    };
    let healthy = |t: usize, s: i64| BakeCheck::new(id(&format!("ten{t:03}")), at(s), None, vec![ok(0)]);
    bake.record_checks((0..60).map(|t| healthy(t, 1)).collect());
    assert_eq!(bake.checks.len(), crate::record::BAKE_TENANTS_KEPT);
    bake.record_checks(vec![BakeCheck::new(
        id("ten059"),
        at(2),
        Some("503".into()),
        vec![],
    )]);
    assert_eq!(bake.checks.len(), crate::record::BAKE_TENANTS_KEPT);
    assert_eq!(
        (bake.checks[0].tenant.as_str(), bake.checks[0].healthy),
        ("ten059", false)
    );
    bake.record_checks(vec![healthy(0, 3)]);
    let ten0: Vec<_> = bake
        .checks
        .iter()
        .filter(|c| c.tenant.as_str() == "ten000")
        .collect();
    assert_eq!(ten0.len(), 1, "only the latest check of a tenant is kept");
    assert_eq!(ten0[0].at, at(3));
}

fn with_outage_budget(budget: &str) -> RolloutSpec {
    let mut spec = no_bake_spec();
    spec.strategy.outage_budget = Some(crate::domain::rollout::OutageBudget::parse(budget).unwrap());
    spec
}

#[test]
fn a_tenant_waits_for_a_window_that_holds_the_outage_budget_and_says_so() {
    let (mut record, members) = started(with_outage_budget("30m"), 4);
    record.current_wave = 1;
    let wave: Vec<RolloutMember> = members.iter().filter(|m| m.wave == 1).cloned().collect();
    // at(0) is Sunday 2026-11-22 12:00 UTC, 13:00 in Berlin.
    let window = |w: &str| {
        let mut v = active("1.0.0", None);
        v.as_mut().unwrap().maintenance = Some(w.parse().unwrap());
        v
    };
    let views = vec![
        ("ten1", window("Europe/Berlin Sun 12:00 4h")),
        ("ten2", window("Europe/Berlin Sun 12:00 1h10m")),
        ("ten3", window("Europe/Berlin Sun 12:00 20m, Mon 03:00 25m")),
    ];
    let d = decide(&record, &wave, &observed(at(0), &views));

    let started: Vec<&TenantId> = d.drives.iter().map(|d| &d.member.tenant).collect();
    assert_eq!(
        started,
        vec![&id("ten1")],
        "only the window that stays open 30m more"
    );
    let member = |t: &str| d.members.iter().find(|m| m.tenant == id(t)).unwrap();
    assert_eq!(member("ten2").outcome, Outcome::Pending);
    assert_eq!(
        member("ten2").waiting_for.as_deref(),
        Some(
            "a maintenance window that holds its outage budget of 30m: the open one closes in 10m, the next \
             that holds it opens 2026-11-29 11:00 UTC"
        )
    );
    let Outcome::Skipped { reason } = &member("ten3").outcome else {
        panic!("{:?}", member("ten3"));
    };
    assert!(
        reason.contains("stay open at most 25m, shorter than the outage budget 30m"),
        "{reason}"
    );

    // A week later ten2's window holds the budget from its opening.
    let d = decide(&d.record, &d.members, &observed(at(7 * 86_400 - 3600), &views));
    let started: Vec<&TenantId> = d.drives.iter().map(|d| &d.member.tenant).collect();
    assert!(started.contains(&&id("ten2")), "{started:?}");
}

#[test]
fn an_upgrade_whose_measured_outage_overran_the_budget_is_flagged() {
    let (record, mut members) = started(with_outage_budget("5m"), 3);
    let d = decide(
        &record,
        &members[..1],
        &observed(at(1), &[("ten0", active("1.0.0", None))]),
    );
    apply(&mut members, &d);
    let measured = |seconds: u64| {
        let mut view = active("2.0.0", None);
        view.as_mut().unwrap().last_outage_seconds = Some(seconds);
        view
    };

    let within = decide(
        &d.record,
        &members[..1],
        &observed(at(2), &[("ten0", measured(300))]),
    );
    assert_eq!(within.members[0].outcome, Outcome::Succeeded);
    assert_eq!(within.members[0].outage_overrun, None, "300s is within 5m");

    let over = decide(
        &d.record,
        &members[..1],
        &observed(at(2), &[("ten0", measured(301))]),
    );
    assert_eq!(over.members[0].outcome, Outcome::Succeeded);
    let overrun = over.members[0].outage_overrun.as_ref().unwrap();
    assert_eq!(
        (overrun.seconds, overrun.budget.to_string()),
        (301, "5m".to_owned())
    );
    assert!(
        over.record
            .events
            .iter()
            .any(|e| e.what == "ten0: outage of 301s overran the budget of 5m"),
        "{:#?}",
        over.record.events
    );

    let mut unbudgeted = d.record.clone();
    unbudgeted.spec.strategy.outage_budget = None;
    let d = decide(
        &unbudgeted,
        &members[..1],
        &observed(at(2), &[("ten0", measured(3600))]),
    );
    assert_eq!(d.members[0].outage_overrun, None, "no budget, no overrun");
}
