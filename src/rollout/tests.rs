//! Worked examples of plans; the general rules are checked in `properties.rs`.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::*;
use crate::domain::rollout::{Bake, Plan, SkipReason, Wave, WaveKind};
use crate::domain::{Group, Region, ReleaseVersion, RolloutSpec, TenantId, Tier};

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn v(s: &str) -> ReleaseVersion {
    ReleaseVersion::parse(s).unwrap()
}

fn tenant(id: &str, region: &str, group: &str) -> TenantSummaryForPlanning {
    TenantSummaryForPlanning {
        id: TenantId::parse(id).unwrap(),
        region: Region::parse(region).unwrap(),
        group: Group::parse(group).unwrap(),
        tier: Tier::Small,
        current_release: Some(v("1.4.1")),
        pinned_release: None,
        maintenance: None,
        revision: TenantRevision::built_in(Tier::Small),
    }
}

/// `count` tenants `<prefix>-00`, `<prefix>-01`, … in `region`, group `default`.
fn region_of(prefix: &str, region: &str, count: usize) -> Vec<TenantSummaryForPlanning> {
    (0..count)
        .map(|i| tenant(&format!("{prefix}-{i:02}"), region, "default"))
        .collect()
}

fn spec(strategy_json: &str) -> RolloutSpec {
    serde_json::from_str(&format!(
        r#"{{"release": "1.4.2", "strategy": {{ {strategy_json} }} }}"#
    ))
    .unwrap()
}

fn ids(wave: &Wave) -> Vec<&str> {
    wave.tenants.iter().map(|t| t.id.as_str()).collect()
}

const NOW: &str = "2026-11-23T08:00:00Z";

