use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::Args;
use tokio::sync::watch;

use std::sync::Arc;
use tenant_orchestrator::domain::Region;

use tenant_orchestrator::app::{Backend, DriftCommands, PromotionCommands, RolloutCommands, SweepRate};
use tenant_orchestrator::outbox::{Dispatcher, DispatcherConfig, EventsConfig, EventsConfigError};
use tenant_orchestrator::platform::{self, S3PlatformArtifacts};
use tenant_orchestrator::ports::{DriftChecker, OutboxStore, PlatformArtifacts, Relay, TenantProbe, Wakeup};
use tenant_orchestrator::record::Actor;
use tenant_orchestrator::rollout::{Controller, ControllerConfig};
use tenant_orchestrator::step::StepRegistry;
use tenant_orchestrator::steps::drift::AwsDriftChecker;
use tenant_orchestrator::steps::verify::HealthProbe;
use tenant_orchestrator::steps::{self, AwsClients, StepsConfig};
use tenant_orchestrator::worker::{Backoff, Worker, WorkerConfig};

use super::Failure;

#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// Name recorded as lease owner and in history (default: host name, pid and a random suffix).
    #[arg(long, env = "TENANTCTL_WORKER_ID")]
    id: Option<String>,
    /// Serve only these regions (repeatable); default: every region in the table.
    #[arg(long = "region", env = "TENANTCTL_WORKER_REGIONS", value_delimiter = ',')]
    regions: Vec<String>,
    /// Lease time-to-live, e.g. 30s.
    #[arg(long, env = "TENANTCTL_LEASE_TTL", default_value = "30s", value_parser = humantime::parse_duration)]
    lease_ttl: Duration,
    /// Lease renewal interval while a step runs; at most a third of the TTL.
    #[arg(long, env = "TENANTCTL_HEARTBEAT", default_value = "10s", value_parser = humantime::parse_duration)]
    heartbeat: Duration,
    /// Pause between polls of the work index when nothing is due.
    #[arg(long, env = "TENANTCTL_POLL_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    poll_interval: Duration,
    /// Tenants worked on at once by this process.
    #[arg(long, env = "TENANTCTL_CONCURRENCY", default_value_t = 8)]
    concurrency: usize,
    /// Longest a step may take over all its attempts.
    #[arg(long, env = "TENANTCTL_STEP_DEADLINE", default_value = "45m", value_parser = humantime::parse_duration)]
    step_deadline: Duration,
    /// Attempts of a step that fails with a retryable error before it fails for good.
    #[arg(long, env = "TENANTCTL_MAX_ATTEMPTS", default_value_t = 6)]
    max_attempts: u32,
    /// First retry delay; doubles per attempt (with jitter) up to --backoff-cap.
    #[arg(long, env = "TENANTCTL_BACKOFF_BASE", default_value = "2s", value_parser = humantime::parse_duration)]
    backoff_base: Duration,
    #[arg(long, env = "TENANTCTL_BACKOFF_CAP", default_value = "2m", value_parser = humantime::parse_duration)]
    backoff_cap: Duration,
    /// Steps configuration (JSON): artifact repository, regions, listeners, Helm, verify.
    #[arg(long, env = "TENANTCTL_STEPS_CONFIG")]
    pub steps_config: Option<std::path::PathBuf>,
    /// S3 bucket of the published platform versions (as for `tenantctl platform`):
    /// a tenant whose spec names a platform version is deployed from it.
    #[arg(long, env = "TENANTCTL_PLATFORM_BUCKET")]
    pub platform_bucket: Option<String>,
    /// On SIGTERM, how long running steps may take to finish before their lease is released.
    #[arg(long, env = "TENANTCTL_SHUTDOWN_GRACE", default_value = "20s", value_parser = humantime::parse_duration)]
    shutdown_grace: Duration,
    /// Most step outcomes recorded in one write: a step that succeeds straight into
    /// the next is written with the steps after it, one history event each, within
    /// --step-write-delay. 1 writes every step on its own.
    #[arg(long, env = "TENANTCTL_STEPS_PER_WRITE", default_value_t = tenant_orchestrator::worker::MAX_STEPS_PER_WRITE)]
    steps_per_write: usize,
    /// Longest a finished step's outcome waits to be written with the next ones.
    #[arg(long, env = "TENANTCTL_STEP_WRITE_DELAY", default_value = "1s", value_parser = humantime::parse_duration)]
    step_write_delay: Duration,
    /// Do not run the rollout controller in this process.
    #[arg(long, env = "TENANTCTL_NO_CONTROLLER")]
    no_controller: bool,
    #[command(flatten)]
    pub controller: ControllerOptions,
    #[command(flatten)]
    pub drift: DriftSweepOptions,
    #[command(flatten)]
    pub events: EventsOptions,
}

