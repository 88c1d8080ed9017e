//! Shared set-up for the platform artifact tests: a fresh bucket on the local S3 (moto)
//! per test, and bundles made from the repository's own template and chart.

use std::path::Path;

use tenant_orchestrator::domain::PlatformVersion;
use tenant_orchestrator::platform::{self, BucketOutcome, S3PlatformArtifacts};
use tenant_orchestrator::ports::PlatformBundle;

pub fn require_local_aws() {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "integration tests need the local AWS: run `eval \"$(localstack/start.sh)\"` first (scripts/test.sh does it)"
    );
}

/// A test's own bucket: the artifact store on it, and a raw S3 client to reach
/// behind the store's back.
pub struct TestBucket {
    pub name: String,
    pub store: S3PlatformArtifacts,
    pub s3: aws_sdk_s3::Client,
}

/// A new, uniquely named bucket so tests never see each other's versions.
pub async fn fresh_bucket() -> TestBucket {
    require_local_aws();
    let config = aws_config::load_from_env().await;
    let s3 = platform::client(&config);
    let name = format!("platform-test-{}", uuid::Uuid::new_v4().simple());
    let store = S3PlatformArtifacts::new(s3.clone(), &name);
    assert_eq!(
        store.ensure_bucket("us-east-1").await.unwrap(),
        BucketOutcome::Created
    );
    TestBucket { name, store, s3 }
}

pub fn version(v: &str) -> PlatformVersion {
    PlatformVersion::parse(v).unwrap()
}

/// The repository's root: where `tenantctl platform publish` finds its default files.
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The repository's template and chart as platform version `v`.
pub fn repo_bundle(v: &str) -> PlatformBundle {
    let root = repo_root();
    PlatformBundle {
        version: version(v),
        template: std::fs::read_to_string(root.join("templates/cloudformation/tenant.yaml")).unwrap(),
        chart: platform::read_chart(&root.join("charts/tenant")).unwrap(),
    }
}

/// The repository's bundle with a changed template.
pub fn bundle_with_changed_template(v: &str) -> PlatformBundle {
    let mut bundle = repo_bundle(v);
    bundle.template.push_str("\n# changed\n");
    bundle
}
