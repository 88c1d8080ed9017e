//! `tenantctl --server URL tenant …`: the tenant commands through the API. Input is
//! parsed here first, so bad input fails at once with exit 2 and sends nothing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use tenant_orchestrator::domain::{Region, ReleaseVersion, SnapshotName, TenantId};
use tenant_orchestrator::machine::{DeprovisionStep, ProvisionStep, RestoreStep, RollbackStep, UpgradeStep};

use super::{HoldArgs, TenantCommand};
use crate::cli::progress::{Outcome, Progress};
use crate::cli::remote::{encode, Remote};
use crate::cli::{Failure, OutputFormat, EXIT_FAILURE};
use tenant_orchestrator::tenants::RolloutHold;

pub async fn run(remote: &Remote, output: OutputFormat, command: TenantCommand) -> Result<(), Failure> {
    let view: Value = match command {
        TenantCommand::Create(args) => {
            let (spec, release) = args.parsed()?;
            let mut body = json!({
                "id": spec.id, "region": spec.region, "environment": spec.environment,
                "group": spec.group, "tier": spec.tier, "hostnames": spec.hostnames, "pin": args.pin,
            });
            if let Some(release) = release {
                body["release"] = json!(release);
            }
            if let Some(windows) = &spec.maintenance {
                body["maintenance"] = json!(windows.to_string());
            }
            let view: Value = remote.post("/v1/tenants", Some(body)).await?;
            print_tenant(output, &view)?;
            if args.wait {
                return wait(remote, &[spec.id], "Active", args.timeout).await;
            }
            return Ok(());
        }
        TenantCommand::Get { id } => remote.get(&path(&TenantId::parse(&id)?, "")).await?,
        TenantCommand::List {
            region,
            state,
            limit,
            next_token,
        } => {
            let mut query = vec![format!("limit={limit}")];
            if let Some(r) = region {
                query.push(format!("region={}", encode(Region::parse(&r)?.as_str())));
            }
            if let Some(s) = state {
                query.push(format!("state={}", encode(&s)));
            }
            if let Some(t) = next_token {
                query.push(format!("next_token={}", encode(&t)));
            }
            let page: Value = remote.get(&format!("/v1/tenants?{}", query.join("&"))).await?;
            return print_list(output, &page);
        }
        TenantCommand::History { id, limit } => {
            let id = TenantId::parse(&id)?;
            let mut items = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let mut p = format!("{}?limit={}", path(&id, "/history"), limit.clamp(1, 1000));
                if let Some(t) = &token {
                    p.push_str(&format!("&next_token={}", encode(t)));
                }
                let page: Value = remote.get(&p).await?;
                items.extend(page["items"].as_array().cloned().unwrap_or_default());
                token = page["next_token"].as_str().map(str::to_owned);
                if token.is_none() || items.len() >= limit as usize {
                    break;
                }
            }
            return print_history(output, &items);
        }
        TenantCommand::Wait { ids, state, timeout } => {
            let ids = ids
                .iter()
                .map(|i| TenantId::parse(i))
                .collect::<Result<Vec<_>, _>>()?;
            return wait(remote, &ids, &state, timeout).await;
        }
        TenantCommand::Upgrade { id, release, hold } => {
            let release = ReleaseVersion::parse(&release)?;
            let body = json!({ "release": release });
            remote
                .post(
                    &command_path(&TenantId::parse(&id)?, "/upgrade", hold),
                    Some(body),
                )
                .await?
        }
        TenantCommand::Retry { id, hold } => {
            remote
                .post(&command_path(&TenantId::parse(&id)?, "/retry", hold), None)
                .await?
        }
        TenantCommand::Rollback { id, hold } => {
            remote
                .post(&command_path(&TenantId::parse(&id)?, "/rollback", hold), None)
                .await?
        }
        TenantCommand::Restore { id, snapshot, hold } => {
            let body = json!({ "snapshot": SnapshotName::parse(&snapshot)? });
            remote
                .post(
                    &command_path(&TenantId::parse(&id)?, "/restore", hold),
                    Some(body),
                )
                .await?
        }
        TenantCommand::Deprovision { id, hold } => {
            remote
                .post(&command_path(&TenantId::parse(&id)?, "/deprovision", hold), None)
                .await?
        }
    };
    print_tenant(output, &view)
}

fn path(id: &TenantId, rest: &str) -> String {
    format!("/v1/tenants/{}{rest}", encode(id.as_str()))
}

