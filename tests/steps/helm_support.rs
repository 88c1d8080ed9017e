//! Test doubles and fixtures for the Helm and verify steps: a private Helm stand-in
//! per test (`localstack/helm-standin`), the health stand-in
//! (`localstack/fleet_health_standin.py`) reading its releases, and the facts earlier
//! steps record before a deploy.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use tenant_orchestrator::record::{TenantFacts, TenantRecord};
use tenant_orchestrator::step::{Step, StepContext, StepOutcome};
use tenant_orchestrator::steps::{RegionSettings, StepsConfig};

pub const REPOSITORY: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/tenant-app";
pub const KUBE_CONTEXT: &str = "arn:aws:eks:us-east-1:123456789012:cluster/tenants";

pub fn manifest_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A private Helm stand-in: a wrapper script that points the stand-in at this test's
/// state directory, so tests never share releases.
pub struct HelmStandin {
    pub dir: tempfile::TempDir,
}

impl HelmStandin {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let script = format!(
            "#!/bin/sh\nHELM_STANDIN_STATE='{}' exec python3 '{}' \"$@\"\n",
            dir.path().join("state").display(),
            manifest_path("localstack/helm-standin").display()
        );
        let bin = dir.path().join("helm");
        std::fs::write(&bin, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        Self { dir }
    }

