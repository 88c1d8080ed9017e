use serde::{Deserialize, Serialize};

use super::schema::{string, string_schema};
use super::{dns_label_problem, string_newtype, InvalidValue};

/// A fully qualified DNS name a tenant is served on (`acme.example.com`). Stored in
/// lowercase without the root's trailing dot (one is accepted and dropped); at most
/// 253 characters as written (a trailing dot counts), of labels of at most 63; at least two labels; no wildcards, because
/// certificates are packed per exact name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Hostname(String);

impl Hostname {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let kind = "hostname";
        let lower = s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase();
        if lower.ends_with('.') {
            return Err(InvalidValue::new(
                kind,
                s,
                "ends in more than one '.'; write the name with at most one trailing dot, like acme.example.com",
            ));
        }
        if s.len() > 253 {
            return Err(InvalidValue::new(kind, s, "must be at most 253 characters"));
        }
        let labels: Vec<&str> = lower.split('.').collect();
        if labels.len() < 2 {
            return Err(InvalidValue::new(
                kind,
                s,
                "must be a fully qualified name like acme.example.com",
            ));
        }
        for label in &labels {
            if let Some(problem) = dns_label_problem(label, 1, 63) {
                return Err(InvalidValue::new(kind, s, format!("label {label:?} {problem}")));
            }
        }
        if labels[labels.len() - 1].chars().all(|c| c.is_ascii_digit()) {
            return Err(InvalidValue::new(
                kind,
                s,
                "must be a DNS name, not an IP address",
            ));
        }
        Ok(Self(lower))
    }

    /// Any letter case and one trailing dot are accepted (the name is stored in
    /// lowercase, without it); the 253 characters count the dot.
    fn json_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let label = "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
        string(
            &format!(r"^({label}\.)+(?![0-9]+\.?$){label}\.?$"),
            (3, Some(253)),
            "A fully qualified DNS name (at least two labels, no wildcard, not an IP address).",
            "acme.example.com",
        )
    }
}
string_newtype!(Hostname);
string_schema!(Hostname);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_case_and_trailing_dot() {
        assert_eq!(
            Hostname::parse("Acme.Example.COM.").unwrap().as_str(),
            "acme.example.com"
        );
    }

    #[test]
    fn rejects_what_a_certificate_could_not_cover() {
        for (bad, expected) in [
            ("localhost", "fully qualified"),
            ("*.example.com", "'*'"),
            ("a..example.com", "1 to 63"),
            ("10.0.0.1", "not an IP"),
            ("acme_x.example.com", "'_'"),
            ("acme.example.com..", "more than one '.'"),
            ("acme.example.com...", "more than one '.'"),
            (format!("{}.example.com", "a".repeat(64)).as_str(), "1 to 63"),
            (
                format!("{}example.com", "abcdefghi.".repeat(25)).as_str(),
                "at most 253",
            ),
        ] {
            let err = Hostname::parse(bad).unwrap_err().to_string();
            assert!(err.contains(expected), "{bad}: {err}");
        }
    }

    proptest::proptest! {
        #[test]
        fn an_accepted_hostname_is_a_dns_name(s in "[a-zA-Z0-9.-]{1,80}\\.{0,3}") {
            if let Ok(host) = Hostname::parse(&s) {
                let host = host.as_str();
                proptest::prop_assert!(host.len() <= 253);
                proptest::prop_assert!(!host.ends_with('.'));
                proptest::prop_assert!(host.split('.').all(|l| (1..=63).contains(&l.len())));
                proptest::prop_assert!(s.trim_end_matches('.').len() + 1 >= s.len(), "at most one trailing dot: {}", s);
            }
        }
    }
}
