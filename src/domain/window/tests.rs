use chrono::{DateTime, NaiveDate, Utc};
use proptest::prelude::*;

use super::*;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn windows(text: &str) -> MaintenanceWindows {
    text.parse().unwrap()
}

#[test]
fn json_form_round_trips_and_revalidates() {
    let json = r#"{"time_zone":"Europe/Berlin","windows":[{"day":"Sun","start":"02:00","duration":"4h"}]}"#;
    let parsed: MaintenanceWindows = serde_json::from_str(json).unwrap();
    assert_eq!(parsed, windows("Europe/Berlin Sun 02:00 4h"));
    assert_eq!(serde_json::to_string(&parsed).unwrap(), json);
    let err = serde_json::from_str::<MaintenanceWindows>(&json.replace("Sun", "Sonntag")).unwrap_err();
    assert!(err.to_string().contains("use one of Mon, Tue"), "{err}");
}

#[test]
fn text_form_round_trips() {
    let text = "America/New_York Sat 22:00 4h, Wed 09:30 1h30m";
    let parsed = windows(text);
    assert_eq!(parsed.to_string(), text);
    assert_eq!(parsed.windows().len(), 2);
    assert_eq!(windows("UTC monday 2:00 1h").to_string(), "UTC Mon 02:00 1h");
}

#[test]
fn invalid_windows_say_what_a_valid_one_looks_like() {
    let cases = [
        (
            "Europe/Berln Sun 02:00 4h",
            "IANA time zone; use a name like Europe/Berlin",
        ),
        ("UTC Sun 24:00 4h", "24-hour time like 02:00"),
        ("UTC Sun 2pm 4h", "24-hour time like 02:00"),
        ("UTC Sun 02:00 0s", "between 1m and 7d"),
        ("UTC Sun 02:00 8d", "between 1m and 7d"),
        ("UTC Sun 02:00 four hours", "like 30m, 4h"),
        ("UTC Sun 02:00", "like 30m, 4h"),
        ("UTC Sun", "\"<day> <start> <duration>\""),
        ("UTC", "add at least one"),
    ];
    for (text, expected) in cases {
        let err = text.parse::<MaintenanceWindows>().unwrap_err().to_string();
        assert!(err.contains(expected), "{text}: {err}");
    }
}

#[test]
fn a_window_crossing_midnight_stays_open_into_the_next_day() {
    // Berlin is UTC+1 in January; Saturday 2026-01-10 22:00 local is 21:00 UTC.
    let w = windows("Europe/Berlin Sat 22:00 4h");
    assert!(!w.contains(utc("2026-01-10T20:59:59Z")));
    assert!(w.contains(utc("2026-01-10T21:00:00Z")));
    assert!(w.contains(utc("2026-01-11T00:59:59Z")), "Sunday 01:59 local");
    assert!(!w.contains(utc("2026-01-11T01:00:00Z")), "the end is excluded");
    assert_eq!(
        w.next_start(utc("2026-01-10T11:00:00Z")),
        utc("2026-01-10T21:00:00Z")
    );
    assert_eq!(
        w.next_start(utc("2026-01-11T01:00:00Z")),
        utc("2026-01-17T21:00:00Z")
    );
}

#[test]
fn a_window_crossing_the_end_of_the_week_stays_open_on_monday() {
    let w = windows("Asia/Tokyo Sun 23:00 3h");
    // Monday 2026-01-12 01:30 in Tokyo (UTC+9) is Sunday 16:30 UTC.
    assert!(w.contains(utc("2026-01-11T16:30:00Z")));
    assert!(!w.contains(utc("2026-01-11T17:00:00Z")), "Monday 02:00 local");
    assert_eq!(
        w.next_start(utc("2026-01-11T16:30:00Z")),
        utc("2026-01-11T16:30:00Z")
    );
}

#[test]
fn next_start_is_now_inside_a_window_and_the_nearest_opening_otherwise() {
    let w = windows("UTC Wed 09:00 1h, Mon 20:00 2h");
    let monday_noon = utc("2026-01-12T12:00:00Z");
    assert_eq!(w.next_start(monday_noon), utc("2026-01-12T20:00:00Z"));
    assert_eq!(
        w.next_start(utc("2026-01-12T21:00:00Z")),
        utc("2026-01-12T21:00:00Z")
    );
    assert_eq!(
        w.next_start(utc("2026-01-12T22:00:00Z")),
        utc("2026-01-14T09:00:00Z")
    );
}

