//! Tenants in other AWS accounts: a target (environment, region) names an account and
//! the role to assume there. On moto, credentials returned by STS AssumeRole act in the
//! role's account, so a stack created with them exists in that account and not in the
//! default one. moto does not check external ids (it has no trust policies); it records
//! each AssumeRole with the external id and session name it was sent, which these
//! tests read back from moto's state (`/moto-api/data.json`).

use std::sync::Arc;

use tenant_orchestrator::domain::Environment;
use tenant_orchestrator::record::TenantRecord;
use tenant_orchestrator::steps::infra;
use tenant_orchestrator::steps::platform::PlatformSource;
use tenant_orchestrator::steps::targets::{Target, Targets};
use tenant_orchestrator::steps::{AwsClients, StepsConfig};

use crate::common::*;
use crate::infra_support::*;

/// An account no other test uses, so what a test finds there is its own.
fn unique_account() -> String {
    let digits: String = uuid::Uuid::new_v4()
        .as_u128()
        .to_string()
        .chars()
        .take(11)
        .collect();
    format!("9{digits}")
}

/// A target for the tests' environment in [`REGION`], in `account`.
fn target(account: &str, session: &str) -> Target {
    Target {
        environment: Environment::parse("test").unwrap(),
        region: tenant_orchestrator::domain::Region::parse(REGION).unwrap(),
        account: account.into(),
        role_arn: format!("arn:aws:iam::{account}:role/tenant-orchestrator"),
        external_id: format!("external-{account}"),
        session_name: Some(session.into()),
        session_seconds: Some(900),
    }
}

/// The infrastructure steps on clients that act for `targets`.
async fn steps_with(targets: &Targets, config: StepsConfig) -> tenant_orchestrator::step::StepRegistry {
    require_local_aws();
    let clients = AwsClients::from_env().await.with_targets(targets).await;
    infra::register(
        tenant_orchestrator::step::StepRegistry::new(),
        Arc::new(StepsConfig {
            targets: targets.clone(),
            ..config
        }),
        Arc::new(clients),
        PlatformSource::default(),
    )
}

/// CloudFormation in [`REGION`] as the role of `target`, assumed independently of the
/// code under test (the SDK's provider on the standard environment).
async fn cloudformation_as(target: &Target) -> aws_sdk_cloudformation::Client {
    let base = aws_config::load_from_env().await;
    let role = aws_config::sts::AssumeRoleProvider::builder(target.role_arn.clone())
        .external_id(target.external_id.clone())
        .session_name("test-reader")
        .configure(&base)
        .build()
        .await;
    let config = base
        .to_builder()
        .credentials_provider(aws_sdk_cloudformation::config::SharedCredentialsProvider::new(
            role,
        ))
        .region(aws_config::Region::new(REGION))
        .build();
    aws_sdk_cloudformation::Client::new(&config)
}

async fn default_cloudformation() -> aws_sdk_cloudformation::Client {
    let base = aws_config::load_from_env().await;
    let config = base.to_builder().region(aws_config::Region::new(REGION)).build();
    aws_sdk_cloudformation::Client::new(&config)
}

/// The status of stack `name`, or none when it does not exist for `client`.
async fn stack_status(client: &aws_sdk_cloudformation::Client, name: &str) -> Option<String> {
    match client.describe_stacks().stack_name(name).send().await {
        Ok(out) => out
            .stacks()
            .first()
            .and_then(|s| s.stack_status())
            .map(|s| s.as_str().to_owned()),
        Err(e) if format!("{e:?}").contains("does not exist") => None,
        Err(e) => panic!("describe {name}: {e:?}"),
    }
}

