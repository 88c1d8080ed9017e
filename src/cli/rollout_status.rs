//! How rollouts are printed: the status (waves, their counts, and the tenants that
//! need a look first, at most 40 a wave; every tenant in JSON), the
//! listing, and the result of an operator command.

use std::collections::BTreeMap;

use tenant_orchestrator::ports::RolloutSummary;
use tenant_orchestrator::record::{
    BakeProgress, Outcome, RollbackStatus, RolloutMember, RolloutRecord, WaveTally,
};

use super::super::{Failure, OutputFormat};

fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

pub fn print(output: OutputFormat, record: &RolloutRecord, members: &[RolloutMember]) -> Result<(), Failure> {
    if output == OutputFormat::Json {
        let value = serde_json::json!({ "rollout": record, "members": members });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    print!("{}", text(record, members));
    Ok(())
}

/// `writeln!` to a `String`, which cannot fail.
macro_rules! wln {
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        writeln!($out, $($arg)*).expect("writing to a String");
    }};
}

/// The text status of `record` with `members`: all of them, or the first of each
/// wave of a large rollout (whose waves' tallies count them and name their failures).
fn text(record: &RolloutRecord, members: &[RolloutMember]) -> String {
    let mut out = String::new();
    wln!(out, "rollout:   {}", record.id);
    if let Some(release) = &record.spec.release {
        wln!(out, "release:   {release}");
    }
    wln!(out, "target:    {}", record.target());
    wln!(out, "phase:     {}", record.phase);
    if let Some(reason) = &record.halt_reason {
        wln!(out, "halted:    {reason}");
    }
    wln!(
        out,
        "started:   {} by {}",
        time(record.created_at),
        record.created_by
    );
    if let Some(at) = record.not_before.filter(|at| *at > chrono::Utc::now()) {
        wln!(out, "scheduled: starts no wave before {}", time(at));
    }
    let mut by_wave: BTreeMap<usize, Vec<&RolloutMember>> = BTreeMap::new();
    for m in members {
        by_wave.entry(m.wave).or_default().push(m);
    }
    let now = chrono::Utc::now();
    for wave in &record.waves {
        let in_wave = by_wave.get(&wave.index).map(Vec::as_slice).unwrap_or_default();
        // A wave given in part (the first of a large rollout's) is counted by its tally.
        let sampled = in_wave.len() < wave.size;
        let tally = match (&wave.tally, sampled) {
            (Some(tally), true) => tally.clone(),
            _ => WaveTally::of(in_wave.iter().copied(), now),
        };
        wln!(
            out,
            "\nwave {} ({:?}, {}) in {}: {:?}{} — {} succeeded, {} failed, {} in flight, {} pending, {} skipped (budget {})",
            wave.index,
            wave.kind,
            wave.target,
            wave.regions.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", "),
            wave.status,
            wave.approved_by.as_deref().map(|a| format!(", approved by {a}")).unwrap_or_default(),
            tally.succeeded,
            tally.failed,
            tally.in_flight,
            tally.pending,
            tally.skipped,
            wave.allowed_failures + wave.accepted_failures,
        );
        let listed = shown(in_wave);
        for m in &listed {
            wln!(
                out,
                "  {:<28} {:<14} {}",
                m.tenant.as_str(),
                m.region.as_str(),
                describe(m)
            );
        }
        // The failed and in-flight members the tally names beyond those listed.
        let mut named = 0;
        let failures = (tally.failures.iter()).map(|f| (&f.tenant, format!("FAILED: {}", f.reason)));
        let moving = (tally.moving.iter()).map(|t| (t, "upgrading".to_owned()));
        for (tenant, what) in failures.chain(moving).filter(|_| sampled) {
            if !listed.iter().any(|m| &m.tenant == tenant) {
                wln!(out, "  {:<28} {:<14} {what}", tenant.as_str(), "-");
                named += 1;
            }
        }
        let rest = (in_wave.len().max(wave.size)).saturating_sub(listed.len() + named);
        if rest > 0 {
            wln!(
                out,
                "  ... and {rest} more: tenantctl rollout members {} --wave {} (or --output json)",
                record.id,
                wave.index
            );
        }
        if let Some(bake) = wave.bake.as_ref().filter(|b| !b.checks.is_empty()) {
            bake_evidence(&mut out, bake);
        }
    }
    let apart = record.skipped_apart.unwrap_or_default();
    if record.skipped.is_empty() && apart > 0 {
        wln!(
            out,
            "\nskipped when planned: {apart} tenants: tenantctl rollout skipped {}",
            record.id
        );
    }
    if !record.skipped.is_empty() {
        wln!(out, "\nskipped when planned:");
        for s in record.skipped.iter().take(LISTED_PER_WAVE) {
            wln!(out, "  {:<28} {}", s.id.as_str(), s.reason);
        }
        if record.skipped.len() > LISTED_PER_WAVE {
            wln!(
                out,
                "  ... and {} more: tenantctl rollout skipped {} (or --output json)",
                record.skipped.len() - LISTED_PER_WAVE,
                record.id
            );
        }
    }
    out
}