/// The path of a tenant command, with the admin override of a rollout's hold if asked.
fn command_path(id: &TenantId, command: &str, hold: HoldArgs) -> String {
    match hold.hold() {
        RolloutHold::Override => format!("{}?override_rollout_hold=true", path(id, command)),
        RolloutHold::Respect => path(id, command),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn print_tenant(output: OutputFormat, v: &Value) -> Result<(), Failure> {
    if output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(v)?);
        return Ok(());
    }
    let hostnames: Vec<String> = v["hostnames"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    let state = match v["step"].as_str() {
        Some(step) => format!("{}/{step}", text(&v["state"])),
        None => text(&v["state"]),
    };
    let lease = match &v["lease"] {
        Value::Null => "-".to_owned(),
        l => format!(
            "{} (fence {}, until {})",
            text(&l["holder"]),
            text(&l["fence"]),
            text(&l["expires_at"])
        ),
    };
    for (label, value) in [
        ("tenant", text(&v["id"])),
        ("region", text(&v["region"])),
        ("environment", text(&v["environment"])),
        (
            "group / tier",
            format!("{} / {}", text(&v["group"]), text(&v["tier"])),
        ),
        ("hostnames", hostnames.join(", ")),
        ("state", state),
        ("release", text(&v["current_release"])),
        ("target", text(&v["target_release"])),
        ("pinned", text(&v["pinned_release"])),
        ("maintenance", text(&v["maintenance"])),
        ("rollout", text(&v["rollout"])),
        ("attempt", text(&v["attempt"])),
        ("last error", text(&v["last_error"])),
        ("lease", lease),
        ("version", text(&v["version"])),
        ("updated", text(&v["updated_at"])),
    ] {
        println!("{:<14} {value}", format!("{label}:"));
    }
    Ok(())
}

fn print_list(output: OutputFormat, page: &Value) -> Result<(), Failure> {
    if output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(page)?);
        return Ok(());
    }
    println!(
        "{:<28} {:<16} {:<32} {:<12} {:<12}",
        "TENANT", "REGION", "STATE", "RELEASE", "GROUP"
    );
    for t in page["items"].as_array().into_iter().flatten() {
        println!(
            "{:<28} {:<16} {:<32} {:<12} {:<12}",
            text(&t["id"]),
            text(&t["region"]),
            text(&t["label"]),
            text(&t["release"]),
            text(&t["group"])
        );
    }
    if let Some(token) = page["next_token"].as_str() {
        println!("more: --next-token {token}");
    }
    Ok(())
}

fn print_history(output: OutputFormat, items: &[Value]) -> Result<(), Failure> {
    if output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(items)?);
        return Ok(());
    }
    for e in items {
        let detail = match (&e["error"], &e["output"]) {
            (Value::String(err), _) => format!("error: {err}"),
            (_, Value::String(out)) => out.clone(),
            _ => String::new(),
        };
        println!(
            "{:>4} {} {:<32} -> {:<32} {:<22} {:<28} {detail}",
            text(&e["seq"]),
            text(&e["at"]),
            text(&e["from"]),
            text(&e["to"]),
            text(&e["cause"]),
            text(&e["actor"])
        );
    }
    Ok(())
}

/// Steps done and steps of the phase named `state` at the step named `step`.
fn phase_progress(state: &str, step: &str) -> Option<(u64, u64)> {
    fn at<S: Copy>(sequence: &[S], step: &str, kind: impl Fn(S) -> String) -> Option<(u64, u64)> {
        let done = sequence.iter().position(|s| kind(*s) == step)?;
        Some((done as u64, sequence.len() as u64))
    }
    match state {
        "Provisioning" => at(ProvisionStep::SEQUENCE, step, |s| s.kind().to_string()),
        "Upgrading" => at(UpgradeStep::SEQUENCE, step, |s| s.kind().to_string()),
        "RollingBack" => at(RollbackStep::SEQUENCE, step, |s| s.kind().to_string()),
        "Restoring" => at(RestoreStep::SEQUENCE, step, |s| s.kind().to_string()),
        "Deprovisioning" => at(DeprovisionStep::SEQUENCE, step, |s| s.kind().to_string()),
        _ => None,
    }
}

/// `tenant wait` through the API: polls each tenant until none has a step to run.
async fn wait(remote: &Remote, ids: &[TenantId], wanted: &str, timeout: Duration) -> Result<(), Failure> {
    let mut progress = Progress::detect();
    let names: Vec<&str> = ids.iter().map(|i| i.as_str()).collect();
    progress.group(&format!(
        "Waiting for {} to be {wanted} (timeout {})",
        names.join(", "),
        humantime::format_duration(timeout)
    ));
    let deadline = Instant::now() + timeout;
    let mut phase_len: BTreeMap<String, u64> = BTreeMap::new();
    loop {
        let mut views = Vec::new();
        for id in ids {
            views.push(remote.get::<Value>(&path(id, "")).await?);
        }
        let (mut done, mut total) = (0, 0);
        for v in &views {
            let id = text(&v["id"]);
            match phase_progress(
                v["state"].as_str().unwrap_or(""),
                v["step"].as_str().unwrap_or(""),
            ) {
                Some((d, t)) => {
                    phase_len.insert(id, t);
                    done += d;
                    total += t;
                }
                None => {
                    let t = *phase_len.get(&id).unwrap_or(&1);
                    done += t;
                    total += t;
                }
            }
        }
        let busy: Vec<String> = views
            .iter()
            .filter(|v| !v["step"].is_null())
            .map(|v| format!("{} {}/{}", text(&v["id"]), text(&v["state"]), text(&v["step"])))
            .collect();
        progress.update(done, total, if busy.is_empty() { "settled" } else { &busy[0] });
        if busy.is_empty() {
            let missed: Vec<String> = views
                .iter()
                .filter(|v| v["state"].as_str() != Some(wanted))
                .map(|v| {
                    format!(
                        "{} is {}: {}",
                        text(&v["id"]),
                        text(&v["state"]),
                        text(&v["last_error"])
                    )
                })
                .collect();
            if missed.is_empty() {
                progress.finish(Outcome::Succeeded, &format!("all {wanted}"));
                return Ok(());
            }
            let message = format!("not {wanted}: {}", missed.join("; "));
            progress.fail(&message);
            return Err(Failure {
                code: EXIT_FAILURE,
                error: anyhow::anyhow!(message),
            });
        }
        if Instant::now() > deadline {
            let message = format!(
                "timed out after {}; still working: {}",
                humantime::format_duration(timeout),
                busy.join(", ")
            );
            progress.fail(&message);
            return Err(Failure {
                code: EXIT_FAILURE,
                error: anyhow::anyhow!(message),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
