//! [`RolloutStore`] on the tenants' table. A rollout is `ROLLOUT#<id>`/`ROLLOUT`,
//! its members `ROLLOUT#<id>`/`WAVE#<wave>#<tenant>`; rollouts are listed through the
//! `by-region` index under `ROLLOUTS`.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, Put, PutRequest, ReturnConsumedCapacity, TransactWriteItem, Update,
    WriteRequest,
};
use chrono::{DateTime, Utc};

use super::errors::{classify, conflict_as, transaction_conflict_as};
use super::item;
use super::item::{
    corrupt, corrupt_by, get_n, get_s, item_key, json, millis, n, opt_n, opt_s, s, time_from_millis, to_json,
    Item,
};
use super::outbox::outbox_put;
use super::page_token::PageScope;
use super::rollout_lease::{copy_expiry, decode_lease, lease_item, Renew};
use super::{ttl_after, DynamoStore, UpdateExpr};
use crate::domain::rollout::Skipped;
use crate::domain::{RolloutId, TenantId};
use crate::ports::{Details, PageRequest, RolloutStore, RolloutSummary, TenantDrive};
use crate::record::{
    BakeCheck, CloudEvent, Lease, Phase, RolloutMember, RolloutRecord, TenantRecord, WaveStatus,
};
use crate::store::{keys, Conflict, Entity, Page, StoreError, WriteGuard};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;

const BATCH: usize = 25;
/// How many `BatchWriteItem`s one bulk write keeps in flight at once.
const BATCH_WRITES_AT_ONCE: usize = 4;

pub(super) fn rollout_key(id: &RolloutId) -> Item {
    item::key(keys::rollout_pk(id), keys::ROLLOUT_SK)
}

/// The attributes a rollout save rewrites.
fn rollout_attributes(r: &RolloutRecord) -> Vec<(&'static str, AttributeValue)> {
    // A record read with its skipped tenants put back keeps them apart when saved.
    let blob = match (r.skipped_apart, r.skipped.is_empty()) {
        (Some(_), false) => to_json(&RolloutRecord {
            skipped: Vec::new(),
            ..r.clone()
        }),
        _ => to_json(r),
    };
    let mut attributes = vec![
        ("rollout", blob),
        ("state_name", s(r.phase.as_str())),
        (
            "release",
            s(r.spec.release.as_ref().map_or(String::new(), |v| v.to_string())),
        ),
        ("target", s(r.target())),
        ("updated_at", millis(r.updated_at)),
        ("list_pk", s(keys::ROLLOUTS_LIST_PK)),
        (
            "list_sk",
            s(keys::rollout_list_sk(r.phase.is_finished(), r.created_at, &r.id)),
        ),
    ];
    if let Some(count) = r.skipped_apart {
        attributes.push(("skipped_apart", n(count)));
    }
    attributes
}

pub(super) fn decode_rollout(item: &Item) -> Result<RolloutRecord, StoreError> {
    let mut record: RolloutRecord = json(item, "rollout")?;
    record.version = get_n(item, "version")? as u64;
    record.lease = decode_lease(item)?;
    record.skipped_apart = opt_n(item, "skipped_apart")?.map(|n| n as usize);
    Ok(record)
}

fn skipped_item(id: &RolloutId, skipped: &Skipped) -> Item {
    HashMap::from([
        ("pk".to_owned(), s(keys::rollout_pk(id))),
        ("sk".to_owned(), s(keys::skipped_sk(&skipped.id))),
        ("skipped".to_owned(), to_json(skipped)),
    ])
}

fn member_item(id: &RolloutId, m: &RolloutMember, version: u64) -> Item {
    HashMap::from([
        ("pk".to_owned(), s(keys::rollout_pk(id))),
        ("sk".to_owned(), s(keys::member_sk(m.wave, &m.tenant))),
        ("member".to_owned(), to_json(m)),
        ("outcome".to_owned(), s(m.outcome.name())),
        ("version".to_owned(), n(version)),
    ])
}

pub(super) fn decode_member(item: &Item) -> Result<RolloutMember, StoreError> {
    let mut m: RolloutMember = json(item, "member")?;
    m.version = get_n(item, "version")? as u64;
    Ok(m)
}

