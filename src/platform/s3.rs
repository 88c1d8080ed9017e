//! [`PlatformArtifacts`] on an S3 bucket. Layout, one bucket per installation:
//!
//! - `templates/{version}/{sha256}.yaml` — the template, as-is
//! - `charts/{version}/{sha256}.tgz` — the packaged chart
//! - `manifests/{version}.json` — the [`PlatformManifest`], written last with
//!   `If-None-Match: *`, so a version is published once and its first content wins.
//!
//! Artifacts are content-addressed, so writing one again (a retry, a lost answer, a
//! concurrent publisher of the same content) stores the same bytes under the same key.

use async_trait::async_trait;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration,
    PublicAccessBlockConfiguration, VersioningConfiguration,
};
use aws_sdk_s3::Client;
use chrono::Utc;
use tracing::instrument;

use crate::domain::PlatformVersion;
use crate::ports::{ArtifactError, PlatformArtifacts, PlatformBundle, Published};
use crate::record::{ContentDigest, PlatformManifest, StoredArtifact, StoredChart};

/// Largest template CloudFormation reads from S3 (1 MB).
pub const MAX_TEMPLATE_BYTES: usize = 1024 * 1024;

const MANIFESTS: &str = "manifests/";

/// An S3 client for platform artifacts, from the shared SDK configuration. Against a
/// custom endpoint (`AWS_ENDPOINT_URL`, e.g. the local AWS) it addresses buckets by
/// path, since such endpoints rarely resolve `BUCKET.host` names.
pub fn client(config: &aws_config::SdkConfig) -> Client {
    let custom_endpoint =
        config.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
    Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(custom_endpoint)
            .interceptor(crate::ports::aws_calls::AwsCallMetrics::new("s3"))
            .build(),
    )
}

/// Platform versions in one S3 bucket.
#[derive(Clone)]
pub struct S3PlatformArtifacts {
    client: Client,
    bucket: String,
}

/// What `ensure_bucket` did.
#[derive(Debug, PartialEq, Eq)]
pub enum BucketOutcome {
    Created,
    AlreadyExisted,
}

