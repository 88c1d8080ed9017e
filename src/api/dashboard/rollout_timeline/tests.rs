use chrono::TimeZone;

use super::*;
use crate::domain::rollout::{Plan, PlannedTenant, Wave, WaveKind, WaveSize};
use crate::domain::{Region, RolloutId, RolloutSpec, TenantId};
use crate::record::BakeProgress;

pub(crate) fn t(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap() + TimeDelta::minutes(minutes)
}

pub(crate) fn member(wave: usize, id: &str, outcome: Outcome, earliest: i64) -> RolloutMember {
    let tenant = TenantId::parse(id).unwrap();
    let region = Region::parse("eu-west-1").unwrap();
    RolloutMember {
        outcome,
        ..RolloutMember::planned(wave, tenant, region, t(earliest))
    }
}

pub(crate) fn ran(mut m: RolloutMember, from: i64, to: Option<i64>) -> RolloutMember {
    m.started_at = Some(t(from));
    m.finished_at = to.map(t);
    m
}

/// Two waves in eu-west-1, the second behind an approval, a 15-minute bake.
pub(crate) fn record() -> RolloutRecord {
    let spec: RolloutSpec = serde_json::from_value(serde_json::json!({
        "release": "1.1.0",
        "strategy": {"waves": ["1", "100%"], "bake_time": "15m"}
    }))
    .unwrap();
    let wave = |index: usize| Wave {
        index,
        kind: if index == 0 {
            WaveKind::Canary
        } else {
            WaveKind::Percent
        },
        target: WaveSize::parse(if index == 0 { "1" } else { "100%" }).unwrap(),
        stage: index,
        regions: vec![Region::parse("eu-west-1").unwrap()],
        tenants: Vec::<PlannedTenant>::new(),
        approval_before: index > 0,
        allowed_failures: 0,
        earliest_start: t(0),
        estimated_finish: t(0),
        bake_until: t(0),
    };
    let plan = Plan {
        target: spec.target_text(),
        release: spec.release.clone(),
        planned_at: t(0),
        region_order: vec![Region::parse("eu-west-1").unwrap()],
        waves: vec![wave(0), wave(1)],
        skipped: Vec::new(),
        not_selected: 0,
        assumed_tenant_duration: assumed_tenant_duration(),
        estimated_end: t(0),
    };
    RolloutRecord::from_plan(RolloutId::parse("r-t").unwrap(), spec, &plan, "operator:t", t(0))
}

fn segments(bars: &WaveBars) -> Vec<(SegmentKind, DateTime<Utc>, DateTime<Utc>, bool)> {
    bars.actual
        .iter()
        .map(|s| (s.kind, s.span.start, s.span.end, s.span.open))
        .collect()
}

fn bake(since: i64) -> Option<BakeProgress> {
    Some(BakeProgress {
        since: t(since),
        checks_passed: 1,
        next_check_at: t(since + 1),
        checks: Vec::new(),
    })
}

#[test]
fn a_rollout_not_started_shows_the_plans_estimate_only() {
    let members = vec![
        member(0, "alpha", Outcome::Pending, 0),
        member(1, "bravo", Outcome::Pending, 40),
        member(1, "charlie", Outcome::Pending, 70),
    ];
    let timeline = timeline(&record(), &members, t(5));
    assert!(timeline.not_started);
    let upgrade = TimeDelta::from_std(assumed_tenant_duration()).unwrap();
    let bake = TimeDelta::minutes(15);
    let planned: Vec<Span> = timeline.waves.iter().map(|w| w.planned.unwrap()).collect();
    assert_eq!((planned[0].start, planned[0].end), (t(0), t(0) + upgrade + bake));
    assert_eq!(
        (planned[1].start, planned[1].end),
        (t(40), t(70) + upgrade + bake)
    );
    assert!(timeline.waves.iter().all(|w| w.actual.is_empty()));
    assert_eq!((timeline.start, timeline.end), (t(0), t(70) + upgrade + bake));
    assert_eq!(
        timeline.waves[1]
            .marks
            .iter()
            .map(|m| m.outcome)
            .collect::<Vec<_>>(),
        vec![MarkOutcome::Pending, MarkOutcome::Pending]
    );
}

