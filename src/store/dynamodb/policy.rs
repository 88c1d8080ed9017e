//! The environment's version policy, one item (`pk META`, `sk POLICY`), changed by
//! conditional writes so two operators editing it at once cannot lose a change.

use super::item;
use super::item::{get_n, get_s, s};
use super::meta::CONFLICT_RETRIES;
use super::DynamoStore;
use crate::domain::VersionPolicy;
use crate::ports::{PolicyChange, PolicyEdit, PolicyStore, PolicyUpdate};
use crate::store::{keys, StoreError};

const POLICY_SK: &str = "POLICY";
/// Changes of the policy the item keeps, newest last.
const CHANGES_KEPT: usize = 100;

/// Who changed the policy, when, and how: the policy's audit trail.
#[async_trait::async_trait]
impl PolicyStore for DynamoStore {
    /// The policy and its version (0 when none was ever written).
    async fn load_policy(&self) -> Result<(VersionPolicy, u64), StoreError> {
        let (policy, version, _) = self.load_policy_item().await?;
        Ok((policy, version))
    }

    /// The policy with its recorded changes, oldest first (the newest 100).
    async fn load_policy_audited(&self) -> Result<(VersionPolicy, Vec<PolicyChange>), StoreError> {
        let (policy, _, changes) = self.load_policy_item().await?;
        Ok((policy, changes))
    }

    /// Policy, version and changes from the one policy item.
    async fn update_policy(
        &self,
        actor: &str,
        what: &str,
        change: PolicyEdit<'_>,
    ) -> Result<PolicyUpdate, StoreError> {
        let mut attempt = 0;
        loop {
            let (mut policy, version, mut changes) = self.load_policy_item().await?;
            let before = policy.clone();
            change(&mut policy);
            if policy == before {
                // Nothing to record: removing an entry that is not there, setting one
                // to what it is.
                return Ok(PolicyUpdate {
                    policy,
                    changes,
                    changed: false,
                });
            }
            changes.push(PolicyChange {
                at: chrono::Utc::now(),
                actor: actor.to_owned(),
                what: what.to_owned(),
            });
            let excess = changes.len().saturating_sub(CHANGES_KEPT);
            changes.drain(..excess);
            let text = serde_json::to_string(&policy).expect("policies serialize");
            let attributes = [
                ("policy", s(text)),
                (
                    "changes",
                    s(serde_json::to_string(&changes).expect("changes serialize")),
                ),
            ];
            let saved = self
                .put_meta_item(POLICY_SK, attributes, version, "saving the version policy")
                .await;
            match saved {
                Ok(()) => {
                    return Ok(PolicyUpdate {
                        policy,
                        changes,
                        changed: true,
                    })
                }
                Err(StoreError::Conflict { .. }) if attempt < CONFLICT_RETRIES => attempt += 1,
                Err(e) => return Err(e),
            }
        }
    }
}

impl DynamoStore {
    async fn load_policy_item(&self) -> Result<(VersionPolicy, u64, Vec<PolicyChange>), StoreError> {
        let Some(item) = self
            .read_item(item::key(keys::META_PK, POLICY_SK), "loading the version policy")
            .await?
        else {
            return Ok((VersionPolicy::default(), 0, Vec::new()));
        };
        let policy = serde_json::from_str(get_s(&item, "policy")?).map_err(|e| {
            StoreError::fatal(
                "loading the version policy",
                "the stored policy could not be decoded",
            )
            .with_source(e)
        })?;
        Ok((policy, get_n(&item, "version")? as u64, changes_of(&item)?))
    }
}

fn changes_of(item: &super::item::Item) -> Result<Vec<PolicyChange>, StoreError> {
    match item.get("changes") {
        None => Ok(Vec::new()),
        Some(_) => serde_json::from_str(get_s(item, "changes")?).map_err(|e| {
            StoreError::fatal(
                "loading the version policy's changes",
                "the stored change history could not be decoded",
            )
            .with_source(e)
        }),
    }
}
