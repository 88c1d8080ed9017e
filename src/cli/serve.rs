//! `tenantctl serve`: the HTTP API, and by default the tenant workers and the rollout
//! controller in the same process. SIGTERM or ctrl-c first drains in-flight requests, then stops the workers
//! (which give running steps their grace period).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::Args;
use tokio::sync::watch;

use tenant_orchestrator::api::oidc::{OidcConfig, OidcVerifier};
use tenant_orchestrator::api::{self, ApiState, Tokens};
use tenant_orchestrator::steps::artifact::CheckArtifact;
use tenant_orchestrator::steps::AwsClients;
use tenant_orchestrator::worker::Worker;

use super::tls::{ReloadingCertificate, TlsListener};
use super::worker::{
    drift_checker, load_steps_config, product_steps, shutdown_signal, wake_each_other, WorkerArgs,
};
use super::Failure;
use tenant_orchestrator::api::listen::{
    max_connections, read_timeout, serve_until, LimitedListener, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_READ_TIMEOUT,
};

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
    /// Also accept OpenID Connect bearer tokens (Entra ID, Azure DevOps workload
    /// identity, any OpenID provider): a YAML or JSON file with issuer, audience,
    /// algorithms, mappings of claims to scopes, and optionally jwks_uri,
    /// clock_skew_seconds, jwks_max_age_seconds, name_claim, and a dashboard section
    /// for browser sign-in (client_id, client_secret_env or client_secret_file,
    /// redirect_url). Checked at start-up.
    #[arg(long, env = "TENANTCTL_OIDC_CONFIG")]
    oidc_config: Option<PathBuf>,
    /// Serve the API only; run no tenant workers in this process.
    #[arg(long, env = "TENANTCTL_NO_WORKER")]
    no_worker: bool,
    /// How long a client may take to send a request's line and headers, on a new
    /// connection or a kept-alive one, and then as long again for its body. A
    /// connection that has not sent the headers by then is closed, and a request
    /// whose body is late is answered 400, so slow or stalled clients cannot hold
    /// connections open. A kept-alive connection idle that long is closed too.
    #[arg(long, env = "TENANTCTL_REQUEST_READ_TIMEOUT", default_value = DEFAULT_READ_TIMEOUT, value_parser = read_timeout)]
    request_read_timeout: Duration,
    /// How many connections the API port holds open at once (the health port holds as
    /// many again, apart). Past it the port stops accepting until one closes: new
    /// clients wait in the listen backlog, so a flood of connections cannot take the
    /// file descriptors the server's own AWS calls need. Put a load balancer in front
    /// for more clients than this.
    #[arg(long, env = "TENANTCTL_MAX_CONNECTIONS", default_value = DEFAULT_MAX_CONNECTIONS, value_parser = max_connections)]
    max_connections: usize,
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
    /// Serve HTTPS with this certificate (PEM; the server's certificate first, then
    /// its chain). The certificate and key are reloaded when the files change (each
    /// handshake looks at them); a changed pair that cannot be used keeps the previous
    /// one and is logged and counted in `tenantctl_tls_reload_errors_total`.
    #[arg(long, env = "TENANTCTL_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "TENANTCTL_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Refuse plain HTTP on --listen (it answers 400 saying to use https); without
    /// it, the port takes both HTTPS and plain HTTP. Health checks can then be served
    /// in plain HTTP on --health-listen.
    #[arg(long, env = "TENANTCTL_HTTPS_ONLY", requires = "tls_cert")]
    https_only: bool,
    /// Also serve /healthz and /readyz (only those) in plain HTTP on this address,
    /// for load balancers and probes that do not speak HTTPS.
    #[arg(long, env = "TENANTCTL_HEALTH_LISTEN")]
    health_listen: Option<SocketAddr>,
    /// How long one read of the fleet's counts is reused by /v1/fleet/summary, the
    /// dashboard and /metrics (concurrent refreshes share a read): the counts lag a
    /// change by at most this. 0s reads them for every request.
    #[arg(long, env = "TENANTCTL_SUMMARY_MAX_AGE", default_value = "30s", value_parser = humantime::parse_duration)]
    summary_max_age: Duration,
    /// How long the audit trail keeps an access decision before the table's TTL
    /// removes it (e.g. 400d, at most 1100d).
    #[arg(long, env = "TENANTCTL_AUDIT_RETENTION", default_value = "400d", value_parser = audit_retention)]
    audit_retention: Duration,
    #[command(flatten)]
    worker: WorkerArgs,
}

fn audit_retention(text: &str) -> Result<Duration, String> {
    let retention =
        humantime::parse_duration(text).map_err(|e| format!("{e}; use a duration like 400d or 2years"))?;
    let days = retention.as_secs() / 86_400;
    if days < 1 || days > tenant_orchestrator::ports::MAX_AUDIT_DAYS as u64 {
        return Err(format!(
            "{text} is outside 1d..={}d; the audit trail keeps entries at least a day and at most {} days",
            tenant_orchestrator::ports::MAX_AUDIT_DAYS,
            tenant_orchestrator::ports::MAX_AUDIT_DAYS
        ));
    }
    Ok(retention)
}

