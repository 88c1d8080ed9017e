//! Platform versions published to S3 (moto): publishing, idempotent republishing,
//! refused changes, digest checks on fetch, listing, and `tenantctl platform` as an
//! operator and a pipeline run it.

#[path = "common/platform.rs"]
mod platform_support;

use std::process::{Command, Output};

use aws_sdk_s3::primitives::ByteStream;
use platform_support::*;
use tenant_orchestrator::ports::{ArtifactError, PlatformArtifacts, Published};

#[tokio::test]
async fn a_published_version_is_fetched_back_exactly_and_listed() {
    let bucket = fresh_bucket().await;
    let bundle = repo_bundle("1.4.0");

    let published = bucket.store.publish(&bundle, "operator:alice").await.unwrap();

    let Published::Created(manifest) = published else {
        panic!("a new version is created: {published:?}")
    };
    assert_eq!(manifest.version, version("1.4.0"));
    assert_eq!(manifest.actor, "operator:alice");
    assert_eq!(
        (
            manifest.chart.name.as_str(),
            manifest.chart.chart_version.as_str()
        ),
        ("tenant", "0.1.0")
    );
    assert_eq!(
        manifest.template.key,
        format!("templates/1.4.0/{}.yaml", manifest.template.sha256)
    );
    assert_eq!(
        manifest.chart.archive.key,
        format!("charts/1.4.0/{}.tgz", manifest.chart.archive.sha256)
    );
    assert_eq!(manifest.template.size, bundle.template.len() as u64);
    assert_eq!(bucket.store.manifest(&version("1.4.0")).await.unwrap(), manifest);
    assert_eq!(
        bucket.store.template(&version("1.4.0")).await.unwrap(),
        bundle.template
    );
    assert_eq!(
        bucket.store.chart(&version("1.4.0")).await.unwrap(),
        bundle.chart.bytes
    );
    assert_eq!(bucket.store.versions().await.unwrap(), [version("1.4.0")]);
}

#[tokio::test]
async fn publishing_the_same_content_again_changes_nothing() {
    let bucket = fresh_bucket().await;
    let first = bucket
        .store
        .publish(&repo_bundle("2026.12.1"), "operator:alice")
        .await
        .unwrap();

    // A re-run (or a retry after a lost answer), the chart packaged afresh from disk.
    let again = bucket
        .store
        .publish(&repo_bundle("2026.12.1"), "operator:bob")
        .await
        .unwrap();

    assert_eq!(again, Published::AlreadyPublished(first.manifest().clone()));
    let manifest = bucket.store.manifest(&version("2026.12.1")).await.unwrap();
    assert_eq!(manifest.actor, "operator:alice", "the first publish is kept");
}