/// The member write of a drive or a save: conditional on the version read.
pub(super) fn member_update(table: &str, id: &RolloutId, m: &RolloutMember) -> Update {
    Update::builder()
        .table_name(table)
        .key("pk", s(keys::rollout_pk(id)))
        .key("sk", s(keys::member_sk(m.wave, &m.tenant)))
        .update_expression("SET #member = :member, #outcome = :outcome, #version = :next")
        .condition_expression("#version = :expected")
        .expression_attribute_names("#member", "member")
        .expression_attribute_names("#outcome", "outcome")
        .expression_attribute_names("#version", "version")
        .expression_attribute_values(":member", to_json(m))
        .expression_attribute_values(":outcome", s(m.outcome.name()))
        .expression_attribute_values(":next", n(m.version + 1))
        .expression_attribute_values(":expected", n(m.version))
        .build()
        .expect("table, key, expression set")
}

impl DynamoStore {
    /// The consistent query of the items of rollout `id` whose sort keys start with
    /// `prefix`.
    fn rollout_items(&self, id: &RolloutId, prefix: &str) -> QueryFluentBuilder {
        self.client()
            .query()
            .table_name(self.table())
            .consistent_read(true)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(keys::rollout_pk(id)))
            .expression_attribute_values(":prefix", s(prefix))
    }

    /// One page of the items of rollout `id` whose sort keys start with `prefix`, in
    /// sort key order, decoded; `listing` names the page tokens' scope.
    async fn rollout_page<T>(
        &self,
        id: &RolloutId,
        prefix: &str,
        listing: &'static str,
        page: PageRequest,
        decode: impl Fn(&Item) -> Result<T, StoreError>,
    ) -> Result<Page<T>, StoreError> {
        let context = format!("listing {listing} of rollout {id}");
        let scope = PageScope::new(listing).with(Some(id.as_str())).with(Some(prefix));
        let limit = page.limit.clamp(1, 1000) as usize;
        let mut query = (self.rollout_items(id, prefix)).limit(limit as i32 + 1);
        if let Some(token) = page.next_token {
            let key: HashMap<String, String> = self.open_page(&context, &scope, &token).await?;
            query = query.set_exclusive_start_key(Some(item_key(key)));
        }
        let out = (query.send())
            .await
            .map_err(|e| classify(&context, self.table(), e))?;
        let (found, next) = super::item::page_of(
            out.items(),
            out.last_evaluated_key(),
            limit,
            &super::item::TABLE_KEY,
        );
        let items = found.iter().map(decode).collect::<Result<_, _>>()?;
        let next_token = match next {
            Some(key) => Some(self.seal_page(&scope, &key).await?),
            None => None,
        };
        Ok(Page { items, next_token })
    }

    /// Puts `items` (new or rewritten whole, so repeating it is harmless) 25 to a
    /// `BatchWriteItem`, trying what DynamoDB leaves unprocessed again with backoff.
    async fn batch_put(&self, items: Vec<Item>, context: &str) -> Result<(), StoreError> {
        let requests = items.into_iter().map(|item| {
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .expect("item set");
            WriteRequest::builder().put_request(put).build()
        });
        self.batch_write(requests.collect(), context).await
    }

    /// Deletes the items of `keys` (deleting one that is gone is harmless), as
    /// [`Self::batch_put`] writes.
    async fn batch_delete(&self, keys: Vec<Item>, context: &str) -> Result<(), StoreError> {
        let requests = keys.into_iter().map(|key| {
            let delete = DeleteRequest::builder()
                .set_key(Some(key))
                .build()
                .expect("key set");
            WriteRequest::builder().delete_request(delete).build()
        });
        self.batch_write(requests.collect(), context).await
    }

    /// Sends `requests` 25 to a `BatchWriteItem`, up to [`BATCH_WRITES_AT_ONCE`] at
    /// once, trying what DynamoDB leaves unprocessed again with backoff. A rollout's
    /// start writes a member per tenant: one after the other, 100,000 members were
    /// 4,000 round trips before the start call could answer.
    async fn batch_write(&self, requests: Vec<WriteRequest>, context: &str) -> Result<(), StoreError> {
        let mut all = requests.into_iter().peekable();
        let mut writing = tokio::task::JoinSet::new();
        while all.peek().is_some() || !writing.is_empty() {
            while writing.len() < BATCH_WRITES_AT_ONCE && all.peek().is_some() {
                let requests: Vec<WriteRequest> = all.by_ref().take(BATCH).collect();
                let (store, context) = (self.clone(), context.to_owned());
                writing.spawn(async move { store.batch_write_one(requests, &context).await });
            }
            if let Some(done) = writing.join_next().await {
                // An error drops the set, which stops the writes still in flight.
                done.map_err(|e| {
                    StoreError::fatal(
                        context,
                        format!("a batch write task failed ({e}); what it wrote stays, try again"),
                    )
                })??;
            }
        }
        Ok(())
    }

    /// One `BatchWriteItem` of at most 25 `requests`, and its unprocessed items again.
    async fn batch_write_one(
        &self,
        mut requests: Vec<WriteRequest>,
        context: &str,
    ) -> Result<(), StoreError> {
        let mut attempt = 0u32;
        while !requests.is_empty() {
            let out = self
                .client()
                .batch_write_item()
                .request_items(self.table(), requests)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| classify(context, self.table(), e))?;
            self.count(out.consumed_capacity());
            requests = out
                .unprocessed_items
                .and_then(|mut u| u.remove(self.table()))
                .unwrap_or_default();
            attempt += 1;
            if !requests.is_empty() {
                if attempt > 8 {
                    return Err(StoreError::retryable(
                        context,
                        format!("{} items left unprocessed after {attempt} tries", requests.len()),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(50 << attempt.min(6))).await;
            }
        }
        Ok(())
    }

    /// Moves the bake checks of the waves that succeeded out of `record` into items of
    /// their own (`sk BAKE#<wave>`), so the rollout item, which every save of its
    /// controller rewrites, keeps the evidence of the bake in progress only, and
    /// cannot outgrow DynamoDB's item limit however many waves the plan has. The evidence is written first: a save
    /// that fails afterwards leaves it in the record too, and the next save writes the
    /// same item again. [`RolloutStore::with_details`] puts it back for readers.
    async fn set_bake_evidence_apart(&self, record: &mut RolloutRecord) -> Result<(), StoreError> {
        for wave in &mut record.waves {
            let Some(bake) = wave.bake.as_mut() else {
                continue;
            };
            if wave.status != WaveStatus::Succeeded || bake.checks.is_empty() {
                continue;
            }
            let mut item = item::key(keys::rollout_pk(&record.id), keys::bake_evidence_sk(wave.index));
            item.insert("checks".into(), to_json(&bake.checks));
            self.client()
                .put_item()
                .table_name(self.table())
                .set_item(Some(item))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map(|out| self.count(out.consumed_capacity()))
                .map_err(|e| classify("keeping a finished wave's bake evidence", self.table(), e))?;
            bake.checks.clear();
        }
        Ok(())
    }
}

