//! CheckArtifact: resolves the release's image tag to a digest in the registry, so every
//! later deploy names an immutable image (`<repositoryUri>@sha256:…`) and never a tag
//! that could be re-pushed between the check and the deploy. It also reads the image's
//! manifest for the schema version the release declares (the annotation
//! `io.tenant-orchestrator.schema-version`), which decides whether Deploy migrates.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tracing::{info, instrument};

use crate::domain::{declared_schema, Region, ReleaseVersion, SchemaVersion};
use crate::machine::TenantState;
use crate::ports::{ReleaseCheckError, ReleaseRegistry};
use crate::record::TenantFacts;
use crate::step::{Step, StepContext, StepOutcome};

use super::{aws_failure, AwsClients};

/// Where the tenant application's images are published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArtifactConfig {
    /// ECR repository holding one image per release, tagged with the release version.
    pub repository: String,
    /// Region of the registry; absent means each tenant's own region (a replicated
    /// registry), so a deploy never pulls across regions.
    pub registry_region: Option<Region>,
}

impl Default for ArtifactConfig {
    fn default() -> Self {
        Self {
            repository: "tenant-app".into(),
            registry_region: None,
        }
    }
}

/// The `CheckArtifact` step.
pub struct CheckArtifact {
    config: ArtifactConfig,
    aws: Arc<AwsClients>,
}

impl CheckArtifact {
    pub fn new(config: ArtifactConfig, aws: Arc<AwsClients>) -> Self {
        Self { config, aws }
    }

    /// The digest the registry holds for `tag`, or `None` when no image carries it.
    async fn digest_of(&self, ecr: &aws_sdk_ecr::Client, tag: &str) -> Result<Option<String>, StepOutcome> {
        let what = format!("looking up image {}:{tag}", self.config.repository);
        let found = ecr
            .describe_images()
            .repository_name(&self.config.repository)
            .image_ids(
                aws_sdk_ecr::types::ImageIdentifier::builder()
                    .image_tag(tag)
                    .build(),
            )
            .send()
            .await;
        let details = match found {
            Ok(out) => out.image_details,
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_image_not_found_exception()) =>
            {
                return Ok(None)
            }
            Err(err) => return Err(aws_failure(&what, err)),
        };
        let digest = details
            .unwrap_or_default()
            .into_iter()
            .find_map(|d| d.image_digest)
            .ok_or_else(|| {
                StepOutcome::retry(format!("{what}: the registry listed the tag without a digest"))
            })?;
        if !is_sha256_digest(&digest) {
            return Err(StepOutcome::fail(format!(
                "{what}: the registry returned {digest:?}, which is not a sha256 digest"
            )));
        }
        Ok(Some(digest))
    }

    /// The schema version the manifest of image `digest` declares (`None`: none).
    async fn schema_of(
        &self,
        ecr: &aws_sdk_ecr::Client,
        release: &ReleaseVersion,
        digest: &str,
    ) -> Result<Option<SchemaVersion>, StepOutcome> {
        let what = format!(
            "reading the manifest of image {}@{digest}",
            self.config.repository
        );
        let found = ecr
            .batch_get_image()
            .repository_name(&self.config.repository)
            .image_ids(
                aws_sdk_ecr::types::ImageIdentifier::builder()
                    .image_digest(digest)
                    .build(),
            )
            .set_accepted_media_types(Some(MANIFEST_MEDIA_TYPES.map(String::from).to_vec()))
            .send()
            .await
            .map_err(|err| aws_failure(&what, err))?;
        let manifest = found
            .images
            .unwrap_or_default()
            .into_iter()
            .find_map(|image| image.image_manifest)
            .ok_or_else(|| StepOutcome::retry(format!("{what}: the registry returned no manifest")))?;
        declared_schema(&manifest).map_err(|e| {
            StepOutcome::fail(format!(
                "release {release} cannot be deployed: {what}: {e}; push the image again with a valid annotation"
            ))
        })
    }

    /// `Err` with what is missing when `release` has no image in the registry that
    /// serves `region`: checked before a rollout starts, so an unknown release is
    /// refused up front rather than failing every canary. Trouble that passes
    /// (throttling, an unreachable or failing registry) is
    /// [`ReleaseCheckError::Unavailable`], not a verdict on the release.
    pub async fn check_published(
        &self,
        release: &ReleaseVersion,
        region: &Region,
    ) -> Result<(), ReleaseCheckError> {
        let registry = self
            .config
            .registry_region
            .clone()
            .unwrap_or_else(|| region.clone());
        let ecr = &self.aws.region(&registry).ecr;
        let reason = |outcome: StepOutcome| match outcome {
            StepOutcome::Failed { reason, .. } => reason,
            other => format!("{other:?}"),
        };
        match self.digest_of(ecr, &release.image_tag()).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(ReleaseCheckError::Unpublished(reason(self.unpublished(
                release,
                &registry,
                "no image has that tag",
            )))),
            Err(StepOutcome::Failed {
                retryable: true,
                reason,
            }) => Err(ReleaseCheckError::Unavailable(format!(
                "the artifact registry could not say whether release {release} is published: {reason}; try again"
            ))),
            Err(outcome) => Err(ReleaseCheckError::Unpublished(reason(outcome))),
        }
    }

    fn unpublished(&self, release: &ReleaseVersion, registry: &Region, what: &str) -> StepOutcome {
        StepOutcome::fail(format!(
            "release {release} is not published: {what} in ECR repository {} ({registry}); \
             push the image tagged {} or pick a published release",
            self.config.repository,
            release.image_tag()
        ))
    }
}

