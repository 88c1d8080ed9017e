//! A rollout controller's lease, kept in an item of its own (`ROLLOUT#<id>`/`LEASE`,
//! under 100 bytes) beside the rollout item, which holds a copy of it.
//!
//! The lease item is what is checked and written often: every drive transaction checks
//! it, and every pass renews it, so both cost one small item rather than the rollout
//! item (several KB, and growing with the rollout's waves and events). The rollout
//! item's copy (`lease_owner`, `lease_fence`, `lease_expires`) changes only when the
//! lease changes hands, and is what saves are fenced on.
//!
//! The copy also keeps controllers that know only the copy (older versions of this
//! service, which renew and check the rollout item itself) from driving at the same
//! time as one that holds the lease item:
//!
//! * the copy's expiry is the lease item's plus [`COPY_MARGIN`], kept ahead of it by
//!   saves and by the renewals that find it closer than half the margin, so a
//!   controller that reads only the copy sees the lease held while its holder lives;
//! * the lease is held through the lease item only while both carry the same fence. A
//!   controller that took the copy over (after the margin ran out) gave it a new
//!   fence, so the lease item no longer counts, and the copy's own expiry decides,
//!   as it does for those controllers.
//!
//! Taking the lease over writes both items in one transaction, conditional on both
//! being as they were read, with the next fence of the rollout item's `last_fence`.

use std::time::Duration;

use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem, Update};
use chrono::{DateTime, Utc};

use super::errors::{classify, conflict_as, transaction_conflict_as};
use super::item::{get_n, key, millis, n, opt_s, s, time_from_millis, Item};
use super::rollouts::{decode_rollout, rollout_key};
use super::{ttl_after, DynamoStore, UpdateExpr};
use crate::domain::RolloutId;
use crate::record::{Lease, RolloutRecord};
use crate::store::{keys, Conflict, Entity, StoreError};

/// How long the rollout item's copy of the lease outlasts the lease item.
pub(super) const COPY_MARGIN: Duration = Duration::from_secs(120);

pub(super) fn lease_key(id: &RolloutId) -> Item {
    key(keys::rollout_pk(id), keys::ROLLOUT_LEASE_SK)
}

/// The expiry the rollout item's copy gets for a lease item that expires at `expires`.
pub(super) fn copy_expiry(expires: DateTime<Utc>) -> DateTime<Utc> {
    ttl_after(expires, COPY_MARGIN)
}

/// The lease an item's `lease_owner`, `lease_expires` and `lease_fence` hold.
pub(super) fn decode_lease(item: &Item) -> Result<Option<Lease>, StoreError> {
    Ok(match opt_s(item, "lease_owner") {
        Some(owner) => Some(Lease {
            owner,
            expires_at: time_from_millis("lease_expires", get_n(item, "lease_expires")?)?,
            fence: get_n(item, "lease_fence")? as u64,
        }),
        None => None,
    })
}

/// The lease item of a lease just taken, or of a rollout just created.
pub(super) fn lease_item(id: &RolloutId, lease: &Lease) -> Item {
    let mut item = lease_key(id);
    item.insert("lease_owner".into(), s(&lease.owner));
    item.insert("lease_expires".into(), millis(lease.expires_at));
    item.insert("lease_fence".into(), n(lease.fence));
    item
}

/// The condition that the lease attributes of an item are still `read` (or absent).
fn unchanged(update: &mut UpdateExpr, read: Option<&Lease>) -> String {
    update.name("lease_owner");
    match read {
        Some(lease) => {
            update
                .name("lease_expires")
                .value(":read_owner", s(&lease.owner))
                .value(":read_expires", millis(lease.expires_at));
            "#lease_owner = :read_owner AND #lease_expires = :read_expires".to_owned()
        }
        None => "attribute_not_exists(#lease_owner)".to_owned(),
    }
}

fn lost(id: &RolloutId) -> impl Fn() -> String + '_ {
    move || format!("rollout {id} is driven by another controller")
}

/// When a holder's live lease is renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Renew {
    /// On every call: the lease then lasts the whole ttl from now.
    Always,
    /// Only when less than half the ttl is left, so a controller that passes every
    /// 100 ms writes the lease item every few seconds, not on every pass. Its drives
    /// check the lease item, so a pass that outlives what is left loses its drives,
    /// not its safety.
    BelowHalf,
}

