//! `tenantctl serve`: the HTTP API, and by default the tenant workers and the rollout
//! controller in the same process. SIGTERM or ctrl-c first drains in-flight requests, then stops the workers
//! (which give running steps their grace period).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::Args;
use tokio::sync::watch;

use tenant_orchestrator::api::{self, ApiState, Tokens};
use tenant_orchestrator::steps::artifact::CheckArtifact;
use tenant_orchestrator::steps::AwsClients;
use tenant_orchestrator::worker::Worker;

use super::worker::{drift_checker, load_steps_config, product_steps, shutdown_signal, WorkerArgs};
use super::Failure;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TENANTCTL_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// API tokens: a JSON or YAML list of {name, scope, sha256}.
    #[arg(long, env = "TENANTCTL_TOKENS_FILE", conflicts_with = "tokens_ssm_parameter")]
    tokens_file: Option<PathBuf>,
    /// API tokens from an SSM SecureString parameter holding the same list.
    #[arg(long, env = "TENANTCTL_TOKENS_SSM_PARAMETER")]
    tokens_ssm_parameter: Option<String>,
    /// Serve the API only; run no tenant workers in this process.
    #[arg(long, env = "TENANTCTL_NO_WORKER")]
    no_worker: bool,
    /// On shutdown, how long in-flight requests may take before the server stops anyway.
    #[arg(long, env = "TENANTCTL_DRAIN_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    drain_timeout: Duration,
    /// How often to check the fleet's invariants (as `tenantctl fleet check` does) and
    /// publish the count of broken ones as `tenantctl_fleet_invariant_violations` on
    /// /metrics; each broken one is also logged. Each check scans the table. 0s turns
    /// it off.
    #[arg(long, env = "TENANTCTL_FLEET_CHECK_INTERVAL", default_value = "30m", value_parser = humantime::parse_duration)]
    fleet_check_interval: Duration,
    /// Accept Stripe's subscription webhooks at POST /v1/intake/stripe, mapped to
    /// tenants by this file (YAML or JSON: environment, prices → tiers, metadata keys,
    /// grace period, the endpoint's signing secrets by variable or file). Checked at
    /// start-up. Without it the endpoint answers 404.
    #[arg(long, env = "TENANTCTL_STRIPE_INTAKE")]
    stripe_intake: Option<PathBuf>,
    #[command(flatten)]
    worker: WorkerArgs,
}