/// The most tenants the text status lists per wave (and of the skipped): a wave of a
/// fleet-wide rollout is counted whole and listed in part, the rest a command away.
pub const LISTED_PER_WAVE: usize = 40;

/// The text status of a rollout of at most this many members reads them all; of a
/// larger one, the first [`LISTED_PER_WAVE`] of each wave (its tallies count them
/// all and name its failures).
pub const READ_WHOLE_UP_TO: usize = 1_000;

/// The members of a wave the text status lists: those that need a look first (failed,
/// rolled back or rolling back, over their outage budget, in flight), then the rest,
/// each group in the order given; at most [`LISTED_PER_WAVE`].
fn shown<'a>(in_wave: &[&'a RolloutMember]) -> Vec<&'a RolloutMember> {
    let rank = |m: &RolloutMember| match (&m.outcome, &m.rollback) {
        (Outcome::Failed { .. }, _) | (_, Some(_)) => 0,
        _ if m.outage_overrun.is_some() => 0,
        (Outcome::InFlight, _) => 1,
        _ => 2,
    };
    let mut shown: Vec<(usize, &RolloutMember)> = in_wave.iter().copied().enumerate().collect();
    shown.sort_by_key(|(i, m)| (rank(m), *i));
    shown.truncate(LISTED_PER_WAVE);
    // Listed in the order given (by tenant id), whatever made them the ones shown.
    shown.sort_by_key(|(i, _)| *i);
    shown.into_iter().map(|(_, m)| m).collect()
}

/// A page of a rollout's members, and how to read the next one.
pub fn print_members(
    output: OutputFormat,
    members: &[RolloutMember],
    next_token: Option<&str>,
    next_command: Option<&str>,
) -> Result<(), Failure> {
    let row = |m: &RolloutMember| {
        format!(
            "{:>4}  {:<28} {:<14} {}",
            m.wave,
            m.tenant.as_str(),
            m.region.as_str(),
            describe(m)
        )
    };
    print_page(output, members, row, next_token, next_command)
}

/// A page of a rollout's skipped tenants, and how to read the next one.
pub fn print_skipped(
    output: OutputFormat,
    skipped: &[tenant_orchestrator::domain::rollout::Skipped],
    next_token: Option<&str>,
    next_command: Option<&str>,
) -> Result<(), Failure> {
    let row =
        |s: &tenant_orchestrator::domain::rollout::Skipped| format!("{:<28} {}", s.id.as_str(), s.reason);
    print_page(output, skipped, row, next_token, next_command)
}