#[async_trait]
impl RolloutStore for DynamoStore {
    async fn with_details(
        &self,
        mut record: RolloutRecord,
        details: Details,
    ) -> Result<RolloutRecord, StoreError> {
        let skipped_apart =
            details == Details::Everything && record.skipped_apart.is_some() && record.skipped.is_empty();
        let bakes = self.query_all(
            self.rollout_items(&record.id, keys::BAKE_EVIDENCE_SK_PREFIX),
            "reading bake evidence",
        );
        let skipped = async {
            match skipped_apart {
                true => {
                    let query = self.rollout_items(&record.id, keys::SKIPPED_SK_PREFIX);
                    self.query_all(query, "reading skipped tenants").await
                }
                false => Ok(Vec::new()),
            }
        };
        let (bakes, skipped) = tokio::try_join!(bakes, skipped)?;
        for item in &skipped {
            record.skipped.push(json(item, "skipped")?);
        }
        for item in bakes {
            let sk = get_s(&item, "sk")?;
            let index: usize = (sk.strip_prefix(keys::BAKE_EVIDENCE_SK_PREFIX))
                .and_then(|i| i.parse().ok())
                .ok_or_else(|| corrupt("sk", sk))?;
            let checks: Vec<BakeCheck> = json(&item, "checks")?;
            if let Some(bake) = (record.waves.get_mut(index)).and_then(|w| w.bake.as_mut()) {
                if bake.checks.is_empty() {
                    bake.checks = checks;
                }
            }
        }
        Ok(record)
    }

