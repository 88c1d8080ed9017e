//! Scheduled starts and freeze windows: what holds a rollout's tenants, and when it
//! lets them go.

use super::*;
use crate::domain::{Environment, Freeze};

fn zero_budget_no_bake() -> RolloutSpec {
    spec(
        FailureBudget::Count(0),
        RollbackScope::Failed,
        Bake::none(),
        no_approvals(),
    )
}

fn freeze(id_: &str, region: Option<&str>, from: i64, until: i64) -> Freeze {
    let mut f = Freeze::new(
        Environment::parse("prod").unwrap(),
        region.map(|r| Region::parse(r).unwrap()),
        at(from),
        at(until),
        "year-end",
    )
    .unwrap();
    f.id = id_.into();
    f
}

#[test]
fn a_scheduled_rollout_starts_no_wave_before_its_time() {
    let (mut record, members) = started(zero_budget_no_bake(), 3);
    record.not_before = Some(at(100));
    let views = [("ten0", active("1.0.0", None))];

    let d = decide(&record, &members[..1], &observed(at(99), &views));
    assert!(d.drives.is_empty(), "nothing starts before the scheduled time");
    assert_eq!(d.record.wave().unwrap().status, WaveStatus::Waiting);

    let d = decide(&record, &members[..1], &observed(at(100), &views));
    assert_eq!(d.drives.len(), 1, "the canary starts at the scheduled time");
    assert_eq!(d.record.wave().unwrap().status, WaveStatus::Deploying);
}

#[test]
fn a_freeze_holds_the_tenants_of_its_environment_and_region_until_it_ends() {
    let (record, members) = started(zero_budget_no_bake(), 3);
    let region = members[0].region.to_string();
    let views = [("ten0", active("1.0.0", None))];
    let mut frozen = observed(at(10), &views);
    frozen.freezes = vec![freeze("f-1", Some(&region), 0, 60)];

    let d = decide(&record, &members[..1], &frozen);
    assert!(d.drives.is_empty(), "a frozen tenant does not start");
    let why = d.members[0].waiting_for.as_deref().unwrap();
    assert!(
        why.starts_with("frozen until 2026-11-22 12:01:00 UTC: year-end"),
        "{why}"
    );

    let mut elsewhere = observed(at(10), &views);
    elsewhere.freezes = vec![freeze("f-2", Some("ap-south-1"), 0, 60)];
    assert_eq!(
        decide(&record, &members[..1], &elsewhere).drives.len(),
        1,
        "another region's freeze"
    );

    let mut after = observed(at(60), &views);
    after.freezes = frozen.freezes.clone();
    assert_eq!(
        decide(&record, &members[..1], &after).drives.len(),
        1,
        "the freeze ended"
    );
}

#[test]
fn an_overridden_freeze_holds_nothing_of_that_rollout() {
    let (mut record, members) = started(zero_budget_no_bake(), 3);
    record.overridden_freezes = vec!["f-1".into()];
    let mut frozen = observed(at(10), &[("ten0", active("1.0.0", None))]);
    frozen.freezes = vec![freeze("f-1", None, 0, 60)];
    assert_eq!(decide(&record, &members[..1], &frozen).drives.len(), 1);
}