/// A page of `items`, a `row` each (or JSON as the API answers it), then the
/// command that reads the next page.
fn print_page<T: serde::Serialize>(
    output: OutputFormat,
    items: &[T],
    row: impl Fn(&T) -> String,
    next_token: Option<&str>,
    next_command: Option<&str>,
) -> Result<(), Failure> {
    if output == OutputFormat::Json {
        let value = serde_json::json!({ "items": items, "next_token": next_token });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    for item in items {
        println!("{}", row(item));
    }
    if let Some(command) = next_command {
        println!();
        println!("next page: {command}");
    }
    Ok(())
}

/// Each tenant's latest bake check: when, the result, and the alarms read.
fn bake_evidence(out: &mut String, bake: &BakeProgress) {
    wln!(out, "  bake checks ({} rounds passed):", bake.checks_passed);
    for check in &bake.checks {
        let result = match &check.reason {
            Some(reason) => format!("UNHEALTHY: {reason}"),
            None => "healthy".to_owned(),
        };
        wln!(
            out,
            "    {:<26} {} {result}",
            check.tenant.as_str(),
            time(check.at)
        );
        let mut alarms: Vec<String> = check
            .alarms
            .iter()
            .map(|a| format!("{} {}", a.name, a.state))
            .collect();
        if check.alarms_not_listed > 0 {
            alarms.push(format!("and {} more", check.alarms_not_listed));
        }
        if alarms.is_empty() {
            wln!(out, "      alarms: none read");
        } else {
            wln!(out, "      alarms: {}", alarms.join(", "));
        }
    }
}

/// One tenant's line: its outcome, then what a breach's rollback did to it.
fn describe(m: &RolloutMember) -> String {
    let mut text = match &m.outcome {
        Outcome::Pending => match &m.waiting_for {
            Some(w) => format!("pending: waiting for {w}"),
            None => "pending".to_owned(),
        },
        Outcome::InFlight => "upgrading".to_owned(),
        Outcome::Succeeded => "succeeded".to_owned(),
        Outcome::Failed { reason } => format!("FAILED: {reason}"),
        Outcome::Skipped { reason } => format!("skipped: {reason}"),
    };
    match &m.rollback {
        Some(RollbackStatus::InProgress) => text.push_str("; rolling back"),
        Some(RollbackStatus::Done) => text.push_str(&format!(
            "; rolled back to {}",
            m.from_release.as_ref().map(|r| r.to_string()).unwrap_or_default()
        )),
        Some(RollbackStatus::Failed { reason }) => text.push_str(&format!("; ROLLBACK FAILED: {reason}")),
        None => {}
    }
    if let Some(overrun) = &m.outage_overrun {
        text.push_str(&format!(
            "; OUTAGE OVERRAN BUDGET: {}s, budget {}",
            overrun.seconds, overrun.budget
        ));
    }
    text
}

pub fn print_list(output: OutputFormat, rollouts: &[RolloutSummary]) -> Result<(), Failure> {
    if output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(rollouts)?);
        return Ok(());
    }
    if rollouts.is_empty() {
        println!("no rollouts");
    }
    for r in rollouts {
        println!(
            "{:<40} {:<10} {:<12} started {}",
            r.id.as_str(),
            r.phase.as_str(),
            r.target,
            time(r.created_at)
        );
    }
    Ok(())
}

