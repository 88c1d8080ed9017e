//! How a rollout moves: region order, waves, limits, bake, failure budget, approvals.

use std::num::NonZeroU32;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::waves::{FailureBudget, Waves};
use crate::domain::duration::{format_duration, parse_duration};
use crate::domain::{Group, InvalidValue, LogicalId, MigrationRestore, Region};

/// How a rollout moves through the selected tenants. Every field is valid on its own,
/// so any value of this type is a usable strategy; the JSON form is checked field by
/// field on the way in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StrategyFields", into = "StrategyFields")]
pub struct Strategy {
    /// Regions in the order they are rolled out, the lowest-traffic region first.
    /// Regions of selected tenants that are not listed follow, sorted by name.
    pub region_order: Vec<Region>,
    /// How many regions move at once: 1 (the default) finishes a region before the
    /// next starts; K > 1 takes regions K at a time, wave by wave in lockstep.
    pub max_parallel_regions: NonZeroU32,
    /// Groups (rings) whose tenants go first within a region, in this order; unlisted
    /// groups follow by name. Within a group tenants go by id, so canaries are
    /// reproducible.
    pub group_order: Vec<Group>,
    pub waves: Waves,
    /// At most this many tenants of one wave upgrading at once (all regions together).
    pub max_in_flight_per_wave: Option<NonZeroU32>,
    /// At most this many tenants of one region upgrading at once.
    pub max_in_flight_per_region: Option<NonZeroU32>,
    pub bake: Bake,
    pub failure_budget: FailureBudget,
    pub on_breach: OnBreach,
    pub approvals: Approvals,
    /// Resources of the tenants' stacks (by logical id, e.g. `Database`) that this
    /// rollout may replace or remove; any other replacement or removal of a database
    /// cluster or instance or a bucket is refused.
    pub allow_replacement: Vec<LogicalId>,
    /// What a tenant whose upgrade fails after its schema migration ran does with its
    /// pre-upgrade snapshot: restore it at once, or wait for an operator's approval.
    pub migration_restore: MigrationRestore,
    /// The longest a tenant may be out of service during its upgrade (`None`: no
    /// budget). A tenant with maintenance windows starts only in a window that stays
    /// open at least this long, and an upgrade whose measured outage is longer is
    /// flagged in the rollout's outcome.
    pub outage_budget: Option<OutageBudget>,
}

impl Default for Strategy {
    fn default() -> Self {
        Self {
            region_order: Vec::new(),
            max_parallel_regions: NonZeroU32::MIN,
            group_order: Vec::new(),
            waves: Waves::default(),
            max_in_flight_per_wave: None,
            max_in_flight_per_region: None,
            bake: Bake::default(),
            failure_budget: FailureBudget::default(),
            on_breach: OnBreach::default(),
            approvals: Approvals::default(),
            allow_replacement: Vec::new(),
            migration_restore: MigrationRestore::default(),
            outage_budget: None,
        }
    }
}

/// The JSON form of [`Strategy`]; every field may be left out for its default.
#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct StrategyFields {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    region_order: Vec<Region>,
    max_parallel_regions: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    group_order: Vec<Group>,
    waves: Waves,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_in_flight_per_wave: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_in_flight_per_region: Option<u32>,
    bake_time: String,
    bake_checks: u32,
    bake_check_interval: String,
    failure_budget: FailureBudget,
    on_breach: OnBreach,
    approvals: Approvals,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    allow_replacement: Vec<LogicalId>,
    migration_restore: MigrationRestore,
    #[serde(skip_serializing_if = "Option::is_none")]
    outage_budget: Option<String>,
}

impl Default for StrategyFields {
    fn default() -> Self {
        Strategy::default().into()
    }
}

fn at_least_one(kind: &'static str, n: u32, meaning: &str) -> Result<NonZeroU32, InvalidValue> {
    NonZeroU32::new(n).ok_or_else(|| InvalidValue::new(kind, "0", format!("must be at least 1 ({meaning})")))
}

