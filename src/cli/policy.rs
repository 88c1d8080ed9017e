use clap::Subcommand;

use tenant_orchestrator::domain::{Environment, Group, PlatformVersion, Region, ReleaseVersion};

use reqwest::Method;

use tenant_orchestrator::api::views::SetVersions;

use super::remote::{encode, Remote};
use super::Failure;

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Show the version policy (JSON).
    Get,
    /// Set the release and/or the platform version new tenants of a region get in an
    /// environment.
    SetDefault {
        #[arg(long)]
        environment: String,
        #[arg(long)]
        region: String,
        #[command(flatten)]
        versions: VersionArgs,
    },
    /// Remove a region's default release and platform version (or one of them).
    UnsetDefault {
        #[arg(long)]
        environment: String,
        #[arg(long)]
        region: String,
        #[arg(long, value_enum)]
        only: Option<Only>,
    },
    /// Give a group (ring) its own release and/or platform version, overriding the
    /// region defaults.
    SetGroup {
        #[arg(long)]
        environment: String,
        #[arg(long)]
        group: String,
        #[command(flatten)]
        versions: VersionArgs,
    },
    /// Remove a group's override (or one of its two versions).
    UnsetGroup {
        #[arg(long)]
        environment: String,
        #[arg(long)]
        group: String,
        #[arg(long, value_enum)]
        only: Option<Only>,
    },
}

/// What a `set-…` command names: a release, a platform version, or both.
#[derive(clap::Args, Debug)]
#[group(required = true, multiple = true)]
pub struct VersionArgs {
    #[arg(long)]
    release: Option<String>,
    /// A published platform version (see `tenantctl platform list`).
    #[arg(long)]
    platform: Option<String>,
}

impl VersionArgs {
    fn parsed(&self) -> Result<(Option<ReleaseVersion>, Option<PlatformVersion>), Failure> {
        Ok((
            self.release.as_deref().map(ReleaseVersion::parse).transpose()?,
            self.platform.as_deref().map(PlatformVersion::parse).transpose()?,
        ))
    }
}

/// Which of an entry's two versions an `unset-…` removes.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Only {
    Release,
    Platform,
}

impl Only {
    fn as_str(self) -> &'static str {
        match self {
            Only::Release => "release",
            Only::Platform => "platform",
        }
    }
}

/// `(release, platform)`: which versions an unset removes.
fn removes(only: Option<Only>) -> (bool, bool) {
    match only {
        None => (true, true),
        Some(Only::Release) => (true, false),
        Some(Only::Platform) => (false, true),
    }
}

/// What a set says, for the policy's audit trail.
fn describe(key: &str, release: &Option<ReleaseVersion>, platform: &Option<PlatformVersion>) -> String {
    let mut parts = Vec::new();
    if let Some(r) = release {
        parts.push(format!("release {r}"));
    }
    if let Some(p) = platform {
        parts.push(format!("platform {p}"));
    }
    format!("set {key} to {}", parts.join(" and "))
}

