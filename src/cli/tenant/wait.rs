//! `tenantctl tenant wait` (and `tenant create --wait`): poll tenants until they settle,
//! showing how far each one's lifecycle phase has come. Works on the views any
//! [`TenantService`] answers, so it is the same on the table and through `--server`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use tenant_orchestrator::app::views::TenantView;
use tenant_orchestrator::app::TenantService;
use tenant_orchestrator::domain::TenantId;
use tenant_orchestrator::machine::TenantState;

use crate::cli::output::state_label;
use crate::cli::progress::{Outcome, Progress};
use crate::cli::{Failure, EXIT_FAILURE, EXIT_INVALID_INPUT};

/// How often the tenants are read while waiting.
const POLL: Duration = Duration::from_millis(250);

/// Steps done and steps in the phase the tenant is in (`Provisioning` at `Deploy` is
/// 4 of 6), or `None` when no step is running.
pub fn phase_progress(state: &str, step: Option<&str>) -> Option<(u64, u64)> {
    let steps = TenantState::phase_steps(state)?;
    let done = steps.iter().position(|s| Some(s.name()) == step)?;
    Some((done as u64, steps.len() as u64))
}

fn label(v: &TenantView) -> String {
    state_label(&v.state, v.step.as_deref())
}

/// Steps done and steps to do over all tenants. A settled tenant counts its last
/// phase as complete (one step if it was never seen working), so the total only
/// moves when a tenant enters another phase, e.g. an upgrade that rolls back.
fn fleet_progress(views: &[TenantView], phase_len: &mut BTreeMap<String, u64>) -> (u64, u64) {
    views.iter().fold((0, 0), |(done, total), v| {
        match phase_progress(&v.state, v.step.as_deref()) {
            Some((d, t)) => {
                phase_len.insert(v.id.clone(), t);
                (done + d, total + t)
            }
            None => {
                let t = *phase_len.get(&v.id).unwrap_or(&1);
                (done + t, total + t)
            }
        }
    })
}

fn describe(views: &[TenantView]) -> String {
    let busy: Vec<String> = views
        .iter()
        .filter(|v| v.step.is_some())
        .map(|v| format!("{} {}", v.id, label(v)))
        .collect();
    match busy.is_empty() {
        true => "settled".to_owned(),
        false => busy.join(", "),
    }
}

/// Polls until every tenant has no step to run; succeeds only if each ended `wanted`.
/// Failed tenants are reported as errors with their last error, and a timeout names
/// the tenants still working.
pub async fn wait(
    tenants: &dyn TenantService,
    ids: &[TenantId],
    wanted: &str,
    timeout: Duration,
) -> Result<(), Failure> {
    if let Err(unknown) = TenantState::parse_name(wanted) {
        return Err(Failure {
            code: EXIT_INVALID_INPUT,
            error: unknown.into(),
        });
    }
    let mut progress = Progress::detect();
    let names: Vec<&str> = ids.iter().map(|i| i.as_str()).collect();
    progress.group(&format!(
        "Waiting for {} to be {wanted} (timeout {})",
        names.join(", "),
        humantime::format_duration(timeout)
    ));
    let deadline = Instant::now() + timeout;
    let mut phase_len = BTreeMap::new();
    let mut rolling_back = BTreeSet::new();
    loop {
        let mut views = Vec::new();
        for id in ids {
            views.push(tenants.get(id).await?);
        }
        for v in &views {
            let is = v.state == "RollingBack";
            if is && rolling_back.insert(v.id.clone()) {
                let why = v.last_error.as_deref().unwrap_or("no error recorded");
                progress.warn(&format!("{} is rolling back: {why}", v.id));
            } else if !is {
                rolling_back.remove(&v.id);
            }
        }
        let (done, total) = fleet_progress(&views, &mut phase_len);
        progress.update(done, total, &describe(&views));
        if views.iter().all(|v| v.step.is_none()) {
            return settled(&mut progress, &views, wanted);
        }
        if Instant::now() > deadline {
            let message = format!(
                "timed out after {}; still working: {}; check `tenantctl tenant history <id>`",
                humantime::format_duration(timeout),
                views
                    .iter()
                    .filter(|v| v.step.is_some())
                    .map(|v| format!("{} ({})", v.id, label(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            progress.fail(&message);
            return Err(Failure {
                code: EXIT_FAILURE,
                error: anyhow::anyhow!(message),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

fn settled(progress: &mut Progress, views: &[TenantView], wanted: &str) -> Result<(), Failure> {
    let missed: Vec<String> = views
        .iter()
        .filter(|v| v.state != wanted)
        .map(|v| {
            let why = v
                .last_error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            format!("{} is {}{why}", v.id, label(v))
        })
        .collect();
    if missed.is_empty() {
        progress.finish(Outcome::Succeeded, &format!("all {wanted}"));
        return Ok(());
    }
    let message = format!("not {wanted}: {}", missed.join("; "));
    progress.fail(&message);
    Err(Failure {
        code: EXIT_FAILURE,
        error: anyhow::anyhow!(message),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_counts_the_steps_before_the_current_one() {
        assert_eq!(phase_progress("Provisioning", Some("Deploy")), Some((4, 6)));
        assert_eq!(
            phase_progress("Provisioning", Some("CheckArtifact")),
            Some((0, 6))
        );
        assert_eq!(phase_progress("Active", None), None);
        assert_eq!(phase_progress("Provisioning", Some("NoSuchStep")), None);
    }
}
