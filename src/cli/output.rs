//! How the tenant commands print what the [`TenantService`](tenant_orchestrator::app::TenantService)
//! answered: one form whether the answer came from the table or through `--server`.

use tenant_orchestrator::app::views::{HistoryEntry, PlatformView, TenantPage, TenantView};
use tenant_orchestrator::app::{DriftView, DriftedPage};

use super::{Failure, OutputFormat};

fn json<T: serde::Serialize>(value: &T) -> Result<(), Failure> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `Provisioning/CheckArtifact` while a step is due, else the state's name.
pub fn state_label(state: &str, step: Option<&str>) -> String {
    match step {
        Some(step) => format!("{state}/{step}"),
        None => state.to_owned(),
    }
}

pub fn print_tenant(output: OutputFormat, v: &TenantView) -> Result<(), Failure> {
    if output == OutputFormat::Json {
        return json(v);
    }
    let opt = |v: Option<&str>| v.unwrap_or("-").to_owned();
    println!("tenant:        {}", v.id);
    println!("region:        {}", v.region);
    println!("environment:   {}", v.environment);
    println!("group / tier:  {} / {}", v.group, v.tier);
    println!("hostnames:     {}", v.hostnames.join(", "));
    println!("state:         {}", state_label(&v.state, v.step.as_deref()));
    println!("release:       {}", opt(v.current_release.as_deref()));
    println!("target:        {}", opt(v.target_release.as_deref()));
    if let Some(pin) = &v.pinned_release {
        println!("pinned:        {pin}");
    }
    if let Some(windows) = &v.maintenance {
        println!("maintenance:   {windows}");
    }
    println!("platform:      {}", platform_line(&v.platform));
    if v.schema.current.is_some() || v.schema.migration.is_some() {
        println!("schema:        {}", schema_line(&v.schema));
    }
    if let Some(since) = v.facts.maintenance_since {
        println!(
            "quiesced:      since {} (users see the maintenance page)",
            since.to_rfc3339()
        );
    }
    if let Some(seconds) = v.facts.last_outage_seconds {
        println!("last outage:   {seconds} s");
    }
    if let Some(rollout) = &v.rollout {
        println!("rollout:       {rollout}");
    }
    println!("attempt:       {}", v.attempt);
    println!("last error:    {}", opt(v.last_error.as_deref()));
    println!(
        "lease:         {}",
        opt(v
            .lease
            .as_ref()
            .map(|l| format!(
                "{} (fence {}, until {})",
                l.holder,
                l.fence,
                l.expires_at.to_rfc3339()
            ))
            .as_deref())
    );
    println!("version:       {}", v.version);
    println!("updated:       {}", v.updated_at.to_rfc3339());
    Ok(())
}

/// `41 (migration to 42 from snapshot S, restore approval)`, or just `41`.
fn schema_line(s: &tenant_orchestrator::app::views::SchemaView) -> String {
    let current = s.current.as_deref().unwrap_or("-");
    match &s.migration {
        Some(m) => format!(
            "{current} (migration to {} from snapshot {}, restore {})",
            m.to, m.snapshot, m.restore
        ),
        None => current.to_owned(),
    }
}

/// `1.2.0 (applied: stack 1.1.0, chart 1.1.0; differs: reconcile to apply it)`.
fn platform_line(p: &PlatformView) -> String {
    let name = |v: &Option<String>| v.clone().unwrap_or_else(|| "built-in".into());
    let applied = format!(
        "applied: stack {}, chart {}",
        name(&p.applied_stack),
        name(&p.applied_chart)
    );
    let differs = match p.differs {
        true => "; differs: the next upgrade or `tenant reconcile` applies it",
        false => "",
    };
    format!("{} ({applied}{differs})", name(&p.desired))
}

pub fn print_list(output: OutputFormat, page: &TenantPage) -> Result<(), Failure> {
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
            t.id,
            t.region,
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

pub fn print_history(output: OutputFormat, events: &[HistoryEntry]) -> Result<(), Failure> {
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
        let detail = match (e.outage_seconds, &e.outage_cause) {
            (Some(seconds), Some(cause)) => {
                format!("{detail}; outage {seconds} s ({})", cause.replace('_', " "))
            }
            (Some(seconds), None) => format!("{detail}; outage {seconds} s"),
            (None, _) => detail,
        };
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

/// A drift check: the summary, then one line per finding.
pub fn print_drift(output: OutputFormat, view: &DriftView) -> Result<(), Failure> {
    if output == OutputFormat::Json {
        return json(view);
    }
    println!(
        "tenant {} checked {}: {}",
        view.tenant,
        view.checked_at.format("%Y-%m-%d %H:%M:%S"),
        view.summary
    );
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
    for f in &view.findings {
        println!(
            "  {:<16} {:<36} desired {}  live {}",
            f.kind,
            f.name,
            show(&f.desired),
            show(&f.live)
        );
    }
    Ok(())
}

/// The fleet's drifted tenants, one per line, and the token for the next page.
pub fn print_drifted(output: OutputFormat, page: &DriftedPage) -> Result<(), Failure> {
    if output == OutputFormat::Json {
        return json(page);
    }
    for t in &page.items {
        println!(
            "{:<32} {} {}",
            t.tenant,
            t.checked_at.format("%Y-%m-%d %H:%M:%S"),
            t.summary
        );
    }
    if let Some(token) = &page.next_token {
        println!("next page: --next-token {token}");
    }
    Ok(())
}