impl DynamoStore {
    /// [`crate::ports::RolloutStore::acquire_rollout_lease`]: renews the lease item
    /// when `owner` holds it (as `renew` says), else takes the lease over if it is
    /// free or expired.
    pub(super) async fn acquire_lease_item(
        &self,
        id: &RolloutId,
        owner: &str,
        ttl: Duration,
        now: DateTime<Utc>,
        renew: Renew,
    ) -> Result<RolloutRecord, StoreError> {
        let (held, item) = tokio::try_join!(
            self.read_item(lease_key(id), "reading rollout lease"),
            self.read_item(rollout_key(id), "loading rollout"),
        )?;
        let Some(item) = item else {
            return Err(StoreError::NotFound {
                entity: Entity::Rollout,
                what: format!("rollout {id}"),
            });
        };
        let mut record = decode_rollout(&item)?;
        let held = held.as_ref().map(decode_lease).transpose()?.flatten();
        let copy = record.lease.clone();
        // Held through the lease item: the copy names the same holder and fence.
        let through_item = held.as_ref().filter(|h| {
            copy.as_ref()
                .is_some_and(|c| c.fence == h.fence && c.owner == h.owner)
        });
        let expires = ttl_after(now, ttl);
        if let Some(mine) = through_item.filter(|h| h.owner == owner && h.is_live(now)) {
            let half = chrono::Duration::from_std(ttl / 2).unwrap_or_default();
            if renew == Renew::BelowHalf && mine.expires_at - now > half {
                record.lease = Some(mine.clone());
                return Ok(record);
            }
            let lease = Lease {
                expires_at: expires,
                ..mine.clone()
            };
            self.renew_lease_item(id, mine, &lease, copy.as_ref(), now)
                .await?;
            record.lease = Some(lease);
            return Ok(record);
        }
        let free = match (&copy, through_item) {
            (None, _) => true,
            (Some(c), _) if c.owner == owner || !c.is_live(now) => true,
            (Some(_), Some(h)) => !h.is_live(now),
            (Some(_), None) => false,
        };
        if !free {
            return Err(StoreError::Conflict {
                what: "taking rollout lease".into(),
                detail: lost(id)(),
                kind: Conflict::RolloutLease,
            });
        }
        let last_fence = get_n(&item, "last_fence").unwrap_or(0) as u64;
        let lease = Lease {
            owner: owner.to_owned(),
            expires_at: expires,
            fence: last_fence + 1,
        };
        self.take_lease_item(id, &lease, last_fence, copy.as_ref(), held.as_ref())
            .await?;
        record.lease = Some(lease);
        Ok(record)
    }

    /// Extends the lease item of `mine` to `lease.expires_at`, and the copy too when
    /// less than half its margin is left.
    async fn renew_lease_item(
        &self,
        id: &RolloutId,
        mine: &Lease,
        lease: &Lease,
        copy: Option<&Lease>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.extend_lease(lease_key(id), id, mine, lease.expires_at, Some(now))
            .await?;
        let half = chrono::Duration::from_std(COPY_MARGIN / 2).unwrap_or_default();
        if copy.is_some_and(|c| c.expires_at < lease.expires_at + half) {
            let expires = copy_expiry(lease.expires_at);
            self.extend_lease(rollout_key(id), id, mine, expires, None)
                .await?;
        }
        Ok(())
    }

    /// Moves the lease expiry of the item at `key` to `expires`, if `mine` still holds
    /// it there (and, given `now`, its expiry there has not passed).
    async fn extend_lease(
        &self,
        key: Item,
        id: &RolloutId,
        mine: &Lease,
        expires: DateTime<Utc>,
        now: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let mut update = UpdateExpr::default();
        update
            .set("lease_expires", millis(expires))
            .name("lease_owner")
            .name("lease_fence")
            .value(":owner", s(&mine.owner))
            .value(":fence", n(mine.fence));
        let mut condition = "#lease_owner = :owner AND #lease_fence = :fence".to_owned();
        if let Some(now) = now {
            update.value(":now", millis(now));
            condition.push_str(" AND #lease_expires > :now");
        }
        let out = self
            .conditional_update(key, update, condition)
            .send()
            .await
            .map_err(|e| {
                conflict_as(
                    classify("renewing rollout lease", self.table(), e),
                    Conflict::RolloutLease,
                    lost(id),
                )
            })?;
        self.count_as("rollout lease", out.consumed_capacity());
        Ok(())
    }

