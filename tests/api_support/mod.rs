//! Spawns the API on 127.0.0.1:0 against a fresh table on the local DynamoDB, with
//! one token per scope, and a reqwest client to call it.

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tenant_orchestrator::api::{router, token_hash, ApiState, Tokens};
use tenant_orchestrator::app::App;
use tenant_orchestrator::step::StepRegistry;
use tenant_orchestrator::store::DynamoStore;
use tenant_orchestrator::worker::Worker;

use crate::common::{fast_worker, fresh_store, HealthyProbeDouble, ScriptedStep, TestStore};

pub mod holds;
#[allow(dead_code)] // the API and CLI rollout tests use it
pub mod preview;

pub const READ: &str = "read-token-0123456789";
pub const DEPLOY: &str = "deploy-token-0123456789";
pub const ADMIN: &str = "admin-token-0123456789";
/// `eu-team`: deploy on region eu-west-1, and nothing else.
pub const EU_TEAM: &str = "eu-team-token-0123456789";
/// `eu-deployer`: read on every tenant, deploy on region eu-west-1.
pub const EU_DEPLOYER: &str = "eu-deployer-token-0123456789";
/// `eu-admin`: admin on region eu-west-1, and nothing else.
pub const EU_ADMIN: &str = "eu-admin-token-0123456789";
/// `two-regions`: deploy on eu-west-1 and, in a second binding, on us-east-1.
pub const TWO_REGIONS: &str = "two-regions-token-0123456789";

#[derive(Clone)]
#[allow(dead_code)] // the dashboard tests use only the tokens and bodies
pub struct TestApi {
    pub base: String,
    pub client: reqwest::Client,
    pub store: Arc<DynamoStore>,
    /// The test's table, checked for broken fleet invariants when the last handle
    /// on the API goes.
    _table: Arc<TestStore>,
}

/// A reply: status, JSON body (Null when empty or not JSON) and headers.
#[allow(dead_code)] // the dashboard tests use only the tokens and bodies
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    #[allow(dead_code)] // the API tests read it; the CLI tests look at the process's output
    pub headers: reqwest::header::HeaderMap,
}

