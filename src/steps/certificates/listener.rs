//! ELBv2: the certificate list of the shared ALB's HTTPS listeners.

use aws_sdk_elasticloadbalancingv2::types::Certificate;

use super::cloud::{AwsCertificateCloud, CloudError};
use crate::domain::Region;

impl AwsCertificateCloud {
    pub(super) async fn attach(
        &self,
        region: &Region,
        listener_arn: &str,
        arn: &str,
    ) -> Result<(), CloudError> {
        match self
            .aws
            .region(region)
            .elbv2
            .add_listener_certificates()
            .listener_arn(listener_arn)
            .certificates(Certificate::builder().certificate_arn(arn).build())
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(s) if s.is_too_many_certificates_exception() => Err(CloudError::Fatal(format!(
                    "listener {listener_arn} refuses more certificates (TooManyCertificates): set \
                     certificates.certificates_per_listener to the listener's real quota, or add a listener"
                ))),
                Some(s) if s.is_listener_not_found_exception() => Err(CloudError::Fatal(format!(
                    "listener {listener_arn} does not exist; check listener_arns of region {region}"
                ))),
                _ => Err(CloudError::from_sdk("ELBv2 AddListenerCertificates", e)),
            },
        }
    }

    pub(super) async fn detach(
        &self,
        region: &Region,
        listener_arn: &str,
        arn: &str,
    ) -> Result<(), CloudError> {
        match self
            .aws
            .region(region)
            .elbv2
            .remove_listener_certificates()
            .listener_arn(listener_arn)
            .certificates(Certificate::builder().certificate_arn(arn).build())
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // A listener that is gone, or does not hold the certificate, is what we want.
            Err(e)
                if e.as_service_error().is_some_and(|s| {
                    s.is_listener_not_found_exception() || s.meta().code() == Some("CertificateNotFound")
                }) =>
            {
                Ok(())
            }
            Err(e) => Err(CloudError::from_sdk("ELBv2 RemoveListenerCertificates", e)),
        }
    }
}
