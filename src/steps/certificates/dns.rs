//! Route 53: the CNAME records ACM checks before it issues a certificate.

use std::collections::BTreeMap;

use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType};

use super::cloud::{AwsCertificateCloud, CloudError, ValidationRecord};
use crate::domain::Region;

/// Validation records stay after issuance: ACM renews the certificate through them.
const VALIDATION_TTL: i64 = 300;

impl AwsCertificateCloud {
    pub(super) async fn upsert_records(
        &self,
        region: &Region,
        hosted_zone_id: &str,
        records: &[ValidationRecord],
    ) -> Result<(), CloudError> {
        // Names under one domain share a record; Route 53 refuses a batch that
        // names the same record twice.
        let unique: BTreeMap<&str, &ValidationRecord> =
            records.iter().map(|r| (r.name.as_str(), r)).collect();
        let build = |what: &str, e: aws_smithy_types::error::operation::BuildError| {
            CloudError::Fatal(format!("validation record {what}: {e}"))
        };
        let mut changes = Vec::with_capacity(unique.len());
        for record in unique.values() {
            let set = ResourceRecordSet::builder()
                .name(&record.name)
                .r#type(RrType::from(record.kind.as_str()))
                .ttl(VALIDATION_TTL)
                .resource_records(
                    ResourceRecord::builder()
                        .value(&record.value)
                        .build()
                        .map_err(|e| build(&record.name, e))?,
                )
                .build()
                .map_err(|e| build(&record.name, e))?;
            changes.push(
                Change::builder()
                    .action(ChangeAction::Upsert)
                    .resource_record_set(set)
                    .build()
                    .map_err(|e| build(&record.name, e))?,
            );
        }
        if changes.is_empty() {
            return Ok(());
        }
        self.send_changes(
            region,
            hosted_zone_id,
            "ACM DNS validation (tenant-orchestrator)",
            changes,
            "Route 53 ChangeResourceRecordSets",
        )
        .await
    }

    /// Sends `changes` to the hosted zone as one batch: Route 53 applies all or none.
    pub(super) async fn send_changes(
        &self,
        region: &Region,
        hosted_zone_id: &str,
        comment: &str,
        changes: Vec<Change>,
        what: &str,
    ) -> Result<(), CloudError> {
        let batch = ChangeBatch::builder()
            .comment(comment)
            .set_changes(Some(changes))
            .build()
            .map_err(|e| CloudError::Fatal(format!("Route 53 change batch: {e}")))?;
        self.admit(crate::steps::rate_limits::LimitedService::Route53, region)
            .await?;
        self.aws
            .platform(region)
            .route53
            .change_resource_record_sets()
            .hosted_zone_id(hosted_zone_id)
            .change_batch(batch)
            .send()
            .await
            .map_err(|e| CloudError::from_sdk(what, e))?;
        Ok(())
    }
}
