//! Encoding of tenant and event records as DynamoDB items. Structured parts (spec,
//! state, facts) are stored as JSON strings; everything an expression or index needs
//! (version, lease, keys, state name) is a top-level attribute.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use super::super::{keys, StoreError};
use crate::domain::RolloutId;
use crate::ports::Cause;
use crate::record::{HistoryEvent, Lease, TenantRecord};

pub type Item = HashMap<String, AttributeValue>;

pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub fn millis(t: DateTime<Utc>) -> AttributeValue {
    n(t.timestamp_millis())
}

/// The primary key `pk`/`sk` of an item.
pub fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

/// A key as plain strings, as a page token keeps it (every key attribute of the
/// table and its indexes is a string).
pub fn plain_key(key: &Item) -> HashMap<String, String> {
    key.iter()
        .filter_map(|(k, v)| v.as_s().ok().map(|v| (k.clone(), v.clone())))
        .collect()
}

/// Key attributes of an item in the `by-region` index: the table's and the index's.
pub const LISTING_KEY: [&str; 4] = ["pk", "sk", "list_pk", "list_sk"];
/// Key attributes of an item in the table.
pub const TABLE_KEY: [&str; 2] = ["pk", "sk"];

/// The key of `item` under `key_attributes`, as a page token keeps it.
pub fn key_of(item: &Item, key_attributes: &[&str]) -> HashMap<String, String> {
    (key_attributes.iter())
        .filter_map(|k| Some(((*k).to_owned(), item.get(*k)?.as_s().ok()?.clone())))
        .collect()
}

/// One page of a query read with `Limit` one above `limit` (`items` as it answered,
/// `last_evaluated` its `LastEvaluatedKey`): the page's items, and the key the next
/// page starts after, or `None` when the query has no more. Reading one more than
/// the page is how a page that ends the listing exactly says so: DynamoDB answers a
/// `LastEvaluatedKey` whenever it stops at `Limit`, more or not, which would hand the
/// client a token to an empty page. `key_attributes` are the query's key attributes.
pub fn page_of<'a>(
    items: &'a [Item],
    last_evaluated: Option<&Item>,
    limit: usize,
    key_attributes: &[&str],
) -> (&'a [Item], Option<HashMap<String, String>>) {
    if items.len() > limit {
        let page = &items[..limit];
        return (page, page.last().map(|item| key_of(item, key_attributes)));
    }
    // Fewer than asked with a key: the read stopped at its 1 MB cap; go on from there.
    (items, last_evaluated.map(plain_key))
}

/// The key a page token kept with [`plain_key`].
pub fn item_key(plain: HashMap<String, String>) -> Item {
    plain.into_iter().map(|(k, v)| (k, s(v))).collect()
}

/// A stored item whose attribute `what` is not what this code wrote, `detail` saying how.
pub fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::fatal("decoding item", format!("{what}: {detail}"))
}

/// A stored item whose attribute `what` failed to decode with `cause`, kept as the source.
pub fn corrupt_by(what: &str, cause: impl Into<Cause>) -> StoreError {
    StoreError::fatal("decoding item", format!("attribute {what} could not be decoded")).with_source(cause)
}

pub fn get_s<'a>(item: &'a Item, key: &str) -> Result<&'a str, StoreError> {
    match item.get(key) {
        Some(AttributeValue::S(v)) => Ok(v),
        other => Err(corrupt(key, format!("expected a string, found {other:?}"))),
    }
}

pub fn opt_s(item: &Item, key: &str) -> Option<String> {
    match item.get(key) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

pub fn get_n(item: &Item, key: &str) -> Result<i64, StoreError> {
    match item.get(key) {
        Some(AttributeValue::N(v)) => v.parse().map_err(|e| corrupt_by(key, e)),
        other => Err(corrupt(key, format!("expected a number, found {other:?}"))),
    }
}

pub fn opt_n(item: &Item, key: &str) -> Result<Option<i64>, StoreError> {
    match item.get(key) {
        None => Ok(None),
        Some(_) => get_n(item, key).map(Some),
    }
}

pub fn time_from_millis(key: &str, ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| corrupt(key, "timestamp out of range"))
}

pub fn opt_time(item: &Item, key: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    opt_n(item, key)?.map(|ms| time_from_millis(key, ms)).transpose()
}

