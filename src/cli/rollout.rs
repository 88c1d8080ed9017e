use std::time::Duration;

use anyhow::anyhow;
use chrono::{DateTime, Utc};
use clap::Subcommand;

use tenant_orchestrator::app::{GroupPreview, PlanPreview, RolloutCommands, StartOptions};
use tenant_orchestrator::domain::rollout::{Plan, Skipped};
use tenant_orchestrator::domain::{RolloutId, RolloutSpec};
use tenant_orchestrator::record::{Outcome, Phase, RolloutMember, RolloutRecord};

use super::progress::{Outcome as ProgressOutcome, Progress};
use tenant_orchestrator::app::Backend;
use tenant_orchestrator::ports::{Details, PageRequest, RolloutSummary};
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
        /// Rollout spec (JSON): a target (release, platform, change, reconcile), selector, strategy.
        /// Optional when the target flags name the target (default selector and strategy).
        #[arg(long)]
        spec: Option<std::path::PathBuf>,
        #[command(flatten)]
        target: TargetArgs,
        /// Plan as of this time (RFC 3339), e.g. to see maintenance windows; default now.
        #[arg(long)]
        at: Option<String>,
        /// Also preview the stack change set of one tenant per (region, tier, platform
        /// version) group, and which replacements of data are refused.
        #[arg(long)]
        diff: bool,
        #[command(flatten)]
        preview: PreviewArgs,
        /// Select only tenants whose last drift check found drift (the spec's
        /// `selector.drifted: true`), e.g. for a reconcile rollout.
        #[arg(long)]
        drifted: bool,
    },
    /// Start a rollout; the controllers (in `tenantctl worker` or `tenantctl controller`)
    /// carry it out. Starting the same spec under the same id again returns the
    /// existing rollout.
    Start {
        /// Rollout spec (JSON): a target (release, platform, change, reconcile), selector, strategy.
        /// Optional when the target flags name the target (default selector and strategy).
        #[arg(long)]
        spec: Option<std::path::PathBuf>,
        #[command(flatten)]
        target: TargetArgs,
        /// Rollout id; default derived from today's date and the target.
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
        /// With --steps-config: S3 bucket of the published platform versions, to
        /// preview tenants on a published platform (see `rollout plan --diff`).
        #[arg(long, env = "TENANTCTL_PLATFORM_BUCKET")]
        platform_bucket: Option<String>,
        /// Schedule the start (RFC 3339, at most 90 days ahead): the rollout is stored
        /// now and starts no wave before then; a freeze in force then holds it until it
        /// ends. `--wait` waits through it.
        #[arg(long)]
        at: Option<String>,
        /// Start although a freeze holds some of its tenants now (admin: on the table,
        /// or an admin token with --server); the reason goes into the rollout's events.
        #[arg(long, value_name = "REASON")]
        override_freeze: Option<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Show a rollout: phase, waves with their counts by outcome, and at most 40 tenants
    /// a wave (failed, rolled back and in flight first; all of them with --output json
    /// or `rollout members`).
    Status {
        id: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// A page of a rollout's tenants and their outcomes, by wave then tenant id: for a
    /// rollout too large for `status` to print whole.
    Members {
        id: String,
        /// Only this wave's tenants (0 is the first wave).
        #[arg(long)]
        wave: Option<usize>,
        /// Tenants per page, 1 to 1000.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// The token the previous page printed, to read the next one.
        #[arg(long)]
        next_token: Option<String>,
    },
    /// A page of the tenants a rollout skipped when it was planned, with why, by id.
    Skipped {
        id: String,
        /// Tenants per page, 1 to 1000.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// The token the previous page printed, to read the next one.
        #[arg(long)]
        next_token: Option<String>,
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
    Resume {
        id: String,
        /// Resume although a freeze holds tenants of the current wave (admin); the
        /// reason goes into the rollout's events.
        #[arg(long, value_name = "REASON")]
        override_freeze: Option<String>,
    },
    /// End a rollout: nothing more is started; tenants in flight finish or roll back.
    Abort { id: String },
    /// Approve the wave that waits for an approval.
    Approve { id: String },
    /// Start the current wave's failed tenants again.
    Retry { id: String },
}

/// A rollout's target on the command line; each flag sets (or replaces) the spec's field.
#[derive(clap::Args, Debug)]
pub struct TargetArgs {
    /// Release to move the tenants to (the spec's `release`).
    #[arg(long)]
    release: Option<String>,
    /// Published platform version to move the tenants to (the spec's `platform`).
    #[arg(long)]
    platform: Option<String>,
    /// Tier to set on every selected tenant (the spec's `change.tier`).
    #[arg(long)]
    tier: Option<String>,
    /// Apply each selected tenant's desired revision again, even where it looks applied.
    #[arg(long)]
    reconcile: bool,
    /// Select only this environment's tenants (the spec's `selector.environment`).
    #[arg(long)]
    environment: Option<String>,
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

/// The spec of `--spec` (or an empty one) with the target flags applied, parsed as
/// one: a flag's bad value is reported as the spec field it sets.
fn read_spec(path: Option<&std::path::Path>, target: TargetArgs) -> Result<RolloutSpec, Failure> {
    let invalid = |error| Failure {
        code: super::EXIT_INVALID_INPUT,
        error,
    };
    let (mut json, source) = match path {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                invalid(anyhow!(
                    "cannot read the rollout spec {}: {e}; pass --spec the path of a JSON rollout spec",
                    path.display()
                ))
            })?;
            let json: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| invalid(anyhow!("{} is not a valid rollout spec: {e}", path.display())))?;
            (json, path.display().to_string())
        }
        None => (serde_json::json!({}), "the rollout given by the flags".to_owned()),
    };
    if let Some(fields) = json.as_object_mut() {
        if let Some(release) = target.release {
            fields.insert("release".into(), release.into());
        }
        if let Some(platform) = target.platform {
            fields.insert("platform".into(), platform.into());
        }
        if let Some(tier) = target.tier {
            fields.insert("change".into(), serde_json::json!({ "tier": tier }));
        }
        if target.reconcile {
            fields.insert("reconcile".into(), true.into());
        }
        if let Some(environment) = target.environment {
            let selector = fields.entry("selector").or_insert_with(|| serde_json::json!({}));
            if let Some(selector) = selector.as_object_mut() {
                selector.insert("environment".into(), environment.into());
            }
        }
    }
    serde_json::from_value(json).map_err(|e| {
        invalid(anyhow!(
            "{source} is not a valid rollout spec: {e}; give --spec, or --release, --platform, --tier or --reconcile"
        ))
    })
}

