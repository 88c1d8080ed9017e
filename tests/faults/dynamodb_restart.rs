//! DynamoDB Local (its own instance, keeping its database on disk) is killed in the
//! middle of a rollout driven by a `tenantctl serve` replica's controller, and started
//! again on the same port and database: the server stays up and says it is not
//! ready meanwhile, and the rollout completes afterwards with no tenant started twice.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use sha2::{Digest, Sha256};
use tenant_orchestrator::app::RolloutCommands;
use tenant_orchestrator::domain::{RolloutId, RolloutSpec};
use tenant_orchestrator::machine::{StepKind, TenantEvent, TenantState};
use tenant_orchestrator::record::{Actor, Cause, Phase, TenantRecord, Transition};
use tenant_orchestrator::step::StepRegistry;
use tenant_orchestrator::store::{table, DynamoStore, RolloutStore, TenantStore};
use tenant_orchestrator::worker::Worker;
use tokio::sync::watch;

use crate::common::{fast_worker, release, spec, tenant_id, ScriptedStep};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free local port")
        .port()
}

/// Where `localstack/install.sh` put DynamoDB Local.
fn dynamodb_home() -> PathBuf {
    let cache = std::env::var("TENANT_ORCHESTRATOR_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").expect("HOME is set")).join(".cache/tenant-orchestrator")
        });
    let localstack = cache.join("localstack");
    std::fs::read_dir(&localstack)
        .unwrap_or_else(|e| panic!("{}: {e}; run localstack/install.sh", localstack.display()))
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("dynamodb-local-"))
        })
        .unwrap_or_else(|| {
            panic!(
                "no DynamoDB Local under {}; run localstack/install.sh",
                localstack.display()
            )
        })
}

/// A DynamoDB Local of this test, with `-dbPath`, as `localstack/start.sh --db-path`
/// runs it; killed when dropped.
struct LocalDynamo {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl LocalDynamo {
    async fn start() -> LocalDynamo {
        let mut db = LocalDynamo {
            port: free_port(),
            dir: tempfile::tempdir().expect("a database directory"),
            child: None,
        };
        db.restart().await;
        db
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn client(&self) -> aws_sdk_dynamodb::Client {
        let config = aws_config::load_from_env().await;
        aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&config)
                .endpoint_url(self.url())
                .build(),
        )
    }

