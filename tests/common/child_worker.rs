//! Worker processes a test can SIGKILL, and the run log that proves no step ran under
//! two owners at once. A child worker is the test binary re-executed to run one
//! ignored test (`spawn`), with its settings in environment variables; its steps
//! append a start and an end line per run to a file every process shares (`RunLog`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenant_orchestrator::machine::StepKind;
use tenant_orchestrator::step::StepContext;

/// One line of the run log: a step run's start or end.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunLine {
    pub tenant: String,
    pub step: StepKind,
    pub owner: String,
    pub fence: u64,
    pub phase: String,
    pub at: DateTime<Utc>,
}

/// The log file shared by the worker processes of one test.
#[derive(Debug, Clone)]
pub struct RunLog(pub PathBuf);

impl RunLog {
    /// Appends the start (`phase` "start") or end ("end") of the run `ctx` describes.
    pub fn append(&self, ctx: &StepContext<'_>, phase: &str) {
        let line = RunLine {
            tenant: ctx.tenant.id().to_string(),
            step: ctx.step,
            owner: ctx.worker.to_owned(),
            fence: ctx.fence,
            phase: phase.into(),
            at: Utc::now(),
        };
        let mut text = serde_json::to_string(&line).unwrap();
        text.push('\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.0)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    /// The complete lines so far. A line a worker is appending while this reads has
    /// no newline yet, and is read on a later call.
    pub fn read(&self) -> Vec<RunLine> {
        let text = std::fs::read_to_string(&self.0).unwrap_or_default();
        let complete = text.rfind('\n').map_or("", |end| &text[..=end]);
        complete
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("run log line {l:?}: {e}")))
            .collect()
    }

    /// Waits until `owner` has started `step` on some tenant.
    pub async fn wait_for_start(&self, owner: &str, step: StepKind, within: Duration) {
        let deadline = std::time::Instant::now() + within;
        while !self
            .read()
            .iter()
            .any(|l| l.owner == owner && l.step == step && l.phase == "start")
        {
            assert!(
                std::time::Instant::now() < deadline,
                "{owner} never reached {step:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Asserts that no step of `tenant` ran under two owners at once. A run lasts from
    /// its start to its end or, for a run killed with its worker, to the expiry of that
    /// worker's lease (`killed_lease_end`; without one, the run ends where it began).
    pub fn assert_no_step_under_two_owners(&self, tenant: &str, killed_lease_end: Option<DateTime<Utc>>) {
        let runs = self.read();
        let mut spans: Vec<(String, StepKind, DateTime<Utc>, DateTime<Utc>)> = Vec::new();
        for start in runs.iter().filter(|l| l.tenant == tenant && l.phase == "start") {
            let end = runs
                .iter()
                .find(|l| {
                    l.tenant == tenant
                        && l.step == start.step
                        && l.fence == start.fence
                        && l.phase == "end"
                        && l.at >= start.at
                })
                .map(|l| l.at)
                .or(killed_lease_end)
                .unwrap_or(start.at);
            spans.push((start.owner.clone(), start.step, start.at, end));
        }
        for (i, x) in spans.iter().enumerate() {
            for y in &spans[i + 1..] {
                if x.0 != y.0 && x.1 == y.1 {
                    assert!(
                        !(x.2 < y.3 && y.2 < x.3),
                        "{tenant}: {:?} ran under {} and {} at once: {x:?} {y:?}",
                        x.1,
                        x.0,
                        y.0
                    );
                }
            }
        }
    }
}

/// Starts this test binary again to run the ignored test `test` (its full path in the
/// binary) with `vars` set, as a worker process the caller may SIGKILL.
pub fn spawn(test: &str, vars: &[(&str, String)]) -> Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([test, "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env("TENANTCTL_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (name, value) in vars {
        command.env(name, value);
    }
    command.spawn().unwrap()
}

/// SIGKILLs `child` (no shutdown, no lease released) and reaps it.
pub fn kill(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The lease expiries of the tenants `owner` held, read after it was killed: when its
/// claim on each truly ended.
pub async fn lease_ends_of(
    store: &dyn tenant_orchestrator::store::TenantStore,
    ids: &[&str],
    owner: &str,
) -> BTreeMap<String, DateTime<Utc>> {
    let mut ends = BTreeMap::new();
    for id in ids {
        let r = store.load(&crate::common::tenant_id(id)).await.unwrap();
        if let Some(l) = r.lease.filter(|l| l.owner == owner) {
            ends.insert((*id).to_owned(), l.expires_at);
        }
    }
    assert!(!ends.is_empty(), "{owner} held no lease when it was killed");
    ends
}

/// `Path` of a run log in `dir`.
pub fn log_in(dir: &Path) -> RunLog {
    RunLog(dir.join("runs.jsonl"))
}