/// The policy commands through the API; input is parsed first, so bad input sends nothing.
async fn run_remote(remote: &Remote, command: PolicyCommand) -> Result<(), Failure> {
    let versions_body = |versions: &VersionArgs| -> Result<SetVersions, Failure> {
        let (release, platform) = versions.parsed()?;
        Ok(SetVersions { release, platform })
    };
    let unset_path = |path: String, only: Option<Only>| match only {
        Some(only) => format!("{path}?only={}", only.as_str()),
        None => path,
    };
    let (method, path, body) = match command {
        PolicyCommand::Get => (Method::GET, "/v1/policy".to_owned(), None),
        PolicyCommand::SetDefault {
            environment,
            region,
            versions,
        } => (
            Method::PUT,
            default_path(&Environment::parse(&environment)?, &Region::parse(&region)?),
            Some(versions_body(&versions)?),
        ),
        PolicyCommand::UnsetDefault {
            environment,
            region,
            only,
        } => (
            Method::DELETE,
            unset_path(
                default_path(&Environment::parse(&environment)?, &Region::parse(&region)?),
                only,
            ),
            None,
        ),
        PolicyCommand::SetGroup {
            environment,
            group,
            versions,
        } => (
            Method::PUT,
            group_path(&Environment::parse(&environment)?, &Group::parse(&group)?),
            Some(versions_body(&versions)?),
        ),
        PolicyCommand::UnsetGroup {
            environment,
            group,
            only,
        } => (
            Method::DELETE,
            unset_path(
                group_path(&Environment::parse(&environment)?, &Group::parse(&group)?),
                only,
            ),
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
    // As the API does: a published platform version, and a release with an image
    // where the entry applies (a default: its region; a group override: every region
    // of the fleet).
    let check =
        |release: Option<ReleaseVersion>, region: Option<Region>, platform: Option<PlatformVersion>| {
            let app = &app;
            async move {
                if let Some(p) = platform {
                    app.tenants().check_platform(p).await?;
                }
                match release {
                    Some(r) => app.tenants().check_policy_release(&r, region.as_ref()).await,
                    None => Ok(()),
                }
            }
        };
    let policy = match command {
        PolicyCommand::Get => store.load_policy().await?.0,
        PolicyCommand::SetDefault {
            environment,
            region,
            versions,
        } => {
            let (env, region) = (Environment::parse(&environment)?, Region::parse(&region)?);
            let (release, platform) = versions.parsed()?;
            check(release.clone(), Some(region.clone()), platform).await?;
            let what = describe(&format!("default {env}/{region}"), &release, &platform);
            store
                .update_policy(&actor, &what, &|p| {
                    if let Some(r) = &release {
                        p.set_default(env.clone(), region.clone(), r.clone());
                    }
                    if let Some(v) = platform {
                        p.set_platform_default(env.clone(), region.clone(), v);
                    }
                })
                .await?
                .policy
        }
        PolicyCommand::UnsetDefault {
            environment,
            region,
            only,
        } => {
            let (env, region) = (Environment::parse(&environment)?, Region::parse(&region)?);
            let (release, platform) = removes(only);
            let what = match only {
                Some(one) => format!("remove default {env}/{region} {}", one.as_str()),
                None => format!("remove default {env}/{region}"),
            };
            store
                .update_policy(&actor, &what, &|p| {
                    if release {
                        p.remove_default(&env, &region);
                    }
                    if platform {
                        p.remove_platform_default(&env, &region);
                    }
                })
                .await?
                .policy
        }
        PolicyCommand::SetGroup {
            environment,
            group,
            versions,
        } => {
            let (env, group) = (Environment::parse(&environment)?, Group::parse(&group)?);
            let (release, platform) = versions.parsed()?;
            check(release.clone(), None, platform).await?;
            let what = describe(&format!("group {env}/{group}"), &release, &platform);
            store
                .update_policy(&actor, &what, &|p| {
                    if let Some(r) = &release {
                        p.set_group_override(env.clone(), group.clone(), r.clone());
                    }
                    if let Some(v) = platform {
                        p.set_platform_group_override(env.clone(), group.clone(), v);
                    }
                })
                .await?
                .policy
        }
        PolicyCommand::UnsetGroup {
            environment,
            group,
            only,
        } => {
            let (env, group) = (Environment::parse(&environment)?, Group::parse(&group)?);
            let (release, platform) = removes(only);
            let what = match only {
                Some(one) => format!("remove group {env}/{group} {}", one.as_str()),
                None => format!("remove group {env}/{group}"),
            };
            store
                .update_policy(&actor, &what, &|p| {
                    if release {
                        p.remove_group_override(&env, &group);
                    }
                    if platform {
                        p.remove_platform_group_override(&env, &group);
                    }
                })
                .await?
                .policy
        }
    };
    println!("{}", serde_json::to_string_pretty(&policy)?);
    Ok(())
}