impl S3PlatformArtifacts {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Creates the bucket in `region` if it does not exist (idempotent), with
    /// versioning on (an overwritten or deleted object can be restored) and public
    /// access blocked.
    pub async fn ensure_bucket(&self, region: &str) -> Result<BucketOutcome, ArtifactError> {
        // Asked first: in us-east-1, creating a bucket one already owns succeeds.
        let outcome = match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => BucketOutcome::AlreadyExisted,
            Err(SdkError::ServiceError(e)) if e.err().is_not_found() => self.create_bucket(region).await?,
            Err(e) => return Err(classify(&format!("looking up bucket {}", self.bucket), e)),
        };
        self.protect_bucket().await?;
        Ok(outcome)
    }

    async fn create_bucket(&self, region: &str) -> Result<BucketOutcome, ArtifactError> {
        let mut create = self.client.create_bucket().bucket(&self.bucket);
        if region != "us-east-1" {
            create = create.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region))
                    .build(),
            );
        }
        let outcome = match create.send().await {
            Ok(_) => BucketOutcome::Created,
            Err(e) if e.code() == Some("BucketAlreadyOwnedByYou") => BucketOutcome::AlreadyExisted,
            Err(e) if e.code() == Some("BucketAlreadyExists") => {
                return Err(ArtifactError::Fatal {
                    context: format!("creating bucket {}", self.bucket),
                    message: "the name is taken by another AWS account; choose another bucket name".into(),
                })
            }
            Err(e) => return Err(classify(&format!("creating bucket {}", self.bucket), e)),
        };
        Ok(outcome)
    }

    /// Versioning on, public access blocked; both idempotent.
    async fn protect_bucket(&self) -> Result<(), ArtifactError> {
        self.client
            .put_bucket_versioning()
            .bucket(&self.bucket)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| classify(&format!("turning on versioning of bucket {}", self.bucket), e))?;
        self.client
            .put_public_access_block()
            .bucket(&self.bucket)
            .public_access_block_configuration(
                PublicAccessBlockConfiguration::builder()
                    .block_public_acls(true)
                    .ignore_public_acls(true)
                    .block_public_policy(true)
                    .restrict_public_buckets(true)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| classify(&format!("blocking public access to bucket {}", self.bucket), e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ArtifactError> {
        let context = || format!("reading s3://{}/{key}", self.bucket);
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => {
                let body = out.body.collect().await.map_err(|e| ArtifactError::Retryable {
                    context: context(),
                    message: e.to_string(),
                })?;
                Ok(Some(body.into_bytes().to_vec()))
            }
            Err(SdkError::ServiceError(e)) if e.err().is_no_such_key() => Ok(None),
            Err(e) => Err(classify(&context(), e)),
        }
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<(), ArtifactError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| classify(&format!("writing s3://{}/{key}", self.bucket), e))?;
        Ok(())
    }

    /// Writes the manifest unless one exists; `false` when one did.
    async fn put_manifest_once(&self, manifest: &PlatformManifest) -> Result<bool, ArtifactError> {
        let key = manifest_key(&manifest.version);
        let body = serde_json::to_vec_pretty(manifest).map_err(|e| ArtifactError::Fatal {
            context: format!("encoding the manifest of {}", manifest.version),
            message: e.to_string(),
        })?;
        let result = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/json")
            .if_none_match("*")
            .body(ByteStream::from(body))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            // 412: a manifest exists; 409: another write of it is in flight.
            Err(e)
                if matches!(
                    e.code(),
                    Some("PreconditionFailed" | "ConditionalRequestConflict")
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(classify(&format!("writing s3://{}/{key}", self.bucket), e)),
        }
    }

    async fn read_manifest(
        &self,
        version: &PlatformVersion,
    ) -> Result<Option<PlatformManifest>, ArtifactError> {
        let key = manifest_key(version);
        let Some(bytes) = self.get(&key).await? else {
            return Ok(None);
        };
        let manifest: PlatformManifest =
            serde_json::from_slice(&bytes).map_err(|e| ArtifactError::Fatal {
                context: format!("reading s3://{}/{key}", self.bucket),
                message: format!("not a platform manifest: {e}"),
            })?;
        if manifest.version != *version {
            return Err(ArtifactError::Fatal {
                context: format!("reading s3://{}/{key}", self.bucket),
                message: format!("the manifest names version {}, not {version}", manifest.version),
            });
        }
        Ok(Some(manifest))
    }

    /// The bytes of `artifact`, refused unless they hash to the manifest's digest.
    async fn fetch_checked(
        &self,
        version: &PlatformVersion,
        what: &'static str,
        artifact: &StoredArtifact,
    ) -> Result<Vec<u8>, ArtifactError> {
        let bytes = self
            .get(&artifact.key)
            .await?
            .ok_or_else(|| ArtifactError::Fatal {
                context: format!("reading the {what} of platform version {version}"),
                message: format!(
                "s3://{}/{} is missing although the manifest names it; restore it from the bucket's versions",
                self.bucket, artifact.key
            ),
            })?;
        let actual = ContentDigest::of(&bytes);
        if actual != artifact.sha256 {
            return Err(ArtifactError::Corrupt {
                version: *version,
                what,
                key: artifact.key.clone(),
                expected: artifact.sha256.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(bytes)
    }
}

fn manifest_key(version: &PlatformVersion) -> String {
    format!("{MANIFESTS}{version}.json")
}

/// The manifest `bundle` gets when published now by `actor`.
fn manifest_for(bundle: &PlatformBundle, actor: &str) -> PlatformManifest {
    let version = bundle.version;
    let template = ContentDigest::of(bundle.template.as_bytes());
    let chart = ContentDigest::of(&bundle.chart.bytes);
    PlatformManifest {
        version,
        template: StoredArtifact {
            key: format!("templates/{version}/{template}.yaml"),
            sha256: template,
            size: bundle.template.len() as u64,
        },
        chart: StoredChart {
            archive: StoredArtifact {
                key: format!("charts/{version}/{chart}.tgz"),
                sha256: chart,
                size: bundle.chart.bytes.len() as u64,
            },
            name: bundle.chart.name.clone(),
            chart_version: bundle.chart.chart_version.clone(),
        },
        published_at: Utc::now(),
        actor: actor.to_owned(),
    }
}

/// What `bundle` cannot be published for, if anything.
fn bundle_problem(bundle: &PlatformBundle) -> Option<String> {
    if bundle.template.trim().is_empty() {
        return Some("the template is empty; pass the CloudFormation template with --template".into());
    }
    if bundle.template.len() > MAX_TEMPLATE_BYTES {
        return Some(format!(
            "the template is {} bytes; CloudFormation reads at most {MAX_TEMPLATE_BYTES} from S3: split it into nested stacks",
            bundle.template.len()
        ));
    }
    if !bundle.chart.bytes.starts_with(&[0x1f, 0x8b]) {
        return Some(
            "the chart is not a gzip archive; pass a chart directory or a .tgz from `helm package`".into(),
        );
    }
    None
}

/// Which artifacts of `published` differ from `wanted`.
fn difference(published: &PlatformManifest, wanted: &PlatformManifest) -> String {
    let mut parts = Vec::new();
    if published.template.sha256 != wanted.template.sha256 {
        parts.push(format!(
            "template sha256 {} published, {} given",
            published.template.sha256, wanted.template.sha256
        ));
    }
    if published.chart.archive.sha256 != wanted.chart.archive.sha256 {
        parts.push(format!(
            "chart sha256 {} published, {} given",
            published.chart.archive.sha256, wanted.chart.archive.sha256
        ));
    }
    format!(
        "{}; published by {} at {}",
        parts.join(", "),
        published.actor,
        published.published_at
    )
}

#[async_trait]
impl PlatformArtifacts for S3PlatformArtifacts {
    #[instrument(skip_all, fields(version = %bundle.version, bucket = %self.bucket))]
    async fn publish(&self, bundle: &PlatformBundle, actor: &str) -> Result<Published, ArtifactError> {
        if let Some(problem) = bundle_problem(bundle) {
            return Err(ArtifactError::Invalid(problem));
        }
        let wanted = manifest_for(bundle, actor);
        let settle = |existing: PlatformManifest| {
            if existing.same_content(&wanted) {
                Ok(Published::AlreadyPublished(existing))
            } else {
                Err(ArtifactError::VersionTaken {
                    version: wanted.version,
                    detail: difference(&existing, &wanted),
                })
            }
        };
        if let Some(existing) = self.read_manifest(&bundle.version).await? {
            return settle(existing);
        }
        self.put(
            &wanted.template.key,
            bundle.template.clone().into_bytes(),
            "application/x-yaml",
        )
        .await?;
        self.put(
            &wanted.chart.archive.key,
            bundle.chart.bytes.clone(),
            "application/gzip",
        )
        .await?;
        if self.put_manifest_once(&wanted).await? {
            tracing::info!(template = %wanted.template.sha256, chart = %wanted.chart.archive.sha256, "platform version published");
            return Ok(Published::Created(wanted));
        }
        // Someone wrote the manifest first: another publisher, or this very write
        // whose answer was lost and that the SDK retried.
        match self.read_manifest(&bundle.version).await? {
            Some(existing) => settle(existing),
            None => Err(ArtifactError::Retryable {
                context: format!("publishing platform version {}", bundle.version),
                message: "another write of the manifest was in flight; publish again".into(),
            }),
        }
    }

    async fn manifest(&self, version: &PlatformVersion) -> Result<PlatformManifest, ArtifactError> {
        self.read_manifest(version)
            .await?
            .ok_or(ArtifactError::NotFound(*version))
    }

    async fn template(&self, version: &PlatformVersion) -> Result<String, ArtifactError> {
        let manifest = self.manifest(version).await?;
        let bytes = self
            .fetch_checked(version, "template", &manifest.template)
            .await?;
        String::from_utf8(bytes).map_err(|e| ArtifactError::Fatal {
            context: format!("reading the template of platform version {version}"),
            message: format!("not UTF-8 text: {e}"),
        })
    }

    async fn chart(&self, version: &PlatformVersion) -> Result<Vec<u8>, ArtifactError> {
        let manifest = self.manifest(version).await?;
        self.fetch_checked(version, "chart", &manifest.chart.archive)
            .await
    }

    async fn versions(&self) -> Result<Vec<PlatformVersion>, ArtifactError> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(MANIFESTS)
            .into_paginator()
            .send();
        let mut versions = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(&format!("listing s3://{}/{MANIFESTS}", self.bucket), e))?;
            for object in page.contents() {
                let parsed = object
                    .key()
                    .and_then(|k| k.strip_prefix(MANIFESTS))
                    .and_then(|k| k.strip_suffix(".json"))
                    .and_then(|v| PlatformVersion::parse(v).ok());
                match parsed {
                    Some(v) => versions.push(v),
                    None => {
                        tracing::warn!(key = ?object.key(), "not a platform manifest; left out of the list")
                    }
                }
            }
        }
        versions.sort();
        Ok(versions)
    }
}

/// Splits an SDK error into retryable (timeouts, throttling, 5xx) and fatal.
fn classify<E, R>(context: &str, error: SdkError<E, R>) -> ArtifactError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let message = aws_smithy_types::error::display::DisplayErrorContext(&error).to_string();
    let retryable = match &error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(e) => {
            matches!(
                e.err().code(),
                Some(
                    "SlowDown"
                        | "Throttling"
                        | "ThrottlingException"
                        | "RequestTimeout"
                        | "InternalError"
                        | "ServiceUnavailable"
                )
            )
        }
        _ => false,
    };
    let context = context.to_owned();
    if error.code() == Some("NoSuchBucket") {
        return ArtifactError::Fatal {
            context,
            message: "the bucket does not exist; create it with `tenantctl platform create-bucket` or set --platform-bucket".into(),
        };
    }
    if retryable {
        ArtifactError::Retryable { context, message }
    } else {
        ArtifactError::Fatal { context, message }
    }
}