/// How often `serve` looks for deprovisions that canceled subscriptions scheduled and
/// that are due.
const INTAKE_SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// Checks the fleet's invariants every `interval` until `stop` turns true.
async fn check_fleet_periodically(
    app: tenant_orchestrator::app::App,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match app.check_fleet().await {
            Ok(check) => {
                for v in &check.violations {
                    tracing::error!(invariant = v.invariant, subject = %v.subject, detail = %v.detail, "fleet invariant broken");
                }
                tracing::info!(
                    tenants = check.tenants,
                    rollouts = check.rollouts,
                    broken = check.violations.len(),
                    "fleet checked"
                );
            }
            Err(e) => tracing::warn!(error = %e, "fleet check failed; will try again at the next interval"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn load_tokens(args: &ServeArgs) -> Result<Tokens, Failure> {
    let invalid = |e: api::TokenConfigError| Failure {
        code: 2,
        error: anyhow!(e),
    };
    match (&args.tokens_file, &args.tokens_ssm_parameter) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the token list {}", path.display()))?;
            Tokens::parse(&text).map_err(|e| Failure {
                code: 2,
                error: anyhow!("{}: {e}", path.display()),
            })
        }
        (None, Some(name)) => {
            let config = aws_config::load_from_env().await;
            Tokens::from_ssm(&aws_sdk_ssm::Client::new(&config), name)
                .await
                .map_err(invalid)
        }
        (None, None) => Err(Failure {
            code: 2,
            error: anyhow!(
                "no API tokens configured; pass --tokens-file or --tokens-ssm-parameter \
                 (a list of {{name, scope, sha256}}; hash a token with `tenantctl token hash`)"
            ),
        }),
    }
}

pub async fn run(table: &str, args: ServeArgs) -> Result<(), Failure> {
    let tokens = load_tokens(&args).await?;
    let intake_config = args
        .stripe_intake
        .as_deref()
        .map(tenant_orchestrator::app::IntakeConfig::load)
        .transpose()
        .map_err(|e| Failure {
            code: 2,
            error: anyhow!(e),
        })?;
    let worker_config = (!args.no_worker).then(|| args.worker.config()).transpose()?;
    let mut app = super::connect_with_bucket(table, args.worker.platform_bucket.as_deref()).await;
    if worker_config.is_some() || args.worker.steps_config.is_some() {
        // Drift checks (API and sweep) read AWS and Helm as the steps would.
        let steps = load_steps_config(args.worker.steps_config.as_deref())?;
        app = app.with_drift_checker(drift_checker(steps, args.worker.platform_bucket.as_deref()).await);
    }
    let store = app.backend().clone();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    tracing::info!(listen = %listener.local_addr()?, table, tokens = ?tokens.names(), workers = worker_config.is_some(), "serving");

    let signal = shutdown_signal();
    // The workers get their own stop signal, sent once the server has drained.
    let (stop_workers, workers_rx) = watch::channel(false);
    let mut controller = None;
    let workers = match worker_config {
        Some(config) => {
            let worker_owner = config.owner.clone();
            let steps_config = load_steps_config(args.worker.steps_config.as_deref())?;
            if let Some(c) = args
                .worker
                .controller_for(store.clone(), &steps_config, &config.owner)
                .await?
            {
                let rx = workers_rx.clone();
                controller = Some(tokio::spawn(async move { c.run(rx).await }));
            }
            let bucket = args.worker.platform_bucket.as_deref();
            let steps = product_steps(steps_config, store.clone(), app.rate_limiter(), bucket).await;
            let worker = Worker::new(store.clone(), steps, config);
            let rx = workers_rx.clone();
            let (drift, options, owner, sweep_rx) = (
                app.drift().clone(),
                args.worker.drift.clone(),
                worker_owner.clone(),
                workers_rx.clone(),
            );
            tokio::spawn(async move { options.run(drift, &owner, sweep_rx).await });
            if let Some(dispatcher) = args.worker.events.dispatcher(app.outbox(), &worker_owner).await? {
                tokio::spawn(dispatcher.run(workers_rx.clone()));
            }
            Some(tokio::spawn(async move { worker.run(rx).await }))
        }
        None => None,
    };

    let fleet_check = (!args.fleet_check_interval.is_zero()).then(|| {
        tokio::spawn(check_fleet_periodically(
            app.clone(),
            args.fleet_check_interval,
            workers_rx.clone(),
        ))
    });

    let intake = intake_config.map(|config| app.stripe_intake(config));
    if let Some(intake) = &intake {
        tracing::info!(environment = %intake.config().environment, prices = intake.config().prices.len(), "Stripe intake enabled at /v1/intake/stripe");
        tokio::spawn(intake.clone().sweep(INTAKE_SWEEP_INTERVAL, workers_rx.clone()));
    }
    let mut state = ApiState::new(app, tokens);
    if let Some(intake) = intake {
        state = state.with_stripe_intake(intake);
    }
    if let Some(path) = args.worker.steps_config.as_deref() {
        // Rollouts started through the API are checked against the artifact repository.
        let steps = load_steps_config(Some(path))?;
        let aws = std::sync::Arc::new(AwsClients::from_env().await);
        state = state.with_release_registry(std::sync::Arc::new(CheckArtifact::new(
            steps.artifact.clone(),
            aws,
        )));
        // ... and previewed, refused when they would replace a tenant's data unasked.
        let preview = super::worker::product_preview(steps, args.worker.platform_bucket.as_deref()).await;
        state = state.with_change_preview(preview);
    }
    let app = api::router(state);
    let mut drained = signal.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = drained.wait_for(|stop| *stop).await;
        tracing::info!("draining in-flight requests");
    });
    let mut deadline = signal;
    let served = tokio::select! {
        result = server => result.context("serving the API"),
        _ = async {
            let _ = deadline.wait_for(|stop| *stop).await;
            tokio::time::sleep(args.drain_timeout).await;
        } => {
            tracing::warn!(timeout = ?args.drain_timeout, "requests still running after the drain timeout; stopping anyway");
            Ok(())
        }
    };
    tracing::info!("API stopped; stopping workers");
    let _ = stop_workers.send(true);
    if let Some(check) = fleet_check {
        check.abort();
    }
    if let Some(controller) = controller {
        controller.await.context("the rollout controller task panicked")?;
    }
    if let Some(workers) = workers {
        workers
            .await
            .context("the worker task panicked")?
            .context("worker stopped with an error")?;
    }
    served?;
    Ok(())
}
