//! Rate limits on AWS calls as token buckets in the table, against DynamoDB Local:
//! several processes' limiters taking from one bucket at once stay under it together,
//! and a step that finds the bucket empty waits instead of calling.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use common::*;
use tenant_orchestrator::domain::Region;
use tenant_orchestrator::ports::{Acquired, BucketKey, BucketShape, RateLimiter};
use tenant_orchestrator::steps::rate_limits::{Admission, LimitedService, RateLimitsConfig, Throttle};
use tenant_orchestrator::store::DynamoRateLimiter;

fn region(name: &str) -> Region {
    Region::parse(name).unwrap()
}

/// Takes tokens until `wanted` were granted, honouring every wait, and returns when
/// (microseconds) each grant was asked for.
async fn take(
    limiter: Arc<DynamoRateLimiter>,
    shape: BucketShape,
    wanted: usize,
    grants: Arc<Mutex<Vec<i64>>>,
) {
    let mut granted = 0;
    while granted < wanted {
        let asked = Utc::now().timestamp_micros();
        match limiter
            .acquire(&BucketKey::new("cloudformation", &region("eu-west-1")), shape)
            .await
            .unwrap()
        {
            Acquired::Granted => {
                grants.lock().unwrap().push(asked);
                granted += 1;
            }
            Acquired::Wait(wait) => tokio::time::sleep(wait).await,
        }
    }
}

#[tokio::test]
async fn replicas_taking_from_one_bucket_together_stay_under_rate_times_window_plus_burst() {
    let store = fresh_store().await;
    let shape = BucketShape {
        rate_per_second: 20.0,
        burst: 5,
    };
    let grants = Arc::new(Mutex::new(Vec::new()));
    // Three processes' limiters (each with its own hints), four callers each.
    let replicas: Vec<Arc<DynamoRateLimiter>> = (0..3)
        .map(|_| Arc::new(DynamoRateLimiter::new(store.arc())))
        .collect();
    let tasks: Vec<_> = (0..12)
        .map(|i| tokio::spawn(take(replicas[i % 3].clone(), shape, 5, grants.clone())))
        .collect();
    for task in tasks {
        task.await.unwrap();
    }

    let mut times = grants.lock().unwrap().clone();
    times.sort_unstable();
    assert_eq!(times.len(), 60);
    // Every window between two grants holds at most rate × window + burst of them.
    // The clock is read here a moment before the limiter reads it; 10 ms covers that.
    let slack = 0.010;
    for i in 0..times.len() {
        for j in i..times.len() {
            let window = (times[j] - times[i]) as f64 / 1e6;
            let allowed = shape.rate_per_second * (window + slack) + f64::from(shape.burst);
            let count = (j - i + 1) as f64;
            assert!(
                count <= allowed,
                "{count} grants within {window:.3}s, more than {allowed:.1} allowed"
            );
        }
    }
}

#[tokio::test]
async fn an_empty_bucket_says_how_long_to_wait_and_takes_nothing() {
    let store = fresh_store().await;
    let limiter = DynamoRateLimiter::new(store.arc());
    // One token per 100 s: the first is there, the second is 100 s away.
    let shape = BucketShape {
        rate_per_second: 0.01,
        burst: 1,
    };
    let eu = region("eu-west-1");
    let rds = BucketKey::new("rds", &eu);
    assert_eq!(limiter.acquire(&rds, shape).await.unwrap(), Acquired::Granted);
    let Acquired::Wait(wait) = limiter.acquire(&rds, shape).await.unwrap() else {
        panic!("a second token was granted from a bucket of one");
    };
    assert!(
        wait > Duration::from_secs(90) && wait <= Duration::from_secs(100),
        "{wait:?}"
    );
    // A refusal takes nothing: the wait does not grow with asking.
    let Acquired::Wait(again) = limiter.acquire(&rds, shape).await.unwrap() else {
        panic!("granted after a refusal");
    };
    assert!(again <= wait, "{again:?} after {wait:?}");
    // Another service, another region, another account: other buckets.
    let others = [
        BucketKey::new("acm", &eu),
        BucketKey::new("rds", &region("us-east-1")),
        rds.clone().in_account(Some("111111111111")),
        rds.clone().in_account(Some("222222222222")),
    ];
    for other in &others {
        assert_eq!(
            limiter.acquire(other, shape).await.unwrap(),
            Acquired::Granted,
            "{other}"
        );
    }
    assert!(
        matches!(
            limiter.acquire(&others[2], shape).await.unwrap(),
            Acquired::Wait(_)
        ),
        "an account's bucket is its own, and now empty"
    );
}

#[tokio::test]
async fn a_throttled_call_waits_as_pending_without_using_an_attempt() {
    let store = fresh_store().await;
    let mut config = RateLimitsConfig::default();
    config.cloudformation.rate_per_second = 0.01;
    config.cloudformation.burst = 1;
    let throttle = Throttle::new(Arc::new(DynamoRateLimiter::new(store.arc())), config);
    let eu = region("eu-west-1");
    throttle
        .admit(LimitedService::CloudFormation, &eu, None)
        .await
        .unwrap();
    let refused = throttle
        .admit(LimitedService::CloudFormation, &eu, None)
        .await
        .expect_err("the bucket holds one token");
    let facts = tenant_orchestrator::record::TenantFacts::default();
    match refused.into_outcome(&facts) {
        tenant_orchestrator::step::StepOutcome::Pending { poll_after, note, .. } => {
            assert!(poll_after > Duration::from_secs(90), "{poll_after:?}");
            assert!(note.contains("cloudformation"), "{note}");
        }
        other => panic!("expected the step to wait, got {other:?}"),
    }
    // Route 53 is account-wide: a call in any region takes from us-east-1's bucket.
    let mut global = RateLimitsConfig::default();
    global.route53.rate_per_second = 0.01;
    global.route53.burst = 1;
    let throttle = Throttle::new(Arc::new(DynamoRateLimiter::new(store.arc())), global);
    throttle.admit(LimitedService::Route53, &eu, None).await.unwrap();
    assert!(matches!(
        throttle
            .admit(LimitedService::Route53, &region("ap-southeast-2"), None)
            .await,
        Err(Admission::Wait(_))
    ));
    // Each account has its own quota, so its own buckets.
    let other = Some("123456789012");
    throttle.admit(LimitedService::Route53, &eu, other).await.unwrap();
    let waits = (throttle.admit(LimitedService::Route53, &region("us-west-2"), other))
        .await
        .expect_err("the other account's bucket holds one token");
    assert!(waits.to_string().contains("of account 123456789012"), "{waits}");
}
