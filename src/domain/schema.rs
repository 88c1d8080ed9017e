//! The JSON Schema of each validated value, as the OpenAPI document publishes it. The
//! pattern of a type sits next to its `parse`; the tests below hold the two together,
//! so the published contract cannot drift from what the server accepts.

use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;

/// A string schema: an ECMA-262 `pattern` (anchored), length bounds (the longest only
/// when the parser has one), a description and an example.
pub(crate) fn string(
    pattern: &str,
    lengths: (usize, Option<usize>),
    description: &str,
    example: &str,
) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .min_length(Some(lengths.0))
        .max_length(lengths.1)
        .description(Some(description))
        .examples([serde_json::Value::from(example)])
        .into()
}

/// Matches `word` in any letter case (`[Mm][Oo][Nn]`), for grammars whose keywords are
/// case-insensitive.
pub(crate) fn any_case(word: &str) -> String {
    word.chars()
        .map(|c| match c.is_ascii_alphabetic() {
            true => format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase()),
            false => c.to_string(),
        })
        .collect()
}

/// Escapes the characters of `literal` that a regular expression would read as syntax.
pub(crate) fn escape(literal: &str) -> String {
    literal
        .chars()
        .map(|c| match c {
            '+' | '.' | '*' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '|' | '^' | '$' | '\\' => {
                format!("\\{c}")
            }
            c => c.to_string(),
        })
        .collect()
}

