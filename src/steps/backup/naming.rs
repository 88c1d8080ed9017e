//! Snapshot identifiers and which snapshots retention may delete. Pure: the names are
//! derived from the tenant, so a re-run of a backup finds the snapshot it started.

use crate::domain::{ReleaseVersion, TenantSpec};
use crate::steps::names;

/// RDS limit for DB cluster snapshot identifiers.
const MAX_IDENTIFIER_LEN: usize = 255;

/// Why a snapshot is taken; part of its identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Before an upgrade changes anything; subject to retention.
    PreUpgrade,
    /// Before the tenant is removed; never deleted by retention.
    Final,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::PreUpgrade => "preupgrade",
            Purpose::Final => "final",
        }
    }
}

/// The start of every identifier of `purpose` for this tenant: the stack name (which
/// holds the environment, so environments sharing an account never collide) and the
/// purpose, e.g. `tenant-prod-acme-preupgrade-`.
pub fn identifier_prefix(spec: &TenantSpec, purpose: Purpose) -> String {
    let mut prefix = rds_identifier(&format!("{}-{}", names::stack(spec), purpose.as_str()));
    prefix.push('-');
    prefix
}

/// The snapshot of one run of a backup step: the tenant, the purpose, the release
/// (for an upgrade, the one being moved to) and the sequence number of the history
/// event that entered the step, which stays the same across polls and retries of the
/// step and differs for the next upgrade. E.g. `tenant-prod-acme-preupgrade-1-4-2-17`.
pub fn snapshot_identifier(
    spec: &TenantSpec,
    purpose: Purpose,
    release: Option<&ReleaseVersion>,
    event_seq: u64,
) -> String {
    let prefix = identifier_prefix(spec, purpose);
    let suffix = event_seq.to_string();
    let room = MAX_IDENTIFIER_LEN - prefix.len() - suffix.len() - 1;
    let release = release
        .map(|r| {
            let mut part = rds_identifier(&r.to_string());
            part.truncate(room);
            let trimmed = part.trim_end_matches('-').len();
            part.truncate(trimmed);
            part
        })
        .filter(|p| !p.is_empty());
    match release {
        Some(release) => format!("{prefix}{release}-{suffix}"),
        None => format!("{prefix}{suffix}"),
    }
}

/// `raw` made into a valid RDS identifier: lower case, letters, digits and single
/// hyphens, no hyphen at either end.
fn rds_identifier(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed = out.trim_end_matches('-').len();
    out.truncate(trimmed);
    out
}