fn rollout_id(id: &str) -> Result<RolloutId, Failure> {
    Ok(RolloutId::parse(id)?)
}

pub(super) fn actor() -> String {
    let who = std::env::var("TENANTCTL_ACTOR")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "cli".into());
    format!("operator:{who}")
}

/// Where rollout commands go: the table directly, or a `tenantctl serve` API.
/// What `rollout plan --diff` needs against the table: the steps' configuration (the
/// region settings of the stack parameters) and where platform versions are published.
#[derive(Debug, clap::Args)]
pub struct PreviewArgs {
    /// Steps configuration (JSON), as for `tenantctl worker`.
    #[arg(long, env = "TENANTCTL_STEPS_CONFIG")]
    steps_config: Option<std::path::PathBuf>,
    /// S3 bucket of the published platform versions, as for `tenantctl worker`.
    #[arg(long, env = "TENANTCTL_PLATFORM_BUCKET")]
    platform_bucket: Option<String>,
}

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

    /// The plan with its preview (`plan --diff`).
    async fn preview(
        &self,
        spec: &RolloutSpec,
        at: Option<DateTime<Utc>>,
    ) -> Result<(Plan, PlanPreview), Failure> {
        match self {
            Rollouts::Local { commands, .. } => {
                Ok(commands.preview(spec, at.unwrap_or_else(Utc::now)).await?)
            }
            Rollouts::Remote(_) if at.is_some() => Err(Failure {
                code: super::EXIT_INVALID_INPUT,
                error: anyhow!("--at plans against the table directly; drop --server or --at"),
            }),
            Rollouts::Remote(remote) => {
                let answer: RemotePlan = remote.post("/v1/rollouts/plan?diff=true", Some(spec)).await?;
                let preview = answer.preview.ok_or_else(|| Failure {
                    code: super::EXIT_FAILURE,
                    error: anyhow!(
                        "the server answered the plan without its preview; is it older than this client?"
                    ),
                })?;
                Ok((answer.plan, preview))
            }
        }
    }

    /// Starts (or finds, for the same id and spec) a rollout: the record, whether
    /// this call created it, and how many tenants it moves.
    async fn start(
        &self,
        id: RolloutId,
        spec: RolloutSpec,
        options: StartOptions,
    ) -> Result<(RolloutRecord, bool, usize), Failure> {
        match self {
            Rollouts::Local { commands, actor, .. } => {
                let started = commands.start_with(id, spec, actor, options).await?;
                Ok((started.record, started.created, started.tenants))
            }
            Rollouts::Remote(remote) => {
                let mut body = serde_json::json!({ "id": id, "spec": spec });
                if let Some(at) = options.at {
                    body["start_at"] = serde_json::json!(at);
                }
                if let Some(reason) = options.override_freeze {
                    body["override_freeze"] = serde_json::json!({ "reason": reason });
                }
                // Without the members: a fleet-wide rollout has as many as the fleet.
                let view: RemoteView = remote.post("/v1/rollouts?members=false", Some(&body)).await?;
                let count = view.rollout.waves.iter().map(|w| w.size).sum();
                let created = view.created.unwrap_or(true);
                Ok((view.record(), created, count))
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

    /// The rollout with its bake evidence, without its members (nor the tenants it
    /// skipped, when it keeps them apart: `skipped_apart` counts them), as
    /// `GET /v1/rollouts/{id}?members=false` answers it.
    async fn record(&self, id: &RolloutId) -> Result<RolloutRecord, Failure> {
        match self {
            Rollouts::Local { store, .. } => {
                let record = store.load_rollout(id).await?;
                Ok(store.with_details(record, Details::BakeEvidence).await?)
            }
            Rollouts::Remote(remote) => {
                let view: RemoteView = remote
                    .get(&format!("/v1/rollouts/{}?members=false", encode(id.as_str())))
                    .await?;
                Ok(view.record())
            }
        }
    }

    /// What `rollout status` prints: in JSON every member; as text, of a rollout
    /// larger than [`status::READ_WHOLE_UP_TO`] whose waves keep tallies, only the
    /// first [`status::LISTED_PER_WAVE`] of each wave (its counts and failures are
    /// in its tally), so a status of a fleet-wide rollout does not read the fleet.
    async fn status(
        &self,
        id: &RolloutId,
        output: OutputFormat,
    ) -> Result<(RolloutRecord, Vec<RolloutMember>), Failure> {
        if output == OutputFormat::Json {
            return self.get(id).await;
        }
        let record = self.record(id).await?;
        let size: usize = record.waves.iter().map(|w| w.size).sum();
        if size <= status::READ_WHOLE_UP_TO || record.tallies().is_none() {
            return self.get(id).await;
        }
        let mut members = Vec::new();
        for wave in record.waves.iter().filter(|w| w.size > 0) {
            let first = PageRequest {
                limit: status::LISTED_PER_WAVE as u32,
                next_token: None,
            };
            let page = match self {
                Rollouts::Local { store, .. } => store.members_page(id, Some(wave.index), first).await?.items,
                Rollouts::Remote(_) => self.members_page(id, Some(wave.index), first).await?.0,
            };
            members.extend(page);
        }
        Ok((record, members))
    }

    /// The rollout and how many of its members are done out of how many: from the
    /// waves' tallies, without reading the members (a fleet-wide rollout has as many
    /// as the fleet has tenants), or counted from them for a record written before
    /// waves kept tallies.
    async fn progress(&self, id: &RolloutId) -> Result<(RolloutRecord, u64, u64), Failure> {
        let record = self.record(id).await?;
        if let Some(tallies) = record.tallies() {
            let done = tallies.iter().map(|t| t.done()).sum::<usize>() as u64;
            let total = tallies.iter().map(|t| t.total()).sum::<usize>() as u64;
            return Ok((record, done, total));
        }
        let (record, members) = self.get(id).await?;
        let done = members.iter().filter(|m| m.outcome.is_done()).count() as u64;
        Ok((record, done, members.len() as u64))
    }

    /// One page of the rollout's members, and the token of the next page.
    async fn members_page(
        &self,
        id: &RolloutId,
        wave: Option<usize>,
        page: PageRequest,
    ) -> Result<(Vec<RolloutMember>, Option<String>), Failure> {
        match self {
            Rollouts::Local { store, .. } => {
                let record = store.load_rollout(id).await?;
                if let Some(why) = wave.and_then(|w| record.no_wave(w)) {
                    return Err(Failure {
                        code: super::EXIT_INVALID_INPUT,
                        error: anyhow!(why),
                    });
                }
                let found = store.members_page(id, wave, page).await?;
                Ok((found.items, found.next_token))
            }
            Rollouts::Remote(remote) => {
                let wave = wave.map(|w| format!("&wave={w}")).unwrap_or_default();
                let path = page_path(id, "members", &page) + &wave;
                let found: RemoteItems<RolloutMember> = remote.get(&path).await?;
                Ok((found.items, found.next_token))
            }
        }
    }

    /// One page of the tenants the rollout skipped at planning, and the token of the
    /// next page.
    async fn skipped_page(
        &self,
        id: &RolloutId,
        page: PageRequest,
    ) -> Result<(Vec<Skipped>, Option<String>), Failure> {
        match self {
            Rollouts::Local { store, .. } => {
                let record = store.load_rollout(id).await?;
                let found = store.skipped_page(&record, page).await?;
                Ok((found.items, found.next_token))
            }
            Rollouts::Remote(remote) => {
                let found: RemoteItems<Skipped> = remote.get(&page_path(id, "skipped", &page)).await?;
                Ok((found.items, found.next_token))
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

    /// Resumes overriding the freezes that hold the current wave (on the table only:
    /// the API's resume takes no override).
    async fn resume_overriding(&self, id: &RolloutId, reason: &str) -> Result<RolloutRecord, Failure> {
        match self {
            Rollouts::Local { commands, actor, .. } => {
                Ok(commands.resume_with(id, actor, Some(reason)).await?)
            }
            Rollouts::Remote(_) => Err(Failure {
                code: super::EXIT_INVALID_INPUT,
                error: anyhow!(
                    "--override-freeze on resume works on the table only; run it without --server as an admin"
                ),
            }),
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
                        // Without the members: a fleet-wide rollout has as many as the fleet.
                        &format!("/v1/rollouts/{}/{verb}?members=false", encode(id.as_str())),
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
    /// Servers before it answered with the whole list in `rollout.skipped`.
    skipped_count: Option<usize>,
}

impl RemoteView {
    /// The rollout, counting the skipped tenants an answer without them names.
    fn record(self) -> RolloutRecord {
        RolloutRecord {
            skipped_apart: self.skipped_count.or(self.rollout.skipped_apart),
            ..self.rollout
        }
    }
}

/// `POST /v1/rollouts/plan?diff=true`.
#[derive(serde::Deserialize)]
struct RemotePlan {
    #[serde(flatten)]
    plan: Plan,
    preview: Option<PlanPreview>,
}

/// `rollouts` able to preview: against the table, with the previewer the steps
/// configuration gives.
async fn with_preview(
    rollouts: Rollouts,
    steps_config: Option<std::path::PathBuf>,
    platform_bucket: Option<String>,
) -> Result<Rollouts, Failure> {
    match (rollouts, steps_config) {
        (
            Rollouts::Local {
                commands,
                store,
                actor,
            },
            Some(path),
        ) => {
            let steps = super::worker::load_steps_config(Some(&path))?;
            let spacing = super::worker::start_spacing(&steps);
            let preview = super::worker::product_preview(steps, platform_bucket.as_deref()).await;
            Ok(Rollouts::Local {
                commands: commands.with_preview(preview).with_start_spacing(spacing),
                store,
                actor,
            })
        }
        (Rollouts::Remote(_), Some(_)) => Err(Failure {
            code: super::EXIT_INVALID_INPUT,
            error: anyhow!(
                "--steps-config is for previewing against the table; with --server the server previews"
            ),
        }),
        (rollouts, None) => Ok(rollouts),
    }
}

#[derive(serde::Deserialize)]
struct RemotePage {
    items: Vec<RolloutSummary>,
}

/// `GET /v1/rollouts/{id}/members` and `/skipped`.
#[derive(serde::Deserialize)]
struct RemoteItems<T> {
    items: Vec<T>,
    next_token: Option<String>,
}

/// `GET /v1/rollouts/{id}/{part}` for `page`.
fn page_path(id: &RolloutId, part: &str, page: &PageRequest) -> String {
    let mut path = format!("/v1/rollouts/{}/{part}?limit={}", encode(id.as_str()), page.limit);
    if let Some(token) = &page.next_token {
        path.push_str(&format!("&next_token={}", encode(token)));
    }
    path
}

/// A page of `limit` (1 to 1000) items after `next_token`.
fn page_request(limit: u32, next_token: Option<String>) -> Result<PageRequest, Failure> {
    if !(1..=1000).contains(&limit) {
        return Err(Failure {
            code: super::EXIT_INVALID_INPUT,
            error: anyhow!("--limit {limit} is out of range; give 1 to 1000"),
        });
    }
    Ok(PageRequest { limit, next_token })
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
        RolloutCommand::Plan {
            spec,
            target,
            at,
            diff,
            preview,
            drifted,
        } => {
            let mut spec = read_spec(spec.as_deref(), target)?;
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
            if diff {
                let rollouts = with_preview(rollouts, preview.steps_config, preview.platform_bucket).await?;
                let (plan, preview) = rollouts.preview(&spec, at).await?;
                return print_preview(output, &plan, &preview);
            }
            let plan = rollouts.plan(&spec, at).await?;
            return print_plan(output, &plan);
        }
        RolloutCommand::Start {
            spec,
            target,
            id,
            drifted,
            steps_config,
            platform_bucket,
            at,
            override_freeze,
            wait,
        } => {
            let options = StartOptions {
                at: at
                    .as_deref()
                    .map(|t| super::freeze::time_arg("--at", t))
                    .transpose()?,
                override_freeze,
            };
            let mut spec = read_spec(spec.as_deref(), target)?;
            spec.selector.drifted |= drifted;
            let rollouts = match (rollouts, steps_config) {
                (Rollouts::Local { commands, store, actor }, Some(path)) => {
                    let steps = super::worker::load_steps_config(Some(&path))?;
                    let aws = std::sync::Arc::new(AwsClients::from_env().await);
                    let registry = std::sync::Arc::new(CheckArtifact::new(steps.artifact.clone(), aws));
                    let spacing = super::worker::start_spacing(&steps);
                    let preview = super::worker::product_preview(steps, platform_bucket.as_deref()).await;
                    Rollouts::Local {
                        commands: (commands.with_registry(registry).with_preview(preview))
                            .with_start_spacing(spacing),
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
                None => RolloutId::derived_for(&spec, Utc::now().date_naive()),
            };
            let (record, created, tenants) = rollouts.start(id, spec, options).await?;
            if output == OutputFormat::Table {
                println!(
                    "rollout {} of {} {}: {tenants} tenants in {} waves, {} skipped",
                    record.id,
                    record.target(),
                    if created { "started" } else { "was already started" },
                    record.waves.len(),
                    record.skipped_count()
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
            let (record, members) = rollouts.status(&id, output).await?;
            return status::print(output, &record, &members);
        }
        RolloutCommand::Members {
            id,
            wave,
            limit,
            next_token,
        } => {
            let id = rollout_id(&id)?;
            let page = page_request(limit, next_token)?;
            let (members, next) = rollouts.members_page(&id, wave, page).await?;
            let wave_flag = wave.map(|w| format!(" --wave {w}")).unwrap_or_default();
            let next_command = (next.as_ref()).map(|token| {
                format!("tenantctl rollout members {id}{wave_flag} --limit {limit} --next-token {token}")
            });
            return status::print_members(output, &members, next.as_deref(), next_command.as_deref());
        }
        RolloutCommand::Skipped {
            id,
            limit,
            next_token,
        } => {
            let id = rollout_id(&id)?;
            let page = page_request(limit, next_token)?;
            let (skipped, next) = rollouts.skipped_page(&id, page).await?;
            let next_command = (next.as_ref())
                .map(|token| format!("tenantctl rollout skipped {id} --limit {limit} --next-token {token}"));
            return status::print_skipped(output, &skipped, next.as_deref(), next_command.as_deref());
        }
        RolloutCommand::List { all, limit } => {
            return status::print_list(output, &rollouts.list(all, limit).await?);
        }
        RolloutCommand::Pause { id } => rollouts.operate(&rollout_id(&id)?, Operation::Pause).await?,
        RolloutCommand::Resume {
            id,
            override_freeze: Some(reason),
        } => rollouts.resume_overriding(&rollout_id(&id)?, &reason).await?,
        RolloutCommand::Resume { id, .. } => rollouts.operate(&rollout_id(&id)?, Operation::Resume).await?,
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
        let (record, done, total) = commands.progress(id).await?;
        if !grouped {
            progress.group(&format!("Rollout {id} of {}", record.target()));
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
        let wave = record
            .wave()
            .map(|w| format!("wave {}/{} {:?}", w.index + 1, record.waves.len(), w.status))
            .unwrap_or_else(|| "all waves done".into());
        progress.update(done, total, &format!("{}, {wave}", record.phase));
        if record.is_settled() {
            // Settled: the whole rollout once, for the report and the exit code.
            let (record, members) = commands.get(id).await?;
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
    let target = match &plan.release {
        Some(release) if plan.target == release.to_string() => format!("release {release}"),
        _ => plan.target.clone(),
    };
    println!(
        "{target}: {} tenants in {} waves, regions in order {}; estimated end {}",
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
                "  {:<28} {:<16} from {}{}",
                t.id.as_str(),
                t.region.as_str(),
                time(t.earliest_start),
                t.deferred
                    .as_ref()
                    .map(|d| format!("  deferred: {d}"))
                    .unwrap_or_default()
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

/// The group's manifest diff, indented under the group.
fn print_chart_diff(group: &GroupPreview) {
    match (&group.chart_diff, &group.chart_unavailable) {
        (Some(diff), _) if diff.is_empty() => println!("  chart: no change"),
        (Some(diff), _) => {
            println!("  chart (image shown as running now; the new digest is resolved at deploy):");
            for line in diff.lines() {
                println!("    {line}");
            }
        }
        (None, Some(reason)) => println!("  chart: not rendered: {reason}"),
        (None, None) => {}
    }
}

/// The plan, then each group's change set; refused groups make the command exit 4.
fn print_preview(output: OutputFormat, plan: &Plan, preview: &PlanPreview) -> Result<(), Failure> {
    if output == OutputFormat::Json {
        let mut doc = serde_json::to_value(plan)?;
        doc["preview"] = serde_json::to_value(preview)?;
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print_plan(output, plan)?;
        println!(
            "\nchange preview: {} group(s), {} refused",
            preview.groups.len(),
            preview.refused().count()
        );
        for group in &preview.groups {
            let ids: Vec<&str> = group.tenants.iter().map(|t| t.as_str()).collect();
            println!(
                "\n{}: {} tenant(s) ({}), previewed on {}",
                group.label(),
                ids.len(),
                ids.join(", "),
                group.representative
            );
            if !group.stack_exists {
                println!("  no stack yet: the change creates it");
            } else if group.changes.is_empty() {
                println!("  stack: no change");
            }
            for c in &group.changes {
                println!(
                    "  {:<7} {:<24} {:<26} replacement {:<12} {}",
                    format!("{:?}", c.action).to_lowercase(),
                    c.logical_id,
                    c.resource_type,
                    format!("{:?}", c.replacement).to_lowercase(),
                    c.properties.join(", ")
                );
            }
            for r in &group.refused {
                println!("  REFUSED: {r}");
            }
            print_chart_diff(group);
        }
    }
    match preview.refusal() {
        Some(refusal) => Err(Failure {
            code: super::EXIT_CONFLICT,
            error: anyhow!("refused: {refusal}"),
        }),
        None => Ok(()),
    }
}