    async fn create_rollout(
        &self,
        record: &RolloutRecord,
        owner: &str,
        ttl: Duration,
    ) -> Result<RolloutRecord, StoreError> {
        let mut stored = record.clone();
        // The skipped tenants go to items of their own (below): tens of thousands of
        // them would not fit in the rollout item.
        let skipped = std::mem::take(&mut stored.skipped);
        stored.skipped_apart = Some(skipped.len());
        stored.version = 1;
        stored.lease = Some(Lease {
            owner: owner.to_owned(),
            expires_at: ttl_after(Utc::now(), ttl),
            fence: 1,
        });
        let lease = stored.lease.as_ref().expect("just set");
        let mut item: Item = rollout_attributes(&stored)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        item.extend(rollout_key(&stored.id));
        item.insert("version".into(), n(1));
        item.insert("created_at".into(), millis(stored.created_at));
        item.insert("lease_owner".into(), s(&lease.owner));
        item.insert("lease_expires".into(), millis(copy_expiry(lease.expires_at)));
        item.insert("lease_fence".into(), n(1));
        item.insert("last_fence".into(), n(1));
        item.insert("skipped_apart".into(), n(skipped.len()));
        let new = |item: Item| {
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(self.table())
                        .set_item(Some(item))
                        .condition_expression("attribute_not_exists(pk)")
                        .build()
                        .expect("table, item set"),
                )
                .build()
        };
        let items = vec![new(item), new(lease_item(&stored.id, lease))];
        let exists = || {
            let id = &stored.id;
            format!(
                "rollout {id} already exists; see it with `tenantctl rollout status {id}` (GET /v1/rollouts/{id}) \
                 or start with another id (--id, `id` in the API)"
            )
        };
        let out = (self.send_transaction(items).await).map_err(|err| {
            transaction_conflict_as("creating rollout", self.table(), err, Conflict::Version, exists)
        })?;
        self.count(out.consumed_capacity());
        Ok(stored)
    }

    async fn put_skipped(&self, id: &RolloutId, skipped: &[Skipped]) -> Result<(), StoreError> {
        let items = skipped.iter().map(|k| skipped_item(id, k)).collect();
        self.batch_put(items, "writing skipped tenants").await
    }

    async fn put_members(&self, id: &RolloutId, members: &[RolloutMember]) -> Result<(), StoreError> {
        let items = members.iter().map(|m| member_item(id, m, 1)).collect();
        self.batch_put(items, "writing rollout members").await
    }

    async fn clear_start(&self, id: &RolloutId) -> Result<(), StoreError> {
        let prefixes = [keys::MEMBER_SK_PREFIX, keys::SKIPPED_SK_PREFIX];
        for prefix in prefixes {
            let query = self.rollout_items(id, prefix).projection_expression("pk, sk");
            let found = self
                .query_all(query, "reading an interrupted start's items")
                .await?;
            let keys = (found.iter())
                .map(|item| Ok(item::key(get_s(item, "pk")?, get_s(item, "sk")?)))
                .collect::<Result<_, StoreError>>()?;
            self.batch_delete(keys, "removing an interrupted start's items")
                .await?;
        }
        Ok(())
    }

    async fn load_rollout(&self, id: &RolloutId) -> Result<RolloutRecord, StoreError> {
        match self.read_item(rollout_key(id), "loading rollout").await? {
            Some(item) => decode_rollout(&item),
            None => Err(StoreError::NotFound {
                entity: Entity::Rollout,
                what: format!("rollout {id}"),
            }),
        }
    }

    async fn save_rollout(
        &self,
        record: &RolloutRecord,
        guard: WriteGuard<'_>,
    ) -> Result<RolloutRecord, StoreError> {
        let now = Utc::now();
        let mut next = record.clone();
        next.version += 1;
        next.updated_at = now;
        self.set_bake_evidence_apart(&mut next).await?;
        let mut update = UpdateExpr::default();
        for (attr, value) in rollout_attributes(&next) {
            update.set(attr, value);
        }
        update.set("version", n(next.version));
        update.value(":expected_version", n(record.version));
        let mut condition = "#version = :expected_version".to_owned();
        if let WriteGuard::Lease(lease) = guard {
            // Fenced on the copy, which changes only when the lease changes hands: a
            // controller that lost the lease has lost its fence too.
            update
                .name("lease_owner")
                .name("lease_fence")
                .value(":guard_owner", s(&lease.owner))
                .value(":guard_fence", n(lease.fence));
            condition.push_str(" AND #lease_owner = :guard_owner AND #lease_fence = :guard_fence");
            if let Some(kept) = &next.lease {
                update.set("lease_expires", millis(copy_expiry(kept.expires_at)));
            }
        }
        let changed = || {
            format!(
                "rollout {} changed since version {} was read (or its controller lease was lost); reload and try again",
                record.id, record.version
            )
        };
        // A phase change, and a wave starting to wait for an approval, are reported by
        // outbox events written with it.
        let stored = self.read_item(rollout_key(&record.id), "saving rollout").await?;
        let old = stored
            .as_ref()
            .map(decode_rollout)
            .transpose()?
            .filter(|old| old.version == record.version);
        let mut events = Vec::new();
        if let Some(old) = &old {
            if old.phase != next.phase {
                events.push(CloudEvent::rollout_phase(old.phase, &next, now));
            }
            for wave in &next.waves {
                let was_waiting = old
                    .waves
                    .get(wave.index)
                    .is_some_and(|w| w.status == WaveStatus::AwaitingApproval);
                if wave.status == WaveStatus::AwaitingApproval && !was_waiting {
                    events.push(CloudEvent::rollout_approval_requested(&next, wave, now));
                }
            }
        }
        if !events.is_empty() {
            let mut items = vec![self.tenant_update(rollout_key(&record.id), update, condition)];
            items.extend(events.iter().map(|event| outbox_put(self.table(), event)));
            return match self.send_transaction(items).await {
                Ok(out) => {
                    self.count(out.consumed_capacity());
                    Ok(next)
                }
                Err(err) => Err(match err.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(_)) => StoreError::Conflict {
                        what: "saving rollout".into(),
                        detail: changed(),
                        kind: Conflict::Version,
                    },
                    _ => classify("saving rollout", self.table(), err),
                }),
            };
        }
        self.conditional_update(rollout_key(&record.id), update, condition)
            .send()
            .await
            .map(|out| self.count(out.consumed_capacity()))
            .map_err(|e| {
                conflict_as(
                    classify("saving rollout", self.table(), e),
                    Conflict::Version,
                    changed,
                )
            })?;
        Ok(next)
    }

    async fn list_rollouts(
        &self,
        running_only: bool,
        limit: u32,
        next_token: Option<String>,
    ) -> Result<Page<RolloutSummary>, StoreError> {
        let mut query = self
            .client()
            .query()
            .table_name(self.table())
            .index_name("by-region")
            .scan_index_forward(false)
            .limit(limit.clamp(1, 1000) as i32 + 1)
            .expression_attribute_values(":pk", s(keys::ROLLOUTS_LIST_PK));
        query = if running_only {
            query
                .key_condition_expression("list_pk = :pk AND begins_with(list_sk, :live)")
                .expression_attribute_values(":live", s("LIVE#"))
        } else {
            query.key_condition_expression("list_pk = :pk")
        };
        let scope = PageScope::new("rollouts").with(running_only.then_some("running"));
        if let Some(token) = next_token {
            let key: HashMap<String, String> = self.open_page("listing rollouts", &scope, &token).await?;
            query = query.set_exclusive_start_key(Some(item_key(key)));
        }
        let out = query
            .send()
            .await
            .map_err(|e| classify("listing rollouts", self.table(), e))?;
        let (found, next) = super::item::page_of(
            out.items(),
            out.last_evaluated_key(),
            limit.clamp(1, 1000) as usize,
            &super::item::LISTING_KEY,
        );
        let mut items = Vec::new();
        for item in found {
            let list_sk = get_s(item, "list_sk")?;
            let mut parts = list_sk.splitn(3, '#');
            let (_, created, id) = (parts.next(), parts.next(), parts.next());
            let id = id.ok_or_else(|| corrupt("list_sk", list_sk))?;
            let created = created
                .and_then(|c| c.parse::<i64>().ok())
                .ok_or_else(|| corrupt("list_sk", list_sk))?;
            let phase = get_s(item, "state_name")?;
            items.push(RolloutSummary {
                id: RolloutId::parse(id).map_err(|e| corrupt_by("list_sk", e))?,
                phase: Phase::parse(phase).ok_or_else(|| corrupt("state_name", phase))?,
                release: match get_s(item, "release")? {
                    "" => None,
                    v => Some(crate::domain::ReleaseVersion::parse(v).map_err(|e| corrupt_by("release", e))?),
                },
                target: match opt_s(item, "target") {
                    Some(target) => target,
                    None => get_s(item, "release")?.to_owned(),
                },
                created_at: time_from_millis("list_sk", created)?,
                updated_at: time_from_millis("updated_at", get_n(item, "updated_at")?)?,
            });
        }
        let next_token = match next {
            Some(key) => Some(self.seal_page(&scope, &key).await?),
            None => None,
        };
        Ok(Page { items, next_token })
    }

    async fn acquire_rollout_lease(
        &self,
        id: &RolloutId,
        owner: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<RolloutRecord, StoreError> {
        self.acquire_lease_item(id, owner, ttl, now, Renew::Always).await
    }

    async fn hold_rollout_lease(
        &self,
        id: &RolloutId,
        owner: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<RolloutRecord, StoreError> {
        self.acquire_lease_item(id, owner, ttl, now, Renew::BelowHalf)
            .await
    }

    async fn release_rollout_lease(&self, id: &RolloutId, lease: &Lease) -> Result<(), StoreError> {
        self.release_lease_item(id, lease).await
    }

    async fn members(&self, id: &RolloutId, wave: Option<usize>) -> Result<Vec<RolloutMember>, StoreError> {
        let prefix = wave.map_or_else(|| keys::MEMBER_SK_PREFIX.to_owned(), keys::member_prefix);
        let query = self.rollout_items(id, &prefix);
        (self.query_all(query, "loading rollout members").await?.iter())
            .map(decode_member)
            .collect()
    }

    async fn members_page(
        &self,
        id: &RolloutId,
        wave: Option<usize>,
        page: PageRequest,
    ) -> Result<Page<RolloutMember>, StoreError> {
        let prefix = wave.map_or_else(|| keys::MEMBER_SK_PREFIX.to_owned(), keys::member_prefix);
        self.rollout_page(id, &prefix, "members", page, decode_member)
            .await
    }

    async fn members_sample(
        &self,
        id: &RolloutId,
        wave: usize,
        named: &[TenantId],
        first: u32,
    ) -> Result<Vec<RolloutMember>, StoreError> {
        let context = format!("sampling wave {wave} of rollout {id}");
        let query = (self.rollout_items(id, &keys::member_prefix(wave))).limit(first.clamp(1, 1000) as i32);
        let out = (query.send())
            .await
            .map_err(|e| classify(&context, self.table(), e))?;
        let mut members = (out.items().iter())
            .map(decode_member)
            .collect::<Result<Vec<_>, _>>()?;
        // Each key once: `BatchGetItem` refuses a request that names one twice.
        let missing: std::collections::BTreeSet<&TenantId> = (named.iter())
            .filter(|t| !members.iter().any(|m| &m.tenant == *t))
            .collect();
        let missing: Vec<Item> = (missing.into_iter())
            .map(|t| item::key(keys::rollout_pk(id), keys::member_sk(wave, t)))
            .collect();
        if !missing.is_empty() {
            for found in self.batch_get(missing, &context).await? {
                members.push(decode_member(&found)?);
            }
        }
        Ok(members)
    }

    async fn skipped_page(
        &self,
        record: &RolloutRecord,
        page: PageRequest,
    ) -> Result<Page<Skipped>, StoreError> {
        if record.skipped_apart.is_none() {
            // Kept inline, from before: it fitted in the rollout's item, so one page.
            return Ok(Page {
                items: record.skipped.clone(),
                next_token: None,
            });
        }
        let decode = |item: &Item| json(item, "skipped");
        self.rollout_page(&record.id, keys::SKIPPED_SK_PREFIX, "skipped", page, decode)
            .await
    }

    async fn save_member(&self, id: &RolloutId, member: &RolloutMember) -> Result<RolloutMember, StoreError> {
        let update = member_update(self.table(), id, member);
        self.client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(update.key))
            .update_expression(update.update_expression)
            .set_condition_expression(update.condition_expression)
            .set_expression_attribute_names(update.expression_attribute_names)
            .set_expression_attribute_values(update.expression_attribute_values)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map(|out| self.count(out.consumed_capacity()))
            .map_err(|e| {
                conflict_as(
                    classify("saving rollout member", self.table(), e),
                    Conflict::Version,
                    || {
                        format!(
                            "member {} of rollout {id} changed since it was read",
                            member.tenant
                        )
                    },
                )
            })?;
        let mut saved = member.clone();
        saved.version += 1;
        Ok(saved)
    }

    async fn drive_tenant(&self, drive: TenantDrive<'_>) -> Result<TenantRecord, StoreError> {
        self.drive_transaction(drive).await
    }
}
