//! Operator commands on tenants: create, upgrade, retry, roll back, restore,
//! deprovision. Each loads the tenant, asks the machine, and saves conditionally on
//! the version it read, retrying a few times if a worker wrote in between.
//!
//! A tenant that a running rollout holds (its `rollout` names a rollout that is
//! preparing or running) is the rollout's to move: every command here, and a spec
//! change of its pin, hostnames or tier, is refused with [`CommandError::HeldByRollout`]
//! until the rollout is paused, halted or finished, unless the caller passes
//! [`RolloutHold::Override`], which the history records.
//!
//! A freeze in force over a tenant's environment and region holds the commands that
//! change what runs: upgrade, reconcile, rollback, restore, deprovision, and a spec
//! change of its hostnames, tier or platform, refused with [`CommandError::Frozen`]
//! unless an admin gives [`Overrides::freeze`] (why), which the history records with
//! the freezes and the actor. A retry (it finishes a change already begun), a new
//! tenant (nothing of it runs yet), pins and maintenance windows are not held.

use std::sync::Arc;

use chrono::Utc;

use crate::domain::{
    frozen_by, Environment, Group, Hostname, MaintenanceWindows, PlatformVersion, Region, ReleaseVersion,
    RolloutId, TenantId, TenantSpec, Tier,
};
use crate::machine::{Rejected, TenantEvent, TenantState};
use crate::ports::{
    ArtifactError, PlatformArtifacts, PolicyStore, ReleaseCheckError, ReleaseRegistry, RolloutStore,
    StoreError, TenantStore, WriteGuard,
};
use crate::record::{Actor, Cause, Origin, Phase, TenantRecord, Transition};

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Invalid(#[from] crate::domain::InvalidValue),
    #[error("tenant {id}: {rejected}")]
    Rejected { id: TenantId, rejected: Rejected },
    #[error(
        "tenant {id} is held by rollout {rollout}, which is {phase}; pause or abort rollout {rollout}, \
         or pass the admin override (--override-rollout-hold, or override_rollout_hold=true in the API)"
    )]
    HeldByRollout {
        id: TenantId,
        rollout: RolloutId,
        phase: &'static str,
    },
    /// No release was named and the version policy gives the tenant none.
    #[error("no release given and the version policy has none for environment {environment} in {region} (group {group})")]
    NoRelease {
        environment: Environment,
        region: Region,
        group: Group,
    },
    /// A tenant was to be pinned to its platform version, but it gets none: none was
    /// given and the version policy names none for it.
    #[error("tenant {id} cannot be pinned to a platform version: none is given and the version policy has none for it; pass one (--platform, \"platform\") or set one with `tenantctl policy set-default --platform`")]
    NoPlatformToPin { id: TenantId },
    /// A platform version named for a tenant or the policy is not published.
    #[error("platform version {version} is not published; publish it first (`tenantctl platform publish --version {version}`) or pick one from `tenantctl platform list`")]
    UnknownPlatform { version: PlatformVersion },
    /// A platform version was named where no platform bucket is configured to check
    /// it against (and no worker could fetch it).
    #[error("platform version {version} cannot be used: no platform bucket is configured; pass --platform-bucket or set TENANTCTL_PLATFORM_BUCKET")]
    PlatformUnavailable { version: PlatformVersion },
    /// The platform bucket could not be read to check a version.
    #[error("checking platform version {version}: {source}")]
    PlatformCheck {
        version: PlatformVersion,
        #[source]
        source: ArtifactError,
    },
    /// A freeze in force holds the tenant's environment and region; `hold` says until
    /// when and why.
    #[error(
        "tenant {id} is {hold}; wait until the freeze ends, or, as an admin, pass the override with why \
         (--override-freeze \"reason\", or override_freeze=reason in the API)"
    )]
    Frozen { id: TenantId, hold: String },
    /// A restore names a snapshot that is not one of the tenant's, without the
    /// override for a snapshot taken outside tenantctl.
    #[error(
        "snapshot {snapshot} is not one of tenant {id}'s snapshots ({}); pick one of them, or, for a snapshot taken \
         outside tenantctl, say so with --external-snapshot (\"external\": true in the API)",
        known_snapshots(known)
    )]
    UnknownSnapshot {
        id: TenantId,
        snapshot: String,
        known: Vec<String>,
    },
    /// The release named for a new tenant or an upgrade has no image the tenant's
    /// region can pull; the message says what is missing and what to do.
    #[error("{0}")]
    UnknownRelease(String),
    /// The artifact registry could not be asked whether the release is published
    /// (throttled, unreachable); nothing was changed, and the same command may
    /// succeed later.
    #[error("{0}")]
    ReleaseCheck(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ReleaseCheckError> for CommandError {
    fn from(e: ReleaseCheckError) -> Self {
        match e {
            ReleaseCheckError::Unpublished(m) => CommandError::UnknownRelease(m),
            ReleaseCheckError::Unavailable(m) => CommandError::ReleaseCheck(m),
        }
    }
}

fn known_snapshots(known: &[String]) -> String {
    match known {
        [] => "it has none yet".into(),
        known => format!("it has {}", known.join(", ")),
    }
}

const CONFLICT_RETRIES: usize = 5;

/// Whether a command respects the hold of a running rollout on the tenant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RolloutHold {
    /// Refuse the command while a running rollout holds the tenant.
    #[default]
    Respect,
    /// An admin's explicit decision to act anyway; recorded in the history.
    Override,
}

