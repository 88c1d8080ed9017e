//! The infrastructure steps deploy the tenant's published platform version: its
//! template from the artifact store (moto S3), on moto's CloudFormation.

use std::sync::Arc;

use tenant_orchestrator::ports::{PlatformArtifacts, PlatformBundle};
use tenant_orchestrator::step::StepRegistry;
use tenant_orchestrator::steps::infra;
use tenant_orchestrator::steps::platform::PlatformSource;

use crate::infra_support::*;
use crate::platform_support::{fresh_bucket, repo_bundle, version};

/// The infrastructure steps reading platform versions from `store`.
fn steps_from(aws: &LocalAws, store: Arc<dyn PlatformArtifacts>) -> StepRegistry {
    infra::register(
        StepRegistry::new(),
        Arc::new(config(SUBNET_GROUP, false)),
        aws.clients.clone(),
        PlatformSource::new(Some(store)),
    )
}

async fn publish(store: &dyn PlatformArtifacts, bundle: &PlatformBundle) {
    store.publish(bundle, "test").await.expect("published");
}

#[tokio::test]
async fn the_stack_follows_the_platform_version_the_spec_names_and_back_on_rollback() {
    let aws = LocalAws::new().await;
    let bucket = fresh_bucket().await;
    let a = repo_bundle("1.0.0");
    // B adds an output (the template ends in its Outputs section): a visible change.
    let mut b = repo_bundle("1.1.0");
    b.template
        .push_str("  PlatformVersion:\n    Description: The platform version\n    Value: \"1.1.0\"\n");
    publish(&bucket.store, &a).await;
    publish(&bucket.store, &b).await;
    let steps = steps_from(&aws, Arc::new(bucket.store));
    let id = unique_id("plat");

    // Provisioned on A.
    let mut tenant = provisioning(&id);
    tenant.spec.platform = Some(a.version);
    drive(&steps, &mut tenant).await.done();
    assert_eq!(aws.template(&id).await, a.template);
    assert_eq!(tenant.facts.stack_platform, Some(a.version));

    // The spec moves to B; the upgrade's UpdateInfra (as a reconcile runs it) applies B.
    tenant.spec.platform = Some(b.version);
    let mut tenant = upgrading(tenant);
    drive(&steps, &mut tenant).await.done();
    assert_eq!(aws.template(&id).await, b.template);
    assert_eq!(tenant.facts.stack_platform, Some(b.version));
    assert_eq!(
        tenant.facts.previous_stack.as_ref().and_then(|p| p.platform),
        Some(a.version)
    );

    // Rolling the upgrade back puts A's template back, and the fact with it.
    let mut tenant = rolling_back(tenant);
    drive(&steps, &mut tenant).await.done();
    assert_eq!(aws.template(&id).await, a.template);
    assert_eq!(tenant.facts.stack_platform, Some(a.version));
}

#[tokio::test]
async fn a_tenant_naming_an_unpublished_version_fails_with_what_to_do() {
    let aws = LocalAws::new().await;
    let bucket = fresh_bucket().await;
    let steps = steps_from(&aws, Arc::new(bucket.store));
    let id = unique_id("plat-missing");
    let mut tenant = provisioning(&id);
    tenant.spec.platform = Some(version("9.9.9"));

    let reason = drive(&steps, &mut tenant).await.failed_for_good();

    assert!(
        reason.contains("platform version 9.9.9, which is not published"),
        "{reason}"
    );
    assert!(
        reason.contains("tenantctl platform publish --version 9.9.9"),
        "{reason}"
    );
    assert!(aws.stack(&id).await.is_none(), "no stack is created");
}

#[tokio::test]
async fn a_worker_without_a_platform_bucket_refuses_a_tenant_naming_a_version() {
    let aws = LocalAws::new().await;
    let steps = aws.steps(config(SUBNET_GROUP, false));
    let id = unique_id("plat-nobucket");
    let mut tenant = provisioning(&id);
    tenant.spec.platform = Some(version("1.0.0"));

    let reason = drive(&steps, &mut tenant).await.failed_for_good();

    assert!(reason.contains("no platform bucket"), "{reason}");
    assert!(reason.contains("--platform-bucket"), "{reason}");
}
