//! Rollouts of a spec change rather than a release, on the local DynamoDB with
//! `ScriptedStep` standing in for the AWS steps.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use tenant_orchestrator::domain::rollout::SpecRevision;
use tenant_orchestrator::domain::{Group, Tier};
use tenant_orchestrator::machine::{TenantEvent, TenantState};
use tenant_orchestrator::record::{Actor, Cause, Outcome, Phase, TenantRecord, Transition};
use tenant_orchestrator::store::TenantStore;

use crate::common::{release, spec, tenant_id};
use crate::rollout_support::*;

const LONG: Duration = Duration::from_secs(60);

/// Stores tenant `id` in `region`, Active on 1.0.0, with `group` and `tier`.
async fn active_tenant(fleet: &Fleet, id: &str, region: &str, group: &str, tier: Tier) {
    let mut spec = spec(id, region);
    spec.group = Group::parse(group).unwrap();
    spec.tier = tier;
    let state = TenantState::Active {
        release: release("1.0.0"),
        failed_upgrade: None,
    };
    let record = TenantRecord::new(spec, state, Utc::now());
    let provision = Cause::Event(TenantEvent::Provision {
        release: release("1.0.0"),
    });
    (fleet.store)
        .create(
            &record,
            Transition::new(&TenantState::initial(), provision, Actor("test".into())),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tier_change_for_a_group_rolls_out_in_waves_on_the_release_each_tenant_runs() {
    let mut fleet = Fleet::new(&[], "1.0.0").await;
    for i in 0..6 {
        active_tenant(
            &fleet,
            &format!("ent-{i:02}"),
            "eu-west-1",
            "eu-enterprise",
            Tier::Medium,
        )
        .await;
    }
    active_tenant(&fleet, "std-00", "eu-west-1", "standard", Tier::Medium).await;
    fleet.start_workers(1);
    fleet.start_controller("controller-a");

    fleet
        .start(
            "r-tier",
            json!({
                "change": {"tier": "large"},
                "selector": {"groups": ["eu-enterprise"]},
                "strategy": {
                    "waves": ["1", "50%", "100%"],
                    "bake_time": "0s", "bake_checks": 0,
                    "approvals": {"after_canary": false, "between_regions": false}
                }
            }),
        )
        .await;
    let done = fleet
        .wait_for("r-tier", LONG, "completed", |r| r.phase == Phase::Completed)
        .await;

    assert_eq!(done.waves.len(), 3, "canary, half, the rest: {:#?}", done.waves);
    let members = fleet.members("r-tier").await;
    assert_eq!(members.len(), 6);
    for m in &members {
        assert_eq!(m.outcome, Outcome::Succeeded, "{}", m.tenant);
        assert_eq!(m.from_release, Some(release("1.0.0")));
        assert_eq!(
            m.from,
            Some(SpecRevision {
                platform: None,
                tier: Tier::Medium,
            }),
            "{}: what a rollback would restore",
            m.tenant
        );
        let tenant = fleet.store.load(&m.tenant).await.unwrap();
        assert_eq!(tenant.spec.tier, Tier::Large, "{}", m.tenant);
        assert_eq!(fleet.release_of(m.tenant.as_str()).await, "Active/1.0.0");
        let history = fleet.store.history(&m.tenant, 0, 100).await.unwrap().items;
        assert!(
            history
                .iter()
                .any(|e| e.cause.starts_with("Reconcile (rollout r-tier")),
            "{}: applied by a reconcile on its release: {:#?}",
            m.tenant,
            history.iter().map(|e| &e.cause).collect::<Vec<_>>()
        );
    }
    let other = fleet.store.load(&tenant_id("std-00")).await.unwrap();
    assert_eq!(other.spec.tier, Tier::Medium, "outside the group: left alone");
    fleet.stop().await;
}
