use anyhow::{anyhow, Context};
use chrono::{DateTime, Utc};
use clap::Subcommand;

use tenant_orchestrator::domain::RolloutSpec;
use tenant_orchestrator::rollout::{plan, Plan, TenantSummaryForPlanning};
use tenant_orchestrator::store::{ListQuery, TenantStore};

use super::{Failure, OutputFormat};

#[derive(Subcommand, Debug)]
pub enum RolloutCommand {
    /// Dry run: show which tenant lands in which wave, and when, without starting anything.
    Plan {
        /// Rollout spec (JSON): release, selector, strategy.
        #[arg(long)]
        spec: std::path::PathBuf,
        /// Plan as of this time (RFC 3339), e.g. to see maintenance windows; default now.
        #[arg(long)]
        at: Option<String>,
    },
}

fn read_spec(path: &std::path::Path) -> Result<RolloutSpec, Failure> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the rollout spec {}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| Failure {
        code: 2,
        error: anyhow!("{} is not a valid rollout spec: {e}", path.display()),
    })
}

/// Every tenant of the table, as the planner needs it.
async fn fleet(store: &dyn TenantStore) -> Result<Vec<TenantSummaryForPlanning>, Failure> {
    let mut tenants = Vec::new();
    let mut token = None;
    loop {
        let page = store
            .list(&ListQuery {
                limit: Some(500),
                next_token: token,
                ..Default::default()
            })
            .await?;
        for summary in &page.items {
            let record = store.load(&summary.id).await?;
            tenants.push(TenantSummaryForPlanning::from_tenant(&record.spec, &record.state));
        }
        token = page.next_token;
        if token.is_none() {
            return Ok(tenants);
        }
    }
}

pub async fn run(table: &str, output: OutputFormat, command: RolloutCommand) -> Result<(), Failure> {
    match command {
        RolloutCommand::Plan { spec, at } => {
            let spec = read_spec(&spec)?;
            let now = match at {
                Some(t) => DateTime::parse_from_rfc3339(&t)
                    .map_err(|e| Failure {
                        code: 2,
                        error: anyhow!(
                            "--at {t:?} is not an RFC 3339 time ({e}); use e.g. 2026-11-22T02:00:00Z"
                        ),
                    })?
                    .with_timezone(&Utc),
                None => Utc::now(),
            };
            let store = super::dynamo_store(table).await;
            let tenants = fleet(store.as_ref()).await?;
            let plan = plan(&spec, &tenants, now);
            print_plan(output, &plan)
        }
    }
}

fn print_plan(output: OutputFormat, plan: &Plan) -> Result<(), Failure> {
    if output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(plan)?);
        return Ok(());
    }
    let time = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    println!(
        "release {}: {} tenants in {} waves, regions in order {}; estimated end {}",
        plan.release,
        plan.tenant_count(),
        plan.waves.len(),
        plan.region_order
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        time(plan.estimated_end)
    );
    for wave in &plan.waves {
        println!(
            "\nwave {} ({:?}, {}){}: {} tenants in {}, starts {}, budget {} failure(s), bake until {}",
            wave.index,
            wave.kind,
            wave.target,
            if wave.approval_before {
                " after approval"
            } else {
                ""
            },
            wave.tenants.len(),
            wave.regions
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            time(wave.earliest_start),
            wave.allowed_failures,
            time(wave.bake_until)
        );
        for t in &wave.tenants {
            println!(
                "  {:<28} {:<16} from {}",
                t.id.as_str(),
                t.region.as_str(),
                time(t.earliest_start)
            );
        }
    }
    if !plan.skipped.is_empty() {
        println!("\nskipped:");
        for s in &plan.skipped {
            println!("  {:<28} {}", s.id.as_str(), s.reason);
        }
    }
    if plan.not_selected > 0 {
        println!("\n{} tenants not selected", plan.not_selected);
    }
    Ok(())
}