pub fn json<T: serde::de::DeserializeOwned>(item: &Item, key: &str) -> Result<T, StoreError> {
    serde_json::from_str(get_s(item, key)?).map_err(|e| corrupt_by(key, e))
}

pub fn to_json<T: serde::Serialize>(value: &T) -> AttributeValue {
    s(serde_json::to_string(value).expect("records serialize to JSON"))
}

/// The attributes a save rewrites: everything but keys, lease and bookkeeping that
/// belongs to other operations. `None` values are to be removed.
///
/// The `by-region` listing entry ([`listed`]: its key and the attributes the index
/// projects) is written only while the tenant rests in a state without steps. A
/// tenant in the middle of steps keeps the entry it had when its steps began, so
/// neither entering steps, nor a step, nor coming back to the same state rewrites
/// the index (DynamoDB leaves an index alone when a write sets its attributes to the
/// values they hold). The sparse `work` index holds exactly the tenants in the middle
/// of steps, and listing reads take those tenants' state, label and time from their
/// items (`listing.rs`). The record's own time of change is `changed_at`, written on
/// every save.
pub fn mutable_attributes(record: &TenantRecord) -> Vec<(&'static str, Option<AttributeValue>)> {
    let id = record.id();
    let region = &record.spec.region;
    let work = record.work_due_at().map(|due| {
        (
            s(keys::work_pk(region, keys::shard_of(id))),
            s(keys::work_sk(due, id)),
        )
    });
    let mut attributes = vec![
        ("spec", Some(to_json(&record.spec))),
        ("state", Some(to_json(&record.state))),
        ("facts", Some(to_json(&record.facts))),
        ("region", Some(s(region.as_str()))),
        ("attempt", Some(n(record.attempt))),
        ("step_started_at", record.step_started_at.map(millis)),
        ("due_at", record.due_at.map(millis)),
        ("last_error", record.last_error.clone().map(s)),
        ("changed_at", Some(millis(record.updated_at))),
        ("work_pk", work.as_ref().map(|w| w.0.clone())),
        ("work_sk", work.map(|w| w.1)),
    ];
    if record.state.step().is_none() {
        attributes.extend(listed(record));
    }
    attributes
}

