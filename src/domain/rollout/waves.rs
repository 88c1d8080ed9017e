//! How far each wave takes a region, and how many failures a wave may absorb. Both are
//! written as a count (`"5"` or `5`) or a whole percentage (`"10%"`).

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::domain::InvalidValue;

/// A whole percentage, 0–100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Percent(u8);

impl Percent {
    pub const FULL: Percent = Percent(100);

    pub fn new(p: u8) -> Option<Self> {
        (p <= 100).then_some(Self(p))
    }

    pub fn get(self) -> u8 {
        self.0
    }

    /// This share of `n`, rounded down: 50% of 3 is 1.
    pub fn of(self, n: usize) -> usize {
        n * usize::from(self.0) / 100
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

/// A count or a percentage as written (at most nine digits, so it fits a `u32`),
/// before the caller's range rules apply.
enum Amount {
    Count(u32),
    Percent(u32),
}

fn read_amount(s: &str) -> Option<Amount> {
    let s = s.trim();
    let digits = |d: &str| !d.is_empty() && d.len() <= 9 && d.chars().all(|c| c.is_ascii_digit());
    match s.strip_suffix('%').map(str::trim_end) {
        Some(p) if digits(p) => p.parse().ok().map(Amount::Percent),
        Some(_) => None,
        None if digits(s) => s.parse().ok().map(Amount::Count),
        None => None,
    }
}

/// Counts may be written as JSON numbers or strings, percentages only as strings.
#[derive(Deserialize)]
#[serde(untagged)]
enum TextOrNumber {
    Text(String),
    Number(i64),
}

impl TextOrNumber {
    fn into_text(self) -> String {
        match self {
            TextOrNumber::Text(s) => s,
            TextOrNumber::Number(n) => n.to_string(),
        }
    }
}

/// How far one wave takes a region, counted from the start of the rollout in that
/// region: after a `"50%"` wave up to half of the region's tenants have been started,
/// after a `"20"` wave up to twenty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "TextOrNumber", into = "String")]
pub enum WaveSize {
    Count(NonZeroU32),
    Percent(Percent),
}

impl WaveSize {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let kind = "wave";
        let hint = "use a percentage in 1–100 like \"10%\" or a count of tenants like \"5\"";
        match read_amount(s) {
            Some(Amount::Percent(p)) if p > 100 => Err(InvalidValue::new(
                kind,
                s,
                "is over 100%; use a percentage in 1–100 or a count",
            )),
            Some(Amount::Percent(0)) | Some(Amount::Count(0)) => Err(InvalidValue::new(
                kind,
                s,
                format!("would start no tenant; {hint}"),
            )),
            Some(Amount::Percent(p)) => Ok(WaveSize::Percent(Percent(p as u8))),
            Some(Amount::Count(n)) => NonZeroU32::new(n)
                .map(WaveSize::Count)
                .ok_or_else(|| InvalidValue::new(kind, s, hint)),
            None => Err(InvalidValue::new(kind, s, hint)),
        }
    }

    /// How many of a region's `region_size` selected tenants have been started once
    /// this wave is done (before later waves clamp it to what is left).
    pub fn cumulative_target(self, region_size: usize) -> usize {
        match self {
            WaveSize::Count(n) => region_size.min(n.get() as usize),
            WaveSize::Percent(p) => p.of(region_size),
        }
    }
}

impl fmt::Display for WaveSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaveSize::Count(n) => write!(f, "{n}"),
            WaveSize::Percent(p) => write!(f, "{p}"),
        }
    }
}

