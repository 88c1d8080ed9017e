//! The AWS calls the certificate steps make, behind one small trait so the order of
//! calls can be observed in tests. [`AwsCertificateCloud`] is the implementation on the
//! official SDK; its calls live in `acm.rs`, `dns.rs`, `routes_dns.rs` and `listener.rs`.

use std::sync::Arc;

use async_trait::async_trait;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::domain::{Hostname, Region};
use crate::step::StepOutcome;
use crate::steps::{aws_failure, AwsClients};

/// Why a call failed, by what the caller should do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloudError {
    /// Throttling, timeouts, 5xx: the same call may succeed later.
    #[error("{0}")]
    Retryable(String),
    /// The certificate is still associated with a listener (AWS takes a moment after
    /// a detach): try again shortly.
    #[error("{0}")]
    InUse(String),
    #[error("{0}")]
    Fatal(String),
    /// No token is left for the call in the region (rate limit): wait, no attempt used.
    #[error(transparent)]
    Throttled(crate::steps::rate_limits::Throttled),
}

impl CloudError {
    /// Classifies an SDK failure with the steps' shared rules.
    pub fn from_sdk<E, R>(what: &str, err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug,
    {
        match aws_failure(what, err) {
            StepOutcome::Failed {
                retryable: true,
                reason,
            } => CloudError::Retryable(reason),
            StepOutcome::Failed { reason, .. } => CloudError::Fatal(reason),
            other => CloudError::Fatal(format!("{what}: {other:?}")),
        }
    }
}

/// Where a certificate stands in ACM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueStatus {
    /// Not issued yet (`PENDING_VALIDATION`).
    Pending(String),
    Issued,
    /// Will never be issued (`FAILED`, `VALIDATION_TIMED_OUT`, `REVOKED`, …), with ACM's reason.
    Failed(String),
}

/// A DNS record ACM checks to validate a name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ValidationRecord {
    pub name: String,
    pub kind: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateDescription {
    pub status: IssueStatus,
    /// Subject alternative names.
    pub names: Vec<String>,
    /// Validation records ACM has published so far (it takes a few seconds after a request).
    pub validation: Vec<ValidationRecord>,
}

/// Where an alias record sends a hostname: a load balancer's DNS name and the
/// canonical hosted zone of its region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasTarget {
    pub dns_name: String,
    pub hosted_zone_id: String,
}

/// A hostname's address record (type A) and its ownership record (type TXT at
/// [`ownership_name`]) as they are in the hosted zone. `sets` are the records as
/// Route 53 returned them, since a DELETE must name the current values exactly.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostnameRecords {
    /// What the A record points at (an alias target's DNS name, or its values), if
    /// there is one.
    pub address: Option<String>,
    /// The tenant the ownership record names, if there is one of this product's.
    pub owner: Option<String>,
    pub(super) sets: Vec<aws_sdk_route53::types::ResourceRecordSet>,
}

/// The TXT record that marks a hostname's A record as made by this product for one
/// tenant; a record without it is someone else's and is never changed or deleted.
pub fn ownership_name(hostname: &Hostname) -> String {
    format!("_tenantctl.{hostname}")
}

/// The text of the ownership record of `tenant` (without TXT quoting).
pub fn ownership_text(tenant: &str) -> String {
    format!("tenant-orchestrator tenant={tenant}")
}

/// The tenant an ownership record's text names, if it is one of ours.
pub fn owner_in(text: &str) -> Option<&str> {
    text.trim_matches('"').strip_prefix("tenant-orchestrator tenant=")
}

#[async_trait]
pub trait CertificateCloud: Send + Sync {
    /// Requests a DNS-validated certificate for `names` (the first is the domain
    /// name). The same token returns the same certificate instead of a new one.
    async fn request_certificate(
        &self,
        region: &Region,
        names: &[Hostname],
        token: &str,
        tags: &[(String, String)],
    ) -> Result<String, CloudError>;

    /// `None` when the certificate does not exist (any more).
    async fn describe_certificate(
        &self,
        region: &Region,
        arn: &str,
    ) -> Result<Option<CertificateDescription>, CloudError>;

    /// UPSERTs the records into the hosted zone.
    async fn upsert_validation_records(
        &self,
        region: &Region,
        hosted_zone_id: &str,
        records: &[ValidationRecord],
    ) -> Result<(), CloudError>;

    /// Adds the certificate to the listener's certificate list; adding one that is
    /// there already changes nothing.
    async fn attach_certificate(
        &self,
        region: &Region,
        listener_arn: &str,
        arn: &str,
    ) -> Result<(), CloudError>;

    /// Removes the certificate from the listener; one that is not there is fine.
    async fn detach_certificate(
        &self,
        region: &Region,
        listener_arn: &str,
        arn: &str,
    ) -> Result<(), CloudError>;

    /// Deletes the certificate; one that is gone already is fine.
    async fn delete_certificate(&self, region: &Region, arn: &str) -> Result<(), CloudError>;

