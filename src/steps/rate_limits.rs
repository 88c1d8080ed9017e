//! Rate limits on the account-limited AWS calls the steps make. Before such a call a
//! step takes a token from the bucket of the service in the tenant's region (shared
//! through the table by every worker, see [`RateLimiter`]); when none is left the
//! step reports `Pending` with the wait as its poll-after, so the worker moves on to
//! other tenants and the wait costs no attempt.
//!
//! The defaults are below AWS's published default quotas (per account and region
//! unless said), leaving room for the rest of the account's callers; every quota is
//! adjustable with AWS, and so is each limit here:
//!
//! | service | calls limited | AWS default | default here |
//! |---|---|---|---|
//! | `cloudformation` | CreateStack, UpdateStack, CreateChangeSet, ExecuteChangeSet, DeleteStack | not published per call; throttles at a few calls per second | 1/s, burst 5 |
//! | `rds` | CreateDBClusterSnapshot, DeleteDBClusterSnapshot | whole RDS API: 12/s sustained, burst 300 | 4/s, burst 20 |
//! | `acm` | RequestCertificate, DeleteCertificate | RequestCertificate 5/s | 2/s, burst 5 |
//! | `route53` | ChangeResourceRecordSets | whole API: 5/s per account (global) | 2/s, burst 5 |
//!
//! Each account has buckets of its own, since AWS counts these rates per account:
//! the calls for a tenant take from the buckets of its target's account (the
//! orchestrator's own when it has no target), the certificate and DNS calls on a
//! region's shared platform from those of the region's platform account. The limits
//! configured apply to each account alike.
//!
//! Route 53 is global: an account's one bucket is kept under `us-east-1` whatever the
//! tenant's region, so four regions together stay under the account's rate.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::Region;
use crate::ports::{Acquired, BucketKey, BucketShape, RateLimiter};
use crate::record::TenantFacts;
use crate::step::StepOutcome;

/// The AWS services whose mutating calls are rate-limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitedService {
    CloudFormation,
    Rds,
    Acm,
    Route53,
}

impl LimitedService {
    pub const ALL: [LimitedService; 4] = [Self::CloudFormation, Self::Rds, Self::Acm, Self::Route53];

    /// The name in the configuration and in the bucket's key.
    pub fn name(self) -> &'static str {
        match self {
            Self::CloudFormation => "cloudformation",
            Self::Rds => "rds",
            Self::Acm => "acm",
            Self::Route53 => "route53",
        }
    }

    /// The region whose bucket a call in `region` takes from.
    fn bucket_region(self, region: &Region) -> Region {
        match self {
            Self::Route53 => Region::parse("us-east-1").expect("us-east-1 is a region"),
            _ => region.clone(),
        }
    }

    /// The limited calls one tenant upgrade makes at most, when nothing is retried:
    /// UpdateInfra creates and executes a change set; Backup creates a snapshot and
    /// retention deletes one; EnsureCertificates requests at most one certificate (a
    /// new hostname) and writes the validation and alias records in two batches.
    pub fn calls_per_upgrade(self) -> u32 {
        match self {
            Self::CloudFormation => 2,
            Self::Rds => 2,
            Self::Acm => 1,
            Self::Route53 => 2,
        }
    }
}

/// One bucket: `rate_per_second` tokens a second, at most `burst` saved up.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    pub rate_per_second: f64,
    pub burst: u32,
}

impl Limit {
    fn shape(self) -> BucketShape {
        BucketShape {
            rate_per_second: self.rate_per_second,
            burst: self.burst,
        }
    }
}

/// A service's limit, and the regions where it differs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceLimits {
    pub rate_per_second: f64,
    pub burst: u32,
    /// Per region name, a limit other than the service's (a raised quota).
    #[serde(default)]
    pub regions: BTreeMap<String, Limit>,
}

impl ServiceLimits {
    fn new(rate_per_second: f64, burst: u32) -> Self {
        Self {
            rate_per_second,
            burst,
            regions: BTreeMap::new(),
        }
    }

    pub fn in_region(&self, region: &Region) -> Limit {
        self.regions.get(region.as_str()).copied().unwrap_or(Limit {
            rate_per_second: self.rate_per_second,
            burst: self.burst,
        })
    }
}

/// Steps configuration `rate_limits`: one limit per service, optionally per region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitsConfig {
    /// Off, the steps call AWS as fast as they run (a local stand-in, a test).
    pub enabled: bool,
    pub cloudformation: ServiceLimits,
    pub rds: ServiceLimits,
    pub acm: ServiceLimits,
    pub route53: ServiceLimits,
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            cloudformation: ServiceLimits::new(1.0, 5),
            rds: ServiceLimits::new(4.0, 20),
            acm: ServiceLimits::new(2.0, 5),
            route53: ServiceLimits::new(2.0, 5),
        }
    }
}

impl RateLimitsConfig {
    pub fn service(&self, service: LimitedService) -> &ServiceLimits {
        match service {
            LimitedService::CloudFormation => &self.cloudformation,
            LimitedService::Rds => &self.rds,
            LimitedService::Acm => &self.acm,
            LimitedService::Route53 => &self.route53,
        }
    }

    /// The limit of `service` for calls in `region`.
    pub fn limit(&self, service: LimitedService, region: &Region) -> Limit {
        let region = service.bucket_region(region);
        self.service(service).in_region(&region)
    }

