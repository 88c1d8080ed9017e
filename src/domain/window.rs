//! Maintenance windows: the weekly times, in a tenant's own time zone, when a rollout may
//! start upgrading it.
//!
//! A window opens on a weekday at a local wall-clock time and stays open for an elapsed
//! duration, so it may run past midnight, and past Sunday into Monday. Across daylight
//! saving changes the opening follows the wall clock: a start inside the spring-forward
//! gap (02:30 on the night clocks jump from 02:00 to 03:00) opens when the clock jumps
//! (03:30 wall time, the gap's length later, as `java.time` does), and a start that
//! occurs twice on the fall-back night opens at the first of the two.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{
    DateTime, Datelike, Days, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta, TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::duration::{format_duration, parse_duration};
use super::InvalidValue;

const SHORTEST: Duration = Duration::from_secs(60);
const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);
const EXAMPLE: &str = "e.g. \"Sun 02:00 4h\"";

/// One weekly window: opens on `day` at `start` (local time) for `duration` of elapsed
/// time, between one minute and one week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "WindowFields", into = "WindowFields")]
pub struct Window {
    day: Weekday,
    start: NaiveTime,
    duration: Duration,
}

/// The JSON form of a window: `{ "day": "Sun", "start": "02:00", "duration": "4h" }`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowFields {
    day: String,
    start: String,
    duration: String,
}

impl Window {
    pub fn new(day: Weekday, start: NaiveTime, duration: Duration) -> Result<Self, InvalidValue> {
        if !(SHORTEST..=WEEK).contains(&duration) {
            return Err(InvalidValue::new(
                "maintenance window duration",
                &format_duration(duration),
                "must be between 1m and 7d (168h); a tenant that may be upgraded at any time needs no \
                 maintenance windows",
            ));
        }
        Ok(Self { day, start, duration })
    }

    pub fn day(&self) -> Weekday {
        self.day
    }

    pub fn start(&self) -> NaiveTime {
        self.start
    }

    pub fn duration(&self) -> Duration {
        self.duration
    }
}

fn parse_day(s: &str) -> Result<Weekday, InvalidValue> {
    let day = match s.to_ascii_lowercase().as_str() {
        "mon" | "monday" => Weekday::Mon,
        "tue" | "tuesday" => Weekday::Tue,
        "wed" | "wednesday" => Weekday::Wed,
        "thu" | "thursday" => Weekday::Thu,
        "fri" | "friday" => Weekday::Fri,
        "sat" | "saturday" => Weekday::Sat,
        "sun" | "sunday" => Weekday::Sun,
        _ => {
            return Err(InvalidValue::new(
                "maintenance window day",
                s,
                "use one of Mon, Tue, Wed, Thu, Fri, Sat, Sun",
            ))
        }
    };
    Ok(day)
}

fn parse_start(s: &str) -> Result<NaiveTime, InvalidValue> {
    let problem = || {
        InvalidValue::new(
            "maintenance window start",
            s,
            "use a 24-hour time like 02:00 or 22:30",
        )
    };
    let (h, m) = s.split_once(':').ok_or_else(problem)?;
    let digits = |p: &str| (1..=2).contains(&p.len()) && p.chars().all(|c| c.is_ascii_digit());
    if !digits(h) || m.len() != 2 || !digits(m) {
        return Err(problem());
    }
    NaiveTime::from_hms_opt(
        h.parse().map_err(|_| problem())?,
        m.parse().map_err(|_| problem())?,
        0,
    )
    .ok_or_else(problem)
}

impl TryFrom<WindowFields> for Window {
    type Error = InvalidValue;
    fn try_from(f: WindowFields) -> Result<Self, Self::Error> {
        let duration = parse_duration("maintenance window duration", &f.duration)?;
        Window::new(parse_day(&f.day)?, parse_start(&f.start)?, duration)
    }
}

impl From<Window> for WindowFields {
    fn from(w: Window) -> Self {
        WindowFields {
            day: w.day.to_string(),
            start: w.start.format("%H:%M").to_string(),
            duration: compact_duration(w.duration),
        }
    }
}

/// A window's length as the API and the CLI echo it: whole days, hours, minutes and
/// seconds, largest first, none zero and none spaced (`4h`, `1h30m`, `1d12h`,
/// `1m30s`), which is a form the published pattern ([`MaintenanceWindows::text_schema`])
/// accepts, so what a client reads back it can send again.
fn compact_duration(d: Duration) -> String {
    let total = d.as_secs();
    let parts = [
        (total / 86_400, "d"),
        (total / 3_600 % 24, "h"),
        (total / 60 % 60, "m"),
        (total % 60, "s"),
    ];
    let text: String = (parts.iter())
        .filter(|(amount, _)| *amount > 0)
        .map(|(amount, unit)| format!("{amount}{unit}"))
        .collect();
    match text.is_empty() {
        true => format_duration(d),
        false => text,
    }
}

