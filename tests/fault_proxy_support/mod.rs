//! Starts `localstack/fault_proxy.py` in front of moto or DynamoDB Local for one test
//! and changes its rules. The proxy is a child process of the test: dropping the
//! [`FaultProxy`] (also when the test panics) kills it.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Python for the proxy (standard library only): `TENANTCTL_FAULT_PROXY_PYTHON`, or
/// `python3` on the path.
fn python() -> String {
    std::env::var("TENANTCTL_FAULT_PROXY_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("localstack/fault_proxy.py")
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free local port")
        .port()
}

/// A running fault proxy in front of one upstream.
pub struct FaultProxy {
    child: Child,
    port: u16,
    http: reqwest::Client,
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` (`http://127.0.0.1:PORT`) with `seed`,
    /// and waits until its control endpoint answers.
    pub async fn start(upstream: &str, seed: u64) -> FaultProxy {
        let port = free_port();
        let child = Command::new(python())
            .arg(script())
            .args(["--port", &port.to_string(), "--upstream", upstream])
            .args(["--seed", &seed.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "starting {} {}: {e}; set TENANTCTL_FAULT_PROXY_PYTHON",
                    python(),
                    script().display()
                )
            });
        let mut proxy = FaultProxy {
            child,
            port,
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if proxy.http.get(proxy.control()).send().await.is_ok() {
                return proxy;
            }
            if let Ok(Some(status)) = proxy.child.try_wait() {
                panic!("the fault proxy in front of {upstream} exited at start: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "the fault proxy on port {port} never answered"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The proxy in front of moto (`AWS_ENDPOINT_URL`).
    pub async fn for_aws(seed: u64) -> FaultProxy {
        Self::start(&upstream("AWS_ENDPOINT_URL"), seed).await
    }

    /// The proxy in front of DynamoDB Local (`AWS_ENDPOINT_URL_DYNAMODB`).
    pub async fn for_dynamodb(seed: u64) -> FaultProxy {
        Self::start(&upstream("AWS_ENDPOINT_URL_DYNAMODB"), seed).await
    }

    /// The endpoint to give the SDK instead of the upstream's.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn control(&self) -> String {
        format!("{}/__faults", self.url())
    }

    async fn post(&self, body: Value) -> Value {
        let response = self
            .http
            .post(self.control())
            .json(&body)
            .send()
            .await
            .expect("the fault proxy answers");
        let status = response.status();
        let answer: Value = response.json().await.expect("the fault proxy answers JSON");
        assert!(status.is_success(), "the fault proxy refused {body}: {answer}");
        answer
    }

    /// Replaces the rules (see `localstack/fault_proxy.py` for their fields).
    pub async fn set_rules(&self, rules: Value) {
        self.post(json!({ "rules": rules })).await;
    }

    /// Every request is answered 503 for `seconds`.
    #[allow(dead_code)] // the step tests inject only some faults
    pub async fn outage(&self, seconds: f64) {
        self.post(json!({ "outage": { "seconds": seconds, "mode": "unavailable" } }))
            .await;
    }

    /// No rules, no outage, counters reset.
    #[allow(dead_code)] // the step tests inject only some faults
    pub async fn clear(&self) {
        self.http
            .delete(self.control())
            .send()
            .await
            .expect("the fault proxy answers");
    }

    /// The proxy's rules and counters (`seen`, `injected`).
    pub async fn state(&self) -> Value {
        self.http
            .get(self.control())
            .send()
            .await
            .expect("the fault proxy answers")
            .json()
            .await
            .expect("the fault proxy answers JSON")
    }

    /// How many faults of `kind` were injected, over all operations.
    pub async fn injected(&self, kind: &str) -> u64 {
        let state = self.state().await;
        state["injected"][kind]
            .as_object()
            .map(|ops| ops.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn upstream(variable: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| {
        panic!("{variable} is not set: run `eval \"$(localstack/start.sh)\"` first (scripts/test.sh does it)")
    })
}

/// The SDK's standard retries (three attempts), with test timings: backoff from 50 ms
/// instead of 1 s, so a throttled call costs the tests little time.
pub fn quick_retries() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::standard().with_initial_backoff(Duration::from_millis(50))
}

/// The store's own retry policy ([`tenant_orchestrator::store::retry_config`]), with
/// the same test timings as [`quick_retries`].
#[allow(dead_code)] // the step tests inject only some faults
pub fn quick_store_retries() -> aws_config::retry::RetryConfig {
    tenant_orchestrator::store::retry_config().with_initial_backoff(Duration::from_millis(50))
}

/// SDK configuration from the environment with the services of moto sent through
/// `aws` (DynamoDB keeps its own endpoint, `AWS_ENDPOINT_URL_DYNAMODB`). Built anew
/// rather than with `to_builder()`: a configuration loaded from the environment lets
/// `AWS_ENDPOINT_URL` win over an endpoint set on it afterwards.
pub async fn sdk_config_through(aws: &FaultProxy) -> aws_config::SdkConfig {
    let env = aws_config::load_from_env().await;
    let mut builder = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .endpoint_url(aws.url());
    builder.set_region(env.region().cloned());
    builder.set_credentials_provider(env.credentials_provider());
    builder.set_sleep_impl(env.sleep_impl());
    builder.set_time_source(env.time_source());
    builder.set_retry_config(Some(quick_retries()));
    builder.set_timeout_config(env.timeout_config().cloned());
    builder.build()
}
