//! Reading the table for the fleet invariant check (`tenantctl fleet check`).

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;

use super::item::{decode_tenant, get_s, Item};
use super::rollouts::{decode_member, decode_rollout};
use super::{errors::classify, DynamoStore};
use crate::domain::{RolloutId, TenantId};
use crate::store::check::{check, FleetCheck, FleetSnapshot, RolloutFacts, TenantFacts};
use crate::store::{keys, RolloutStore, StoreError, TenantStore};

impl DynamoStore {
    /// Checks the fleet's invariants over a scan of the whole table. A scan is not a
    /// snapshot: what it finds wrong is read again item by item (consistently), and
    /// only what is still wrong then is reported, so work in flight is not mistaken
    /// for a broken invariant. Also sets the `tenantctl_fleet_invariant_violations`
    /// gauge.
    pub async fn check_fleet(&self) -> Result<FleetCheck, StoreError> {
        let first = check(&self.scan_fleet().await?, Utc::now());
        let mut result = first.clone();
        if !first.is_sound() {
            let again = check(&self.reread(&first).await?, Utc::now());
            result.violations = first
                .violations
                .into_iter()
                .filter(|v| again.violations.iter().any(|w| w.same_as(v)))
                .collect();
        }
        metrics::gauge!("tenantctl_fleet_invariant_violations").set(result.violations.len() as f64);
        Ok(result)
    }

    async fn scan_fleet(&self) -> Result<FleetSnapshot, StoreError> {
        let mut tenants: BTreeMap<String, (Option<Item>, BTreeSet<u64>)> = BTreeMap::new();
        let mut rollouts: BTreeMap<String, (Option<Item>, Vec<Item>)> = BTreeMap::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify("scanning the table", &self.table, e))?;
            for item in out.items() {
                let (Ok(pk), Ok(sk)) = (get_s(item, "pk"), get_s(item, "sk")) else {
                    continue;
                };
                if let Some(id) = pk.strip_prefix("TENANT#") {
                    let entry = tenants.entry(id.to_owned()).or_default();
                    if sk == keys::TENANT_SK {
                        entry.0 = Some(item.clone());
                    } else if let Some(seq) = sk.strip_prefix("EVENT#").and_then(|n| n.parse().ok()) {
                        entry.1.insert(seq);
                    }
                } else if let Some(id) = pk.strip_prefix("ROLLOUT#") {
                    let entry = rollouts.entry(id.to_owned()).or_default();
                    if sk == keys::ROLLOUT_SK {
                        entry.0 = Some(item.clone());
                    } else if sk.starts_with("WAVE#") {
                        entry.1.push(item.clone());
                    }
                }
            }
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        let mut snapshot = FleetSnapshot::default();
        for (item, history) in tenants.into_values() {
            // Events without their tenant item are a deprovisioned tenant's, if the
            // item was ever removed; only tenants are checked.
            if let Some(item) = item {
                snapshot.tenants.push(tenant_facts(&item, history)?);
            }
        }
        for (item, members) in rollouts.into_values() {
            if let Some(item) = item {
                let record = decode_rollout(&item)?;
                snapshot.rollouts.push(RolloutFacts {
                    id: record.id.clone(),
                    phase: record.phase,
                    members: members
                        .iter()
                        .map(|m| decode_member(m).map(|m| (m.tenant, m.outcome)))
                        .collect::<Result<_, _>>()?,
                });
            }
        }
        Ok(snapshot)
    }

    /// The tenants and rollouts named by `found`, read again one by one.
    async fn reread(&self, found: &FleetCheck) -> Result<FleetSnapshot, StoreError> {
        let tenants: BTreeSet<&TenantId> = found.violations.iter().map(|v| &v.tenant).collect();
        let rollouts: BTreeSet<&str> = found
            .violations
            .iter()
            .filter(|v| v.invariant == "rollout_hold")
            .map(|v| v.subject.as_str())
            .collect();
        let mut snapshot = FleetSnapshot::default();
        for id in tenants {
            let Some(item) = self.read_item(Self::tenant_key(id), "reading tenant").await? else {
                continue;
            };
            let mut history = BTreeSet::new();
            let mut after = 0;
            loop {
                let page = self.history(id, after, 1000).await?;
                history.extend(page.items.iter().map(|e| e.seq));
                match (page.next_token, page.items.last()) {
                    (Some(_), Some(last)) => after = last.seq,
                    _ => break,
                }
            }
            snapshot.tenants.push(tenant_facts(&item, history)?);
        }
        for id in rollouts {
            let Ok(id) = RolloutId::parse(id) else { continue };
            let record = match self.load_rollout(&id).await {
                Ok(r) => r,
                Err(StoreError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            let members = self.members(&id, None).await?;
            snapshot.rollouts.push(RolloutFacts {
                id,
                phase: record.phase,
                members: members.into_iter().map(|m| (m.tenant, m.outcome)).collect(),
            });
        }
        Ok(snapshot)
    }
}

fn tenant_facts(item: &Item, history: BTreeSet<u64>) -> Result<TenantFacts, StoreError> {
    let present = |k: &str| matches!(item.get(k), Some(AttributeValue::S(_)));
    Ok(TenantFacts {
        record: decode_tenant(item)?,
        in_work_index: present("work_pk") && present("work_sk"),
        history,
    })
}
