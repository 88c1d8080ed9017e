//! ACM: request, describe and delete the shared certificates.

use aws_sdk_acm::types::{CertificateStatus, Tag, ValidationMethod};

use super::cloud::{AwsCertificateCloud, CertificateDescription, CloudError, IssueStatus, ValidationRecord};
use crate::domain::{Hostname, Region};
use crate::steps::rate_limits::LimitedService;

impl AwsCertificateCloud {
    pub(super) async fn request(
        &self,
        region: &Region,
        names: &[Hostname],
        token: &str,
        tags: &[(String, String)],
    ) -> Result<String, CloudError> {
        let Some(domain) = names.first() else {
            return Err(CloudError::Fatal("a certificate needs at least one name".into()));
        };
        let tags = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CloudError::Fatal(format!("certificate tags: {e}")))?;
        self.admit(LimitedService::Acm, region).await?;
        let out = self
            .aws
            .platform(region)
            .acm
            .request_certificate()
            .domain_name(domain.as_str())
            .set_subject_alternative_names(Some(names.iter().map(|n| n.to_string()).collect()))
            .validation_method(ValidationMethod::Dns)
            .idempotency_token(token)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| CloudError::from_sdk("ACM RequestCertificate", e))?;
        out.certificate_arn()
            .map(str::to_owned)
            .ok_or_else(|| CloudError::Fatal("ACM RequestCertificate returned no certificate ARN".into()))
    }

    pub(super) async fn describe(
        &self,
        region: &Region,
        arn: &str,
    ) -> Result<Option<CertificateDescription>, CloudError> {
        let out = match self
            .aws
            .platform(region)
            .acm
            .describe_certificate()
            .certificate_arn(arn)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(CloudError::from_sdk("ACM DescribeCertificate", e)),
        };
        let Some(detail) = out.certificate() else {
            return Ok(None);
        };
        let status = match detail.status() {
            Some(CertificateStatus::Issued) => IssueStatus::Issued,
            Some(CertificateStatus::PendingValidation) | None => {
                IssueStatus::Pending(CertificateStatus::PendingValidation.as_str().to_owned())
            }
            Some(other) => IssueStatus::Failed(match detail.failure_reason() {
                Some(reason) => format!("{} ({})", other.as_str(), reason.as_str()),
                None => other.as_str().to_owned(),
            }),
        };
        let validation = detail
            .domain_validation_options()
            .iter()
            .filter_map(|d| d.resource_record())
            .map(|r| ValidationRecord {
                name: r.name().to_owned(),
                kind: r.r#type().as_str().to_owned(),
                value: r.value().to_owned(),
            })
            .collect();
        Ok(Some(CertificateDescription {
            status,
            names: detail.subject_alternative_names().to_vec(),
            validation,
        }))
    }

    pub(super) async fn delete(&self, region: &Region, arn: &str) -> Result<(), CloudError> {
        self.admit(LimitedService::Acm, region).await?;
        match self
            .aws
            .platform(region)
            .acm
            .delete_certificate()
            .certificate_arn(arn)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(s) if s.is_resource_not_found_exception() => Ok(()),
                Some(s) if s.is_resource_in_use_exception() => Err(CloudError::InUse(format!(
                    "certificate {arn} is still in use; a listener lets go of it shortly after a detach"
                ))),
                _ => Err(CloudError::from_sdk("ACM DeleteCertificate", e)),
            },
        }
    }
}
