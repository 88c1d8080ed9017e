//! `tenantctl catalog apply -f tenants.yaml`: reconciles one environment's tenants to
//! a file, a dry run unless `--apply`.

use clap::{Args, Subcommand};

use tenant_orchestrator::app::catalog::{ActionStatus, CatalogAction, CatalogPlan};
use tenant_orchestrator::app::{Catalog, CatalogError};
use tenant_orchestrator::record::Actor;

use super::remote::Remote;
use super::{Failure, OutputFormat, EXIT_FAILURE, EXIT_INVALID_INPUT};

#[derive(Subcommand, Debug)]
pub enum CatalogCommand {
    /// Show the plan (create, change, deprovision) that brings the table to the
    /// catalog file; with --apply, carry it out.
    Apply(ApplyArgs),
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// The catalog: YAML or JSON with `version: 1`, `environment:` and a `tenants:`
    /// list of the fields `tenant create` takes.
    #[arg(short = 'f', long = "file")]
    file: std::path::PathBuf,
    /// Carry the plan out; without it nothing changes (a dry run).
    #[arg(long)]
    apply: bool,
    /// Deprovision the environment's Active or Failed tenants the catalog leaves out;
    /// without it they are kept.
    #[arg(long)]
    prune: bool,
    /// With --prune, the most tenants the apply may deprovision; more refuses the whole
    /// apply. Default 0: any deprovision must be allowed explicitly. At most 10000.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    max_deletions: u32,
}

/// The body of `POST /v1/catalog/plan` and `/v1/catalog/apply`.
#[derive(serde::Serialize)]
struct CatalogRequest<'a> {
    catalog: &'a Catalog,
    prune: bool,
    max_deletions: u32,
}

pub async fn run(
    table: &str,
    remote: Option<&Remote>,
    output: OutputFormat,
    command: CatalogCommand,
) -> Result<(), Failure> {
    let CatalogCommand::Apply(args) = command;
    let text = std::fs::read_to_string(&args.file).map_err(|e| Failure {
        code: EXIT_INVALID_INPUT,
        error: anyhow::anyhow!(
            "cannot read the catalog {}: {e}; pass the file with -f",
            args.file.display()
        ),
    })?;
    let catalog = Catalog::parse(&text).map_err(|e| Failure {
        code: EXIT_INVALID_INPUT,
        error: anyhow::anyhow!("{}: {e}; nothing was changed", args.file.display()),
    })?;
    let plan = match remote {
        Some(remote) => {
            let body = CatalogRequest {
                catalog: &catalog,
                prune: args.prune,
                max_deletions: args.max_deletions,
            };
            let path = if args.apply {
                "/v1/catalog/apply"
            } else {
                "/v1/catalog/plan"
            };
            remote.post::<CatalogPlan>(path, Some(&body)).await?
        }
        None => {
            let commands = super::connect(table).await.catalog();
            let actor = Actor::catalog(&super::tenant::operator());
            let planned = match args.apply {
                true => {
                    commands
                        .apply(&catalog, args.prune, args.max_deletions as usize, &actor)
                        .await
                }
                false => commands.plan(&catalog, args.prune).await,
            };
            planned.map_err(|e| match e {
                CatalogError::Store(_) => Failure::from(anyhow::Error::new(e).context("reading the tenants")),
                refused => Failure {
                    code: EXIT_INVALID_INPUT,
                    error: anyhow::anyhow!("{refused}; nothing was changed"),
                },
            })?
        }
    };
    print_plan(output, &plan, args.max_deletions)?;
    match plan.failed() {
        0 => Ok(()),
        failed => Err(Failure {
            code: EXIT_FAILURE,
            error: anyhow::anyhow!(
                "{failed} of the catalog's actions failed (listed above with why); fix each and apply again"
            ),
        }),
    }
}

fn print_plan(output: OutputFormat, plan: &CatalogPlan, max_deletions: u32) -> Result<(), Failure> {
    if output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(plan)?);
        return Ok(());
    }
    for t in &plan.tenants {
        let status = match (plan.applied, t.status) {
            (false, _) | (true, ActionStatus::Planned) => "",
            (true, ActionStatus::Applied) => "applied",
            (true, ActionStatus::Failed) => "FAILED",
        };
        println!("{:<12} {:<28} {status}", t.action.as_str(), t.id.as_str());
        for c in &t.changes {
            println!("             {}: {} → {}", c.field, c.from, c.to);
        }
        for note in &t.notes {
            println!("             {note}");
        }
        if let Some(error) = &t.error {
            println!("             error: {error}");
        }
    }
    let deletions = plan.count(CatalogAction::Deprovision);
    println!(
        "environment {}: {} to create, {} to change, {} to deprovision, {} unchanged, {} kept{}",
        plan.environment,
        plan.count(CatalogAction::Create),
        plan.count(CatalogAction::Change),
        deletions,
        plan.count(CatalogAction::Unchanged),
        plan.count(CatalogAction::Kept),
        match plan.count(CatalogAction::Blocked) {
            0 => String::new(),
            n => format!(", {n} blocked"),
        }
    );
    if !plan.applied {
        if deletions > max_deletions as usize {
            println!(
                "an apply would be refused: {deletions} deprovisions exceed --max-deletions {max_deletions}; pass --max-deletions {deletions} to allow them"
            );
        }
        println!("dry run: nothing changed; pass --apply to carry the plan out");
    }
    Ok(())
}
