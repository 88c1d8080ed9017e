//! Each hostname's Route 53 record: an alias A record to the load balancer whose
//! listener carries the hostname's certificate, marked as the tenant's by a TXT record
//! (`_tenantctl.<hostname>`). Only marked records are changed or deleted: an A record
//! someone else made is left alone, and a hostname that has one is refused.

use std::collections::BTreeMap;

use tracing::{info, warn};

use super::cloud::{ownership_name, AliasTarget, CertificateCloud, CloudError};
use crate::domain::{Hostname, Region, TenantId};

/// One tenant's records in one hosted zone.
pub(super) struct Routes<'a> {
    pub cloud: &'a dyn CertificateCloud,
    pub region: &'a Region,
    pub hosted_zone_id: &'a str,
    pub tenant: &'a TenantId,
}

fn same_target(address: &str, target: &AliasTarget) -> bool {
    address
        .trim_end_matches('.')
        .eq_ignore_ascii_case(target.dns_name.trim_end_matches('.'))
}

impl Routes<'_> {
    /// Points each hostname at the load balancer of the listener given with it. A
    /// record already pointing there is not written again.
    pub async fn point(&self, names: &[(Hostname, String)]) -> Result<usize, CloudError> {
        let mut targets: BTreeMap<&str, AliasTarget> = BTreeMap::new();
        let mut written = 0;
        for (name, listener) in names {
            let target = match targets.get(listener.as_str()) {
                Some(t) => t.clone(),
                None => {
                    let t = self.cloud.listener_alias_target(self.region, listener).await?;
                    targets.insert(listener, t.clone());
                    t
                }
            };
            let records = self
                .cloud
                .read_hostname_records(self.region, self.hosted_zone_id, name)
                .await?;
            match (records.owner.as_deref(), records.address.as_deref()) {
                (Some(owner), Some(address))
                    if owner == self.tenant.as_str() && same_target(address, &target) =>
                {
                    continue
                }
                (Some(owner), _) if owner == self.tenant.as_str() => {}
                (Some(other), _) => {
                    return Err(CloudError::Fatal(format!(
                    "hostname {name}: its record in hosted zone {} belongs to tenant {other} (says the TXT \
                         record {}); a hostname belongs to one tenant only: remove it from that tenant first",
                    self.hosted_zone_id,
                    ownership_name(name)
                )))
                }
                (None, Some(address)) => {
                    return Err(CloudError::Fatal(format!(
                        "hostname {name} already has an A record in hosted zone {} (to {address}) that \
                         tenant-orchestrator did not make; delete that record (or take the hostname off the \
                         tenant) and retry",
                        self.hosted_zone_id
                    )))
                }
                (None, None) => {}
            }
            self.cloud
                .upsert_hostname_records(
                    self.region,
                    self.hosted_zone_id,
                    name,
                    &target,
                    self.tenant.as_str(),
                )
                .await?;
            info!(hostname = %name, target = %target.dns_name, "hostname record written");
            written += 1;
        }
        Ok(written)
    }

    /// Deletes the tenant's records of `names`; a record that is not the tenant's
    /// stays. Returns how many were deleted.
    pub async fn remove<'n>(
        &self,
        names: impl IntoIterator<Item = &'n Hostname>,
    ) -> Result<usize, CloudError> {
        let mut removed = 0;
        for name in names {
            let records = self
                .cloud
                .read_hostname_records(self.region, self.hosted_zone_id, name)
                .await?;
            match records.owner.as_deref() {
                Some(owner) if owner == self.tenant.as_str() => {
                    self.cloud
                        .delete_hostname_records(self.region, self.hosted_zone_id, name, &records)
                        .await?;
                    info!(hostname = %name, "hostname record deleted");
                    removed += 1;
                }
                owner => {
                    if let Some(address) = &records.address {
                        warn!(hostname = %name, %address, owner = owner.unwrap_or("nobody"),
                            "hostname has an A record that is not this tenant's; left in place");
                    }
                }
            }
        }
        Ok(removed)
    }
}
