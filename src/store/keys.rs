//! Item keys and index keys. Kept in one place so the layout in `state/table.json`
//! and the code cannot drift apart unnoticed.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::domain::{Hostname, PromotionName, Region, RolloutId, TenantId};

pub use crate::ports::WORK_SHARDS;

pub const TENANT_SK: &str = "TENANT";
pub const META_PK: &str = "META";
pub const REGIONS_SK: &str = "REGIONS";
/// The key page tokens are sealed with (`pk META`).
pub const PAGE_TOKEN_KEY_SK: &str = "PAGE_TOKEN_KEY";

/// Sort key of a hostname claim (`pk HOST#<hostname>`).
pub const HOSTNAME_SK: &str = "HOSTNAME";

pub fn hostname_pk(hostname: &Hostname) -> String {
    format!("HOST#{hostname}")
}

pub fn tenant_pk(id: &TenantId) -> String {
    format!("TENANT#{id}")
}

pub fn event_sk(seq: u64) -> String {
    format!("EVENT#{seq:012}")
}

/// Outbox partition `partition` (`pk OUTBOX#<partition>`): its events, and the
/// lease of the dispatcher delivering them.
pub fn outbox_pk(partition: u32) -> String {
    format!("OUTBOX#{partition}")
}

/// Sort key of the partition's dispatcher lease.
pub const OUTBOX_LEASE_SK: &str = "LEASE";
/// Sort keys of events start with this; they sort by time, then event id.
pub const OUTBOX_EVENT_SK_PREFIX: &str = "EV#";

pub fn outbox_sk(at: DateTime<Utc>, event_id: &str) -> String {
    format!(
        "{OUTBOX_EVENT_SK_PREFIX}{:015}#{event_id}",
        at.timestamp_millis().max(0)
    )
}

pub fn shard_of(id: &TenantId) -> u32 {
    let digest = Sha256::digest(id.as_str().as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % WORK_SHARDS
}

pub fn work_pk(region: &Region, shard: u32) -> String {
    format!("WORK#{region}#{shard}")
}

/// Sorts by due time, then tenant, so a query `<= now` returns exactly the due ones.
pub fn work_sk(due: DateTime<Utc>, id: &TenantId) -> String {
    format!("{:015}#{id}", due.timestamp_millis().max(0))
}

/// Upper bound of the due range for a query at `now`.
pub fn work_sk_upper(now: DateTime<Utc>) -> String {
    format!("{:015}#~", now.timestamp_millis().max(0))
}

/// Audit trail partition of one UTC day (`pk AUDIT#<yyyy-mm-dd>`): a day's access
/// decisions, sorted by time.
pub fn audit_pk(day: chrono::NaiveDate) -> String {
    format!("AUDIT#{}", day.format("%Y-%m-%d"))
}

/// Sorts by time, then a random id, so entries of the same millisecond never collide.
pub fn audit_sk(at: DateTime<Utc>, id: &str) -> String {
    format!("{:015}#{id}", at.timestamp_millis().max(0))
}

pub const ROLLOUT_SK: &str = "ROLLOUT";
/// Sort key of a rollout's lease item (`pk ROLLOUT#<id>`): the controller's lease as
/// drives check it and renewals write it, apart from the rollout item.
pub const ROLLOUT_LEASE_SK: &str = "LEASE";
/// Listing-index partition of rollouts (`by-region` index, a handful of writes a
/// minute at most).
pub const ROLLOUTS_LIST_PK: &str = "ROLLOUTS";

pub fn rollout_pk(id: &RolloutId) -> String {
    format!("ROLLOUT#{id}")
}

pub const PROMOTION_SK: &str = "PROMOTION";
/// Listing-index partition of promotion rules (a few items, written when a rule or
/// its promotion changes).
pub const PROMOTIONS_LIST_PK: &str = "PROMOTIONS";

pub fn promotion_pk(name: &PromotionName) -> String {
    format!("PROMOTION#{name}")
}

/// Sort keys of a rollout's members (`pk ROLLOUT#<id>`) start with this; then the
/// wave (four digits), `#` and the tenant's id.
pub const MEMBER_SK_PREFIX: &str = "WAVE#";

pub fn member_sk(wave: usize, tenant: &TenantId) -> String {
    format!("{MEMBER_SK_PREFIX}{wave:04}#{tenant}")
}

/// Sort key of the bake evidence a finished wave keeps apart from the rollout item
/// (`pk ROLLOUT#<id>`).
pub fn bake_evidence_sk(wave: usize) -> String {
    format!("{BAKE_EVIDENCE_SK_PREFIX}{wave:04}")
}

/// Sort keys of bake evidence start with this; the rest is the wave's index.
pub const BAKE_EVIDENCE_SK_PREFIX: &str = "BAKE#";

/// Sort keys of the tenants a rollout skipped at planning start with this; the rest
/// is the tenant's id (so a query returns them in id order, as planned).
pub const SKIPPED_SK_PREFIX: &str = "SKIP#";

pub fn skipped_sk(tenant: &TenantId) -> String {
    format!("{SKIPPED_SK_PREFIX}{tenant}")
}

pub fn member_prefix(wave: usize) -> String {
    format!("{MEMBER_SK_PREFIX}{wave:04}#")
}

/// Running rollouts sort first (`LIVE` > `DONE` read newest first), each newest first.
pub fn rollout_list_sk(finished: bool, created: DateTime<Utc>, id: &RolloutId) -> String {
    let prefix = if finished { "DONE" } else { "LIVE" };
    format!("{prefix}#{:015}#{id}", created.timestamp_millis().max(0))
}

/// Certificate slots of a region share one partition (`pk CERTS#<region>`), so one
/// consistent Query reads the region's whole allocation: its root and every slot.
pub fn certs_pk(region: &Region) -> String {
    format!("CERTS#{region}")
}

/// Sort key of a region's allocation root, whose version every allocation bumps.
pub const CERTS_ROOT_SK: &str = "ROOT";
/// Sort keys of slots start with this; the rest is the slot's number.
pub const SLOT_SK_PREFIX: &str = "SLOT#";

pub fn slot_sk(n: u32) -> String {
    format!("{SLOT_SK_PREFIX}{n:06}")
}

pub fn list_pk(region: &Region) -> String {
    format!("REGION#{region}")
}

pub fn list_sk(state_name: &str, id: &TenantId) -> String {
    format!("{state_name}#{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_keys_sort_by_due_time() {
        let id = TenantId::parse("acme").unwrap();
        let early = DateTime::from_timestamp_millis(9_000).unwrap();
        let late = DateTime::from_timestamp_millis(10_000).unwrap();
        assert!(work_sk(early, &id) < work_sk(late, &id));
        assert!(work_sk(late, &id) <= work_sk_upper(late));
        assert!(work_sk(late, &TenantId::parse("zzzz").unwrap()) <= work_sk_upper(late));
    }

    #[test]
    fn certificate_slot_keys_keep_their_stored_layout() {
        let region = Region::parse("eu-west-1").unwrap();
        assert_eq!(certs_pk(&region), "CERTS#eu-west-1");
        assert_eq!(slot_sk(7), "SLOT#000007");
        assert!(slot_sk(12).starts_with(SLOT_SK_PREFIX));
        assert!(slot_sk(9) < slot_sk(10), "slots sort by number");
    }

    #[test]
    fn shards_spread_tenants() {
        let shards: std::collections::BTreeSet<u32> = (0..200)
            .map(|i| shard_of(&TenantId::parse(&format!("tenant-{i}")).unwrap()))
            .collect();
        assert_eq!(shards.len(), WORK_SHARDS as usize);
    }
}
