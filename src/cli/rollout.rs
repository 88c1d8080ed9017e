use std::time::Duration;

use anyhow::anyhow;
use chrono::{DateTime, Utc};
use clap::Subcommand;

use tenant_orchestrator::app::RolloutCommands;
use tenant_orchestrator::domain::rollout::Plan;
use tenant_orchestrator::domain::{RolloutId, RolloutSpec};
use tenant_orchestrator::record::{Outcome, Phase, RolloutMember, RolloutRecord};

use super::progress::{Outcome as ProgressOutcome, Progress};
use tenant_orchestrator::app::Backend;
use tenant_orchestrator::ports::RolloutSummary;
use tenant_orchestrator::steps::artifact::CheckArtifact;
use tenant_orchestrator::steps::AwsClients;

use super::remote::{encode, Remote};

use super::{Failure, OutputFormat};

#[path = "rollout_status.rs"]
mod status;

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
        /// Select only tenants whose last drift check found drift (the spec's
        /// `selector.drifted: true`), e.g. for a reconcile rollout.
        #[arg(long)]
        drifted: bool,
    },
    /// Start a rollout; the controllers (in `tenantctl worker` or `tenantctl controller`)
    /// carry it out. Starting the same spec under the same id again returns the
    /// existing rollout.
    Start {
        /// Rollout spec (JSON): release, selector, strategy.
        #[arg(long)]
        spec: std::path::PathBuf,
        /// Rollout id; default derived from today's date and the release.
        #[arg(long)]
        id: Option<String>,
        /// Select only tenants whose last drift check found drift (the spec's
        /// `selector.drifted: true`), e.g. for a reconcile rollout.
        #[arg(long)]
        drifted: bool,
        /// Steps configuration (JSON): with it, the release must be published in the
        /// artifact repository for every region the rollout visits, or it is refused.
        #[arg(long, env = "TENANTCTL_STEPS_CONFIG")]
        steps_config: Option<std::path::PathBuf>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Show a rollout: phase, waves, and every tenant's outcome.
    Status {
        id: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// List rollouts, running ones first.
    List {
        /// Include finished rollouts.
        #[arg(long)]
        all: bool,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Stop starting tenants; those in flight finish.
    Pause { id: String },
    /// Continue a paused rollout, or a halted one (accepting its failures).
    Resume { id: String },
    /// End a rollout: nothing more is started; tenants in flight finish or roll back.
    Abort { id: String },
    /// Approve the wave that waits for an approval.
    Approve { id: String },
    /// Start the current wave's failed tenants again.
    Retry { id: String },
}

#[derive(clap::Args, Debug)]
pub struct WaitArgs {
    /// Block until the rollout completes, halts (its rollback done) or is aborted; exit
    /// 0 if it completed, 5 if it halted, 6 if it was aborted.
    #[arg(long)]
    wait: bool,
    /// Give up waiting after this long (exit 1; the rollout goes on).
    #[arg(long, default_value = "6h", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Time between looks at the rollout while waiting.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    poll: Duration,
}

fn read_spec(path: &std::path::Path) -> Result<RolloutSpec, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| Failure {
        code: super::EXIT_INVALID_INPUT,
        error: anyhow!(
            "cannot read the rollout spec {}: {e}; pass --spec the path of a JSON rollout spec",
            path.display()
        ),
    })?;
    serde_json::from_str(&text).map_err(|e| Failure {
        code: super::EXIT_INVALID_INPUT,
        error: anyhow!("{} is not a valid rollout spec: {e}", path.display()),
    })
}

fn rollout_id(id: &str) -> Result<RolloutId, Failure> {
    Ok(RolloutId::parse(id)?)
}

fn actor() -> String {
    let who = std::env::var("TENANTCTL_ACTOR")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "cli".into());
    format!("operator:{who}")
}

/// Where rollout commands go: the table directly, or a `tenantctl serve` API.
enum Rollouts {
    Local {
        commands: RolloutCommands,
        store: std::sync::Arc<dyn Backend>,
        actor: String,
    },
    Remote(Remote),
}

/// An operator command on a rollout.
#[derive(Debug, Clone, Copy)]
enum Operation {
    Pause,
    Resume,
    Abort,
    Approve,
    Retry,
}

impl Rollouts {
    async fn plan(&self, spec: &RolloutSpec, at: Option<DateTime<Utc>>) -> Result<Plan, Failure> {
        match self {
            Rollouts::Local { commands, .. } => Ok(commands.plan(spec, at.unwrap_or_else(Utc::now)).await?),
            Rollouts::Remote(_) if at.is_some() => Err(Failure {
                code: super::EXIT_INVALID_INPUT,
                error: anyhow!("--at plans against the table directly; drop --server or --at"),
            }),
            Rollouts::Remote(remote) => Ok(remote.post("/v1/rollouts/plan", Some(spec)).await?),
        }
    }