/// The overrides an admin gives a command: of a running rollout's hold, and of the
/// freezes in force (with why).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub hold: RolloutHold,
    /// `Some(reason)`: act although a freeze holds the tenant.
    pub freeze: Option<String>,
    /// Restore from a snapshot tenantctl did not take (one not in the tenant's
    /// `facts.snapshots`), which is otherwise refused as a likely mistake: a restore
    /// from a snapshot that does not exist fails the tenant.
    pub external_snapshot: bool,
}

impl From<RolloutHold> for Overrides {
    fn from(hold: RolloutHold) -> Self {
        Self {
            hold,
            ..Self::default()
        }
    }
}

#[derive(Clone)]
pub struct TenantCommands {
    store: Arc<dyn TenantStore>,
    rollouts: Option<Arc<dyn RolloutStore>>,
    policy: Option<Arc<dyn PolicyStore>>,
    platforms: Option<Arc<dyn PlatformArtifacts>>,
    registry: Option<Arc<dyn ReleaseRegistry>>,
}

impl TenantCommands {
    pub fn new(store: Arc<dyn TenantStore>) -> Self {
        Self {
            store,
            rollouts: None,
            policy: None,
            platforms: None,
            registry: None,
        }
    }

    /// Checks every platform version a command names against the published ones in
    /// `platforms`. Without it, naming a platform version is refused, since no worker
    /// of this deployment could fetch it.
    pub fn with_platforms(mut self, platforms: Arc<dyn PlatformArtifacts>) -> Self {
        self.platforms = Some(platforms);
        self
    }

