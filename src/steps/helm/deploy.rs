//! Deploy: `helm upgrade --install` of the tenant's release on the resolved image,
//! with the chart of the tenant's platform version (else the configured chart). Done,
//! the step records the platform version deployed (`facts.chart_platform`).
//!
//! During an upgrade the step first records which revision ran before it, so a
//! rollback knows where to return. That record is persisted (a `Pending` outcome)
//! before Helm is asked to change anything: recorded after the upgrade, a crash in
//! between would make the new revision look like the one to return to. And the
//! record of an earlier upgrade is forgotten first, in a run that cannot fail, so a
//! deploy that fails early never leaves a stale revision for the rollback.
//!
//! When the release declares a schema the database is not on, the chart's pre-upgrade
//! hook Job migrates it, and a Helm rollback cannot undo that. So an upgrade records
//! the migration (`facts.migration`: from, to, the pre-upgrade snapshot and the
//! restore policy) in a write of its own before Helm runs, for the rollback to find.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tracing::instrument;

use crate::domain::{PlatformVersion, TenantSpec};
use crate::machine::TenantState;
use crate::record::{Migration, TenantFacts};
use crate::step::{Step, StepContext, StepOutcome};
use crate::steps::platform::{PlatformSource, PlatformUnavailable};
use crate::steps::StepsConfig;

use super::{busy, helm_failure, release_cli, values, HelmCli};

/// This step's bookkeeping in `facts.progress`, under `"deploy"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct DeployProgress {
    /// The release being deployed; a record for another release is not ours.
    release: String,
    /// Whether `helm_revision_before_upgrade` now holds this upgrade's answer.
    before_recorded: bool,
}

impl DeployProgress {
    fn read(facts: &TenantFacts, release: &str) -> Option<Self> {
        let raw = facts.progress.as_ref()?.get("deploy")?.clone();
        serde_json::from_value::<Self>(raw)
            .ok()
            .filter(|p| p.release == release)
    }

    fn write(&self, facts: &mut TenantFacts) {
        facts.progress = Some(serde_json::json!({ "deploy": self }));
    }
}

pub struct Deploy {
    config: Arc<StepsConfig>,
    bin: String,
    platforms: PlatformSource,
}

impl Deploy {
    /// Deploys the configured chart; a tenant naming a platform version fails until
    /// [`Deploy::with_platforms`] says where versions are published.
    pub fn new(config: Arc<StepsConfig>) -> Self {
        let bin = config.helm.binary();
        Self {
            config,
            bin,
            platforms: PlatformSource::default(),
        }
    }

    /// Deploys a tenant's platform version's chart from `platforms`.
    pub fn with_platforms(mut self, platforms: PlatformSource) -> Self {
        self.platforms = platforms;
        self
    }

    /// Installs or upgrades unless the deployed revision already has exactly `values`
    /// and came from the spec's platform version.
    async fn deploy(
        &self,
        cli: &HelmCli,
        spec: &TenantSpec,
        values: serde_json::Value,
        mut facts: TenantFacts,
    ) -> StepOutcome {
        let history = match cli.history().await {
            Ok(h) => h,
            Err(e) => return helm_failure(e, &facts),
        };
        if let Some(pending) = busy(&history, &cli.release, &facts) {
            return pending;
        }
        let release = values["release"].as_str().unwrap_or_default().to_owned();
        if let Some(deployed) = history.deployed() {
            match cli.values(deployed).await {
                Ok(current) if current == values && facts.chart_platform == spec.platform => {
                    facts.helm_revision = Some(deployed);
                    facts.progress = None;
                    return StepOutcome::done(
                        format!("revision {deployed} already runs release {release} with these values"),
                        facts,
                    );
                }
                Ok(_) => {}
                Err(e) => return helm_failure(e, &facts),
            }
        }
        let file = match values_file(&values) {
            Ok(f) => f,
            Err(e) => return StepOutcome::retry(format!("cannot write the Helm values file: {e}")),
        };
        // Held until Helm is done: a platform version's chart is read from this file.
        let chart = match self.chart(spec).await {
            Ok(chart) => chart,
            Err(outcome) => return outcome,
        };
        let chart_path = match &chart {
            Some(file) => file.path().to_string_lossy().into_owned(),
            None => self.config.helm.chart.clone(),
        };
        match cli.upgrade_install(&chart_path, file.path()).await {
            Ok(revision) => {
                facts.helm_revision = Some(revision);
                facts.chart_platform = spec.platform;
                facts.progress = None;
                let digest = values["image"]["digest"].as_str().unwrap_or_default();
                let mut summary = format!("revision {revision} deployed: release {release}, image {digest}");
                if let Some(m) = &facts.migration {
                    let from = m
                        .from
                        .as_ref()
                        .map_or_else(|| "none".to_owned(), |s| s.to_string());
                    summary.push_str(&format!(
                        "; its pre-upgrade hook migrated the database from schema {from} to {}",
                        m.to
                    ));
                }
                StepOutcome::done(summary, facts)
            }
            Err(e) => helm_failure(e, &facts),
        }
    }
}