    /// Starts (or finds, for the same id and spec) a rollout: the record, whether
    /// this call created it, and how many tenants it moves.
    async fn start(&self, id: RolloutId, spec: RolloutSpec) -> Result<(RolloutRecord, bool, usize), Failure> {
        match self {
            Rollouts::Local { commands, actor, .. } => {
                let started = commands.start(id, spec, actor).await?;
                Ok((started.record, started.created, started.tenants))
            }
            Rollouts::Remote(remote) => {
                let body = serde_json::json!({ "id": id, "spec": spec });
                let view: RemoteView = remote.post("/v1/rollouts", Some(&body)).await?;
                let count = view.members.len();
                Ok((view.rollout, view.created.unwrap_or(true), count))
            }
        }
    }

    async fn get(&self, id: &RolloutId) -> Result<(RolloutRecord, Vec<RolloutMember>), Failure> {
        match self {
            Rollouts::Local { commands, .. } => Ok(commands.get(id).await?),
            Rollouts::Remote(remote) => {
                let view: RemoteView = remote
                    .get(&format!("/v1/rollouts/{}", encode(id.as_str())))
                    .await?;
                Ok((view.rollout, view.members))
            }
        }
    }

    async fn list(&self, all: bool, limit: u32) -> Result<Vec<RolloutSummary>, Failure> {
        match self {
            Rollouts::Local { store, .. } => Ok(store.list_rollouts(!all, limit, None).await?.items),
            Rollouts::Remote(remote) => {
                let page: RemotePage = remote
                    .get(&format!("/v1/rollouts?all={all}&limit={limit}"))
                    .await?;
                Ok(page.items)
            }
        }
    }

    async fn operate(&self, id: &RolloutId, op: Operation) -> Result<RolloutRecord, Failure> {
        match self {
            Rollouts::Local { commands, actor, .. } => Ok(match op {
                Operation::Pause => commands.pause(id, actor).await?,
                Operation::Resume => commands.resume(id, actor).await?,
                Operation::Abort => commands.abort(id, actor).await?,
                Operation::Approve => commands.approve(id, actor).await?,
                Operation::Retry => commands.retry(id, actor).await?,
            }),
            Rollouts::Remote(remote) => {
                let verb = format!("{op:?}").to_lowercase();
                let view: RemoteView = remote
                    .post(
                        &format!("/v1/rollouts/{}/{verb}", encode(id.as_str())),
                        None::<&()>,
                    )
                    .await?;
                Ok(view.rollout)
            }
        }
    }
}

/// `GET /v1/rollouts/{id}` and the answers of start and the operations.
#[derive(serde::Deserialize)]
struct RemoteView {
    rollout: RolloutRecord,
    members: Vec<RolloutMember>,
    created: Option<bool>,
}

#[derive(serde::Deserialize)]
struct RemotePage {
    items: Vec<RolloutSummary>,
}

pub async fn run(
    table: &str,
    server: Option<&Remote>,
    output: OutputFormat,
    command: RolloutCommand,
) -> Result<(), Failure> {
    let local = || async {
        let app = super::connect(table).await;
        Rollouts::Local {
            commands: app.rollouts().clone(),
            store: app.backend().clone(),
            actor: actor(),
        }
    };
    let rollouts = match server {
        Some(remote) => Rollouts::Remote(remote.clone()),
        None => local().await,
    };
    let record = match command {
        RolloutCommand::Plan { spec, at, drifted } => {
            let mut spec = read_spec(&spec)?;
            spec.selector.drifted |= drifted;
            let at = match at {
                Some(t) => Some(
                    DateTime::parse_from_rfc3339(&t)
                        .map_err(|e| Failure {
                            code: super::EXIT_INVALID_INPUT,
                            error: anyhow!(
                                "--at {t:?} is not an RFC 3339 time ({e}); use e.g. 2026-11-22T02:00:00Z"
                            ),
                        })?
                        .with_timezone(&Utc),
                ),
                None => None,
            };
            let plan = rollouts.plan(&spec, at).await?;
            return print_plan(output, &plan);
        }
        RolloutCommand::Start {
            spec,
            id,
            drifted,
            steps_config,
            wait,
        } => {
            let mut spec = read_spec(&spec)?;
            spec.selector.drifted |= drifted;
            let rollouts = match (rollouts, steps_config) {
                (Rollouts::Local { commands, store, actor }, Some(path)) => {
                    let steps = super::worker::load_steps_config(Some(&path))?;
                    let aws = std::sync::Arc::new(AwsClients::from_env().await);
                    let registry = std::sync::Arc::new(CheckArtifact::new(steps.artifact, aws));
                    Rollouts::Local {
                        commands: commands.with_registry(registry),
                        store,
                        actor,
                    }
                }
                (Rollouts::Remote(_), Some(_)) => {
                    return Err(Failure {
                        code: super::EXIT_INVALID_INPUT,
                        error: anyhow!(
                            "--steps-config is for starting against the table; with --server the server checks the release"
                        ),
                    })
                }
                (rollouts, None) => rollouts,
            };
            let id = match id {
                Some(id) => rollout_id(&id)?,
                None => RolloutId::derived(&spec.release, Utc::now().date_naive()),
            };
            let (record, created, tenants) = rollouts.start(id, spec).await?;
            if output == OutputFormat::Table {
                println!(
                    "rollout {} of {} {}: {tenants} tenants in {} waves, {} skipped",
                    record.id,
                    record.release(),
                    if created { "started" } else { "was already started" },
                    record.waves.len(),
                    record.skipped.len()
                );
            }
            if wait.wait {
                return wait_for(&rollouts, &record.id, output, &wait).await;
            }
            record
        }
        RolloutCommand::Status { id, wait } => {
            let id = rollout_id(&id)?;
            if wait.wait {
                return wait_for(&rollouts, &id, output, &wait).await;
            }
            let (record, members) = rollouts.get(&id).await?;
            return status::print(output, &record, &members);
        }
        RolloutCommand::List { all, limit } => {
            return status::print_list(output, &rollouts.list(all, limit).await?);
        }
        RolloutCommand::Pause { id } => rollouts.operate(&rollout_id(&id)?, Operation::Pause).await?,
        RolloutCommand::Resume { id } => rollouts.operate(&rollout_id(&id)?, Operation::Resume).await?,
        RolloutCommand::Abort { id } => rollouts.operate(&rollout_id(&id)?, Operation::Abort).await?,
        RolloutCommand::Approve { id } => rollouts.operate(&rollout_id(&id)?, Operation::Approve).await?,
        RolloutCommand::Retry { id } => rollouts.operate(&rollout_id(&id)?, Operation::Retry).await?,
    };
    status::print_change(output, &record)
}