impl FromStr for WaveSize {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<TextOrNumber> for WaveSize {
    type Error = InvalidValue;
    fn try_from(v: TextOrNumber) -> Result<Self, Self::Error> {
        Self::parse(&v.into_text())
    }
}

impl From<WaveSize> for String {
    fn from(w: WaveSize) -> String {
        w.to_string()
    }
}

/// The waves a rollout applies to each region, in order. The first is the canary. Each
/// reaches further than the one before and the last is `"100%"`, so every selected
/// tenant of a region is reached. A list that stops short is refused rather than
/// completed with an implicit `"100%"`: the last wave is the biggest, and it should be
/// one the operator wrote.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<WaveSize>", into = "Vec<WaveSize>")]
pub struct Waves(Vec<WaveSize>);

impl Waves {
    pub fn new(sizes: Vec<WaveSize>) -> Result<Self, InvalidValue> {
        let kind = "waves";
        let written = || {
            sizes
                .iter()
                .map(WaveSize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let Some(last) = sizes.last() else {
            return Err(InvalidValue::new(
                kind,
                "",
                "list no wave; use e.g. [\"1\", \"10%\", \"50%\", \"100%\"] (a canary, then shares of each region)",
            ));
        };
        if *last != WaveSize::Percent(Percent::FULL) {
            return Err(InvalidValue::new(
                kind,
                &written(),
                format!(
                    "end at \"{last}\" but the last wave must be \"100%\" so that every selected tenant of a \
                     region is reached; add \"100%\" at the end"
                ),
            ));
        }
        let mut last_count = None;
        let mut last_percent = None;
        for size in &sizes {
            let previous = match size {
                WaveSize::Count(n) => last_count.replace(*n).filter(|p| p >= n).map(WaveSize::Count),
                WaveSize::Percent(p) => last_percent.replace(*p).filter(|q| q >= p).map(WaveSize::Percent),
            };
            if let Some(previous) = previous {
                return Err(InvalidValue::new(
                    kind,
                    &written(),
                    format!(
                        "\"{size}\" comes after \"{previous}\"; waves are cumulative (\"50%\" means half of \
                         the region has been started), so each must reach further than the one before"
                    ),
                ));
            }
        }
        Ok(Self(sizes))
    }

    pub fn sizes(&self) -> &[WaveSize] {
        &self.0
    }

    pub fn canary(&self) -> WaveSize {
        self.0[0]
    }
}

/// A canary of one tenant, then a tenth, half and all of each region.
impl Default for Waves {
    fn default() -> Self {
        let p = |p| WaveSize::Percent(Percent(p));
        Self(vec![WaveSize::Count(NonZeroU32::MIN), p(10), p(50), p(100)])
    }
}

impl TryFrom<Vec<WaveSize>> for Waves {
    type Error = InvalidValue;
    fn try_from(sizes: Vec<WaveSize>) -> Result<Self, Self::Error> {
        Self::new(sizes)
    }
}

impl From<Waves> for Vec<WaveSize> {
    fn from(w: Waves) -> Self {
        w.0
    }
}

/// The command-line form: `1,10%,50%,100%`.
impl FromStr for Waves {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s.split(',').map(WaveSize::parse).collect::<Result<_, _>>()?)
    }
}

impl fmt::Display for Waves {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sizes: Vec<String> = self.0.iter().map(WaveSize::to_string).collect();
        f.write_str(&sizes.join(","))
    }
}

/// How many tenants of one wave may fail before the rollout halts: a count, or a
/// share of the wave rounded down (`"10%"` of a canary of one allows no failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "TextOrNumber", into = "String")]
pub enum FailureBudget {
    Count(u32),
    Percent(Percent),
}

impl FailureBudget {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let kind = "failure budget";
        let hint =
            "use a count of failed tenants like \"1\" or a percentage of the wave in 0–100 like \"10%\"";
        match read_amount(s) {
            Some(Amount::Percent(p)) if p > 100 => Err(InvalidValue::new(
                kind,
                s,
                "is over 100%; use a percentage in 0–100 or a count",
            )),
            Some(Amount::Percent(p)) => Ok(FailureBudget::Percent(Percent(p as u8))),
            Some(Amount::Count(n)) => Ok(FailureBudget::Count(n)),
            None => Err(InvalidValue::new(kind, s, hint)),
        }
    }

    /// How many of a wave's `wave_size` tenants may fail without halting the rollout.
    pub fn allowed_failures(self, wave_size: usize) -> usize {
        match self {
            FailureBudget::Count(n) => n as usize,
            FailureBudget::Percent(p) => p.of(wave_size),
        }
    }

    /// Whether `failed` failures in a wave of `wave_size` tenants exceed the budget.
    pub fn is_breached(self, failed: usize, wave_size: usize) -> bool {
        failed > self.allowed_failures(wave_size)
    }
}

/// No failure is tolerated.
impl Default for FailureBudget {
    fn default() -> Self {
        FailureBudget::Count(0)
    }
}

impl fmt::Display for FailureBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureBudget::Count(n) => write!(f, "{n}"),
            FailureBudget::Percent(p) => write!(f, "{p}"),
        }
    }
}

impl FromStr for FailureBudget {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<TextOrNumber> for FailureBudget {
    type Error = InvalidValue;
    fn try_from(v: TextOrNumber) -> Result<Self, Self::Error> {
        Self::parse(&v.into_text())
    }
}

impl From<FailureBudget> for String {
    fn from(b: FailureBudget) -> String {
        b.to_string()
    }
}
