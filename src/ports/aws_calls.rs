//! Every AWS call the orchestrator makes, counted and timed for `/metrics`: an
//! interceptor ([`AwsCallMetrics`]) on each SDK client, DynamoDB's and the steps'
//! alike, so no call site has to remember it.
//!
//! - `tenantctl_aws_requests_total{service, operation, outcome}` counts each HTTP
//!   request sent, retries included, by how it ended: `ok`, `throttled` (HTTP 429, or
//!   one of the error codes the SDK itself retries as throttling), `client_error`
//!   (other 4xx: a refused condition is one, and is expected under contention),
//!   `server_error` (5xx) or `no_response` (a timeout or a dropped connection). A
//!   throttle the SDK rode out by retrying shows here and nowhere else.
//! - `tenantctl_aws_call_seconds{service, operation}` times each call from its first
//!   attempt to its answer, with the SDK's retries and their backoff.

use std::collections::HashSet;
use std::sync::{OnceLock, PoisonError, RwLock};
use std::time::Instant;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

/// Error codes the SDK retries as throttling (`aws-runtime`'s list), which services
/// send with a 400 or a 503 rather than a 429.
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// How one HTTP request to AWS ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Throttled,
    ClientError,
    ServerError,
    NoResponse,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Throttled => "throttled",
            Outcome::ClientError => "client_error",
            Outcome::ServerError => "server_error",
            Outcome::NoResponse => "no_response",
        }
    }

    /// From the HTTP status (`None`: no answer) and the error code the answer
    /// carried, if any.
    pub fn of(status: Option<u16>, code: Option<&str>) -> Self {
        let Some(status) = status else {
            return Outcome::NoResponse;
        };
        if status == 429 || code.is_some_and(|c| THROTTLING_CODES.contains(&c)) {
            return Outcome::Throttled;
        }
        match status {
            200..=399 => Outcome::Ok,
            400..=499 => Outcome::ClientError,
            _ => Outcome::ServerError,
        }
    }
}

/// The error code in an SDK error's description (`code: Some("…")`): the
/// interceptor sees the error type-erased, so this is how it reads the code of any
/// service's error (one of the message classifiers `scripts/check_layers.py` lists).
fn error_code(described: &str) -> Option<&str> {
    let start = described.find("code: Some(\"")? + "code: Some(\"".len();
    let len = described[start..].find('"')?;
    Some(&described[start..start + len])
}

/// The interceptor to put on an SDK client of `service` (its label in the series).
/// It records through the `metrics` facade at each call, into whichever recorder is
/// installed then (`tenantctl serve`'s, which `/metrics` renders).
#[derive(Debug, Clone, Copy)]
pub struct AwsCallMetrics {
    service: &'static str,
}

/// When the call's first attempt began.
#[derive(Debug, Clone, Copy)]
struct CallStarted(Instant);

impl Storable for CallStarted {
    type Storer = StoreReplace<Self>;
}

impl AwsCallMetrics {
    pub fn new(service: &'static str) -> Self {
        Self { service }
    }
}

/// The operation a call is of, as the SDK names it (`GetItem`, `CreateStack`), as a
/// label that allocates nothing per call: the SDK lends the name only for the call,
/// so each distinct name is kept once for the life of the process. The SDK's
/// operations are a fixed set of a few hundred names at most, so that memory is
/// bounded.
fn operation(cfg: &ConfigBag) -> &'static str {
    static NAMES: OnceLock<RwLock<HashSet<&'static str>>> = OnceLock::new();
    let name = cfg.load::<Metadata>().map_or("unknown", Metadata::name);
    let names = NAMES.get_or_init(Default::default);
    // A poisoned lock only means a call panicked while inserting; the set is whole.
    if let Some(kept) = names.read().unwrap_or_else(PoisonError::into_inner).get(name) {
        return kept;
    }
    let mut names = names.write().unwrap_or_else(PoisonError::into_inner);
    if let Some(kept) = names.get(name) {
        return kept;
    }
    let kept: &'static str = Box::leak(name.into());
    names.insert(kept);
    kept
}

impl Intercept for AwsCallMetrics {
    fn name(&self) -> &'static str {
        "AwsCallMetrics"
    }

    fn read_before_execution(
        &self,
        _: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state().store_put(CallStarted(Instant::now()));
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let status = context.response().map(|r| r.status().as_u16());
        let outcome = match context.output_or_error() {
            Some(Err(error)) if status.is_some() => {
                let described = format!("{error:?}");
                Outcome::of(status, error_code(&described))
            }
            _ => Outcome::of(status, None),
        };
        metrics::counter!(
            "tenantctl_aws_requests_total",
            "service" => self.service,
            "operation" => operation(cfg),
            "outcome" => outcome.as_str()
        )
        .increment(1);
        Ok(())
    }

    fn read_after_execution(
        &self,
        _: &FinalizerInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(started) = cfg.load::<CallStarted>() {
            metrics::histogram!(
                "tenantctl_aws_call_seconds",
                "service" => self.service,
                "operation" => operation(cfg)
            )
            .record(started.0.elapsed().as_secs_f64());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_follow_the_status_and_the_throttling_codes() {
        assert_eq!(Outcome::of(Some(200), None), Outcome::Ok);
        assert_eq!(Outcome::of(Some(429), None), Outcome::Throttled);
        assert_eq!(
            Outcome::of(Some(400), Some("ProvisionedThroughputExceededException")),
            Outcome::Throttled
        );
        assert_eq!(Outcome::of(Some(400), Some("Throttling")), Outcome::Throttled);
        assert_eq!(Outcome::of(Some(503), Some("SlowDown")), Outcome::Throttled);
        assert_eq!(
            Outcome::of(Some(400), Some("ConditionalCheckFailedException")),
            Outcome::ClientError
        );
        assert_eq!(Outcome::of(Some(503), None), Outcome::ServerError);
        assert_eq!(Outcome::of(None, None), Outcome::NoResponse);
    }

    #[test]
    fn an_operations_label_is_kept_once_and_lent_to_every_call_of_it() {
        let of = |name: &'static str| {
            let mut cfg = ConfigBag::base();
            cfg.interceptor_state().store_put(Metadata::new(name, "dynamodb"));
            operation(&cfg)
        };
        let (first, again) = (of("GetItem"), of("GetItem"));
        assert_eq!((first, of("PutItem")), ("GetItem", "PutItem"));
        assert!(
            std::ptr::eq(first, again),
            "a second call of an operation kept its name again"
        );
        assert_eq!(operation(&ConfigBag::base()), "unknown");
    }

    #[test]
    fn the_code_is_read_from_an_errors_description() {
        let described = r#"ServiceError(ServiceError { source: ThrottlingException(ThrottlingException { message: Some("Rate exceeded"), meta: ErrorMetadata { code: Some("ThrottlingException"), message: Some("Rate exceeded") } }) })"#;
        assert_eq!(error_code(described), Some("ThrottlingException"));
        assert_eq!(error_code("TimeoutError(..)"), None);
    }
}