#[derive(Args, Debug)]
pub struct ProbeArgs {
    /// The URL to check.
    #[arg(default_value = "http://127.0.0.1:8080/healthz")]
    url: String,
    /// How long to wait for the answer.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// `tenantctl probe`: GET the URL; 200 passes, anything else (or no answer) fails.
pub async fn probe(args: ProbeArgs) -> Result<(), Failure> {
    let response = reqwest::Client::new()
        .get(&args.url)
        .timeout(args.timeout)
        .send()
        .await
        .with_context(|| format!("{} did not answer", args.url))?;
    match response.status() {
        reqwest::StatusCode::OK => Ok(()),
        status => Err(anyhow!("{} answered {status}", args.url).into()),
    }
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
            let client = aws_sdk_ssm::Client::from_conf(
                aws_sdk_ssm::config::Builder::from(&config)
                    .interceptor(tenant_orchestrator::ports::aws_calls::AwsCallMetrics::new("ssm"))
                    .build(),
            );
            Tokens::from_ssm(&client, name).await.map_err(invalid)
        }
        // OpenID Connect alone: no static token is known.
        (None, None) if args.oidc_config.is_some() => Ok(Tokens::default()),
        (None, None) => Err(Failure {
            code: 2,
            error: anyhow!(
                "no API tokens configured; pass --tokens-file or --tokens-ssm-parameter \
                 (a list of {{name, scope, sha256}}; hash a token with `tenantctl token hash`), \
                 or --oidc-config to accept OpenID Connect tokens, or both"
            ),
        }),
    }
}

fn load_oidc(args: &ServeArgs) -> Result<Option<Arc<OidcVerifier>>, Failure> {
    let Some(path) = &args.oidc_config else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the OpenID Connect configuration {}", path.display()))?;
    let config = OidcConfig::parse(&text).map_err(|e| Failure {
        code: 2,
        error: anyhow!("{}: {e}", path.display()),
    })?;
    Ok(Some(Arc::new(OidcVerifier::new(config))))
}

pub async fn run(table: &str, args: ServeArgs) -> Result<(), Failure> {
    let tokens = load_tokens(&args).await?;
    let oidc = load_oidc(&args)?;
    let certificate = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(Arc::new(
            ReloadingCertificate::load(cert.clone(), key.clone()).map_err(|e| Failure {
                code: 2,
                error: anyhow!(e),
            })?,
        )),
        _ => None,
    };
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
    // The API's rollout commands wake the controller beside it, if this process runs one.
    let commanded = tenant_orchestrator::ports::Wakeup::default();
    app = app.with_rollout_wakeup(commanded.clone());
    let store = app.backend().clone();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let health_listener = match args.health_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening for health checks on {addr}"))?,
        ),
        None => None,
    };
    tracing::info!(listen = %listener.local_addr()?, tls = certificate.is_some(), https_only = args.https_only, max_connections = args.max_connections, table, tokens = ?tokens.names(), oidc_issuer = oidc.as_ref().map(|o| o.issuer()), workers = worker_config.is_some(), "serving");
    let listener = LimitedListener::new("api", listener, args.max_connections);

    let signal = shutdown_signal();
    // The workers get their own stop signal, sent once the server has drained.
    let (stop_workers, workers_rx) = watch::channel(false);
    let mut controller = None;
    let workers = match worker_config {
        Some(config) => {
            let worker_owner = config.owner.clone();
            let steps_config = load_steps_config(args.worker.steps_config.as_deref())?;
            let c = args
                .worker
                .controller_for(store.clone(), &steps_config, &config.owner)
                .await?;
            let bucket = args.worker.platform_bucket.as_deref();
            let steps = product_steps(steps_config, store.clone(), app.rate_limiter(), bucket).await;
            let (c, worker) = wake_each_other(c, Worker::new(store.clone(), steps, config));
            if let Some(c) = c.map(|c| c.with_command_wakeup(commanded)) {
                let rx = workers_rx.clone();
                controller = Some(tokio::spawn(async move { c.run(rx).await }));
            }
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
    let mut state = ApiState::new(app, tokens)
        .with_summary_max_age(args.summary_max_age)
        .with_audit_retention(args.audit_retention);
    if let Some(intake) = intake {
        state = state.with_stripe_intake(intake);
    }
    if let Some(oidc) = oidc {
        state = state.with_oidc(oidc);
    }
    if let Some(path) = args.worker.steps_config.as_deref() {
        // Rollouts, new tenants and upgrades asked for through the API are checked
        // against the artifact repository.
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
    if let Some(health) = health_listener {
        tracing::info!(listen = %health.local_addr()?, "serving /healthz and /readyz in plain HTTP");
        let health = LimitedListener::new("health", health, args.max_connections);
        let served = serve_until(
            "health",
            health,
            api::health_router(state.clone()),
            signal.clone(),
            args.request_read_timeout,
        );
        tokio::spawn(async move {
            if let Err(e) = served.await {
                tracing::error!(error = %e, "the health check port stopped");
            }
        });
    }
    let app = api::router(state);
    let server = match certificate {
        Some(certificate) => serve_until(
            "api",
            TlsListener::new(listener, certificate, args.https_only)?,
            app,
            signal.clone(),
            args.request_read_timeout,
        ),
        None => serve_until("api", listener, app, signal.clone(), args.request_read_timeout),
    };
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
