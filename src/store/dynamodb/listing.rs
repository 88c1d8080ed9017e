//! Listing tenants through the `by-region` index: pages with filters, and the fleet
//! summary (counts by region, state, release and platform), read from the index's projected
//! attributes, one query stream per region, never a table scan.
//!
//! A tenant's listing entry is written only while it rests (`item::mutable_attributes`),
//! so a tenant in the middle of steps is listed under the state it rested in before
//! them. The sparse `work` index holds exactly those tenants: a listing reads the
//! region's work shards (keys only) beside its listing page, and takes their state,
//! label and time from their items (one batch read). A listing of a state with steps
//! (`Upgrading`, …) reads them from the work index alone.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::DateTime;

use super::errors::classify;
use super::item::{get_n, get_s, item_key, plain_key, s, Item};
use super::page_token::PageScope;
use super::DynamoStore;
use crate::domain::{Group, Hostname, Region, TenantId};
use crate::machine::TenantState;
use crate::ports::{FleetSummary, FleetTally, ListFilter, ListedTenant, PlatformChoice, TenantReads};
use crate::record::{HistoryEvent, TenantRecord};
use crate::store::{keys, ListQuery, Page, StoreError, TenantStore, TenantSummary};

impl ListFilter {
    /// The filter expression of these conditions, with the names and values it uses;
    /// `None` when nothing is filtered.
    fn expression(&self) -> Option<FilterExpr> {
        let mut filter = FilterExpr::default();
        if let Some(release) = &self.release {
            filter.equals("release", "release", s(release.to_string()));
        }
        if let Some(group) = &self.group {
            filter.equals("group", "group_name", s(group.as_str()));
        }
        match &self.platform {
            Some(PlatformChoice::Version(version)) => {
                filter.equals("platform", "platform", s(version.to_string()))
            }
            Some(PlatformChoice::BuiltIn) => filter.absent("platform", "platform"),
            None => {}
        }
        (!filter.conditions.is_empty()).then_some(filter)
    }
}

/// A filter expression: `AND`ed equality conditions, with their names and values.
#[derive(Default)]
struct FilterExpr {
    conditions: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl FilterExpr {
    /// Adds `#placeholder = :placeholder`, comparing attribute `attr` with `value`.
    fn equals(&mut self, placeholder: &str, attr: &str, value: AttributeValue) {
        self.conditions.push(format!("#{placeholder} = :{placeholder}"));
        self.names.insert(format!("#{placeholder}"), attr.to_owned());
        self.values.insert(format!(":{placeholder}"), value);
    }

    /// Adds `attribute_not_exists(#placeholder)` for attribute `attr`.
    fn absent(&mut self, placeholder: &str, attr: &str) {
        self.conditions
            .push(format!("attribute_not_exists(#{placeholder})"));
        self.names.insert(format!("#{placeholder}"), attr.to_owned());
    }
}

/// How a listing shows the tenants in the middle of steps, whose entries are as
/// they last rested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Steps {
    /// As their items say: the region's work shards and their items are read.
    Followed,
    /// As their entries say, for a reader that loads every record anyway.
    AsListed,
}

/// How a listing shows one region's tenants in the middle of steps, and the set of
/// them once read: the region's pages read the work index once.
struct RegionSteps {
    steps: Steps,
    stepping: Option<HashSet<TenantId>>,
}

/// Up to a page of one region's tenants, each with its index key, and the key to go
/// on from if the region has more.
type RegionPage = (
    Vec<(TenantSummary, HashMap<String, String>)>,
    Option<HashMap<String, String>>,
);

/// Where the next page of a listing starts: a region and a key within it.
#[derive(serde::Serialize, serde::Deserialize)]
struct ListToken {
    region: String,
    key: HashMap<String, String>,
}

