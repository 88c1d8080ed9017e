//! How rollouts are printed: the status (waves and every tenant's outcome), the
//! listing, and the result of an operator command.

use std::collections::BTreeMap;

use tenant_orchestrator::ports::RolloutSummary;
use tenant_orchestrator::record::{BakeProgress, Outcome, RollbackStatus, RolloutMember, RolloutRecord};

use super::super::{Failure, OutputFormat};

fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

pub fn print(output: OutputFormat, record: &RolloutRecord, members: &[RolloutMember]) -> Result<(), Failure> {
    if output == OutputFormat::Json {
        let value = serde_json::json!({ "rollout": record, "members": members });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!("rollout:   {}", record.id);
    if let Some(release) = &record.spec.release {
        println!("release:   {release}");
    }
    println!("target:    {}", record.target());
    println!("phase:     {}", record.phase);
    if let Some(reason) = &record.halt_reason {
        println!("halted:    {reason}");
    }
    println!("started:   {} by {}", time(record.created_at), record.created_by);
    if let Some(at) = record.not_before.filter(|at| *at > chrono::Utc::now()) {
        println!("scheduled: starts no wave before {}", time(at));
    }
    let mut by_wave: BTreeMap<usize, Vec<&RolloutMember>> = BTreeMap::new();
    for m in members {
        by_wave.entry(m.wave).or_default().push(m);
    }
    for wave in &record.waves {
        let in_wave = by_wave.get(&wave.index).map(Vec::as_slice).unwrap_or_default();
        let count = |name: &str| in_wave.iter().filter(|m| m.outcome.name() == name).count();
        println!(
            "\nwave {} ({:?}, {}) in {}: {:?}{} — {} succeeded, {} failed, {} in flight, {} pending, {} skipped (budget {})",
            wave.index,
            wave.kind,
            wave.target,
            wave.regions.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", "),
            wave.status,
            wave.approved_by.as_deref().map(|a| format!(", approved by {a}")).unwrap_or_default(),
            count("succeeded"),
            count("failed"),
            count("in_flight"),
            count("pending"),
            count("skipped"),
            wave.allowed_failures + wave.accepted_failures,
        );
        for m in in_wave {
            println!(
                "  {:<28} {:<14} {}",
                m.tenant.as_str(),
                m.region.as_str(),
                describe(m)
            );
        }
        if let Some(bake) = wave.bake.as_ref().filter(|b| !b.checks.is_empty()) {
            print_bake_evidence(bake);
        }
    }
    if !record.skipped.is_empty() {
        println!("\nskipped when planned:");
        for s in &record.skipped {
            println!("  {:<28} {}", s.id.as_str(), s.reason);
        }
    }
    Ok(())
}

/// A page of a rollout's members, and how to read the next one.
pub fn print_members(
    output: OutputFormat,
    members: &[RolloutMember],
    next_token: Option<&str>,
    next_command: Option<&str>,
) -> Result<(), Failure> {
    let row = |m: &RolloutMember| {
        format!(
            "{:>4}  {:<28} {:<14} {}",
            m.wave,
            m.tenant.as_str(),
            m.region.as_str(),
            describe(m)
        )
    };
    print_page(output, members, row, next_token, next_command)
}

/// A page of a rollout's skipped tenants, and how to read the next one.
pub fn print_skipped(
    output: OutputFormat,
    skipped: &[tenant_orchestrator::domain::rollout::Skipped],
    next_token: Option<&str>,
    next_command: Option<&str>,
) -> Result<(), Failure> {
    let row =
        |s: &tenant_orchestrator::domain::rollout::Skipped| format!("{:<28} {}", s.id.as_str(), s.reason);
    print_page(output, skipped, row, next_token, next_command)
}

/// A page of `items`, a `row` each (or JSON as the API answers it), then the
/// command that reads the next page.
fn print_page<T: serde::Serialize>(
    output: OutputFormat,
    items: &[T],
    row: impl Fn(&T) -> String,
    next_token: Option<&str>,
    next_command: Option<&str>,
) -> Result<(), Failure> {
    if output == OutputFormat::Json {
        let value = serde_json::json!({ "items": items, "next_token": next_token });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    for item in items {
        println!("{}", row(item));
    }
    if let Some(command) = next_command {
        println!();
        println!("next page: {command}");
    }
    Ok(())
}

/// Each tenant's latest bake check: when, the result, and the alarms read.
fn print_bake_evidence(bake: &BakeProgress) {
    println!("  bake checks ({} rounds passed):", bake.checks_passed);
    for check in &bake.checks {
        let result = match &check.reason {
            Some(reason) => format!("UNHEALTHY: {reason}"),
            None => "healthy".to_owned(),
        };
        println!("    {:<26} {} {result}", check.tenant.as_str(), time(check.at));
        let mut alarms: Vec<String> = check
            .alarms
            .iter()
            .map(|a| format!("{} {}", a.name, a.state))
            .collect();
        if check.alarms_not_listed > 0 {
            alarms.push(format!("and {} more", check.alarms_not_listed));
        }
        if alarms.is_empty() {
            println!("      alarms: none read");
        } else {
            println!("      alarms: {}", alarms.join(", "));
        }
    }
}

/// One tenant's line: its outcome, then what a breach's rollback did to it.
fn describe(m: &RolloutMember) -> String {
    let mut text = match &m.outcome {
        Outcome::Pending => match &m.waiting_for {
            Some(w) => format!("pending: waiting for {w}"),
            None => "pending".to_owned(),
        },
        Outcome::InFlight => "upgrading".to_owned(),
        Outcome::Succeeded => "succeeded".to_owned(),
        Outcome::Failed { reason } => format!("FAILED: {reason}"),
        Outcome::Skipped { reason } => format!("skipped: {reason}"),
    };
    match &m.rollback {
        Some(RollbackStatus::InProgress) => text.push_str("; rolling back"),
        Some(RollbackStatus::Done) => text.push_str(&format!(
            "; rolled back to {}",
            m.from_release.as_ref().map(|r| r.to_string()).unwrap_or_default()
        )),
        Some(RollbackStatus::Failed { reason }) => text.push_str(&format!("; ROLLBACK FAILED: {reason}")),
        None => {}
    }
    if let Some(overrun) = &m.outage_overrun {
        text.push_str(&format!(
            "; OUTAGE OVERRAN BUDGET: {}s, budget {}",
            overrun.seconds, overrun.budget
        ));
    }
    text
}

pub fn print_list(output: OutputFormat, rollouts: &[RolloutSummary]) -> Result<(), Failure> {
    if output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(rollouts)?);
        return Ok(());
    }
    if rollouts.is_empty() {
        println!("no rollouts");
    }
    for r in rollouts {
        println!(
            "{:<40} {:<10} {:<12} started {}",
            r.id.as_str(),
            r.phase.as_str(),
            r.target,
            time(r.created_at)
        );
    }
    Ok(())
}

/// After pause, resume, abort, approve or retry: the phase and what was recorded.
pub fn print_change(output: OutputFormat, record: &RolloutRecord) -> Result<(), Failure> {
    if output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(record)?);
        return Ok(());
    }
    let last = record.events.last().map(|e| e.what.as_str()).unwrap_or_default();
    println!("rollout {} is {}: {last}", record.id, record.phase);
    Ok(())
}
