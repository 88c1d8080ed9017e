//! The `helm` CLI, run as operators run it: one process per command, JSON output where
//! Helm offers it, the release's kube context and namespace on every call. Values go
//! through a file, never the command line, so nothing in them shows up in `ps`.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// Longest a command that only reads (history, get values) may take.
const QUERY_LIMIT: Duration = Duration::from_secs(60);
/// Grace above Helm's own `--timeout` before a waiting command is killed: Helm should
/// give up first and report why.
const WAIT_MARGIN: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum HelmError {
    #[error("cannot run `{bin}`: {source}; set helm.helm_bin in the steps configuration or HELM_BIN")]
    Spawn {
        bin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`helm {command}` did not finish within {}s and was stopped", limit.as_secs())]
    TimedOut { command: String, limit: Duration },
    #[error("helm {command} failed: {message}")]
    Failed { command: String, message: String },
    #[error("helm {command} printed output that is not the expected JSON: {source}")]
    Output {
        command: String,
        #[source]
        source: serde_json::Error,
    },
}

impl HelmError {
    /// Helm refuses to touch a release while an install, upgrade or rollback of it is
    /// still pending: the work is in progress, not failed.
    pub fn is_operation_in_progress(&self) -> bool {
        matches!(self, HelmError::Failed { message, .. }
            if message.contains("another operation (install/upgrade/rollback) is in progress"))
    }

    pub fn is_release_not_found(&self) -> bool {
        matches!(self, HelmError::Failed { message, .. } if message.contains("release: not found"))
    }

    /// Failures that say nothing about the release itself: the API server was briefly
    /// unreachable or overloaded. A `--wait` that ran out of time is not one of them:
    /// the workload did not become ready, and the machine must roll back.
    pub fn is_transient(&self) -> bool {
        const TRANSIENT: &[&str] = &[
            "i/o timeout",
            "TLS handshake timeout",
            "connection reset by peer",
            "http2: client connection lost",
            "the server is currently unable to handle the request",
            "etcdserver: request timed out",
            "etcdserver: leader changed",
            "Too Many Requests",
        ];
        match self {
            HelmError::TimedOut { .. } => true,
            HelmError::Failed { message, .. } => TRANSIENT.iter().any(|t| message.contains(t)),
            HelmError::Spawn { .. } | HelmError::Output { .. } => false,
        }
    }
}

/// One row of `helm history -o json`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HistoryEntry {
    pub revision: u32,
    pub status: String,
    #[serde(default)]
    pub description: String,
}

/// A release's revisions, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History(pub Vec<HistoryEntry>);

impl History {
    /// The revision running now (Helm marks exactly one `deployed`).
    pub fn deployed(&self) -> Option<u32> {
        self.0
            .iter()
            .rev()
            .find(|e| e.status == "deployed")
            .map(|e| e.revision)
    }

    /// The latest revision, when Helm is still working on it (`pending-upgrade`, ...).
    pub fn pending(&self) -> Option<&HistoryEntry> {
        self.0.last().filter(|e| e.status.starts_with("pending-"))
    }
}

/// The part of Helm's release object (`upgrade -o json`) the steps read.
#[derive(Debug, Deserialize)]
struct ReleaseInfo {
    version: u32,
}

/// Where a release lives and how long Helm may wait for it.
#[derive(Debug, Clone)]
pub struct HelmCli {
    pub bin: String,
    pub kube_context: String,
    pub namespace: String,
    pub release: String,
    /// Helm's `--timeout`, as Helm spells it (`5m0s`).
    pub timeout: String,
    pub wait_limit: Duration,
}

struct Captured {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl HelmCli {
    pub fn new(
        bin: String,
        kube_context: String,
        namespace: String,
        release: String,
        timeout: &str,
    ) -> Result<Self, String> {
        let wait = parse_go_duration(timeout)
            .ok_or_else(|| format!("helm.timeout {timeout:?} is not a duration like 5m0s or 90s"))?;
        Ok(Self {
            bin,
            kube_context,
            namespace,
            release,
            timeout: timeout.to_owned(),
            wait_limit: wait + WAIT_MARGIN,
        })
    }