    /// Refuses a new tenant or an upgrade whose release has no image in `registry`
    /// for the tenant's region. Without one (a deployment with no artifact
    /// configuration), the release is checked by the tenant's first step instead.
    pub fn with_registry(mut self, registry: Arc<dyn ReleaseRegistry>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// `Ok` when the registry (if any) publishes `release` for `region`.
    pub async fn check_release(&self, release: &ReleaseVersion, region: &Region) -> Result<(), CommandError> {
        match &self.registry {
            Some(registry) => (registry.check_published(release, region).await).map_err(|e| match e {
                ReleaseCheckError::Unpublished(m) => CommandError::UnknownRelease(m),
                ReleaseCheckError::Unavailable(m) => CommandError::ReleaseCheck(m),
            }),
            None => Ok(()),
        }
    }

    /// `Ok` when the registry (if any) publishes `release` for a policy entry: a
    /// region's default in that `region`; a group override (`None`), which applies to
    /// the group's tenants wherever they are, in every region the fleet has. A region
    /// without it is named, as creating or upgrading a tenant there would be refused.
    pub async fn check_policy_release(
        &self,
        release: &ReleaseVersion,
        region: Option<&Region>,
    ) -> Result<(), CommandError> {
        if let Some(region) = region {
            return self.check_release(release, region).await;
        }
        if self.registry.is_none() {
            return Ok(());
        }
        let mut missing = Vec::new();
        for region in self.store.regions().await? {
            match self.check_release(release, &region).await {
                Ok(()) => {}
                Err(CommandError::UnknownRelease(_)) => missing.push(region.to_string()),
                Err(other) => return Err(other),
            }
        }
        match missing.is_empty() {
            true => Ok(()),
            false => Err(CommandError::UnknownRelease(format!(
                "release {release} has no image in {} (a group override applies to the group's tenants \
                 in every region); publish it there first, or leave those regions' tenants on their defaults \
                 by setting the release per region instead",
                missing.join(", ")
            ))),
        }
    }

    /// `Ok` when `version` is published.
    pub async fn check_platform(&self, version: PlatformVersion) -> Result<(), CommandError> {
        let Some(platforms) = &self.platforms else {
            return Err(CommandError::PlatformUnavailable { version });
        };
        match platforms.manifest(&version).await {
            Ok(_) => Ok(()),
            Err(ArtifactError::NotFound(_)) => Err(CommandError::UnknownPlatform { version }),
            Err(source) => Err(CommandError::PlatformCheck { version, source }),
        }
    }

    /// Refuses commands on tenants that a running rollout in `rollouts` holds (see the
    /// module documentation). Every operator-facing instance is built with it; without
    /// it only the tenant's own state decides.
    pub fn with_rollout_holds(mut self, rollouts: Arc<dyn RolloutStore>) -> Self {
        self.rollouts = Some(rollouts);
        self
    }

    /// Lets [`TenantCommands::provision`] take a new tenant's release from the policy.
    pub fn with_policy(mut self, policy: Arc<dyn PolicyStore>) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Provisions a tenant on `release`, or, when none is named, on the release the
    /// version policy gives it; `pin` keeps the tenant on that release. A spec that
    /// names no platform version gets the one the policy gives it, if any.
    pub async fn provision(
        &self,
        spec: TenantSpec,
        release: Option<ReleaseVersion>,
        pin: bool,
        actor: &Actor,
    ) -> Result<TenantRecord, CommandError> {
        self.provision_pinned(spec, release, pin, false, actor).await
    }

    /// As [`TenantCommands::provision`]; `pin_platform` also keeps the tenant on its
    /// platform version (refused when it gets none).
    pub async fn provision_pinned(
        &self,
        mut spec: TenantSpec,
        release: Option<ReleaseVersion>,
        pin: bool,
        pin_platform: bool,
        actor: &Actor,
    ) -> Result<TenantRecord, CommandError> {
        spec.validate()?;
        let policy = self.policy().await?;
        let release = match release {
            Some(release) => release,
            None => policy.release_for(&spec).ok_or_else(|| CommandError::NoRelease {
                environment: spec.environment.clone(),
                region: spec.region.clone(),
                group: spec.group.clone(),
            })?,
        };
        spec.pinned_release = pin.then(|| release.clone());
        if spec.platform.is_none() {
            spec.platform = policy.resolve_platform(&spec).map(|(platform, _)| platform);
        }
        if let Some(platform) = spec.platform {
            self.check_platform(platform).await?;
        }
        if pin_platform {
            let Some(platform) = spec.platform else {
                return Err(CommandError::NoPlatformToPin { id: spec.id });
            };
            spec.pinned_platform = Some(platform);
        }
        self.create(spec, release, actor).await
    }

    async fn policy(&self) -> Result<crate::domain::VersionPolicy, CommandError> {
        Ok(match &self.policy {
            Some(store) => store.load_policy().await?.0,
            None => crate::domain::VersionPolicy::default(),
        })
    }

    /// The running rollout holding `record`, if any: `(rollout, phase)`.
    async fn holder(&self, record: &TenantRecord) -> Result<Option<(RolloutId, Phase)>, StoreError> {
        let (Some(rollouts), Some(id)) = (&self.rollouts, &record.rollout) else {
            return Ok(None);
        };
        match rollouts.load_rollout(id).await {
            Ok(rollout) if matches!(rollout.phase, Phase::Preparing | Phase::Running) => {
                Ok(Some((id.clone(), rollout.phase)))
            }
            Ok(_) | Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `Ok(Some(note))` for the history when an override acts on a held tenant,
    /// `Ok(None)` when nothing holds it, `Err` when the hold refuses the command.
    async fn check_hold(
        &self,
        record: &TenantRecord,
        hold: RolloutHold,
    ) -> Result<Option<Origin>, CommandError> {
        match (self.holder(record).await?, hold) {
            (None, _) => Ok(None),
            (Some((rollout, phase)), RolloutHold::Override) => Ok(Some(Origin::HoldOverride {
                rollout,
                phase: phase.as_str(),
            })),
            (Some((rollout, phase)), RolloutHold::Respect) => Err(CommandError::HeldByRollout {
                id: record.id().clone(),
                rollout,
                phase: phase.as_str(),
            }),
        }
    }

    /// The history's origin for a command on `record`: `hold_origin` (the rollout
    /// hold's override, if one acted), or the freeze override when a freeze in force
    /// holds the tenant. `Err(Frozen)` when one holds it and no override is given.
    async fn check_freeze(
        &self,
        record: &TenantRecord,
        hold_origin: Option<Origin>,
        freeze_override: Option<&str>,
    ) -> Result<Option<Origin>, CommandError> {
        let Some(rollouts) = &self.rollouts else {
            return Ok(hold_origin);
        };
        let freezes = rollouts.list_freezes().await?;
        let (env, region, now) = (&record.spec.environment, &record.spec.region, Utc::now());
        let Some(hold) = frozen_by(&freezes, env, region, now) else {
            return Ok(hold_origin);
        };
        let Some(reason) = freeze_override else {
            return Err(CommandError::Frozen {
                id: record.id().clone(),
                hold: hold.to_string(),
            });
        };
        let freezes = (freezes.iter())
            .filter(|f| f.covers(env, region, now))
            .map(|f| f.id.clone())
            .collect();
        let hold = match hold_origin {
            Some(Origin::HoldOverride { rollout, phase }) => Some((rollout, phase)),
            _ => None,
        };
        Ok(Some(Origin::FreezeOverride {
            freezes,
            reason: reason.to_owned(),
            hold,
        }))
    }

    pub fn store(&self) -> &Arc<dyn TenantStore> {
        &self.store
    }

    /// Records a new tenant and starts provisioning it on `release`.
    pub async fn create(
        &self,
        spec: TenantSpec,
        release: ReleaseVersion,
        actor: &Actor,
    ) -> Result<TenantRecord, CommandError> {
        spec.validate()?;
        self.check_release(&release, &spec.region).await?;
        let event = TenantEvent::Provision { release };
        let state = TenantState::initial()
            .apply(&event)
            .map_err(|rejected| CommandError::Rejected {
                id: spec.id.clone(),
                rejected,
            })?;
        let record = TenantRecord::new(spec, state, Utc::now());
        let first = Transition::new(&TenantState::initial(), Cause::Event(event), actor.clone());
        Ok(self.store.create(&record, first).await?)
    }

    /// Applies an operator event, e.g. `Upgrade`, `Retry`, `Deprovision`, respecting
    /// a running rollout's hold on the tenant.
    pub async fn command(
        &self,
        id: &TenantId,
        event: TenantEvent,
        actor: &Actor,
    ) -> Result<TenantRecord, CommandError> {
        self.command_with_hold(id, event, actor, RolloutHold::Respect)
            .await
    }

    /// Appends to tenant `id`'s history that `actor` was refused `said` by its role
    /// bindings, without changing the tenant. Only actions are recorded: a refused
    /// read must not give a reader a way to write.
    pub async fn record_refusal(&self, id: &TenantId, said: String, actor: &Actor) -> Result<(), StoreError> {
        const ATTEMPTS: usize = 5;
        for _ in 0..ATTEMPTS {
            let record = self.store.load(id).await?;
            let transition =
                Transition::new(&record.state, Cause::AccessRefused(said.clone()), actor.clone());
            match self
                .store
                .save(&record, WriteGuard::Version, Some(transition))
                .await
            {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict { .. }) => continue,
                Err(other) => return Err(other),
            }
        }
        Err(StoreError::Conflict {
            what: format!("recording a refused action on tenant {id}"),
            detail: "the tenant kept changing while the refusal was recorded".into(),
            kind: crate::ports::Conflict::Version,
        })
    }

    /// As [`TenantCommands::command`], with the caller's overrides of a rollout's hold
    /// and of the freezes in force.
    pub async fn command_with_hold(
        &self,
        id: &TenantId,
        event: TenantEvent,
        actor: &Actor,
        overrides: impl Into<Overrides>,
    ) -> Result<TenantRecord, CommandError> {
        let overrides = overrides.into();
        let mut attempt = 0;
        loop {
            let mut record = self.store.load(id).await?;
            if let (TenantEvent::Upgrade { release }, 0) = (&event, attempt) {
                self.check_release(release, &record.spec.region).await?;
            }
            let mut overriding = self.check_hold(&record, overrides.hold).await?;
            let next = record
                .state
                .apply(&event)
                .map_err(|rejected| CommandError::Rejected {
                    id: id.clone(),
                    rejected,
                })?;
            if let (TenantEvent::Restore { snapshot }, false) = (&event, overrides.external_snapshot) {
                check_snapshot(&record, snapshot)?;
            }
            if held_by_freezes(&event) {
                overriding = (self.check_freeze(&record, overriding, overrides.freeze.as_deref())).await?;
            }
            let transition = Transition {
                origin: overriding,
                ..Transition::new(&record.state, Cause::Event(event.clone()), actor.clone())
            };
            record.last_error = None;
            if let (TenantEvent::Restore { snapshot }, Some(migration)) =
                (&event, &mut record.facts.migration)
            {
                // Restoring the snapshot of a migration that ran is the approval its
                // rollback waited for; the restore step says whose it was.
                if *snapshot == migration.snapshot {
                    migration.approved_by = Some(actor.0.clone());
                }
            }
            record.enter(next, Utc::now());
            match self
                .store
                .save(&record, WriteGuard::Version, Some(transition))
                .await
            {
                Err(StoreError::Conflict { .. }) if attempt < CONFLICT_RETRIES => attempt += 1,
                other => return Ok(other?),
            }
        }
    }
}

/// Refuses a restore from a snapshot the tenant does not have: its backups, and the
/// snapshot of a migration that ran (a typo would otherwise fail the tenant when the
/// restore finds no such snapshot).
fn check_snapshot(record: &TenantRecord, snapshot: &str) -> Result<(), CommandError> {
    let facts = &record.facts;
    let known = facts.snapshots.iter().any(|s| s == snapshot)
        || facts.migration.as_ref().is_some_and(|m| m.snapshot == snapshot);
    match known {
        true => Ok(()),
        false => Err(CommandError::UnknownSnapshot {
            id: record.id().clone(),
            snapshot: snapshot.to_owned(),
            known: facts.snapshots.clone(),
        }),
    }
}

/// Whether a freeze holds `event`: every operator command that changes what runs.
/// A retry finishes a change already begun, and a provision starts a tenant nothing
/// of which runs yet.
fn held_by_freezes(event: &TenantEvent) -> bool {
    matches!(
        event,
        TenantEvent::Upgrade { .. }
            | TenantEvent::Reconcile
            | TenantEvent::Rollback
            | TenantEvent::Restore { .. }
            | TenantEvent::Deprovision
    )
}

/// A change to a tenant's spec; fields left `None` stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecChange {
    /// `Some(Some(r))` pins the tenant to `r` (rollouts skip it); `Some(None)` unpins.
    pub pinned_release: Option<Option<ReleaseVersion>>,
    /// Replaces the tenant's hostnames; they take effect at its next deployment
    /// (an upgrade, or a reconcile on the release it runs).
    pub hostnames: Option<Vec<Hostname>>,
    /// Takes effect at the tenant's next deployment (upgrade or reconcile).
    pub tier: Option<Tier>,
    /// `Some(Some(w))` sets the weekly windows rollouts may start the tenant in;
    /// `Some(None)` removes them (any time).
    pub maintenance: Option<Option<MaintenanceWindows>>,
    /// `Some(Some(v))` makes published platform version `v` the tenant's template and
    /// chart; `Some(None)` returns it to those built into `tenantctl`. Takes effect at
    /// its next deployment (upgrade or reconcile).
    pub platform: Option<Option<PlatformVersion>>,
    /// `Some(Some(v))` pins the tenant to platform version `v` (and makes it its
    /// platform); platform rollouts skip it. `Some(None)` unpins, keeping the platform.
    pub pinned_platform: Option<Option<PlatformVersion>>,
}

impl SpecChange {
    pub fn is_empty(&self) -> bool {
        self == &SpecChange::default()
    }

