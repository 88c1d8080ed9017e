//! The audit trail: one partition per UTC day (`pk AUDIT#<yyyy-mm-dd>`), items sorted
//! by time and a random id (`sk <epoch ms>#<uuid>`), never updated, removed by the
//! table's TTL (`expires_at`) after the retention. A day's partition takes at most
//! the refusals and grants of rollout and fleet-wide actions, a few per minute.
//!
//! A page walks the days from the newest down, querying each newest first, with the
//! principal and outcome filters applied by DynamoDB; the cursor is the sort key of
//! the last entry returned and the span's start, sealed like every page token and
//! bound to the filters.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};

use super::errors::classify;
use super::item::{corrupt, get_n, get_s, n, s, time_from_millis, Item};
use super::page_token::PageScope;
use super::{ttl_after, DynamoStore};
use crate::domain::Scope;
use crate::ports::{AuditQuery, AuditStore, Page};
use crate::record::{AuditEntry, AuditOutcome};
use crate::store::{keys, StoreError};

fn scope_named(text: &str) -> Result<Scope, StoreError> {
    match text {
        "read" => Ok(Scope::Read),
        "deploy" => Ok(Scope::Deploy),
        "admin" => Ok(Scope::Admin),
        other => Err(corrupt("scope", other)),
    }
}

fn decode(item: &Item) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        at: time_from_millis("at", get_n(item, "at")?)?,
        principal: get_s(item, "principal")?.to_owned(),
        identified_by: get_s(item, "identified_by")?.to_owned(),
        scope: scope_named(get_s(item, "scope")?)?,
        action: get_s(item, "action")?.to_owned(),
        target: get_s(item, "target")?.to_owned(),
        outcome: AuditOutcome::parse(get_s(item, "outcome")?).map_err(|e| corrupt("outcome", e))?,
        reason: get_s(item, "reason")?.to_owned(),
    })
}

/// Where a page ended: the sort key of its last entry, and the start of the span the
/// first page was asked for.
#[derive(serde::Serialize, serde::Deserialize)]
struct AuditCursor {
    after: String,
    since: i64,
}

/// The millisecond a sort key starts with.
fn sk_millis(sk: &str) -> Option<i64> {
    sk.split_once('#').and_then(|(ms, _)| ms.parse().ok())
}

fn day_of(at: DateTime<Utc>) -> NaiveDate {
    at.date_naive()
}

#[async_trait::async_trait]
impl AuditStore for DynamoStore {
    async fn append_audit(&self, entry: &AuditEntry, retention: Duration) -> Result<(), StoreError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut item = Item::from([
            ("pk".to_owned(), s(keys::audit_pk(day_of(entry.at)))),
            ("sk".to_owned(), s(keys::audit_sk(entry.at, &id))),
        ]);
        item.insert("at".into(), n(entry.at.timestamp_millis()));
        item.insert("principal".into(), s(&entry.principal));
        item.insert("identified_by".into(), s(&entry.identified_by));
        item.insert("scope".into(), s(entry.scope.as_str()));
        item.insert("action".into(), s(&entry.action));
        item.insert("target".into(), s(&entry.target));
        item.insert("outcome".into(), s(entry.outcome.as_str()));
        item.insert("reason".into(), s(&entry.reason));
        item.insert("expires_at".into(), n(ttl_after(entry.at, retention).timestamp()));
        self.put_new(item, "appending to the audit trail").await
    }

    async fn audit_page(&self, query: &AuditQuery) -> Result<Page<AuditEntry>, StoreError> {
        // Bounds given relative to now move between pages: the cursor carries the
        // first page's `since`, and its position replaces `until`.
        let scope = PageScope::new("audit")
            .with(query.principal.as_deref())
            .with(query.outcome.map(AuditOutcome::as_str));
        let (after, since) = match &query.cursor {
            Some(token) => {
                let cursor: AuditCursor = self.open_page("reading the audit trail", &scope, token).await?;
                let since = DateTime::from_timestamp_millis(cursor.since)
                    .ok_or_else(|| corrupt("audit cursor", cursor.since))?;
                (Some(cursor.after), since)
            }
            None => (None, query.since),
        };
        let lower = keys::audit_sk(since, "");
        let (upper, top) = match &after {
            Some(sk) => {
                let ms = sk_millis(sk).ok_or_else(|| corrupt("audit cursor", sk))?;
                let at = DateTime::from_timestamp_millis(ms).ok_or_else(|| corrupt("audit cursor", sk))?;
                (sk.clone(), at)
            }
            None => (
                format!("{:015}#~", query.until.timestamp_millis().max(0)),
                query.until,
            ),
        };
        let limit = query.limit.max(1) as usize;
        let mut items: Vec<AuditEntry> = Vec::new();
        let mut last_sk: Option<String> = None;
        let mut day = day_of(top);
        let first_day = day_of(since);
        'days: while day >= first_day {
            let mut start: Option<Item> = None;
            loop {
                let mut filters = Vec::new();
                let mut request = self
                    .client()
                    .query()
                    .table_name(self.table())
                    .key_condition_expression("pk = :pk AND sk BETWEEN :lower AND :upper")
                    .expression_attribute_values(":pk", s(keys::audit_pk(day)))
                    .expression_attribute_values(":lower", s(&lower))
                    .expression_attribute_values(":upper", s(&upper))
                    .scan_index_forward(false)
                    .limit(i32::try_from(limit - items.len() + 1).unwrap_or(i32::MAX))
                    .set_exclusive_start_key(start.take());
                if let Some(principal) = &query.principal {
                    filters.push("principal = :principal");
                    request = request.expression_attribute_values(":principal", s(principal));
                }
                if let Some(outcome) = query.outcome {
                    filters.push("outcome = :outcome");
                    request = request.expression_attribute_values(":outcome", s(outcome.as_str()));
                }
                if !filters.is_empty() {
                    request = request.filter_expression(filters.join(" AND "));
                }
                let out = request
                    .send()
                    .await
                    .map_err(|e| classify("reading the audit trail", self.table(), e))?;
                for item in out.items() {
                    let sk = get_s(item, "sk")?;
                    if after.as_deref() == Some(sk) {
                        // The last entry of the previous page.
                        continue;
                    }
                    items.push(decode(item)?);
                    last_sk = Some(sk.to_owned());
                    if items.len() == limit {
                        break 'days;
                    }
                }
                match out.last_evaluated_key() {
                    Some(key) => start = Some(key.clone()),
                    None => break,
                }
            }
            let Some(previous) = day.pred_opt() else { break };
            day = previous;
        }
        let next_token = match last_sk {
            Some(after) if items.len() == limit => Some(
                self.seal_page(
                    &scope,
                    &AuditCursor {
                        after,
                        since: since.timestamp_millis(),
                    },
                )
                .await?,
            ),
            _ => None,
        };
        Ok(Page { items, next_token })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_keys_order_by_time_and_carry_it() {
        let at = DateTime::from_timestamp_millis(1_764_662_400_123).unwrap();
        let sk = keys::audit_sk(at, "abc");
        assert_eq!(sk, "001764662400123#abc");
        assert_eq!(sk_millis(&sk), Some(1_764_662_400_123));
        assert!(keys::audit_sk(at, "") < sk);
        assert!(sk < format!("{:015}#~", at.timestamp_millis()));
        assert_eq!(keys::audit_pk(day_of(at)), "AUDIT#2025-12-02");
    }
}
