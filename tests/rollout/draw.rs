//! What the dashboard's rollout page reads of a rollout's members: a small rollout
//! whole, a large one as a bounded sample per wave (the failed members its tally
//! names and the first few), so a reload does not read a fleet-wide rollout's fleet.

use crate::rollout_support::*;
use serde_json::json;
use tenant_orchestrator::app::rollouts::{members_to_draw, DrawSample};
use tenant_orchestrator::domain::TenantId;
use tenant_orchestrator::record::{MemberFailure, RolloutMember, WaveTally};
use tenant_orchestrator::store::RolloutStore;

fn ids(members: &[RolloutMember], wave: usize) -> Vec<String> {
    let mut ids: Vec<String> = (members.iter())
        .filter(|m| m.wave == wave)
        .map(|m| m.tenant.to_string())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_large_rollout_is_drawn_from_a_sample_that_keeps_its_failures() {
    let fleet = Fleet::new(&tenants("draw", "eu-west-1", 12), "1.0.0").await;
    let spec = json!({
        "release": "2.0.0",
        "strategy": {"waves": ["1", "100%"], "approvals": {"after_canary": false, "between_regions": false}}
    });
    let mut record = fleet.start("r-draw", spec).await;
    let all = fleet.members("r-draw").await;
    assert_eq!(all.len(), 12);
    let canary = ids(&all, 0);
    let rest = ids(&all, 1);
    assert_eq!(rest.len(), 11);
    let planned = record.waves[1].planned_starts.expect("kept with the plan");
    let starts = all.iter().filter(|m| m.wave == 1).map(|m| m.earliest_start);
    assert_eq!(planned.first, starts.clone().min().unwrap());
    assert_eq!(planned.last, starts.max().unwrap());

    // Wave 1's tally names its last tenant by id as failed and its eighth as in
    // flight (the record the page is given; the controller writes it from the
    // members it reads).
    let mut tally = WaveTally::pending(11, chrono::Utc::now());
    tally.pending = 10;
    tally.failed = 1;
    tally.failures = vec![MemberFailure {
        tenant: TenantId::parse(&rest[10]).unwrap(),
        reason: "helm upgrade timed out".into(),
    }];
    tally.in_flight = 1;
    tally.pending -= 1;
    tally.moving = vec![TenantId::parse(&rest[7]).unwrap()];
    record.waves[1].tally = Some(tally);

    let small = DrawSample {
        read_all_up_to: 100,
        per_wave: 3,
    };
    let whole = members_to_draw(fleet.store.as_ref(), &record, small)
        .await
        .unwrap();
    assert_eq!(whole.len(), 12, "a rollout within the bound is read whole");

    let sample = DrawSample {
        read_all_up_to: 5,
        per_wave: 3,
    };
    let drawn = members_to_draw(fleet.store.as_ref(), &record, sample)
        .await
        .unwrap();
    assert_eq!(ids(&drawn, 0), canary);
    let mut expected: Vec<String> = rest[..3].to_vec();
    expected.push(rest[7].clone());
    expected.push(rest[10].clone());
    assert_eq!(
        ids(&drawn, 1),
        expected,
        "the first three, the one in flight and the failed one"
    );

    // A failure the tally names within the first few is read once.
    let first = TenantId::parse(&rest[0]).unwrap();
    let stranger = TenantId::parse("not-in-rollout").unwrap();
    let named = [first, stranger.clone(), stranger];
    let once = (fleet.store.members_sample(&record.id, 1, &named, 3))
        .await
        .unwrap();
    assert_eq!(
        ids(&once, 1),
        rest[..3].to_vec(),
        "no repeat, no stranger, a name given twice asked once"
    );

    // A record from before waves kept tallies is drawn from all its members.
    let mut legacy = record.clone();
    legacy.waves[1].tally = None;
    let drawn = members_to_draw(fleet.store.as_ref(), &legacy, sample)
        .await
        .unwrap();
    assert_eq!(drawn.len(), 12);
    fleet.stop().await;
}
