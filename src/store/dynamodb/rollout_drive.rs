//! A rollout driving a tenant: the tenant's state change, its history event, the
//! member's new state, a check of the controller's fenced lease and, when the tenant is
//! still marked as held by a finished rollout, a check that it is finished, all in one
//! `TransactWriteItems`, plus the report counter when the change is a milestone.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    ConditionCheck, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use chrono::Utc;

use super::errors::{cancellation, classify};
use super::item::{event_item, millis, n, opt_s, s};
use super::rollouts::{member_update, rollout_key};
use super::DynamoStore;
use crate::domain::RolloutId;
use crate::record::Phase;
use crate::store::report::DeploymentMilestone;
use crate::store::rollouts::TenantDrive;
use crate::store::{keys, Conflict, StoreError, WriteGuard};

impl DynamoStore {
    /// The one transaction of a rollout's change to a tenant; see [`RolloutStore::drive_tenant`].
    pub(super) async fn drive_transaction(&self, drive: TenantDrive<'_>) -> Result<(), StoreError> {
        let now = Utc::now();
        let rollout_id = &drive.rollout.id;
        let mut tenant = drive.tenant.clone();
        tenant.event_seq += 1;
        let write_id = super::new_write_id();
        let (mut update, condition, next) = self.save_update(&tenant, WriteGuard::Version, now, &write_id);
        update.set("rollout_claim", s(rollout_id.as_str())).value(
            ":claim_stale",
            s(drive.finished_holder.map_or("", |h| h.as_str())),
        );
        let condition = format!(
            "{condition} AND (attribute_not_exists(#rollout_claim) OR #rollout_claim IN (:rollout_claim, :claim_stale))"
        );
        let tenant_pk = keys::tenant_pk(tenant.id());
        let milestone = DeploymentMilestone::of(&drive.transition.from, &next.state, &drive.transition.cause);
        let from_name = drive.transition.from.name();
        let event = drive.transition.into_event(next.event_seq, &next.state, now);
        let mut items = vec![
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(self.table())
                        .set_key(Some(Self::tenant_key(tenant.id())))
                        .update_expression(update.expression())
                        .condition_expression(condition)
                        .set_expression_attribute_names(Some(update.names))
                        .set_expression_attribute_values(Some(update.values))
                        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                        .build()
                        .expect("table, key, expression set"),
                )
                .build(),
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(self.table())
                        .set_item(Some(event_item(&tenant_pk, &event)))
                        .condition_expression("attribute_not_exists(pk)")
                        .build()
                        .expect("table, item set"),
                )
                .build(),
            TransactWriteItem::builder()
                .update(member_update(self.table(), rollout_id, drive.member))
                .build(),
            TransactWriteItem::builder()
                .condition_check(
                    ConditionCheck::builder()
                        .table_name(self.table())
                        .set_key(Some(rollout_key(rollout_id)))
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
        ];
        if let Some(holder) = drive.finished_holder {
            items.push(
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
        // Last, so the cancellation reasons above keep their positions.
        if let Some(m) = milestone {
            let counter = super::reports::counter_update(self.table(), &next, m, now);
            items.push(TransactWriteItem::builder().update(counter).build());
        }
        let result = self.send_transaction(items).await;
        let tenant_id = tenant.id().clone();
        match result {
            Ok(out) => {
                self.count(&out.consumed_capacity().iter().collect::<Vec<_>>());
                super::count_transition(from_name, &next);
                Ok(())
            }
            Err(err) => Err(match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(e))
                    if super::written_by(
                        e.cancellation_reasons().first().and_then(|r| r.item()),
                        &write_id,
                    ) =>
                {
                    // This very transaction, retried after its first answer was lost.
                    super::count_transition(from_name, &next);
                    return Ok(());
                }
                Some(TransactWriteItemsError::TransactionCanceledException(e)) => cancellation(
                    &format!("rollout {rollout_id} driving tenant {tenant_id}"),
                    e.cancellation_reasons(),
                    |i, reason| match i {
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
                    },
                ),
                _ => classify("driving tenant", self.table(), err),
            }),
        }
    }
}