impl Deploy {
    /// The migration this upgrade must record before Helm runs its hook: `None` when
    /// the release declares no schema, the database is on it already, or the migration
    /// is recorded already.
    fn migration_to_record(&self, facts: &TenantFacts) -> Result<Option<Migration>, String> {
        let Some(to) = facts.target_schema.clone() else {
            return Ok(None);
        };
        if facts.schema.as_ref() == Some(&to) {
            return Ok(None);
        }
        let Some(snapshot) = facts.pre_upgrade_snapshot.clone() else {
            return Err(format!(
                "the release migrates the database to schema {to}, but no pre-upgrade snapshot is \
                 recorded to restore if it fails; retry the upgrade so its Backup step takes one"
            ));
        };
        if facts
            .migration
            .as_ref()
            .is_some_and(|m| m.to == to && m.snapshot == snapshot)
        {
            return Ok(None);
        }
        Ok(Some(Migration {
            from: facts.schema.clone(),
            to,
            snapshot,
            restore: facts.migration_restore.unwrap_or(self.config.migrations.restore),
            started_at: chrono::Utc::now(),
            approved_by: None,
        }))
    }

    /// The spec's platform version's chart in a temporary `.tgz` (removed when dropped);
    /// `None` for the configured chart.
    async fn chart(&self, spec: &TenantSpec) -> Result<Option<tempfile::NamedTempFile>, StepOutcome> {
        chart_file(&self.platforms, spec, spec.platform)
            .await
            .map_err(|e| e.into_outcome())
    }
}

/// Platform version `version`'s chart in a temporary `.tgz` (removed when dropped);
/// `None` (no version: the configured chart) needs no file.
pub(super) async fn chart_file(
    platforms: &PlatformSource,
    spec: &TenantSpec,
    version: Option<PlatformVersion>,
) -> Result<Option<tempfile::NamedTempFile>, PlatformUnavailable> {
    let Some(version) = version else {
        return Ok(None);
    };
    let bytes = platforms.chart(spec, version).await?;
    let write = || -> std::io::Result<tempfile::NamedTempFile> {
        let mut file = tempfile::Builder::new()
            .prefix(&format!("tenant-chart-{version}-"))
            .suffix(".tgz")
            .tempfile()?;
        file.write_all(&bytes)?;
        file.flush()?;
        Ok(file)
    };
    write().map(Some).map_err(|e| PlatformUnavailable {
        reason: format!("cannot write the chart of platform version {version}: {e}"),
        retryable: true,
    })
}

/// The values in a private temporary file (removed when dropped): Helm reads them
/// from there, so they never appear on a command line.
pub(super) fn values_file(values: &serde_json::Value) -> std::io::Result<tempfile::NamedTempFile> {
    let mut file = tempfile::Builder::new()
        .prefix("tenant-values-")
        .suffix(".json")
        .tempfile()?;
    serde_json::to_writer_pretty(&mut file, values)?;
    file.flush()?;
    Ok(file)
}

fn record_now(facts: TenantFacts, note: String) -> StepOutcome {
    StepOutcome::Pending {
        poll_after: Duration::ZERO,
        facts,
        note,
    }
}

