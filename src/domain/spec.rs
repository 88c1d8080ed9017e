use std::fmt;

use serde::{Deserialize, Serialize};

use super::{
    Environment, Group, Hostname, InvalidValue, MaintenanceWindows, PlatformVersion, Region, ReleaseVersion,
    TenantId,
};

/// The size class of a tenant's stack. The CloudFormation template and the chart map
/// each tier to database and workload sizes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Small,
    Medium,
    Large,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Small, Tier::Medium, Tier::Large];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Small => "small",
            Tier::Medium => "medium",
            Tier::Large => "large",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Tier {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tier::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| InvalidValue::new("tier", s, "expected one of small, medium, large"))
    }
}

/// What a tenant is: where it runs, how big it is, which names it answers on, when a
/// rollout may upgrade it and, when pinned, the release it must stay on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantSpec {
    pub id: TenantId,
    pub region: Region,
    pub environment: Environment,
    #[serde(default = "Group::default_group")]
    pub group: Group,
    pub tier: Tier,
    pub hostnames: Vec<Hostname>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_release: Option<ReleaseVersion>,
    /// When a rollout may start upgrading this tenant; `None`: at any time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<MaintenanceWindows>,
    /// The published platform version (template and chart) the tenant's steps deploy;
    /// `None`: the template and chart built into this `tenantctl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformVersion>,
    /// When set, the tenant stays on this platform version (`platform` is kept equal to
    /// it) and rollouts of a platform version skip it, as a release pin does for releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_platform: Option<PlatformVersion>,
}

/// The most hostnames one tenant may answer on. Each hostname is a claim item in the
/// tenant's transactions: a spec change that replaces all of them claims the new ones
/// and gives the old ones up in one `TransactWriteItems` (at most 100 items) beside the
/// tenant's own writes, so twice this plus those must stay under 100.
pub const MAX_HOSTNAMES: usize = 40;

impl TenantSpec {
    /// Checks the rules that span fields: one to [`MAX_HOSTNAMES`] hostnames, no
    /// duplicates.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        if self.hostnames.is_empty() {
            return Err(InvalidValue::new(
                "tenant spec",
                self.id.as_str(),
                "needs at least one hostname, e.g. acme.example.com (--hostname, `hostnames` in the API)",
            ));
        }
        if self.hostnames.len() > MAX_HOSTNAMES {
            return Err(InvalidValue::new(
                "tenant spec",
                self.id.as_str(),
                format!(
                    "has {} hostnames, more than the {MAX_HOSTNAMES} a tenant may answer on; \
                     give it at most {MAX_HOSTNAMES} (a wildcard-free name each), or split the names over more tenants",
                    self.hostnames.len()
                ),
            ));
        }
        if let Some(pin) = self.pinned_platform {
            if self.platform != Some(pin) {
                return Err(InvalidValue::new(
                    "tenant spec",
                    self.id.as_str(),
                    format!("is pinned to platform version {pin} but its platform is not {pin}; set both, or unpin it"),
                ));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for h in &self.hostnames {
            if !seen.insert(h) {
                return Err(InvalidValue::new(
                    "tenant spec",
                    self.id.as_str(),
                    format!("hostname {h} is listed twice"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
impl TenantSpec {
    /// A small, valid spec for unit tests: tenant `id` in `region`, environment `prod`,
    /// group `default`, tier small, hostname `<id>.example.com`, nothing pinned.
    pub(crate) fn example(id: &str, region: &str) -> Self {
        TenantSpec {
            id: TenantId::parse(id).unwrap(),
            region: Region::parse(region).unwrap(),
            environment: Environment::parse("prod").unwrap(),
            group: Group::default_group(),
            tier: Tier::Small,
            hostnames: vec![Hostname::parse(&format!("{id}.example.com")).unwrap()],
            pinned_release: None,
            maintenance: None,
            platform: None,
            pinned_platform: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(hostnames: &[&str]) -> TenantSpec {
        TenantSpec {
            id: TenantId::parse("acme").unwrap(),
            region: Region::parse("us-east-1").unwrap(),
            environment: Environment::parse("prod").unwrap(),
            group: Group::default_group(),
            tier: Tier::Small,
            hostnames: hostnames.iter().map(|h| Hostname::parse(h).unwrap()).collect(),
            pinned_release: None,
            maintenance: None,
            platform: None,
            pinned_platform: None,
        }
    }

    #[test]
    fn a_spec_needs_unique_hostnames() {
        assert!(spec(&["acme.example.com"]).validate().is_ok());
        let err = spec(&[]).validate().unwrap_err().to_string();
        assert!(err.contains("at least one hostname"), "{err}");
        let err = spec(&["a.example.com", "a.example.com"])
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("listed twice"), "{err}");
    }

    #[test]
    fn a_spec_has_at_most_max_hostnames() {
        let names: Vec<String> = (0..=MAX_HOSTNAMES).map(|i| format!("h{i}.example.com")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        assert!(spec(&names[..MAX_HOSTNAMES]).validate().is_ok());
        let err = spec(&names).validate().unwrap_err().to_string();
        assert!(err.contains("has 41 hostnames, more than the 40"), "{err}");
        assert!(err.contains("at most 40"), "{err}");
    }

    #[test]
    fn unknown_tier_names_the_choices() {
        let err = "huge".parse::<Tier>().unwrap_err().to_string();
        assert!(err.contains("small, medium, large"), "{err}");
    }

    #[test]
    fn spec_round_trips_through_json_and_revalidates() {
        let s = spec(&["acme.example.com"]);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<TenantSpec>(&json).unwrap(), s);
        let bad = json.replace("acme.example.com", "not a host");
        assert!(serde_json::from_str::<TenantSpec>(&bad).is_err());
    }

    #[test]
    fn maintenance_windows_are_optional_and_validated() {
        let mut s = spec(&["acme.example.com"]);
        let json = serde_json::to_string(&s).unwrap();
        assert!(
            !json.contains("maintenance"),
            "left out when there are none: {json}"
        );
        s.maintenance = Some("Europe/Berlin Sun 02:00 4h".parse().unwrap());
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains(r#""maintenance":{"time_zone":"Europe/Berlin","windows":[{"day":"Sun""#));
        assert_eq!(serde_json::from_str::<TenantSpec>(&json).unwrap(), s);
        let bad = json.replace("Europe/Berlin", "Mars/Olympus");
        let err = serde_json::from_str::<TenantSpec>(&bad).unwrap_err().to_string();
        assert!(err.contains("not an IANA time zone"), "{err}");
    }
}