/// Rollouts ask the registry the deploys pull from.
#[async_trait]
impl ReleaseRegistry for CheckArtifact {
    async fn check_published(
        &self,
        release: &ReleaseVersion,
        region: &Region,
    ) -> Result<(), ReleaseCheckError> {
        CheckArtifact::check_published(self, release, region).await
    }
}

#[async_trait]
impl Step for CheckArtifact {
    #[instrument(skip_all, fields(tenant = %ctx.tenant.id(), step = %ctx.step))]
    async fn run(&self, ctx: StepContext<'_>) -> StepOutcome {
        let tenant = ctx.tenant;
        let Some(release) = tenant.state.working_release() else {
            return StepOutcome::fail(format!(
                "{} has no release to check while it is {}",
                ctx.step,
                tenant.state.label()
            ));
        };
        let registry = self
            .config
            .registry_region
            .clone()
            .unwrap_or_else(|| tenant.spec.region.clone());
        let ecr = &self.aws.region(&registry).ecr;

        let repository = match ecr
            .describe_repositories()
            .repository_names(&self.config.repository)
            .send()
            .await
        {
            Ok(out) => out.repositories.unwrap_or_default().into_iter().next(),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_repository_not_found_exception()) =>
            {
                None
            }
            Err(err) => {
                return aws_failure(&format!("describing repository {}", self.config.repository), err)
            }
        };
        let Some(uri) = repository.and_then(|r| r.repository_uri) else {
            return self.unpublished(release, &registry, "the repository does not exist");
        };
        let digest = match self.digest_of(ecr, &release.image_tag()).await {
            Ok(Some(digest)) => digest,
            Ok(None) => return self.unpublished(release, &registry, "no image has that tag"),
            Err(outcome) => return outcome,
        };
        let image = format!("{uri}@{digest}");
        let schema = match self.schema_of(ecr, release, &digest).await {
            Ok(schema) => schema,
            Err(outcome) => return outcome,
        };

        let mut facts = tenant.facts.clone();
        facts.target_schema = schema.clone();
        if let TenantState::Upgrading { from, .. } = &tenant.state {
            // Only needed to tell a stale image (from an upgrade abandoned after this
            // step) from the one running; skipped on a re-run of this step.
            let running = if facts.image.as_deref() == Some(image.as_str()) {
                None
            } else {
                match self.digest_of(ecr, &from.image_tag()).await {
                    Ok(found) => found.map(|d| format!("{uri}@{d}")),
                    Err(outcome) => return outcome,
                }
            };
            facts.previous_image = image_before_upgrade(&facts, &image, running.as_deref());
        }
        facts.image = Some(image.clone());
        info!(%release, %image, schema = ?schema, "artifact resolved");
        let mut summary = match &facts.previous_image {
            Some(previous) if matches!(tenant.state, TenantState::Upgrading { .. }) => {
                format!("release {release} is {image} (previously {previous})")
            }
            _ => format!("release {release} is {image}"),
        };
        if let Some(schema) = &schema {
            summary.push_str(&format!(", declaring schema {schema}"));
        }
        StepOutcome::done(summary, facts)
    }
}