impl Reply {
    #[allow(dead_code)] // the API tests read it; the CLI tests look at the process's output
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

pub fn tokens() -> Tokens {
    Tokens::parse(&format!(
        "- {{name: viewer, scope: read, sha256: {}}}\n- {{name: pipeline, scope: deploy, sha256: {}}}\n- {{name: ops, scope: admin, sha256: {}}}\n\
         - {{name: eu-team, scope: deploy, on: {{regions: [eu-west-1]}}, sha256: {}}}\n\
         - {{name: eu-deployer, bindings: [{{scope: read}}, {{scope: deploy, on: {{regions: [eu-west-1]}}}}], sha256: {}}}\n\
         - {{name: eu-admin, scope: admin, on: {{regions: [eu-west-1]}}, sha256: {}}}\n\
         - {{name: two-regions, bindings: [{{scope: deploy, on: {{regions: [eu-west-1]}}}}, {{scope: deploy, on: {{regions: [us-east-1]}}}}], sha256: {}}}\n",
        token_hash(READ),
        token_hash(DEPLOY),
        token_hash(ADMIN),
        token_hash(EU_TEAM),
        token_hash(EU_DEPLOYER),
        token_hash(EU_ADMIN),
        token_hash(TWO_REGIONS)
    ))
    .unwrap()
}

#[allow(dead_code)] // the dashboard tests use only the tokens and bodies
pub async fn spawn() -> TestApi {
    spawn_with(|app| app).await
}

/// As [`spawn`], with the `tenants` (id, region; group `default`) created and run to
/// Active on 1.0.0.
#[allow(dead_code)] // the dashboard tests use only the tokens and bodies
pub async fn spawn_with_tenants(tenants: &[(&str, &str)]) -> TestApi {
    let api = spawn().await;
    for (id, region) in tenants {
        api.create_tenant(id, region, "default").await;
    }
    api.settle().await;
    api
}

/// As [`spawn`], with the application services adjusted by `configure` (e.g. given
/// a platform bucket).
#[allow(dead_code)] // the dashboard tests use only the tokens and bodies
pub async fn spawn_with(configure: impl FnOnce(App) -> App) -> TestApi {
    let store = fresh_store().await;
    let app = router(ApiState::new(configure(App::new(store.arc())), tokens()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    TestApi {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        store: store.arc(),
        _table: Arc::new(store),
    }
}

/// As [`spawn`], with the API's whole state built by `configure` from the
/// application services (e.g. given the Stripe intake).
#[allow(dead_code)] // the API tests use it
pub async fn spawn_with_state(configure: impl FnOnce(App) -> ApiState) -> TestApi {
    let store = fresh_store().await;
    let app = router(configure(App::new(store.arc())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    TestApi {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        store: store.arc(),
        _table: Arc::new(store),
    }
}

#[allow(dead_code)] // the dashboard tests use only the tokens and bodies
impl TestApi {
    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        self.send(method, path, token, body, &[]).await
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        if let Some(b) = body {
            request = request.json(&b);
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        Reply {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            headers,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, Some(READ), None).await
    }

    /// Creates a tenant through the API (deploy scope) and checks it was accepted.
    pub async fn create_tenant(&self, id: &str, region: &str, group: &str) -> Reply {
        let reply = self
            .call(
                Method::POST,
                "/v1/tenants",
                Some(DEPLOY),
                Some(tenant_body(id, region, group)),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply
    }

    /// Starts rollout `id` to release 1.1.0 as `token` (`POST /v1/rollouts`), over
    /// `regions`, or the whole fleet when there are none.
    #[allow(dead_code)] // the API and CLI tests of scopes and the audit trail start rollouts
    pub async fn start_rollout(&self, token: &str, id: &str, regions: &[&str]) -> Reply {
        let spec = match regions {
            [] => json!({"release": "1.1.0"}),
            _ => json!({"release": "1.1.0", "selector": {"regions": regions}}),
        };
        self.call(
            Method::POST,
            "/v1/rollouts",
            Some(token),
            Some(json!({"id": id, "spec": spec})),
        )
        .await
    }

    /// A worker whose steps are the test double `ScriptedStep` (all succeed).
    pub fn scripted_worker(&self) -> (Worker, Arc<ScriptedStep>) {
        let steps = ScriptedStep::new();
        let worker = Worker::new(
            self.store.clone(),
            StepRegistry::all(steps.clone()),
            fast_worker("api-test"),
        );
        (worker, steps)
    }

    /// Provisions tenants all the way to Active with the scripted steps.
    pub async fn settle(&self) {
        let (worker, _) = self.scripted_worker();
        crate::common::drain(&worker).await;
    }
}

pub fn tenant_body(id: &str, region: &str, group: &str) -> Value {
    json!({
        "id": id,
        "region": region,
        "environment": "test",
        "group": group,
        "hostnames": [format!("{id}.example.com")],
        "release": "1.0.0"
    })
}

/// A worker (scripted steps) and a rollout controller running in the background
/// until the returned sender sends `true`; await the handles afterwards.
#[allow(dead_code)] // the dashboard tests use only the tokens and bodies
pub struct Background {
    pub stop: tokio::sync::watch::Sender<bool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

#[allow(dead_code)] // the dashboard tests use only the tokens and bodies
impl Background {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for h in self.handles {
            let _ = h.await;
        }
    }
}

#[allow(dead_code)] // the dashboard tests use only the tokens and bodies
impl TestApi {
    pub fn run_worker_and_controller(&self, owner: &str) -> Background {
        self.run_scripted_worker_and_controller(owner, ScriptedStep::new())
    }

    /// The same, with the steps scripted by the caller.
    pub fn run_scripted_worker_and_controller(&self, owner: &str, steps: Arc<ScriptedStep>) -> Background {
        let worker = Worker::new(
            self.store.clone(),
            StepRegistry::all(steps),
            fast_worker("api-test"),
        );
        let controller = tenant_orchestrator::rollout::Controller::new(
            self.store.clone(),
            self.store.clone(),
            Arc::new(HealthyProbeDouble),
            tenant_orchestrator::rollout::ControllerConfig {
                lease_ttl: std::time::Duration::from_secs(1),
                tick: std::time::Duration::from_millis(50),
                ..tenant_orchestrator::rollout::ControllerConfig::new(owner)
            },
        );
        let (stop, rx) = tokio::sync::watch::channel(false);
        let worker_rx = rx.clone();
        let handles = vec![
            tokio::spawn(async move { worker.run(worker_rx).await.unwrap() }),
            tokio::spawn(async move { controller.run(rx).await }),
        ];
        Background { stop, handles }
    }
}