#[tokio::test]
async fn other_content_under_a_published_version_is_refused_and_the_first_is_kept() {
    let bucket = fresh_bucket().await;
    let first = bucket
        .store
        .publish(&repo_bundle("1.4.0"), "operator:alice")
        .await
        .unwrap();

    let err = bucket
        .store
        .publish(&bundle_with_changed_template("1.4.0"), "operator:bob")
        .await
        .unwrap_err();

    assert!(matches!(err, ArtifactError::VersionTaken { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("version 1.4.0 is already published with other content")
            && message.contains("publish a new version")
            && message.contains("template sha256")
            && !message.contains("chart sha256"),
        "{message}"
    );
    assert_eq!(
        &bucket.store.manifest(&version("1.4.0")).await.unwrap(),
        first.manifest()
    );
    assert_eq!(
        bucket.store.template(&version("1.4.0")).await.unwrap(),
        repo_bundle("1.4.0").template
    );
}

#[tokio::test]
async fn concurrent_publishers_of_one_version_agree_on_a_single_content() {
    let bucket = fresh_bucket().await;
    let same = repo_bundle("1.0.0");
    let (a, b) = tokio::join!(
        bucket.store.publish(&same, "operator:a"),
        bucket.store.publish(&same, "operator:b")
    );
    assert_eq!(
        a.unwrap().manifest().template.sha256,
        b.unwrap().manifest().template.sha256
    );

    let (one, other) = (repo_bundle("2.0.0"), bundle_with_changed_template("2.0.0"));
    let (a, b) = tokio::join!(
        bucket.store.publish(&one, "operator:a"),
        bucket.store.publish(&other, "operator:b")
    );
    let outcomes = [a, b];
    let won: Vec<_> = outcomes.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(won.len(), 1, "exactly one content wins: {outcomes:?}");
    assert!(
        outcomes
            .iter()
            .any(|r| matches!(r, Err(ArtifactError::VersionTaken { .. }))),
        "{outcomes:?}"
    );
    let kept = bucket.store.manifest(&version("2.0.0")).await.unwrap();
    assert_eq!(&kept, won[0].manifest());
}

#[tokio::test]
async fn a_changed_object_is_refused_on_fetch() {
    let bucket = fresh_bucket().await;
    let published = bucket
        .store
        .publish(&repo_bundle("1.4.0"), "operator:alice")
        .await
        .unwrap();
    let manifest = published.manifest();

    for key in [&manifest.template.key, &manifest.chart.archive.key] {
        bucket
            .s3
            .put_object()
            .bucket(&bucket.name)
            .key(key)
            .body(ByteStream::from_static(b"tampered"))
            .send()
            .await
            .unwrap();
    }

    let err = bucket.store.template(&version("1.4.0")).await.unwrap_err();
    let ArtifactError::Corrupt {
        what, key, expected, ..
    } = &err
    else {
        panic!("a changed template is corrupt: {err:?}")
    };
    assert_eq!(
        (*what, key, expected),
        (
            "template",
            &manifest.template.key,
            &manifest.template.sha256.to_string()
        )
    );
    assert!(err.to_string().contains("publish a new version"), "{err}");
    let err = bucket.store.chart(&version("1.4.0")).await.unwrap_err();
    assert!(
        matches!(err, ArtifactError::Corrupt { what: "chart", .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn versions_are_listed_in_numeric_order_and_unknown_ones_are_not_found() {
    let bucket = fresh_bucket().await;
    for v in ["1.10.0", "1.9.3", "2026.1.0"] {
        bucket
            .store
            .publish(&repo_bundle(v), "operator:alice")
            .await
            .unwrap();
    }

    assert_eq!(
        bucket.store.versions().await.unwrap(),
        [version("1.9.3"), version("1.10.0"), version("2026.1.0")]
    );
    let err = bucket.store.manifest(&version("3.0.0")).await.unwrap_err();
    assert!(matches!(err, ArtifactError::NotFound(_)), "{err:?}");
    assert!(err.to_string().contains("tenantctl platform list"), "{err}");
}

#[tokio::test]
async fn a_missing_bucket_says_how_to_create_it() {
    require_local_aws();
    let config = aws_config::load_from_env().await;
    let store = tenant_orchestrator::platform::S3PlatformArtifacts::new(
        tenant_orchestrator::platform::client(&config),
        format!("platform-missing-{}", uuid::Uuid::new_v4().simple()),
    );
    let err = store
        .publish(&repo_bundle("1.0.0"), "operator:alice")
        .await
        .unwrap_err();
    assert!(matches!(err, ArtifactError::Fatal { .. }), "{err:?}");
    assert!(
        err.to_string().contains("tenantctl platform create-bucket"),
        "{err}"
    );
}

fn tenantctl(bucket: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tenantctl"))
        .current_dir(repo_root())
        .args(args)
        .env("TENANTCTL_PLATFORM_BUCKET", bucket)
        .env("TENANTCTL_LOG", "warn")
        .env("TENANTCTL_ACTOR", "cli-test")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn tenantctl_publishes_shows_and_lists_platform_versions() {
    require_local_aws();
    let bucket = format!("platform-cli-{}", uuid::Uuid::new_v4().simple());
    let created = tenantctl(&bucket, &["platform", "create-bucket"]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    assert_eq!(text(&created.stdout).trim(), format!("bucket {bucket}: created"));
    let again = tenantctl(&bucket, &["platform", "create-bucket"]);
    assert_eq!(
        text(&again.stdout).trim(),
        format!("bucket {bucket}: already exists")
    );

    // The repository's own template and chart, by default.
    let published = tenantctl(
        &bucket,
        &["platform", "publish", "--version", "1.4.0", "--output", "json"],
    );
    assert!(published.status.success(), "{}", text(&published.stderr));
    let manifest: serde_json::Value = serde_json::from_slice(&published.stdout).unwrap();
    assert_eq!(manifest["version"], "1.4.0");
    assert_eq!(manifest["actor"], "operator:cli-test");
    assert_eq!(manifest["chart"]["name"], "tenant");

    let republished = tenantctl(&bucket, &["platform", "publish", "--version", "1.4.0"]);
    assert!(republished.status.success(), "{}", text(&republished.stderr));
    assert!(text(&republished.stdout).contains("already published with this content"));

    let shown = tenantctl(&bucket, &["platform", "show", "1.4.0"]);
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    let shown = text(&shown.stdout);
    assert!(shown.contains("platform version: 1.4.0"), "{shown}");
    assert!(
        shown.contains(manifest["template"]["sha256"].as_str().unwrap()),
        "{shown}"
    );
    assert!(
        shown.contains("template and chart match their digests"),
        "{shown}"
    );

    let listed = tenantctl(&bucket, &["platform", "list", "--output", "json"]);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed, serde_json::json!([manifest]));
    let table = tenantctl(&bucket, &["platform", "list"]);
    assert!(
        text(&table.stdout)
            .lines()
            .any(|l| l.starts_with("1.4.0 ") && l.contains("tenant-0.1.0")),
        "{}",
        text(&table.stdout)
    );
}

#[tokio::test]
async fn tenantctl_platform_exit_codes_say_what_went_wrong() {
    require_local_aws();
    let bucket = format!("platform-cli-{}", uuid::Uuid::new_v4().simple());
    assert!(tenantctl(&bucket, &["platform", "create-bucket"])
        .status
        .success());
    assert!(tenantctl(&bucket, &["platform", "publish", "--version", "1.0.0"])
        .status
        .success());
    let changed = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(changed.path(), "Resources: {}\n").unwrap();
    let missing_chart = repo_root().join("no-such-chart");

    let cases: Vec<(Vec<&str>, u8, &str)> = vec![
        (
            vec!["platform", "publish", "--version", "1.0"],
            2,
            "expected MAJOR.MINOR.PATCH",
        ),
        (
            vec!["platform", "show", "v1.0.0"],
            2,
            "invalid platform version \"v1.0.0\"",
        ),
        (
            vec![
                "platform",
                "publish",
                "--version",
                "1.1.0",
                "--chart",
                missing_chart.to_str().unwrap(),
            ],
            2,
            "cannot read the chart",
        ),
        (
            vec![
                "platform",
                "publish",
                "--version",
                "1.1.0",
                "--template",
                "missing.yaml",
            ],
            2,
            "cannot read the template missing.yaml",
        ),
        (
            vec!["platform", "show", "9.9.9"],
            3,
            "platform version 9.9.9 is not published",
        ),
        (
            vec![
                "platform",
                "publish",
                "--version",
                "1.0.0",
                "--template",
                changed.path().to_str().unwrap(),
            ],
            4,
            "already published with other content",
        ),
    ];
    for (args, code, message) in cases {
        let out = tenantctl(&bucket, &args);
        assert_eq!(
            out.status.code(),
            Some(code as i32),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(message),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }

    let no_bucket = tenantctl("", &["platform", "list"]);
    assert_eq!(no_bucket.status.code(), Some(2), "{}", text(&no_bucket.stderr));
    assert!(text(&no_bucket.stderr).contains("TENANTCTL_PLATFORM_BUCKET"));

    // A damaged object fails `show` (exit 1) instead of passing as the published version.
    let config = aws_config::load_from_env().await;
    let s3 = tenant_orchestrator::platform::client(&config);
    let store = tenant_orchestrator::platform::S3PlatformArtifacts::new(s3.clone(), &bucket);
    let manifest = store.manifest(&version("1.0.0")).await.unwrap();
    s3.put_object()
        .bucket(&bucket)
        .key(&manifest.chart.archive.key)
        .body(ByteStream::from_static(b"tampered"))
        .send()
        .await
        .unwrap();
    let corrupt = tenantctl(&bucket, &["platform", "show", "1.0.0"]);
    assert_eq!(corrupt.status.code(), Some(1), "{}", text(&corrupt.stderr));
    assert!(
        text(&corrupt.stderr).contains("is corrupt"),
        "{}",
        text(&corrupt.stderr)
    );
}
