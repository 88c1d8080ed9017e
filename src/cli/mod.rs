//! Command-line interface. Parses arguments, builds the library's parts from the
//! environment, prints results.
//!
//! # Exit codes
//!
//! Pipelines branch on these, so they are a contract: change one only with a release
//! note. Every command uses the constants below, never a bare number.
//!
//! | code | constant | meaning |
//! |---|---|---|
//! | 0 | [`EXIT_OK`] | done; a wait ended in the wanted state |
//! | 1 | [`EXIT_FAILURE`] | failed: AWS or the table unreachable, a waited-for tenant settled elsewhere, a wait timed out |
//! | 2 | [`EXIT_INVALID_INPUT`] | invalid input: a bad id, release, spec file or flag; nothing was changed |
//! | 3 | [`EXIT_NOT_FOUND`] | a tenant (or rollout) does not exist |
//! | 4 | [`EXIT_CONFLICT`] | conflict, or refused by the tenant's state, a running rollout's hold or a freeze (the message says which and what to do) |
//! | 5 | [`EXIT_ROLLOUT_HALTED`] | a rollout halted on a breached failure budget, or was rolled back |
//! | 6 | [`EXIT_ROLLOUT_ABORTED`] | a rollout was aborted by an operator |
//! | 7 | [`EXIT_FLEET_UNSOUND`] | `fleet check` found broken invariants |
//! | 8 | [`EXIT_DRIFTED`] | `tenant drift` found the tenant drifted from its desired revision |
//! | 9 | [`EXIT_FORBIDDEN`] | refused by the API (`--remote`): the token's scope or role bindings do not allow it |

mod audit;
mod catalog;
mod config;
mod events;
mod freeze;
mod output;
mod platform;
mod policy;
mod progress;
mod promotion;
mod remote;
mod rollout;
mod serve;
mod tenant;
mod tls;
mod token;
mod worker;

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use tenant_orchestrator::app::{App, TableOutcome};

/// Done.
#[allow(dead_code)] // the table's first row; success is `ExitCode::SUCCESS` in `main`
pub const EXIT_OK: u8 = 0;
/// Failed for a reason other than the ones below.
pub const EXIT_FAILURE: u8 = 1;
/// The input was invalid; nothing was changed.
pub const EXIT_INVALID_INPUT: u8 = 2;
/// What the command names does not exist.
pub const EXIT_NOT_FOUND: u8 = 3;
/// A concurrent change won, or the state refuses the command.
pub const EXIT_CONFLICT: u8 = 4;
/// The rollout halted (failure budget breached) or was rolled back.
pub const EXIT_ROLLOUT_HALTED: u8 = 5;
/// The rollout was aborted.
pub const EXIT_ROLLOUT_ABORTED: u8 = 6;
/// `fleet check` found broken invariants.
pub const EXIT_FLEET_UNSOUND: u8 = 7;
/// `tenant drift` found drift.
pub const EXIT_DRIFTED: u8 = 8;
/// The API refused the token (`--remote`, HTTP 401/403): its scope or role bindings
/// do not allow the command on what it names. Nothing was changed.
pub const EXIT_FORBIDDEN: u8 = 9;

/// The exit code table as `--help` shows it.
const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  ok
  1  failure (AWS or table unreachable, a waited-for tenant settled elsewhere, timeout)
  2  invalid input; nothing was changed
  3  not found
  4  conflict, or refused by the tenant's state, a running rollout's hold or a freeze (the message says what to do)
  5  rollout halted (failure budget breached) or rolled back
  6  rollout aborted
  7  fleet check found broken invariants
  8  tenant drift found the tenant drifted (reconcile it)
  9  refused by the API (--remote): unknown token, or its scope or bindings do not allow it";

