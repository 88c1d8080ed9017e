//! `tenantctl freeze add|list|remove`: the freeze windows, on the table or through
//! `--server` (where adding and removing take an admin token).

use anyhow::anyhow;
use chrono::{DateTime, Utc};
use clap::Subcommand;
use reqwest::Method;

use tenant_orchestrator::api::freezes::{FreezeList, NewFreeze};
use tenant_orchestrator::domain::{Environment, Freeze, Region};

use super::remote::{encode, Remote};
use super::{Failure, OutputFormat};

#[derive(Subcommand, Debug)]
pub enum FreezeCommand {
    /// Freeze an environment (or one of its regions): rollouts start none of its
    /// tenants and operator commands that change one are refused until it ends.
    Add {
        #[arg(long)]
        environment: String,
        /// Default: every region of the environment.
        #[arg(long)]
        region: Option<String>,
        /// RFC 3339 start, e.g. 2026-12-20T00:00:00Z.
        #[arg(long)]
        from: String,
        /// RFC 3339 end, after --from.
        #[arg(long)]
        until: String,
        /// Why (shown in every refusal and held wave), at most 200 characters.
        #[arg(long)]
        reason: String,
    },
    /// List the stored freezes, ended ones included until removed.
    List,
    /// Remove a freeze by id (`f-…`): what it held may move again.
    Remove { id: String },
}

/// An RFC 3339 time from a flag, or an error naming the flag and an example.
pub(super) fn time_arg(flag: &str, text: &str) -> Result<DateTime<Utc>, Failure> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Failure {
            code: super::EXIT_INVALID_INPUT,
            error: anyhow!("{flag} {text:?} is not an RFC 3339 time ({e}); use e.g. 2026-12-20T00:00:00Z"),
        })
}

pub async fn run(
    table: &str,
    server: Option<&Remote>,
    output: OutputFormat,
    command: FreezeCommand,
) -> Result<(), Failure> {
    let freezes = match command {
        FreezeCommand::Add {
            environment,
            region,
            from,
            until,
            reason,
        } => {
            let body = NewFreeze {
                environment: Environment::parse(&environment)?,
                region: region.as_deref().map(Region::parse).transpose()?,
                from: time_arg("--from", &from)?,
                until: time_arg("--until", &until)?,
                reason,
            };
            let mut freeze = body.freeze()?;
            let added = match server {
                Some(remote) => remote.call(Method::POST, "/v1/freezes", Some(&body)).await?,
                None => {
                    freeze.created_by = super::tenant::operator().0;
                    super::connect(table).await.backend().add_freeze(freeze).await?
                }
            };
            vec![added]
        }
        FreezeCommand::List => match server {
            Some(remote) => remote.get::<FreezeList>("/v1/freezes").await?.freezes,
            None => super::connect(table).await.backend().list_freezes().await?,
        },
        FreezeCommand::Remove { id } => {
            let removed = match server {
                Some(remote) => {
                    let path = format!("/v1/freezes/{}", encode(&id));
                    remote.call(Method::DELETE, &path, None::<&()>).await?
                }
                None => super::connect(table).await.backend().remove_freeze(&id).await?,
            };
            vec![removed]
        }
    };
    print(output, &freezes)
}

fn print(output: OutputFormat, freezes: &[Freeze]) -> Result<(), Failure> {
    if output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(freezes)?);
        return Ok(());
    }
    if freezes.is_empty() {
        println!("no freezes");
    }
    for f in freezes {
        println!(
            "{}  {}{}  {} .. {}  {}  (by {})",
            f.id,
            f.environment,
            f.region.as_ref().map(|r| format!("/{r}")).unwrap_or_default(),
            f.from.to_rfc3339(),
            f.until.to_rfc3339(),
            f.reason,
            f.created_by
        );
    }
    Ok(())
}