    /// The load balancer a listener belongs to, as an alias target.
    async fn listener_alias_target(
        &self,
        region: &Region,
        listener_arn: &str,
    ) -> Result<AliasTarget, CloudError>;

    /// The hostname's A record and ownership record in the hosted zone.
    async fn read_hostname_records(
        &self,
        region: &Region,
        hosted_zone_id: &str,
        hostname: &Hostname,
    ) -> Result<HostnameRecords, CloudError>;

    /// UPSERTs the hostname's alias A record and the ownership record naming `tenant`,
    /// in one change batch (Route 53 applies a batch whole or not at all).
    async fn upsert_hostname_records(
        &self,
        region: &Region,
        hosted_zone_id: &str,
        hostname: &Hostname,
        target: &AliasTarget,
        tenant: &str,
    ) -> Result<(), CloudError>;

    /// Deletes the records as read, in one change batch; records that are gone
    /// already are fine.
    async fn delete_hostname_records(
        &self,
        region: &Region,
        hosted_zone_id: &str,
        hostname: &Hostname,
        records: &HostnameRecords,
    ) -> Result<(), CloudError>;
}

/// The certificate calls on the AWS SDK, with per-region clients.
pub struct AwsCertificateCloud {
    pub(super) aws: Arc<AwsClients>,
}

impl AwsCertificateCloud {
    /// Takes a token for one call of `service` on the shared platform of `region`.
    pub(super) async fn admit(
        &self,
        service: crate::steps::rate_limits::LimitedService,
        region: &Region,
    ) -> Result<(), CloudError> {
        use crate::steps::rate_limits::Admission;
        self.aws
            .admit_platform(service, region)
            .await
            .map_err(|e| match e {
                Admission::Wait(throttled) => CloudError::Throttled(throttled),
                unavailable => CloudError::Retryable(unavailable.to_string()),
            })
    }

    pub fn new(aws: Arc<AwsClients>) -> Self {
        Self { aws }
    }
}

#[async_trait]
impl CertificateCloud for AwsCertificateCloud {
    async fn request_certificate(
        &self,
        region: &Region,
        names: &[Hostname],
        token: &str,
        tags: &[(String, String)],
    ) -> Result<String, CloudError> {
        self.request(region, names, token, tags).await
    }

    async fn describe_certificate(
        &self,
        region: &Region,
        arn: &str,
    ) -> Result<Option<CertificateDescription>, CloudError> {
        self.describe(region, arn).await
    }

    async fn upsert_validation_records(
        &self,
        region: &Region,
        hosted_zone_id: &str,
        records: &[ValidationRecord],
    ) -> Result<(), CloudError> {
        self.upsert_records(region, hosted_zone_id, records).await
    }

    async fn attach_certificate(
        &self,
        region: &Region,
        listener_arn: &str,
        arn: &str,
    ) -> Result<(), CloudError> {
        self.attach(region, listener_arn, arn).await
    }

    async fn detach_certificate(
        &self,
        region: &Region,
        listener_arn: &str,
        arn: &str,
    ) -> Result<(), CloudError> {
        self.detach(region, listener_arn, arn).await
    }

    async fn delete_certificate(&self, region: &Region, arn: &str) -> Result<(), CloudError> {
        self.delete(region, arn).await
    }

    async fn listener_alias_target(
        &self,
        region: &Region,
        listener_arn: &str,
    ) -> Result<AliasTarget, CloudError> {
        self.alias_target(region, listener_arn).await
    }

    async fn read_hostname_records(
        &self,
        region: &Region,
        hosted_zone_id: &str,
        hostname: &Hostname,
    ) -> Result<HostnameRecords, CloudError> {
        self.read_routes(region, hosted_zone_id, hostname).await
    }

    async fn upsert_hostname_records(
        &self,
        region: &Region,
        hosted_zone_id: &str,
        hostname: &Hostname,
        target: &AliasTarget,
        tenant: &str,
    ) -> Result<(), CloudError> {
        self.upsert_route(region, hosted_zone_id, hostname, target, tenant)
            .await
    }

    async fn delete_hostname_records(
        &self,
        region: &Region,
        hosted_zone_id: &str,
        hostname: &Hostname,
        records: &HostnameRecords,
    ) -> Result<(), CloudError> {
        self.delete_route(region, hosted_zone_id, hostname, records).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ownership_record_names_its_tenant_and_other_text_names_nobody() {
        let text = ownership_text("acme");
        assert_eq!(owner_in(&text), Some("acme"));
        // Route 53 returns TXT values quoted.
        assert_eq!(owner_in(&format!("\"{text}\"")), Some("acme"));
        assert_eq!(owner_in("\"v=spf1 -all\""), None);
        assert_eq!(
            owner_in("\"heritage=external-dns,external-dns/owner=default\""),
            None
        );
        let name = Hostname::parse("acme.example.com").unwrap();
        assert_eq!(ownership_name(&name), "_tenantctl.acme.example.com");
    }
}