/// The tenant's `by-region` listing entry: its key, and the attributes the index
/// projects. Written when the tenant is created and whenever it rests; see
/// [`mutable_attributes`].
fn listed(record: &TenantRecord) -> [(&'static str, Option<AttributeValue>); 8] {
    let region = &record.spec.region;
    [
        ("list_pk", Some(s(keys::list_pk(region)))),
        (
            "list_sk",
            Some(s(keys::list_sk(record.state.name(), record.id()))),
        ),
        ("state_name", Some(s(record.state.name()))),
        ("state_label", Some(s(record.state.label()))),
        ("updated_at", Some(millis(record.updated_at))),
        ("release", record.state.listed_release().map(|r| s(r.to_string()))),
        ("group_name", Some(s(record.spec.group.as_str()))),
        (
            "platform",
            record.facts.running_platform().map(|p| s(p.to_string())),
        ),
    ]
}

/// The whole item of a tenant being created, with its listing entry whatever its state.
pub fn tenant_item(record: &TenantRecord) -> Item {
    let mut attributes = mutable_attributes(record);
    if record.state.step().is_some() {
        attributes.extend(listed(record));
    }
    let mut item: Item = (attributes.into_iter())
        .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
        .collect();
    item.insert("pk".into(), s(keys::tenant_pk(record.id())));
    item.insert("sk".into(), s(keys::TENANT_SK));
    item.insert("version".into(), n(record.version));
    item.insert("last_fence".into(), n(record.last_fence));
    item.insert("event_seq".into(), n(record.event_seq));
    item.insert("created_at".into(), millis(record.created_at));
    item
}

pub fn decode_tenant(item: &Item) -> Result<TenantRecord, StoreError> {
    let lease = match opt_s(item, "lease_owner") {
        Some(owner) => Some(Lease {
            owner,
            expires_at: time_from_millis("lease_expires", get_n(item, "lease_expires")?)?,
            fence: get_n(item, "lease_fence")? as u64,
        }),
        None => None,
    };
    Ok(TenantRecord {
        spec: json(item, "spec")?,
        state: json(item, "state")?,
        version: get_n(item, "version")? as u64,
        lease,
        last_fence: opt_n(item, "last_fence")?.unwrap_or(0) as u64,
        facts: json(item, "facts")?,
        attempt: opt_n(item, "attempt")?.unwrap_or(0) as u32,
        step_started_at: opt_time(item, "step_started_at")?,
        due_at: opt_time(item, "due_at")?,
        last_error: opt_s(item, "last_error"),
        event_seq: opt_n(item, "event_seq")?.unwrap_or(0) as u64,
        created_at: time_from_millis("created_at", get_n(item, "created_at")?)?,
        // Items saved before `changed_at` was written carry the time in `updated_at`.
        updated_at: match opt_time(item, "changed_at")? {
            Some(changed) => changed,
            None => time_from_millis("updated_at", get_n(item, "updated_at")?)?,
        },
        rollout: opt_s(item, "rollout_claim")
            .map(|id| RolloutId::parse(&id).map_err(|e| corrupt_by("rollout_claim", e)))
            .transpose()?,
    })
}

/// The history item of `events` (one or more, in order): keyed by the last one's
/// sequence number. One event is stored alone as JSON under `event`; several (a
/// worker's steps written together) as one item, their JSON array deflated under
/// `events_z`, so that a write of n steps puts one history item of about the size of
/// one event (DynamoDB charges a write by the KB of each item). A read from sequence
/// number `s` on therefore starts at the first item keyed at or after `s` and drops
/// the events before `s` it holds.
pub fn history_item(pk: &str, events: &[HistoryEvent]) -> Item {
    let last = events.last().expect("a history item holds at least one event");
    let mut item = HashMap::from([
        ("pk".to_owned(), s(pk)),
        ("sk".to_owned(), s(keys::event_sk(last.seq))),
    ]);
    match events {
        [one] => item.insert("event".to_owned(), to_json(one)),
        several => item.insert("events_z".to_owned(), deflated_json(&several)),
    };
    item
}

/// The events of a history item, in order (see [`history_item`]).
pub fn decode_history(item: &Item) -> Result<Vec<HistoryEvent>, StoreError> {
    match item.get("events_z") {
        Some(_) => inflated_json(item, "events_z"),
        None => Ok(vec![json(item, "event")?]),
    }
}

/// `value` as JSON, deflated, as a binary attribute.
pub(super) fn deflated_json<T: serde::Serialize>(value: &T) -> AttributeValue {
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    serde_json::to_writer(&mut encoder, value).expect("records serialize to JSON");
    let bytes = encoder.finish().expect("deflating into memory cannot fail");
    AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(bytes))
}

/// The value [`deflated_json`] stored under `key`.
pub(super) fn inflated_json<T: serde::de::DeserializeOwned>(item: &Item, key: &str) -> Result<T, StoreError> {
    let bytes = match item.get(key) {
        Some(AttributeValue::B(blob)) => blob.as_ref(),
        _ => return Err(corrupt(key, "not a binary attribute")),
    };
    serde_json::from_reader(flate2::read::DeflateDecoder::new(bytes)).map_err(|e| corrupt_by(key, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str) -> Item {
        let mut item = key(format!("TENANT#{id}"), "TENANT");
        item.insert("state".into(), s("{}"));
        item
    }

    #[test]
    fn a_page_has_a_next_key_only_when_more_was_read_or_the_read_was_cut() {
        let read: Vec<Item> = ["a", "b", "c"].into_iter().map(entry).collect();
        // One more than the page: the next page starts after the page's last item.
        let (page, next) = page_of(&read, Some(&key("TENANT#c", "TENANT")), 2, &TABLE_KEY);
        assert_eq!(page.len(), 2);
        let next = next.expect("there is more");
        assert_eq!(next.len(), 2, "only key attributes: {next:?}");
        assert_eq!(next["pk"], "TENANT#b");
        // No more than the page, and no key: the listing ends here.
        assert_eq!(page_of(&read, None, 3, &TABLE_KEY).1, None);
        // Fewer than the page with a key: the read stopped at 1 MB; go on from its key.
        let (page, next) = page_of(&read[..1], Some(&key("TENANT#a", "TENANT")), 3, &TABLE_KEY);
        assert_eq!((page.len(), next.unwrap()["pk"].as_str()), (1, "TENANT#a"));
    }
}