#[test]
fn a_start_in_the_spring_forward_gap_opens_when_the_clock_jumps() {
    // Berlin moves from 02:00 CET to 03:00 CEST on Sunday 2026-03-29: 02:30 never happens.
    let w = windows("Europe/Berlin Sun 02:30 1h");
    let opens = w.next_start(utc("2026-03-28T12:00:00Z"));
    assert_eq!(opens, utc("2026-03-29T01:30:00Z"), "03:30 CEST");
    assert!(w.contains(utc("2026-03-29T02:29:00Z")));
    assert!(
        !w.contains(utc("2026-03-29T02:30:00Z")),
        "one hour of elapsed time"
    );
    // The week after, 02:30 exists again (CEST, UTC+2).
    assert_eq!(
        w.next_start(utc("2026-03-30T00:00:00Z")),
        utc("2026-04-05T00:30:00Z")
    );
}

#[test]
fn a_window_spanning_the_spring_forward_lasts_its_elapsed_duration() {
    // Opens 01:00 CET (00:00 UTC); three hours later the wall clock reads 04:00 CEST.
    let w = windows("Europe/Berlin Sun 01:00 3h");
    assert_eq!(
        w.next_start(utc("2026-03-28T12:00:00Z")),
        utc("2026-03-29T00:00:00Z")
    );
    assert!(w.contains(utc("2026-03-29T02:59:00Z")));
    assert!(!w.contains(utc("2026-03-29T03:00:00Z")));
}

#[test]
fn a_start_that_happens_twice_on_the_fall_back_night_opens_at_the_first() {
    // Berlin moves from 03:00 CEST back to 02:00 CET on Sunday 2026-10-25: 02:30 happens twice.
    let w = windows("Europe/Berlin Sun 02:30 30m");
    assert_eq!(
        w.next_start(utc("2026-10-24T12:00:00Z")),
        utc("2026-10-25T00:30:00Z")
    );
    assert!(
        !w.contains(utc("2026-10-25T01:30:00Z")),
        "the second 02:30 is not a new opening"
    );
}

#[test]
fn the_same_local_window_moves_in_utc_with_daylight_saving() {
    let w = windows("America/New_York Mon 09:00 1h");
    assert_eq!(
        w.next_start(utc("2026-07-05T00:00:00Z")),
        utc("2026-07-06T13:00:00Z"),
        "EDT"
    );
    assert_eq!(
        w.next_start(utc("2026-12-06T00:00:00Z")),
        utc("2026-12-07T14:00:00Z"),
        "EST"
    );
}

#[test]
fn open_until_follows_windows_that_touch() {
    let w = windows("UTC Sun 22:00 4h, Mon 02:00 1h, Mon 09:00 1h");
    assert_eq!(
        w.open_until(utc("2026-01-11T23:00:00Z")),
        Some(utc("2026-01-12T03:00:00Z"))
    );
    assert_eq!(w.open_until(utc("2026-01-12T03:00:00Z")), None);
    assert_eq!(
        w.open_until(utc("2026-01-12T09:59:00Z")),
        Some(utc("2026-01-12T10:00:00Z"))
    );
}

#[test]
fn a_week_long_window_is_always_open() {
    let w = windows("Australia/Lord_Howe Thu 00:00 7d");
    for day in 1..=28 {
        let t = NaiveDate::from_ymd_opt(2026, 4, day)
            .unwrap()
            .and_hms_opt(7, 0, 0)
            .unwrap()
            .and_utc();
        assert!(w.contains(t), "{t}");
    }
}

fn zone() -> impl Strategy<Value = Tz> {
    prop::sample::select(vec![
        Tz::UTC,
        Tz::Europe__Berlin,
        Tz::America__New_York,
        Tz::Australia__Lord_Howe,
        Tz::Asia__Kolkata,
        Tz::Pacific__Apia,
    ])
}

pub(crate) fn arb_window() -> impl Strategy<Value = Window> {
    (0u8..7, 0u32..24, 0u32..4, 1u64..=(7 * 24 * 60)).prop_map(|(day, h, quarter, minutes)| {
        let day = Weekday::try_from(day).unwrap();
        let start = NaiveTime::from_hms_opt(h, quarter * 15, 0).unwrap();
        Window::new(day, start, Duration::from_secs(minutes * 60)).unwrap()
    })
}

