//! `tenantctl tenant wait` (and `tenant create --wait`): poll tenants until they settle,
//! showing how far each one's lifecycle phase has come.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use tenant_orchestrator::domain::TenantId;
use tenant_orchestrator::machine::{
    DeprovisionStep, ProvisionStep, RestoreStep, RollbackStep, TenantState, UpgradeStep,
};
use tenant_orchestrator::record::TenantRecord;
use tenant_orchestrator::store::TenantStore;

use crate::cli::progress::{Outcome, Progress};
use crate::cli::{Failure, EXIT_FAILURE, EXIT_INVALID_INPUT};

/// How often the tenants are read while waiting.
const POLL: Duration = Duration::from_millis(250);

/// Steps done and steps in the phase the tenant is in (`Provisioning` at `Deploy` is
/// 4 of 6), or `None` when no step is running.
pub fn phase_progress(state: &TenantState) -> Option<(u64, u64)> {
    fn at<S: PartialEq>(sequence: &[S], step: &S) -> Option<(u64, u64)> {
        let done = sequence.iter().position(|s| s == step)?;
        Some((done as u64, sequence.len() as u64))
    }
    match state {
        TenantState::Provisioning { step, .. } => at(ProvisionStep::SEQUENCE, step),
        TenantState::Upgrading { step, .. } => at(UpgradeStep::SEQUENCE, step),
        TenantState::RollingBack { step, .. } => at(RollbackStep::SEQUENCE, step),
        TenantState::Restoring { step, .. } => at(RestoreStep::SEQUENCE, step),
        TenantState::Deprovisioning { step } => at(DeprovisionStep::SEQUENCE, step),
        _ => None,
    }
}

/// Steps done and steps to do over all tenants. A settled tenant counts its last
/// phase as complete (one step if it was never seen working), so the total only
/// moves when a tenant enters another phase, e.g. an upgrade that rolls back.
fn fleet_progress(records: &[TenantRecord], phase_len: &mut BTreeMap<TenantId, u64>) -> (u64, u64) {
    records
        .iter()
        .fold((0, 0), |(done, total), r| match phase_progress(&r.state) {
            Some((d, t)) => {
                phase_len.insert(r.spec.id.clone(), t);
                (done + d, total + t)
            }
            None => {
                let t = *phase_len.get(&r.spec.id).unwrap_or(&1);
                (done + t, total + t)
            }
        })
}

fn describe(records: &[TenantRecord]) -> String {
    let busy: Vec<String> = records
        .iter()
        .filter(|r| r.state.step().is_some())
        .map(|r| format!("{} {}", r.spec.id, r.state.label()))
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
    store: &dyn TenantStore,
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
        let mut records = Vec::new();
        for id in ids {
            records.push(store.load(id).await?);
        }
        for r in &records {
            let is = matches!(r.state, TenantState::RollingBack { .. });
            if is && rolling_back.insert(r.spec.id.clone()) {
                let why = r.last_error.as_deref().unwrap_or("no error recorded");
                progress.warn(&format!("{} is rolling back: {why}", r.spec.id));
            } else if !is {
                rolling_back.remove(&r.spec.id);
            }
        }
        let (done, total) = fleet_progress(&records, &mut phase_len);
        progress.update(done, total, &describe(&records));
        if records.iter().all(|r| r.state.step().is_none()) {
            return settled(&mut progress, &records, wanted);
        }
        if Instant::now() > deadline {
            let message = format!(
                "timed out after {}; still working: {}; check `tenantctl tenant history <id>`",
                humantime::format_duration(timeout),
                records
                    .iter()
                    .filter(|r| r.state.step().is_some())
                    .map(|r| format!("{} ({})", r.spec.id, r.state.label()))
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

fn settled(progress: &mut Progress, records: &[TenantRecord], wanted: &str) -> Result<(), Failure> {
    let missed: Vec<String> = records
        .iter()
        .filter(|r| r.state.name() != wanted)
        .map(|r| {
            let why = r
                .last_error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            format!("{} is {}{why}", r.spec.id, r.state.label())
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
    use tenant_orchestrator::domain::ReleaseVersion;

    #[test]
    fn a_phase_counts_the_steps_before_the_current_one() {
        let release = ReleaseVersion::parse("1.0.0").unwrap();
        let at = |step| TenantState::Provisioning {
            step,
            release: release.clone(),
        };
        assert_eq!(phase_progress(&at(ProvisionStep::Deploy)), Some((4, 6)));
        assert_eq!(phase_progress(&at(ProvisionStep::FIRST)), Some((0, 6)));
        assert_eq!(phase_progress(&TenantState::initial()), None);
    }
}
