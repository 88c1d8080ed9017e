use clap::Subcommand;

use tenant_orchestrator::domain::{Environment, Group, Region, ReleaseVersion};

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

pub async fn run(table: &str, command: PolicyCommand) -> Result<(), Failure> {
    let store = super::dynamo_store(table).await;
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
                .update_policy(|p| drop(p.set_default(env.clone(), region.clone(), release.clone())))
                .await?
        }
        PolicyCommand::UnsetDefault { environment, region } => {
            let (env, region) = (Environment::parse(&environment)?, Region::parse(&region)?);
            store
                .update_policy(|p| drop(p.remove_default(&env, &region)))
                .await?
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
                .update_policy(|p| drop(p.set_group_override(env.clone(), group.clone(), release.clone())))
                .await?
        }
        PolicyCommand::UnsetGroup { environment, group } => {
            let (env, group) = (Environment::parse(&environment)?, Group::parse(&group)?);
            store
                .update_policy(|p| drop(p.remove_group_override(&env, &group)))
                .await?
        }
    };
    println!("{}", serde_json::to_string_pretty(&policy)?);
    Ok(())
}
