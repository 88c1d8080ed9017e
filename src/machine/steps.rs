//! The steps a tenant goes through, grouped by the phase that runs them. A phase's
//! steps run in declaration order; the machine only ever moves a phase forward by one.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Every unit of work the worker can run for a tenant. The step to run is derived from
/// the persisted state (`TenantState::step`), never fired once on entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum StepKind {
    /// Resolve the release's image tag to a digest in the registry.
    CheckArtifact,
    /// Put the tenant in maintenance when the upgrade needs it (it changes the
    /// database, or the configuration says always): listener rules on its hostnames
    /// answer a 503 maintenance page, except to requests carrying the upgrade's
    /// bypass token, which verify sends.
    Quiesce,
    /// Snapshot the tenant's database cluster before anything changes.
    Backup,
    /// Create the tenant's infrastructure stack.
    ProvisionInfra,
    /// Update the infrastructure stack, recording the previous template and parameters.
    UpdateInfra,
    /// Write the tenant's configuration and secrets to the parameter store.
    WriteConfig,
    /// Make sure every hostname is on an issued certificate attached to a listener and
    /// has its DNS record; hostnames the tenant no longer has lose both.
    EnsureCertificates,
    /// Install or upgrade the tenant's Helm release on the resolved image digest.
    Deploy,
    /// Check that every hostname serves the target release.
    Verify,
    /// Roll the Helm release back to the revision that ran before the upgrade.
    RollbackDeploy,
    /// Put the stack back on its previous template and parameters.
    RollbackInfra,
    /// Check that every hostname serves the previous release again.
    VerifyRollback,
    /// Restore the database cluster from an operator-chosen snapshot, or, in a
    /// rollback, from the pre-upgrade snapshot when a schema migration ran.
    RestoreDatabase,
    /// Take the tenant out of maintenance: delete its maintenance listener rules,
    /// recorded or found by tag. Cheap when there are none.
    Reopen,
    /// Snapshot the database before the tenant is removed.
    FinalBackup,
    /// Uninstall the Helm release.
    Uninstall,
    /// Delete the tenant's hostnames' DNS records and take them off shared certificates.
    ReleaseCertificates,
    /// Delete the tenant's configuration.
    DeleteConfig,
    /// Delete the infrastructure stack.
    DeleteStack,
}

impl StepKind {
    pub const ALL: [StepKind; 19] = [
        StepKind::CheckArtifact,
        StepKind::Quiesce,
        StepKind::Backup,
        StepKind::ProvisionInfra,
        StepKind::UpdateInfra,
        StepKind::WriteConfig,
        StepKind::EnsureCertificates,
        StepKind::Deploy,
        StepKind::Verify,
        StepKind::RollbackDeploy,
        StepKind::RollbackInfra,
        StepKind::VerifyRollback,
        StepKind::RestoreDatabase,
        StepKind::Reopen,
        StepKind::FinalBackup,
        StepKind::Uninstall,
        StepKind::ReleaseCertificates,
        StepKind::DeleteConfig,
        StepKind::DeleteStack,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StepKind::CheckArtifact => "CheckArtifact",
            StepKind::Quiesce => "Quiesce",
            StepKind::Backup => "Backup",
            StepKind::ProvisionInfra => "ProvisionInfra",
            StepKind::UpdateInfra => "UpdateInfra",
            StepKind::WriteConfig => "WriteConfig",
            StepKind::EnsureCertificates => "EnsureCertificates",
            StepKind::Deploy => "Deploy",
            StepKind::Verify => "Verify",
            StepKind::RollbackDeploy => "RollbackDeploy",
            StepKind::RollbackInfra => "RollbackInfra",
            StepKind::VerifyRollback => "VerifyRollback",
            StepKind::RestoreDatabase => "RestoreDatabase",
            StepKind::Reopen => "Reopen",
            StepKind::FinalBackup => "FinalBackup",
            StepKind::Uninstall => "Uninstall",
            StepKind::ReleaseCertificates => "ReleaseCertificates",
            StepKind::DeleteConfig => "DeleteConfig",
            StepKind::DeleteStack => "DeleteStack",
        }
    }
}

impl fmt::Display for StepKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Declares a phase's steps in order, with `FIRST`, `next()` and the `StepKind` of each.
macro_rules! phase_steps {
    ($(#[$doc:meta])* $name:ident { $first:ident $(, $rest:ident)* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name { $first $(, $rest)* }

        impl $name {
            pub const FIRST: $name = $name::$first;
            pub const SEQUENCE: &'static [$name] = &[$name::$first $(, $name::$rest)*];

            /// The step after this one, or `None` when the phase is complete.
            pub fn next(self) -> Option<$name> {
                let i = Self::SEQUENCE.iter().position(|s| *s == self)?;
                Self::SEQUENCE.get(i + 1).copied()
            }

            pub fn kind(self) -> StepKind {
                match self {
                    $name::$first => StepKind::$first,
                    $($name::$rest => StepKind::$rest,)*
                }
            }
        }
    };
}

phase_steps!(
    /// A new tenant: resolve the artifact, build the stack, configure, certify, deploy, verify.
    ProvisionStep { CheckArtifact, ProvisionInfra, WriteConfig, EnsureCertificates, Deploy, Verify }
);

phase_steps!(
    /// Moving an active tenant to another release: in maintenance (when it needs it)
    /// from before the backup until the new release is verified.
    UpgradeStep { CheckArtifact, Quiesce, Backup, UpdateInfra, WriteConfig, EnsureCertificates, Deploy, Verify, Reopen }
);

phase_steps!(
    /// Undoing a failed upgrade. Starts at `RollbackInfra` when the deploy never ran,
    /// and at `Reopen` when only maintenance may have begun. `RestoreDatabase` restores
    /// the pre-upgrade snapshot when a schema migration ran (or stops for an operator's
    /// approval), and passes at once when none did.
    RollbackStep { RollbackDeploy, RollbackInfra, RestoreDatabase, VerifyRollback, Reopen }
);

phase_steps!(
    /// An operator-approved database restore from a named snapshot. Ends with
    /// `Reopen`: a tenant restored out of a failed upgrade may still be in maintenance.
    RestoreStep { RestoreDatabase, Verify, Reopen }
);

phase_steps!(
    /// Removing a tenant: keep a final backup, then take everything down.
    DeprovisionStep { FinalBackup, Uninstall, ReleaseCertificates, DeleteConfig, DeleteStack }
);

impl UpgradeStep {
    /// Whether a failure at this step leaves anything to undo. Resolving the artifact
    /// changes nothing; from Quiesce on the tenant may be in maintenance.
    pub fn touches_tenant(self) -> bool {
        !matches!(self, UpgradeStep::CheckArtifact)
    }

    /// Whether the stack, configuration, certificates or Helm release may have
    /// changed by the time this step ran. Quiesce and Backup change only whether
    /// users reach the tenant, which `RollbackStep::Reopen` undoes.
    pub fn touches_infra(self) -> bool {
        !matches!(
            self,
            UpgradeStep::CheckArtifact | UpgradeStep::Quiesce | UpgradeStep::Backup
        )
    }

    /// Whether the Helm release may have changed by the time this step ran.
    pub fn touches_deploy(self) -> bool {
        matches!(
            self,
            UpgradeStep::Deploy | UpgradeStep::Verify | UpgradeStep::Reopen
        )
    }
}
