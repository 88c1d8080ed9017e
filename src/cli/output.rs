use tenant_orchestrator::record::{HistoryEvent, TenantRecord};
use tenant_orchestrator::store::{Page, TenantSummary};

use super::{Failure, OutputFormat};

fn json<T: serde::Serialize>(value: &T) -> Result<(), Failure> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub fn print_record(output: OutputFormat, r: &TenantRecord) -> Result<(), Failure> {
    if output == OutputFormat::Json {
        return json(r);
    }
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    println!("tenant:        {}", r.spec.id);
    println!("region:        {}", r.spec.region);
    println!("environment:   {}", r.spec.environment);
    println!("group / tier:  {} / {}", r.spec.group, r.spec.tier);
    println!(
        "hostnames:     {}",
        r.spec
            .hostnames
            .iter()
            .map(|h| h.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("state:         {}", r.state.label());
    println!(
        "release:       {}",
        opt(r.state.current_release().map(|v| v.to_string()))
    );
    println!(
        "target:        {}",
        opt(r.state.target_release().map(|v| v.to_string()))
    );
    if let Some(pin) = &r.spec.pinned_release {
        println!("pinned:        {pin}");
    }
    if let Some(windows) = &r.spec.maintenance {
        println!("maintenance:   {windows}");
    }
    println!("attempt:       {}", r.attempt);
    println!("last error:    {}", opt(r.last_error.clone()));
    println!(
        "lease:         {}",
        opt(r.lease.as_ref().map(|l| format!(
            "{} (fence {}, until {})",
            l.owner,
            l.fence,
            l.expires_at.to_rfc3339()
        )))
    );
    println!("version:       {}", r.version);
    println!("updated:       {}", r.updated_at.to_rfc3339());
    Ok(())
}

pub fn print_list(output: OutputFormat, page: &Page<TenantSummary>) -> Result<(), Failure> {
    if output == OutputFormat::Json {
        return json(page);
    }
    println!(
        "{:<28} {:<16} {:<32} {:<12} {:<12}",
        "TENANT", "REGION", "STATE", "RELEASE", "GROUP"
    );
    for t in &page.items {
        println!(
            "{:<28} {:<16} {:<32} {:<12} {:<12}",
            t.id.as_str(),
            t.region.as_str(),
            t.label,
            t.release.as_deref().unwrap_or("-"),
            t.group
        );
    }
    if let Some(token) = &page.next_token {
        println!("more: --next-token {token}");
    }
    Ok(())
}

pub fn print_history(output: OutputFormat, events: &[HistoryEvent]) -> Result<(), Failure> {
    if output == OutputFormat::Json {
        return json(&events);
    }
    for e in events {
        let detail = e
            .error
            .as_deref()
            .map(|x| format!("error: {x}"))
            .or_else(|| e.output.clone())
            .unwrap_or_default();
        println!(
            "{:>4} {} {:<32} -> {:<32} {:<22} {:<28} {}",
            e.seq,
            e.at.format("%H:%M:%S%.3f"),
            e.from,
            e.to,
            e.cause,
            e.actor,
            detail
        );
    }
    Ok(())
}
