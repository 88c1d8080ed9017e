//! A rollout driving a tenant: the tenant's state change, its history event, the
//! member's new state, a check of the controller's fenced lease (its lease item) and, when the tenant is
//! still marked as held by a finished rollout, a check that it is finished, all in one
//! `TransactWriteItems`, plus the report counter when the change is a milestone.
//! When the drive makes a step due and a worker in this process has a slot reserved
//! for it, the same write gives that worker the tenant's lease.

use aws_sdk_dynamodb::types::CancellationReason;
use aws_sdk_dynamodb::types::{ConditionCheck, TransactWriteItem};
use chrono::{DateTime, Utc};

use super::errors::cancellation;
use super::item::{millis, n, opt_s, s};
use super::rollout_lease::lease_key;
use super::rollouts::{member_update, rollout_key};
use super::transition::{Committed, TransitionTx};
use super::ttl_after;
use super::DynamoStore;
use crate::domain::RolloutId;
use crate::ports::TenantDrive;
use crate::record::{Lease, Phase, TenantRecord};
use crate::store::{Conflict, StoreError, WriteGuard};

impl DynamoStore {
    /// The one transaction of a rollout's change to a tenant; see [`RolloutStore::drive_tenant`].
    pub(super) async fn drive_transaction(&self, drive: TenantDrive<'_>) -> Result<TenantRecord, StoreError> {
        let built = self.drive_tx(&drive, Utc::now());
        let reasons = match self
            .commit(built.tx, &built.next, &built.write_id, &built.context)
            .await?
        {
            Committed::Stored => return Ok(built.next),
            Committed::Cancelled(reasons) => reasons,
        };
        Err(explain_drive(&drive, &built.context, &reasons))
    }

    /// The drive's transaction, not yet sent, with the tenant as it will be stored.
    pub(super) fn drive_tx(&self, drive: &TenantDrive<'_>, now: DateTime<Utc>) -> BuiltDrive {
        let rollout_id = &drive.rollout.id;
        let mut tenant = drive.tenant.clone();
        tenant.event_seq += 1;
        let read_fence = tenant.last_fence;
        if let Some(grant) = drive.grant {
            // The record carries the lease, so the work index entry is written hidden
            // until it runs out, as a worker's own lease write leaves it.
            tenant.last_fence = read_fence + 1;
            tenant.lease = Some(Lease {
                owner: grant.owner.clone(),
                expires_at: ttl_after(now, grant.ttl),
                fence: tenant.last_fence,
            });
        }
        let write_id = super::new_write_id();
        let super::TenantWrite {
            mut update,
            condition,
            next,
        } = self.save_update(&tenant, WriteGuard::Version, now, &write_id);
        let mut next = next;
        next.rollout = Some(rollout_id.clone());
        update.set("rollout_claim", s(rollout_id.as_str())).value(
            ":claim_stale",
            s(drive.finished_holder.map_or("", |h| h.as_str())),
        );
        let mut condition = format!(
            "{condition} AND (attribute_not_exists(#rollout_claim) OR #rollout_claim IN (:rollout_claim, :claim_stale))"
        );
        if let Some(lease) = &next.lease.as_ref().filter(|_| drive.grant.is_some()) {
            // A worker's lease write leaves the version alone: the fence read with the
            // tenant says no lease was taken since, and none may be live now.
            update
                .set("lease_owner", s(&lease.owner))
                .set("lease_expires", millis(lease.expires_at))
                .set("lease_fence", n(lease.fence))
                .set("last_fence", n(lease.fence))
                .value(":read_fence", n(read_fence))
                .value(":grant_now", millis(now));
            condition.push_str(
                " AND (attribute_not_exists(#last_fence) OR #last_fence = :read_fence) \
                 AND (attribute_not_exists(#lease_owner) OR #lease_expires <= :grant_now)",
            );
        }
        let tenant_write = self.tenant_update(Self::tenant_key(tenant.id()), update, condition);
        let mut tx = self.transition_tx(tenant_write, &next, drive.transition.clone(), now);
        tx.book_as("rollout drive transaction");
        tx.push(
            TransactWriteItem::builder()
                .update(member_update(self.table(), rollout_id, drive.member))
                .build(),
        );
        tx.push(
            TransactWriteItem::builder()
                .condition_check(
                    ConditionCheck::builder()
                        .table_name(self.table())
                        .set_key(Some(lease_key(rollout_id)))
                        .condition_expression(
                            "lease_owner = :owner AND lease_fence = :fence AND lease_expires > :now",
                        )
                        .expression_attribute_values(":owner", s(&drive.lease.owner))
                        .expression_attribute_values(":fence", n(drive.lease.fence))
                        .expression_attribute_values(":now", millis(now))
                        .build()
                        .expect("table, key, condition set"),
                )
                .build(),
        );
        if let Some(holder) = drive.finished_holder {
            tx.push(
                TransactWriteItem::builder()
                    .condition_check(
                        ConditionCheck::builder()
                            .table_name(self.table())
                            .set_key(Some(rollout_key(holder)))
                            .condition_expression("state_name IN (:completed, :aborted)")
                            .expression_attribute_values(":completed", s(Phase::Completed.as_str()))
                            .expression_attribute_values(":aborted", s(Phase::Aborted.as_str()))
                            .build()
                            .expect("table, key, condition set"),
                    )
                    .build(),
            );
        }
        let context = format!("rollout {rollout_id} driving tenant {}", tenant.id());
        BuiltDrive {
            tx,
            next,
            write_id,
            context,
        }
    }
}

/// A drive's transaction assembled by [`DynamoStore::drive_tx`].
pub(super) struct BuiltDrive {
    pub tx: TransitionTx,
    pub next: TenantRecord,
    pub write_id: String,
    pub context: String,
}

/// Why the drive's transaction was refused, from its cancellation reasons (one per
/// item, in the order [`DynamoStore::drive_tx`] added them).
pub(super) fn explain_drive(
    drive: &TenantDrive<'_>,
    context: &str,
    reasons: &[CancellationReason],
) -> StoreError {
    let rollout_id = &drive.rollout.id;
    let tenant_id = drive.tenant.id();
    cancellation(context, reasons, |i, reason| match i {
        0 => match reason
            .item()
            .and_then(|item| opt_s(item, "rollout_claim"))
            .and_then(|holder| RolloutId::parse(&holder).ok())
        {
            Some(holder) if &holder != rollout_id => (
                Conflict::HeldBy(holder.clone()),
                format!("tenant {tenant_id} is held by rollout {holder}"),
            ),
            _ => (
                Conflict::Version,
                format!("tenant {tenant_id} changed since it was read"),
            ),
        },
        1 => (
            Conflict::Version,
            format!("tenant {tenant_id} history event already written"),
        ),
        2 => (
            Conflict::Version,
            format!("member {tenant_id} changed since it was read"),
        ),
        3 => (
            Conflict::RolloutLease,
            format!("the lease on rollout {rollout_id} was lost"),
        ),
        4 if drive.finished_holder.is_some() => (
            Conflict::Version,
            "the rollout holding the tenant is no longer finished".to_owned(),
        ),
        _ => (
            Conflict::Version,
            "a report counter changed at the same moment".to_owned(),
        ),
    })
}
