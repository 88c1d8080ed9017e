//! CheckArtifact against moto's ECR.

use tenant_orchestrator::ports::ReleaseCheckError;
use tenant_orchestrator::record::TenantFacts;
use tenant_orchestrator::step::StepOutcome;
use tenant_orchestrator::steps::artifact::{ArtifactConfig, CheckArtifact};
use tenant_orchestrator::steps::AwsClients;

use crate::aws_support::*;
use crate::common::{release, require_local_aws};

fn artifact_config(repository: &str) -> ArtifactConfig {
    ArtifactConfig {
        repository: repository.to_owned(),
        registry_region: None,
    }
}

#[tokio::test]
async fn a_new_tenant_gets_the_release_image_by_digest_from_its_regions_registry() {
    let repo = unique("app");
    let uri = create_repository(REGION, &repo).await;
    let digest = push_image(REGION, &repo, "1.0.0").await;
    // The same tag in another region's repository must not be the one picked.
    create_repository("us-east-1", &repo).await;
    push_image("us-east-1", &repo, "1.0.0").await;
    let step = CheckArtifact::new(artifact_config(&repo), aws().await);
    let tenant = record(&tenant_spec(), provisioning("1.0.0", 0), TenantFacts::default());

    let output = expect_done(run(&step, &tenant).await);

    assert_eq!(output.facts.image, Some(format!("{uri}@{digest}")));
    assert!(uri.contains(REGION), "{uri}");
    assert_eq!(
        output.facts.previous_image, None,
        "a new tenant ran nothing before"
    );
    assert!(
        output.summary.contains("1.0.0") && output.summary.contains(&digest),
        "{}",
        output.summary
    );
}

#[tokio::test]
async fn an_upgrade_moves_the_running_image_to_previous_and_a_rerun_changes_nothing() {
    let repo = unique("app");
    let uri = create_repository(REGION, &repo).await;
    let old = format!("{uri}@{}", push_image(REGION, &repo, "1.0.0").await);
    let new = format!("{uri}@{}", push_image(REGION, &repo, "1.1.0").await);
    let step = CheckArtifact::new(artifact_config(&repo), aws().await);
    let facts = TenantFacts {
        image: Some(old.clone()),
        ..TenantFacts::default()
    };
    let mut tenant = record(&tenant_spec(), upgrading("1.0.0", "1.1.0", 0), facts);

    let first = expect_done(run(&step, &tenant).await);
    assert_eq!(first.facts.image.as_deref(), Some(new.as_str()));
    assert_eq!(first.facts.previous_image.as_deref(), Some(old.as_str()));

    tenant.facts = first.facts.clone();
    let second = expect_done(run(&step, &tenant).await);
    assert_eq!(
        second.facts, first.facts,
        "a re-run must not move the new image to previous"
    );
}

#[tokio::test]
async fn an_upgrade_after_an_abandoned_one_keeps_the_image_that_still_runs() {
    let repo = unique("app");
    let uri = create_repository(REGION, &repo).await;
    let running = format!("{uri}@{}", push_image(REGION, &repo, "1.0.0").await);
    let abandoned = format!("{uri}@{}", push_image(REGION, &repo, "1.1.0").await);
    let target = format!("{uri}@{}", push_image(REGION, &repo, "1.2.0").await);
    let step = CheckArtifact::new(artifact_config(&repo), aws().await);
    // What an upgrade to 1.1.0 that failed at Backup leaves behind: the tenant still
    // runs 1.0.0, but 1.1.0's image is the one recorded.
    let facts = TenantFacts {
        image: Some(abandoned),
        previous_image: Some(running.clone()),
        ..TenantFacts::default()
    };
    let tenant = record(&tenant_spec(), upgrading("1.0.0", "1.2.0", 0), facts);

    let output = expect_done(run(&step, &tenant).await);

    assert_eq!(output.facts.image, Some(target));
    assert_eq!(output.facts.previous_image, Some(running));
}

#[tokio::test]
async fn a_shared_registry_region_serves_tenants_of_every_region() {
    let repo = unique("app");
    let uri = create_repository("us-west-2", &repo).await;
    let digest = push_image("us-west-2", &repo, "2.0.0-rc.1").await;
    let config = ArtifactConfig {
        repository: repo.clone(),
        registry_region: Some(region("us-west-2")),
    };
    let step = CheckArtifact::new(config, aws().await);
    let tenant = record(
        &tenant_spec(),
        provisioning("2.0.0-rc.1", 0),
        TenantFacts::default(),
    );

    let output = expect_done(run(&step, &tenant).await);

    assert_eq!(output.facts.image, Some(format!("{uri}@{digest}")));
}

