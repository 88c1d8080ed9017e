//! `tenantctl --server URL tenant …`: the tenant use cases through the HTTP API, as a
//! second [`TenantService`]. Requests are the API's typed bodies and answers decode
//! into the same views the table gives, so printing and waiting are shared.

use async_trait::async_trait;

use reqwest::Method;
use tenant_orchestrator::api::views::{CreateTenant, Restore, UpdateTenant, Upgrade};
use tenant_orchestrator::app::views::{HistoryPage, TenantPage, TenantView};
use tenant_orchestrator::app::{Overrides, RolloutHold, SpecChange, TenantService};
use tenant_orchestrator::domain::{ReleaseVersion, SnapshotName, TenantId, TenantSpec};
use tenant_orchestrator::machine::TenantEvent;
use tenant_orchestrator::ports::ListQuery;

use crate::cli::remote::{encode, Remote};

/// The tenant use cases of a `tenantctl serve` API.
pub struct RemoteTenants {
    remote: Remote,
}

impl RemoteTenants {
    pub fn new(remote: Remote) -> Self {
        Self { remote }
    }
}

fn path(id: &TenantId, rest: &str) -> String {
    format!("/v1/tenants/{}{rest}", encode(id.as_str()))
}

/// The path of a tenant command, with the admin overrides of a rollout's hold and of
/// the freezes in force if asked.
fn command_path(id: &TenantId, verb: &str, overrides: &Overrides) -> String {
    let mut params = Vec::new();
    if overrides.hold == RolloutHold::Override {
        params.push("override_rollout_hold=true".to_owned());
    }
    if let Some(reason) = &overrides.freeze {
        params.push(format!("override_freeze={}", encode(reason)));
    }
    match params.is_empty() {
        true => path(id, verb),
        false => format!("{}?{}", path(id, verb), params.join("&")),
    }
}

#[async_trait]
impl TenantService for RemoteTenants {
    async fn create(
        &self,
        spec: TenantSpec,
        release: Option<ReleaseVersion>,
        pin: bool,
        pin_platform: bool,
    ) -> anyhow::Result<TenantView> {
        let body = CreateTenant {
            id: spec.id,
            region: spec.region,
            environment: spec.environment,
            group: spec.group,
            tier: spec.tier,
            hostnames: spec.hostnames,
            release,
            pin,
            maintenance: spec.maintenance,
            platform: spec.platform,
            pin_platform,
        };
        Ok(self.remote.post("/v1/tenants", Some(&body)).await?)
    }

    async fn update(
        &self,
        id: &TenantId,
        change: &SpecChange,
        expected_version: Option<u64>,
        overrides: Overrides,
    ) -> anyhow::Result<TenantView> {
        let body = UpdateTenant::of(change, expected_version);
        let path = command_path(id, "", &overrides);
        Ok(self.remote.call(Method::PATCH, &path, Some(&body)).await?)
    }

    async fn get(&self, id: &TenantId) -> anyhow::Result<TenantView> {
        Ok(self.remote.get(&path(id, "")).await?)
    }

    async fn list(&self, query: ListQuery) -> anyhow::Result<TenantPage> {
        let mut params = vec![format!("limit={}", query.limit.unwrap_or(100))];
        if let Some(r) = &query.region {
            params.push(format!("region={}", encode(r.as_str())));
        }
        if let Some(s) = &query.state {
            params.push(format!("state={}", encode(s)));
        }
        if let Some(t) = &query.next_token {
            params.push(format!("next_token={}", encode(t)));
        }
        Ok(self
            .remote
            .get(&format!("/v1/tenants?{}", params.join("&")))
            .await?)
    }

    async fn history(
        &self,
        id: &TenantId,
        limit: u32,
        next_token: Option<String>,
    ) -> anyhow::Result<HistoryPage> {
        let mut p = format!("{}?limit={}", path(id, "/history"), limit.clamp(1, 1000));
        if let Some(t) = &next_token {
            p.push_str(&format!("&next_token={}", encode(t)));
        }
        Ok(self.remote.get(&p).await?)
    }

    async fn command(
        &self,
        id: &TenantId,
        event: TenantEvent,
        overrides: Overrides,
    ) -> anyhow::Result<TenantView> {
        let post = |verb: &str| command_path(id, verb, &overrides);
        let view = match event {
            TenantEvent::Upgrade { release } => {
                self.remote
                    .post(&post("/upgrade"), Some(&Upgrade { release }))
                    .await?
            }
            TenantEvent::Reconcile => self.remote.post(&post("/reconcile"), None::<&()>).await?,
            TenantEvent::Retry => self.remote.post(&post("/retry"), None::<&()>).await?,
            TenantEvent::Rollback => self.remote.post(&post("/rollback"), None::<&()>).await?,
            TenantEvent::Restore { snapshot } => {
                let body = Restore {
                    snapshot: SnapshotName::parse(&snapshot)?,
                    external: overrides.external_snapshot,
                };
                self.remote.post(&post("/restore"), Some(&body)).await?
            }
            TenantEvent::Deprovision => self.remote.post(&post("/deprovision"), None::<&()>).await?,
            other => anyhow::bail!(
                "{} is not an operator command; use upgrade, reconcile, retry, rollback, restore or deprovision",
                other.name()
            ),
        };
        Ok(view)
    }
}
