//! EnsureCertificates and ReleaseCertificates: tenant hostnames packed into shared ACM
//! certificates attached to the region's ALB listeners.
//!
//! * [`allocator`] decides which slot (certificate) each hostname goes to — pure;
//! * [`slot`] is one slot's record and the order its certificate changes in — pure;
//! * [`issuance`] decides the next action on a slot — pure;
//! * the store ([`crate::ports::CertificateSlotStore`]) keeps the slots in the tenant
//!   table with conditional writes;
//! * [`cloud`] (ACM, Route 53, ELBv2 through the SDK) and [`driver`] carry actions out;
//! * `routes` keeps each hostname's DNS record pointing at its listener's load balancer;
//! * [`step`] runs the two steps.

mod acm;
pub mod allocator;
pub mod cloud;
mod dns;
pub mod driver;
pub mod issuance;
mod listener;
mod routes;
mod routes_dns;
pub mod step;

pub use cloud::{AliasTarget, AwsCertificateCloud, CertificateCloud, CloudError, HostnameRecords};
pub use step::CertificateStep;

use serde::{Deserialize, Serialize};

/// Settings of the certificate steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CertificateConfig {
    /// Hostnames packed into one certificate. ACM allows 10 names per certificate
    /// unless the account's quota was raised (up to 100).
    pub names_per_certificate: usize,
    /// Certificates the orchestrator may have attached to one listener at once, not
    /// counting the listener's default certificate. A replacement is attached before
    /// the certificate it replaces leaves, so one place is kept free for that and a
    /// listener carries at most this many minus one certificates when nothing changes.
    pub certificates_per_listener: usize,
    /// How often a step looks at a certificate being issued.
    pub poll_seconds: u64,
    /// How long a new certificate's names stay open to other tenants before it is
    /// requested, so tenants provisioned together share one issuance.
    pub gather_seconds: u64,
}

impl Default for CertificateConfig {
    fn default() -> Self {
        Self {
            names_per_certificate: 10,
            certificates_per_listener: 25,
            poll_seconds: 5,
            gather_seconds: 10,
        }
    }
}

impl CertificateConfig {
    /// A configuration the steps cannot work with, explained.
    pub fn problem(&self) -> Option<String> {
        if !(1..=100).contains(&self.names_per_certificate) {
            return Some(format!(
                "certificates.names_per_certificate is {}; ACM takes 1 to 100 names per certificate",
                self.names_per_certificate
            ));
        }
        if self.certificates_per_listener < 2 {
            return Some(format!(
                "certificates.certificates_per_listener is {}; it must be at least 2 (one place is kept \
                 for replacing a certificate)",
                self.certificates_per_listener
            ));
        }
        None
    }

    pub fn limits(&self) -> allocator::Limits {
        allocator::Limits {
            names_per_certificate: self.names_per_certificate,
            certificates_per_listener: self.certificates_per_listener,
        }
    }
}
