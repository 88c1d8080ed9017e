use clap::Subcommand;

use tenant_orchestrator::domain::{Environment, Group, Region, ReleaseVersion};

use reqwest::Method;

use super::remote::{encode, Remote};
use super::Failure;

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Show the version policy (JSON).
    Get,
    /// Set the release new and rolled-out tenants of a region get in an environment.
    SetDefault {
        #[arg(long)]
        environment: String,
        #[arg(long)]
        region: String,
        #[arg(long)]
        release: String,
    },
    /// Remove a region's default release.
    UnsetDefault {
        #[arg(long)]
        environment: String,
        #[arg(long)]
        region: String,
    },
    /// Give a group (ring) its own release, overriding the region defaults.
    SetGroup {
        #[arg(long)]
        environment: String,
        #[arg(long)]
        group: String,
        #[arg(long)]
        release: String,
    },
    /// Remove a group's override.
    UnsetGroup {
        #[arg(long)]
        environment: String,
        #[arg(long)]
        group: String,
    },
}

/// The policy commands through the API; input is parsed first, so bad input sends nothing.
async fn run_remote(remote: &Remote, command: PolicyCommand) -> Result<(), Failure> {
    let release_body = |release: &str| -> Result<serde_json::Value, Failure> {
        Ok(serde_json::json!({ "release": ReleaseVersion::parse(release)? }))
    };
    let (method, path, body) = match command {
        PolicyCommand::Get => (Method::GET, "/v1/policy".to_owned(), None),
        PolicyCommand::SetDefault {
            environment,
            region,
            release,
        } => (
            Method::PUT,
            default_path(&Environment::parse(&environment)?, &Region::parse(&region)?),
            Some(release_body(&release)?),
        ),
        PolicyCommand::UnsetDefault { environment, region } => (
            Method::DELETE,
            default_path(&Environment::parse(&environment)?, &Region::parse(&region)?),
            None,
        ),
        PolicyCommand::SetGroup {
            environment,
            group,
            release,
        } => (
            Method::PUT,
            group_path(&Environment::parse(&environment)?, &Group::parse(&group)?),
            Some(release_body(&release)?),
        ),
        PolicyCommand::UnsetGroup { environment, group } => (
            Method::DELETE,
            group_path(&Environment::parse(&environment)?, &Group::parse(&group)?),
            None,
        ),
    };
    let policy: serde_json::Value = remote.call(method, &path, body.as_ref()).await?;
    println!("{}", serde_json::to_string_pretty(&policy)?);
    Ok(())
}

fn default_path(env: &Environment, region: &Region) -> String {
    format!(
        "/v1/policy/defaults/{}/{}",
        encode(env.as_str()),
        encode(region.as_str())
    )
}

fn group_path(env: &Environment, group: &Group) -> String {
    format!(
        "/v1/policy/groups/{}/{}",
        encode(env.as_str()),
        encode(group.as_str())
    )
}

pub async fn run(table: &str, server: Option<&Remote>, command: PolicyCommand) -> Result<(), Failure> {
    if let Some(remote) = server {
        return run_remote(remote, command).await;
    }
    let app = super::connect(table).await;
    let store = app.backend();
    let actor = super::tenant::operator().0;
    let policy = match command {
        PolicyCommand::Get => store.load_policy().await?.0,
        PolicyCommand::SetDefault {
            environment,
            region,
            release,
        } => {
            let (env, region, release) = (
                Environment::parse(&environment)?,
                Region::parse(&region)?,
                ReleaseVersion::parse(&release)?,
            );
            store
                .update_policy(
                    &actor,
                    &format!("set default {env}/{region} to {release}"),
                    &|p| drop(p.set_default(env.clone(), region.clone(), release.clone())),
                )
                .await?
                .0
        }
        PolicyCommand::UnsetDefault { environment, region } => {
            let (env, region) = (Environment::parse(&environment)?, Region::parse(&region)?);
            store
                .update_policy(&actor, &format!("remove default {env}/{region}"), &|p| {
                    drop(p.remove_default(&env, &region))
                })
                .await?
                .0
        }
        PolicyCommand::SetGroup {
            environment,
            group,
            release,
        } => {
            let (env, group, release) = (
                Environment::parse(&environment)?,
                Group::parse(&group)?,
                ReleaseVersion::parse(&release)?,
            );
            store
                .update_policy(&actor, &format!("set group {env}/{group} to {release}"), &|p| {
                    drop(p.set_group_override(env.clone(), group.clone(), release.clone()))
                })
                .await?
                .0
        }
        PolicyCommand::UnsetGroup { environment, group } => {
            let (env, group) = (Environment::parse(&environment)?, Group::parse(&group)?);
            store
                .update_policy(&actor, &format!("remove group {env}/{group}"), &|p| {
                    drop(p.remove_group_override(&env, &group))
                })
                .await?
                .0
        }
    };
    println!("{}", serde_json::to_string_pretty(&policy)?);
    Ok(())
}