impl ListToken {
    /// The token after a full page read up to `region` and its last key. A page that
    /// ended a region exactly continues at the next one.
    fn after(region: &Region, last_key: Option<HashMap<String, String>>) -> Self {
        match last_key {
            Some(key) => ListToken {
                region: region.to_string(),
                key,
            },
            None => ListToken {
                region: format!("{region}\u{1}"),
                key: HashMap::new(),
            },
        }
    }
}

impl DynamoStore {
    /// One page of tenants matching `query` and `filter`, ordered as [`ListQuery`] says;
    /// `steps` says whether the tenants in the middle of steps are shown as their
    /// items say or as their entries do.
    pub(super) async fn list_page(
        &self,
        query: &ListQuery,
        filter: &ListFilter,
        steps: Steps,
    ) -> Result<Page<TenantSummary>, StoreError> {
        let limit = query.limit.unwrap_or(100).clamp(1, 1000) as usize;
        let release = filter.release.as_ref().map(ToString::to_string);
        let platform = filter.platform.as_ref().map(ToString::to_string);
        let scope = PageScope::new("tenants")
            .with(query.region.as_ref().map(Region::as_str))
            .with(query.state.as_deref())
            .with(release.as_deref())
            .with(filter.group.as_ref().map(Group::as_str))
            .with(platform.as_deref());
        let token: Option<ListToken> = match &query.next_token {
            Some(t) => Some(self.open_page("listing tenants", &scope, t).await?),
            None => None,
        };
        let regions = match &query.region {
            Some(r) => vec![r.clone()],
            None => self.regions().await?,
        };
        let (items, rest) = self
            .collect_page(regions, query.state.as_deref(), filter, token, limit, steps)
            .await?;
        let next_token = match rest {
            Some(token) => Some(self.seal_page(&scope, &token).await?),
            None => None,
        };
        Ok(Page { items, next_token })
    }

    /// Walks `regions` in order, from where `resume` says, until `limit` tenants are
    /// found; returns them and where the next page starts if the listing goes on.
    async fn collect_page(
        &self,
        regions: Vec<Region>,
        state: Option<&str>,
        filter: &ListFilter,
        resume: Option<ListToken>,
        limit: usize,
        steps: Steps,
    ) -> Result<(Vec<TenantSummary>, Option<ListToken>), StoreError> {
        // One tenant more than the page is read, so a page that ends the listing
        // exactly says so instead of handing out a token to an empty page.
        let mut items: Vec<(TenantSummary, HashMap<String, String>)> = Vec::new();
        let (mut start_region, mut start_key) = match resume {
            Some(t) => (Some(t.region), Some(t.key)),
            None => (None, None),
        };
        for region in regions {
            if start_region
                .as_ref()
                .is_some_and(|start| region.as_str() < start.as_str())
            {
                continue;
            }
            start_region = None;
            let mut follow = RegionSteps {
                steps,
                stepping: None,
            };
            loop {
                let wanted = limit + 1 - items.len();
                let (found, next_key) = self
                    .list_region_page(&region, state, filter, start_key.take(), wanted, &mut follow)
                    .await?;
                items.extend(found);
                if items.len() > limit {
                    items.truncate(limit);
                    let token =
                        (items.last()).map(|(last, key)| ListToken::after(&last.region, Some(key.clone())));
                    return Ok((items.into_iter().map(|(t, _)| t).collect(), token));
                }
                match next_key {
                    Some(key) => start_key = Some(key),
                    None => break,
                }
            }
        }
        Ok((items.into_iter().map(|(t, _)| t).collect(), None))
    }

