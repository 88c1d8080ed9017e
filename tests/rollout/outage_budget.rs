//! A strategy's outage budget on the local DynamoDB: the controller starts a tenant
//! only in a maintenance window that holds the budget, and flags an upgrade whose
//! measured outage overran it, in the rollout's members and in `rollout status`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tenant_orchestrator::domain::RolloutId;
use tenant_orchestrator::record::{OutageOverrun, Outcome, WindowWait};
use tenant_orchestrator::store::{StoreError, TenantStore, WriteGuard};

use crate::common::{tenant_id, wait_for_state};
use crate::rollout_support::*;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn spec_with_budget(budget: &str) -> serde_json::Value {
    json!({
        "release": "2.0.0",
        "strategy": {
            "waves": ["100%"],
            "bake_time": "0s", "bake_checks": 0,
            "approvals": {"after_canary": false, "between_regions": false},
            "outage_budget": budget
        }
    })
}

#[tokio::test]
async fn a_tenant_whose_window_closes_before_the_budget_runs_out_starts_in_its_next_window() {
    let fleet = Fleet::new(&tenants("window", "eu-west-1", 1), "1.0.0").await;
    let id = tenant_id("window-00");
    let mut tenant = fleet.store.load(&id).await.unwrap();
    // Monday 2030-01-07 07:00 to 08:10 UTC, and every Tuesday 02:00 to 06:00.
    tenant.spec.maintenance = Some("UTC Mon 07:00 1h10m, Tue 02:00 4h".parse().unwrap());
    fleet
        .store
        .save(&tenant, WriteGuard::Version, None)
        .await
        .unwrap();
    fleet.start("r-window", spec_with_budget("30m")).await;
    let rollout = RolloutId::parse("r-window").unwrap();
    let controller = fleet.controller("ctl");

    // Monday 08:00: the window is open, but for 10 more minutes, not 30.
    controller
        .step_at(&rollout, utc("2030-01-07T08:00:00Z"))
        .await
        .unwrap()
        .unwrap();
    let waiting = fleet.members("r-window").await.remove(0);
    assert_eq!(waiting.outcome, Outcome::Pending, "{waiting:?}");
    assert_eq!(
        waiting.waiting_for.as_deref(),
        Some(
            "a maintenance window that holds its outage budget of 30m: the open one closes in 10m, the next \
             that holds it opens 2030-01-08 02:00 UTC"
        )
    );
    assert_eq!(fleet.release_of("window-00").await, "Active/1.0.0", "not started");
    // Nothing of the wave runs and its tenant waits for a window: the wave notes it.
    let noted = fleet.rollout("r-window").await;
    let wait_began = WindowWait {
        from: utc("2030-01-07T08:00:00Z"),
        until: None,
    };
    assert_eq!(noted.waves[0].window_waits, Some(vec![wait_began]));

    // Still waiting an hour later: the same wait, and nothing new to write.
    controller
        .step_at(&rollout, utc("2030-01-07T09:00:00Z"))
        .await
        .unwrap()
        .unwrap();
    let later = fleet.rollout("r-window").await;
    assert_eq!(later.waves[0].window_waits, Some(vec![wait_began]));
    assert_eq!(later.version, noted.version, "a wait going on is no write");

    // Tuesday 02:00: a window that holds the budget opens.
    controller
        .step_at(&rollout, utc("2030-01-08T02:00:00Z"))
        .await
        .unwrap()
        .unwrap();
    let started = fleet.members("r-window").await.remove(0);
    assert_eq!(started.outcome, Outcome::InFlight, "{started:?}");
    assert_eq!(started.started_at, Some(utc("2030-01-08T02:00:00Z")));
    assert_eq!(fleet.upgrades_started("window-00", "2.0.0").await, 1);
    // The tenant started: the wait is closed in the same write.
    assert_eq!(
        fleet.rollout("r-window").await.waves[0].window_waits,
        Some(vec![WindowWait {
            until: Some(utc("2030-01-08T02:00:00Z")),
            ..wait_began
        }])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upgrade_whose_measured_outage_overran_the_budget_is_flagged_in_the_rollout() {
    let mut fleet = Fleet::new(&tenants("outage", "eu-west-1", 2), "1.0.0").await;
    fleet.start_workers(1);
    fleet.start("r-outage", spec_with_budget("2m")).await;
    let rollout = RolloutId::parse("r-outage").unwrap();
    let controller = fleet.controller("ctl");
    controller.step(&rollout).await.unwrap().unwrap();
    // Verify measured each tenant's outage: one within the budget, one over it.
    for (tenant, seconds) in [("outage-00", 120), ("outage-01", 415)] {
        wait_for_state(
            &**fleet.store,
            &tenant_id(tenant),
            "Active",
            Duration::from_secs(30),
        )
        .await;
        assert_eq!(fleet.release_of(tenant).await, "Active/2.0.0");
        record_outage(&fleet, tenant, seconds).await;
    }

    let done = controller.step(&rollout).await.unwrap().unwrap();

    assert!(done.phase.is_finished(), "{:#?}", done.events);
    let members = fleet.members("r-outage").await;
    assert!(
        members.iter().all(|m| m.outcome == Outcome::Succeeded),
        "{members:#?}"
    );
    let overruns: Vec<(&str, Option<&OutageOverrun>)> = (members.iter())
        .map(|m| (m.tenant.as_str(), m.outage_overrun.as_ref()))
        .collect();
    assert_eq!(overruns[0], ("outage-00", None), "120s is within 2m");
    let (tenant, overrun) = overruns[1];
    let overrun = overrun.expect("outage-01 overran");
    assert_eq!(
        (tenant, overrun.seconds, overrun.budget.to_string()),
        ("outage-01", 415, "2m".into())
    );
    assert!(
        done.events
            .iter()
            .any(|e| e.what == "outage-01: outage of 415s overran the budget of 2m"),
        "{:#?}",
        done.events
    );

    let status = std::process::Command::new(env!("CARGO_BIN_EXE_tenantctl"))
        .args(["--table", fleet.store.table(), "rollout", "status", "r-outage"])
        .env("TENANTCTL_LOG", "warn")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let line = |tenant: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(tenant))
            .unwrap_or_default()
    };
    assert!(
        line("outage-01").ends_with("succeeded; OUTAGE OVERRAN BUDGET: 415s, budget 2m"),
        "{out}"
    );
    assert!(line("outage-00").ends_with("succeeded"), "{out}");
    fleet.stop().await;
}

/// Writes the outage verify measured into the tenant's facts, as verify records it;
/// again if the worker wrote the tenant meanwhile (it releases its lease).
async fn record_outage(fleet: &Fleet, tenant: &str, seconds: u64) {
    for _ in 0..20 {
        let mut record = fleet.store.load(&tenant_id(tenant)).await.unwrap();
        record.facts.last_outage_seconds = Some(seconds);
        match fleet.store.save(&record, WriteGuard::Version, None).await {
            Ok(_) => return,
            Err(StoreError::Conflict { .. }) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => panic!("{e}"),
        }
    }
    panic!("{tenant} kept changing");
}
