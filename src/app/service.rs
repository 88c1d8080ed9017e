//! The tenant use cases as one interface. [`LocalTenants`] runs them on the state
//! table; the CLI's `--server` client runs the same calls over the HTTP API. Callers
//! (the `tenant` commands of the CLI) print and wait on the answers without knowing
//! which one they hold.

use async_trait::async_trait;

use super::views::{HistoryPage, TenantPage, TenantView};
use super::{App, Overrides, SpecChange};
use crate::domain::{ReleaseVersion, TenantId, TenantSpec};
use crate::machine::TenantEvent;
use crate::ports::{ListFilter, ListQuery};
use crate::record::Actor;

/// What can be asked about tenants and done to them. Errors keep their type in the
/// chain (a [`super::CommandError`], a [`crate::ports::StoreError`], or the client's
/// own), so a caller can tell not-found from a conflict without reading messages.
#[async_trait]
pub trait TenantService: Send + Sync {
    /// Records a new tenant and starts provisioning it, on `release` or the one the
    /// version policy gives it; `pin` keeps it there, `pin_platform` keeps it on its
    /// platform version.
    async fn create(
        &self,
        spec: TenantSpec,
        release: Option<ReleaseVersion>,
        pin: bool,
        pin_platform: bool,
    ) -> anyhow::Result<TenantView>;
    /// Changes a tenant's spec (at `expected_version`, if given).
    async fn update(
        &self,
        id: &TenantId,
        change: &SpecChange,
        expected_version: Option<u64>,
        overrides: Overrides,
    ) -> anyhow::Result<TenantView>;
    async fn get(&self, id: &TenantId) -> anyhow::Result<TenantView>;
    /// One page of tenants, by region and state name.
    async fn list(&self, query: ListQuery) -> anyhow::Result<TenantPage>;
    /// One page of a tenant's history, oldest first, continued by `next_token`.
    async fn history(
        &self,
        id: &TenantId,
        limit: u32,
        next_token: Option<String>,
    ) -> anyhow::Result<HistoryPage>;
    /// Applies an operator's event (upgrade, retry, rollback, restore, deprovision).
    async fn command(
        &self,
        id: &TenantId,
        event: TenantEvent,
        overrides: Overrides,
    ) -> anyhow::Result<TenantView>;
}

/// The tenant use cases on the state table, acting as `actor`.
pub struct LocalTenants {
    app: App,
    actor: Actor,
}

impl LocalTenants {
    pub fn new(app: App, actor: Actor) -> Self {
        Self { app, actor }
    }
}

#[async_trait]
impl TenantService for LocalTenants {
    async fn create(
        &self,
        spec: TenantSpec,
        release: Option<ReleaseVersion>,
        pin: bool,
        pin_platform: bool,
    ) -> anyhow::Result<TenantView> {
        let record = self
            .app
            .tenants()
            .provision_pinned(spec, release, pin, pin_platform, &self.actor)
            .await?;
        Ok(TenantView::from(&record))
    }

    async fn update(
        &self,
        id: &TenantId,
        change: &SpecChange,
        expected_version: Option<u64>,
        overrides: Overrides,
    ) -> anyhow::Result<TenantView> {
        let record = self
            .app
            .tenants()
            .update_spec(id, change, expected_version, &self.actor, overrides)
            .await?;
        Ok(TenantView::from(&record))
    }

    async fn get(&self, id: &TenantId) -> anyhow::Result<TenantView> {
        let record = self.app.backend().load(id).await?;
        Ok(TenantView::from(&record))
    }

    async fn list(&self, query: ListQuery) -> anyhow::Result<TenantPage> {
        let page = self
            .app
            .backend()
            .list_matching(&query, &ListFilter::default())
            .await?;
        Ok(TenantPage {
            items: page.items.into_iter().map(Into::into).collect(),
            next_token: page.next_token,
        })
    }

    async fn history(
        &self,
        id: &TenantId,
        limit: u32,
        next_token: Option<String>,
    ) -> anyhow::Result<HistoryPage> {
        let backend = self.app.backend();
        if next_token.is_none() {
            // A tenant with no history page yet is told apart from an unknown one.
            backend.load(id).await?;
        }
        let page = backend.history_page(id, next_token.as_deref(), limit).await?;
        Ok(HistoryPage {
            items: page.items.into_iter().map(Into::into).collect(),
            next_token: page.next_token,
        })
    }

    async fn command(
        &self,
        id: &TenantId,
        event: TenantEvent,
        overrides: Overrides,
    ) -> anyhow::Result<TenantView> {
        let record = self
            .app
            .tenants()
            .command_with_hold(id, event, &self.actor, overrides)
            .await?;
        Ok(TenantView::from(&record))
    }
}