fn no_repeats<T: PartialEq + std::fmt::Display>(kind: &'static str, items: &[T]) -> Result<(), InvalidValue> {
    for (i, item) in items.iter().enumerate() {
        if items[..i].contains(item) {
            return Err(InvalidValue::new(
                kind,
                &item.to_string(),
                "is listed twice; list each once, in the order wanted",
            ));
        }
    }
    Ok(())
}

impl TryFrom<StrategyFields> for Strategy {
    type Error = InvalidValue;
    fn try_from(f: StrategyFields) -> Result<Self, Self::Error> {
        no_repeats("region_order entry", &f.region_order)?;
        no_repeats("group_order entry", &f.group_order)?;
        no_repeats("allow_replacement entry", &f.allow_replacement)?;
        let limit = |kind, n: Option<u32>| {
            n.map(|n| at_least_one(kind, n, "leave it out for no limit"))
                .transpose()
        };
        Ok(Strategy {
            max_parallel_regions: at_least_one(
                "max_parallel_regions",
                f.max_parallel_regions,
                "1 moves one region at a time",
            )?,
            max_in_flight_per_wave: limit("max_in_flight_per_wave", f.max_in_flight_per_wave)?,
            max_in_flight_per_region: limit("max_in_flight_per_region", f.max_in_flight_per_region)?,
            bake: Bake::new(
                parse_duration("bake_time", &f.bake_time)?,
                f.bake_checks,
                parse_duration("bake_check_interval", &f.bake_check_interval)?,
            )?,
            region_order: f.region_order,
            group_order: f.group_order,
            waves: f.waves,
            failure_budget: f.failure_budget,
            on_breach: f.on_breach,
            approvals: f.approvals,
            allow_replacement: f.allow_replacement,
            migration_restore: f.migration_restore,
            outage_budget: f.outage_budget.as_deref().map(OutageBudget::parse).transpose()?,
        })
    }
}

impl From<Strategy> for StrategyFields {
    fn from(s: Strategy) -> Self {
        StrategyFields {
            region_order: s.region_order,
            max_parallel_regions: s.max_parallel_regions.get(),
            group_order: s.group_order,
            waves: s.waves,
            max_in_flight_per_wave: s.max_in_flight_per_wave.map(NonZeroU32::get),
            max_in_flight_per_region: s.max_in_flight_per_region.map(NonZeroU32::get),
            bake_time: format_duration(s.bake.time),
            bake_checks: s.bake.checks,
            bake_check_interval: format_duration(s.bake.check_interval),
            failure_budget: s.failure_budget,
            on_breach: s.on_breach,
            approvals: s.approvals,
            allow_replacement: s.allow_replacement,
            migration_restore: s.migration_restore,
            outage_budget: s.outage_budget.map(|b| format_duration(b.get())),
        }
    }
}

/// How long one tenant may be out of service during its upgrade: between 1s and 7d
/// (the longest maintenance window).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OutageBudget(Duration);

impl TryFrom<String> for OutageBudget {
    type Error = InvalidValue;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<OutageBudget> for String {
    fn from(budget: OutageBudget) -> Self {
        budget.to_string()
    }
}

impl OutageBudget {
    const LONGEST: Duration = Duration::from_secs(7 * 24 * 3600);

    pub fn new(budget: Duration) -> Result<Self, InvalidValue> {
        if budget < Duration::from_secs(1) {
            return Err(InvalidValue::new(
                "outage_budget",
                &format_duration(budget),
                "must be at least 1s, e.g. 5m; leave it out for no outage budget",
            ));
        }
        if budget > Self::LONGEST {
            return Err(InvalidValue::new(
                "outage_budget",
                &format_duration(budget),
                "must be at most 7d, the longest maintenance window; e.g. 30m",
            ));
        }
        Ok(Self(budget))
    }

    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        Self::new(parse_duration("outage_budget", text)?)
    }

    pub fn get(self) -> Duration {
        self.0
    }