    /// Up to `limit` tenants of one region from `start` on (in `state` only, if
    /// given), each with its index key, and the key to go on from if the region has
    /// more.
    async fn list_region_page(
        &self,
        region: &Region,
        state: Option<&str>,
        filter: &ListFilter,
        start: Option<HashMap<String, String>>,
        limit: usize,
        follow: &mut RegionSteps,
    ) -> Result<RegionPage, StoreError> {
        if let Some(stepping) = state.filter(|s| TenantState::STEPPING.contains(s)) {
            return self
                .list_stepping_page(region, stepping, filter, start, limit)
                .await;
        }
        let expression = filter.expression();
        let mut q = self
            .client()
            .query()
            .table_name(self.table())
            .index_name("by-region")
            .set_expression_attribute_values(expression.as_ref().map(|f| f.values.clone()))
            .expression_attribute_values(":pk", s(keys::list_pk(region)))
            .limit(limit as i32)
            .set_exclusive_start_key(start.map(item_key));
        if let Some(expression) = expression {
            q = q
                .filter_expression(expression.conditions.join(" AND "))
                .set_expression_attribute_names(Some(expression.names));
        }
        q = match state {
            Some(state) => q
                .key_condition_expression("list_pk = :pk AND begins_with(list_sk, :state)")
                .expression_attribute_values(":state", s(format!("{state}#"))),
            None => q.key_condition_expression("list_pk = :pk"),
        };
        let out = q
            .send()
            .await
            .map_err(|e| classify("listing tenants", self.table(), e))?;
        let items = out
            .items()
            .iter()
            .map(|item| summary(item, region))
            .collect::<Result<Vec<_>, _>>()?;
        let keys = (out.items().iter()).map(|item| super::item::key_of(item, &super::item::LISTING_KEY));
        let mut rows: Vec<_> = items.into_iter().zip(keys).collect();
        if follow.steps == Steps::Followed && !rows.is_empty() {
            // Read after the region's first page that found tenants, so a tenant whose
            // steps began before it is in the set.
            if follow.stepping.is_none() {
                follow.stepping = Some(self.stepping_in(region).await?);
            }
            let stepping = follow.stepping.as_ref().expect("read just above");
            self.follow_steps(&mut rows, stepping, state, filter).await?;
        }
        Ok((rows, out.last_evaluated_key().map(plain_key)))
    }

    /// The tenants of `region` in the middle of steps: those the sparse `work` index
    /// holds (its shards read keys only, all at once).
    async fn stepping_in(&self, region: &Region) -> Result<HashSet<TenantId>, StoreError> {
        let mut shards = tokio::task::JoinSet::new();
        for shard in 0..keys::WORK_SHARDS {
            let store = self.clone();
            let pk = keys::work_pk(region, shard);
            shards.spawn(async move { store.work_shard(pk).await });
        }
        let mut stepping = HashSet::new();
        while let Some(joined) = shards.join_next().await {
            let ids = joined.map_err(|e| {
                StoreError::fatal("listing tenants", "a read of the work index stopped").with_source(e)
            })??;
            stepping.extend(ids);
        }
        Ok(stepping)
    }

    /// Every tenant in one partition of the `work` index, whenever it is due.
    async fn work_shard(&self, pk: String) -> Result<Vec<TenantId>, StoreError> {
        let query = (self.client().query().table_name(self.table()))
            .index_name("work")
            .key_condition_expression("work_pk = :pk")
            .expression_attribute_values(":pk", s(&pk));
        (self.query_all(query, "listing tenants").await?.iter())
            .map(tenant_of)
            .collect()
    }

    /// A page of the tenants of `region` in `state`, a state with steps: found
    /// through the `work` index, in id order, from their items. `start` holds the
    /// last id handed out.
    async fn list_stepping_page(
        &self,
        region: &Region,
        state: &str,
        filter: &ListFilter,
        start: Option<HashMap<String, String>>,
        limit: usize,
    ) -> Result<RegionPage, StoreError> {
        let after = start.and_then(|mut key| key.remove(AFTER_ID)).unwrap_or_default();
        let mut ids: Vec<TenantId> = (self.stepping_in(region).await?.into_iter())
            .filter(|id| id.as_str() > after.as_str())
            .collect();
        ids.sort();
        let mut rows = Vec::new();
        for chunk in ids.chunks(limit.clamp(1, 100)) {
            for record in self.batch_load(chunk).await? {
                let row = TenantSummary::of(&record);
                if row.state == state && filter.admits(&row) {
                    let key = HashMap::from([(AFTER_ID.to_owned(), row.id.to_string())]);
                    rows.push((row, key));
                }
            }
            if rows.len() >= limit {
                rows.truncate(limit);
                let next = rows.last().map(|(_, key)| key.clone());
                return Ok((rows, next));
            }
        }
        Ok((rows, None))
    }