#[async_trait]
impl Step for Deploy {
    #[instrument(skip_all, fields(tenant = %ctx.tenant.id(), step = %ctx.step))]
    async fn run(&self, ctx: StepContext<'_>) -> StepOutcome {
        let tenant = ctx.tenant;
        let Some(release) = tenant.state.working_release() else {
            return StepOutcome::fail(format!("{} has no release to deploy", tenant.state.label()));
        };
        let release_text = release.to_string();
        let mut facts = tenant.facts.clone();
        let upgrading = matches!(tenant.state, TenantState::Upgrading { .. });
        let progress = DeployProgress::read(&facts, &release_text);
        if upgrading && progress.is_none() {
            facts.helm_revision_before_upgrade = None;
            facts.chart_platform_before_upgrade = None;
            DeployProgress {
                release: release_text,
                before_recorded: false,
            }
            .write(&mut facts);
            return record_now(
                facts,
                "cleared the revision an earlier upgrade recorded to return to".into(),
            );
        }
        let cli = match release_cli(&self.config, &self.bin, &tenant.spec) {
            Ok(cli) => cli,
            Err(e) => return StepOutcome::fail(e),
        };
        match progress {
            Some(mut progress) if upgrading && !progress.before_recorded => {
                let history = match cli.history().await {
                    Ok(h) => h,
                    Err(e) => return helm_failure(e, &facts),
                };
                if let Some(pending) = busy(&history, &cli.release, &facts) {
                    return pending;
                }
                facts.helm_revision_before_upgrade = history.deployed();
                facts.chart_platform_before_upgrade = facts.chart_platform;
                progress.before_recorded = true;
                progress.write(&mut facts);
                if let Some(before) = facts.helm_revision_before_upgrade {
                    return record_now(facts, format!("revision {before} recorded to return to"));
                }
                // Nothing deployed yet: nothing to record, the install may start.
            }
            _ if upgrading => {}
            // A fresh install has nothing to return to.
            _ => {
                facts.helm_revision_before_upgrade = None;
                facts.chart_platform_before_upgrade = None;
            }
        }
        if upgrading {
            match self.migration_to_record(&facts) {
                Ok(Some(migration)) => {
                    let note = format!(
                        "migration {} -> schema {} recorded (pre-upgrade snapshot {}, restore {})",
                        migration.from.as_ref().map_or_else(
                            || "from no recorded schema".to_owned(),
                            |s| format!("from schema {s}")
                        ),
                        migration.to,
                        migration.snapshot,
                        migration.restore
                    );
                    facts.migration = Some(migration);
                    return record_now(facts, note);
                }
                Ok(None) => {}
                Err(reason) => return StepOutcome::fail(reason),
            }
        }
        let values = match values::render(
            &tenant.spec,
            release,
            &facts,
            &self.config.helm.ingress_group_prefix,
        ) {
            Ok(v) => v,
            Err(e) => return StepOutcome::fail(e.to_string()),
        };
        self.deploy(&cli, &tenant.spec, values, facts).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{MigrationRestore, SchemaVersion};

    fn schema(s: &str) -> Option<SchemaVersion> {
        Some(SchemaVersion::parse(s).unwrap())
    }

    fn deploy(restore: MigrationRestore) -> Deploy {
        let mut config = StepsConfig::default();
        config.migrations.restore = restore;
        Deploy::new(Arc::new(config))
    }

    fn facts() -> TenantFacts {
        TenantFacts {
            schema: schema("41"),
            target_schema: schema("42"),
            pre_upgrade_snapshot: Some("snap-7".into()),
            ..TenantFacts::default()
        }
    }

    #[test]
    fn a_new_schema_is_recorded_with_its_snapshot_and_the_policy_in_force() {
        let configured = deploy(MigrationRestore::Approval);
        let m = configured.migration_to_record(&facts()).unwrap().unwrap();
        assert_eq!((m.from, m.to), (schema("41"), schema("42").unwrap()));
        assert_eq!(
            (m.snapshot.as_str(), m.restore),
            ("snap-7", MigrationRestore::Approval)
        );
        // A rollout's strategy wins over the configuration.
        let by_rollout = TenantFacts {
            migration_restore: Some(MigrationRestore::Automatic),
            ..facts()
        };
        let m = configured.migration_to_record(&by_rollout).unwrap().unwrap();
        assert_eq!(m.restore, MigrationRestore::Automatic);
        // Recorded once: a re-run finds it.
        let recorded = TenantFacts {
            migration: Some(m),
            ..by_rollout
        };
        assert_eq!(configured.migration_to_record(&recorded), Ok(None));
    }

    #[test]
    fn no_declared_or_no_new_schema_records_nothing_and_no_snapshot_refuses() {
        let d = deploy(MigrationRestore::Approval);
        let undeclared = TenantFacts {
            target_schema: None,
            ..facts()
        };
        assert_eq!(d.migration_to_record(&undeclared), Ok(None));
        let same = TenantFacts {
            target_schema: schema("41"),
            ..facts()
        };
        assert_eq!(d.migration_to_record(&same), Ok(None));
        let unsnapshotted = TenantFacts {
            pre_upgrade_snapshot: None,
            ..facts()
        };
        let err = d.migration_to_record(&unsnapshotted).unwrap_err();
        assert!(err.contains("no pre-upgrade snapshot"), "{err}");
    }
}
