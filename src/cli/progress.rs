//! Progress of a long wait (`tenantctl tenant wait`, `tenant create --wait`, and the
//! rollout waits), written to stderr so stdout keeps only the command's result.
//!
//! Three modes, chosen by [`Progress::detect`]:
//! - **Azure Pipelines** when `TF_BUILD` is `True` (any case): logging commands the agent
//!   turns into a collapsible group, the task's progress percentage, error and warning
//!   annotations and the task result. The agent reads logging commands on stderr as on
//!   stdout.
//! - **Terminal** when stderr is a TTY: one bar redrawn in place, drawn by `indicatif`
//!   (it knows the terminal's real width and the display width of the text, and keeps
//!   the clock moving between polls); log lines print above it.
//! - **Plain** otherwise: a line whenever something changes, for log files and other CI.
//!
//! `TENANTCTL_PROGRESS=azure|bar|plain` overrides the choice; `bar` on a stderr that is
//! not a terminal gives plain lines, since a bar redrawn into a file is noise.
//! This module knows nothing about tenants or rollouts: callers say how many of how
//! many steps are done and what is happening.

use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Azure,
    Terminal,
    Plain,
}

impl Mode {
    /// The mode for this environment: `override_` is `TENANTCTL_PROGRESS`, `tf_build` is
    /// `TF_BUILD` (set to `True` by the Azure Pipelines agent), `stderr_is_tty` whether a
    /// person watches. An unknown override is ignored rather than failing the command.
    pub fn detect(override_: Option<&str>, tf_build: Option<&str>, stderr_is_tty: bool) -> Mode {
        match override_.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
            Some("azure") => return Mode::Azure,
            Some("bar") | Some("terminal") => return Mode::Terminal,
            Some("plain") => return Mode::Plain,
            _ => {}
        }
        if tf_build.is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            Mode::Azure
        } else if stderr_is_tty {
            Mode::Terminal
        } else {
            Mode::Plain
        }
    }
}

/// How the wait ended, for the task result in Azure Pipelines and the last line elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// Done, but with something an operator should look at (skipped tenants, warnings).
    SucceededWithIssues,
    Failed,
}

/// Azure's escaping of a logging command's message: `%` first, then line breaks.
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%AZP25").replace('\r', "%0D").replace('\n', "%0A")
}

/// Azure's escaping of a logging command's property value: as the message, plus the
/// characters that end a property (`;`) or the property list (`]`).
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(';', "%3B").replace(']', "%5D")
}

/// `##vso[area.action k=v;…]message`, escaped.
pub fn vso_command(name: &str, properties: &[(&str, &str)], message: &str) -> String {
    let props: String = properties
        .iter()
        .map(|(k, v)| format!("{k}={};", escape_property(v)))
        .collect();
    format!("##vso[{name} {props}]{}", escape_data(message))
}

/// A group title is not a `##vso` command and is not unescaped by the agent: it only
/// has to stay on one line.
fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

/// Whole percent of `done` out of `total`, 0–100; an empty total counts as done.
pub fn percent(done: u64, total: u64) -> u64 {
    match total {
        0 => 100,
        t => done.min(t) * 100 / t,
    }
}

/// Reports progress of one wait to a writer (stderr in the CLI).
pub struct Progress<W: Write = io::Stderr> {
    mode: Mode,
    out: W,
    started: Instant,
    group_open: bool,
    /// What was last reported, so an unchanged poll prints nothing (the terminal bar
    /// still redraws to move its clock).
    last: Option<(u64, u64, String)>,
    /// The bar of the terminal mode; its lines print above it.
    bar: Option<ProgressBar>,
}

impl Progress<io::Stderr> {
    /// Progress on stderr, in the mode the environment calls for.
    pub fn detect() -> Self {
        let var = |k| std::env::var(k).ok();
        let attended = io::stderr().is_terminal() && var("TERM").as_deref() != Some("dumb");
        let mode = match Mode::detect(
            var("TENANTCTL_PROGRESS").as_deref(),
            var("TF_BUILD").as_deref(),
            attended,
        ) {
            Mode::Terminal if !attended => Mode::Plain,
            mode => mode,
        };
        let progress = Progress::new(mode, io::stderr());
        if let Some(bar) = &progress.bar {
            // Redraws once a second so the elapsed time moves between polls.
            bar.enable_steady_tick(Duration::from_secs(1));
        }
        progress
    }
}

impl<W: Write> Progress<W> {
    pub fn new(mode: Mode, out: W) -> Self {
        Self::drawing_on(mode, out, ProgressDrawTarget::stderr())
    }

