//! Crash safety of the rollout controller: a `tenantctl controller` process is killed
//! with SIGKILL in the middle of a rollout; a second process takes the rollout's lease
//! once it expires and finishes it. No tenant is started twice, none is lost.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::rollout_support::*;
use serde_json::json;
use tenant_orchestrator::machine::StepKind;
use tenant_orchestrator::record::{Outcome, Phase};

fn controller_process(table: &str, id: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tenantctl"))
        .args([
            "--table",
            table,
            "controller",
            "--id",
            id,
            "--rollout-tick",
            "100ms",
            "--rollout-lease-ttl",
            "1500ms",
        ])
        .env("TENANTCTL_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tenantctl controller starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_controller_is_replaced_and_no_tenant_starts_twice() {
    let mut all = tenants("kilo", "eu-west-1", 8);
    all.extend(tenants("lima", "us-east-1", 8));
    let mut fleet = Fleet::new(&all, "1.0.0").await;
    fleet.steps.delay(StepKind::Deploy, Duration::from_millis(400));
    fleet.start_workers(2);
    fleet
        .start(
            "r-crash",
            json!({
                "release": "2.0.0",
                "strategy": {
                    "region_order": ["eu-west-1", "us-east-1"],
                    "waves": ["1", "50%", "100%"],
                    "max_in_flight_per_region": 2,
                    "bake_time": "0s", "bake_checks": 0,
                    "approvals": {"after_canary": false}
                }
            }),
        )
        .await;
    let table = fleet.store.table().to_owned();

    let mut first = controller_process(&table, "ctl-first");
    let started =
        |ms: &[tenant_orchestrator::record::RolloutMember]| ms.iter().filter(|m| m.attempts > 0).count();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let members = fleet.members("r-crash").await;
        if started(&members) >= 4 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the first controller never got going"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill().expect("SIGKILL the first controller");
    first.wait().unwrap();
    let at_kill = fleet.rollout("r-crash").await;
    assert_eq!(at_kill.phase, Phase::Running);
    assert!(at_kill.lease.as_ref().is_some_and(|l| l.owner == "ctl-first"));

    let mut second = controller_process(&table, "ctl-second");
    let done = fleet
        .wait_for("r-crash", Duration::from_secs(90), "completed", |r| {
            r.phase.is_finished()
        })
        .await;
    second.kill().unwrap();
    second.wait().unwrap();

    assert_eq!(done.phase, Phase::Completed, "{:#?}", done.events);
    let members = fleet.members("r-crash").await;
    assert_eq!(members.len(), 16, "no tenant lost");
    for m in &members {
        assert_eq!(m.outcome, Outcome::Succeeded, "{}", m.tenant);
        assert_eq!(m.attempts, 1, "{} started once", m.tenant);
    }
    for (id, _) in &all {
        assert_eq!(fleet.release_of(id).await, "Active/2.0.0");
        assert_eq!(fleet.upgrades_started(id, "2.0.0").await, 1, "{id} upgraded once");
    }
    let holder = done.lease.as_ref().map(|l| (l.owner.as_str(), l.fence));
    assert_eq!(
        holder.map(|h| h.0),
        Some("ctl-second"),
        "the second controller finished it"
    );
    assert!(
        holder.unwrap().1 > at_kill.lease.unwrap().fence,
        "under a newer fence"
    );
    fleet.stop().await;
}
