//! `tenantctl audit`: the audit trail of refused and granted rollout and fleet-wide
//! actions, newest first, from the table or through `--server` (an admin token).

use anyhow::anyhow;
use chrono::Utc;
use clap::Args;
use serde::Deserialize;

use tenant_orchestrator::ports::AuditQuery;
use tenant_orchestrator::record::{AuditEntry, AuditOutcome};

use super::remote::{encode, Remote};
use super::{Failure, OutputFormat, EXIT_INVALID_INPUT};

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// The oldest entries: a duration before now (24h, 7d) or an RFC 3339 time.
    #[arg(long, default_value = "24h")]
    since: String,
    /// The newest entries, in the same forms; default now.
    #[arg(long)]
    until: Option<String>,
    /// Only this principal's decisions (its name, e.g. a token's name).
    #[arg(long)]
    principal: Option<String>,
    /// Only refused actions.
    #[arg(long, conflicts_with = "granted")]
    refused: bool,
    /// Only granted actions.
    #[arg(long)]
    granted: bool,
    /// At most this many entries (1-1000).
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Continue after a previous page (the cursor it printed), with the same filters.
    #[arg(long)]
    cursor: Option<String>,
}

#[derive(Deserialize)]
struct AuditPage {
    items: Vec<AuditEntry>,
    next_token: Option<String>,
}

fn invalid(message: String) -> Failure {
    Failure {
        code: EXIT_INVALID_INPUT,
        error: anyhow!(message),
    }
}

pub async fn run(
    table: &str,
    server: Option<&Remote>,
    output: OutputFormat,
    args: AuditArgs,
) -> Result<(), Failure> {
    if !(1..=1000).contains(&args.limit) {
        return Err(invalid(format!(
            "--limit {} is out of range; use 1-1000",
            args.limit
        )));
    }
    let outcome = match (args.refused, args.granted) {
        (true, _) => Some(AuditOutcome::Refused),
        (_, true) => Some(AuditOutcome::Granted),
        _ => None,
    };
    let page = match server {
        Some(remote) => {
            let mut query = vec![
                format!("since={}", encode(&args.since)),
                format!("limit={}", args.limit),
            ];
            if let Some(until) = &args.until {
                query.push(format!("until={}", encode(until)));
            }
            if let Some(principal) = &args.principal {
                query.push(format!("principal={}", encode(principal)));
            }
            if let Some(outcome) = outcome {
                query.push(format!("outcome={}", outcome.as_str()));
            }
            if let Some(cursor) = &args.cursor {
                query.push(format!("cursor={}", encode(cursor)));
            }
            remote
                .get::<AuditPage>(&format!("/v1/audit?{}", query.join("&")))
                .await?
        }
        None => {
            let now = Utc::now();
            let since = AuditQuery::time("--since", &args.since, now).map_err(invalid)?;
            let until = match &args.until {
                Some(text) => AuditQuery::time("--until", text, now).map_err(invalid)?,
                None => now,
            };
            AuditQuery::check_span(since, until).map_err(invalid)?;
            let page = super::connect(table)
                .await
                .backend()
                .audit_page(&AuditQuery {
                    since,
                    until,
                    principal: args.principal.clone(),
                    outcome,
                    limit: args.limit,
                    cursor: args.cursor.clone(),
                })
                .await?;
            AuditPage {
                items: page.items,
                next_token: page.next_token,
            }
        }
    };
    print(output, &page)
}

fn print(output: OutputFormat, page: &AuditPage) -> Result<(), Failure> {
    if output == OutputFormat::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "items": page.items,
                "next_token": page.next_token,
            }))?
        );
        return Ok(());
    }
    if page.items.is_empty() {
        println!("no audit entries in this span");
    }
    for e in &page.items {
        println!(
            "{}  {:<7}  {}  ({})  needs {}  {}  on {}: {}",
            e.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            e.outcome.as_str(),
            e.principal,
            e.identified_by,
            e.scope.as_str(),
            e.action,
            e.target,
            e.reason
        );
    }
    if let Some(cursor) = &page.next_token {
        eprintln!("more entries: run again with --cursor {cursor}");
    }
    Ok(())
}