/// The AssumeRole calls moto has answered with session name `session`: (role ARN,
/// external id) of each.
async fn assume_role_calls(session: &str) -> Vec<(String, Option<String>)> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("the local AWS endpoint");
    let state: serde_json::Value = reqwest::get(format!("{endpoint}/moto-api/data.json"))
        .await
        .expect("moto's state")
        .json()
        .await
        .expect("moto's state is JSON");
    let roles = state["sts"]["AssumedRole"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    roles
        .iter()
        .filter(|r| r["session_name"] == session)
        .map(|r| {
            (
                r["role_arn"].as_str().unwrap_or_default().to_owned(),
                r["external_id"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_tenant_with_a_target_is_provisioned_in_the_targets_account_with_its_external_id() {
    let account = unique_account();
    let session = format!("test-{account}");
    let target = target(&account, &session);
    let targets = Targets(vec![target.clone()]);
    let steps = steps_with(&targets, config(SUBNET_GROUP, false)).await;
    let id = unique_id("target");
    let mut tenant = provisioning(&id);

    let summary = drive(&steps, &mut tenant).await.done();

    assert!(summary.contains("CREATE_COMPLETE"), "{summary}");
    let name = stack_name(&id);
    assert_eq!(
        stack_status(&cloudformation_as(&target).await, &name)
            .await
            .as_deref(),
        Some("CREATE_COMPLETE"),
        "the stack is in the target account {account}"
    );
    let stack_id = tenant.facts.stack_id.clone().expect("stack id recorded");
    assert!(
        stack_id.contains(&format!(":{account}:stack/")),
        "the recorded stack {stack_id} is the target account's"
    );
    assert_eq!(
        stack_status(&default_cloudformation().await, &name).await,
        None,
        "the stack is not in the orchestrator's own account"
    );
    assert_eq!(
        assume_role_calls(&session).await,
        vec![(target.role_arn.clone(), Some(target.external_id.clone()))],
        "one AssumeRole with the target's external id, its credentials reused by every call of the step"
    );
}

#[tokio::test]
async fn a_tenant_without_a_target_is_provisioned_in_the_orchestrators_account() {
    let account = unique_account();
    let session = format!("test-{account}");
    // A target for another environment in the same region.
    let mut elsewhere = target(&account, &session);
    elsewhere.environment = Environment::parse("prod").unwrap();
    let steps = steps_with(&Targets(vec![elsewhere.clone()]), config(SUBNET_GROUP, false)).await;
    let id = unique_id("own");
    let mut tenant: TenantRecord = provisioning(&id);

    drive(&steps, &mut tenant).await.done();

    let name = stack_name(&id);
    assert_eq!(
        stack_status(&default_cloudformation().await, &name)
            .await
            .as_deref(),
        Some("CREATE_COMPLETE")
    );
    assert_eq!(
        stack_status(&cloudformation_as(&elsewhere).await, &name).await,
        None,
        "nothing in the other environment's target account"
    );
    assert!(
        assume_role_calls(&session).await.is_empty(),
        "no role assumed for a tenant without a target"
    );
}

/// A clock the SDK reads (signing, the credentials cache) that the test moves.
#[derive(Debug, Clone)]
struct MovableClock(Arc<std::sync::Mutex<std::time::SystemTime>>);

impl MovableClock {
    fn advance(&self, by: std::time::Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl aws_smithy_async::time::TimeSource for MovableClock {
    fn now(&self) -> std::time::SystemTime {
        *self.0.lock().unwrap()
    }
}

#[tokio::test]
async fn assumed_credentials_are_reused_and_replaced_before_they_expire() {
    require_local_aws();
    let account = unique_account();
    let session = format!("test-{account}");
    // moto's credentials last session_seconds (900) from the real time of the call.
    let target = target(&account, &session);
    let clock = MovableClock(Arc::new(std::sync::Mutex::new(std::time::SystemTime::now())));
    let base = aws_config::load_from_env()
        .await
        .to_builder()
        .time_source(clock.clone())
        .build();
    let clients = AwsClients::new(base)
        .with_targets(&Targets(vec![target.clone()]))
        .await;
    let spec = spec(&unique_id("refresh"), REGION);
    let call = || async {
        let ssm = clients.tenant(&spec).ssm.clone();
        ssm.get_parameters_by_path()
            .path(format!("/test/tenants/{}", spec.id))
            .send()
            .await
            .expect("SSM answers with the assumed credentials");
    };

    call().await;
    clock.advance(std::time::Duration::from_secs(60));
    call().await;
    assert_eq!(
        assume_role_calls(&session).await.len(),
        1,
        "cached credentials are reused"
    );

    // Still valid, but within the refresh margin: the SDK's cache jitters the margin
    // down to as little as half, so this leaves less than that until expiry.
    let left = targets_margin() / 2 - std::time::Duration::from_secs(50);
    clock.advance(std::time::Duration::from_secs(900 - 60) - left);
    call().await;
    assert_eq!(
        assume_role_calls(&session).await.len(),
        2,
        "credentials about to expire are replaced before use"
    );
}

fn targets_margin() -> std::time::Duration {
    tenant_orchestrator::steps::targets::REFRESH_BEFORE_EXPIRY
}

/// AWS counts the limited calls' rates per account: a tenant's calls take from the
/// buckets of its target's account, the shared platform's from the region's platform
/// account, and the orchestrator's own account keeps buckets of its own.
#[tokio::test]
async fn limited_calls_take_their_tokens_from_the_buckets_of_the_account_they_act_in() {
    use tenant_orchestrator::steps::rate_limits::{LimitedService, RateLimitsConfig, Throttle};
    use tenant_orchestrator::store::DynamoRateLimiter;

    let store = crate::common::fresh_store().await;
    let mut limits = RateLimitsConfig::default();
    for service in [&mut limits.cloudformation, &mut limits.acm] {
        service.rate_per_second = 0.01;
        service.burst = 1;
    }
    let throttle = Throttle::new(Arc::new(DynamoRateLimiter::new(store.arc())), limits);
    let account = unique_account();
    let targets = Targets(vec![target(&account, "rate-limits")]);
    let clients = (AwsClients::from_env().await.with_throttle(throttle))
        .with_targets(&targets)
        .await;
    let placed = provisioning(&unique_id("rate")).spec;
    let mut own = placed.clone();
    own.environment = Environment::parse("staging").unwrap();

    clients
        .admit_tenant(LimitedService::CloudFormation, &placed)
        .await
        .unwrap();
    let refused = (clients.admit_tenant(LimitedService::CloudFormation, &placed))
        .await
        .expect_err("the target account's bucket held one token");
    assert!(
        refused.to_string().contains(&format!("of account {account}")),
        "{refused}"
    );
    (clients.admit_tenant(LimitedService::CloudFormation, &own))
        .await
        .expect("a tenant without a target takes from the orchestrator's own account");

    let region = &placed.region;
    clients.admit_platform(LimitedService::Acm, region).await.unwrap();
    let refused = (clients.admit_platform(LimitedService::Acm, region))
        .await
        .expect_err("the platform account is the region's target account");
    assert!(
        refused.to_string().contains(&format!("of account {account}")),
        "{refused}"
    );
}
