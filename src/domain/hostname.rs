use serde::{Deserialize, Serialize};

use super::schema::{string, string_schema};
use super::{dns_label_problem, string_newtype, InvalidValue};

/// A fully qualified DNS name a tenant is served on (`acme.example.com`). Stored in
/// lowercase; at least two labels; no wildcards, because certificates are packed per
/// exact name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Hostname(String);

impl Hostname {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let kind = "hostname";
        let lower = s.trim_end_matches('.').to_ascii_lowercase();
        if lower.len() > 253 {
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

    /// Any letter case and trailing dots are accepted (the name is stored in lowercase,
    /// without them); the length limit counts the dots too.
    fn json_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let label = "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
        string(
            &format!(r"^({label}\.)+(?![0-9]+\.*$){label}\.*$"),
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
        ] {
            let err = Hostname::parse(bad).unwrap_err().to_string();
            assert!(err.contains(expected), "{bad}: {err}");
        }
    }
}