#[derive(Parser, Debug)]
#[command(
    name = "tenantctl",
    version,
    about = "Owns the lifecycle of every tenant: provision, upgrade, roll back, deprovision",
    after_help = EXIT_CODES_HELP
)]
pub struct Cli {
    /// Options from a YAML/JSON file (`table: tenants-prod`, `lease-ttl: 30s`, …):
    /// above the defaults, below TENANTCTL_… variables and flags.
    #[arg(long, global = true, env = "TENANTCTL_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// DynamoDB table holding tenant state (one per environment).
    #[arg(
        long,
        global = true,
        env = "TENANTCTL_TABLE",
        default_value = "tenant-orchestrator"
    )]
    table: String,
    /// Log format on stderr.
    #[arg(long, global = true, env = "TENANTCTL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// A `tenantctl serve` API to send tenant, rollout and policy commands to, instead
    /// of the table (token from TENANTCTL_TOKEN), e.g. https://tenantctl.example.com.
    #[arg(long, global = true, env = "TENANTCTL_SERVER")]
    server: Option<String>,
    /// How results are printed.
    #[arg(long, short, global = true, env = "TENANTCTL_OUTPUT", value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,
    /// AWS regions opened after this tenantctl was built, accepted on top of the
    /// built-in list of every AWS partition's regions (comma-separated, e.g.
    /// ap-southeast-9). Any other name is refused as a region.
    #[arg(long, global = true, env = "TENANTCTL_EXTRA_REGIONS", value_delimiter = ',')]
    extra_regions: Vec<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Manage the state table.
    Table {
        #[command(subcommand)]
        command: TableCommand,
    },
    /// Create, inspect and command tenants.
    Tenant {
        #[command(subcommand)]
        command: tenant::TenantCommand,
    },
    /// Reconcile one environment's tenants to a catalog file (a dry run unless --apply).
    Catalog {
        #[command(subcommand)]
        command: catalog::CatalogCommand,
    },
    /// The version policy: default release per environment and region, group overrides.
    Policy {
        #[command(subcommand)]
        command: policy::PolicyCommand,
    },
    /// Promotion rules: after a rollout of one environment completes and soaks, start
    /// the next environment's rollout of the same release.
    Promotion {
        #[command(subcommand)]
        command: promotion::PromotionCommand,
    },
    /// Freeze windows: when an environment (or region) takes no rollout or operator change.
    Freeze {
        #[command(subcommand)]
        command: freeze::FreezeCommand,
    },
    /// Fleet rollouts of a release.
    Rollout {
        #[command(subcommand)]
        command: rollout::RolloutCommand,
    },
    /// Platform versions: the tenant's template and chart, published to S3.
    Platform(platform::PlatformArgs),
    /// Checks across the whole fleet.
    Fleet {
        #[command(subcommand)]
        command: FleetCommand,
    },
    /// Run workers that drive due tenants through their steps, and the rollout
    /// controller, until stopped (SIGTERM/ctrl-c).
    Worker(worker::WorkerArgs),
    /// Run only the rollout controller (no tenant steps) until stopped.
    Controller(worker::ControllerArgs),
    /// Serve the HTTP API (and, unless --no-worker, run the workers) until stopped.
    Serve(Box<serve::ServeArgs>),
    /// Check that a running `serve` answers: GET the URL (its /healthz by default)
    /// and exit 0 on a 200, 1 otherwise. For container health checks in an image
    /// without curl.
    Probe(serve::ProbeArgs),
    /// API token helpers.
    Token {
        #[command(subcommand)]
        command: token::TokenCommand,
    },
    /// The audit trail: refused and granted rollout and fleet-wide actions, newest
    /// first (through --server: an admin token on the whole fleet).
    Audit(audit::AuditArgs),
    /// The outbox: events reporting tenant changes, and their deliveries to sinks.
    Events {
        #[command(subcommand)]
        command: events::EventsCommand,
    },
    /// The tenant state machine.
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
}

#[derive(Subcommand, Debug)]
enum TableCommand {
    /// Create the table from state/table.json if it does not exist (idempotent).
    Create,
}