/// The outbox dispatcher every worker process runs when sinks are configured.
#[derive(Args, Debug, Clone)]
pub struct EventsOptions {
    /// Events configuration (JSON): the sinks events are delivered to, their filters
    /// and the retry policy. Without it this process delivers no events (they wait,
    /// pending, for a process that has it).
    #[arg(long, env = "TENANTCTL_EVENTS_CONFIG")]
    pub events_config: Option<std::path::PathBuf>,
    /// How long a dispatcher's lease on an outbox partition lasts; another process
    /// takes the partition over this long after its dispatcher dies.
    #[arg(long, env = "TENANTCTL_OUTBOX_LEASE_TTL", default_value = "30s", value_parser = humantime::parse_duration)]
    outbox_lease_ttl: Duration,
    /// Pause between the dispatcher's passes when it delivered nothing.
    #[arg(long, env = "TENANTCTL_OUTBOX_POLL_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    outbox_poll_interval: Duration,
}

impl EventsOptions {
    /// The dispatcher over `outbox` with the configured sinks, if a configuration is given.
    pub async fn dispatcher(
        &self,
        outbox: Arc<dyn OutboxStore>,
        owner: &str,
    ) -> Result<Option<Dispatcher>, Failure> {
        let Some(path) = &self.events_config else {
            return Ok(None);
        };
        let invalid = |e: EventsConfigError| Failure {
            code: super::EXIT_INVALID_INPUT,
            error: anyhow!(e),
        };
        let config = EventsConfig::load(path).map_err(invalid)?;
        let sinks = tenant_orchestrator::outbox::sinks(&config)
            .await
            .map_err(invalid)?;
        Ok(Some(Dispatcher::new(
            outbox,
            sinks,
            DispatcherConfig {
                owner: owner.to_owned(),
                lease_ttl: self.outbox_lease_ttl,
                poll_interval: self.outbox_poll_interval,
                batch: 50,
                retry: config.retry(),
                retention: config.retention,
            },
        )))
    }
}

/// The drift sweep: each Active tenant's stack, configuration and Helm release are
/// compared with its desired revision, least recently checked first.
#[derive(Args, Debug, Clone)]
pub struct DriftSweepOptions {
    /// How old a tenant's last drift check may get before the sweep checks it again.
    #[arg(long, env = "TENANTCTL_DRIFT_INTERVAL", default_value = "6h", value_parser = humantime::parse_duration)]
    drift_interval: Duration,
    /// Most drift checks this process makes a minute (each reads the stack, the SSM
    /// parameters and the Helm release of one tenant); 0 turns the sweep off.
    #[arg(long, env = "TENANTCTL_DRIFT_CHECKS_PER_MINUTE", default_value_t = 10)]
    drift_checks_per_minute: u32,
}

impl DriftSweepOptions {
    pub fn rate(&self) -> SweepRate {
        SweepRate {
            interval: self.drift_interval,
            per_minute: self.drift_checks_per_minute,
        }
    }

    /// Runs the sweep of `drift` until `stop`, recording its checks as `owner`'s.
    pub async fn run(&self, drift: DriftCommands, owner: &str, stop: watch::Receiver<bool>) {
        drift
            .run_sweep(self.rate(), Actor(format!("drift-sweep:{owner}")), stop)
            .await
    }
}

/// The rollout controller's settings.
#[derive(Args, Debug, Clone)]
pub struct ControllerOptions {
    /// How long a rollout's lease lasts; another replica takes a rollout over this
    /// long after its controller dies.
    #[arg(long, env = "TENANTCTL_ROLLOUT_LEASE_TTL", default_value = "15s", value_parser = humantime::parse_duration)]
    rollout_lease_ttl: Duration,
    /// Time between the controller's passes over running rollouts.
    #[arg(long, env = "TENANTCTL_ROLLOUT_TICK", default_value = "2s", value_parser = humantime::parse_duration)]
    rollout_tick: Duration,
}

#[derive(Args, Debug)]
pub struct ControllerArgs {
    /// Name recorded as rollout lease owner (default: host name, pid and a random suffix).
    #[arg(long, env = "TENANTCTL_WORKER_ID")]
    id: Option<String>,
    /// Steps configuration (JSON); its `verify` section sets the bake health checks.
    #[arg(long, env = "TENANTCTL_STEPS_CONFIG")]
    steps_config: Option<std::path::PathBuf>,
    #[command(flatten)]
    controller: ControllerOptions,
}

impl ControllerOptions {
    fn config(&self, owner: String) -> Result<ControllerConfig, Failure> {
        if self.rollout_tick * 3 > self.rollout_lease_ttl {
            return Err(Failure {
                code: 2,
                error: anyhow!(
                    "--rollout-tick {} must be at most a third of --rollout-lease-ttl {}, so the lease is renewed in time",
                    humantime::format_duration(self.rollout_tick),
                    humantime::format_duration(self.rollout_lease_ttl)
                ),
            });
        }
        Ok(ControllerConfig {
            lease_ttl: self.rollout_lease_ttl,
            tick: self.rollout_tick,
            ..ControllerConfig::new(owner)
        })
    }
}