/// Follows a rollout until it settles, reporting progress (Azure Pipelines logging
/// commands, a bar, or lines); the exit code says how it ended.
async fn wait_for(
    commands: &Rollouts,
    id: &RolloutId,
    output: OutputFormat,
    wait: &WaitArgs,
) -> Result<(), Failure> {
    let deadline = tokio::time::Instant::now() + wait.timeout;
    let mut progress = Progress::detect();
    let mut last_seen: Option<(DateTime<Utc>, String)> = None;
    let mut grouped = false;
    loop {
        let (record, members) = commands.get(id).await?;
        if !grouped {
            progress.group(&format!("Rollout {id} of {}", record.release()));
            grouped = true;
        }
        let new_from = last_seen
            .as_ref()
            .and_then(|(at, what)| record.events.iter().position(|e| e.at == *at && e.what == *what))
            .map_or(0, |i| i + 1);
        for event in &record.events[new_from..] {
            progress.note(&format!(
                "{}  {:<24} {}",
                event.at.format("%H:%M:%S"),
                event.actor,
                event.what
            ));
        }
        last_seen = record.events.last().map(|e| (e.at, e.what.clone()));
        let done = members.iter().filter(|m| m.outcome.is_done()).count() as u64;
        let wave = record
            .wave()
            .map(|w| format!("wave {}/{} {:?}", w.index + 1, record.waves.len(), w.status))
            .unwrap_or_else(|| "all waves done".into());
        progress.update(done, members.len() as u64, &format!("{}, {wave}", record.phase));
        if record.is_settled() {
            status::print(output, &record, &members)?;
            let failed = members
                .iter()
                .filter(|m| matches!(m.outcome, Outcome::Failed { .. } | Outcome::Skipped { .. }))
                .count();
            return match record.phase {
                Phase::Completed if failed == 0 => {
                    progress.finish(ProgressOutcome::Succeeded, "completed");
                    Ok(())
                }
                Phase::Completed => {
                    let note = format!("completed; {failed} tenant(s) failed within budget or were skipped");
                    progress.warn(&note);
                    progress.finish(ProgressOutcome::SucceededWithIssues, &note);
                    Ok(())
                }
                Phase::Aborted => {
                    let message = format!("rollout {id} was aborted; see `tenantctl rollout status {id}`");
                    progress.fail(&message);
                    Err(Failure {
                        code: super::EXIT_ROLLOUT_ABORTED,
                        error: anyhow!(message),
                    })
                }
                _ => {
                    let message = format!(
                        "rollout {id} halted: {}; fix the cause, then `tenantctl rollout retry {id}` (or resume/abort)",
                        record.halt_reason.as_deref().unwrap_or("see `tenantctl rollout status`")
                    );
                    progress.fail(&message);
                    Err(Failure {
                        code: super::EXIT_ROLLOUT_HALTED,
                        error: anyhow!(message),
                    })
                }
            };
        }
        if tokio::time::Instant::now() >= deadline {
            let message = format!(
                "rollout {id} is still {} after {}; it goes on; follow it with `tenantctl rollout status {id} --wait`",
                record.phase,
                humantime::format_duration(wait.timeout)
            );
            progress.fail(&message);
            return Err(Failure {
                code: super::EXIT_FAILURE,
                error: anyhow!(message),
            });
        }
        tokio::time::sleep(wait.poll).await;
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
