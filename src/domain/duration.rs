//! Durations in specs are written the way people say them (`30m`, `4h`, `1h30m`) and
//! read back the same way, so a spec round-trips through JSON unchanged.

use std::time::Duration;

use super::InvalidValue;

/// Parses a human duration; `kind` names the field in the error.
pub(crate) fn parse_duration(kind: &'static str, s: &str) -> Result<Duration, InvalidValue> {
    humantime::parse_duration(s.trim())
        .map_err(|e| InvalidValue::new(kind, s, format!("{e}; use a duration like 30m, 4h or 1h30m")))
}

/// The inverse of [`parse_duration`]: `4h`, `1h 30m`, `0s`.
pub(crate) fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// `#[serde(with = "crate::domain::duration::as_text")]` for a `Duration` field that
/// reads and writes the human form.
pub(crate) mod as_text {
    use std::time::Duration;

    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse_duration("duration", &text).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip_in_human_form() {
        for (text, secs) in [("4h", 14_400), ("1h30m", 5_400), ("90s", 90), ("0s", 0)] {
            let d = parse_duration("bake_time", text).unwrap();
            assert_eq!(d.as_secs(), secs, "{text}");
            assert_eq!(parse_duration("bake_time", &format_duration(d)).unwrap(), d);
        }
        let err = parse_duration("bake_time", "four hours").unwrap_err().to_string();
        assert!(err.contains("bake_time") && err.contains("like 30m, 4h"), "{err}");
    }
}