/// The controller with its bake health checks (hostnames, then alarms) taken from the
/// steps configuration, on AWS clients built from the standard AWS environment.
async fn controller(
    store: Arc<dyn Backend>,
    steps: &StepsConfig,
    config: ControllerConfig,
) -> Result<Controller, Failure> {
    let aws = Arc::new(AwsClients::from_env_with_targets(&steps.targets).await);
    let probe = HealthProbe::new(&steps.verify, aws).map_err(|e| Failure {
        code: 2,
        error: anyhow!("the steps configuration's verify section cannot be used for bake checks: {e}"),
    })?;
    let probe: Arc<dyn TenantProbe> = Arc::new(probe);
    let promoter = PromotionCommands::new(
        store.clone(),
        store.clone(),
        RolloutCommands::new(store.clone(), store.clone()),
    )
    .with_probe(probe.clone());
    Ok(Controller::new(store.clone(), store.clone(), probe, config)
        .with_policy(store.clone())
        .with_promotions(store)
        .with_promoter(Arc::new(promoter)))
}

pub async fn run_controller(table: &str, args: ControllerArgs) -> Result<(), Failure> {
    let owner = args.id.clone().unwrap_or_else(default_worker_id);
    let config = args.controller.config(owner)?;
    let steps = load_steps_config(args.steps_config.as_deref())?;
    let store = super::connect(table).await.backend().clone();
    controller(store, &steps, config)
        .await?
        .run(shutdown_signal())
        .await;
    Ok(())
}

impl WorkerArgs {
    /// The rollout controller this process runs beside its workers, unless
    /// `--no-controller`.
    pub async fn controller_for(
        &self,
        store: Arc<dyn Backend>,
        steps: &StepsConfig,
        owner: &str,
    ) -> Result<Option<Controller>, Failure> {
        if self.no_controller {
            return Ok(None);
        }
        Ok(Some(
            controller(store, steps, self.controller.config(owner.to_owned())?).await?,
        ))
    }

    pub fn config(&self) -> Result<WorkerConfig, Failure> {
        let owner = self.id.clone().unwrap_or_else(default_worker_id);
        let regions = if self.regions.is_empty() {
            None
        } else {
            Some(
                self.regions
                    .iter()
                    .map(|r| Region::parse(r))
                    .collect::<Result<Vec<_>, _>>()?,
            )
        };
        let config = WorkerConfig {
            regions,
            lease_ttl: self.lease_ttl,
            heartbeat: self.heartbeat,
            poll_interval: self.poll_interval,
            concurrency: self.concurrency,
            backoff: Backoff {
                base: self.backoff_base,
                cap: self.backoff_cap,
                max_attempts: self.max_attempts,
            },
            step_deadline: self.step_deadline,
            shutdown_grace: self.shutdown_grace,
            steps_per_write: self.steps_per_write,
            step_write_delay: self.step_write_delay,
            ..WorkerConfig::new(owner)
        };
        config.validate().map_err(|e| Failure {
            code: super::EXIT_INVALID_INPUT,
            error: anyhow!(e),
        })?;
        Ok(config)
    }
}

fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into());
    let suffix: u32 = rand::random::<u32>() % 100_000;
    format!("{host}-{}-{suffix:05}", std::process::id())
}

/// Stops on SIGTERM or ctrl-c by flipping the watch channel the workers observe.
pub fn shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {}
            _ = term => {}
        }
        tracing::info!("shutdown requested");
        let _ = tx.send(true);
    });
    rx
}

/// A controller and a worker in one process wake each other: the worker starts the
/// tenants the controller made due at once, and the controller sees at once a tenant
/// the worker finished. The controller also gives the tenants it starts to the worker,
/// lease and all, while the worker has a free slot, and offers the next ones to start
/// in the write that lands one of its tenants ([`Relay`]).
pub(super) fn wake_each_other(
    controller: Option<Controller>,
    worker: Worker,
) -> (Option<Controller>, Worker) {
    let Some(controller) = controller else {
        return (None, worker);
    };
    let (due, settled, relay) = (Wakeup::default(), Wakeup::default(), Relay::new());
    let (worker, handoff) = worker
        .with_due_wakeup(due.clone())
        .with_settled_wakeup(settled.clone())
        .with_relay(relay.clone())
        .with_handoff();
    let controller = controller
        .with_wakeups(due, settled)
        .with_handoff(handoff)
        .with_relay(relay);
    (Some(controller), worker)
}