    /// Rows whose tenant is in the middle of steps (in `stepping`, or listed under
    /// a state with steps by an entry written when it was created) take their state,
    /// label, time and filtered attributes from their items, read in one consistent
    /// batch; those that no longer match `state` or `filter` leave the page. A tenant
    /// gone meanwhile keeps what its entry says.
    async fn follow_steps(
        &self,
        rows: &mut Vec<(TenantSummary, HashMap<String, String>)>,
        stepping: &HashSet<TenantId>,
        state: Option<&str>,
        filter: &ListFilter,
    ) -> Result<(), StoreError> {
        let follow: Vec<TenantId> = (rows.iter())
            .map(|(row, _)| row)
            .filter(|row| stepping.contains(&row.id) || TenantState::STEPPING.contains(&row.state.as_str()))
            .map(|row| row.id.clone())
            .collect();
        if follow.is_empty() {
            return Ok(());
        }
        let mut records: HashMap<TenantId, TenantRecord> = (self.batch_load(&follow).await?)
            .into_iter()
            .map(|r| (r.id().clone(), r))
            .collect();
        rows.retain_mut(|(row, _)| match records.remove(&row.id) {
            Some(record) => {
                *row = TenantSummary::of(&record);
                state.is_none_or(|s| s == row.state) && filter.admits(row)
            }
            None => true,
        });
        Ok(())
    }
}

/// The last id a page of a state with steps handed out, in its page token.
const AFTER_ID: &str = "after";

/// The tenant an item of the `work` or `by-region` index belongs to.
fn tenant_of(item: &Item) -> Result<TenantId, StoreError> {
    let pk = get_s(item, "pk")?;
    TenantId::parse(pk.strip_prefix("TENANT#").unwrap_or(pk)).map_err(|e| {
        StoreError::fatal(
            "listing tenants",
            "an index item names a tenant id that is not valid",
        )
        .with_source(e)
    })
}

fn summary(item: &Item, region: &Region) -> Result<TenantSummary, StoreError> {
    Ok(TenantSummary {
        id: tenant_of(item)?,
        region: region.clone(),
        state: get_s(item, "state_name")?.to_owned(),
        label: get_s(item, "state_label")?.to_owned(),
        release: item.get("release").and_then(|v| v.as_s().ok()).cloned(),
        platform: item.get("platform").and_then(|v| v.as_s().ok()).cloned(),
        group: get_s(item, "group_name")?.to_owned(),
        updated_at: DateTime::from_timestamp_millis(get_n(item, "updated_at")?).unwrap_or_default(),
    })
}

#[async_trait::async_trait]
impl TenantReads for DynamoStore {
    /// One page of tenants matching `query` and `filter`, ordered as [`ListQuery`] says.
    async fn list_matching(
        &self,
        query: &ListQuery,
        filter: &ListFilter,
    ) -> Result<Page<TenantSummary>, StoreError> {
        self.list_page(query, filter, Steps::Followed).await
    }

    /// One page of a tenant's history for a client: the position is kept in a sealed
    /// page token bound to the tenant.
    async fn history_page(
        &self,
        id: &TenantId,
        next_token: Option<&str>,
        limit: u32,
    ) -> Result<Page<HistoryEvent>, StoreError> {
        let scope = PageScope::new("history").with(Some(id.as_str()));
        let after: u64 = match next_token {
            Some(t) => self.open_page("reading history", &scope, t).await?,
            None => 0,
        };
        let page = self.history(id, after, limit).await?;
        let next_token = match page.items.last() {
            Some(last) if page.next_token.is_some() => Some(self.seal_page(&scope, &last.seq).await?),
            _ => None,
        };
        Ok(Page {
            items: page.items,
            next_token,
        })
    }