/// The text form used on the command line: `Sun 02:00 4h`.
impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fields = WindowFields::from(*self);
        write!(f, "{} {} {}", fields.day, fields.start, fields.duration)
    }
}

impl FromStr for Window {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut words = s.split_whitespace();
        let (Some(day), Some(start)) = (words.next(), words.next()) else {
            return Err(InvalidValue::new(
                "maintenance window",
                s,
                format!("expected \"<day> <start> <duration>\", {EXAMPLE}"),
            ));
        };
        let duration = words.collect::<Vec<_>>().join(" ");
        Window::try_from(WindowFields {
            day: day.into(),
            start: start.into(),
            duration,
        })
    }
}

/// When a tenant may be upgraded: weekly windows in its IANA time zone. A rollout only
/// starts a tenant inside one of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WindowsFields", into = "WindowsFields")]
pub struct MaintenanceWindows {
    time_zone: Tz,
    windows: Vec<Window>,
}

/// The JSON form: `{ "time_zone": "Europe/Berlin", "windows": [ … ] }`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowsFields {
    time_zone: String,
    windows: Vec<Window>,
}

impl MaintenanceWindows {
    pub fn new(time_zone: Tz, windows: Vec<Window>) -> Result<Self, InvalidValue> {
        if windows.is_empty() {
            return Err(InvalidValue::new(
                "maintenance windows",
                time_zone.name(),
                format!("list no window; add at least one ({EXAMPLE}) or drop maintenance windows"),
            ));
        }
        Ok(Self { time_zone, windows })
    }

    pub fn parse_time_zone(s: &str) -> Result<Tz, InvalidValue> {
        s.parse::<Tz>().map_err(|_| {
            InvalidValue::new(
                "time zone",
                s,
                "is not an IANA time zone; use a name like Europe/Berlin, America/New_York or UTC",
            )
        })
    }

    /// The text form (`Europe/Berlin Sun 02:00 4h, Wed 22:00 2h`) as a JSON Schema: an
    /// IANA zone, then windows separated by commas. The pattern spells durations as one
    /// amount (`90m`, `4h`, `7d`), hours and minutes (`1h 30m`), or the compact form
    /// windows are echoed in (`1d12h`, `1m30s`), each within 1m-7d; the parser also
    /// takes other spellings humantime knows (`2 hours`).
    pub fn text_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use super::schema::{any_case, escape, string};
        let zones: Vec<String> = chrono_tz::TZ_VARIANTS
            .iter()
            .map(|tz| escape(tz.name()))
            .collect();
        let days: Vec<String> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
            .iter()
            .map(|d| format!("{}({})?", any_case(d), any_case(day_suffix(d))))
            .collect();
        let start = "([01]?[0-9]|2[0-3]):[0-5][0-9]";
        // The compact echo (see `compact_duration`): days 1-6 with any of the smaller
        // units, or hours, or minutes, each non-zero and in range, then seconds.
        let (h, m, sec) = (
            "([1-9]|1[0-9]|2[0-3])h",
            "([1-9]|[1-5][0-9])m",
            "([1-9]|[1-5][0-9])s",
        );
        let compact = format!("([1-6]d({h})?({m})?({sec})?|{h}({m})?({sec})?|{m}({sec})?)");
        let duration = format!(
            "([1-9][0-9]{{0,3}}m|([1-9]|[1-9][0-9]|1[0-5][0-9]|16[0-8])h|[1-7]d|([1-9]|1[0-9]|2[0-3])h ?[1-5]?[0-9]m|{compact})"
        );
        let window = format!("({}) +{start} +{duration}", days.join("|"));
        string(
            &format!("^({}) +{window}( *, *{window})*$", zones.join("|")),
            (1, None),
            "Weekly maintenance windows in an IANA time zone: `<zone> <day> <HH:MM> <duration>[, <day> <HH:MM> <duration>...]`; each lasts 1m to 7d.",
            "Europe/Berlin Sun 02:00 4h, Wed 22:00 2h",
        )
    }

    pub fn time_zone(&self) -> Tz {
        self.time_zone
    }

    pub fn windows(&self) -> &[Window] {
        &self.windows
    }

    /// Whether a window is open at `t` (its start included, its end excluded).
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.openings_near(t).any(|(start, end)| start <= t && t < end)
    }

    /// When the windows open at `t` close (following windows that overlap or touch),
    /// or `None` if none is open. Windows that never close (a week long) are followed
    /// for a few weeks only.
    pub fn open_until(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut end = self.latest_end_of_openings_at(t)?;
        for _ in 0..8 {
            match self.latest_end_of_openings_at(end) {
                Some(later) => end = later,
                None => break,
            }
        }
        Some(end)
    }

    fn latest_end_of_openings_at(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        (self.openings_near(t))
            .filter(|(start, end)| *start <= t && t < *end)
            .map(|(_, end)| end)
            .max()
    }

    /// `now` if a window is open, otherwise the moment the next one opens.
    pub fn next_start(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        if self.contains(now) {
            return now;
        }
        let next = self
            .openings_near(now)
            .map(|(start, _)| start)
            .filter(|s| *s > now)
            .min();
        // Some window opens within 8 days of any moment and the openings reach 12 days
        // ahead, so there is always a next opening.
        debug_assert!(next.is_some());
        next.unwrap_or(now)
    }

    /// The first moment from `at` on when a window is open and stays open for at least
    /// `length`: `at` itself, or the opening of a later window; `None` when no window
    /// (with those it overlaps or touches) lasts that long.
    pub fn next_start_lasting(&self, at: DateTime<Utc>, length: Duration) -> Option<DateTime<Utc>> {
        let length = TimeDelta::from_std(length).unwrap_or(TimeDelta::MAX);
        let lasts = |t: DateTime<Utc>| self.open_until(t).is_some_and(|end| end - t >= length);
        if lasts(at) {
            return Some(at);
        }
        // Every window opens at least once in the week after `at`, and the openings
        // reach 12 days ahead.
        (self.openings_near(at))
            .map(|(start, _)| start)
            .filter(|start| *start > at && lasts(*start))
            .min()
    }

    /// The longest time the windows stay open at a stretch (windows that overlap or
    /// touch count as one), as they open in the week around `at`.
    pub fn longest_opening(&self, at: DateTime<Utc>) -> Duration {
        (self.openings_near(at))
            .filter_map(|(start, _)| self.open_until(start).map(|end| end - start))
            .max()
            .and_then(|d| d.to_std().ok())
            .unwrap_or(Duration::ZERO)
    }

    /// The openings (start, end) of every window from 8 local days before `t` to 12
    /// after: all that can contain `t` (a window lasts at most a week) and the next one.
    fn openings_near(&self, t: DateTime<Utc>) -> impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> + '_ {
        let tz = self.time_zone;
        let from = t.with_timezone(&tz).date_naive() - Days::new(8);
        self.windows.iter().flat_map(move |w| {
            let first = from + Days::new(days_until(from.weekday(), w.day));
            let length = TimeDelta::seconds(w.duration.as_secs() as i64);
            (0..3).map(move |week| {
                let date: NaiveDate = first + Days::new(7 * week);
                let start = local_to_utc(tz, date.and_time(w.start));
                (start, start + length)
            })
        })
    }
}

