//! Rollouts whose target is a platform version, a spec change or a reconcile: which
//! event each member gets, when it is there already, and how a rollback returns the
//! whole previous revision.

use super::*;
use crate::domain::PlatformVersion;

fn platform(v: &str) -> PlatformVersion {
    PlatformVersion::parse(v).unwrap()
}

/// A spec with the target `target` (JSON fields) and the tests' usual strategy.
fn target_spec(target: &str, scope: RollbackScope) -> RolloutSpec {
    let mut parsed: RolloutSpec = serde_json::from_str(target).unwrap();
    parsed.strategy = spec(FailureBudget::Count(0), scope, Bake::none(), no_approvals()).strategy;
    parsed
}

/// A tenant Active on `v` whose spec holds `platform` and `tier`, with `applied` as
/// the platform of its stack and chart.
fn tenant(
    v: &str,
    failed: Option<&str>,
    desired: Option<&str>,
    tier: Tier,
    applied: Option<&str>,
) -> Option<TenantView> {
    let mut view = active(v, failed);
    view.as_mut().unwrap().revision = TenantRevision {
        platform: desired.map(platform),
        pinned_platform: None,
        tier,
        stack_platform: applied.map(platform),
        chart_platform: applied.map(platform),
    };
    view
}

fn built_in() -> SpecRevision {
    SpecRevision {
        platform: None,
        tier: Tier::Small,
    }
}