/// The pre-upgrade snapshots retention deletes: those recorded for this tenant
/// (oldest first) under its own prefix, beyond the newest `keep`. The snapshot just
/// taken is the newest and always stays, even with `keep` 0; anything recorded that
/// this tenant did not name itself (an operator's snapshot, a final backup) is never
/// a candidate.
pub fn beyond_retention(recorded: &[String], prefix: &str, keep: usize) -> Vec<String> {
    let own: Vec<&String> = recorded.iter().filter(|id| id.starts_with(prefix)).collect();
    let excess = own.len().saturating_sub(keep.max(1));
    own.into_iter().take(excess).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Environment, Group, Hostname, Region, TenantId, Tier};
    use proptest::prelude::*;

    fn spec(id: &str, env: &str) -> TenantSpec {
        TenantSpec {
            id: TenantId::parse(id).unwrap(),
            region: Region::parse("eu-west-1").unwrap(),
            environment: Environment::parse(env).unwrap(),
            group: Group::default_group(),
            tier: Tier::Small,
            hostnames: vec![Hostname::parse("acme.example.com").unwrap()],
            pinned_release: None,
            maintenance: None,
            platform: None,
            pinned_platform: None,
        }
    }

    fn is_valid_rds_identifier(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= MAX_IDENTIFIER_LEN
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !s.contains("--")
            && !s.ends_with('-')
    }

    #[test]
    fn identifiers_name_tenant_purpose_release_and_event() {
        let release = ReleaseVersion::parse("1.4.2").unwrap();
        let s = spec("acme", "prod");
        assert_eq!(
            snapshot_identifier(&s, Purpose::PreUpgrade, Some(&release), 17),
            "tenant-prod-acme-preupgrade-1-4-2-17"
        );
        assert_eq!(
            snapshot_identifier(&s, Purpose::Final, None, 30),
            "tenant-prod-acme-final-30"
        );
        let rc = ReleaseVersion::parse("2.0.0-RC.1.build-7").unwrap();
        assert_eq!(
            snapshot_identifier(&s, Purpose::PreUpgrade, Some(&rc), 3),
            "tenant-prod-acme-preupgrade-2-0-0-rc-1-build-7-3"
        );
    }

    #[test]
    fn double_hyphens_in_names_are_collapsed() {
        let s = spec("a--b", "prod");
        let id = snapshot_identifier(&s, Purpose::Final, None, 1);
        assert_eq!(id, "tenant-prod-a-b-final-1");
        assert!(id.starts_with(&identifier_prefix(&s, Purpose::Final)));
    }

    #[test]
    fn retention_keeps_the_newest_own_snapshots_only() {
        let prefix = "tenant-prod-acme-preupgrade-";
        let recorded: Vec<String> = [
            "operator-chosen",
            "tenant-prod-acme-preupgrade-1-0-0-3",
            "tenant-prod-acme-preupgrade-1-1-0-9",
            "tenant-prod-acme-final-12",
            "tenant-prod-acme-preupgrade-1-2-0-15",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            beyond_retention(&recorded, prefix, 1),
            vec![
                "tenant-prod-acme-preupgrade-1-0-0-3",
                "tenant-prod-acme-preupgrade-1-1-0-9"
            ]
        );
        assert_eq!(
            beyond_retention(&recorded, prefix, 2),
            vec!["tenant-prod-acme-preupgrade-1-0-0-3"]
        );
        assert!(beyond_retention(&recorded, prefix, 5).is_empty());
        assert_eq!(
            beyond_retention(&recorded, prefix, 0),
            beyond_retention(&recorded, prefix, 1)
        );
    }

    #[test]
    fn another_tenants_snapshots_are_not_this_tenants() {
        // Tenant `acme` must not claim `acme-corp`'s snapshots by prefix.
        let acme = identifier_prefix(&spec("acme", "prod"), Purpose::PreUpgrade);
        let corp = snapshot_identifier(
            &spec("acme-corp", "prod"),
            Purpose::PreUpgrade,
            Some(&ReleaseVersion::parse("1.0.0").unwrap()),
            4,
        );
        assert!(!corp.starts_with(&acme), "{corp} starts with {acme}");
    }

    proptest! {
        #[test]
        fn identifiers_are_always_valid_for_rds(
            id in "[a-z][a-z0-9-]{1,38}[a-z0-9]",
            env in "[a-z][a-z0-9-]{0,18}[a-z0-9]",
            pre in proptest::option::of("[0-9A-Za-z-]{1,200}(\\.[0-9A-Za-z-]{1,60}){0,3}"),
            seq in any::<u64>(),
            final_backup in any::<bool>(),
        ) {
            let version = match &pre {
                Some(pre) => format!("1.2.3-{pre}"),
                None => "1.2.3".to_owned(),
            };
            // Some generated pre-releases are not semver (leading zeros): skip those.
            prop_assume!(ReleaseVersion::parse(&version).is_ok());
            let release = ReleaseVersion::parse(&version).unwrap();
            let s = spec(&id, &env);
            let purpose = if final_backup { Purpose::Final } else { Purpose::PreUpgrade };
            let name = snapshot_identifier(&s, purpose, Some(&release), seq);
            prop_assert!(is_valid_rds_identifier(&name), "{name}");
            prop_assert!(name.starts_with(&identifier_prefix(&s, purpose)));
            let suffix = format!("-{seq}");
            prop_assert!(name.ends_with(&suffix), "{}", name);
        }
    }
}
