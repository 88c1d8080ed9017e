//! Set-up for the artifact, backup and configuration step tests: SDK clients on the
//! local AWS, tenants in the state a step runs in, images pushed to moto's ECR and
//! database clusters created in moto's RDS.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_ecr::types::ImageIdentifier;
use chrono::Utc;
use sha2::{Digest, Sha256};
use tenant_orchestrator::domain::{Region, ReleaseVersion, TenantSpec};
use tenant_orchestrator::machine::{TenantEvent, TenantState};
use tenant_orchestrator::record::{TenantFacts, TenantRecord};
use tenant_orchestrator::step::{Step, StepContext, StepOutcome, StepOutput};
use tenant_orchestrator::steps::AwsClients;

use crate::common::{release, require_local_aws, spec};

/// The region tenants live in here; the registry tests also use another one.
pub const REGION: &str = "eu-west-1";

pub async fn sdk_config() -> aws_config::SdkConfig {
    require_local_aws();
    aws_config::load_from_env().await
}

pub async fn aws() -> Arc<AwsClients> {
    Arc::new(AwsClients::new(sdk_config().await))
}

pub async fn region_config(region: &str) -> aws_config::SdkConfig {
    sdk_config()
        .await
        .to_builder()
        .region(aws_config::Region::new(region.to_owned()))
        .build()
}

pub async fn ecr(region: &str) -> aws_sdk_ecr::Client {
    aws_sdk_ecr::Client::new(&region_config(region).await)
}

pub async fn rds() -> aws_sdk_rds::Client {
    aws_sdk_rds::Client::new(&region_config(REGION).await)
}

pub async fn ssm() -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::new(&region_config(REGION).await)
}

/// A name no other test uses: `<prefix>-<8 hex>`.
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &id[..8])
}

/// A tenant with a unique id in [`REGION`].
pub fn tenant_spec() -> TenantSpec {
    spec(&unique("t"), REGION)
}

fn apply_all(mut state: TenantState, events: &[TenantEvent]) -> TenantState {
    for event in events {
        state = state.apply(event).expect("the machine accepts the set-up events");
    }
    state
}

/// `steps` successful steps into provisioning `to`.
pub fn provisioning(to: &str, steps: usize) -> TenantState {
    let mut events = vec![TenantEvent::Provision { release: release(to) }];
    events.extend(std::iter::repeat_n(TenantEvent::StepSucceeded, steps));
    apply_all(TenantState::initial(), &events)
}

pub fn active(on: &str) -> TenantState {
    provisioning(on, 6)
}

/// `steps` successful steps into the upgrade `from` → `to`.
pub fn upgrading(from: &str, to: &str, steps: usize) -> TenantState {
    let mut events = vec![TenantEvent::Upgrade { release: release(to) }];
    events.extend(std::iter::repeat_n(TenantEvent::StepSucceeded, steps));
    apply_all(active(from), &events)
}

pub fn deprovisioning(from: &str) -> TenantState {
    apply_all(active(from), &[TenantEvent::Deprovision])
}

pub fn record(spec: &TenantSpec, state: TenantState, facts: TenantFacts) -> TenantRecord {
    let mut r = TenantRecord::new(spec.clone(), state, Utc::now());
    r.facts = facts;
    r
}

/// Runs `step` once for `tenant`, as the worker would on its first attempt.
pub async fn run(step: &dyn Step, tenant: &TenantRecord) -> StepOutcome {
    let kind = tenant.state.step().expect("the tenant is in a state with a step");
    step.run(StepContext {
        tenant,
        step: kind,
        attempt: 0,
        worker: "test",
        fence: 1,
    })
    .await
}

pub fn expect_done(outcome: StepOutcome) -> StepOutput {
    match outcome {
        StepOutcome::Done(output) => output,
        other => panic!("expected the step to finish, got {other:?}"),
    }
}

/// The reason of a failure that is not retried.
pub fn expect_final_failure(outcome: StepOutcome) -> String {
    match outcome {
        StepOutcome::Failed {
            retryable: false,
            reason,
        } => reason,
        other => panic!("expected a failure that is not retried, got {other:?}"),
    }
}