#[tokio::test]
async fn an_unpublished_release_fails_for_good_and_says_what_to_do() {
    let repo = unique("app");
    create_repository(REGION, &repo).await;
    push_image(REGION, &repo, "1.0.0").await;
    let step = CheckArtifact::new(artifact_config(&repo), aws().await);
    let facts = TenantFacts {
        image: Some("kept".into()),
        ..TenantFacts::default()
    };
    let tenant = record(&tenant_spec(), upgrading("1.0.0", "1.9.9", 0), facts);

    let reason = expect_final_failure(run(&step, &tenant).await);

    for part in ["1.9.9", repo.as_str(), "push the image", "published release"] {
        assert!(reason.contains(part), "reason lacks {part:?}: {reason}");
    }
}

#[tokio::test]
async fn an_unknown_repository_fails_for_good_and_names_it() {
    let repo = unique("missing");
    let step = CheckArtifact::new(artifact_config(&repo), aws().await);
    let tenant = record(&tenant_spec(), provisioning("1.0.0", 0), TenantFacts::default());

    let reason = expect_final_failure(run(&step, &tenant).await);

    for part in [
        "1.0.0",
        repo.as_str(),
        "repository does not exist",
        "push the image",
    ] {
        assert!(reason.contains(part), "reason lacks {part:?}: {reason}");
    }
}

#[tokio::test]
async fn an_unreachable_registry_is_retried() {
    // Nothing listens on port 9 of loopback: the request fails to dispatch, which is
    // the kind of trouble (like throttling) that passes.
    // (An endpoint set in code wins over AWS_ENDPOINT_URL only through the loader.)
    require_local_aws();
    let unreachable = aws_config::from_env()
        .endpoint_url("http://127.0.0.1:9")
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
        .load()
        .await;
    let step = CheckArtifact::new(
        artifact_config("tenant-app"),
        std::sync::Arc::new(AwsClients::new(unreachable)),
    );
    let tenant = record(&tenant_spec(), provisioning("1.0.0", 0), TenantFacts::default());

    match run(&step, &tenant).await {
        StepOutcome::Failed { retryable, reason } => {
            assert!(retryable, "a dispatch failure must be retried: {reason}");
            assert!(reason.contains("tenant-app"), "{reason}");
            assert!(
                !reason.contains("not published"),
                "the registry was reached: {reason}"
            );
        }
        other => panic!("expected a retryable failure, got {other:?}"),
    }
    // Asked before a rollout or a tenant command, the same trouble is not a verdict
    // on the release: callers answer it as a dependency that is down.
    let region = tenant_orchestrator::domain::Region::parse(REGION).unwrap();
    match step.check_published(&release("1.0.0"), &region).await {
        Err(ReleaseCheckError::Unavailable(message)) => {
            assert!(
                message.contains("could not say whether release 1.0.0 is published")
                    && message.ends_with("try again"),
                "{message}"
            );
        }
        other => panic!("expected the registry to be unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_rollout_start_checks_the_release_is_published_in_each_region() {
    let repo = unique("app");
    create_repository(REGION, &repo).await;
    push_image(REGION, &repo, "1.0.0").await;
    let step = CheckArtifact::new(artifact_config(&repo), aws().await);
    let region = tenant_orchestrator::domain::Region::parse(REGION).unwrap();

    step.check_published(&release("1.0.0"), &region).await.unwrap();
    let missing = step
        .check_published(&release("9.9.9"), &region)
        .await
        .unwrap_err();
    let missing = match missing {
        ReleaseCheckError::Unpublished(missing) => missing,
        other => panic!("an absent image is a verdict on the release: {other:?}"),
    };
    assert!(
        missing.contains("9.9.9") && missing.contains("push the image"),
        "{missing}"
    );
    let elsewhere = tenant_orchestrator::domain::Region::parse("ap-south-1").unwrap();
    let no_repository = step
        .check_published(&release("1.0.0"), &elsewhere)
        .await
        .unwrap_err();
    assert!(
        matches!(&no_repository, ReleaseCheckError::Unpublished(m) if m.contains(&repo)),
        "{no_repository:?}"
    );
}