pub async fn run(table: &str, args: WorkerArgs) -> Result<(), Failure> {
    let config = args.config()?;
    let args = &args;
    let steps_config = load_steps_config(args.steps_config.as_deref())?;
    let app = super::connect(table)
        .await
        .with_drift_checker(drift_checker(steps_config.clone(), args.platform_bucket.as_deref()).await);
    let store = app.backend().clone();
    let controller = args
        .controller_for(store.clone(), &steps_config, &config.owner)
        .await?;
    let steps = product_steps(
        steps_config,
        store.clone(),
        app.rate_limiter(),
        args.platform_bucket.as_deref(),
    )
    .await;
    let owner = config.owner.clone();
    let dispatcher = args.events.dispatcher(app.outbox(), &owner).await?;
    let (controller, worker) = wake_each_other(controller, Worker::new(store, steps, config));
    let shutdown = shutdown_signal();
    let controlling = async {
        if let Some(controller) = &controller {
            controller.run(shutdown.clone()).await;
        }
    };
    let dispatching = async {
        if let Some(dispatcher) = dispatcher {
            dispatcher.run(shutdown.clone()).await;
        }
    };
    let sweeping = args.drift.run(app.drift().clone(), &owner, shutdown.clone());
    let (worked, (), (), ()) = tokio::join!(worker.run(shutdown.clone()), controlling, sweeping, dispatching);
    worked.context("worker stopped with an error")?;
    Ok(())
}

/// Loads the steps configuration (defaults when no file is given).
pub fn load_steps_config(path: Option<&std::path::Path>) -> Result<StepsConfig, Failure> {
    let Some(path) = path else {
        return Ok(StepsConfig::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the steps configuration {}", path.display()))?;
    let config: StepsConfig = serde_json::from_str(&text).map_err(|e| Failure {
        code: 2,
        error: anyhow!("{} is not a valid steps configuration: {e}", path.display()),
    })?;
    config.rate_limits.validate().map_err(|e| Failure {
        code: 2,
        error: anyhow!("{} is not a valid steps configuration: {e}", path.display()),
    })?;
    config.targets.validate().map_err(|e| Failure {
        code: 2,
        error: anyhow!("{} is not a valid steps configuration: {e}", path.display()),
    })?;
    Ok(config)
}

/// Per region the steps configure, the least time between two upgrade starts that
/// keeps its rate-limited AWS calls under their limits, for the planner's estimate.
pub fn start_spacing(config: &StepsConfig) -> tenant_orchestrator::rollout::StartSpacing {
    (config.regions.keys())
        .filter_map(|name| tenant_orchestrator::domain::Region::parse(name).ok())
        .filter_map(|region| config.rate_limits.upgrade_spacing(&region).map(|d| (region, d)))
        .collect()
}

/// The platform artifact store in `bucket`, if one is given.
pub async fn platform_artifacts(bucket: Option<&str>) -> Option<Arc<dyn PlatformArtifacts>> {
    let bucket = bucket.filter(|b| !b.trim().is_empty())?;
    let base = aws_config::load_from_env().await;
    Some(Arc::new(S3PlatformArtifacts::new(
        platform::client(&base),
        bucket,
    )))
}

/// The stack preview of rollouts on the real AWS, with the steps' configuration and
/// the published platform versions of `platform_bucket` when one is given.
pub async fn product_preview(
    config: StepsConfig,
    platform_bucket: Option<&str>,
) -> Arc<dyn tenant_orchestrator::ports::ChangePreview> {
    let aws = Arc::new(AwsClients::from_env_with_targets(&config.targets).await);
    let platforms = platform_artifacts(platform_bucket).await;
    Arc::new(steps::change_preview(Arc::new(config), aws, platforms))
}

/// The drift checker on the same AWS clients, settings and platform bucket as the steps.
pub async fn drift_checker(config: StepsConfig, platform_bucket: Option<&str>) -> Arc<dyn DriftChecker> {
    let aws = Arc::new(AwsClients::from_env_with_targets(&config.targets).await);
    let platforms = platform_artifacts(platform_bucket).await;
    Arc::new(AwsDriftChecker::new(Arc::new(config), aws, platforms))
}

/// The real AWS steps, on clients built from the standard AWS environment, reading
/// published platform versions from `platform_bucket` when one is given.
pub async fn product_steps(
    config: StepsConfig,
    store: Arc<dyn Backend>,
    limiter: Arc<dyn tenant_orchestrator::ports::RateLimiter>,
    platform_bucket: Option<&str>,
) -> StepRegistry {
    let throttle = steps::rate_limits::Throttle::new(limiter, config.rate_limits.clone());
    let aws = Arc::new(
        AwsClients::from_env_with_targets(&config.targets)
            .await
            .with_throttle(throttle),
    );
    let platforms = platform_artifacts(platform_bucket).await;
    steps::registry(Arc::new(config), aws, store, platforms)
}