/// Creates an ECR repository in `region` and returns its URI.
pub async fn create_repository(region: &str, name: &str) -> String {
    let out = ecr(region)
        .await
        .create_repository()
        .repository_name(name)
        .send()
        .await
        .expect("repository created");
    out.repository
        .and_then(|r| r.repository_uri)
        .expect("repository URI")
}

/// Pushes an image manifest tagged `tag` (one layer of its own, so every image has its
/// own digest) and returns the digest the registry reports for it.
pub async fn push_image(region: &str, repository: &str, tag: &str) -> String {
    push_image_declaring(region, repository, tag, None).await
}

/// As [`push_image`], an OCI manifest declaring database schema `schema` in the
/// annotation `io.tenant-orchestrator.schema-version` when given.
pub async fn push_image_declaring(region: &str, repository: &str, tag: &str, schema: Option<&str>) -> String {
    let layer = format!("sha256:{:x}", Sha256::digest(uuid::Uuid::new_v4().as_bytes()));
    let config = format!("sha256:{:x}", Sha256::digest(tag.as_bytes()));
    let mut manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1470, "digest": config},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 31357, "digest": layer}],
    });
    if let Some(schema) = schema {
        manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 1470, "digest": config},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "size": 31357, "digest": layer}],
            "annotations": {
                "io.tenant-orchestrator.schema-version": schema,
                "org.opencontainers.image.version": tag,
            },
        });
    }
    let client = ecr(region).await;
    client
        .put_image()
        .repository_name(repository)
        .image_manifest(manifest.to_string())
        .image_tag(tag)
        .send()
        .await
        .expect("image pushed");
    // Read it back the way a deploy tool would, rather than trusting PutImage's echo.
    let described = client
        .describe_images()
        .repository_name(repository)
        .image_ids(ImageIdentifier::builder().image_tag(tag).build())
        .send()
        .await
        .expect("image described");
    let digest = described.image_details()[0]
        .image_digest()
        .expect("digest")
        .to_owned();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "moto returned {digest:?} as the digest"
    );
    digest
}

/// Creates an Aurora PostgreSQL cluster in [`REGION`] and returns its identifier.
pub async fn create_cluster() -> String {
    let id = unique("db");
    let client = rds().await;
    client
        .create_db_cluster()
        .db_cluster_identifier(&id)
        .engine("aurora-postgresql")
        .master_username("tenant_admin")
        .master_user_password("not-a-real-password-1")
        .send()
        .await
        .expect("cluster created");
    // moto reports a new cluster `creating` once; wait until it is available, as the
    // infra step does before it records the outputs.
    for _ in 0..10 {
        let status = client
            .describe_db_clusters()
            .db_cluster_identifier(&id)
            .send()
            .await
            .expect("cluster described")
            .db_clusters()[0]
            .status()
            .map(str::to_owned);
        if status.as_deref() == Some("available") {
            return id;
        }
    }
    panic!("cluster {id} never became available");
}

/// Facts as the infra step leaves them for a tenant whose cluster is `cluster`.
pub fn stack_outputs(cluster: &str) -> BTreeMap<String, String> {
    [
        ("DatabaseClusterIdentifier", cluster.to_owned()),
        (
            "DatabaseEndpoint",
            format!("{cluster}.cluster-x.{REGION}.rds.amazonaws.com"),
        ),
        ("DatabasePort", "5432".to_owned()),
        (
            "DatabaseReaderEndpoint",
            format!("{cluster}.cluster-ro-x.{REGION}.rds.amazonaws.com"),
        ),
        ("BucketName", format!("{cluster}-bucket")),
        (
            "WorkloadRoleArn",
            format!("arn:aws:iam::123456789012:role/{cluster}"),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

pub fn region(name: &str) -> Region {
    Region::parse(name).unwrap()
}

pub fn version(v: &str) -> ReleaseVersion {
    release(v)
}

/// The manual snapshots RDS holds for `cluster`, by identifier.
pub async fn manual_snapshots(cluster: &str) -> Vec<String> {
    let mut ids: Vec<String> = rds()
        .await
        .describe_db_cluster_snapshots()
        .db_cluster_identifier(cluster)
        .snapshot_type("manual")
        .send()
        .await
        .expect("snapshots listed")
        .db_cluster_snapshots()
        .iter()
        .filter_map(|s| s.db_cluster_snapshot_identifier().map(str::to_owned))
        .collect();
    ids.sort();
    ids
}
