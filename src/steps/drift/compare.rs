//! The comparisons of a drift check: desired against live, as findings. Pure: the
//! reads are in the checker, the desired values come from the steps' own builders.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::record::{DriftFinding, DriftKind};
use crate::steps::config::{self, Kind, Stored, Write};

/// What a secret's value reads as in a finding.
pub const REDACTED: &str = "<redacted>";

fn finding(kind: DriftKind, name: &str, desired: Option<String>, live: Option<String>) -> DriftFinding {
    DriftFinding {
        kind,
        name: name.to_owned(),
        desired,
        live,
    }
}

/// Each parameter the orchestrator sets whose live value differs or is missing.
/// Parameters it does not set (the restore snapshot) are not compared.
pub fn stack_parameters(
    desired: &BTreeMap<String, String>,
    live: &BTreeMap<String, String>,
) -> Vec<DriftFinding> {
    desired
        .iter()
        .filter(|(name, value)| live.get(*name) != Some(value))
        .map(|(name, value)| {
            finding(
                DriftKind::StackParameter,
                name,
                Some(value.clone()),
                live.get(name).cloned(),
            )
        })
        .collect()
}

/// The template's content, by digest: line endings and trailing blank space do not
/// count, since CloudFormation may hand back the body it stored with either changed.
pub fn template_digest(body: &str) -> String {
    let normalized: String = body
        .replace("\r\n", "\n")
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n");
    let digest = Sha256::digest(normalized.trim_end().as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// A finding when the stack's template is not the desired one.
pub fn stack_template(stack: &str, desired: &str, live: &str) -> Option<DriftFinding> {
    let (desired, live) = (template_digest(desired), template_digest(live));
    (desired != live).then(|| finding(DriftKind::StackTemplate, stack, Some(desired), Some(live)))
}

/// The configuration's differences, exactly the writes WriteConfig would make. A
/// secret's value (desired or live, whatever its stored type) is never shown.
pub fn ssm_parameters(
    wanted: &BTreeMap<String, (String, Kind)>,
    existing: &BTreeMap<String, Stored>,
) -> Vec<DriftFinding> {
    let shown = |name: &str, value: &str, kind: Kind| {
        if kind == Kind::Secret || config::SECRETS.contains(&name) {
            REDACTED.to_owned()
        } else {
            value.to_owned()
        }
    };
    let live = |name: &str| existing.get(name).map(|s| shown(name, &s.value, s.kind));
    config::plan(wanted, existing)
        .iter()
        .map(|write| match write {
            Write::Create { name, value, kind } | Write::Overwrite { name, value, kind } => finding(
                DriftKind::SsmParameter,
                name,
                Some(shown(name, value, *kind)),
                live(name),
            ),
            Write::CreateSecret { name } => {
                finding(DriftKind::SsmParameter, name, Some(REDACTED.to_owned()), None)
            }
        })
        .collect()
}

/// Each leaf of the Helm values that differs, by JSON path (`config.bucketName`).
pub fn helm_values(desired: &serde_json::Value, live: &serde_json::Value) -> Vec<DriftFinding> {
    let (mut want, mut have) = (BTreeMap::new(), BTreeMap::new());
    leaves("", desired, &mut want);
    leaves("", live, &mut have);
    let mut paths: Vec<&String> = want.keys().chain(have.keys()).collect();
    paths.sort();
    paths.dedup();
    paths
        .into_iter()
        .filter(|p| want.get(*p) != have.get(*p))
        .map(|p| {
            finding(
                DriftKind::HelmValues,
                p,
                want.get(p).cloned(),
                have.get(p).cloned(),
            )
        })
        .collect()
}

fn leaves(path: &str, value: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        serde_json::Value::Object(map) if !map.is_empty() => {
            for (key, v) in map {
                leaves(&join(key), v, out);
            }
        }
        serde_json::Value::Array(items) if !items.is_empty() => {
            for (i, v) in items.iter().enumerate() {
                leaves(&join(&i.to_string()), v, out);
            }
        }
        serde_json::Value::Null if path.is_empty() => {}
        other => {
            out.insert(path.to_owned(), other.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    #[test]
    fn only_parameters_the_orchestrator_sets_are_compared() {
        let desired = map(&[("Tier", "small"), ("TenantId", "acme")]);
        let live = map(&[
            ("Tier", "large"),
            ("TenantId", "acme"),
            ("RestoreSnapshotIdentifier", "snap-1"),
        ]);
        assert_eq!(
            stack_parameters(&desired, &live),
            vec![DriftFinding {
                kind: DriftKind::StackParameter,
                name: "Tier".into(),
                desired: Some("small".into()),
                live: Some("large".into()),
            }]
        );
        assert!(stack_parameters(&desired, &map(&[("Tier", "small"), ("TenantId", "acme")])).is_empty());
        let missing = stack_parameters(&desired, &map(&[("Tier", "small")]));
        assert_eq!(
            (missing[0].name.as_str(), missing[0].live.as_ref()),
            ("TenantId", None)
        );
    }

    #[test]
    fn templates_compare_by_content_and_show_digests() {
        let body = "Resources:\n  Bucket:\n    Type: AWS::S3::Bucket\n";
        assert!(stack_template("s", body, &body.replace('\n', "\r\n")).is_none());
        assert!(stack_template("s", body, &format!("{body}\n\n")).is_none());
        let changed = stack_template("s", body, "Resources: {}\n").unwrap();
        assert_eq!(changed.kind, DriftKind::StackTemplate);
        assert!(changed.desired.as_deref().unwrap().starts_with("sha256:"));
        assert_ne!(changed.desired, changed.live);
        assert!(!changed.live.as_deref().unwrap().contains("Resources"));
    }

    fn stored(value: &str, kind: Kind) -> Stored {
        Stored {
            value: value.into(),
            kind,
        }
    }

    #[test]
    fn configuration_differences_are_what_write_config_would_write_and_secrets_never_show() {
        let wanted = BTreeMap::from([
            ("config/tier".to_owned(), ("small".to_owned(), Kind::String)),
            ("config/bucket".to_owned(), ("b-1".to_owned(), Kind::String)),
        ]);
        let mut existing = BTreeMap::from([
            ("config/tier".to_owned(), stored("small", Kind::String)),
            ("config/bucket".to_owned(), stored("b-1", Kind::String)),
            (
                "secrets/session-key".to_owned(),
                stored("AQICAHh-ciphertext", Kind::Secret),
            ),
        ]);
        assert!(ssm_parameters(&wanted, &existing).is_empty());

        existing.insert("config/tier".into(), stored("large", Kind::String));
        existing.insert("secrets/session-key".into(), stored("plain-secret", Kind::String));
        let found = ssm_parameters(&wanted, &existing);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(
            (
                found[0].name.as_str(),
                found[0].desired.as_deref(),
                found[0].live.as_deref()
            ),
            ("config/tier", Some("small"), Some("large"))
        );
        assert_eq!(
            (
                found[1].name.as_str(),
                found[1].desired.as_deref(),
                found[1].live.as_deref()
            ),
            ("secrets/session-key", Some(REDACTED), Some(REDACTED))
        );
        let text = format!("{found:?}");
        assert!(!text.contains("plain-secret"), "{text}");

        existing.remove("secrets/session-key");
        existing.remove("config/bucket");
        let found = ssm_parameters(&wanted, &existing);
        let names: Vec<(&str, Option<&str>)> = found
            .iter()
            .map(|f| (f.name.as_str(), f.live.as_deref()))
            .collect();
        assert!(names.contains(&("config/bucket", None)), "{names:?}");
        assert!(names.contains(&("secrets/session-key", None)), "{names:?}");
    }

    #[test]
    fn helm_values_differ_by_leaf_path() {
        let desired = json!({"tenant": {"tier": "small", "id": "acme"}, "hostnames": ["a.example.com"], "config": {"databasePort": 5432}});
        assert!(helm_values(&desired, &desired.clone()).is_empty());
        let live = json!({"tenant": {"tier": "large", "id": "acme"}, "hostnames": ["a.example.com", "b.example.com"], "extra": true, "config": {"databasePort": 5432}});
        let found = helm_values(&desired, &live);
        let rows: Vec<(&str, Option<&str>, Option<&str>)> = found
            .iter()
            .map(|f| (f.name.as_str(), f.desired.as_deref(), f.live.as_deref()))
            .collect();
        assert_eq!(
            rows,
            vec![
                ("extra", None, Some("true")),
                ("hostnames.1", None, Some("\"b.example.com\"")),
                ("tenant.tier", Some("\"small\""), Some("\"large\"")),
            ]
        );
        // A release deployed without values reads as `null`: every desired value differs.
        assert_eq!(helm_values(&desired, &serde_json::Value::Null).len(), 4);
    }
}
