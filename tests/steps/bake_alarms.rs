//! Alarm evidence in a rollout's bake, on DynamoDB Local and moto's CloudWatch: the
//! real bake probe (`HealthProbe`) reads the tenants' alarms, `HealthResponder` (the
//! health endpoint double) answers healthy, and `ScriptedStep` (the step test double)
//! stands in for the upgrade's steps.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_cloudwatch::types::StateValue;
use chrono::Utc;
use serde_json::json;
use tenant_orchestrator::app::RolloutCommands;
use tenant_orchestrator::domain::{RolloutId, RolloutSpec};
use tenant_orchestrator::machine::{TenantEvent, TenantState};
use tenant_orchestrator::record::{
    Actor, AlarmSeen, Cause, Outcome, Phase, RollbackStatus, RolloutRecord, TenantRecord, Transition,
    WaveStatus,
};
use tenant_orchestrator::rollout::{Controller, ControllerConfig};
use tenant_orchestrator::step::StepRegistry;
use tenant_orchestrator::steps::names;
use tenant_orchestrator::steps::verify::HealthProbe;
use tenant_orchestrator::store::{RolloutStore, TenantStore};
use tenant_orchestrator::worker::Worker;

use crate::aws_support::{aws, unique};
use crate::common::{fast_worker, fresh_store, release, spec, ScriptedStep, TestStore};
use crate::verify::{healthy, verify_config, HealthResponder};
use crate::verify_alarms::{alarm, set_state};

async fn active_on_1_0_0(store: &TestStore, id: &str) -> TenantRecord {
    let state = TenantState::Active {
        release: release("1.0.0"),
        failed_upgrade: None,
    };
    let record = TenantRecord::new(spec(id, "us-east-1"), state, Utc::now());
    let cause = Cause::Event(TenantEvent::Provision {
        release: release("1.0.0"),
    });
    store
        .create(
            &record,
            Transition::new(&TenantState::initial(), cause, Actor("test".into())),
        )
        .await
        .unwrap();
    record
}

async fn wait_for(
    store: &TestStore,
    id: &RolloutId,
    what: &str,
    done: impl Fn(&RolloutRecord) -> bool,
) -> RolloutRecord {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = store.load_rollout(id).await.unwrap();
        if done(&r) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "rollout did not reach {what}: {:#?}",
            r.events
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_alarm_in_alarm_during_the_bake_breaches_the_wave_and_rolls_it_back() {
    let server = HealthResponder::start(vec![healthy("2.0.0")]).await;
    let store = fresh_store().await;
    let canary = active_on_1_0_0(&store, &unique("bake-a")).await;
    let other = active_on_1_0_0(&store, &unique("bake-b")).await;
    let latency = format!("{}latency", names::alarm_prefix(&canary.spec));
    alarm(&latency, StateValue::Ok).await;
    alarm(
        &format!("{}latency", names::alarm_prefix(&other.spec)),
        StateValue::Ok,
    )
    .await;

    let probe = HealthProbe::new(&verify_config(server.port, 50, 5), aws().await).unwrap();
    let worker = Worker::new(
        store.arc(),
        StepRegistry::all(ScriptedStep::new()),
        fast_worker("w-bake"),
    );
    let controller = Controller::new(
        store.arc(),
        store.arc(),
        Arc::new(probe),
        ControllerConfig {
            lease_ttl: Duration::from_secs(1),
            tick: Duration::from_millis(50),
            ..ControllerConfig::new("controller-bake")
        },
    );
    let (shutdown, _) = tokio::sync::watch::channel(false);
    let worker_task = {
        let shutdown = shutdown.subscribe();
        tokio::spawn(async move { worker.run(shutdown).await.unwrap() })
    };
    let controller_task = {
        let shutdown = shutdown.subscribe();
        tokio::spawn(async move { controller.run(shutdown).await })
    };

    // Arrange: the canary wave (one tenant, no failure allowed) bakes on 2.0.0.
    let id = RolloutId::parse(&unique("r-bake")).unwrap();
    let rollout_spec: RolloutSpec = serde_json::from_value(json!({
        "release": "2.0.0",
        "strategy": {
            "waves": ["1", "100%"],
            "failure_budget": 0,
            "on_breach": {"rollback": "wave"},
            "bake_time": "3s", "bake_checks": 2, "bake_check_interval": "1s",
            "approvals": {"after_canary": false, "between_regions": false}
        }
    }))
    .unwrap();
    RolloutCommands::new(store.arc(), store.arc())
        .start(id.clone(), rollout_spec, "operator:test")
        .await
        .unwrap();
    let baking = wait_for(&store, &id, "the canary's bake", |r| {
        r.waves[0].status == WaveStatus::Baking
    })
    .await;

    // Act: the baking tenant's alarm goes to ALARM.
    set_state(&latency, StateValue::Alarm).await;
    let halted = wait_for(&store, &id, "halted and rolled back", |r| r.is_settled()).await;

    // Assert: the member failed naming the alarm, the wave breached and rolled back.
    assert_eq!(halted.phase, Phase::Halted, "{:#?}", halted.events);
    assert_eq!(halted.waves[0].status, WaveStatus::Breached);
    assert_eq!(halted.current_wave, 0, "the second wave never started");
    let members = store.members(&id, None).await.unwrap();
    let first = members.iter().find(|m| m.tenant == canary.spec.id).unwrap();
    let failing = format!("unhealthy during the bake: failing alarms: {latency} ALARM");
    match &first.outcome {
        Outcome::Failed { reason } => assert!(reason.starts_with(&failing), "{reason}"),
        other => panic!("the canary should have failed its bake: {other:?}"),
    }
    assert_eq!(first.rollback, Some(RollbackStatus::Done));
    let back = store.load(&canary.spec.id).await.unwrap();
    assert_eq!(back.state.current_release(), Some(&release("1.0.0")));
    let second = members.iter().find(|m| m.tenant == other.spec.id).unwrap();
    assert_eq!(second.outcome, Outcome::Pending);

    // The bake's evidence names the alarm and its state.
    let checks = &halted.waves[0].bake.as_ref().unwrap().checks;
    assert_eq!(checks.len(), 1, "{checks:#?}");
    let check = &checks[0];
    assert_eq!(check.tenant, canary.spec.id);
    assert!(!check.healthy);
    assert!(check.at > baking.waves[0].bake.as_ref().unwrap().since);
    assert_eq!(
        check.alarms,
        vec![AlarmSeen {
            name: latency.clone(),
            state: "ALARM".into()
        }]
    );

    shutdown.send(true).unwrap();
    worker_task.await.unwrap();
    controller_task.await.unwrap();
}