#[derive(Subcommand, Debug)]
enum FleetCommand {
    /// Check the fleet's invariants over the whole table: every tenant with a step to
    /// run is in the work index, no settled tenant keeps an expired lease, histories
    /// are numbered without gaps, running rollouts' members agree with tenant holds.
    /// Exits 7 when any is broken. Reads the whole table (a scan): run it off-peak
    /// on large fleets.
    Check,
    /// List the tenants whose last drift check (by `tenant drift`, the API or the
    /// worker's sweep) found drift, a page at a time. Reads the recorded checks; checks
    /// nothing itself.
    Drift {
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Token printed by the previous page.
        #[arg(long)]
        next_token: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum StateCommand {
    /// Print the state diagram (Mermaid), generated from the machine itself.
    Diagram,
}

/// A failure with the exit code it maps to.
pub struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        let error = e.into();
        let code = exit_code(&error);
        Failure { code, error }
    }
}

fn exit_code(error: &anyhow::Error) -> u8 {
    use tenant_orchestrator::app::CommandError;
    use tenant_orchestrator::ports::StoreError;
    for cause in error.chain() {
        if let Some(e) = cause.downcast_ref::<remote::RemoteError>() {
            return e.code;
        }
        if let Some(e) = cause.downcast_ref::<tenant_orchestrator::app::RolloutError>() {
            return match e {
                tenant_orchestrator::app::RolloutError::Refused { .. }
                | tenant_orchestrator::app::RolloutError::Held { .. } => EXIT_CONFLICT,
                tenant_orchestrator::app::RolloutError::UnknownRelease(_)
                | tenant_orchestrator::app::RolloutError::UnknownPlatform(_) => EXIT_INVALID_INPUT,
                tenant_orchestrator::app::RolloutError::PlatformCheck(_)
                | tenant_orchestrator::app::RolloutError::ReleaseCheck(_) => EXIT_FAILURE,
                tenant_orchestrator::app::RolloutError::ReplacementRefused(_) => EXIT_CONFLICT,
                tenant_orchestrator::app::RolloutError::Preview(_) => EXIT_FAILURE,
                tenant_orchestrator::app::RolloutError::NoPreview => EXIT_INVALID_INPUT,
                tenant_orchestrator::app::RolloutError::Frozen { .. } => EXIT_CONFLICT,
                tenant_orchestrator::app::RolloutError::BadSchedule(_) => EXIT_INVALID_INPUT,
                tenant_orchestrator::app::RolloutError::Store(StoreError::NotFound { .. }) => EXIT_NOT_FOUND,
                tenant_orchestrator::app::RolloutError::Store(StoreError::Conflict { .. }) => EXIT_CONFLICT,
                tenant_orchestrator::app::RolloutError::Store(_) => EXIT_FAILURE,
            };
        }
        if let Some(e) = cause.downcast_ref::<tenant_orchestrator::app::PromotionError>() {
            use tenant_orchestrator::app::PromotionError;
            return match e {
                PromotionError::Invalid(_) => EXIT_INVALID_INPUT,
                PromotionError::Refused { .. } => EXIT_CONFLICT,
                PromotionError::Start(_) => EXIT_FAILURE,
                PromotionError::Store(StoreError::NotFound { .. }) => EXIT_NOT_FOUND,
                PromotionError::Store(StoreError::Conflict { .. }) => EXIT_CONFLICT,
                PromotionError::Store(_) => EXIT_FAILURE,
            };
        }
        if let Some(e) = cause.downcast_ref::<tenant_orchestrator::app::DriftError>() {
            use tenant_orchestrator::app::DriftError;
            return match e {
                DriftError::NotActive { .. } => EXIT_CONFLICT,
                DriftError::NoChecker => EXIT_INVALID_INPUT,
                DriftError::Check { .. } => EXIT_FAILURE,
                DriftError::Store(StoreError::NotFound { .. }) => EXIT_NOT_FOUND,
                DriftError::Store(_) => EXIT_FAILURE,
            };
        }
        if let Some(e) = cause.downcast_ref::<CommandError>() {
            return match e {
                CommandError::Invalid(_)
                | CommandError::UnknownSnapshot { .. }
                | CommandError::UnknownRelease(_) => EXIT_INVALID_INPUT,
                CommandError::Rejected { .. }
                | CommandError::HeldByRollout { .. }
                | CommandError::NoRelease { .. }
                | CommandError::NoPlatformToPin { .. }
                | CommandError::UnknownPlatform { .. }
                | CommandError::PlatformUnavailable { .. }
                | CommandError::Frozen { .. } => EXIT_CONFLICT,
                CommandError::PlatformCheck { .. } | CommandError::ReleaseCheck(_) => EXIT_FAILURE,
                CommandError::Store(StoreError::NotFound { .. }) => EXIT_NOT_FOUND,
                CommandError::Store(StoreError::Conflict { .. } | StoreError::HostnameTaken { .. }) => {
                    EXIT_CONFLICT
                }
                CommandError::Store(StoreError::Invalid { .. }) => EXIT_INVALID_INPUT,
                CommandError::Store(_) => EXIT_FAILURE,
            };
        }
        if let Some(e) = cause.downcast_ref::<StoreError>() {
            return match e {
                StoreError::NotFound { .. } => EXIT_NOT_FOUND,
                StoreError::Conflict { .. } | StoreError::HostnameTaken { .. } => EXIT_CONFLICT,
                StoreError::Invalid { .. } => EXIT_INVALID_INPUT,
                _ => EXIT_FAILURE,
            };
        }
        if cause
            .downcast_ref::<tenant_orchestrator::domain::InvalidValue>()
            .is_some()
        {
            return EXIT_INVALID_INPUT;
        }
    }
    EXIT_FAILURE
}

