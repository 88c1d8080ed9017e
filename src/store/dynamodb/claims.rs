//! Hostname claims: one item per hostname (`pk HOST#<hostname>`, `sk HOSTNAME`) naming
//! the tenant that owns it. A claim is written with `attribute_not_exists(pk) OR owner =
//! :me` in the same transaction as the tenant's create or spec change, and deleted in
//! the transaction that records the tenant as Deleted, so two live tenants can never
//! hold the same hostname. `Hostname` is lowercase, so claims are case-insensitive.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    CancellationReason, Delete, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use chrono::Utc;

use super::errors::{cancellation, classify};
use super::item::{decode_tenant, get_s, s, Item};
use super::transition::Committed;
use super::{as_stored, DynamoStore};
use crate::domain::{Hostname, TenantId};
use crate::record::{TenantRecord, Transition};
use crate::store::{keys, StoreError, WriteGuard};

fn claim_key(hostname: &Hostname) -> Item {
    HashMap::from([
        ("pk".to_owned(), s(keys::hostname_pk(hostname))),
        ("sk".to_owned(), s(keys::HOSTNAME_SK)),
    ])
}

/// Claims `hostname` for `owner`, unless another tenant holds it.
pub(super) fn claim(table: &str, hostname: &Hostname, owner: &TenantId) -> TransactWriteItem {
    let mut item = claim_key(hostname);
    item.insert("owner".into(), s(owner.as_str()));
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk) OR #owner = :me")
        .expression_attribute_names("#owner", "owner")
        .expression_attribute_values(":me", s(owner.as_str()))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()
        .expect("table, item set");
    TransactWriteItem::builder().put(put).build()
}

/// Gives `hostname` up, if `owner` still holds it.
pub(super) fn release(table: &str, hostname: &Hostname, owner: &TenantId) -> TransactWriteItem {
    let delete = Delete::builder()
        .table_name(table)
        .set_key(Some(claim_key(hostname)))
        .condition_expression("#owner = :me")
        .expression_attribute_names("#owner", "owner")
        .expression_attribute_values(":me", s(owner.as_str()))
        .build()
        .expect("table, key set");
    TransactWriteItem::builder().delete(delete).build()
}

impl DynamoStore {
    /// The tenant holding `hostname`, if any.
    pub(super) async fn claim_owner(&self, hostname: &Hostname) -> Result<Option<String>, StoreError> {
        let claim = self
            .read_item(claim_key(hostname), "reading a hostname claim")
            .await?;
        Ok(claim
            .as_ref()
            .and_then(|i| get_s(i, "owner").ok())
            .map(str::to_owned))
    }

    /// Those of `hostnames` that `owner` holds a claim on (tenants created before
    /// claims existed may hold none).
    pub(super) async fn held_by(
        &self,
        owner: &TenantId,
        hostnames: &[Hostname],
    ) -> Result<Vec<Hostname>, StoreError> {
        let mut held = Vec::new();
        for h in hostnames {
            if self.claim_owner(h).await?.as_deref() == Some(owner.as_str()) {
                held.push(h.clone());
            }
        }
        Ok(held)
    }

    /// `HostnameTaken` if one of the claims (the transaction's items from `first` on,
    /// in the order of `claimed`) was refused.
    pub(super) async fn refused_claim(
        &self,
        reasons: &[CancellationReason],
        first: usize,
        claimed: &[Hostname],
    ) -> Option<StoreError> {
        let (hostname, reason) = claimed
            .iter()
            .zip(reasons.iter().skip(first))
            .find(|(_, r)| r.code() == Some("ConditionalCheckFailed"))?;
        let owner = match reason.item().and_then(|i| get_s(i, "owner").ok()) {
            Some(owner) => owner.to_owned(),
            // The claim was given up since; the caller may simply try again.
            None => self
                .claim_owner(hostname)
                .await
                .ok()
                .flatten()
                .unwrap_or_else(|| "another tenant (since released; try again)".into()),
        };
        Some(StoreError::HostnameTaken {
            hostname: hostname.to_string(),
            owner,
        })
    }

