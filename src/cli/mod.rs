//! Command-line interface. Parses arguments, builds the library's parts from the
//! environment, prints results; exit codes: 0 ok, 1 failure, 2 invalid input,
//! 3 not found, 4 conflict or refused by the tenant's state.

mod output;
mod policy;
mod rollout;
mod serve;
mod tenant;
mod token;
mod worker;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use tenant_orchestrator::store::DynamoStore;

#[derive(Parser, Debug)]
#[command(
    name = "tenantctl",
    version,
    about = "Owns the lifecycle of every tenant: provision, upgrade, roll back, deprovision"
)]
pub struct Cli {
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
    /// How results are printed.
    #[arg(long, short, global = true, env = "TENANTCTL_OUTPUT", value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,
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
    /// The version policy: default release per environment and region, group overrides.
    Policy {
        #[command(subcommand)]
        command: policy::PolicyCommand,
    },
    /// Fleet rollouts of a release.
    Rollout {
        #[command(subcommand)]
        command: rollout::RolloutCommand,
    },
    /// Run workers that drive due tenants through their steps until stopped (SIGTERM/ctrl-c).
    Worker(worker::WorkerArgs),
    /// Serve the HTTP API (and, unless --no-worker, run the workers) until stopped.
    Serve(serve::ServeArgs),
    /// API token helpers.
    Token {
        #[command(subcommand)]
        command: token::TokenCommand,
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
    use tenant_orchestrator::store::StoreError;
    use tenant_orchestrator::tenants::CommandError;
    for cause in error.chain() {
        if let Some(e) = cause.downcast_ref::<CommandError>() {
            return match e {
                CommandError::Invalid(_) => 2,
                CommandError::Rejected { .. } => 4,
                CommandError::Store(StoreError::NotFound { .. }) => 3,
                CommandError::Store(StoreError::Conflict { .. }) => 4,
                CommandError::Store(StoreError::Invalid { .. }) => 2,
                CommandError::Store(_) => 1,
            };
        }
        if let Some(e) = cause.downcast_ref::<StoreError>() {
            return match e {
                StoreError::NotFound { .. } => 3,
                StoreError::Conflict { .. } => 4,
                StoreError::Invalid { .. } => 2,
                _ => 1,
            };
        }
        if cause
            .downcast_ref::<tenant_orchestrator::domain::InvalidValue>()
            .is_some()
        {
            return 2;
        }
    }
    1
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

pub async fn dynamo_store(table: &str) -> Arc<DynamoStore> {
    let config = aws_config::load_from_env().await;
    Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), table))
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::from(1);
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
    match cli.command {
        Command::Table {
            command: TableCommand::Create,
        } => {
            let store = dynamo_store(&cli.table).await;
            let outcome = tenant_orchestrator::store::table::ensure_table(store.client(), &cli.table)
                .await
                .context("creating the state table")?;
            println!(
                "table {}: {}",
                cli.table,
                match outcome {
                    tenant_orchestrator::store::table::TableOutcome::Created => "created",
                    tenant_orchestrator::store::table::TableOutcome::AlreadyExisted => "already exists",
                }
            );
            Ok(())
        }
        Command::Tenant { command } => tenant::run(&cli.table, cli.output, command).await,
        Command::Policy { command } => policy::run(&cli.table, command).await,
        Command::Rollout { command } => rollout::run(&cli.table, cli.output, command).await,
        Command::Worker(args) => worker::run(&cli.table, args).await,
        Command::Serve(args) => serve::run(&cli.table, args).await,
        Command::Token { command } => token::run(command),
        Command::State {
            command: StateCommand::Diagram,
        } => {
            print!("{}", tenant_orchestrator::machine::mermaid_diagram());
            Ok(())
        }
    }
}