    pub fn bin(&self) -> String {
        self.dir.path().join("helm").display().to_string()
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Makes the next `verb` calls of `release` fail with `message`.
    pub fn fail(&self, release: &str, verb: &str, message: &str) {
        let dir = self.state().join("fail");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{release}.{verb}")), message).unwrap();
    }

    pub fn heal(&self, release: &str, verb: &str) {
        std::fs::remove_file(self.state().join("fail").join(format!("{release}.{verb}"))).unwrap();
    }

    /// Every line of calls.jsonl: the calls, and the hook Jobs they ran.
    fn recorded(&self) -> Vec<Value> {
        let Ok(text) = std::fs::read_to_string(self.state().join("calls.jsonl")) else {
            return vec![];
        };
        text.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .collect()
    }

    /// Every recorded call's argv.
    pub fn calls(&self) -> Vec<Vec<String>> {
        self.recorded()
            .into_iter()
            .filter(|v| v.get("argv").is_some())
            .map(|v| serde_json::from_value(v["argv"].clone()).unwrap())
            .collect()
    }

    /// Every migration hook Job the stand-in ran: hook, job, schemaVersion, result, …
    pub fn hooks(&self) -> Vec<Value> {
        self.recorded()
            .into_iter()
            .filter(|v| v.get("hook").is_some())
            .collect()
    }

    pub fn calls_of(&self, verb: &str) -> Vec<Vec<String>> {
        self.calls().into_iter().filter(|a| a[0] == verb).collect()
    }

    /// The release as the stand-in keeps it (revisions with status and values).
    pub fn release(&self, namespace: &str, name: &str) -> Option<Value> {
        let context = KUBE_CONTEXT.replace(':', "%3A").replace('/', "%2F");
        let path = self
            .state()
            .join("releases")
            .join(context)
            .join(namespace)
            .join(format!("{name}.json"));
        std::fs::read_to_string(path)
            .ok()
            .map(|t| serde_json::from_str(&t).unwrap())
    }

    pub fn revisions(&self, namespace: &str, name: &str) -> Vec<(u64, String)> {
        self.release(namespace, name)
            .map(|r| {
                r["revisions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|rev| {
                        (
                            rev["revision"].as_u64().unwrap(),
                            rev["status"].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn values_of(&self, namespace: &str, name: &str, revision: u64) -> Value {
        let release = self.release(namespace, name).unwrap();
        release["revisions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["revision"].as_u64() == Some(revision))
            .unwrap()["config"]
            .clone()
    }
}

pub fn steps_config(helm: &HelmStandin) -> Arc<StepsConfig> {
    let mut config = StepsConfig::default();
    config.helm.helm_bin = helm.bin();
    config.helm.chart = manifest_path("charts/tenant").display().to_string();
    config.helm.timeout = "30s".into();
    config.regions.insert(
        "us-east-1".into(),
        RegionSettings {
            kube_context: KUBE_CONTEXT.into(),
            ..Default::default()
        },
    );
    Arc::new(config)
}

pub fn digest(seed: char) -> String {
    format!("sha256:{}", seed.to_string().repeat(64))
}

/// What the earlier steps record before a deploy: the image and the stack outputs.
pub fn deployable_facts(id: &str, image_seed: char) -> TenantFacts {
    let outputs = [
        (
            "DatabaseEndpoint",
            format!("tenant-test-{id}.cluster-x.us-east-1.rds.amazonaws.com"),
        ),
        (
            "DatabaseReaderEndpoint",
            format!("tenant-test-{id}.cluster-ro-x.us-east-1.rds.amazonaws.com"),
        ),
        ("DatabasePort", "5432".to_owned()),
        ("BucketName", format!("tenant-test-{id}-bucket")),
        (
            "WorkloadRoleArn",
            format!("arn:aws:iam::123456789012:role/tenant-test-{id}-WorkloadRole"),
        ),
        ("DatabaseClusterIdentifier", format!("tenant-test-{id}-db")),
    ];
    TenantFacts {
        image: Some(format!("{REPOSITORY}@{}", digest(image_seed))),
        stack_outputs: outputs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        ..Default::default()
    }
}

pub fn ctx(record: &TenantRecord) -> StepContext<'_> {
    StepContext {
        tenant: record,
        step: record.state.step().unwrap(),
        attempt: 0,
        worker: "test",
        fence: 1,
    }
}

/// Runs the step as the worker would, feeding each pending outcome's facts back in,
/// until it finishes; returns the final outcome and the record with its facts.
pub async fn run_to_end(step: &dyn Step, mut record: TenantRecord) -> (StepOutcome, TenantRecord) {
    for _ in 0..10 {
        match step.run(ctx(&record)).await {
            StepOutcome::Pending {
                facts, poll_after, ..
            } => {
                assert!(poll_after.as_secs() < 5, "unexpected wait of {poll_after:?}");
                record.facts = facts;
            }
            StepOutcome::Done(out) => {
                record.facts = out.facts.clone();
                return (StepOutcome::Done(out), record);
            }
            failed => return (failed, record),
        }
    }
    panic!("step never finished");
}

/// `localstack/fleet_health_standin.py` on a free loopback port, answering for the
/// releases of `helm`'s state; stopped when dropped.
pub struct HealthStandin {
    pub port: u16,
    child: std::process::Child,
}

impl HealthStandin {
    pub fn start(helm: &HelmStandin) -> Self {
        Self::start_behind(helm, &[])
    }

    /// The stand-in behind the load balancer: the listener rules of `listeners` (in
    /// moto, at `AWS_ENDPOINT_URL`) answer before the tenants do, as the ALB's would.
    pub fn start_behind(helm: &HelmStandin, listeners: &[String]) -> Self {
        let mut rules = Vec::new();
        if !listeners.is_empty() {
            let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("the local AWS is running");
            rules = vec!["--moto-endpoint".to_owned(), endpoint];
            for listener in listeners {
                rules.extend(["--listener".to_owned(), listener.clone()]);
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("python3")
            .arg(manifest_path("localstack/fleet_health_standin.py"))
            .args(["--port", &port.to_string(), "--host", "127.0.0.1", "--state"])
            .arg(helm.state())
            .args(&rules)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 runs the health stand-in");
        let standin = Self { port, child };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "health stand-in did not start on {port}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        standin
    }

    /// Makes the stand-in answer 503 for every tenant on `release`.
    pub fn break_release(helm: &HelmStandin, release: &str) {
        std::fs::create_dir_all(helm.state()).unwrap();
        std::fs::write(helm.state().join("broken-releases"), format!("{release}\n")).unwrap();
    }
}

impl Drop for HealthStandin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