    /// Saves an operator's spec change (version-guarded) and moves the tenant's
    /// hostname claims from `before` to the new hostnames in the same transaction.
    pub(super) async fn save_spec_change(
        &self,
        record: &TenantRecord,
        before: &[Hostname],
        transition: Transition,
    ) -> Result<TenantRecord, StoreError> {
        let now = Utc::now();
        let mut record = record.clone();
        record.event_seq += 1;
        let write_id = super::new_write_id();
        let super::TenantWrite {
            update,
            condition,
            next,
        } = self.save_update(&record, WriteGuard::Version, now, &write_id);
        let id = record.id().clone();
        let added: Vec<Hostname> = next
            .spec
            .hostnames
            .iter()
            .filter(|h| !before.contains(h))
            .cloned()
            .collect();
        let dropped: Vec<Hostname> = before
            .iter()
            .filter(|h| !next.spec.hostnames.contains(h))
            .cloned()
            .collect();
        let dropped = self.held_by(&id, &dropped).await?;
        let tenant_write = self.tenant_update(Self::tenant_key(&id), update, condition);
        let mut tx = self.transition_tx(tenant_write, &next, transition, now);
        let first_claim = tx.len();
        for h in &added {
            tx.push(claim(self.table(), h, &id));
        }
        for h in &dropped {
            tx.push(release(self.table(), h, &id));
        }
        let event_seq = tx.event_seq;
        let context = format!("saving tenant {id}");
        let reasons = match self.commit(tx, &next, &write_id, &context).await? {
            Committed::Stored => return as_stored(&next),
            Committed::Cancelled(reasons) => reasons,
        };
        let tenant_refused = reasons.first().and_then(|r| r.code()) == Some("ConditionalCheckFailed");
        Err(match self.refused_claim(&reasons, first_claim, &added).await {
            Some(taken) if !tenant_refused => taken,
            _ => cancellation(
                &context,
                &reasons,
                Self::explain_refused_transition(&record, WriteGuard::Version, event_seq, now),
            ),
        })
    }

    /// Claims the hostnames of every live tenant that has no claim yet (tenants
    /// recorded before claims existed). Returns how many claims were written and the
    /// hostnames two live tenants already share, which an operator must resolve.
    pub async fn claim_existing_hostnames(&self) -> Result<ClaimBackfill, StoreError> {
        let mut report = ClaimBackfill::default();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client()
                .scan()
                .table_name(self.table())
                .filter_expression("sk = :tenant")
                .expression_attribute_values(":tenant", s(keys::TENANT_SK))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify("claiming hostnames of existing tenants", self.table(), e))?;
            for item in out.items() {
                let tenant = decode_tenant(item)?;
                if tenant.state.is_terminal() {
                    continue;
                }
                for hostname in &tenant.spec.hostnames {
                    match self.claim_owner(hostname).await? {
                        Some(owner) if owner == tenant.id().as_str() => {}
                        Some(owner) => report.shared.push(format!(
                            "{hostname} (claimed by {owner}, also used by {})",
                            tenant.id()
                        )),
                        None => {
                            self.put_claim(hostname, tenant.id()).await?;
                            report.claimed += 1;
                        }
                    }
                }
            }
            match out.last_evaluated_key() {
                Some(key) => start = Some(key.clone()),
                None => break,
            }
        }
        Ok(report)
    }

    async fn put_claim(&self, hostname: &Hostname, owner: &TenantId) -> Result<(), StoreError> {
        let mut item = claim_key(hostname);
        item.insert("owner".into(), s(owner.as_str()));
        self.put_new(item, "claiming a hostname").await
    }
}

/// What [`DynamoStore::claim_existing_hostnames`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ClaimBackfill {
    pub claimed: usize,
    /// Hostnames held by more than one live tenant, described for an operator.
    pub shared: Vec<String>,
}
