//! The one transaction every recorded transition writes, whoever makes it (create,
//! a worker's or operator's save, a spec change, a rollout's drive): the tenant's own
//! write first, its history item second (put-if-absent, keyed by the last event's
//! `event_seq`), then what the caller adds, the deployment-report counter, and the
//! outbox item that reports the transitions last (it has no condition), so the
//! positions of the cancellation reasons the callers explain never move. A worker's
//! steps written together have a history event, counter and outbox event each; their
//! history events share one history item (`item::history_item`) and their outbox
//! events one outbox item (`outbox::outbox_put_together`), since every
//! item of a transaction is work for the table's writer on the path of the next step.
//! A worker's landing and a rollout's start of the next tenant can go as one
//! transaction (`send_sealed`), each part laid out as it is alone.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    CancellationReason, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use chrono::{DateTime, Utc};

use super::errors::classify;
use super::item::{history_item, Item};
use super::outbox::outbox_put_together;
use super::reports::counter_update;
use super::{count_transition, written_by, DynamoStore, UpdateExpr};
use crate::record::{CloudEvent, HistoryEvent, TenantRecord, Transition};
use crate::store::keys;
use crate::store::report::DeploymentMilestone;
use crate::store::StoreError;

/// A transition's transaction being assembled; see the module's comment.
pub(super) struct TransitionTx {
    items: Vec<TransactWriteItem>,
    /// The history events of the transitions, in order: written as one item at
    /// position 1 when the transaction is sent.
    history: Vec<HistoryEvent>,
    counters: Vec<TransactWriteItem>,
    /// The outbox events reporting the transitions, written last as one item
    /// (`outbox::outbox_put_together`). Unconditional, so it comes after everything whose
    /// cancellation reason a caller explains.
    outbox: Vec<CloudEvent>,
    /// Per transition recorded, what `/metrics` counts: from, to, the outage measured.
    counted: Vec<(&'static str, &'static str, Option<u64>)>,
    /// The last history event's sequence number, for the callers' conflict messages.
    pub event_seq: u64,
    /// What the write units are booked under (`write_units_by_operation`).
    operation: &'static str,
}

/// A transition's transaction ready to send: its items in order, and the transitions
/// `/metrics` counts once it is written.
#[derive(Clone)]
pub(super) struct SealedTx {
    pub items: Vec<TransactWriteItem>,
    counted: Vec<(&'static str, &'static str, Option<u64>)>,
    region: crate::domain::Region,
}

impl SealedTx {
    /// What `/metrics` counts of it, without its items: to count it once it is known
    /// to be written after its items were sent away.
    pub fn tally(&self) -> SealedTx {
        SealedTx {
            items: Vec::new(),
            counted: self.counted.clone(),
            region: self.region.clone(),
        }
    }

    /// Counts its transitions (`tenantctl_transitions_total`, and the outages they
    /// measured): call once it is written.
    pub fn count_written(&self) {
        for (from, to, outage) in &self.counted {
            count_transition(from, to, &self.region, *outage);
        }
    }
}

/// How a transition's transaction ended, when DynamoDB answered.
pub(super) enum Committed {
    /// Written, now or by an earlier attempt whose answer was lost.
    Stored,
    /// Refused; the reasons, one per item in the order they were added.
    Cancelled(Vec<CancellationReason>),
}

impl TransitionTx {
    /// Adds an item after the tenant's write and its event (claims, a member, a check).
    pub fn push(&mut self, item: TransactWriteItem) {
        self.items.push(item);
    }

    /// Books the transaction's write units under `operation` instead of
    /// `transition transaction`.
    pub fn book_as(&mut self, operation: &'static str) {
        self.operation = operation;
    }

    /// How many items precede the next one pushed.
    pub fn len(&self) -> usize {
        self.items.len() + usize::from(!self.history.is_empty())
    }
}

impl DynamoStore {
    /// Starts the transaction of `transition` leading to `next`, whose own write is
    /// `tenant_write`.
    pub(super) fn transition_tx(
        &self,
        tenant_write: TransactWriteItem,
        next: &TenantRecord,
        transition: Transition,
        now: DateTime<Utc>,
    ) -> TransitionTx {
        let mut tx = Self::tenant_tx(tenant_write);
        self.add_transition(&mut tx, next, next.event_seq, transition, now);
        tx
    }

    /// A transaction of the tenant's own write alone, for [`Self::add_transition`]
    /// to add the transitions it records.
    pub(super) fn tenant_tx(tenant_write: TransactWriteItem) -> TransitionTx {
        TransitionTx {
            items: vec![tenant_write],
            history: Vec::new(),
            counters: Vec::new(),
            outbox: Vec::new(),
            counted: Vec::new(),
            event_seq: 0,
            operation: "transition transaction",
        }
    }