/// Implements `utoipa::ToSchema` for a string newtype from its `schema` function, so
/// the document refers to it by name (`#/components/schemas/TenantId`).
macro_rules! string_schema {
    ($name:ident) => {
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $name::json_schema()
            }
        }
        impl utoipa::ToSchema for $name {}
    };
}
pub(crate) use string_schema;

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};
    use utoipa::PartialSchema;

    use super::{RefOr, Schema};

    use crate::domain::{
        Environment, Group, Hostname, MaintenanceWindows, Region, ReleaseVersion, RolloutId, SnapshotName,
        TenantId,
    };

    /// Checks that the published schema and the parser agree on every sample.
    fn agree(kind: &str, schema: RefOr<Schema>, parse: impl Fn(&str) -> bool, samples: &[&str]) {
        let schema = serde_json::to_value(schema).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{kind}: {e}"));
        for sample in samples {
            let by_schema = validator.is_valid(&Value::from(*sample));
            let by_parse = parse(sample);
            assert_eq!(
                by_schema, by_parse,
                "{kind} {sample:?}: the schema says {by_schema}, parse says {by_parse}"
            );
        }
    }

    #[test]
    fn tenant_ids() {
        let long = "a".repeat(40);
        let too_long = "a".repeat(41);
        agree(
            "tenant id",
            TenantId::schema(),
            |s| TenantId::parse(s).is_ok(),
            &[
                "acme",
                "acme-corp",
                "a1b",
                "a--b",
                &long,
                "ab",
                &too_long,
                "Acme",
                "acme_corp",
                "-acme",
                "acme-",
                "1acme",
                "",
                "acme corp",
                "acmé",
            ],
        );
    }

    #[test]
    fn rollout_ids() {
        let long = format!("r{}", "-1".repeat(31));
        let too_long = format!("r{}", "1".repeat(63));
        agree(
            "rollout id",
            RolloutId::schema(),
            |s| RolloutId::parse(s).is_ok(),
            &[
                "r-2026-11-21-1-4-2",
                "abc",
                &long,
                &too_long,
                "ab",
                "1abc",
                "abc-",
                "ABC",
                "r_1",
            ],
        );
    }

    #[test]
    fn environments_and_groups() {
        let samples = [
            "prod",
            "staging",
            "p",
            "pr",
            "1p",
            "a".repeat(20).as_str(),
            &"a".repeat(21),
            &"a".repeat(40),
            &"a".repeat(41),
            "ring-1",
            "-x",
            "x-",
            "Prod",
            "",
            "q_a",
        ]
        .map(str::to_owned);
        let samples: Vec<&str> = samples.iter().map(String::as_str).collect();
        agree(
            "environment",
            Environment::schema(),
            |s| Environment::parse(s).is_ok(),
            &samples,
        );
        agree("group", Group::schema(), |s| Group::parse(s).is_ok(), &samples);
    }

    #[test]
    fn regions() {
        agree(
            "region",
            Region::schema(),
            |s| Region::parse(s).is_ok(),
            &[
                "us-east-1",
                "eu-central-2",
                "us-gov-west-1",
                "ap-southeast-4",
                "eu-west-255",
                "us-east",
                "US-EAST-1",
                "useast1",
                "us-east-0",
                "",
                "u-east-1",
                "us-east-256",
                "us-east-01",
                "us-east-+1",
                "us-a-b-c-1",
                "us--1",
                "us-east-1-",
                "us-east-1a",
            ],
        );
    }

    #[test]
    fn hostnames() {
        let label = "a".repeat(63);
        let long_label = "a".repeat(64);
        let longest = format!("{}.com", vec!["b".repeat(62); 4].join(".")); // 4*62+3+4 = 255
        agree(
            "hostname",
            Hostname::schema(),
            |s| Hostname::parse(s).is_ok(),
            &[
                "acme.example.com",
                "Acme.Example.COM",
                "acme.example.com.",
                "a.b",
                "x1.io",
                "a.1a",
                "a.a1",
                "a-b.c-d",
                &format!("{label}.com"),
                &format!("{long_label}.com"),
                &longest,
                "localhost",
                "*.example.com",
                "a..example.com",
                "10.0.0.1",
                "a.10",
                "acme_x.example.com",
                "-a.com",
                "a-.com",
                "a.-com",
                ".a.com",
                "",
                "ex ample.com",
                "exämple.com",
                "acme.example.com..",
                "W.w....",
                &format!("{}.", &longest[2..]),
                &format!("{}.", &longest[3..]),
                &longest[1..],
                &longest[2..],
            ],
        );
    }

    #[test]
    fn platform_versions() {
        use crate::domain::PlatformVersion;
        agree(
            "platform version",
            PlatformVersion::schema(),
            |s| PlatformVersion::parse(s).is_ok(),
            &[
                "1.4.0",
                "2026.12.1",
                "0.0.0",
                "999999999.0.1",
                "1000000000.0.1",
                "01.2.3",
                "1.2",
                "1.2.3.4",
                "v1.2.3",
                "1.2.3-rc.1",
                "",
                "1..3",
                "1.2.x",
            ],
        );
    }

    #[test]
    fn releases() {
        agree(
            "release",
            ReleaseVersion::schema(),
            |s| ReleaseVersion::parse(s).is_ok(),
            &[
                "1.4.2",
                "v2.0.0-rc.1",
                "0.0.0",
                "1.2.3-alpha.1.beta-2",
                "1.2.3+build.7",
                "1.2.3-rc.1+b.01",
                "10.20.30",
                "latest",
                "1.2",
                "",
                "1.2.3.4",
                "01.2.3",
                "1.2.3-01",
                "1.2.3-",
                "1.2.3+",
                "v",
                "vv1.2.3",
                "1.2.3-a..b",
            ],
        );
    }

    #[test]
    fn snapshots() {
        agree(
            "snapshot",
            SnapshotName::schema(),
            |s| SnapshotName::parse(s).is_ok(),
            &[
                "tenant-prod-acme-preupgrade-1-4-2-7",
                "a",
                "a:b",
                &"a".repeat(255),
                &"a".repeat(256),
                "",
                "1a",
                "a_b",
                "a.b",
            ],
        );
    }

    #[test]
    fn maintenance_windows_are_echoed_in_a_form_their_schema_takes() {
        let schema = serde_json::to_value(MaintenanceWindows::text_schema()).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        for given in [
            "1m",
            "90s",
            "90m",
            "1h 30m",
            "36h",
            "1d12h",
            "2 days",
            "6d 23h 59m 59s",
            "168h",
            "7d",
        ] {
            let windows: MaintenanceWindows = format!("Europe/Berlin Sun 02:00 {given}").parse().unwrap();
            let echoed = windows.to_string();
            assert!(
                validator.is_valid(&Value::from(echoed.as_str())),
                "{given:?} echoed as {echoed:?}"
            );
            assert_eq!(
                echoed.parse::<MaintenanceWindows>().unwrap(),
                windows,
                "{echoed:?}"
            );
        }
    }

    #[test]
    fn maintenance_windows() {
        agree(
            "maintenance windows",
            MaintenanceWindows::text_schema(),
            |s| s.parse::<MaintenanceWindows>().is_ok(),
            &[
                "Europe/Berlin Sun 02:00 4h",
                "Europe/Berlin Sun 02:00 4h, Wed 22:00 2h",
                "UTC mon 0:00 1m",
                "America/New_York Friday 23:59 7d",
                "Etc/GMT+1 SAT 12:30 168h",
                "UTC Tue 01:00 1h30m",
                "UTC Tue 01:00 1h 30m",
                "UTC Tue 01:00 9999m",
                "UTC Tue 01:00 1d12h",
                "UTC Tue 01:00 1m30s",
                "UTC Tue 01:00 6d23h59m59s",
                "UTC Tue 01:00 2d30m",
                "UTC Tue 01:00 7d1s",
                "UTC Tue 01:00 30s",
                "Mars/Olympus Sun 02:00 4h",
                "Europe/Berlin",
                "Europe/Berlin Sun 24:00 4h",
                "Europe/Berlin Sun 02:60 4h",
                "Europe/Berlin Sun 2:0 4h",
                "Europe/Berlin Sol 02:00 4h",
                "UTC Sun 02:00 0m",
                "UTC Sun 02:00 8d",
                "UTC Sun 02:00 169h",
                "",
            ],
        );
    }

    #[test]
    fn tiers_are_an_enum_of_every_tier() {
        let schema = serde_json::to_value(crate::domain::Tier::schema()).unwrap();
        let names: Vec<Value> = crate::domain::Tier::ALL
            .iter()
            .map(|t| json!(t.as_str()))
            .collect();
        assert_eq!(schema["enum"], Value::Array(names));
    }
}
