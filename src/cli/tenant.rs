use clap::{Args, Subcommand};

use tenant_orchestrator::app::{
    CommandError, DriftView, LocalTenants, Overrides, RolloutHold, SpecChange, TenantService,
};
use tenant_orchestrator::domain::{
    usable_reason, Environment, Group, Hostname, MaintenanceWindows, PlatformVersion, Region, ReleaseVersion,
    SnapshotName, TenantId, TenantSpec, Tier, FREEZE_REASON_MAX,
};
use tenant_orchestrator::machine::{TenantEvent, TenantState};
use tenant_orchestrator::ports::ListQuery;
use tenant_orchestrator::record::Actor;

use super::output::{print_drift, print_history, print_list, print_tenant};
use super::{Failure, OutputFormat, EXIT_INVALID_INPUT};

mod remote;
mod wait;

#[derive(Subcommand, Debug)]
pub enum TenantCommand {
    /// Record a new tenant and start provisioning it.
    Create(CreateArgs),
    /// Show one tenant: state, step, releases, last error, lease.
    Get { id: String },
    /// List tenants, by region and state, a page at a time.
    List {
        #[arg(long)]
        region: Option<String>,
        /// A state name: Provisioning, Active, Upgrading, RollingBack, Restoring, Deprovisioning, Failed, Deleted.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Token printed by the previous page.
        #[arg(long)]
        next_token: Option<String>,
    },
    /// Show a tenant's transitions in order.
    History {
        id: String,
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// Change a tenant's spec: tier, hostnames, platform version, pins, maintenance
    /// windows. Tier, hostnames and platform take effect at its next deployment (an
    /// upgrade, a rollout, or `tenant reconcile`).
    Update(UpdateArgs),
    /// Move an active tenant to another release.
    Upgrade {
        id: String,
        #[arg(long)]
        release: String,
        #[command(flatten)]
        hold: HoldArgs,
    },
    /// Apply the tenant's template, chart and spec again on the release it runs (the
    /// upgrade's steps, rolled back like an upgrade if one fails): how a changed tier
    /// or hostname, or a platform fix, reaches one tenant without a new release.
    Reconcile {
        id: String,
        #[command(flatten)]
        hold: HoldArgs,
    },
    /// Resume a failed tenant at the step that failed, or retry a failed upgrade.
    Retry {
        id: String,
        #[command(flatten)]
        hold: HoldArgs,
    },
    /// Abandon an upgrade in progress, or restart a failed rollback.
    Rollback {
        id: String,
        #[command(flatten)]
        hold: HoldArgs,
    },
    /// Restore the tenant's database from a snapshot (operator-approved).
    Restore {
        id: String,
        /// One of the tenant's snapshots (`facts.snapshots` in `tenant get`).
        #[arg(long)]
        snapshot: String,
        /// The snapshot was taken outside tenantctl (not one of the tenant's): restore
        /// from it anyway. A restore from a snapshot that does not exist fails the
        /// tenant.
        #[arg(long)]
        external_snapshot: bool,
        #[command(flatten)]
        hold: HoldArgs,
    },
    /// Back up and remove the tenant.
    Deprovision {
        id: String,
        #[command(flatten)]
        hold: HoldArgs,
    },
    /// Compare an Active tenant's live stack (parameters the orchestrator sets, template),
    /// SSM configuration and Helm release with its spec and release, now; the result
    /// is recorded (a change also in its history). Exit 0 in sync, 8 drifted.
    /// `tenant reconcile` puts a drifted tenant back.
    Drift {
        id: String,
        /// Steps configuration (JSON) the tenant's worker runs with.
        #[arg(long, env = "TENANTCTL_STEPS_CONFIG")]
        steps_config: Option<std::path::PathBuf>,
        /// S3 bucket of the published platform versions (as for the worker).
        #[arg(long, env = "TENANTCTL_PLATFORM_BUCKET")]
        platform_bucket: Option<String>,
    },
    /// Wait until tenants settle (Active, Failed or Deleted), showing progress; exit 0
    /// only if every one ended in the wanted state.
    ///
    /// Progress goes to stderr: Azure Pipelines logging commands when TF_BUILD=True, a bar
    /// on a terminal, plain lines otherwise (TENANTCTL_PROGRESS=azure|bar|plain overrides).
    /// Exit codes: 0 all in the wanted state, 1 one settled elsewhere or the timeout
    /// passed, 2 invalid id or state, 3 a tenant not found.
    Wait {
        /// Tenant ids.
        #[arg(required = true)]
        ids: Vec<String>,
        /// The state that counts as success.
        #[arg(long, default_value = "Active")]
        state: String,
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
}

/// The commands that move a tenant are refused while a running rollout holds it, or
/// a freeze holds its environment and region.
#[derive(Args, Debug, Clone)]
pub struct HoldArgs {
    /// Act although a running rollout holds the tenant (an admin's decision; the
    /// tenant's history records it). Otherwise pause or abort the rollout first.
    #[arg(long)]
    override_rollout_hold: bool,
    /// Act although a freeze holds the tenant, saying why (an admin's decision; the
    /// tenant's history records the freeze, the actor and the reason).
    #[arg(long, value_name = "REASON")]
    override_freeze: Option<String>,
}

impl HoldArgs {
    pub fn hold(self) -> Result<Overrides, Failure> {
        let freeze = match self.override_freeze.as_deref().map(|given| usable_reason(given).ok_or(given)) {
            None => None,
            Some(Ok(reason)) => Some(reason.to_owned()),
            Some(Err(_)) => {
                return Err(Failure {
                    code: EXIT_INVALID_INPUT,
                    error: anyhow::anyhow!(
                        "--override-freeze must say why, in 1 to {FREEZE_REASON_MAX} characters of plain text on one line"
                    ),
                })
            }
        };
        let hold = match self.override_rollout_hold {
            true => RolloutHold::Override,
            false => RolloutHold::Respect,
        };
        Ok(Overrides {
            hold,
            freeze,
            external_snapshot: false,
        })
    }
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    id: String,
    #[arg(long)]
    tier: Option<String>,
    /// Replaces the hostnames (repeatable; at least one).
    #[arg(long = "hostname")]
    hostnames: Vec<String>,
    /// Published platform version whose template and chart the tenant gets.
    #[arg(long, conflicts_with = "builtin_platform")]
    platform: Option<String>,
    /// Return the tenant to the template and chart built into `tenantctl`.
    #[arg(long)]
    builtin_platform: bool,
    /// Pin the tenant to this platform version (it becomes its platform; platform
    /// rollouts skip it).
    #[arg(long, conflicts_with = "unpin_platform")]
    pin_platform: Option<String>,
    #[arg(long)]
    unpin_platform: bool,
    /// Pin the tenant to this release (rollouts skip it).
    #[arg(long, conflicts_with = "unpin")]
    pin: Option<String>,
    #[arg(long)]
    unpin: bool,
    /// Weekly windows, e.g. "Europe/Berlin Sun 02:00 4h"; "any" removes them.
    #[arg(long)]
    maintenance: Option<String>,
    /// Apply only if the tenant is still at this version (from `tenant get`).
    #[arg(long)]
    expected_version: Option<u64>,
    #[command(flatten)]
    hold: HoldArgs,
}

impl UpdateArgs {
    fn change(&self) -> Result<SpecChange, Failure> {
        fn pin(set: &Option<String>, unset: bool) -> Option<Option<&str>> {
            match (set, unset) {
                (Some(v), _) => Some(Some(v.as_str())),
                (None, true) => Some(None),
                (None, false) => None,
            }
        }
        let change = SpecChange {
            pinned_release: pin(&self.pin, self.unpin)
                .map(|v| v.map(ReleaseVersion::parse).transpose())
                .transpose()?,
            hostnames: match self.hostnames.is_empty() {
                true => None,
                false => Some(
                    self.hostnames
                        .iter()
                        .map(|h| Hostname::parse(h))
                        .collect::<Result<_, _>>()?,
                ),
            },
            tier: self.tier.as_deref().map(str::parse::<Tier>).transpose()?,
            maintenance: match self.maintenance.as_deref() {
                None => None,
                Some("any") => Some(None),
                Some(text) => Some(Some(text.parse::<MaintenanceWindows>()?)),
            },
            platform: pin(&self.platform, self.builtin_platform)
                .map(|v| v.map(PlatformVersion::parse).transpose())
                .transpose()?,
            pinned_platform: pin(&self.pin_platform, self.unpin_platform)
                .map(|v| v.map(PlatformVersion::parse).transpose())
                .transpose()?,
        };
        if change.is_empty() {
            return Err(Failure {
                code: EXIT_INVALID_INPUT,
                error: anyhow::anyhow!(
                    "nothing to change; pass --tier, --hostname, --platform, --builtin-platform, --pin-platform, \
                     --unpin-platform, --pin, --unpin or --maintenance"
                ),
            });
        }
        Ok(change)
    }
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Tenant id: a DNS label of 3–40 characters, e.g. acme-corp.
    #[arg(long)]
    id: String,
    #[arg(long)]
    region: String,
    #[arg(long, env = "TENANTCTL_ENVIRONMENT")]
    environment: String,
    #[arg(long, default_value = "default")]
    group: String,
    #[arg(long, default_value = "small")]
    tier: String,
    /// A name the tenant is served on (repeatable).
    #[arg(long = "hostname", required = true)]
    hostnames: Vec<String>,
    /// Release to provision; default: what the version policy gives the tenant
    /// (its group's override, else its region's default).
    #[arg(long)]
    release: Option<String>,
    /// Keep the tenant on this release: rollouts skip it.
    #[arg(long)]
    pin: bool,
    /// Weekly windows in which rollouts may start the tenant, in its time zone, e.g.
    /// "Europe/Berlin Sun 02:00 4h, Wed 22:00 2h"; default any time.
    #[arg(long)]
    maintenance: Option<String>,
    /// Published platform version (see `tenantctl platform list`) whose template and
    /// chart the tenant is deployed with; default: the one the version policy gives
    /// it, else those built into the worker.
    #[arg(long)]
    platform: Option<String>,
    /// Keep the tenant on its platform version: platform rollouts skip it.
    #[arg(long)]
    pin_platform: bool,
    /// After creating, wait until the tenant settles, as `tenantctl tenant wait` does;
    /// exit 1 unless it ends Active.
    #[arg(long)]
    wait: bool,
    /// How long --wait waits.
    #[arg(long, default_value = "30m", value_parser = humantime::parse_duration, requires = "wait")]
    timeout: std::time::Duration,
}

impl CreateArgs {
    /// The spec (unpinned) and the release given, if any, parsed.
    fn parsed(&self) -> Result<(TenantSpec, Option<ReleaseVersion>), Failure> {
        let given = self.release.as_deref().map(ReleaseVersion::parse).transpose()?;
        let spec = TenantSpec {
            id: TenantId::parse(&self.id)?,
            region: Region::parse(&self.region)?,
            environment: Environment::parse(&self.environment)?,
            group: Group::parse(&self.group)?,
            tier: self.tier.parse::<Tier>()?,
            hostnames: self
                .hostnames
                .iter()
                .map(|h| Hostname::parse(h))
                .collect::<Result<_, _>>()?,
            pinned_release: None,
            maintenance: self
                .maintenance
                .as_deref()
                .map(str::parse::<MaintenanceWindows>)
                .transpose()?,
            platform: self.platform.as_deref().map(PlatformVersion::parse).transpose()?,
            pinned_platform: None,
        };
        spec.validate()?;
        Ok((spec, given))
    }
}

pub fn operator() -> Actor {
    let who = std::env::var("TENANTCTL_ACTOR")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "cli".into());
    Actor::operator(&who)
}

/// Most tenants one page of `tenant list` may hold (the API's bound too).
const MAX_PAGE: u32 = 1000;

/// Checks the input both modes share, so the table and `--server` refuse the same
/// things with the same exit code before anything is read or sent.
fn check_input(command: &TenantCommand) -> Result<(), Failure> {
    let invalid = |error| Failure {
        code: EXIT_INVALID_INPUT,
        error,
    };
    match command {
        TenantCommand::List { state, limit, .. } => {
            if !(1..=MAX_PAGE).contains(limit) {
                return Err(invalid(anyhow::anyhow!(
                    "--limit {limit} is out of range; use 1-{MAX_PAGE}"
                )));
            }
            if let Some(s) = state {
                known_state(s).map_err(invalid)?;
            }
        }
        TenantCommand::Wait { state, .. } => known_state(state).map_err(invalid)?,
        _ => {}
    }
    Ok(())
}

fn known_state(name: &str) -> Result<(), anyhow::Error> {
    TenantState::parse_name(name)
        .map(|_| ())
        .map_err(anyhow::Error::from)
}

pub async fn run(
    table: &str,
    server: Option<&super::remote::Remote>,
    output: OutputFormat,
    command: TenantCommand,
) -> Result<(), Failure> {
    // Validate input before touching the network: bad input fails fast and changes nothing.
    check_input(&command)?;
    if let TenantCommand::Drift {
        id,
        steps_config,
        platform_bucket,
    } = &command
    {
        let id = TenantId::parse(id)?;
        let view = match server {
            Some(remote) => remote
                .get::<DriftView>(&format!(
                    "/v1/tenants/{}/drift",
                    super::remote::encode(id.as_str())
                ))
                .await
                .map_err(anyhow::Error::from)?,
            None => {
                let steps = super::worker::load_steps_config(steps_config.as_deref())?;
                let checker = super::worker::drift_checker(steps, platform_bucket.as_deref()).await;
                let app = super::connect(table).await.with_drift_checker(checker);
                DriftView::from(&app.drift().check(&id, &operator()).await?)
            }
        };
        print_drift(output, &view)?;
        return match view.drifted {
            true => Err(Failure {
                code: super::EXIT_DRIFTED,
                error: anyhow::anyhow!(
                    "tenant {id} has drifted ({}); `tenantctl tenant reconcile {id}` applies its revision again",
                    view.summary
                ),
            }),
            false => Ok(()),
        };
    }
    let service: Box<dyn TenantService> = match server {
        Some(remote) => Box::new(remote::RemoteTenants::new(remote.clone())),
        None => Box::new(LocalTenants::new(super::connect(table).await, operator())),
    };
    let tenants = service.as_ref();
    let (id, event, hold) = match command {
        TenantCommand::Create(args) => {
            let (spec, release) = args.parsed()?;
            let id = spec.id.clone();
            let view = tenants
                .create(spec, release, args.pin, args.pin_platform)
                .await
                .map_err(no_release)?;
            print_tenant(output, &view)?;
            if args.wait {
                return wait::wait(tenants, std::slice::from_ref(&id), "Active", args.timeout).await;
            }
            return Ok(());
        }
        TenantCommand::Get { id } => {
            let view = tenants.get(&TenantId::parse(&id)?).await?;
            return print_tenant(output, &view);
        }
        TenantCommand::List {
            region,
            state,
            limit,
            next_token,
        } => {
            let region = region.as_deref().map(Region::parse).transpose()?;
            let page = tenants
                .list(ListQuery {
                    region,
                    state,
                    limit: Some(limit),
                    next_token,
                })
                .await?;
            return print_list(output, &page);
        }
        TenantCommand::History { id, limit } => {
            let id = TenantId::parse(&id)?;
            let mut events = Vec::new();
            let mut token = None;
            loop {
                let page = tenants.history(&id, limit.min(MAX_PAGE), token).await?;
                events.extend(page.items);
                token = page.next_token;
                if token.is_none() || events.len() >= limit as usize {
                    break;
                }
            }
            events.truncate(limit as usize);
            return print_history(output, &events);
        }
        TenantCommand::Wait { ids, state, timeout } => {
            let ids = ids
                .iter()
                .map(|i| TenantId::parse(i))
                .collect::<Result<Vec<_>, _>>()?;
            return wait::wait(tenants, &ids, &state, timeout).await;
        }
        TenantCommand::Update(args) => {
            let id = TenantId::parse(&args.id)?;
            let change = args.change()?;
            let view = tenants
                .update(&id, &change, args.expected_version, args.hold.hold()?)
                .await?;
            return print_tenant(output, &view);
        }
        TenantCommand::Upgrade { id, release, hold } => {
            let release = ReleaseVersion::parse(&release)?;
            (id, TenantEvent::Upgrade { release }, hold)
        }
        TenantCommand::Reconcile { id, hold } => (id, TenantEvent::Reconcile, hold),
        TenantCommand::Retry { id, hold } => (id, TenantEvent::Retry, hold),
        TenantCommand::Rollback { id, hold } => (id, TenantEvent::Rollback, hold),
        TenantCommand::Restore {
            id,
            snapshot,
            external_snapshot,
            hold,
        } => {
            let snapshot = SnapshotName::parse(&snapshot)?;
            let overrides = Overrides {
                external_snapshot,
                ..hold.hold()?
            };
            let event = TenantEvent::Restore {
                snapshot: snapshot.into(),
            };
            let view = tenants.command(&TenantId::parse(&id)?, event, overrides).await?;
            return print_tenant(output, &view);
        }
        TenantCommand::Deprovision { id, hold } => (id, TenantEvent::Deprovision, hold),
        TenantCommand::Drift { .. } => unreachable!("answered above"),
    };
    let view = tenants
        .command(&TenantId::parse(&id)?, event, hold.hold()?)
        .await?;
    print_tenant(output, &view)
}

/// A create refused because the version policy names no release: a conflict with what
/// is stored (as the API's 409 `no_release`), with the CLI's own way out.
fn no_release(error: anyhow::Error) -> Failure {
    match error.downcast_ref::<CommandError>() {
        Some(CommandError::NoRelease {
            environment,
            region,
            group,
        }) => Failure {
            code: super::EXIT_CONFLICT,
            error: anyhow::anyhow!(
                "no --release given and the version policy has no release for environment \
                 {environment} in {region} (group {group}); pass --release or set one with \
                 `tenantctl policy set-default`"
            ),
        },
        _ => Failure::from(error.context("creating tenant")),
    }
}