    /// Whether the change alters what or whether a rollout deploys to the tenant (its
    /// pin, hostnames, tier or platform), which a running rollout's hold refuses;
    /// maintenance windows only say when, and may change any time.
    fn moves_the_tenant(&self) -> bool {
        self.pinned_release.is_some() || self.pinned_platform.is_some() || self.reshapes()
    }

    /// Whether the change alters what the tenant's next deployment applies (which a
    /// freeze holds; pins and maintenance windows it does not).
    fn reshapes(&self) -> bool {
        self.hostnames.is_some()
            || self.tier.is_some()
            || self.platform.is_some()
            || matches!(self.pinned_platform, Some(Some(_)))
    }

    /// The platform versions the change names, which must be published.
    fn named_platforms(&self) -> impl Iterator<Item = PlatformVersion> {
        [self.platform.flatten(), self.pinned_platform.flatten()]
            .into_iter()
            .flatten()
    }

    /// Applies the change; `Err` says why it cannot apply in `state`.
    fn apply(&self, spec: &mut TenantSpec, state: &TenantState) -> Result<Vec<String>, String> {
        if state.is_terminal() {
            return Err("the tenant is deleted; create a new one instead".into());
        }
        if self.reshapes() && state.step().is_some() {
            return Err("hostnames, tier and platform change only while no step runs; wait until the tenant is Active or Failed".into());
        }
        let mut said = Vec::new();
        if let Some(pin) = &self.pinned_release {
            spec.pinned_release = pin.clone();
            said.push(match pin {
                Some(r) => format!("pin {r}"),
                None => "unpin".into(),
            });
        }
        if let Some(hostnames) = &self.hostnames {
            spec.hostnames = hostnames.clone();
            let names: Vec<&str> = hostnames.iter().map(|h| h.as_str()).collect();
            said.push(format!("hostnames {}", names.join(",")));
        }
        if let Some(tier) = self.tier {
            spec.tier = tier;
            said.push(format!("tier {tier}"));
        }
        if let Some(platform) = self.platform {
            if let Some(pin) = spec.pinned_platform.filter(|pin| Some(*pin) != platform) {
                if self.pinned_platform != Some(None) {
                    return Err(format!(
                        "the tenant is pinned to platform version {pin}; unpin it (pinned_platform: null, --unpin-platform) or pin the new version"
                    ));
                }
            }
            spec.platform = platform;
            said.push(match platform {
                Some(v) => format!("platform {v}"),
                None => "platform built-in".into(),
            });
        }
        if let Some(pin) = self.pinned_platform {
            spec.pinned_platform = pin;
            if let Some(v) = pin {
                if self.platform.is_some_and(|p| p != Some(v)) {
                    return Err(format!(
                        "platform and pinned_platform name different versions; pinning to {v} sets the platform too, so give only pinned_platform"
                    ));
                }
                spec.platform = Some(v);
            }
            said.push(match pin {
                Some(v) => format!("pin platform {v}"),
                None => "unpin platform".into(),
            });
        }
        if let Some(maintenance) = &self.maintenance {
            spec.maintenance = maintenance.clone();
            said.push(match maintenance {
                Some(w) => format!("maintenance {w}"),
                None => "maintenance any time".into(),
            });
        }
        Ok(said)
    }
}

impl TenantCommands {
    /// Changes a tenant's spec, recording the change in its history. With
    /// `expected_version` the write only happens if the tenant is still at that
    /// version (`Conflict` otherwise); without it, a concurrent write is retried.
    pub async fn update_spec(
        &self,
        id: &TenantId,
        change: &SpecChange,
        expected_version: Option<u64>,
        actor: &Actor,
        overrides: impl Into<Overrides>,
    ) -> Result<TenantRecord, CommandError> {
        let overrides = overrides.into();
        for platform in change.named_platforms() {
            self.check_platform(platform).await?;
        }
        let mut attempt = 0;
        loop {
            let mut record = self.store.load(id).await?;
            let before = record.spec.hostnames.clone();
            if let Some(expected) = expected_version {
                if expected != record.version {
                    return Err(CommandError::Store(StoreError::Conflict {
                        what: format!("updating tenant {id}"),
                        kind: crate::ports::Conflict::Version,
                        detail: format!(
                            "tenant {id} is at version {}, not {expected}; reload it and decide again",
                            record.version
                        ),
                    }));
                }
            }
            let mut overriding = match change.moves_the_tenant() {
                true => self.check_hold(&record, overrides.hold).await?,
                false => None,
            };
            let said =
                change
                    .apply(&mut record.spec, &record.state)
                    .map_err(|reason| CommandError::Rejected {
                        id: id.clone(),
                        rejected: Rejected {
                            state: record.state.label(),
                            event: "UpdateSpec",
                            reason,
                        },
                    })?;
            record.spec.validate()?;
            if said.is_empty() {
                return Ok(record);
            }
            if change.reshapes() {
                overriding = (self.check_freeze(&record, overriding, overrides.freeze.as_deref())).await?;
            }
            let transition = Transition {
                origin: overriding,
                ..Transition::new(&record.state, Cause::SpecChange(said), actor.clone())
            };
            record.updated_at = Utc::now();
            match self.store.save_spec(&record, &before, transition).await {
                Err(StoreError::Conflict { .. })
                    if expected_version.is_none() && attempt < CONFLICT_RETRIES =>
                {
                    attempt += 1
                }
                other => return Ok(other?),
            }
        }
    }
}