/// What follows a day's abbreviation in its full name: `mon` + `day`.
fn day_suffix(abbreviation: &str) -> &'static str {
    match abbreviation {
        "tue" => "sday",
        "wed" => "nesday",
        "thu" => "rsday",
        "sat" => "urday",
        _ => "day",
    }
}

fn days_until(from: Weekday, to: Weekday) -> u64 {
    u64::from((to.num_days_from_monday() + 7 - from.num_days_from_monday()) % 7)
}

/// The instant a wall-clock time happens in `tz`: the first of two on a fall-back
/// night; inside a spring-forward gap, the time read with the offset from before the
/// gap, which lands the gap's length after it on the new clock.
fn local_to_utc(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local).earliest() {
        Some(t) => t.with_timezone(&Utc),
        None => {
            let before = tz.offset_from_utc_datetime(&(local - TimeDelta::days(1))).fix();
            (local - TimeDelta::seconds(i64::from(before.local_minus_utc()))).and_utc()
        }
    }
}

impl TryFrom<WindowsFields> for MaintenanceWindows {
    type Error = InvalidValue;
    fn try_from(f: WindowsFields) -> Result<Self, Self::Error> {
        MaintenanceWindows::new(Self::parse_time_zone(&f.time_zone)?, f.windows)
    }
}

impl From<MaintenanceWindows> for WindowsFields {
    fn from(m: MaintenanceWindows) -> Self {
        WindowsFields {
            time_zone: m.time_zone.name().to_owned(),
            windows: m.windows,
        }
    }
}

/// The text form used on the command line: `Europe/Berlin Sun 02:00 4h, Wed 22:00 2h`.
impl fmt::Display for MaintenanceWindows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let windows: Vec<String> = self.windows.iter().map(Window::to_string).collect();
        write!(f, "{} {}", self.time_zone.name(), windows.join(", "))
    }
}

impl FromStr for MaintenanceWindows {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (zone, rest) = s.split_once(char::is_whitespace).unwrap_or((s, ""));
        let windows = rest
            .split(',')
            .filter(|w| !w.trim().is_empty())
            .map(str::parse)
            .collect::<Result<Vec<Window>, _>>()?;
        MaintenanceWindows::new(Self::parse_time_zone(zone)?, windows)
    }
}

#[cfg(test)]
pub(crate) mod tests;
