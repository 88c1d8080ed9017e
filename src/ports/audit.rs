//! The audit trail of access decisions, kept durably and read newest first.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Page, StoreError};
use crate::record::{AuditEntry, AuditOutcome};

/// How long audit entries are kept unless configured otherwise.
pub const DEFAULT_AUDIT_RETENTION: Duration = Duration::from_secs(400 * 24 * 60 * 60);
/// The longest retention, and the longest span one query may cover: each day of a
/// span costs a query, so a span is bounded.
pub const MAX_AUDIT_DAYS: i64 = 1100;

/// Which entries to read: those in `since..=until`, optionally of one principal or
/// one outcome, newest first, at most `limit`, after the page `cursor` ended (which
/// keeps the first page's `since`, so a bound relative to now does not move).
#[derive(Debug, Clone)]
pub struct AuditQuery {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub principal: Option<String>,
    pub outcome: Option<AuditOutcome>,
    pub limit: u32,
    pub cursor: Option<String>,
}

impl AuditQuery {
    /// A bound of a query: a duration before `now` (`24h`, `7d`) or an RFC 3339 time
    /// (`2026-12-01T00:00:00Z`); `field` names it in the error.
    pub fn time(field: &str, text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
        let text = text.trim();
        if let Ok(at) = DateTime::parse_from_rfc3339(text) {
            return Ok(at.with_timezone(&Utc));
        }
        humantime::parse_duration(text)
            .ok()
            .and_then(|ago| chrono::Duration::from_std(ago).ok())
            .and_then(|ago| now.checked_sub_signed(ago))
            .ok_or_else(|| {
                format!(
                    "{field} {text:?} is neither a duration before now (24h, 7d, 30m) nor an RFC 3339 time \
                     (2026-12-01T00:00:00Z)"
                )
            })
    }

    /// Checks the span: `since` not after `until`, at most [`MAX_AUDIT_DAYS`] days.
    pub fn check_span(since: DateTime<Utc>, until: DateTime<Utc>) -> Result<(), String> {
        if since > until {
            return Err(format!(
                "since ({}) is after until ({}); give a since before until",
                since.to_rfc3339(),
                until.to_rfc3339()
            ));
        }
        if (until - since).num_days() > MAX_AUDIT_DAYS {
            return Err(format!(
                "since..until spans {} days; read at most {MAX_AUDIT_DAYS} days at a time",
                (until - since).num_days()
            ));
        }
        Ok(())
    }
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends `entry`, to be removed by the table's TTL `retention` after its time.
    async fn append_audit(&self, entry: &AuditEntry, retention: Duration) -> Result<(), StoreError>;
    /// One page of entries, newest first; `next_token` continues it.
    async fn audit_page(&self, query: &AuditQuery) -> Result<Page<AuditEntry>, StoreError>;
}