    /// Adds one more transition to `tx`: the history event numbered `seq`
    /// describing `next` (after the events before it, in the one history item), its
    /// deployment-report counter and its outbox event.
    pub(super) fn add_transition(
        &self,
        tx: &mut TransitionTx,
        next: &TenantRecord,
        seq: u64,
        transition: Transition,
        at: DateTime<Utc>,
    ) {
        let milestone = DeploymentMilestone::of(&transition.from, &next.state, &transition.cause);
        let from = transition.from.name();
        let event = transition.into_event(seq, next, at);
        if let Some(m) = milestone {
            tx.counters.push(
                TransactWriteItem::builder()
                    .update(counter_update(self.table(), next, m, event.outage_seconds, at))
                    .build(),
            );
        }
        tx.outbox.push(CloudEvent::tenant_transition(&event, next));
        tx.counted.push((from, next.state.name(), event.outage_seconds));
        tx.event_seq = event.seq;
        tx.history.push(event);
    }

    /// The conditional update of a tenant item, as the first item of a transaction;
    /// a refusal returns the item as it is, so the caller can say why.
    pub(super) fn tenant_update(
        &self,
        key: Item,
        update: UpdateExpr,
        condition: String,
    ) -> TransactWriteItem {
        let update = Update::builder()
            .table_name(self.table())
            .set_key(Some(key))
            .update_expression(update.expression())
            .condition_expression(condition)
            .set_expression_attribute_names(Some(update.names))
            .set_expression_attribute_values(Some(update.values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .expect("table, key, expression set");
        TransactWriteItem::builder().update(update).build()
    }

    /// Sends the transaction. A refusal whose tenant item carries `write_id` is this
    /// very transaction, retried after its first answer was lost: it counts as written.
    pub(super) async fn commit(
        &self,
        tx: TransitionTx,
        next: &TenantRecord,
        write_id: &str,
        context: &str,
    ) -> Result<Committed, StoreError> {
        let operation = tx.operation;
        let sealed = self.seal(tx, next);
        self.send_sealed(vec![sealed], operation, write_id, context)
            .await
            .map(|(committed, _)| committed)
    }

    /// The items of `tx` in the order the module's comment gives, with what to count
    /// once they are written.
    pub(super) fn seal(&self, tx: TransitionTx, next: &TenantRecord) -> SealedTx {
        let mut items = tx.items;
        if !tx.history.is_empty() {
            let put_history = Put::builder()
                .table_name(self.table())
                .set_item(Some(history_item(&keys::tenant_pk(next.id()), &tx.history)))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .expect("table, item set");
            items.insert(1, TransactWriteItem::builder().put(put_history).build());
        }
        items.extend(tx.counters);
        if !tx.outbox.is_empty() {
            items.push(outbox_put_together(self.table(), &tx.outbox));
        }
        SealedTx {
            items,
            counted: tx.counted,
            region: next.spec.region.clone(),
        }
    }

    /// Sends the sealed transactions of several tenants as one, booked under
    /// `operation`. `write_id` is the first one's: a refusal whose first item carries
    /// it is this very transaction, retried after its first answer was lost. Answers
    /// with how many items each of them had, so a caller can tell whose item a
    /// cancellation reason is about.
    pub(super) async fn send_sealed(
        &self,
        sealed: Vec<SealedTx>,
        operation: &'static str,
        write_id: &str,
        context: &str,
    ) -> Result<(Committed, Vec<usize>), StoreError> {
        let lengths: Vec<usize> = sealed.iter().map(|s| s.items.len()).collect();
        let mut items = Vec::with_capacity(lengths.iter().sum());
        let mut written = Vec::with_capacity(sealed.len());
        for mut s in sealed {
            items.append(&mut s.items);
            written.push(s);
        }
        let count = || written.iter().for_each(SealedTx::count_written);
        match self.send_transaction(items).await {
            Ok(out) => {
                self.count_as(operation, out.consumed_capacity());
                count();
                Ok((Committed::Stored, lengths))
            }
            Err(err) => match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(e)) => {
                    let reasons = e.cancellation_reasons();
                    if written_by(reasons.first().and_then(|r| r.item()), write_id) {
                        count();
                        Ok((Committed::Stored, lengths))
                    } else {
                        Ok((Committed::Cancelled(reasons.to_vec()), lengths))
                    }
                }
                _ => Err(classify(context, self.table(), err)),
            },
        }
    }
}
