//! The chart half of the rollout preview: the tenant's manifests rendered by Helm's
//! engine (`helm template` on `localstack/helm-standin`) as deployed now and as a
//! platform version would deploy them, the charts taken from published platform
//! versions on moto's S3.

use std::sync::Arc;

use tenant_orchestrator::domain::{PlatformVersion, TenantSpec};
use tenant_orchestrator::machine::TenantState;
use tenant_orchestrator::platform;
use tenant_orchestrator::ports::{ChangePreview, PlatformArtifacts, PlatformBundle};
use tenant_orchestrator::record::TenantRecord;
use tenant_orchestrator::steps;

use crate::common::{release, spec};
use crate::helm_support::*;
use crate::infra_support::LocalAws;
use crate::platform_support::{fresh_bucket, repo_bundle};

/// The repository's chart as platform version `v`, with one more label on the
/// Deployment only.
fn deployment_labelled(v: &str) -> PlatformBundle {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&manifest_path("charts/tenant"), dir.path());
    let path = dir.path().join("templates/deployment.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let labels = "  labels:\n    {{- include \"tenant.labels\" . | nindent 4 }}\nspec:";
    assert!(
        text.contains(labels),
        "the chart's Deployment changed; adapt the test"
    );
    let text = text.replacen(
        labels,
        "  labels:\n    {{- include \"tenant.labels\" . | nindent 4 }}\n    cost-centre: tenants\nspec:",
        1,
    );
    std::fs::write(&path, text).unwrap();
    PlatformBundle {
        chart: platform::read_chart(dir.path()).unwrap(),
        ..repo_bundle(v)
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// An Active tenant on release 1.0.0 whose chart came from platform version `on`.
fn active_on(id: &str, on: PlatformVersion) -> TenantRecord {
    let state = TenantState::Active {
        release: release("1.0.0"),
        failed_upgrade: None,
    };
    let mut tenant_spec = spec(id, "us-east-1");
    tenant_spec.platform = Some(on);
    let mut record = TenantRecord::new(tenant_spec, state, chrono::Utc::now());
    record.facts = deployable_facts(id, 'a');
    record.facts.chart_platform = Some(on);
    record
}

fn on_platform(record: &TenantRecord, version: PlatformVersion) -> TenantSpec {
    let mut desired = record.spec.clone();
    desired.platform = Some(version);
    desired
}

/// The lines a unified diff removes and adds, without its file headers.
fn changed_lines(diff: &str) -> Vec<&str> {
    diff.lines()
        .filter(|l| !l.starts_with("---") && !l.starts_with("+++"))
        .filter(|l| l.starts_with('-') || l.starts_with('+'))
        .collect()
}

#[tokio::test]
async fn the_chart_diff_shows_exactly_what_the_new_platform_versions_chart_changes() {
    let aws = LocalAws::new().await;
    let bucket = fresh_bucket().await;
    let store: Arc<dyn PlatformArtifacts> = Arc::new(bucket.store);
    let base = repo_bundle("1.0.0");
    let next = deployment_labelled("1.1.0");
    for bundle in [&base, &next] {
        store.publish(bundle, "test").await.expect("published");
    }
    let helm = HelmStandin::new();
    let previewer = steps::change_preview(steps_config(&helm), aws.clients.clone(), Some(store));
    let tenant = active_on("chartdiff", base.version);

    let diff = previewer
        .preview_chart(&tenant, &on_platform(&tenant, next.version), &release("1.0.0"))
        .await
        .expect("rendered");
    assert_eq!(changed_lines(&diff), ["+    cost-centre: tenants"], "{diff}");
    assert!(
        diff.contains(" spec:\n   revisionHistoryLimit: 5\n"),
        "the context is the Deployment's: {diff}"
    );

    // The same chart and values: nothing to show.
    let unchanged = previewer
        .preview_chart(&tenant, &on_platform(&tenant, base.version), &release("1.0.0"))
        .await
        .expect("rendered");
    assert_eq!(unchanged, "");

    // Rendering ran through `helm template`, twice per preview, with the release's name.
    let templates = helm.calls_of("template");
    assert_eq!(templates.len(), 4, "{templates:?}");
    assert!(
        templates.iter().all(|argv| argv[1] == "chartdiff"),
        "{templates:?}"
    );
}

#[tokio::test]
async fn a_chart_that_cannot_be_rendered_says_why() {
    let aws = LocalAws::new().await;
    let bucket = fresh_bucket().await;
    let store: Arc<dyn PlatformArtifacts> = Arc::new(bucket.store);
    let base = repo_bundle("1.0.0");
    store.publish(&base, "test").await.expect("published");
    let helm = HelmStandin::new();
    let previewer = steps::change_preview(steps_config(&helm), aws.clients.clone(), Some(store));
    let tenant = active_on("chartgone", base.version);
    let unpublished = PlatformVersion::parse("9.9.9").unwrap();

    let err = previewer
        .preview_chart(&tenant, &on_platform(&tenant, unpublished), &release("1.0.0"))
        .await
        .unwrap_err();
    assert!(err.contains("rendering the chart after the change"), "{err}");
    assert!(err.contains("9.9.9") && err.contains("not published"), "{err}");
}
