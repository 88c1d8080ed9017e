//! Freeze windows: stretches of time (a year-end, a launch) in which nothing of an
//! environment, or of one of its regions, is changed. Rollouts start no tenant of a
//! frozen environment and region, and operator commands that change a tenant are
//! refused unless an admin overrides the freeze.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Environment, InvalidValue, Region};

/// The longest reason a freeze keeps; operators read it in every refusal.
pub const FREEZE_REASON_MAX: usize = 200;

/// A reason (a freeze's, an override's) without the ASCII whitespace around it: the
/// whitespace every regex engine means by `\s`, so the API document's `\S` pattern and
/// the server agree on what is blank.
pub fn trim_reason(reason: &str) -> &str {
    reason.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\u{0b}')
}
/// A reason given for overriding a freeze, trimmed, if it is usable: 1 to
/// [`FREEZE_REASON_MAX`] characters of plain text on one line. Control characters
/// (line breaks, terminal escape sequences) are refused anywhere in what was given:
/// the history and every refusal quote reasons to operators' terminals and pipeline
/// logs.
pub fn usable_reason(given: &str) -> Option<&str> {
    let reason = trim_reason(given);
    let usable = !reason.is_empty() && reason.chars().count() <= FREEZE_REASON_MAX;
    (usable && !has_control_characters(given)).then_some(reason)
}

fn has_control_characters(reason: &str) -> bool {
    reason.chars().any(char::is_control)
}

/// The longest a single freeze may last: a longer one is almost surely a typo.
pub const FREEZE_LONGEST_DAYS: i64 = 366;

/// One freeze as stored: which environment (and region, or all of its regions), from
/// when until when, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Freeze {
    /// Given by the store when it is added (`f-` and 12 hex digits).
    pub id: String,
    #[schema(value_type = String)]
    pub environment: Environment,
    /// `None`: every region of the environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub region: Option<Region>,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub reason: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

impl Freeze {
    /// A freeze checked for sense: `until` after `from`, a reason that says why, and
    /// not longer than a year.
    pub fn new(
        environment: Environment,
        region: Option<Region>,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        reason: &str,
    ) -> Result<Self, InvalidValue> {
        if has_control_characters(reason) {
            return Err(InvalidValue::new(
                "freeze reason",
                &reason.escape_debug().to_string(),
                "holds control characters (a line break, a terminal escape); write it as plain text on one line",
            ));
        }
        let reason = trim_reason(reason);
        if reason.is_empty() {
            return Err(InvalidValue::new(
                "freeze reason",
                reason,
                "is empty; say why changes are frozen (e.g. \"year-end\"), people read it in every refusal",
            ));
        }
        if reason.chars().count() > FREEZE_REASON_MAX {
            return Err(InvalidValue::new(
                "freeze reason",
                reason,
                format!("is longer than {FREEZE_REASON_MAX} characters; shorten it"),
            ));
        }
        if until <= from {
            return Err(InvalidValue::new(
                "freeze",
                &format!("{} .. {}", from.to_rfc3339(), until.to_rfc3339()),
                "ends before it begins; give an end (--until, `until` in the API) after its start",
            ));
        }
        if until - from > chrono::TimeDelta::days(FREEZE_LONGEST_DAYS) {
            return Err(InvalidValue::new(
                "freeze",
                &format!("{} .. {}", from.to_rfc3339(), until.to_rfc3339()),
                format!("lasts more than {FREEZE_LONGEST_DAYS} days; split it or check the dates"),
            ));
        }
        Ok(Self {
            id: String::new(),
            environment,
            region,
            from,
            until,
            reason: reason.to_owned(),
            created_by: String::new(),
            created_at: from,
        })
    }

    /// Whether it freezes `region` of `environment` at `at`.
    pub fn covers(&self, environment: &Environment, region: &Region, at: DateTime<Utc>) -> bool {
        self.environment == *environment
            && self.region.as_ref().is_none_or(|r| r == region)
            && self.from <= at
            && at < self.until
    }
}

/// Where an environment's region stands at a time: the freeze that holds it the
/// longest, when one does.
pub fn frozen_by<'a>(
    freezes: &'a [Freeze],
    environment: &Environment,
    region: &Region,
    at: DateTime<Utc>,
) -> Option<FreezeHold<'a>> {
    let freeze = freezes
        .iter()
        .filter(|f| f.covers(environment, region, at))
        .max_by_key(|f| f.until)?;
    // Freezes that overlap hold it until the last of them ends.
    let mut until = freeze.until;
    while let Some(next) = freezes
        .iter()
        .filter(|f| f.covers(environment, region, until))
        .max_by_key(|f| f.until)
    {
        until = next.until;
    }
    Some(FreezeHold { freeze, until })
}

/// A freeze that holds a tenant now, and when it (with any freeze overlapping its end)
/// lets go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreezeHold<'a> {
    pub freeze: &'a Freeze,
    pub until: DateTime<Utc>,
}