#[test]
fn a_platform_rollout_reconciles_on_the_release_each_tenant_runs() {
    let (record, members) = started(
        target_spec(r#"{"platform": "2026.12.1"}"#, RollbackScope::Failed),
        2,
    );
    let d = decide(
        &record,
        &members[..1],
        &observed(at(1), &[("ten0", tenant("1.0.0", None, None, Tier::Small, None))]),
    );
    assert_eq!(d.drives.len(), 1);
    let drive = &d.drives[0];
    assert_eq!(
        drive.event,
        Some(TenantEvent::Reconcile),
        "no release named: the one it runs"
    );
    assert_eq!(
        drive.spec,
        Some(SpecRevision {
            platform: Some(platform("2026.12.1")),
            tier: Tier::Small,
        })
    );
    assert_eq!(drive.member.from_release, Some(release("1.0.0")));
    assert_eq!(drive.member.from, Some(built_in()), "what a rollback returns to");
}

#[test]
fn a_tenant_pinned_to_another_platform_version_is_skipped_by_a_platform_rollout() {
    let (record, members) = started(
        target_spec(r#"{"platform": "2026.12.1"}"#, RollbackScope::Failed),
        2,
    );
    let mut pinned = tenant("1.0.0", None, Some("2026.11.0"), Tier::Small, Some("2026.11.0"));
    pinned.as_mut().unwrap().revision.pinned_platform = Some(platform("2026.11.0"));
    let d = decide(&record, &members[..1], &observed(at(1), &[("ten0", pinned)]));
    assert!(d.drives.is_empty(), "{:?}", d.drives);
    let skipped = d.members.iter().find(|m| m.tenant.as_str() == "ten0").unwrap();
    assert!(
        matches!(&skipped.outcome, crate::record::Outcome::Skipped { reason } if reason.contains("pinned to platform version 2026.11.0")),
        "{:?}",
        skipped.outcome
    );
}

#[test]
fn a_release_and_a_change_together_upgrade_with_the_new_spec() {
    let (record, members) = started(
        target_spec(
            r#"{"release": "2.0.0", "change": {"tier": "large"}}"#,
            RollbackScope::Failed,
        ),
        2,
    );
    let d = decide(
        &record,
        &members[..1],
        &observed(at(1), &[("ten0", tenant("1.0.0", None, None, Tier::Small, None))]),
    );
    assert_eq!(
        d.drives[0].event,
        Some(TenantEvent::Upgrade {
            release: release("2.0.0")
        })
    );
    assert_eq!(
        d.drives[0].spec,
        Some(SpecRevision {
            platform: None,
            tier: Tier::Large,
        })
    );
}

#[test]
fn a_tenant_already_on_the_target_succeeds_unless_the_rollout_reconciles() {
    let there = tenant("1.0.0", None, Some("2026.12.1"), Tier::Small, Some("2026.12.1"));
    let (record, members) = started(
        target_spec(r#"{"platform": "2026.12.1"}"#, RollbackScope::Failed),
        2,
    );
    let d = decide(
        &record,
        &members[..1],
        &observed(at(1), &[("ten0", there.clone())]),
    );
    assert!(d.drives.is_empty());
    assert_eq!(d.members[0].outcome, Outcome::Succeeded);

    let not_applied = tenant("1.0.0", None, Some("2026.12.1"), Tier::Small, Some("2026.11.1"));
    let d = decide(&record, &members[..1], &observed(at(1), &[("ten0", not_applied)]));
    assert_eq!(
        d.drives[0].event,
        Some(TenantEvent::Reconcile),
        "its spec names the version but the stack and chart run another"
    );

    let (record, members) = started(
        target_spec(
            r#"{"platform": "2026.12.1", "reconcile": true}"#,
            RollbackScope::Failed,
        ),
        2,
    );
    let d = decide(&record, &members[..1], &observed(at(1), &[("ten0", there)]));
    assert_eq!(
        d.drives[0].event,
        Some(TenantEvent::Reconcile),
        "reconcile: applied again"
    );
}

#[test]
fn a_failed_reconcile_gives_the_tenant_its_previous_desired_revision_back() {
    let (record, mut members) = started(
        target_spec(r#"{"platform": "2026.12.1"}"#, RollbackScope::Failed),
        2,
    );
    let d = decide(
        &record,
        &members[..1],
        &observed(at(1), &[("ten0", tenant("1.0.0", None, None, Tier::Small, None))]),
    );
    apply(&mut members, &d);

    // Its machine rolled the stack and chart back; its spec still names the target.
    let rolled_back = tenant("1.0.0", Some("1.0.0"), Some("2026.12.1"), Tier::Small, None);
    let d = decide(
        &d.record,
        &members[..1],
        &observed(at(2), &[("ten0", rolled_back)]),
    );

    assert_eq!(d.drives.len(), 1);
    assert!(
        matches!(&d.drives[0].member.outcome, Outcome::Failed { reason } if reason.contains("rolled back"))
    );
    assert_eq!(d.drives[0].event, None, "the machine already rolled back");
    assert_eq!(d.drives[0].spec, Some(built_in()));
    assert_eq!(d.record.phase, Phase::Halted, "a budget of 0 is breached");
}

#[test]
fn a_wave_rollback_returns_each_tenant_to_its_whole_previous_revision() {
    let (mut record, mut members) = started(
        target_spec(r#"{"change": {"tier": "large"}}"#, RollbackScope::Wave),
        4,
    );
    record.current_wave = 1;
    let wave: Vec<RolloutMember> = members.iter().filter(|m| m.wave == 1).cloned().collect();
    let small = |t: &'static str| (t, tenant("1.0.0", None, None, Tier::Small, None));
    let d = decide(
        &record,
        &wave,
        &observed(at(1), &[small("ten1"), small("ten2"), small("ten3")]),
    );
    assert!(d.drives.iter().all(|d| d.event == Some(TenantEvent::Reconcile)));
    apply(&mut members, &d);

    let wave: Vec<RolloutMember> = members.iter().filter(|m| m.wave == 1).cloned().collect();
    let views = [
        ("ten1", tenant("1.0.0", Some("1.0.0"), None, Tier::Large, None)),
        ("ten2", tenant("1.0.0", None, None, Tier::Large, None)),
        ("ten3", tenant("1.0.0", None, None, Tier::Large, None)),
    ];
    let d = decide(&d.record, &wave, &observed(at(2), &views));

    assert_eq!(d.record.phase, Phase::Halted);
    let by_tenant = |t: &str| d.drives.iter().find(|d| d.member.tenant == id(t)).unwrap();
    assert_eq!(
        by_tenant("ten1").event,
        None,
        "failed and rolled back: its spec only"
    );
    for t in ["ten2", "ten3"] {
        let drive = by_tenant(t);
        assert_eq!(
            drive.event,
            Some(TenantEvent::Reconcile),
            "{t}: same release, applied again"
        );
        assert_eq!(drive.spec, Some(built_in()), "{t}: its previous tier");
        assert_eq!(drive.member.rollback, Some(RollbackStatus::InProgress));
    }
    apply(&mut members, &d);

    let wave: Vec<RolloutMember> = members.iter().filter(|m| m.wave == 1).cloned().collect();
    let back = |t: &'static str| (t, tenant("1.0.0", None, None, Tier::Small, None));
    let d = decide(
        &d.record,
        &wave,
        &observed(at(3), &[back("ten1"), back("ten2"), back("ten3")]),
    );
    assert!(d.drives.is_empty());
    assert!(d.record.settled, "{:?}", d.record.events.last());
}

#[test]
fn a_wave_rollback_of_a_new_release_and_platform_upgrades_back_with_the_old_platform() {
    let (mut record, mut members) = started(
        target_spec(
            r#"{"release": "2.0.0", "platform": "2026.12.1"}"#,
            RollbackScope::Wave,
        ),
        2,
    );
    members[0].outcome = Outcome::Succeeded;
    members[0].from_release = Some(release("1.0.0"));
    members[0].from = Some(built_in());
    record.phase = Phase::Halted;
    let on_new = tenant("2.0.0", None, Some("2026.12.1"), Tier::Small, Some("2026.12.1"));
    let d = decide(&record, &members[..1], &observed(at(1), &[("ten0", on_new)]));
    assert_eq!(
        d.drives[0].event,
        Some(TenantEvent::Upgrade {
            release: release("1.0.0")
        })
    );
    assert_eq!(d.drives[0].spec, Some(built_in()));
}
