//! Route 53: each hostname's alias A record to its load balancer, and the TXT record
//! that marks it as this product's.

use aws_sdk_route53::types::{
    AliasTarget as Route53Alias, Change, ChangeAction, ResourceRecord, ResourceRecordSet, RrType,
};

use super::cloud::{
    owner_in, ownership_name, ownership_text, AliasTarget, AwsCertificateCloud, CloudError, HostnameRecords,
};
use crate::domain::{Hostname, Region};

/// The ownership record changes only with the tenant; a long TTL costs nothing.
const OWNERSHIP_TTL: i64 = 300;

fn build_error(what: &str, e: aws_smithy_types::error::operation::BuildError) -> CloudError {
    CloudError::Fatal(format!("DNS record {what}: {e}"))
}

/// Whether Route 53's `name` (fully qualified, with the root's dot) is `expected`.
fn same_name(name: &str, expected: &str) -> bool {
    name.trim_end_matches('.').eq_ignore_ascii_case(expected)
}

impl AwsCertificateCloud {
    /// The one record set of `kind` at `name`, if there is one.
    async fn read_set(
        &self,
        region: &Region,
        hosted_zone_id: &str,
        name: &str,
        kind: RrType,
    ) -> Result<Option<ResourceRecordSet>, CloudError> {
        let out = self
            .aws
            .platform(region)
            .route53
            .list_resource_record_sets()
            .hosted_zone_id(hosted_zone_id)
            .start_record_name(name)
            .start_record_type(kind.clone())
            .max_items(1)
            .send()
            .await
            .map_err(|e| CloudError::from_sdk("Route 53 ListResourceRecordSets", e))?;
        Ok(out
            .resource_record_sets()
            .iter()
            .find(|set| same_name(set.name(), name) && *set.r#type() == kind)
            .cloned())
    }

    pub(super) async fn read_routes(
        &self,
        region: &Region,
        hosted_zone_id: &str,
        hostname: &Hostname,
    ) -> Result<HostnameRecords, CloudError> {
        let address = self
            .read_set(region, hosted_zone_id, hostname.as_str(), RrType::A)
            .await?;
        let ownership = self
            .read_set(region, hosted_zone_id, &ownership_name(hostname), RrType::Txt)
            .await?;
        let owner = ownership.as_ref().and_then(|set| {
            set.resource_records()
                .iter()
                .find_map(|r| owner_in(r.value()).map(str::to_owned))
        });
        let described = address.as_ref().map(|set| match set.alias_target() {
            Some(alias) => alias.dns_name().trim_end_matches('.').to_owned(),
            None => set
                .resource_records()
                .iter()
                .map(|r| r.value())
                .collect::<Vec<_>>()
                .join(", "),
        });
        // Only a marked record is ever deleted: the A record goes with our mark.
        let sets = match owner {
            Some(_) => address.into_iter().chain(ownership).collect(),
            None => Vec::new(),
        };
        Ok(HostnameRecords {
            address: described,
            owner,
            sets,
        })
    }

    pub(super) async fn upsert_route(
        &self,
        region: &Region,
        hosted_zone_id: &str,
        hostname: &Hostname,
        target: &AliasTarget,
        tenant: &str,
    ) -> Result<(), CloudError> {
        let name = hostname.as_str();
        let alias = Route53Alias::builder()
            .dns_name(&target.dns_name)
            .hosted_zone_id(&target.hosted_zone_id)
            .evaluate_target_health(false)
            .build()
            .map_err(|e| build_error(name, e))?;
        let address = ResourceRecordSet::builder()
            .name(name)
            .r#type(RrType::A)
            .alias_target(alias)
            .build()
            .map_err(|e| build_error(name, e))?;
        let ownership = ResourceRecordSet::builder()
            .name(ownership_name(hostname))
            .r#type(RrType::Txt)
            .ttl(OWNERSHIP_TTL)
            .resource_records(
                ResourceRecord::builder()
                    .value(format!("\"{}\"", ownership_text(tenant)))
                    .build()
                    .map_err(|e| build_error(name, e))?,
            )
            .build()
            .map_err(|e| build_error(name, e))?;
        self.change_routes(
            region,
            hosted_zone_id,
            ChangeAction::Upsert,
            vec![address, ownership],
            "Route 53 ChangeResourceRecordSets (UPSERT of a hostname's alias record)",
        )
        .await
    }

    pub(super) async fn delete_route(
        &self,
        region: &Region,
        hosted_zone_id: &str,
        hostname: &Hostname,
        records: &HostnameRecords,
    ) -> Result<(), CloudError> {
        if records.sets.is_empty() {
            return Ok(());
        }
        let what = "Route 53 ChangeResourceRecordSets (DELETE of a hostname's alias record)";
        match self
            .change_routes(
                region,
                hosted_zone_id,
                ChangeAction::Delete,
                records.sets.clone(),
                what,
            )
            .await
        {
            Err(CloudError::Fatal(reason)) => {
                // A DELETE must name the current values: one repeated after a lost
                // answer finds nothing, one racing a change finds other values.
                let now = self.read_routes(region, hosted_zone_id, hostname).await?;
                if now.sets.is_empty() {
                    Ok(())
                } else {
                    Err(CloudError::Retryable(format!(
                        "{reason}; the records of {hostname} changed meanwhile and are read again"
                    )))
                }
            }
            other => other,
        }
    }

    async fn change_routes(
        &self,
        region: &Region,
        hosted_zone_id: &str,
        action: ChangeAction,
        sets: Vec<ResourceRecordSet>,
        what: &str,
    ) -> Result<(), CloudError> {
        let changes = sets
            .into_iter()
            .map(|set| {
                Change::builder()
                    .action(action.clone())
                    .resource_record_set(set)
                    .build()
                    .map_err(|e| build_error("change", e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.send_changes(
            region,
            hosted_zone_id,
            "tenant hostname (tenant-orchestrator)",
            changes,
            what,
        )
        .await
    }
}