#[test]
fn each_region_gets_a_canary_then_cumulative_shares_in_the_given_order() {
    let mut fleet = region_of("us", "us-east-1", 4);
    fleet.extend(region_of("eu", "eu-west-1", 10));
    let plan = plan(&spec(r#""region_order": ["eu-west-1"]"#), &fleet, utc(NOW));

    let shape: Vec<(&str, WaveKind, String, usize, bool)> = (plan.waves.iter())
        .map(|w| {
            let region = w.regions[0].as_str();
            (
                region,
                w.kind,
                w.target.to_string(),
                w.tenants.len(),
                w.approval_before,
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            ("eu-west-1", WaveKind::Canary, "1".into(), 1, false),
            // 10% of 10 is 1, already reached by the canary: no wave.
            ("eu-west-1", WaveKind::Percent, "50%".into(), 4, true),
            ("eu-west-1", WaveKind::Percent, "100%".into(), 5, false),
            ("us-east-1", WaveKind::Canary, "1".into(), 1, false),
            ("us-east-1", WaveKind::Percent, "50%".into(), 1, true),
            ("us-east-1", WaveKind::Percent, "100%".into(), 2, false),
        ]
    );
    assert_eq!(
        ids(&plan.waves[0]),
        ["eu-00"],
        "the canary is the first tenant by id"
    );
    assert_eq!(
        plan.region_order,
        [
            Region::parse("eu-west-1").unwrap(),
            Region::parse("us-east-1").unwrap()
        ]
    );
    assert_eq!(
        (plan.waves.iter().map(|w| w.index)).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 5]
    );
    assert_eq!(plan.tenant_count(), 14);
}

#[test]
fn left_out_tenants_are_reported_with_their_reason() {
    let mut fleet = region_of("acme", "us-east-1", 3);
    fleet[0].pinned_release = Some(v("1.3.0"));
    fleet[1].current_release = Some(v("1.4.2"));
    fleet.push(tenant("excluded", "us-east-1", "default"));
    fleet.push(tenant("elsewhere", "eu-west-1", "default"));
    fleet.push(TenantSummaryForPlanning {
        current_release: None,
        ..tenant("fresh", "us-east-1", "default")
    });
    let mut spec = spec("");
    spec.selector.regions.insert(Region::parse("us-east-1").unwrap());
    spec.selector.exclude.insert(TenantId::parse("excluded").unwrap());

    let plan = plan(&spec, &fleet, utc(NOW));

    let skipped: Vec<(&str, String)> = (plan.skipped.iter())
        .map(|s| (s.id.as_str(), s.reason.to_string()))
        .collect();
    assert_eq!(
        skipped,
        [
            ("acme-00", "pinned to 1.3.0".to_owned()),
            ("acme-01", "already on the release".to_owned()),
            ("excluded", "excluded by the rollout's selector".to_owned()),
            (
                "fresh",
                "runs no release (not provisioned, or deleted)".to_owned()
            ),
        ]
    );
    assert_eq!(plan.not_selected, 1, "the eu-west-1 tenant");
    assert_eq!(plan.tenant_count(), 1);
}

#[test]
fn tenants_named_in_the_selector_are_accounted_for() {
    let fleet = vec![
        tenant("acme", "us-east-1", "default"),
        tenant("globex", "eu-west-1", "default"),
    ];
    let mut spec = spec("");
    spec.selector.regions.insert(Region::parse("us-east-1").unwrap());
    for id in ["acme", "globex", "ghost"] {
        spec.selector.tenants.insert(TenantId::parse(id).unwrap());
    }
    let plan = plan(&spec, &fleet, utc(NOW));
    let reasons: Vec<_> = plan
        .skipped
        .iter()
        .map(|s| (s.id.as_str(), s.reason.clone()))
        .collect();
    assert_eq!(
        reasons,
        [
            ("ghost", SkipReason::NotInFleet),
            ("globex", SkipReason::OutsideSelector)
        ]
    );
    assert_eq!(ids(&plan.waves[0]), ["acme"]);
}

#[test]
fn listed_groups_go_first_so_the_canary_comes_from_the_canary_ring() {
    let fleet = vec![
        tenant("aaa", "us-east-1", "default"),
        tenant("bbb", "us-east-1", "ring-1"),
        tenant("zzz", "us-east-1", "canary"),
        tenant("ccc", "us-east-1", "beta"),
    ];
    let plan = plan(
        &spec(r#""group_order": ["canary", "ring-1"], "waves": ["1", "100%"]"#),
        &fleet,
        utc(NOW),
    );
    assert_eq!(ids(&plan.waves[0]), ["zzz"]);
    assert_eq!(
        ids(&plan.waves[1]),
        ["bbb", "ccc", "aaa"],
        "then ring-1, then other groups by name"
    );
}

#[test]
fn parallel_regions_move_in_lockstep_batches() {
    let mut fleet = region_of("aa", "ap-south-1", 2);
    fleet.extend(region_of("eu", "eu-west-1", 2));
    fleet.extend(region_of("us", "us-east-1", 2));
    let strategy = r#""max_parallel_regions": 2, "waves": ["1", "100%"],
        "approvals": {"after_canary": false, "between_regions": true}"#;
    let plan = plan(&spec(strategy), &fleet, utc(NOW));
    let shape: Vec<(Vec<&str>, usize, bool)> = (plan.waves.iter())
        .map(|w| {
            (
                w.regions.iter().map(Region::as_str).collect(),
                w.tenants.len(),
                w.approval_before,
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            (vec!["ap-south-1", "eu-west-1"], 2, false),
            (vec!["ap-south-1", "eu-west-1"], 2, false),
            (vec!["us-east-1"], 1, true),
            (vec!["us-east-1"], 1, false),
        ]
    );
}

#[test]
fn the_timeline_counts_in_flight_limits_and_bake() {
    let mut spec = spec(r#""waves": ["1", "100%"], "max_in_flight_per_region": 2, "failure_budget": "40%""#);
    spec.strategy.bake = Bake::new(Duration::from_secs(30 * 60), 3, Duration::from_secs(10 * 60)).unwrap();
    let options = PlanOptions {
        tenant_duration: Duration::from_secs(10 * 60),
    };
    let now = utc(NOW);
    let plan = plan_with(&spec, &region_of("us", "us-east-1", 6), now, &options);
    let minutes = |t: DateTime<Utc>| (t - now).num_minutes();

    let canary = &plan.waves[0];
    assert_eq!(
        (minutes(canary.estimated_finish), minutes(canary.bake_until)),
        (10, 40)
    );
    let rest = &plan.waves[1];
    assert_eq!(minutes(rest.earliest_start), 40, "after the canary's bake");
    let starts: Vec<i64> = rest.tenants.iter().map(|t| minutes(t.earliest_start)).collect();
    assert_eq!(starts, [40, 40, 50, 50, 60], "two at a time");
    assert_eq!(minutes(rest.estimated_finish), 70);
    assert_eq!(minutes(plan.estimated_end), 100);
    assert_eq!((canary.allowed_failures, rest.allowed_failures), (0, 2));
}

#[test]
fn a_maintenance_window_delays_a_tenants_start() {
    let mut fleet = region_of("us", "us-east-1", 2);
    fleet[1].maintenance = Some("America/New_York Sat 22:00 4h".parse().unwrap());
    let plan = plan(&spec(r#""waves": ["100%"]"#), &fleet, utc(NOW));
    let starts: Vec<_> = plan.waves[0].tenants.iter().map(|t| t.earliest_start).collect();
    assert_eq!(
        starts,
        [utc(NOW), utc("2026-11-29T03:00:00Z")],
        "Saturday 22:00 EST"
    );
    assert_eq!(plan.waves[0].estimated_finish, utc("2026-11-29T03:30:00Z"));
}

#[test]
fn room_goes_first_to_the_tenant_whose_window_closes_first() {
    let mut fleet = region_of("us", "us-east-1", 3);
    // Monday 08:00 to 08:15 UTC: open now, and not for long.
    fleet[1].maintenance = Some("UTC Mon 08:00 15m".parse().unwrap());
    let plan = plan(
        &spec(r#""waves": ["100%"], "max_in_flight_per_wave": 1"#),
        &fleet,
        utc(NOW),
    );
    let starts: Vec<_> = plan.waves[0].tenants.iter().map(|t| t.earliest_start).collect();
    assert_eq!(
        starts,
        [utc("2026-11-23T08:30:00Z"), utc(NOW), utc("2026-11-23T09:00:00Z")]
    );
}

#[test]
fn a_tenant_whose_window_closes_while_it_waits_for_room_waits_for_its_next_window() {
    let mut fleet = region_of("us", "us-east-1", 3);
    // Opens at 08:05, closes at 08:20, while us-00 holds the only room until 08:30.
    fleet[1].maintenance = Some("UTC Mon 08:05 15m".parse().unwrap());
    let plan = plan(
        &spec(r#""waves": ["100%"], "max_in_flight_per_wave": 1"#),
        &fleet,
        utc(NOW),
    );
    let starts: Vec<_> = plan.waves[0].tenants.iter().map(|t| t.earliest_start).collect();
    assert_eq!(
        starts,
        [utc(NOW), utc("2026-11-30T08:05:00Z"), utc("2026-11-23T08:30:00Z")],
        "us-02 takes the room us-01 cannot use"
    );
}

#[test]
fn an_empty_selection_gives_an_empty_plan() {
    let plan = plan(&spec(""), &[], utc(NOW));
    assert!(plan.waves.is_empty() && plan.skipped.is_empty());
    assert_eq!(plan.estimated_end, utc(NOW));
}

#[test]
fn a_dry_run_plan_reads_as_json() {
    let mut fleet = region_of("us", "us-east-1", 2);
    fleet[0].pinned_release = Some(v("1.3.0"));
    let plan = plan(&spec(""), &fleet, utc(NOW));
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(json["assumed_tenant_duration"], "30m");
    assert_eq!(json["skipped"][0]["reason"], "pinned");
    assert_eq!(json["skipped"][0]["release"], "1.3.0");
    assert_eq!(json["waves"][0]["kind"], "canary");
    assert_eq!(json["waves"][0]["target"], "1");
    assert_eq!(json["waves"][0]["tenants"][0]["id"], "us-01");
    assert_eq!(serde_json::from_value::<Plan>(json).unwrap(), plan);
}

#[test]
fn a_tenant_whose_open_window_closes_before_its_outage_budget_runs_out_is_deferred_to_a_window_that_holds_it()
{
    let mut fleet = region_of("us", "us-east-1", 2);
    // Open now (Monday 08:00) until 08:04, and Tuesday 02:00 to 06:00.
    fleet[1].maintenance = Some("UTC Mon 07:00 1h4m, Tue 02:00 4h".parse().unwrap());

    let unbudgeted = plan(&spec(r#""waves": ["100%"]"#), &fleet, utc(NOW));
    assert_eq!(unbudgeted.waves[0].tenants[1].earliest_start, utc(NOW));
    assert_eq!(unbudgeted.waves[0].tenants[1].deferred, None);

    let plan = plan(
        &spec(r#""waves": ["100%"], "outage_budget": "10m""#),
        &fleet,
        utc(NOW),
    );
    let (free, windowed) = (&plan.waves[0].tenants[0], &plan.waves[0].tenants[1]);
    assert_eq!(
        (free.earliest_start, &free.deferred),
        (utc(NOW), &None),
        "no windows: unaffected"
    );
    assert_eq!(windowed.earliest_start, utc("2026-11-24T02:00:00Z"));
    assert_eq!(
        windowed.deferred.as_ref().unwrap().to_string(),
        "window closes in 4m, budget 10m; next window 2026-11-24 02:00 UTC"
    );
    assert_eq!(plan.waves[0].estimated_finish, utc("2026-11-24T02:30:00Z"));
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(
        json["waves"][0]["tenants"][1]["deferred"],
        serde_json::json!({"window_closes_in": "4m", "budget": "10m", "next_window": "2026-11-24T02:00:00Z"})
    );
    assert_eq!(serde_json::from_value::<Plan>(json).unwrap(), plan);
}

#[test]
fn a_tenant_whose_windows_are_all_shorter_than_the_outage_budget_is_skipped_saying_what_to_change() {
    let mut fleet = region_of("us", "us-east-1", 2);
    fleet[1].maintenance = Some("UTC Sat 22:00 20m, Sun 03:00 25m".parse().unwrap());

    let plan_with_budget = |budget: &str| {
        plan(
            &spec(&format!(r#""waves": ["100%"], "outage_budget": "{budget}""#)),
            &fleet,
            utc(NOW),
        )
    };
    let plan = plan_with_budget("30m");
    assert_eq!(plan.tenant_count(), 1);
    assert_eq!(plan.skipped.len(), 1);
    assert_eq!(plan.skipped[0].id.as_str(), "us-01");
    assert_eq!(
        plan.skipped[0].reason,
        SkipReason::WindowShorterThanOutageBudget {
            longest_window: Duration::from_secs(25 * 60),
            budget: crate::domain::rollout::OutageBudget::parse("30m").unwrap(),
        }
    );
    let why = plan.skipped[0].reason.to_string();
    assert!(
        why.contains("stay open at most 25m, shorter than the outage budget 30m")
            && why.contains("widen a window")
            && why.contains("raise the strategy's outage_budget"),
        "{why}"
    );
    let json = serde_json::to_value(&plan.skipped[0]).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"id": "us-01", "reason": "window_shorter_than_outage_budget", "longest_window": "25m", "budget": "30m"})
    );

    let fits = plan_with_budget("25m");
    assert_eq!((fits.tenant_count(), fits.skipped.len()), (2, 0));
    assert_eq!(
        fits.waves[0].tenants[1].earliest_start,
        utc("2026-11-29T03:00:00Z"),
        "Saturday's 20m window does not hold 25m"
    );
}

#[test]
fn a_rate_limited_region_starts_its_upgrades_no_closer_than_its_spacing() {
    let spec = spec(r#""waves": ["100%"], "max_in_flight_per_region": 10"#);
    let options = PlanOptions {
        tenant_duration: Duration::from_secs(10 * 60),
    };
    let now = utc(NOW);
    let fleet = region_of("us", "us-east-1", 6);
    let minutes = |t: DateTime<Utc>| (t - now).num_minutes();

    let unlimited = plan_with(&spec, &fleet, now, &options);
    let starts: Vec<i64> = (unlimited.waves[0].tenants.iter())
        .map(|t| minutes(t.earliest_start))
        .collect();
    assert_eq!(starts, [0, 0, 0, 0, 0, 0]);
    assert_eq!(minutes(unlimited.waves[0].estimated_finish), 10);

    let spacing = crate::rollout::StartSpacing::from([(
        Region::parse("us-east-1").unwrap(),
        Duration::from_secs(5 * 60),
    )]);
    let limited = crate::rollout::plan_with_limits(&spec, &fleet, now, &options, &spacing);
    let starts: Vec<i64> = (limited.waves[0].tenants.iter())
        .map(|t| minutes(t.earliest_start))
        .collect();
    assert_eq!(starts, [0, 5, 10, 15, 20, 25], "one start per spacing");
    assert_eq!(minutes(limited.waves[0].estimated_finish), 35);

    let elsewhere = crate::rollout::StartSpacing::from([(
        Region::parse("eu-west-1").unwrap(),
        Duration::from_secs(5 * 60),
    )]);
    let other = crate::rollout::plan_with_limits(&spec, &fleet, now, &options, &elsewhere);
    assert_eq!(
        minutes(other.waves[0].estimated_finish),
        10,
        "another region's limit does not bind"
    );
}