impl std::fmt::Display for FreezeHold<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "frozen until {}: {} (freeze {} of {}{})",
            self.until.format("%Y-%m-%d %H:%M:%S UTC"),
            self.freeze.reason,
            self.freeze.id,
            self.freeze.environment,
            match &self.freeze.region {
                Some(r) => format!(" in {r}"),
                None => String::new(),
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_with_control_characters_is_refused_anywhere_in_it() {
        let now = utc("2026-12-01T00:00:00Z");
        let new = |reason: &str| {
            Freeze::new(
                Environment::parse("prod").unwrap(),
                None,
                now,
                now + chrono::TimeDelta::hours(1),
                reason,
            )
        };
        for bad in ["\u{1b}[2J", "year\nend", "year-end\n", "\u{85}x"] {
            let refused = new(bad).expect_err(bad).to_string();
            assert!(refused.contains("control characters"), "{refused}");
            assert_eq!(usable_reason(bad), None, "{bad:?}");
        }
        assert_eq!(new("  year-end ").unwrap().reason, "year-end");
        assert_eq!(usable_reason(" security fix "), Some("security fix"));
        assert_eq!(usable_reason("   "), None);
    }

    #[test]
    fn a_reason_is_blank_only_when_it_is_ascii_whitespace() {
        assert_eq!(trim_reason(" \t year-end \n"), "year-end");
        assert_eq!(trim_reason(" \u{0b}\r\n"), "");
        // What a `\S` pattern takes as a character of a reason, the server does too.
        assert_eq!(trim_reason("\u{85}"), "\u{85}");
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn freeze(env: &str, region: Option<&str>, from: &str, until: &str, id: &str) -> Freeze {
        let mut f = Freeze::new(
            Environment::parse(env).unwrap(),
            region.map(|r| Region::parse(r).unwrap()),
            utc(from),
            utc(until),
            "year-end",
        )
        .unwrap();
        f.id = id.into();
        f
    }

    #[test]
    fn a_freeze_needs_a_reason_and_an_end_after_its_start() {
        let prod = Environment::parse("prod").unwrap();
        let (a, b) = (utc("2030-12-20T00:00:00Z"), utc("2031-01-03T00:00:00Z"));
        let empty = Freeze::new(prod.clone(), None, a, b, "  ").unwrap_err();
        assert!(empty.to_string().contains("say why"), "{empty}");
        let long = Freeze::new(prod.clone(), None, a, b, &"x".repeat(201)).unwrap_err();
        assert!(long.to_string().contains("200 characters"), "{long}");
        let backwards = Freeze::new(prod.clone(), None, b, a, "year-end").unwrap_err();
        assert!(
            backwards.to_string().contains("ends before it begins"),
            "{backwards}"
        );
        let same = Freeze::new(prod.clone(), None, a, a, "year-end").unwrap_err();
        assert!(same.to_string().contains("ends before it begins"), "{same}");
        let years = Freeze::new(prod, None, a, a + chrono::TimeDelta::days(400), "x").unwrap_err();
        assert!(years.to_string().contains("366 days"), "{years}");
    }

    #[test]
    fn a_freeze_covers_its_environment_and_region_from_its_start_until_its_end() {
        let prod = Environment::parse("prod").unwrap();
        let staging = Environment::parse("staging").unwrap();
        let (eu, us) = (
            Region::parse("eu-west-1").unwrap(),
            Region::parse("us-east-1").unwrap(),
        );
        let all = freeze(
            "prod",
            None,
            "2030-12-20T00:00:00Z",
            "2031-01-03T00:00:00Z",
            "f-all",
        );
        let eu_only = freeze(
            "prod",
            Some("eu-west-1"),
            "2030-12-20T00:00:00Z",
            "2031-01-03T00:00:00Z",
            "f-eu",
        );
        let inside = utc("2030-12-24T00:00:00Z");
        assert!(all.covers(&prod, &us, inside));
        assert!(!all.covers(&staging, &us, inside));
        assert!(eu_only.covers(&prod, &eu, inside));
        assert!(!eu_only.covers(&prod, &us, inside));
        assert!(
            all.covers(&prod, &eu, utc("2030-12-20T00:00:00Z")),
            "from is inside"
        );
        assert!(
            !all.covers(&prod, &eu, utc("2031-01-03T00:00:00Z")),
            "until is outside"
        );
    }

    #[test]
    fn overlapping_freezes_hold_until_the_last_of_them_ends() {
        let prod = Environment::parse("prod").unwrap();
        let eu = Region::parse("eu-west-1").unwrap();
        let freezes = vec![
            freeze(
                "prod",
                None,
                "2030-12-20T00:00:00Z",
                "2030-12-28T00:00:00Z",
                "f-1",
            ),
            freeze(
                "prod",
                Some("eu-west-1"),
                "2030-12-27T00:00:00Z",
                "2031-01-03T00:00:00Z",
                "f-2",
            ),
        ];
        let hold = frozen_by(&freezes, &prod, &eu, utc("2030-12-21T00:00:00Z")).unwrap();
        assert_eq!(hold.freeze.id, "f-1");
        assert_eq!(hold.until, utc("2031-01-03T00:00:00Z"));
        assert!(
            hold.to_string()
                .starts_with("frozen until 2031-01-03 00:00:00 UTC: year-end"),
            "{hold}"
        );
        assert_eq!(frozen_by(&freezes, &prod, &eu, utc("2031-01-03T00:00:00Z")), None);
    }
}