/// After pause, resume, abort, approve or retry: the phase and what was recorded.
pub fn print_change(output: OutputFormat, record: &RolloutRecord) -> Result<(), Failure> {
    if output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(record)?);
        return Ok(());
    }
    let last = record.events.last().map(|e| e.what.as_str()).unwrap_or_default();
    println!("rollout {} is {}: {last}", record.id, record.phase);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenant_orchestrator::domain::{Region, TenantId};

    fn member(i: usize, outcome: Outcome) -> RolloutMember {
        let tenant = TenantId::parse(&format!("t-{i:03}")).unwrap();
        let region = Region::parse("eu-west-1").unwrap();
        RolloutMember {
            outcome,
            ..RolloutMember::planned(1, tenant, region, chrono::Utc::now())
        }
    }

    #[test]
    fn a_large_wave_lists_the_tenants_that_need_a_look_first_in_id_order() {
        let mut members: Vec<RolloutMember> = (0..100).map(|i| member(i, Outcome::Succeeded)).collect();
        members[77].outcome = Outcome::Failed {
            reason: "helm upgrade timed out".into(),
        };
        members[50].outcome = Outcome::InFlight;
        members[90].rollback = Some(RollbackStatus::Done);
        let in_wave: Vec<&RolloutMember> = members.iter().collect();
        let listed: Vec<&str> = shown(&in_wave).iter().map(|m| m.tenant.as_str()).collect();
        assert_eq!(listed.len(), LISTED_PER_WAVE);
        for needed in ["t-050", "t-077", "t-090"] {
            assert!(listed.contains(&needed), "{needed} missing from {listed:?}");
        }
        assert!(listed.windows(2).all(|p| p[0] < p[1]), "in id order: {listed:?}");
        assert_eq!(listed[0], "t-000", "the rest fill up from the start");

        let few: Vec<&RolloutMember> = members.iter().take(3).collect();
        assert_eq!(shown(&few).len(), 3, "a small wave is listed whole");
    }

    /// A deploying rollout of one wave of `size` tenants, whose tally counts 7
    /// succeeded, two failed (t-001 and t-050) and one in flight (t-060).
    fn large(size: usize) -> RolloutRecord {
        let now = chrono::Utc::now();
        serde_json::from_value(serde_json::json!({
            "id": "r-large", "spec": {"release": "2.0.0"}, "phase": "running",
            "waves": [{
                "index": 0, "kind": "percent", "target": "100%", "regions": ["eu-west-1"],
                "size": size, "allowed_failures": 5, "approval_before": false, "status": "deploying",
                "tally": {
                    "pending": size.saturating_sub(10), "in_flight": 1, "succeeded": 7, "failed": 2, "skipped": 0,
                    "failures": [
                        {"tenant": "t-001", "reason": "verify failed"},
                        {"tenant": "t-050", "reason": "helm upgrade timed out"}
                    ],
                    "moving": ["t-060"],
                    "at": now
                }
            }],
            "current_wave": 0, "skipped": [], "not_selected": 0, "created_by": "operator:test",
            "created_at": now, "updated_at": now, "settled": false, "events": []
        }))
        .unwrap()
    }

    #[test]
    fn the_first_tenants_of_a_large_wave_are_listed_with_the_failures_its_tally_names() {
        let mut record = large(100);
        record.skipped_apart = Some(12);
        let mut first: Vec<RolloutMember> = (0..3).map(|i| member(i, Outcome::Pending)).collect();
        first[1].outcome = Outcome::Failed {
            reason: "verify failed".into(),
        };
        for m in &mut first {
            m.wave = 0;
        }
        let shown_text = text(&record, &first);
        assert!(
            shown_text.contains("7 succeeded, 2 failed, 1 in flight, 90 pending"),
            "counted by the tally: {shown_text}"
        );
        assert!(
            shown_text.contains("t-060") && shown_text.contains("upgrading"),
            "{shown_text}"
        );
        assert!(
            shown_text.contains("t-050") && shown_text.contains("FAILED: helm upgrade timed out"),
            "{shown_text}"
        );
        assert_eq!(
            shown_text.matches("t-001").count(),
            1,
            "listed once: {shown_text}"
        );
        assert!(
            shown_text.contains("... and 95 more: tenantctl rollout members r-large --wave 0"),
            "{shown_text}"
        );
        assert!(
            shown_text.contains("skipped when planned: 12 tenants: tenantctl rollout skipped r-large"),
            "{shown_text}"
        );

        // Given every member, the members are counted, whatever the tally says.
        let mut record = large(3);
        record.skipped_apart = None;
        let shown_text = text(&record, &first);
        assert!(
            shown_text.contains("0 succeeded, 1 failed, 0 in flight, 2 pending"),
            "{shown_text}"
        );
        assert!(
            !shown_text.contains("t-050") && !shown_text.contains("t-060") && !shown_text.contains("more:"),
            "{shown_text}"
        );
    }
}
