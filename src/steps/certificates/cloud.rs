//! The AWS calls the certificate steps make, behind one small trait so the order of
//! calls can be observed in tests. [`AwsCertificateCloud`] is the implementation on the
//! official SDK; its calls live in `acm.rs`, `dns.rs` and `listener.rs`.

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
}

/// The certificate calls on the AWS SDK, with per-region clients.
pub struct AwsCertificateCloud {
    pub(super) aws: Arc<AwsClients>,
}

impl AwsCertificateCloud {
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
}
