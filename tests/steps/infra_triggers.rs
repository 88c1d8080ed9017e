//! UpdateInfra passes the tenant's alarms to CloudFormation as rollback triggers: on
//! moto's CloudFormation (which checks them as the update completes) with the
//! production template, the alarm state driven with `SetAlarmState`.

use aws_sdk_cloudwatch::types::StateValue;
use tenant_orchestrator::steps::{names, StepsConfig};

use crate::aws_support::region_config;
use crate::infra_support::*;

async fn set_state(alarm: &str, state: StateValue) {
    aws_sdk_cloudwatch::Client::new(&region_config("us-east-1").await)
        .set_alarm_state()
        .alarm_name(alarm)
        .state_value(state)
        .state_reason("set by the test")
        .send()
        .await
        .unwrap();
}

/// Settings that move the tenant's database to other security groups: a changed
/// stack parameter (`DBSecurityGroupIds`), applied in place.
fn other_security_groups() -> StepsConfig {
    let mut config = config(SUBNET_GROUP, false);
    for region in config.regions.values_mut() {
        region.db_security_group_ids = vec!["sg-0a1b2c3d4e5f60003".into()];
    }
    config
}

#[tokio::test]
async fn an_alarm_in_alarm_rolls_the_update_back_and_fails_the_step_naming_it() {
    let aws = LocalAws::new().await;
    let id = unique_id("trigger");
    let mut tenant = provisioning(&id);
    drive(&aws.steps(config(SUBNET_GROUP, false)), &mut tenant)
        .await
        .done();
    let before = aws.stack(&id).await.unwrap();
    let steps = aws.steps(other_security_groups());
    let cpu = format!("{}database-cpu", names::alarm_prefix(&tenant.spec));
    set_state(&cpu, StateValue::Alarm).await;

    let mut tenant = upgrading(tenant);
    let reason = drive(&steps, &mut tenant).await.failed_for_good();

    assert!(reason.contains("UPDATE_ROLLBACK_COMPLETE"), "{reason}");
    assert!(
        reason.contains(&format!(":alarm:{cpu}")),
        "names the alarm: {reason}"
    );
    let after = aws.stack(&id).await.unwrap();
    assert_eq!(after.status, "UPDATE_ROLLBACK_COMPLETE");
    assert_eq!(after.parameters, before.parameters);

    // The machine's rollback path: the stack already is where it should be.
    let mut tenant = rolling_back(tenant);
    let summary = drive(&steps, &mut tenant).await.done();
    assert!(summary.contains("already on its previous template"), "{summary}");

    // With the alarm OK, the same update goes through.
    set_state(&cpu, StateValue::Ok).await;
    let mut tenant = upgrading(tenant);
    let summary = drive(&steps, &mut tenant).await.done();
    assert!(summary.contains("UPDATE_COMPLETE"), "{summary}");
    let updated = aws.stack(&id).await.unwrap();
    assert_eq!(updated.status, "UPDATE_COMPLETE");
    assert_eq!(updated.parameters["DBSecurityGroupIds"], "sg-0a1b2c3d4e5f60003");
}
