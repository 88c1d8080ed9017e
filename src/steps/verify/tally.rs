//! Counting consecutive healthy checks, kept in `facts.progress` so that a worker that
//! crashes mid-verification is replaced by one that continues the count (and the
//! deadline) instead of starting over or, worse, trusting checks it did not see.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::ReleaseVersion;
use crate::record::TenantFacts;

use super::alarms::AlarmReport;
use super::probe::Observation;

/// The rules a verification is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub required_passes: u32,
    pub interval: Duration,
    pub deadline: Duration,
}

/// The count so far, stored under `"verify"` in `facts.progress`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyProgress {
    /// The release being verified; a count for another release is not ours.
    pub release: String,
    /// Consecutive rounds in which every hostname served the release healthy.
    pub passes: u32,
    /// When verification began: the deadline counts from here.
    pub since: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check: Option<DateTime<Utc>>,
    /// What the last check saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<String>,
    /// The last answer that was not a pass: the reason when verification fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
    /// When the first round of the current run of passes was checked: where an outage
    /// ends once the run is long enough to verify.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streak_since: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Enough consecutive passes: the release is verified.
    Verified(String),
    /// Check again after this long.
    CheckAgain(Duration),
    /// The deadline comes before enough passes could.
    Failed(String),
}

impl VerifyProgress {
    pub fn start(release: &ReleaseVersion, now: DateTime<Utc>) -> Self {
        Self {
            release: release.to_string(),
            passes: 0,
            since: now,
            last_check: None,
            last: None,
            last_failure: None,
            streak_since: None,
        }
    }

    pub fn read(facts: &TenantFacts, release: &ReleaseVersion) -> Option<Self> {
        let raw = facts.progress.as_ref()?.get("verify")?.clone();
        serde_json::from_value::<Self>(raw)
            .ok()
            .filter(|p| p.release == release.to_string())
    }

    pub fn write(&self, facts: &mut TenantFacts) {
        facts.progress = Some(serde_json::json!({ "verify": self }));
    }

    /// How long until the next check is due, if it is not due yet: checks stay an
    /// interval apart even when a step runs early (a worker taking over at once).
    pub fn not_due_for(&self, rules: &Rules, now: DateTime<Utc>) -> Option<Duration> {
        let next = self.last_check? + chrono::Duration::from_std(rules.interval).ok()?;
        (next > now).then(|| (next - now).to_std().unwrap_or_default())
    }

    /// Counts one round of checks (one observation per hostname, then the tenant's
    /// alarms, read only when every hostname passed) and decides.
    pub fn record(
        &mut self,
        observations: &[Observation],
        alarms: Option<&AlarmReport>,
        release: &ReleaseVersion,
        rules: &Rules,
        now: DateTime<Utc>,
    ) -> Verdict {
        self.last_check = Some(now);
        let alarms_failing = alarms.filter(|a| !a.healthy());
        match (observations.iter().find(|o| !o.serves(release)), alarms_failing) {
            (Some(failing), _) => {
                self.passes = 0;
                self.streak_since = None;
                self.last = Some(failing.to_string());
                self.last_failure = self.last.clone();
            }
            (None, Some(alarms)) => {
                self.passes = 0;
                self.streak_since = None;
                self.last = Some(alarms.to_string());
                self.last_failure = self.last.clone();
            }
            (None, None) => {
                self.passes += 1;
                self.streak_since.get_or_insert(now);
                let first = observations.first().map(|o| o.to_string());
                self.last = match (first, alarms) {
                    (Some(first), Some(alarms)) => Some(format!("{first}; {alarms}")),
                    (first, alarms) => first.or(alarms.map(|a| a.to_string())),
                };
            }
        }
        let hosts = observations.len();
        if self.passes >= rules.required_passes {
            let alarms = alarms.map(|a| format!("; {a}")).unwrap_or_default();
            return Verdict::Verified(format!(
                "{hosts} hostname(s) served {release} healthy {} times in a row{alarms}",
                self.passes
            ));
        }
        let after = |t: DateTime<Utc>, d: Duration| {
            chrono::Duration::from_std(d)
                .ok()
                .and_then(|d| t.checked_add_signed(d))
        };
        // A deadline too far out to represent is no deadline.
        let past_deadline = match (after(self.since, rules.deadline), after(now, rules.interval)) {
            (Some(deadline), Some(next)) => next > deadline,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if past_deadline {
            let seen = self
                .last_failure
                .as_deref()
                .or(self.last.as_deref())
                .unwrap_or("no check ran");
            return Verdict::Failed(format!(
                "{seen} — want {release}, {}/{} passes within {}s",
                self.passes,
                rules.required_passes,
                rules.deadline.as_secs()
            ));
        }
        Verdict::CheckAgain(rules.interval)
    }
}

/// Whether a round found the tenant down (not merely on another release): a hostname
/// unreachable or not answering a healthy report, or an alarm failing.
pub fn tenant_down(observations: &[Observation], alarms: Option<&AlarmReport>) -> bool {
    observations.iter().any(|o| !o.healthy()) || alarms.is_some_and(|a| !a.healthy())
}

#[cfg(test)]
mod tests {
    use super::super::probe::{Answer, HealthReport};
    use super::*;

    fn rules() -> Rules {
        Rules {
            required_passes: 3,
            interval: Duration::from_secs(2),
            deadline: Duration::from_secs(300),
        }
    }

