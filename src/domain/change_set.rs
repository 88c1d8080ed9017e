//! What a stack update would do to a tenant's resources, as CloudFormation's change
//! set describes it, and the guard that refuses an update that would replace or remove
//! the tenant's data (its database cluster and instances, its bucket) unless allowed by
//! the resource's logical id.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{string_newtype, InvalidValue};

/// A resource's logical id in the tenant's template (e.g. `Database`): letters and
/// digits, at most 255, as CloudFormation allows.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LogicalId(String);

impl LogicalId {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let ok = !s.is_empty() && s.len() <= 255 && s.chars().all(|c| c.is_ascii_alphanumeric());
        match ok {
            true => Ok(Self(s.to_owned())),
            false => Err(InvalidValue::new(
                "logical id",
                s,
                "use a resource's logical id from the tenant's template, e.g. Database \
                 (letters and digits only, at most 255)",
            )),
        }
    }
}
string_newtype!(LogicalId);

/// What the change does to the resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeAction {
    Add,
    Modify,
    Remove,
    /// Import, Dynamic and anything newer CloudFormation may report.
    Other,
}

/// Whether CloudFormation replaces the resource (a new physical resource, the old one
/// deleted): `Conditional` when it depends on a value known only during the update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Replacement {
    Never,
    Conditional,
    Always,
}

/// One resource of a change set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceChange {
    pub action: ChangeAction,
    pub logical_id: String,
    pub resource_type: String,
    pub replacement: Replacement,
    /// The properties (or `Tags`) that change, by name.
    pub properties: Vec<String>,
}

/// Resource types that hold a tenant's data: replacing or removing one loses it. An
/// Aurora instance is not one: its storage is the cluster's, and a tier change adds and
/// removes readers as a matter of course.
pub const PROTECTED_TYPES: [&str; 2] = ["AWS::RDS::DBCluster", "AWS::S3::Bucket"];

/// A change to a protected resource that the allowance does not cover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedChange {
    pub logical_id: String,
    pub resource_type: String,
    /// `replace` (always or conditionally) or `remove`.
    pub change: String,
}

impl fmt::Display for RefusedChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the change would {} {} ({}); if that is intended, allow it with strategy.allow_replacement: [\"{}\"]",
            self.change, self.logical_id, self.resource_type, self.logical_id
        )
    }
}

/// The changes to protected resources that `allowed` does not name: a replacement
/// (always or conditional) or a removal of a database cluster, instance or bucket.
pub fn refused_changes(changes: &[ResourceChange], allowed: &[LogicalId]) -> Vec<RefusedChange> {
    changes
        .iter()
        .filter(|c| PROTECTED_TYPES.contains(&c.resource_type.as_str()))
        .filter(|c| !allowed.iter().any(|a| a.as_str() == c.logical_id))
        .filter_map(|c| {
            let change = match (c.action, c.replacement) {
                (ChangeAction::Remove, _) => "remove",
                (ChangeAction::Modify, Replacement::Always) => "replace",
                (ChangeAction::Modify, Replacement::Conditional) => "possibly replace",
                _ => return None,
            };
            Some(RefusedChange {
                logical_id: c.logical_id.clone(),
                resource_type: c.resource_type.clone(),
                change: change.into(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(id: &str, kind: &str, action: ChangeAction, replacement: Replacement) -> ResourceChange {
        ResourceChange {
            action,
            logical_id: id.into(),
            resource_type: kind.into(),
            replacement,
            properties: vec!["Engine".into()],
        }
    }

    #[test]
    fn logical_ids_are_letters_and_digits() {
        assert_eq!(LogicalId::parse("Database2").unwrap().as_str(), "Database2");
        for bad in ["", "Data-base", "Data base", &"a".repeat(256)] {
            let err = LogicalId::parse(bad).unwrap_err().to_string();
            assert!(err.contains("letters and digits"), "{bad}: {err}");
        }
    }

    #[test]
    fn replacing_or_removing_data_is_refused_unless_allowed_by_name() {
        let changes = vec![
            change(
                "Database",
                "AWS::RDS::DBCluster",
                ChangeAction::Modify,
                Replacement::Always,
            ),
            change(
                "Writer",
                "AWS::RDS::DBInstance",
                ChangeAction::Modify,
                Replacement::Conditional,
            ),
            change(
                "Bucket",
                "AWS::S3::Bucket",
                ChangeAction::Remove,
                Replacement::Never,
            ),
            change(
                "Alarm",
                "AWS::CloudWatch::Alarm",
                ChangeAction::Modify,
                Replacement::Always,
            ),
            change(
                "Logs",
                "AWS::S3::Bucket",
                ChangeAction::Modify,
                Replacement::Never,
            ),
            change("Extra", "AWS::S3::Bucket", ChangeAction::Add, Replacement::Never),
        ];
        let refused = refused_changes(&changes, &[]);
        let what: Vec<(&str, &str)> = refused
            .iter()
            .map(|r| (r.logical_id.as_str(), r.change.as_str()))
            .collect();
        assert_eq!(
            what,
            vec![("Database", "replace"), ("Bucket", "remove")],
            "an instance is not protected: its storage is the cluster's"
        );
        assert!(refused[0]
            .to_string()
            .contains("strategy.allow_replacement: [\"Database\"]"));
        let allowed = [LogicalId::parse("Database").unwrap()];
        let refused = refused_changes(&changes, &allowed);
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].logical_id, "Bucket");
    }
}