async fn fleet_check(table: &str, output: OutputFormat) -> Result<(), Failure> {
    let check = connect(table)
        .await
        .check_fleet()
        .await
        .context("checking the fleet")?;
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&check)?),
        OutputFormat::Table => {
            for v in &check.violations {
                println!("{:<20} {:<24} {}", v.invariant, v.subject, v.detail);
            }
            println!(
                "checked tenants: {}, rollouts: {}; {}",
                check.tenants,
                check.rollouts,
                match check.violations.len() {
                    0 => "every invariant holds".to_owned(),
                    n => format!("{n} broken"),
                }
            );
        }
    }
    if check.is_sound() {
        Ok(())
    } else {
        Err(Failure {
            code: EXIT_FLEET_UNSOUND,
            error: anyhow::anyhow!(
                "{} fleet invariants are broken (listed above with what is wrong); inspect each subject with \
                 `tenantctl tenant get|history` or `tenantctl rollout status`",
                check.violations.len()
            ),
        })
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TENANTCTL_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

/// The services over the state table `table`, configured from the AWS environment;
/// platform versions are checked against the bucket `TENANTCTL_PLATFORM_BUCKET` (or
/// `platform-bucket:` in the config file) names.
pub async fn connect(table: &str) -> App {
    connect_with_bucket(table, platform_bucket().as_deref()).await
}

/// As [`connect`], checking platform versions against `bucket`.
pub async fn connect_with_bucket(table: &str, bucket: Option<&str>) -> App {
    let app = App::connect(table).await;
    match worker::platform_artifacts(bucket).await {
        Some(platforms) => app.with_platform_artifacts(platforms),
        None => app,
    }
}

/// The platform bucket the environment names, if any.
fn platform_bucket() -> Option<String> {
    std::env::var("TENANTCTL_PLATFORM_BUCKET")
        .ok()
        .filter(|b| !b.trim().is_empty())
}

pub fn main() -> ExitCode {
    use clap::CommandFactory;
    if let Err(e) = config::apply(&Cli::command()) {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_INVALID_INPUT);
    }
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {:#}", failure.error);
            ExitCode::from(failure.code)
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let extra_regions: Vec<&str> = cli
        .extra_regions
        .iter()
        .map(|r| r.trim())
        .filter(|r| !r.is_empty())
        .collect();
    tenant_orchestrator::domain::allow_extra_regions(&extra_regions)?;
    let remote = match cli.command {
        Command::Tenant { .. }
        | Command::Catalog { .. }
        | Command::Policy { .. }
        | Command::Freeze { .. }
        | Command::Audit(_)
        | Command::Rollout { .. } => cli.server.as_deref().map(remote::Remote::new).transpose()?,
        _ => None,
    };
    let runs_locally = matches!(
        cli.command,
        Command::Table { .. }
            | Command::Platform(_)
            | Command::Promotion { .. }
            | Command::Fleet { .. }
            | Command::Events { .. }
            | Command::Worker(_)
            | Command::Controller(_)
            | Command::Serve(_)
            | Command::Probe(_)
    );
    if runs_locally && cli.server.is_some() {
        return Err(Failure {
            code: EXIT_INVALID_INPUT,
            error: anyhow::anyhow!(
                "this command works on the table directly and cannot go through --server; drop --server (or unset TENANTCTL_SERVER)"
            ),
        });
    }
    match cli.command {
        Command::Table {
            command: TableCommand::Create,
        } => {
            let app = connect(&cli.table).await;
            let outcome = app.ensure_table().await.context("creating the state table")?;
            println!(
                "table {}: {}",
                cli.table,
                match outcome {
                    TableOutcome::Created => "created",
                    TableOutcome::AlreadyExisted => "already exists",
                }
            );
            if outcome == TableOutcome::AlreadyExisted {
                for gap in app
                    .index_gaps()
                    .await
                    .context("checking the state table's indexes")?
                {
                    eprintln!(
                        "warning: table {}: {gap}, as made by an older version; until it is recreated \
                         the fleet summary and the dashboard count what it lacks as unknown (a tenant's \
                         platform as built-in). DynamoDB cannot change an index's projection: see \
                         \"Recreating the listing index\" in docs/ARCHITECTURE.md",
                        cli.table
                    );
                }
                // Tenants recorded before hostname claims existed get theirs now.
                let backfill = app
                    .claim_existing_hostnames()
                    .await
                    .context("claiming the hostnames of existing tenants")?;
                if backfill.claimed > 0 {
                    println!("hostnames of existing tenants: {} claimed", backfill.claimed);
                }
                for shared in &backfill.shared {
                    eprintln!("warning: hostname {shared}; change one tenant's hostnames");
                }
            }
            Ok(())
        }
        Command::Tenant { command } => tenant::run(&cli.table, remote.as_ref(), cli.output, command).await,
        Command::Catalog { command } => catalog::run(&cli.table, remote.as_ref(), cli.output, command).await,
        Command::Policy { command } => policy::run(&cli.table, remote.as_ref(), command).await,
        Command::Freeze { command } => freeze::run(&cli.table, remote.as_ref(), cli.output, command).await,
        Command::Rollout { command } => rollout::run(&cli.table, remote.as_ref(), cli.output, command).await,
        Command::Promotion { command } => promotion::run(&cli.table, cli.output, command).await,
        Command::Platform(args) => platform::run(args, cli.output).await,
        Command::Events { command } => events::run(&cli.table, cli.output, command).await,
        Command::Audit(args) => audit::run(&cli.table, remote.as_ref(), cli.output, args).await,
        Command::Fleet {
            command: FleetCommand::Check,
        } => fleet_check(&cli.table, cli.output).await,
        Command::Fleet {
            command: FleetCommand::Drift { limit, next_token },
        } => {
            if !(1..=1000).contains(&limit) {
                return Err(Failure {
                    code: EXIT_INVALID_INPUT,
                    error: anyhow::anyhow!("--limit {limit} is out of range; use 1-1000"),
                });
            }
            let page = connect(&cli.table)
                .await
                .drift()
                .drifted(limit, next_token.as_deref())
                .await
                .context("listing drifted tenants")?;
            output::print_drifted(cli.output, &page.into())
        }
        Command::Worker(args) => worker::run(&cli.table, args).await,
        Command::Controller(args) => worker::run_controller(&cli.table, args).await,
        Command::Serve(args) => serve::run(&cli.table, *args).await,
        Command::Probe(args) => serve::probe(args).await,
        Command::Token { command } => token::run(command),
        Command::State {
            command: StateCommand::Diagram,
        } => {
            print!("{}", tenant_orchestrator::machine::mermaid_diagram());
            Ok(())
        }
    }
}
