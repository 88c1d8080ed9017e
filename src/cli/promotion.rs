//! `tenantctl promotion`: promotion rules (staging → prod after a soak) and their
//! promotions. The controllers (in `tenantctl worker` or `tenantctl controller`) soak,
//! check and start; these commands set the rules and approve or cancel.

use std::time::Duration;

use anyhow::anyhow;
use clap::Subcommand;

use tenant_orchestrator::app::RuleRequest;
use tenant_orchestrator::domain::{Environment, PromotionName, RolloutTemplate};
use tenant_orchestrator::record::PromotionRecord;

use super::{connect, Failure, OutputFormat};

#[derive(Subcommand, Debug)]
pub enum PromotionCommand {
    /// Create or replace a rule: when a rollout whose selector names the environment
    /// --from completes and its tenants stay healthy for --soak, start a rollout of its
    /// release and platform in --to from the template -f.
    Set {
        name: String,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        /// How long the completed rollout's tenants must stay healthy (e.g. 2h).
        #[arg(long, value_parser = humantime::parse_duration)]
        soak: Duration,
        /// Wait for `tenantctl promotion approve NAME` after the soak.
        #[arg(long)]
        approval: bool,
        /// The rollout template (JSON): a rollout spec without release and platform
        /// (selector, strategy, on_complete); its selector's environment is --to.
        #[arg(short = 'f', long = "file")]
        file: std::path::PathBuf,
    },
    /// Show a rule and its latest promotion (JSON).
    Get { name: String },
    /// List rules with the state of their latest promotion; an approval request shows
    /// as `awaiting_approval`.
    List,
    /// Delete a rule (an open promotion of it is dropped with it).
    Delete { name: String },
    /// Approve the start of a promotion awaiting approval.
    Approve { name: String },
    /// Cancel a soaking, blocked or waiting promotion: nothing is started for it.
    Cancel { name: String },
}

fn invalid(error: anyhow::Error) -> Failure {
    Failure {
        code: super::EXIT_INVALID_INPUT,
        error,
    }
}

fn read_template(path: &std::path::Path) -> Result<RolloutTemplate, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        invalid(anyhow!(
            "cannot read the rollout template {}: {e}; pass -f the path of a JSON rollout spec without release and platform",
            path.display()
        ))
    })?;
    serde_json::from_str(&text)
        .map_err(|e| invalid(anyhow!("{} is not a valid rollout template: {e}", path.display())))
}

pub async fn run(table: &str, output: OutputFormat, command: PromotionCommand) -> Result<(), Failure> {
    let actor = super::rollout::actor();
    let promotions = connect(table).await.promotions();
    match command {
        PromotionCommand::Set {
            name,
            from,
            to,
            soak,
            approval,
            file,
        } => {
            let request = RuleRequest {
                name: PromotionName::parse(&name)?,
                from: Environment::parse(&from)?,
                to: Environment::parse(&to)?,
                soak,
                approval,
                template: read_template(&file)?,
            };
            let record = promotions.set(request, &actor).await?;
            print_one(output, &record);
        }
        PromotionCommand::Get { name } => {
            let record = promotions.get(&PromotionName::parse(&name)?).await?;
            print_json(&record);
        }
        PromotionCommand::List => {
            let records = promotions.list().await?;
            match output {
                OutputFormat::Json => print_json(&records),
                OutputFormat::Table => {
                    println!("NAME\tFROM\tTO\tSOAK\tAPPROVAL\tSTATE\tSOURCE\tROLLOUT");
                    for record in &records {
                        println!("{}", row(record));
                    }
                }
            }
        }
        PromotionCommand::Delete { name } => {
            promotions.delete(&PromotionName::parse(&name)?).await?;
            println!("promotion rule {name} deleted");
        }
        PromotionCommand::Approve { name } => {
            let record = promotions.approve(&PromotionName::parse(&name)?, &actor).await?;
            print_one(output, &record);
        }
        PromotionCommand::Cancel { name } => {
            let record = promotions.cancel(&PromotionName::parse(&name)?, &actor).await?;
            print_one(output, &record);
        }
    }
    Ok(())
}

fn print_json<T: serde::Serialize>(value: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("records serialize")
    );
}

fn print_one(output: OutputFormat, record: &PromotionRecord) {
    match output {
        OutputFormat::Json => print_json(record),
        OutputFormat::Table => println!("{}", row(record)),
    }
}

fn row(record: &PromotionRecord) -> String {
    let rule = &record.rule;
    let (state, source, rollout) = match &record.promotion {
        Some(p) => {
            let state = match &p.blocked {
                Some(b) if p.state == tenant_orchestrator::record::PromotionState::Blocked => {
                    format!("blocked ({}: {})", b.tenant, b.reason)
                }
                _ => p.state.to_string(),
            };
            (state, p.source.to_string(), p.rollout.to_string())
        }
        None => ("idle".to_owned(), "-".to_owned(), "-".to_owned()),
    };
    format!(
        "{}\t{}\t{}\t{}\t{}\t{state}\t{source}\t{rollout}",
        rule.name,
        rule.from,
        rule.to,
        humantime::format_duration(rule.soak),
        if rule.approval { "yes" } else { "no" },
    )
}
