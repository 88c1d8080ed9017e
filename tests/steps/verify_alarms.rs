//! The tenant's CloudWatch alarms as evidence in verify and in the rollout bake's
//! probe, on moto's CloudWatch: each test puts the tenant's alarms under a unique
//! tenant id and drives their state with `SetAlarmState`.

use aws_sdk_cloudwatch::types::{ComparisonOperator, StateValue, Statistic};
use tenant_orchestrator::domain::TenantSpec;
use tenant_orchestrator::ports::{TenantHealth, TenantProbe};
use tenant_orchestrator::record::{AlarmSeen, TenantRecord};
use tenant_orchestrator::step::StepOutcome;
use tenant_orchestrator::steps::names;
use tenant_orchestrator::steps::verify::{HealthProbe, VerifyConfig};

use crate::aws_support::{aws, region_config, unique};
use crate::common::*;
use crate::verify::{healthy, run_polling, step, verify_config, verifying_upgrade, HealthResponder};

fn seen(name: &str, state: &str) -> AlarmSeen {
    AlarmSeen {
        name: name.into(),
        state: state.into(),
    }
}

async fn cloudwatch() -> aws_sdk_cloudwatch::Client {
    aws_sdk_cloudwatch::Client::new(&region_config("us-east-1").await)
}

/// Puts a metric alarm named `name` and sets it to `state`.
pub async fn alarm(name: &str, state: StateValue) {
    let cw = cloudwatch().await;
    cw.put_metric_alarm()
        .alarm_name(name)
        .namespace("AWS/RDS")
        .metric_name("CPUUtilization")
        .statistic(Statistic::Average)
        .period(60)
        .evaluation_periods(5)
        .threshold(90.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .unwrap();
    set_state(name, state).await;
}

pub async fn set_state(name: &str, state: StateValue) {
    cloudwatch()
        .await
        .set_alarm_state()
        .alarm_name(name)
        .state_value(state)
        .state_reason("set by the test")
        .send()
        .await
        .unwrap();
}

/// A tenant verifying 1.1.0 with a unique id, and the name of its stack's CPU alarm.
fn tenant() -> (TenantRecord, String) {
    let record = verifying_upgrade(&unique("alarms"), "1.0.0", "1.1.0");
    let cpu = format!("{}database-cpu", names::alarm_prefix(&record.spec));
    (record, cpu)
}

fn config(port: u16) -> VerifyConfig {
    VerifyConfig {
        required_passes: 2,
        ..verify_config(port, 50, 1)
    }
}

fn final_failure(out: StepOutcome) -> String {
    match out {
        StepOutcome::Failed {
            retryable: false,
            reason,
        } => reason,
        other => panic!("{other:?}"),
    }
}

fn summary(out: StepOutcome) -> String {
    match out {
        StepOutcome::Done(done) => done.summary,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_alarm_in_alarm_fails_verify_naming_it_and_back_to_ok_it_passes() {
    let server = HealthResponder::start(vec![healthy("1.1.0")]).await;
    let (record, cpu) = tenant();
    alarm(&cpu, StateValue::Alarm).await;
    let verify = step(config(server.port)).await;

    let reason = final_failure(run_polling(&verify, record.clone(), 40).await.0);
    assert_eq!(
        reason,
        format!("failing alarms: {cpu} ALARM (checked {cpu} ALARM) — want 1.1.0, 0/2 passes within 1s")
    );

    set_state(&cpu, StateValue::Ok).await;
    let done = summary(run_polling(&verify, record, 40).await.0);
    assert_eq!(
        done,
        format!("1 hostname(s) served 1.1.0 healthy 2 times in a row; alarms: {cpu} OK")
    );
}

#[tokio::test]
async fn insufficient_data_passes_by_default_and_fails_when_configured_to() {
    let server = HealthResponder::start(vec![healthy("1.1.0")]).await;
    let (record, cpu) = tenant();
    alarm(&cpu, StateValue::InsufficientData).await;

    let lenient = step(config(server.port)).await;
    let done = summary(run_polling(&lenient, record.clone(), 40).await.0);
    assert!(
        done.ends_with(&format!("alarms: {cpu} INSUFFICIENT_DATA")),
        "{done}"
    );

    let strict = step(VerifyConfig {
        insufficient_data_fails: true,
        ..config(server.port)
    })
    .await;
    let reason = final_failure(run_polling(&strict, record, 40).await.0);
    assert!(
        reason.starts_with(&format!("failing alarms: {cpu} INSUFFICIENT_DATA")),
        "{reason}"
    );
}

#[tokio::test]
async fn an_extra_alarm_named_by_template_is_checked_and_a_missing_one_fails() {
    let server = HealthResponder::start(vec![healthy("1.1.0")]).await;
    let (record, cpu) = tenant();
    alarm(&cpu, StateValue::Ok).await;
    let custom = format!("{}-custom-x", record.spec.id);
    alarm(&custom, StateValue::Alarm).await;
    let verify = step(VerifyConfig {
        extra_alarms: vec!["{tenant}-custom-x".into(), "{tenant}-custom-y".into()],
        ..config(server.port)
    })
    .await;

    let reason = final_failure(run_polling(&verify, record.clone(), 40).await.0);
    let missing = format!("{}-custom-y", record.spec.id);
    assert!(
        reason.starts_with(&format!(
            "failing alarms: {custom} ALARM, {missing} missing (checked {cpu} OK, {custom} ALARM, {missing} missing)"
        )),
        "{reason}"
    );

    alarm(&missing, StateValue::Ok).await;
    set_state(&custom, StateValue::Ok).await;
    let done = summary(run_polling(&verify, record, 40).await.0);
    assert!(
        done.ends_with(&format!("alarms: {cpu} OK, {custom} OK, {missing} OK")),
        "{done}"
    );
}

#[tokio::test]
async fn another_tenant_whose_id_extends_this_one_lends_it_no_alarms() {
    let server = HealthResponder::start(vec![healthy("1.1.0")]).await;
    let (record, cpu) = tenant();
    alarm(&cpu, StateValue::Ok).await;
    let mut neighbour: TenantSpec = record.spec.clone();
    neighbour.id = tenant_id(&format!("{}-eu", record.spec.id));
    alarm(
        &format!("{}database-cpu", names::alarm_prefix(&neighbour)),
        StateValue::Alarm,
    )
    .await;

    let verify = step(config(server.port)).await;
    let done = summary(run_polling(&verify, record, 40).await.0);
    assert!(done.ends_with(&format!("alarms: {cpu} OK")), "{done}");
}

#[tokio::test]
async fn the_bake_probe_fails_a_tenant_in_alarm_naming_the_alarms_checked() {
    let server = HealthResponder::start(vec![healthy("1.1.0")]).await;
    let (record, cpu) = tenant();
    alarm(&cpu, StateValue::Alarm).await;
    let probe = HealthProbe::new(&config(server.port), aws().await).unwrap();

    let health = probe.probe(&record.spec, &release("1.1.0")).await;
    assert_eq!(
        health,
        TenantHealth::Unhealthy {
            reported_release: Some("1.1.0".into()),
            reason: format!("failing alarms: {cpu} ALARM (checked {cpu} ALARM)"),
            alarms: vec![seen(&cpu, "ALARM")],
        }
    );

    set_state(&cpu, StateValue::Ok).await;
    let health = probe.probe(&record.spec, &release("1.1.0")).await;
    assert_eq!(
        health,
        TenantHealth::Healthy {
            alarms: vec![seen(&cpu, "OK")]
        },
        "a healthy answer names the alarms it checked too"
    );
}
