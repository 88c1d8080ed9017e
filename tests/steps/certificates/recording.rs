//! `RecordingCloud`, a test double around the real [`AwsCertificateCloud`]: every
//! call goes to the local AWS unchanged, and is recorded in order. Before it lets a
//! detach through it checks, against AWS itself, that the hostnames that must stay
//! covered are on another attached, issued certificate — so "no hostname is ever
//! without a certificate" is checked at the very moment it could break. It can also
//! lose the response of a request (the request reaches ACM, the caller sees an error).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tenant_orchestrator::domain::{Hostname, Region};
use tenant_orchestrator::steps::certificates::cloud::{
    AliasTarget, CertificateCloud, CertificateDescription, CloudError, HostnameRecords, ValidationRecord,
};
use tenant_orchestrator::steps::certificates::AwsCertificateCloud;

use super::platform::Platform;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Request {
        token: String,
        names: Vec<String>,
        arn: String,
    },
    Upsert {
        records: usize,
    },
    Attach {
        listener: String,
        arn: String,
    },
    Detach {
        listener: String,
        arn: String,
    },
    Delete {
        arn: String,
    },
    WriteRoute {
        hostname: String,
    },
    DeleteRoute {
        hostname: String,
    },
}

pub struct RecordingCloud {
    inner: AwsCertificateCloud,
    platform: Arc<Platform>,
    calls: Mutex<Vec<Call>>,
    /// Hostnames that must stay on an attached, issued certificate.
    protected: Mutex<BTreeSet<String>>,
    violations: Mutex<Vec<String>>,
    lose_request_responses: AtomicUsize,
}

impl RecordingCloud {
    pub fn new(platform: Arc<Platform>) -> Arc<Self> {
        Arc::new(Self {
            inner: AwsCertificateCloud::new(platform.aws.clone()),
            platform,
            calls: Mutex::default(),
            protected: Mutex::default(),
            violations: Mutex::default(),
            lose_request_responses: AtomicUsize::new(0),
        })
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn requested(&self) -> Vec<(String, String)> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Request { token, arn, .. } => Some((token, arn)),
                _ => None,
            })
            .collect()
    }

    pub fn protected(&self) -> BTreeSet<String> {
        self.protected.lock().unwrap().clone()
    }

    pub fn protect(&self, names: impl IntoIterator<Item = String>) {
        self.protected.lock().unwrap().extend(names);
    }

    pub fn unprotect(&self, names: &[String]) {
        let mut protected = self.protected.lock().unwrap();
        for n in names {
            protected.remove(n);
        }
    }

    pub fn violations(&self) -> Vec<String> {
        self.violations.lock().unwrap().clone()
    }

    /// The next `count` requests reach ACM but their callers get an error back.
    pub fn lose_request_responses(&self, count: usize) {
        self.lose_request_responses.store(count, Ordering::SeqCst);
    }

    fn record(&self, call: Call) {
        self.calls.lock().unwrap().push(call);
    }
}

#[async_trait]
impl CertificateCloud for RecordingCloud {
    async fn request_certificate(
        &self,
        region: &Region,
        names: &[Hostname],
        token: &str,
        tags: &[(String, String)],
    ) -> Result<String, CloudError> {
        let arn = self.inner.request_certificate(region, names, token, tags).await?;
        self.record(Call::Request {
            token: token.to_owned(),
            names: names.iter().map(|n| n.to_string()).collect(),
            arn: arn.clone(),
        });
        let lose = self
            .lose_request_responses
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if lose {
            return Err(CloudError::Retryable(
                "connection reset before the response arrived".into(),
            ));
        }
        Ok(arn)
    }

    async fn describe_certificate(
        &self,
        region: &Region,
        arn: &str,
    ) -> Result<Option<CertificateDescription>, CloudError> {
        self.inner.describe_certificate(region, arn).await
    }

    async fn upsert_validation_records(
        &self,
        region: &Region,
        hosted_zone_id: &str,
        records: &[ValidationRecord],
    ) -> Result<(), CloudError> {
        self.inner
            .upsert_validation_records(region, hosted_zone_id, records)
            .await?;
        self.record(Call::Upsert {
            records: records.len(),
        });
        Ok(())
    }

    async fn attach_certificate(
        &self,
        region: &Region,
        listener_arn: &str,
        arn: &str,
    ) -> Result<(), CloudError> {
        self.inner.attach_certificate(region, listener_arn, arn).await?;
        self.record(Call::Attach {
            listener: listener_arn.to_owned(),
            arn: arn.to_owned(),
        });
        Ok(())
    }

    async fn detach_certificate(
        &self,
        region: &Region,
        listener_arn: &str,
        arn: &str,
    ) -> Result<(), CloudError> {
        let protected = self.protected.lock().unwrap().clone();
        let attached = self.platform.attached_certificates().await;
        if let Some(leaving) = attached.iter().find(|c| c.arn == arn) {
            for name in leaving.names.iter().filter(|n| protected.contains(*n)) {
                let elsewhere = attached
                    .iter()
                    .any(|c| c.arn != arn && c.issued && c.names.contains(name));
                if !elsewhere {
                    self.violations.lock().unwrap().push(format!(
                        "detaching {arn} would leave {name} without a certificate"
                    ));
                }
            }
        }
        self.record(Call::Detach {
            listener: listener_arn.to_owned(),
            arn: arn.to_owned(),
        });
        self.inner.detach_certificate(region, listener_arn, arn).await
    }

    async fn delete_certificate(&self, region: &Region, arn: &str) -> Result<(), CloudError> {
        self.record(Call::Delete { arn: arn.to_owned() });
        self.inner.delete_certificate(region, arn).await
    }

    async fn listener_alias_target(
        &self,
        region: &Region,
        listener_arn: &str,
    ) -> Result<AliasTarget, CloudError> {
        self.inner.listener_alias_target(region, listener_arn).await
    }

    async fn read_hostname_records(
        &self,
        region: &Region,
        hosted_zone_id: &str,
        hostname: &Hostname,
    ) -> Result<HostnameRecords, CloudError> {
        self.inner
            .read_hostname_records(region, hosted_zone_id, hostname)
            .await
    }

    async fn upsert_hostname_records(
        &self,
        region: &Region,
        hosted_zone_id: &str,
        hostname: &Hostname,
        target: &AliasTarget,
        tenant: &str,
    ) -> Result<(), CloudError> {
        self.inner
            .upsert_hostname_records(region, hosted_zone_id, hostname, target, tenant)
            .await?;
        self.record(Call::WriteRoute {
            hostname: hostname.to_string(),
        });
        Ok(())
    }

    async fn delete_hostname_records(
        &self,
        region: &Region,
        hosted_zone_id: &str,
        hostname: &Hostname,
        records: &HostnameRecords,
    ) -> Result<(), CloudError> {
        self.inner
            .delete_hostname_records(region, hosted_zone_id, hostname, records)
            .await?;
        self.record(Call::DeleteRoute {
            hostname: hostname.to_string(),
        });
        Ok(())
    }
}