    /// Starts it (again, on the same port and database) and waits until it answers.
    async fn restart(&mut self) {
        let home = dynamodb_home();
        let classpath = format!(
            "{0}/DynamoDBLocal.jar:{0}/DynamoDBLocal_lib/*:{0}/loopback",
            home.display()
        );
        let child = Command::new("java")
            .arg(format!(
                "-Djava.library.path={}/DynamoDBLocal_lib",
                home.display()
            ))
            .args(["-cp", &classpath, "DynamoDBLocalLoopback", "-host", "127.0.0.1"])
            .args(["-port", &self.port.to_string(), "-dbPath"])
            .arg(self.dir.path())
            .arg("-disableTelemetry")
            // It leaves a metadata file in its working directory.
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("java runs DynamoDB Local");
        self.child = Some(child);
        let client = self.client().await;
        let deadline = Instant::now() + Duration::from_secs(60);
        while client.list_tables().send().await.is_err() {
            assert!(
                Instant::now() < deadline,
                "DynamoDB Local never answered on {}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Kills it as a crash would (SIGKILL).
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for LocalDynamo {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `tenantctl serve` on `table` of `db`, its worker serving a region no tenant is in
/// (the tenants' steps run on this test's workers) and its controller driving
/// rollouts; killed when dropped.
struct Serve {
    port: u16,
    child: Child,
    _tokens: tempfile::NamedTempFile,
}

impl Serve {
    async fn start(db: &LocalDynamo, table: &str) -> Serve {
        let port = free_port();
        let hash = format!("{:x}", Sha256::digest(b"restart-test-token"));
        let tokens = tempfile::NamedTempFile::new().expect("a token file");
        std::fs::write(
            tokens.path(),
            format!(r#"[{{"name": "t", "scope": "read", "sha256": "{hash}"}}]"#),
        )
        .expect("token file written");
        let child = Command::new(env!("CARGO_BIN_EXE_tenantctl"))
            .args([
                "--table",
                table,
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .arg("--tokens-file")
            .arg(tokens.path())
            .args([
                "--region",
                "ap-south-1",
                "--rollout-tick",
                "100ms",
                "--rollout-lease-ttl",
                "1500ms",
            ])
            .env("AWS_ENDPOINT_URL_DYNAMODB", db.url())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tenantctl serve starts");
        let serve = Serve {
            port,
            child,
            _tokens: tokens,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while serve.status("/readyz").await != Some(200) {
            assert!(Instant::now() < deadline, "tenantctl serve never became ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        serve
    }

    /// The status `path` answers with, or None when the server does not answer.
    async fn status(&self, path: &str) -> Option<u16> {
        reqwest::Client::new()
            .get(format!("http://127.0.0.1:{}{path}", self.port))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16())
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn seed_active(store: &DynamoStore, ids: &[String]) {
    for id in ids {
        let state = TenantState::Active {
            release: release("1.0.0"),
            failed_upgrade: None,
        };
        let record = TenantRecord::new(spec(id, "eu-west-1"), state, Utc::now());
        let seeded = Transition::new(
            &TenantState::initial(),
            Cause::Event(TenantEvent::Provision {
                release: release("1.0.0"),
            }),
            Actor("test".into()),
        );
        store.create(&record, seeded).await.expect("tenant seeded");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dynamodb_restart_mid_rollout_keeps_serve_up_and_the_rollout_completes() {
    let mut db = LocalDynamo::start().await;
    let client = db.client().await;
    let name = format!("test-{}", uuid::Uuid::new_v4().simple());
    table::ensure_table(&client, &name).await.expect("table created");
    let store = Arc::new(DynamoStore::new(client, name.clone()));
    let ids: Vec<String> = (0..6).map(|i| format!("restart-{i}")).collect();
    seed_active(&store, &ids).await;
    let steps = ScriptedStep::new();
    steps.delay(StepKind::Deploy, Duration::from_millis(400));
    let (shutdown, _) = watch::channel(false);
    let mut workers = Vec::new();
    for i in 0..2 {
        let worker = Worker::new(
            store.clone(),
            StepRegistry::all(steps.clone()),
            fast_worker(&format!("w{i}")),
        );
        let rx = shutdown.subscribe();
        workers.push(tokio::spawn(async move { worker.run(rx).await }));
    }
    let mut serve = Serve::start(&db, &name).await;
    let rollout = RolloutId::parse("r-restart").unwrap();
    let spec: RolloutSpec = serde_json::from_value(serde_json::json!({
        "release": "2.0.0",
        "strategy": {
            "waves": ["1", "50%", "100%"],
            "max_in_flight_per_region": 2,
            "bake_time": "0s", "bake_checks": 0,
            "approvals": {"after_canary": false}
        }
    }))
    .unwrap();
    RolloutCommands::new(store.clone(), store.clone())
        .start(rollout.clone(), spec, "operator:test")
        .await
        .expect("rollout started");

    // Wait until the rollout is under way, then take DynamoDB away.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let members = store.members(&rollout, None).await.unwrap();
        if members.iter().filter(|m| m.attempts > 0).count() >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the rollout never got going");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    db.kill();
    let deadline = Instant::now() + Duration::from_secs(15);
    while serve.status("/readyz").await != Some(503) {
        assert!(
            Instant::now() < deadline,
            "/readyz never said unavailable while DynamoDB was down"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        serve.status("/healthz").await,
        Some(200),
        "the server answers while DynamoDB is down"
    );
    assert_eq!(serve.status("/readyz").await, Some(503));
    assert!(serve.running(), "tenantctl serve exited while DynamoDB was down");

    db.restart().await;

    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let r = store.load_rollout(&rollout).await.unwrap();
        if r.phase.is_finished() {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "the rollout did not finish after DynamoDB came back: {} at wave {}: {:#?}",
            r.phase,
            r.current_wave,
            r.events
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done.phase, Phase::Completed, "{:#?}", done.events);
    assert_eq!(serve.status("/readyz").await, Some(200));
    for id in &ids {
        let r = store.load(&tenant_id(id)).await.unwrap();
        assert_eq!(
            r.state.label(),
            TenantState::Active {
                release: release("2.0.0"),
                failed_upgrade: None
            }
            .label()
        );
        let history = store.history(&tenant_id(id), 0, 1000).await.unwrap().items;
        let starts = history
            .iter()
            .filter(|e| e.cause.starts_with("Upgrade to 2.0.0 (rollout"))
            .count();
        assert_eq!(starts, 1, "{id} was started {starts} times: {history:#?}");
    }
    let _ = shutdown.send(true);
    for worker in workers {
        let _ = tokio::time::timeout(Duration::from_secs(10), worker).await;
    }
}