#[test]
fn a_halted_wave_ends_in_an_open_halted_segment_after_its_approval_and_deploy() {
    let mut record = record();
    record.waves[0].started_at = Some(t(0));
    record.waves[0].bake = bake(10);
    record.waves[0].finished_at = Some(t(20));
    record.waves[0].status = WaveStatus::Succeeded;
    record.waves[1].started_at = Some(t(30));
    record.waves[1].approved_by = Some("dashboard:ops".into());
    record.waves[1].status = WaveStatus::Breached;
    record.current_wave = 1;
    record.phase = Phase::Halted;
    record.log(t(40), "controller", "halted: wave 1 failed 1 of 2 tenants");
    let mut failed = ran(
        member(1, "bravo", Outcome::Failed { reason: "503".into() }, 30),
        31,
        Some(40),
    );
    failed.rollback = Some(RollbackStatus::InProgress);
    let mut rolled_back = ran(member(1, "charlie", Outcome::Succeeded, 30), 31, Some(35));
    rolled_back.rollback = Some(RollbackStatus::Done);
    let members = vec![
        ran(member(0, "alpha", Outcome::Succeeded, 0), 0, Some(10)),
        failed,
        rolled_back,
    ];

    let timeline = timeline(&record, &members, t(60));

    assert!(!timeline.not_started);
    assert_eq!(
        segments(&timeline.waves[0]),
        vec![
            (SegmentKind::Deploying, t(0), t(10), false),
            (SegmentKind::Baking, t(10), t(20), false),
        ]
    );
    assert_eq!(
        segments(&timeline.waves[1]),
        vec![
            (SegmentKind::Approval, t(20), t(30), false),
            (SegmentKind::Deploying, t(30), t(40), false),
            (SegmentKind::Halted, t(40), t(60), true),
        ]
    );
    let outcomes: Vec<(&str, MarkOutcome)> = (timeline.waves[1].marks.iter())
        .map(|m| (m.tenant.as_str(), m.outcome))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("bravo", MarkOutcome::Failed),
            ("charlie", MarkOutcome::RolledBack)
        ]
    );
    assert_eq!(timeline.waves[1].marks[0].why.as_deref(), Some("503"));
    assert_eq!(
        (timeline.waves[1].failed, timeline.waves[1].allowed_failures),
        (1, 0)
    );
    assert_eq!(
        timeline.end,
        t(75),
        "the axis reaches the plan's end (30 + 30m upgrade + 15m bake)"
    );
}

#[test]
fn a_wave_waiting_for_approval_draws_an_open_approval_segment() {
    let mut record = record();
    record.waves[0].started_at = Some(t(0));
    record.waves[0].finished_at = Some(t(20));
    record.waves[0].status = WaveStatus::Succeeded;
    record.waves[1].status = WaveStatus::AwaitingApproval;
    record.current_wave = 1;
    record.phase = Phase::Running;
    let timeline = timeline(&record, &[], t(50));
    assert_eq!(
        segments(&timeline.waves[1]),
        vec![(SegmentKind::Approval, t(20), t(50), true)]
    );
    assert_eq!(
        timeline.waves[1].planned, None,
        "a wave without members has no plan to draw"
    );
    assert_eq!(timeline.end, t(50), "a running rollout's axis reaches now");
}

/// Wave 0 deploying since 0 with `window_waits` as recorded (`None`: recorded before
/// the controller noted them): alpha upgraded from 0 to 5, bravo from 120 to 125, and
/// charlie waiting for its maintenance window, which opens at 300.
fn waiting_for_a_window(window_waits: Option<Vec<WindowWait>>) -> (RolloutRecord, Vec<RolloutMember>) {
    let mut record = record();
    record.waves[0].started_at = Some(t(0));
    record.waves[0].status = WaveStatus::Deploying;
    record.waves[0].window_waits = window_waits;
    let mut waiting = member(0, "charlie", Outcome::Pending, 300);
    waiting.waiting_for = Some("its maintenance window, next opening 2026-12-01 15:00 UTC".into());
    let members = vec![
        ran(member(0, "alpha", Outcome::Succeeded, 0), 0, Some(5)),
        ran(member(0, "bravo", Outcome::Succeeded, 120), 120, Some(125)),
        waiting,
    ];
    (record, members)
}

#[test]
fn the_window_waits_the_controller_recorded_are_drawn_as_stored() {
    // bravo's upgrade ended at 125 but the wait began at 130, as the controller saw it;
    // a pause of a few seconds is no wait, however long the gap between runs.
    let (mut record, members) = waiting_for_a_window(Some(vec![
        WindowWait {
            from: t(5),
            until: Some(t(120)),
        },
        WindowWait {
            from: t(130),
            until: None,
        },
    ]));
    let timeline = timeline(&record, &members, t(200));
    assert_eq!(
        segments(&timeline.waves[0]),
        vec![
            (SegmentKind::Deploying, t(0), t(5), false),
            (SegmentKind::Window, t(5), t(120), false),
            (SegmentKind::Deploying, t(120), t(130), false),
            (SegmentKind::Window, t(130), t(200), true),
        ]
    );

    // Recorded with no wait: a long pause is not guessed to be one.
    record.waves[0].window_waits = Some(Vec::new());
    let timeline = super::timeline(&record, &members, t(200));
    assert_eq!(
        segments(&timeline.waves[0]),
        vec![(SegmentKind::Deploying, t(0), t(200), true)]
    );
}