    fn scope(&self) -> [&str; 4] {
        [
            "--namespace",
            &self.namespace,
            "--kube-context",
            &self.kube_context,
        ]
    }

    /// The release's revisions; empty when the release does not exist.
    pub async fn history(&self) -> Result<History, HelmError> {
        let mut args = vec!["history", &self.release];
        args.extend(self.scope());
        args.extend(["--max", "256", "-o", "json"]);
        match self.run(&args, QUERY_LIMIT).await {
            Ok(out) => serde_json::from_str(&out)
                .map(History)
                .map_err(|source| HelmError::Output {
                    command: "history".into(),
                    source,
                }),
            Err(e) if e.is_release_not_found() => Ok(History::default()),
            Err(e) => Err(e),
        }
    }

    /// The user-supplied values of `revision` (`null` when there were none).
    pub async fn values(&self, revision: u32) -> Result<serde_json::Value, HelmError> {
        let revision = revision.to_string();
        let mut args = vec!["get", "values", &self.release];
        args.extend(self.scope());
        args.extend(["--revision", &revision, "-o", "json"]);
        let out = self.run(&args, QUERY_LIMIT).await?;
        serde_json::from_str(&out).map_err(|source| HelmError::Output {
            command: "get values".into(),
            source,
        })
    }

    /// Installs or upgrades the release with the values in `values_file`, waiting until
    /// the workload is ready; returns the new revision.
    pub async fn upgrade_install(&self, chart: &str, values_file: &Path) -> Result<u32, HelmError> {
        let values_file = values_file.to_string_lossy();
        let mut args = vec!["upgrade", "--install", &self.release, chart];
        args.extend(self.scope());
        args.extend(["--create-namespace", "--values", &values_file]);
        args.extend(["--wait", "--timeout", &self.timeout, "-o", "json"]);
        let out = self.run(&args, self.wait_limit).await?;
        serde_json::from_str::<ReleaseInfo>(&out)
            .map(|r| r.version)
            .map_err(|source| HelmError::Output {
                command: "upgrade".into(),
                source,
            })
    }

    /// Rolls the release back to `revision` (which makes a new revision with its values).
    pub async fn rollback(&self, revision: u32) -> Result<(), HelmError> {
        let revision = revision.to_string();
        let mut args = vec!["rollback", &self.release, &revision];
        args.extend(self.scope());
        args.extend(["--wait", "--timeout", &self.timeout]);
        self.run(&args, self.wait_limit).await.map(drop)
    }

    /// The release's manifests as `chart` with the values in `values_file` would make
    /// them, rendered offline (`helm template`); touches no cluster.
    pub async fn template(&self, chart: &str, values_file: &Path) -> Result<String, HelmError> {
        let values_file = values_file.to_string_lossy();
        let args = [
            "template",
            &self.release,
            chart,
            "--namespace",
            &self.namespace,
            "--values",
            &values_file,
        ];
        self.run(&args, QUERY_LIMIT).await
    }

    /// Uninstalls the release; a release that is already gone is not an error.
    pub async fn uninstall(&self) -> Result<(), HelmError> {
        let mut args = vec!["uninstall", &self.release];
        args.extend(self.scope());
        args.extend(["--wait", "--timeout", &self.timeout, "--ignore-not-found"]);
        self.run(&args, self.wait_limit).await.map(drop)
    }

    async fn run(&self, args: &[&str], limit: Duration) -> Result<String, HelmError> {
        let command = match args {
            ["get", what, ..] => format!("get {what}"),
            [verb, ..] => (*verb).to_owned(),
            [] => String::new(),
        };
        tracing::debug!(bin = %self.bin, ?args, "running helm");
        let captured = self.capture(args, limit, &command).await?;
        if captured.status.success() {
            return Ok(captured.stdout);
        }
        let message = helm_message(&captured.stderr, &captured.stdout, captured.status);
        Err(HelmError::Failed { command, message })
    }

