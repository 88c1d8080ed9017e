//! Rate limits on the AWS calls the steps make, shared through the table: every
//! worker process takes its tokens from the same bucket per (service, region,
//! account), so the replicas together stay under each account's quota.

use std::time::Duration;

use async_trait::async_trait;

use super::StoreError;
use crate::domain::Region;

/// A token bucket's shape: `rate_per_second` tokens come in each second, and at most
/// `burst` are kept for a quiet bucket to spend at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketShape {
    pub rate_per_second: f64,
    pub burst: u32,
}

impl BucketShape {
    /// The time one token takes to come in, in microseconds (at least 1).
    pub fn interval_micros(&self) -> i64 {
        ((1_000_000.0 / self.rate_per_second).ceil() as i64).max(1)
    }

    /// How far ahead of now the bucket's schedule may run: `burst - 1` intervals.
    pub fn tolerance_micros(&self) -> i64 {
        self.interval_micros() * (i64::from(self.burst.max(1)) - 1)
    }
}

/// What an acquire got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    /// A token was taken: make the call now.
    Granted,
    /// No token is left; one is due after this long. Nothing was taken.
    Wait(Duration),
}

/// Whose quota a bucket keeps: AWS counts its rates per account and region.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BucketKey {
    pub service: String,
    pub region: Region,
    /// A target's account; `None`: the orchestrator's own.
    pub account: Option<String>,
}

impl BucketKey {
    /// The bucket of `service` in `region` of the orchestrator's own account.
    pub fn new(service: &str, region: &Region) -> Self {
        Self {
            service: service.to_owned(),
            region: region.clone(),
            account: None,
        }
    }

    /// The same bucket in `account` (`None`: the orchestrator's own).
    pub fn in_account(self, account: Option<&str>) -> Self {
        Self {
            account: account.map(str::to_owned),
            ..self
        }
    }
}

impl std::fmt::Display for BucketKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} in {}", self.service, self.region)?;
        match &self.account {
            Some(account) => write!(f, " of account {account}"),
            None => Ok(()),
        }
    }
}

#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Takes one token from `bucket` (shaped as `shape`) if one is available, else
    /// says how long until one is.
    async fn acquire(&self, bucket: &BucketKey, shape: BucketShape) -> Result<Acquired, StoreError>;
}