    /// Counts every tenant by region and state and by release. A tenant in the
    /// middle of steps is counted as its item says, not as its entry does (one that
    /// begins its steps while the region is read counts in the state it left).
    async fn fleet_summary(&self) -> Result<FleetSummary, StoreError> {
        let mut tally = FleetTally::default();
        for region in self.regions().await? {
            let stepping = self.stepping_in(&region).await?;
            let mut follow = Vec::new();
            let mut start: Option<HashMap<String, AttributeValue>> = None;
            loop {
                let out = self
                    .client()
                    .query()
                    .table_name(self.table())
                    .index_name("by-region")
                    .key_condition_expression("list_pk = :pk")
                    .expression_attribute_values(":pk", s(keys::list_pk(&region)))
                    .projection_expression("pk, state_name, #release, group_name, #platform")
                    .expression_attribute_names("#release", "release")
                    .expression_attribute_names("#platform", "platform")
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| classify("summarising the fleet", self.table(), e))?;
                for item in out.items() {
                    let id = tenant_of(item)?;
                    let state = get_s(item, "state_name")?;
                    if stepping.contains(&id) || TenantState::STEPPING.contains(&state) {
                        follow.push(id);
                        continue;
                    }
                    let text = |name| item.get(name).and_then(|v: &AttributeValue| v.as_s().ok());
                    tally.add(ListedTenant {
                        region: &region,
                        state,
                        group: get_s(item, "group_name")?,
                        release: text("release").map(String::as_str),
                        // Items written before the index projected the platform have
                        // none: they run the built-in one.
                        platform: text("platform").map(String::as_str),
                    });
                }
                match out.last_evaluated_key() {
                    Some(key) => start = Some(key.clone()),
                    None => break,
                }
            }
            for record in self.batch_load(&follow).await? {
                let row = TenantSummary::of(&record);
                tally.add(ListedTenant {
                    region: &region,
                    state: &row.state,
                    group: &row.group,
                    release: row.release.as_deref(),
                    platform: row.platform.as_deref(),
                });
            }
        }
        Ok(tally.finish())
    }

    async fn in_flight(&self, limit: usize) -> Result<Vec<TenantSummary>, StoreError> {
        let mut found = Vec::new();
        for region in self.regions().await? {
            let mut ids: Vec<TenantId> = self.stepping_in(&region).await?.into_iter().collect();
            ids.sort();
            ids.truncate(limit.saturating_sub(found.len()));
            found.extend(self.batch_load(&ids).await?.iter().map(TenantSummary::of));
            if found.len() >= limit {
                break;
            }
        }
        Ok(found)
    }

    async fn hostname_owner(&self, hostname: &Hostname) -> Result<Option<TenantId>, StoreError> {
        match self.claim_owner(hostname).await? {
            Some(owner) => TenantId::parse(&owner).map(Some).map_err(|e| {
                StoreError::fatal(
                    "reading a hostname claim",
                    "a hostname claim names a tenant id that is not valid",
                )
                .with_source(e)
            }),
            None => Ok(None),
        }
    }
    /// Whether the table answers: one `DescribeTable`, tried once and bounded by
    /// `within`, so a readiness probe reports an outage instead of riding it out
    /// in the client's retries.
    async fn ping(&self, within: Duration) -> Result<(), StoreError> {
        let once = aws_sdk_dynamodb::config::Builder::default()
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_timeout(within)
                    .build(),
            );
        self.client()
            .describe_table()
            .table_name(self.table())
            .customize()
            .config_override(once)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("reaching the state table", self.table(), e))
    }
}