    async fn capture(&self, args: &[&str], limit: Duration, command: &str) -> Result<Captured, HelmError> {
        // Not killed when the step is abandoned (lease lost, shutdown): killing Helm
        // mid-upgrade leaves the release stuck in a pending state, while letting it run
        // to its own --timeout leaves a clean deployed or failed revision to resume from.
        let mut child = Command::new(&self.bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| HelmError::Spawn {
                bin: self.bin.clone(),
                source,
            })?;
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let finished = tokio::time::timeout(limit, async {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let (_, _, status) = tokio::join!(
                stdout.read_to_end(&mut out),
                stderr.read_to_end(&mut err),
                child.wait()
            );
            (status, out, err)
        })
        .await;
        match finished {
            Ok((Ok(status), out, err)) => Ok(Captured {
                status,
                stdout: String::from_utf8_lossy(&out).into_owned(),
                stderr: String::from_utf8_lossy(&err).into_owned(),
            }),
            Ok((Err(source), _, _)) => Err(HelmError::Spawn {
                bin: self.bin.clone(),
                source,
            }),
            Err(_) => {
                let _ = child.kill().await;
                Err(HelmError::TimedOut {
                    command: command.to_owned(),
                    limit,
                })
            }
        }
    }
}

/// Helm's own words: stderr without the `Error: ` prefix, on one line.
fn helm_message(stderr: &str, stdout: &str, status: ExitStatus) -> String {
    let text = if stderr.trim().is_empty() { stdout } else { stderr };
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .map(|l| l.strip_prefix("Error: ").unwrap_or(l))
        .collect();
    if lines.is_empty() {
        return format!("exited with {status} and printed nothing");
    }
    let joined = lines.join("; ");
    // Keep the history readable; Helm's first lines carry the reason.
    match joined.char_indices().nth(2000) {
        Some((cut, _)) => format!("{}…", &joined[..cut]),
        None => joined,
    }
}

/// Parses a Go duration as Helm's `--timeout` takes it (`5m0s`, `90s`, `1h30m`).
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    Some(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_as_helm_takes_them() {
        assert_eq!(parse_go_duration("5m0s"), Some(Duration::from_secs(300)));
        assert_eq!(parse_go_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        for bad in ["", "5", "5 m", "m", "5x", "1..2s"] {
            assert_eq!(parse_go_duration(bad), None, "{bad:?} should be refused");
        }
    }

    fn failed(message: &str) -> HelmError {
        HelmError::Failed {
            command: "upgrade".into(),
            message: message.into(),
        }
    }

    #[test]
    fn failures_are_classified_by_helms_message() {
        let busy = failed("UPGRADE FAILED: another operation (install/upgrade/rollback) is in progress");
        assert!(busy.is_operation_in_progress());
        assert!(!busy.is_transient());
        assert!(
            failed("Kubernetes cluster unreachable: Get \"https://x\": dial tcp: i/o timeout").is_transient()
        );
        let waited = failed("UPGRADE FAILED: context deadline exceeded");
        assert!(!waited.is_transient() && !waited.is_operation_in_progress());
        assert!(failed("release: not found").is_release_not_found());
    }

    #[test]
    fn history_finds_the_deployed_and_the_pending_revision() {
        let row = |revision, status: &str| HistoryEntry {
            revision,
            status: status.into(),
            description: String::new(),
        };
        let h = History(vec![row(1, "superseded"), row(2, "deployed"), row(3, "failed")]);
        assert_eq!(h.deployed(), Some(2));
        assert!(h.pending().is_none());
        let h = History(vec![row(1, "deployed"), row(2, "pending-upgrade")]);
        assert_eq!(h.pending().map(|e| e.revision), Some(2));
        assert_eq!(History::default().deployed(), None);
    }

    #[test]
    fn helms_message_drops_the_error_prefix_and_joins_lines() {
        let status = std::process::Command::new("false").status().unwrap();
        assert_eq!(
            helm_message("Error: UPGRADE FAILED: boom\n  detail\n", "", status),
            "UPGRADE FAILED: boom; detail"
        );
        assert!(helm_message("", "", status).contains("printed nothing"));
    }
}
