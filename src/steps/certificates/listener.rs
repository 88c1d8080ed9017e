//! ELBv2: the certificate list of the shared ALB's HTTPS listeners, and the load
//! balancer a listener belongs to (where hostnames are routed).

use aws_sdk_elasticloadbalancingv2::types::Certificate;

use super::cloud::{AliasTarget, AwsCertificateCloud, CloudError};
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
            .platform(region)
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
            .platform(region)
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

impl AwsCertificateCloud {
    /// The listener's load balancer: its DNS name and canonical hosted zone, which an
    /// alias record needs.
    pub(super) async fn alias_target(
        &self,
        region: &Region,
        listener_arn: &str,
    ) -> Result<AliasTarget, CloudError> {
        let elbv2 = &self.aws.platform(region).elbv2;
        let listeners = match elbv2
            .describe_listeners()
            .listener_arns(listener_arn)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_listener_not_found_exception()) =>
            {
                return Err(CloudError::Fatal(format!(
                    "listener {listener_arn} does not exist; check listener_arns of region {region}"
                )))
            }
            Err(e) => return Err(CloudError::from_sdk("ELBv2 DescribeListeners", e)),
        };
        let Some(lb_arn) = listeners.listeners().first().and_then(|l| l.load_balancer_arn()) else {
            return Err(CloudError::Fatal(format!(
                "ELBv2 names no load balancer for listener {listener_arn}"
            )));
        };
        let described = elbv2
            .describe_load_balancers()
            .load_balancer_arns(lb_arn)
            .send()
            .await
            .map_err(|e| CloudError::from_sdk("ELBv2 DescribeLoadBalancers", e))?;
        let lb = described.load_balancers().first();
        match (
            lb.and_then(|lb| lb.dns_name()),
            lb.and_then(|lb| lb.canonical_hosted_zone_id()),
        ) {
            (Some(dns_name), Some(zone)) => Ok(AliasTarget {
                dns_name: dns_name.to_owned(),
                hosted_zone_id: zone.to_owned(),
            }),
            _ => Err(CloudError::Fatal(format!(
                "load balancer {lb_arn} of listener {listener_arn} has no DNS name or canonical hosted zone"
            ))),
        }
    }
}