    /// A reporter whose terminal-mode bar is drawn on `target`.
    fn drawing_on(mode: Mode, out: W, target: ProgressDrawTarget) -> Self {
        Self {
            mode,
            out,
            started: Instant::now(),
            group_open: false,
            last: None,
            bar: (mode == Mode::Terminal).then(|| terminal_bar(target)),
        }
    }

    /// Starts a section titled `title`; in Azure Pipelines a collapsible group, closed by
    /// the next group or by [`finish`](Self::finish).
    pub fn group(&mut self, title: &str) {
        match self.mode {
            Mode::Azure => {
                if self.group_open {
                    self.line("##[endgroup]");
                }
                self.line(&format!("##[group]{}", one_line(title)));
                self.group_open = true;
            }
            Mode::Terminal | Mode::Plain => self.line(&format!("==> {}", one_line(title))),
        }
        self.last = None;
    }

    /// `done` of `total` steps are done; `message` says what is happening now.
    pub fn update(&mut self, done: u64, total: u64, message: &str) {
        let now = (done, total, message.to_owned());
        let changed = self.last.as_ref() != Some(&now);
        self.last = Some(now);
        match self.mode {
            Mode::Azure if changed => {
                let value = percent(done, total).to_string();
                let text = format!("{done}/{total} {message}");
                self.line(&vso_command("task.setprogress", &[("value", &value)], &text));
            }
            Mode::Plain if changed => self.line(&format!("[{done}/{total}] {}", one_line(message))),
            Mode::Terminal => self.draw_bar(done, total, message),
            Mode::Azure | Mode::Plain => {}
        }
    }

    /// A line of the log (e.g. an event of the rollout being followed).
    pub fn note(&mut self, message: &str) {
        self.line(&one_line(message));
    }

    /// Something an operator should know about that does not stop the wait.
    pub fn warn(&mut self, message: &str) {
        self.issue("warning", message);
    }

    /// Something that failed; the caller still decides the outcome.
    pub fn error(&mut self, message: &str) {
        self.issue("error", message);
    }

    fn issue(&mut self, kind: &str, message: &str) {
        match self.mode {
            Mode::Azure => self.line(&vso_command("task.logissue", &[("type", kind)], message)),
            Mode::Terminal | Mode::Plain => self.line(&format!("{kind}: {message}")),
        }
    }

    /// Ends the wait: closes the group and, in Azure Pipelines, sets the task result
    /// when it is not a plain success (a success needs no command; the exit code says it).
    pub fn finish(&mut self, outcome: Outcome, message: &str) {
        match self.mode {
            Mode::Azure => {
                if self.group_open {
                    self.line("##[endgroup]");
                    self.group_open = false;
                }
                let result = match outcome {
                    Outcome::Succeeded => None,
                    Outcome::SucceededWithIssues => Some("SucceededWithIssues"),
                    Outcome::Failed => Some("Failed"),
                };
                if let Some(result) = result {
                    self.line(&vso_command("task.complete", &[("result", result)], message));
                }
            }
            Mode::Terminal | Mode::Plain => {
                let word = match outcome {
                    Outcome::Succeeded => "done",
                    Outcome::SucceededWithIssues => "done with issues",
                    Outcome::Failed => "failed",
                };
                let secs = self.started.elapsed().as_secs();
                self.line(&format!("{word} after {secs}s: {}", one_line(message)));
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
            }
        }
    }

    /// Ends the wait as failed with `message`, which the caller also returns as its
    /// error for `main` to print: Azure gets it as an error annotation and the task
    /// fails; elsewhere only the closing line is written, so it is not printed twice.
    pub fn fail(&mut self, message: &str) {
        if self.mode == Mode::Azure {
            self.error(message);
            self.finish(Outcome::Failed, "");
        } else {
            self.finish(Outcome::Failed, "see the error below");
        }
    }

    fn draw_bar(&mut self, done: u64, total: u64, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_position(done.min(total));
            bar.set_message(one_line(message));
        }
    }

    /// A line of output; in the terminal mode above the bar, which is drawn again below.
    fn line(&mut self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => {
                let _ = writeln!(self.out, "{text}");
                let _ = self.out.flush();
            }
        }
    }
}

impl<W: Write> Drop for Progress<W> {
    /// A bar left on screen would run into the shell prompt or the error message.
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// The terminal mode's bar: `[####----] 3/6   12s what is happening`, the message cut to
/// the terminal's width.
fn terminal_bar(target: ProgressDrawTarget) -> ProgressBar {
    let style = ProgressStyle::with_template("[{bar:24}] {pos}/{len} {elapsed:>4} {wide_msg}")
        .expect("the bar template is valid")
        .progress_chars("#-");
    ProgressBar::with_draw_target(Some(0), target).with_style(style)
}

#[cfg(test)]
mod tests;