pub(crate) fn arb_windows() -> impl Strategy<Value = MaintenanceWindows> {
    (zone(), prop::collection::vec(arb_window(), 1..4))
        .prop_map(|(tz, windows)| MaintenanceWindows::new(tz, windows).unwrap())
}

proptest! {
    #[test]
    fn next_start_is_the_first_open_moment(w in arb_windows(), secs in 1_700_000_000i64..1_900_000_000) {
        let now = DateTime::from_timestamp(secs, 0).unwrap();
        let next = w.next_start(now);
        prop_assert!(next >= now);
        prop_assert!(w.contains(next), "{w} is closed at {next}");
        prop_assert!(next - now <= TimeDelta::days(8));
        if w.contains(now) {
            prop_assert_eq!(next, now);
        }
        for k in 1..8 {
            let between = now + (next - now) * k / 8;
            prop_assert!(between == now || !w.contains(between), "{w} is open at {between}, before {next}");
        }
    }

    #[test]
    fn open_until_is_the_first_closed_moment(w in arb_windows(), secs in 1_700_000_000i64..1_900_000_000) {
        let now = DateTime::from_timestamp(secs, 0).unwrap();
        let Some(closes) = w.open_until(now) else {
            prop_assert!(!w.contains(now));
            return Ok(());
        };
        prop_assert!(closes > now);
        for k in 0..8 {
            let between = now + (closes - now) * k / 8;
            prop_assert!(w.contains(between), "{w} is closed at {between}, before {closes}");
        }
        // Windows that cover the whole week are followed for weeks, then cut off.
        let followed_for_weeks = closes - now >= TimeDelta::days(7);
        prop_assert!(followed_for_weeks || !w.contains(closes), "{w} is still open at {closes}");
    }
}

#[test]
fn the_next_start_lasting_skips_windows_too_short_for_the_length() {
    let w = windows("UTC Mon 07:00 1h10m, Tue 02:00 4h");
    let monday_8 = utc("2030-01-07T08:00:00Z");
    let ten_minutes = Duration::from_secs(600);
    assert_eq!(w.next_start_lasting(monday_8, ten_minutes), Some(monday_8));
    assert_eq!(
        w.next_start_lasting(monday_8, Duration::from_secs(1800)),
        Some(utc("2030-01-08T02:00:00Z")),
        "Monday's window closes at 08:10; Tuesday's holds 30m"
    );
    assert_eq!(
        w.next_start_lasting(monday_8, Duration::from_secs(5 * 3600)),
        None
    );
    assert_eq!(w.longest_opening(monday_8), Duration::from_secs(4 * 3600));
    // Windows that touch are one stretch.
    let touching = windows("UTC Sun 22:00 2h, Mon 00:00 2h");
    assert_eq!(touching.longest_opening(monday_8), Duration::from_secs(4 * 3600));
    assert_eq!(
        touching.next_start_lasting(monday_8, Duration::from_secs(3 * 3600)),
        Some(utc("2030-01-13T22:00:00Z"))
    );
}

proptest! {
    #[test]
    fn the_next_start_lasting_stays_open_that_long_and_none_opens_sooner(
        w in arb_windows(),
        secs in 1_700_000_000i64..1_900_000_000,
        minutes in 1u64..600,
    ) {
        let now = DateTime::from_timestamp(secs, 0).unwrap();
        let length = Duration::from_secs(minutes * 60);
        let Some(start) = w.next_start_lasting(now, length) else {
            prop_assert!(w.longest_opening(now) < length, "{w} has a {length:?} opening");
            return Ok(());
        };
        prop_assert!(start >= now && start >= w.next_start(now));
        let closes = w.open_until(start).unwrap();
        prop_assert!(closes - start >= TimeDelta::from_std(length).unwrap());
        for k in 1..8 {
            let between = now + (start - now) * k / 8;
            let lasting = w.open_until(between).is_some_and(|end| end - between >= TimeDelta::from_std(length).unwrap());
            prop_assert!(between == start || !lasting, "{w} stays open {length:?} from {between}, before {start}");
        }
    }
}
