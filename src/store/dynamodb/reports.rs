//! Per-day deployment counters (`pk REPORT#<date>`, `sk <region>#<group>#<shard>`),
//! incremented with `ADD` inside the transaction that records the transition, and
//! read back one day-partition at a time. The shard (the tenant's work shard) spreads
//! the tenants of one region and group over several items, so transitions recorded at
//! the same moment rarely touch the same counter (DynamoDB cancels concurrent
//! transactions on one item).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Update};
use chrono::{DateTime, NaiveDate, Utc};

use super::errors::classify;
use super::item::{get_n, get_s, n, s, Item};
use super::DynamoStore;
use crate::domain::{Group, Region};
use crate::ports::{DeploymentMilestone, DeploymentReport, OutageBucket, ReportQuery, ReportStore};
use crate::record::TenantRecord;
use crate::store::{keys, StoreError};

/// Day partitions read at once.
const PARALLEL_DAYS: usize = 8;

fn report_pk(day: NaiveDate) -> String {
    format!("REPORT#{}", day.format("%Y-%m-%d"))
}

/// Counter attributes of the measured outages: how many, their sum in seconds, and
/// one per bucket (`outage_le_30s`, …).
const OUTAGES_MEASURED: &str = "outages_measured";
const OUTAGE_SECONDS: &str = "outage_seconds";

fn bucket_attribute(bucket: OutageBucket) -> String {
    format!("outage_{}", bucket.name())
}

/// The counter increment to add to the transaction recording `record`'s transition;
/// `outage_seconds` is the outage the transition measured, if it completed an upgrade
/// or a rollback.
pub fn counter_update(
    table: &str,
    record: &TenantRecord,
    milestone: DeploymentMilestone,
    outage_seconds: Option<u64>,
    at: DateTime<Utc>,
) -> Update {
    let spec = &record.spec;
    let sk = format!("{}#{}#{}", spec.region, spec.group, keys::shard_of(&spec.id));
    let outage = match outage_seconds {
        Some(_) => ", #measured :one, #outage :outage, #bucket :one",
        None => "",
    };
    let mut update = Update::builder()
        .table_name(table)
        .key("pk", s(report_pk(at.date_naive())))
        .key("sk", s(sk))
        .update_expression(format!(
            "ADD #count :one{outage} SET #region = :region, #group = :group"
        ))
        .expression_attribute_names("#count", milestone.attribute())
        .expression_attribute_names("#region", "region")
        .expression_attribute_names("#group", "group_name")
        .expression_attribute_values(":one", n(1))
        .expression_attribute_values(":region", s(spec.region.as_str()))
        .expression_attribute_values(":group", s(spec.group.as_str()));
    if let Some(seconds) = outage_seconds {
        update = update
            .expression_attribute_names("#measured", OUTAGES_MEASURED)
            .expression_attribute_names("#outage", OUTAGE_SECONDS)
            .expression_attribute_names("#bucket", bucket_attribute(OutageBucket::of(seconds)))
            .expression_attribute_values(":outage", n(seconds));
    }
    update.build().expect("table, key, expression set")
}

#[async_trait::async_trait]
impl ReportStore for DynamoStore {
    /// Deployments per region and group between two days (inclusive), from the
    /// counters; one query per day. The caller bounds the range.
    async fn deployment_report(&self, query: &ReportQuery) -> Result<DeploymentReport, StoreError> {
        let mut days = Vec::new();
        let mut day = query.from;
        while day <= query.to {
            days.push(day);
            day = day.succ_opt().unwrap_or(NaiveDate::MAX);
            if day == NaiveDate::MAX {
                break;
            }
        }
        let mut report = DeploymentReport::new();
        for chunk in days.chunks(PARALLEL_DAYS) {
            let mut reads = tokio::task::JoinSet::new();
            for day in chunk {
                let (store, query, day) = (self.clone(), query.clone(), *day);
                reads.spawn(async move { store.report_day(&query, day).await });
            }
            while let Some(done) = reads.join_next().await {
                let items = done.map_err(|e| {
                    StoreError::fatal("reading the deployment report", "a task reading one day failed")
                        .with_source(e)
                })??;
                for item in items {
                    add_item(&mut report, &item, query.group.as_ref())?;
                }
            }
        }
        Ok(report)
    }
}

impl DynamoStore {
    async fn report_day(&self, query: &ReportQuery, day: NaiveDate) -> Result<Vec<Item>, StoreError> {
        let prefix = match (&query.region, &query.group) {
            (Some(r), Some(g)) => Some(format!("{r}#{g}#")),
            (Some(r), None) => Some(format!("{r}#")),
            _ => None,
        };
        let mut items = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let mut q = self
                .client()
                .query()
                .table_name(self.table())
                .expression_attribute_values(":pk", s(report_pk(day)))
                .set_exclusive_start_key(start.take());
            q = match &prefix {
                Some(p) => q
                    .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .expression_attribute_values(":prefix", s(p)),
                None => q.key_condition_expression("pk = :pk"),
            };
            let out = q
                .send()
                .await
                .map_err(|e| classify("reading the deployment report", self.table(), e))?;
            items.extend(out.items().iter().cloned());
            match out.last_evaluated_key() {
                Some(key) => start = Some(key.clone()),
                None => return Ok(items),
            }
        }
    }
}

fn add_item(report: &mut DeploymentReport, item: &Item, group: Option<&Group>) -> Result<(), StoreError> {
    let corrupt = |e: crate::domain::InvalidValue| {
        StoreError::fatal(
            "reading the deployment report",
            "a report item holds a value that is not valid",
        )
        .with_source(e)
    };
    let region = Region::parse(get_s(item, "region")?).map_err(corrupt)?;
    let item_group = Group::parse(get_s(item, "group_name")?).map_err(corrupt)?;
    if group.is_some_and(|g| *g != item_group) {
        return Ok(());
    }
    let counts = report.entry((region, item_group)).or_default();
    for milestone in DeploymentMilestone::ALL {
        if item.contains_key(milestone.attribute()) {
            counts.add(milestone, get_n(item, milestone.attribute())?.max(0) as u64);
        }
    }
    let counter = |name: &str| -> Result<u64, StoreError> {
        match item.contains_key(name) {
            true => Ok(get_n(item, name)?.max(0) as u64),
            false => Ok(0),
        }
    };
    let outage = &mut counts.outage;
    outage.measured += counter(OUTAGES_MEASURED)?;
    outage.seconds += counter(OUTAGE_SECONDS)?;
    for bucket in OutageBucket::ALL {
        outage.buckets[bucket as usize] += counter(&bucket_attribute(bucket))?;
    }
    Ok(())
}