    /// Whether an outage of `seconds` was longer than the budget.
    pub fn overrun_by(self, seconds: u64) -> bool {
        Duration::from_secs(seconds) > self.0
    }
}

impl std::fmt::Display for OutageBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

/// The wait after each wave before the next may start: `time` must pass *and* at least
/// `checks` health checks, one every `check_interval`, must pass in that time (the
/// evidence). The checks must fit in the time, so the bake lasts exactly `time`, at
/// most a week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bake {
    time: Duration,
    checks: u32,
    check_interval: Duration,
}

impl Bake {
    const LONGEST: Duration = Duration::from_secs(7 * 24 * 3600);

    pub fn new(time: Duration, checks: u32, check_interval: Duration) -> Result<Self, InvalidValue> {
        if time > Self::LONGEST {
            return Err(InvalidValue::new(
                "bake_time",
                &format_duration(time),
                "must be at most 7d; to hold a rollout longer, let it wait for an approval",
            ));
        }
        if checks == 0 && !time.is_zero() {
            return Err(InvalidValue::new(
                "bake_checks",
                "0",
                "a bake needs evidence: require at least 1 passing health check, or set bake_time to 0s to \
                 skip baking",
            ));
        }
        if checks > 0 && check_interval < Duration::from_secs(1) {
            return Err(InvalidValue::new(
                "bake_check_interval",
                &format_duration(check_interval),
                "must be at least 1s, e.g. 1m",
            ));
        }
        // The checks' total, said only when it is a real figure (a product past what a
        // duration holds is simply longer than any bake).
        let needed = check_interval.checked_mul(checks);
        if needed.is_none_or(|needed| needed > time) {
            return Err(InvalidValue::new(
                "bake_checks",
                &checks.to_string(),
                format!(
                    "{checks} checks every {} take {}, longer than bake_time {}; lower bake_checks or \
                     bake_check_interval, or raise bake_time",
                    format_duration(check_interval),
                    needed.map_or_else(|| "more than any duration".to_owned(), format_duration),
                    format_duration(time)
                ),
            ));
        }
        Ok(Self {
            time,
            checks,
            check_interval,
        })
    }

    /// No bake: the next wave may start as soon as this one is done.
    pub fn none() -> Self {
        Self {
            time: Duration::ZERO,
            checks: 0,
            check_interval: Duration::ZERO,
        }
    }

    pub fn time(&self) -> Duration {
        self.time
    }

    pub fn checks(&self) -> u32 {
        self.checks
    }

    pub fn check_interval(&self) -> Duration {
        self.check_interval
    }
}

/// 30 minutes with at least 3 passing checks, one every 5 minutes.
impl Default for Bake {
    fn default() -> Self {
        Self {
            time: Duration::from_secs(30 * 60),
            checks: 3,
            check_interval: Duration::from_secs(5 * 60),
        }
    }
}

/// What happens when a wave spends more than its failure budget.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OnBreach {
    pub action: BreachAction,
    pub rollback: RollbackScope,
}

/// A breach always stops the rollout; no further tenant is started until an operator
/// resumes or aborts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BreachAction {
    #[default]
    Halt,
}

/// Which tenants a breach rolls back to their previous release.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RollbackScope {
    /// The tenants of the wave that failed.
    #[default]
    Failed,
    /// Every tenant of the breached wave, those that succeeded too.
    Wave,
    /// Nothing beyond what each failed tenant's own upgrade already undid; an operator
    /// decides.
    None,
}

/// Where the rollout waits for an operator's approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Approvals {
    /// Before the wave that follows a canary (each region's canary).
    pub after_canary: bool,
    /// Before the first wave of each region after the first (with parallel regions: of
    /// each group of regions after the first).
    pub between_regions: bool,
}

/// A person looks at the canary; regions follow on their own.
impl Default for Approvals {
    fn default() -> Self {
        Self {
            after_canary: true,
            between_regions: false,
        }
    }
}