    /// Gives `lease` (fence `last_fence + 1`) to its owner on both items, if neither
    /// changed since `copy` and `held` were read.
    async fn take_lease_item(
        &self,
        id: &RolloutId,
        lease: &Lease,
        last_fence: u64,
        copy: Option<&Lease>,
        held: Option<&Lease>,
    ) -> Result<(), StoreError> {
        let mut update = UpdateExpr::default();
        update
            .set("lease_owner", s(&lease.owner))
            .set("lease_expires", millis(copy_expiry(lease.expires_at)))
            .set("lease_fence", n(lease.fence))
            .set("last_fence", n(lease.fence));
        let copy_unchanged = unchanged(&mut update, copy);
        let fence_unchanged = if last_fence == 0 {
            "attribute_not_exists(#last_fence)".to_owned()
        } else {
            update.value(":read_last_fence", n(last_fence));
            "#last_fence = :read_last_fence".to_owned()
        };
        let take_copy = Update::builder()
            .table_name(self.table())
            .set_key(Some(rollout_key(id)))
            .update_expression(update.expression())
            .condition_expression(format!(
                "attribute_exists(pk) AND {fence_unchanged} AND {copy_unchanged}"
            ))
            .set_expression_attribute_names(Some(update.names))
            .set_expression_attribute_values(Some(update.values))
            .build()
            .expect("table, key, expression set");
        let mut condition = UpdateExpr::default();
        let held_unchanged = unchanged(&mut condition, held);
        let take_item = Put::builder()
            .table_name(self.table())
            .set_item(Some(lease_item(id, lease)))
            .condition_expression(held_unchanged)
            .set_expression_attribute_names(Some(condition.names))
            .set_expression_attribute_values((!condition.values.is_empty()).then_some(condition.values))
            .build()
            .expect("table, item set");
        let items = vec![
            TransactWriteItem::builder().update(take_copy).build(),
            TransactWriteItem::builder().put(take_item).build(),
        ];
        self.send_lease_transaction(id, items, "taking rollout lease")
            .await
    }

    /// Writes both lease items in one transaction; a refused condition means another
    /// controller has the lease (or took it since it was read).
    async fn send_lease_transaction(
        &self,
        id: &RolloutId,
        items: Vec<TransactWriteItem>,
        context: &str,
    ) -> Result<(), StoreError> {
        let out = (self.send_transaction(items).await).map_err(|err| {
            transaction_conflict_as(context, self.table(), err, Conflict::RolloutLease, lost(id))
        })?;
        self.count_as("rollout lease", out.consumed_capacity());
        Ok(())
    }

    /// [`crate::ports::RolloutStore::release_rollout_lease`]: removes the copy and the
    /// lease item, if `lease` still holds them, so any controller may take it at once.
    pub(super) async fn release_lease_item(&self, id: &RolloutId, lease: &Lease) -> Result<(), StoreError> {
        let names = || {
            std::collections::HashMap::from([
                ("#lease_owner".to_owned(), "lease_owner".to_owned()),
                ("#lease_fence".to_owned(), "lease_fence".to_owned()),
            ])
        };
        let values = || {
            std::collections::HashMap::from([
                (":owner".to_owned(), s(&lease.owner)),
                (":fence".to_owned(), n(lease.fence)),
            ])
        };
        let mine = "#lease_owner = :owner AND #lease_fence = :fence";
        let mut names_with_expires = names();
        names_with_expires.insert("#lease_expires".into(), "lease_expires".into());
        let release_copy = Update::builder()
            .table_name(self.table())
            .set_key(Some(rollout_key(id)))
            .update_expression("REMOVE #lease_owner, #lease_expires, #lease_fence")
            .condition_expression(mine)
            .set_expression_attribute_names(Some(names_with_expires))
            .set_expression_attribute_values(Some(values()))
            .build()
            .expect("table, key, expression set");
        let release_item = Delete::builder()
            .table_name(self.table())
            .set_key(Some(lease_key(id)))
            .condition_expression(format!("attribute_not_exists(pk) OR ({mine})"))
            .set_expression_attribute_names(Some(names()))
            .set_expression_attribute_values(Some(values()))
            .build()
            .expect("table, key set");
        let items = vec![
            TransactWriteItem::builder().update(release_copy).build(),
            TransactWriteItem::builder().delete(release_item).build(),
        ];
        self.send_lease_transaction(id, items, "releasing rollout lease")
            .await
    }
}