#[test]
fn a_long_pause_between_upgrades_is_a_wait_for_a_window() {
    // Recorded before the controller noted window waits: they are inferred.
    let (record, members) = waiting_for_a_window(None);
    let timeline = timeline(&record, &members, t(200));
    assert_eq!(
        segments(&timeline.waves[0]),
        vec![
            (SegmentKind::Deploying, t(0), t(5), false),
            (SegmentKind::Window, t(5), t(120), false),
            (SegmentKind::Deploying, t(120), t(125), false),
            (SegmentKind::Window, t(125), t(200), true),
        ]
    );
    // Pauses shorter than a window gap are the controller's ticks, not waits.
    let members = vec![
        ran(member(0, "alpha", Outcome::Succeeded, 0), 0, Some(5)),
        ran(member(0, "bravo", Outcome::InFlight, 0), 5, None),
    ];
    let timeline = super::timeline(&record, &members, t(30));
    assert_eq!(
        segments(&timeline.waves[0]),
        vec![(SegmentKind::Deploying, t(0), t(30), true)]
    );
}

#[test]
fn a_wave_draws_a_bounded_number_of_marks_keeping_the_tenants_in_trouble() {
    let mut members: Vec<RolloutMember> = (0..100)
        .map(|i| ran(member(0, &format!("t-{i:03}"), Outcome::Succeeded, 0), 0, Some(1)))
        .collect();
    members.push(ran(
        member(
            0,
            "zz-failed",
            Outcome::Failed {
                reason: "boom".into(),
            },
            0,
        ),
        9,
        Some(10),
    ));
    let mut record = record();
    record.waves[0].started_at = Some(t(0));
    record.waves[0].status = WaveStatus::Deploying;
    let wave = &timeline(&record, &members, t(30)).waves[0];
    assert_eq!(wave.marks.len(), MARKS_SHOWN);
    assert_eq!(wave.marks_not_shown, 101 - MARKS_SHOWN);
    assert!(wave.marks.iter().any(|m| m.tenant == "zz-failed"));
    assert!(
        wave.marks.windows(2).all(|p| p[0].at <= p[1].at),
        "drawn in time order"
    );
}

#[test]
fn times_map_onto_the_axis_from_zero_to_one() {
    let timeline = Timeline {
        start: t(0),
        end: t(100),
        now: t(50),
        not_started: false,
        waves: Vec::new(),
    };
    assert_eq!(timeline.x(t(0)), 0.0);
    assert_eq!(timeline.x(t(25)), 0.25);
    assert_eq!(timeline.x(t(100)), 1.0);
    assert_eq!(timeline.x(t(-10)), 0.0, "clamped");
    assert_eq!(timeline.x(t(500)), 1.0, "clamped");
    let instant = Timeline {
        end: t(0),
        ..timeline
    };
    assert_eq!(instant.x(t(0)), 0.0, "an axis of no length");
}

/// Wave 0 of `record()` as 10,000 tenants of which the page was given three, with
/// the tally counting seven failures and the planned starts kept on the record.
pub(crate) fn sampled() -> (RolloutRecord, Vec<RolloutMember>) {
    let mut record = record();
    let wave = &mut record.waves[0];
    wave.size = 10_000;
    wave.started_at = Some(t(0));
    wave.status = WaveStatus::Deploying;
    wave.planned_starts = Some(StartRange {
        first: t(0),
        last: t(50),
    });
    let mut tally = crate::record::WaveTally::pending(10_000, t(20));
    tally.pending = 9_000;
    tally.succeeded = 993;
    tally.failed = 7;
    wave.tally = Some(tally);
    let members = vec![
        ran(member(0, "t-0001", Outcome::Succeeded, 0), 0, Some(1)),
        ran(member(0, "t-0002", Outcome::InFlight, 1), 1, None),
        member(0, "t-0003", Outcome::Pending, 2),
    ];
    (record, members)
}

#[test]
fn a_sampled_wave_takes_its_plan_and_failures_from_the_record() {
    let (record, members) = sampled();
    let wave = &timeline(&record, &members, t(30)).waves[0];
    let planned = wave.planned.expect("the planned starts kept on the record");
    assert_eq!(planned.start, t(0));
    let upgrade = TimeDelta::from_std(assumed_tenant_duration()).unwrap();
    assert_eq!(planned.end, t(50) + upgrade + TimeDelta::minutes(15));
    assert_eq!(wave.failed, 7, "the tally's count, not the sample's");
    assert_eq!(wave.marks.len(), 3);
    assert_eq!(wave.marks_not_shown, 10_000 - 3);
}

#[test]
fn a_whole_wave_is_counted_from_its_members_whatever_its_tally_says() {
    let mut record = record();
    record.waves[0].size = 2;
    let mut stale = crate::record::WaveTally::pending(2, t(0));
    stale.failed = 2;
    record.waves[0].tally = Some(stale);
    let members = vec![
        ran(member(0, "alpha", Outcome::Succeeded, 0), 0, Some(1)),
        ran(member(0, "bravo", Outcome::Succeeded, 0), 0, Some(1)),
    ];
    let wave = &timeline(&record, &members, t(30)).waves[0];
    assert_eq!(wave.failed, 0);
    assert_eq!(wave.marks_not_shown, 0);
    let planned = wave.planned.expect("drawn from the members");
    assert_eq!(planned.start, t(0));
}