    fn answer(status: u16, health: &str, release: &str) -> Vec<Observation> {
        vec![Observation {
            host: "acme.example.com".into(),
            answer: Answer::Http {
                status,
                report: Some(HealthReport {
                    status: health.into(),
                    release: Some(release.into()),
                }),
            },
        }]
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn three_consecutive_passes_verify_and_a_failure_resets_the_count() {
        let want = ReleaseVersion::parse("1.1.0").unwrap();
        let ok = answer(200, "ok", "1.1.0");
        let mut p = VerifyProgress::start(&want, at(0));
        assert_eq!(
            p.record(&ok, None, &want, &rules(), at(0)),
            Verdict::CheckAgain(rules().interval)
        );
        assert_eq!(
            p.record(&ok, None, &want, &rules(), at(2)),
            Verdict::CheckAgain(rules().interval)
        );
        p.record(&answer(503, "unhealthy", "1.1.0"), None, &want, &rules(), at(4));
        assert_eq!(p.passes, 0);
        p.record(&ok, None, &want, &rules(), at(6));
        p.record(&ok, None, &want, &rules(), at(8));
        assert!(matches!(
            p.record(&ok, None, &want, &rules(), at(10)),
            Verdict::Verified(_)
        ));
    }

    #[test]
    fn the_deadline_fails_with_the_last_answer_that_was_not_a_pass() {
        let want = ReleaseVersion::parse("1.1.0").unwrap();
        let mut p = VerifyProgress::start(&want, at(0));
        p.record(&answer(503, "unhealthy", "1.0.0"), None, &want, &rules(), at(290));
        let verdict = p.record(&answer(200, "ok", "1.1.0"), None, &want, &rules(), at(299));
        assert_eq!(
            verdict,
            Verdict::Failed(
                "acme.example.com answered 503 unhealthy (release 1.0.0) — want 1.1.0, 1/3 passes within 300s"
                    .into()
            )
        );
    }

    #[test]
    fn an_alarm_resets_the_count_and_is_named_when_the_deadline_comes() {
        use super::super::alarms::{AlarmReading, AlarmState};
        let cpu = "tenant-test-acme/database-cpu";
        let alarms = |state| AlarmReport {
            readings: Ok(vec![AlarmReading {
                name: cpu.into(),
                state,
            }]),
            insufficient_data_fails: false,
        };
        let want = ReleaseVersion::parse("1.1.0").unwrap();
        let ok = answer(200, "ok", "1.1.0");
        let mut p = VerifyProgress::start(&want, at(0));
        p.record(&ok, Some(&alarms(AlarmState::Ok)), &want, &rules(), at(0));
        assert_eq!(p.passes, 1);
        p.record(&ok, Some(&alarms(AlarmState::Alarm)), &want, &rules(), at(2));
        assert_eq!(p.passes, 0, "an alarm in ALARM is not a pass");
        let verdict = p.record(&ok, Some(&alarms(AlarmState::Ok)), &want, &rules(), at(299));
        assert_eq!(
            verdict,
            Verdict::Failed(format!(
                "failing alarms: {cpu} ALARM (checked {cpu} ALARM) — want 1.1.0, 1/3 passes within 300s"
            ))
        );
    }

    #[test]
    fn checks_stay_an_interval_apart_and_progress_round_trips() {
        let want = ReleaseVersion::parse("1.1.0").unwrap();
        let mut p = VerifyProgress::start(&want, at(0));
        assert_eq!(p.not_due_for(&rules(), at(0)), None);
        p.record(&answer(200, "ok", "1.1.0"), None, &want, &rules(), at(10));
        assert_eq!(p.not_due_for(&rules(), at(11)), Some(Duration::from_secs(1)));
        assert_eq!(p.not_due_for(&rules(), at(12)), None);

        let mut facts = TenantFacts::default();
        p.write(&mut facts);
        assert_eq!(VerifyProgress::read(&facts, &want), Some(p));
        let other = ReleaseVersion::parse("1.0.0").unwrap();
        assert_eq!(
            VerifyProgress::read(&facts, &other),
            None,
            "a count for another release is not ours"
        );
    }

    #[test]
    fn the_passing_streak_starts_at_its_first_healthy_round() {
        let want = ReleaseVersion::parse("1.1.0").unwrap();
        let ok = answer(200, "ok", "1.1.0");
        let down = answer(503, "unhealthy", "1.1.0");
        let mut p = VerifyProgress::start(&want, at(0));
        p.record(&ok, None, &want, &rules(), at(0));
        assert!(tenant_down(&down, None));
        p.record(&down, None, &want, &rules(), at(2));
        assert_eq!(p.streak_since, None, "a failed round ends the streak");
        p.record(&ok, None, &want, &rules(), at(4));
        p.record(&ok, None, &want, &rules(), at(6));
        assert!(matches!(
            p.record(&ok, None, &want, &rules(), at(8)),
            Verdict::Verified(_)
        ));
        assert_eq!(p.streak_since, Some(at(4)), "not when the step finished");
    }

    #[test]
    fn another_release_answering_healthy_is_no_outage() {
        assert!(!tenant_down(&answer(200, "ok", "1.0.0"), None));
        assert!(tenant_down(&answer(404, "unknown", "1.0.0"), None));
        let unreachable = vec![Observation {
            host: "acme.example.com".into(),
            answer: Answer::Unreachable("connection refused".into()),
        }];
        assert!(tenant_down(&unreachable, None));
    }
}
