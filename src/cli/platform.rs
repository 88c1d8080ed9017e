//! `tenantctl platform`: publish the tenant's template and chart as a versioned
//! platform artifact in S3, list and show published versions.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use tenant_orchestrator::domain::PlatformVersion;
use tenant_orchestrator::platform::{self, BucketOutcome, S3PlatformArtifacts};
use tenant_orchestrator::ports::{ArtifactError, PlatformArtifacts, PlatformBundle, Published};
use tenant_orchestrator::record::PlatformManifest;

use super::{Failure, OutputFormat, EXIT_CONFLICT, EXIT_FAILURE, EXIT_INVALID_INPUT, EXIT_NOT_FOUND};

#[derive(Args, Debug)]
pub struct PlatformArgs {
    /// S3 bucket holding the published platform versions (one per installation,
    /// created by `tenantctl platform create-bucket`).
    #[arg(long, global = true, env = "TENANTCTL_PLATFORM_BUCKET")]
    platform_bucket: Option<String>,
    #[command(subcommand)]
    command: PlatformCommand,
}

#[derive(Subcommand, Debug)]
pub enum PlatformCommand {
    /// Create the bucket if it does not exist (idempotent), versioned and private, in
    /// the AWS region of the environment (AWS_REGION).
    CreateBucket,
    /// Publish the template and chart as a platform version. Publishing a version
    /// again with the same content changes nothing; with other content it is refused
    /// (exit 4): publish a new version.
    Publish {
        /// The version to publish: MAJOR.MINOR.PATCH, e.g. 1.4.0 or 2026.12.1.
        #[arg(long = "version")]
        platform_version: String,
        /// The CloudFormation template, published as-is.
        #[arg(long, default_value = "templates/cloudformation/tenant.yaml")]
        template: PathBuf,
        /// The Helm chart: a chart directory (packaged reproducibly, honouring its
        /// .helmignore) or a .tgz made by `helm package`.
        #[arg(long, default_value = "charts/tenant")]
        chart: PathBuf,
    },
    /// List the published versions, lowest first.
    List,
    /// Show a published version's manifest; checks that its template and chart are
    /// intact (their SHA-256 matches the manifest) and exits 1 if not.
    Show {
        /// The version, e.g. 1.4.0.
        version: String,
    },
}

pub async fn run(args: PlatformArgs, output: OutputFormat) -> Result<(), Failure> {
    let bucket = args.platform_bucket.filter(|b| !b.trim().is_empty()).ok_or_else(|| Failure {
        code: EXIT_INVALID_INPUT,
        error: anyhow::anyhow!(
            "no platform bucket: pass --platform-bucket or set TENANTCTL_PLATFORM_BUCKET (or `platform-bucket:` in the config file)"
        ),
    })?;
    // Parse what was typed before talking to AWS.
    let bundle = match &args.command {
        PlatformCommand::Publish {
            platform_version,
            template,
            chart,
        } => Some(read_bundle(platform_version, template, chart)?),
        _ => None,
    };
    let shown = match &args.command {
        PlatformCommand::Show { version } => Some(PlatformVersion::parse(version)?),
        _ => None,
    };
    let config = aws_config::load_from_env().await;
    let store = S3PlatformArtifacts::new(platform::client(&config), &bucket);
    match args.command {
        PlatformCommand::CreateBucket => {
            let region = config.region().map(|r| r.to_string()).ok_or_else(|| Failure {
                code: EXIT_INVALID_INPUT,
                error: anyhow::anyhow!("no AWS region: set AWS_REGION to the region the bucket belongs in"),
            })?;
            let outcome = store.ensure_bucket(&region).await.map_err(failure)?;
            println!(
                "bucket {bucket}: {}",
                match outcome {
                    BucketOutcome::Created => "created",
                    BucketOutcome::AlreadyExisted => "already exists",
                }
            );
            Ok(())
        }
        PlatformCommand::Publish { .. } => {
            let bundle = bundle.expect("parsed above");
            let actor = super::tenant::operator().0;
            let published = store.publish(&bundle, &actor).await.map_err(failure)?;
            let note = match &published {
                Published::Created(_) => "published",
                Published::AlreadyPublished(_) => "already published with this content; nothing changed",
            };
            print_manifest(output, published.manifest(), Some(note))
        }
        PlatformCommand::List => {
            let versions = store.versions().await.map_err(failure)?;
            let mut manifests = Vec::with_capacity(versions.len());
            for version in &versions {
                manifests.push(store.manifest(version).await.map_err(failure)?);
            }
            if output == OutputFormat::Json {
                println!("{}", serde_json::to_string_pretty(&manifests)?);
                return Ok(());
            }
            println!(
                "{:<14} {:<26} {:<22} {:<14} {:<14} ACTOR",
                "VERSION", "PUBLISHED", "CHART", "TEMPLATE", "CHART SHA256"
            );
            for m in &manifests {
                println!(
                    "{:<14} {:<26} {:<22} {:<14} {:<14} {}",
                    m.version.to_string(),
                    m.published_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                    format!("{}-{}", m.chart.name, m.chart.chart_version),
                    &m.template.sha256.as_str()[..12],
                    &m.chart.archive.sha256.as_str()[..12],
                    m.actor
                );
            }
            Ok(())
        }
        PlatformCommand::Show { .. } => {
            let version = shown.expect("parsed above");
            let manifest = store.manifest(&version).await.map_err(failure)?;
            store.template(&version).await.map_err(failure)?;
            store.chart(&version).await.map_err(failure)?;
            print_manifest(output, &manifest, Some("template and chart match their digests"))
        }
    }
}

/// The bundle the flags name, read and checked before anything is published.
fn read_bundle(version: &str, template: &Path, chart: &Path) -> Result<PlatformBundle, Failure> {
    let invalid = |error: anyhow::Error| Failure {
        code: EXIT_INVALID_INPUT,
        error,
    };
    let version = PlatformVersion::parse(version)?;
    let template_text = std::fs::read_to_string(template).map_err(|e| {
        invalid(anyhow::anyhow!(
            "cannot read the template {}: {e}; pass the CloudFormation template with --template",
            template.display()
        ))
    })?;
    let chart = platform::read_chart(chart).map_err(|e| invalid(e.into()))?;
    Ok(PlatformBundle {
        version,
        template: template_text,
        chart,
    })
}

fn print_manifest(output: OutputFormat, m: &PlatformManifest, note: Option<&str>) -> Result<(), Failure> {
    if output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(m)?);
        return Ok(());
    }
    println!("platform version: {}", m.version);
    println!("published:        {} by {}", m.published_at.to_rfc3339(), m.actor);
    println!(
        "template:         {} (sha256 {}, {} bytes)",
        m.template.key, m.template.sha256, m.template.size
    );
    println!(
        "chart:            {}-{} at {} (sha256 {}, {} bytes)",
        m.chart.name,
        m.chart.chart_version,
        m.chart.archive.key,
        m.chart.archive.sha256,
        m.chart.archive.size
    );
    if let Some(note) = note {
        println!("{note}");
    }
    Ok(())
}

/// The exit code an artifact store error maps to.
fn failure(e: ArtifactError) -> Failure {
    let code = match &e {
        ArtifactError::NotFound(_) => EXIT_NOT_FOUND,
        ArtifactError::VersionTaken { .. } => EXIT_CONFLICT,
        ArtifactError::Invalid(_) => EXIT_INVALID_INPUT,
        ArtifactError::Corrupt { .. } | ArtifactError::Retryable { .. } | ArtifactError::Fatal { .. } => {
            EXIT_FAILURE
        }
    };
    Failure {
        code,
        error: e.into(),
    }
}