/// The image the tenant ran before this upgrade, given the facts as they were, the
/// image the upgrade moves to, and the image the release being left is tagged with in
/// the registry today (if it still is).
///
/// Normally that is the image recorded last (`facts.image`). Two cases differ: a
/// re-run of this step already moved it (the recorded image is the target), and an
/// earlier upgrade abandoned after this step left its target recorded while the tenant
/// kept running the image that upgrade had moved to `previous_image`.
fn image_before_upgrade(facts: &TenantFacts, target: &str, running_release: Option<&str>) -> Option<String> {
    let recorded = facts.image.as_deref();
    let previous = facts.previous_image.as_deref();
    if recorded == Some(target) {
        return facts.previous_image.clone();
    }
    let Some(running) = running_release else {
        return recorded.or(previous).map(str::to_owned);
    };
    let runs = |image: Option<&str>| image.is_some_and(|i| digest(i) == digest(running));
    if runs(recorded) {
        recorded.map(str::to_owned)
    } else if runs(previous) {
        previous.map(str::to_owned)
    } else {
        // Neither matches (the tag was moved, or facts predate digests): the recorded
        // image is what the last deploy used, if there is one.
        recorded.or(Some(running)).map(str::to_owned)
    }
}

/// The manifest formats a release image may be pushed in; the annotation is read from
/// any of them that carries annotations.
const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

fn digest(image: &str) -> &str {
    image.rsplit_once('@').map_or(image, |(_, d)| d)
}

fn is_sha256_digest(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPO: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/tenant-app";

    fn image(c: char) -> String {
        format!("{REPO}@sha256:{}", c.to_string().repeat(64))
    }

    fn facts(recorded: Option<char>, previous: Option<char>) -> TenantFacts {
        TenantFacts {
            image: recorded.map(image),
            previous_image: previous.map(image),
            ..TenantFacts::default()
        }
    }

    #[test]
    fn an_upgrade_moves_the_running_image_to_previous() {
        let f = facts(Some('a'), None);
        assert_eq!(
            image_before_upgrade(&f, &image('b'), Some(&image('a'))),
            Some(image('a'))
        );
        // Without the release being left still in the registry, the record is trusted.
        assert_eq!(image_before_upgrade(&f, &image('b'), None), Some(image('a')));
    }

    #[test]
    fn a_rerun_keeps_the_image_it_moved_before() {
        let f = facts(Some('b'), Some('a'));
        assert_eq!(image_before_upgrade(&f, &image('b'), None), Some(image('a')));
    }

    #[test]
    fn an_abandoned_upgrade_does_not_pass_for_the_running_image() {
        // Upgrade to c was abandoned after CheckArtifact: c is recorded, a still runs.
        let f = facts(Some('c'), Some('a'));
        assert_eq!(
            image_before_upgrade(&f, &image('d'), Some(&image('a'))),
            Some(image('a'))
        );
    }

    #[test]
    fn a_moved_tag_falls_back_to_the_recorded_image() {
        let f = facts(Some('a'), Some('z'));
        assert_eq!(
            image_before_upgrade(&f, &image('b'), Some(&image('e'))),
            Some(image('a'))
        );
        let empty = facts(None, None);
        assert_eq!(
            image_before_upgrade(&empty, &image('b'), Some(&image('e'))),
            Some(image('e'))
        );
        assert_eq!(image_before_upgrade(&empty, &image('b'), None), None);
    }

    #[test]
    fn only_sha256_digests_are_accepted() {
        assert!(is_sha256_digest(&format!("sha256:{}", "0a".repeat(32))));
        assert!(!is_sha256_digest("sha256:abc"));
        assert!(!is_sha256_digest(&format!("sha256:{}", "A".repeat(64))));
        assert!(!is_sha256_digest(&format!("sha512:{}", "a".repeat(64))));
    }

    #[test]
    fn config_defaults_and_parses_the_registry_region() {
        let c: ArtifactConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c.repository, "tenant-app");
        assert_eq!(c.registry_region, None);
        let c: ArtifactConfig = serde_json::from_str(r#"{"registry_region": "eu-west-1"}"#).unwrap();
        assert_eq!(c.registry_region.unwrap().as_str(), "eu-west-1");
        assert!(serde_json::from_str::<ArtifactConfig>(r#"{"registry_region": "moon"}"#).is_err());
    }
}