    /// Every limit that is not a positive rate with a burst of at least one, named.
    pub fn validate(&self) -> Result<(), String> {
        for service in LimitedService::ALL {
            let limits = self.service(service);
            let named = std::iter::once((String::new(), limits.rate_per_second, limits.burst)).chain(
                (limits.regions.iter()).map(|(r, l)| (format!(".regions.{r}"), l.rate_per_second, l.burst)),
            );
            for (at, rate, burst) in named {
                if !(rate.is_finite() && rate > 0.0) || burst == 0 {
                    return Err(format!(
                        "rate_limits.{}{at}: rate_per_second must be a positive number and burst at least 1 (got {rate} and {burst})",
                        service.name()
                    ));
                }
            }
        }
        Ok(())
    }

    /// The shortest time between two upgrade starts in `region` that keeps every
    /// limited service under its rate: the slowest service, given the calls each
    /// upgrade makes of it. `None` when the limits are off.
    pub fn upgrade_spacing(&self, region: &Region) -> Option<Duration> {
        if !self.enabled {
            return None;
        }
        LimitedService::ALL
            .iter()
            .map(|&s| {
                Duration::from_secs_f64(
                    f64::from(s.calls_per_upgrade()) / self.limit(s, region).rate_per_second,
                )
            })
            .max()
    }
}

/// The limiter and the limits the steps take their tokens with.
#[derive(Clone)]
pub struct Throttle {
    limiter: Arc<dyn RateLimiter>,
    config: RateLimitsConfig,
}

/// A call that must wait for a token, as the step's `Pending` outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("waiting {wait:?} for a {service} token in {region} (rate limit)")]
pub struct Throttled {
    pub service: &'static str,
    pub region: String,
    pub wait: Duration,
}

impl Throttled {
    /// The step waits with the facts it was given: nothing it did is lost, since
    /// the limited call is the first thing a run that was throttled would send.
    pub fn into_outcome(self, facts: &TenantFacts) -> StepOutcome {
        StepOutcome::Pending {
            poll_after: self.wait.max(Duration::from_millis(100)),
            facts: facts.clone(),
            note: self.to_string(),
        }
    }
}

/// Why a step may not make a limited call now.
#[derive(Debug, thiserror::Error)]
pub enum Admission {
    #[error(transparent)]
    Wait(#[from] Throttled),
    /// The bucket could not be read or written; the step retries.
    #[error("rate limit of {service} unavailable: {reason}")]
    Unavailable { service: &'static str, reason: String },
}

impl Admission {
    pub fn into_outcome(self, facts: &TenantFacts) -> StepOutcome {
        match self {
            Admission::Wait(throttled) => throttled.into_outcome(facts),
            unavailable => StepOutcome::retry(unavailable.to_string()),
        }
    }
}

impl Throttle {
    pub fn new(limiter: Arc<dyn RateLimiter>, config: RateLimitsConfig) -> Self {
        Self { limiter, config }
    }

    /// Takes a token for one call of `service` in `region` of `account` (`None`: the
    /// orchestrator's own), or says how long to wait.
    pub async fn admit(
        &self,
        service: LimitedService,
        region: &Region,
        account: Option<&str>,
    ) -> Result<(), Admission> {
        if !self.config.enabled {
            return Ok(());
        }
        let bucket = BucketKey::new(service.name(), &service.bucket_region(region)).in_account(account);
        let shape = self.config.limit(service, region).shape();
        match self.limiter.acquire(&bucket, shape).await {
            Ok(Acquired::Granted) => Ok(()),
            Ok(Acquired::Wait(wait)) => Err(Admission::Wait(Throttled {
                service: service.name(),
                region: match account {
                    Some(account) => format!("{} of account {account}", bucket.region),
                    None => bucket.region.to_string(),
                },
                wait,
            })),
            Err(e) => Err(Admission::Unavailable {
                service: service.name(),
                reason: e.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(name: &str) -> Region {
        Region::parse(name).unwrap()
    }

    #[test]
    fn the_slowest_service_sets_a_regions_upgrade_spacing() {
        let config = RateLimitsConfig::default();
        // CloudFormation: 2 calls per upgrade at 1/s.
        assert_eq!(
            config.upgrade_spacing(&region("eu-west-1")),
            Some(Duration::from_secs(2))
        );
        let mut raised = config.clone();
        raised.cloudformation.regions.insert(
            "eu-west-1".into(),
            Limit {
                rate_per_second: 10.0,
                burst: 10,
            },
        );
        // Route 53 (2 calls at 2/s, account-wide) binds next.
        assert_eq!(
            raised.upgrade_spacing(&region("eu-west-1")),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            raised.upgrade_spacing(&region("us-east-1")),
            Some(Duration::from_secs(2))
        );
        let off = RateLimitsConfig {
            enabled: false,
            ..config
        };
        assert_eq!(off.upgrade_spacing(&region("eu-west-1")), None);
    }

    #[test]
    fn a_limit_without_a_positive_rate_is_refused_with_its_place() {
        let mut config = RateLimitsConfig::default();
        config.acm.regions.insert(
            "eu-west-1".into(),
            Limit {
                rate_per_second: 0.0,
                burst: 1,
            },
        );
        let err = config.validate().unwrap_err();
        assert!(err.contains("rate_limits.acm.regions.eu-west-1"), "{err}");
    }
}
