//! Which release and which platform version each tenant should run: a default per
//! (environment, region), an override per (environment, group), and a tenant's own
//! pin, which wins over both. New tenants are provisioned on what it names; rollouts
//! move existing tenants.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Environment, Group, InvalidValue, PlatformVersion, Region, ReleaseVersion, TenantSpec};

/// The releases and platform versions tenants should run. Group overrides are scoped
/// to an environment because a group (`canary`, `ring-1`) in staging is not the same
/// tenants as in prod. Releases and platform versions are named independently: an
/// entry may give either or both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PolicyFields", into = "PolicyFields")]
pub struct VersionPolicy {
    defaults: BTreeMap<(Environment, Region), ReleaseVersion>,
    group_overrides: BTreeMap<(Environment, Group), ReleaseVersion>,
    platform_defaults: BTreeMap<(Environment, Region), PlatformVersion>,
    platform_group_overrides: BTreeMap<(Environment, Group), PlatformVersion>,
}

/// Why a tenant should run the version [`VersionPolicy::resolve`] or
/// [`VersionPolicy::resolve_platform`] chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseSource {
    /// The tenant is pinned to it; rollouts skip the tenant.
    Pinned,
    /// Its group's override in its environment.
    GroupOverride,
    /// The default of its environment and region.
    RegionDefault,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedRelease {
    pub release: ReleaseVersion,
    pub source: ReleaseSource,
}

impl VersionPolicy {
    /// Sets the default release of a region in an environment; returns the old one.
    pub fn set_default(
        &mut self,
        environment: Environment,
        region: Region,
        release: ReleaseVersion,
    ) -> Option<ReleaseVersion> {
        self.defaults.insert((environment, region), release)
    }

    pub fn remove_default(&mut self, environment: &Environment, region: &Region) -> Option<ReleaseVersion> {
        self.defaults.remove(&(environment.clone(), region.clone()))
    }

    /// Sets a group's release in an environment, over the regions' defaults.
    pub fn set_group_override(
        &mut self,
        environment: Environment,
        group: Group,
        release: ReleaseVersion,
    ) -> Option<ReleaseVersion> {
        self.group_overrides.insert((environment, group), release)
    }

    pub fn remove_group_override(
        &mut self,
        environment: &Environment,
        group: &Group,
    ) -> Option<ReleaseVersion> {
        self.group_overrides.remove(&(environment.clone(), group.clone()))
    }

    pub fn default_for(&self, environment: &Environment, region: &Region) -> Option<&ReleaseVersion> {
        self.defaults.get(&(environment.clone(), region.clone()))
    }

    pub fn override_for(&self, environment: &Environment, group: &Group) -> Option<&ReleaseVersion> {
        self.group_overrides.get(&(environment.clone(), group.clone()))
    }

    /// The release `spec` should run and why: its pin, else its group's override,
    /// else its region's default; `None` when the policy says nothing about it.
    pub fn resolve(&self, spec: &TenantSpec) -> Option<ResolvedRelease> {
        let found = |release: Option<&ReleaseVersion>, source| {
            release.map(|r| ResolvedRelease {
                release: r.clone(),
                source,
            })
        };
        found(spec.pinned_release.as_ref(), ReleaseSource::Pinned)
            .or_else(|| {
                found(
                    self.override_for(&spec.environment, &spec.group),
                    ReleaseSource::GroupOverride,
                )
            })
            .or_else(|| {
                found(
                    self.default_for(&spec.environment, &spec.region),
                    ReleaseSource::RegionDefault,
                )
            })
    }

    /// The release `spec` should run, if the policy or its pin names one.
    pub fn release_for(&self, spec: &TenantSpec) -> Option<ReleaseVersion> {
        self.resolve(spec).map(|r| r.release)
    }

    /// Sets the platform version of a region in an environment; returns the old one.
    pub fn set_platform_default(
        &mut self,
        environment: Environment,
        region: Region,
        platform: PlatformVersion,
    ) -> Option<PlatformVersion> {
        self.platform_defaults.insert((environment, region), platform)
    }

    pub fn remove_platform_default(
        &mut self,
        environment: &Environment,
        region: &Region,
    ) -> Option<PlatformVersion> {
        self.platform_defaults
            .remove(&(environment.clone(), region.clone()))
    }

    /// Sets a group's platform version in an environment, over the regions' defaults.
    pub fn set_platform_group_override(
        &mut self,
        environment: Environment,
        group: Group,
        platform: PlatformVersion,
    ) -> Option<PlatformVersion> {
        self.platform_group_overrides
            .insert((environment, group), platform)
    }

    pub fn remove_platform_group_override(
        &mut self,
        environment: &Environment,
        group: &Group,
    ) -> Option<PlatformVersion> {
        self.platform_group_overrides
            .remove(&(environment.clone(), group.clone()))
    }

    /// The platform version `spec` should run and why: its pin, else its group's
    /// override, else its region's default; `None` when the policy says nothing about
    /// it (the template and chart built into `tenantctl`).
    pub fn resolve_platform(&self, spec: &TenantSpec) -> Option<(PlatformVersion, ReleaseSource)> {
        let env = &spec.environment;
        spec.pinned_platform
            .map(|p| (p, ReleaseSource::Pinned))
            .or_else(|| {
                (self
                    .platform_group_overrides
                    .get(&(env.clone(), spec.group.clone())))
                .map(|p| (*p, ReleaseSource::GroupOverride))
            })
            .or_else(|| {
                (self.platform_defaults.get(&(env.clone(), spec.region.clone())))
                    .map(|p| (*p, ReleaseSource::RegionDefault))
            })
    }

    /// Every platform version the policy names, to check they are published.
    pub fn platforms(&self) -> impl Iterator<Item = &PlatformVersion> {
        self.platform_defaults
            .values()
            .chain(self.platform_group_overrides.values())
    }
}

/// The JSON form: two lists of entries, each key given once, each entry naming a
/// release, a platform version or both.
#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct PolicyFields {
    defaults: Vec<RegionDefault>,
    group_overrides: Vec<GroupOverride>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionDefault {
    environment: Environment,
    region: Region,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    release: Option<ReleaseVersion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    platform: Option<PlatformVersion>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupOverride {
    environment: Environment,
    group: Group,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    release: Option<ReleaseVersion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    platform: Option<PlatformVersion>,
}

fn given_twice(what: &str, key: &str) -> InvalidValue {
    InvalidValue::new(
        "version policy",
        key,
        format!("{what} is given twice; keep one entry"),
    )
}

fn names_nothing(what: &str, key: &str) -> InvalidValue {
    InvalidValue::new(
        "version policy",
        key,
        format!(
            "{what} names neither a release nor a platform version; give one or both, or remove the entry"
        ),
    )
}

impl TryFrom<PolicyFields> for VersionPolicy {
    type Error = InvalidValue;
    fn try_from(f: PolicyFields) -> Result<Self, Self::Error> {
        let mut policy = VersionPolicy::default();
        let mut seen = std::collections::BTreeSet::new();
        for d in f.defaults {
            let key = format!("{}/{}", d.environment, d.region);
            if !seen.insert(("default", key.clone())) {
                return Err(given_twice("the region default", &key));
            }
            if d.release.is_none() && d.platform.is_none() {
                return Err(names_nothing("the region default", &key));
            }
            if let Some(release) = d.release {
                policy.set_default(d.environment.clone(), d.region.clone(), release);
            }
            if let Some(platform) = d.platform {
                policy.set_platform_default(d.environment, d.region, platform);
            }
        }
        for o in f.group_overrides {
            let key = format!("{}/{}", o.environment, o.group);
            if !seen.insert(("group", key.clone())) {
                return Err(given_twice("the group override", &key));
            }
            if o.release.is_none() && o.platform.is_none() {
                return Err(names_nothing("the group override", &key));
            }
            if let Some(release) = o.release {
                policy.set_group_override(o.environment.clone(), o.group.clone(), release);
            }
            if let Some(platform) = o.platform {
                policy.set_platform_group_override(o.environment, o.group, platform);
            }
        }
        Ok(policy)
    }
}

impl From<VersionPolicy> for PolicyFields {
    fn from(p: VersionPolicy) -> Self {
        let defaults = merged(p.defaults, p.platform_defaults);
        let group_overrides = merged(p.group_overrides, p.platform_group_overrides);
        PolicyFields {
            defaults: (defaults.into_iter())
                .map(|((environment, region), (release, platform))| RegionDefault {
                    environment,
                    region,
                    release,
                    platform,
                })
                .collect(),
            group_overrides: (group_overrides.into_iter())
                .map(|((environment, group), (release, platform))| GroupOverride {
                    environment,
                    group,
                    release,
                    platform,
                })
                .collect(),
        }
    }
}

/// One entry per key, with the release and the platform version each map gives it.
#[allow(clippy::type_complexity)]
fn merged<K: Ord>(
    releases: BTreeMap<K, ReleaseVersion>,
    platforms: BTreeMap<K, PlatformVersion>,
) -> BTreeMap<K, (Option<ReleaseVersion>, Option<PlatformVersion>)> {
    let mut entries: BTreeMap<K, (Option<ReleaseVersion>, Option<PlatformVersion>)> = BTreeMap::new();
    for (key, release) in releases {
        entries.entry(key).or_default().0 = Some(release);
    }
    for (key, platform) in platforms {
        entries.entry(key).or_default().1 = Some(platform);
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Hostname, TenantId, Tier};

    fn v(s: &str) -> ReleaseVersion {
        ReleaseVersion::parse(s).unwrap()
    }

    fn tenant(env: &str, region: &str, group: &str, pinned: Option<&str>) -> TenantSpec {
        TenantSpec {
            id: TenantId::parse("acme").unwrap(),
            region: Region::parse(region).unwrap(),
            environment: Environment::parse(env).unwrap(),
            group: Group::parse(group).unwrap(),
            tier: Tier::Small,
            hostnames: vec![Hostname::parse("acme.example.com").unwrap()],
            pinned_release: pinned.map(v),
            maintenance: None,
            platform: None,
            pinned_platform: None,
        }
    }

    fn pv(s: &str) -> PlatformVersion {
        PlatformVersion::parse(s).unwrap()
    }

    fn policy() -> VersionPolicy {
        serde_json::from_str(
            r#"{
              "defaults": [
                {"environment": "prod", "region": "us-east-1", "release": "1.4.2"},
                {"environment": "prod", "region": "eu-west-1", "release": "1.4.1"},
                {"environment": "staging", "region": "us-east-1", "release": "1.5.0"}
              ],
              "group_overrides": [{"environment": "prod", "group": "canary", "release": "1.5.0"}]
            }"#,
        )
        .unwrap()
    }

    #[test]
    fn a_pin_wins_then_the_group_then_the_region() {
        let p = policy();
        let resolved = |t: &TenantSpec| p.resolve(t).map(|r| (r.release.to_string(), r.source));
        assert_eq!(
            resolved(&tenant("prod", "us-east-1", "canary", Some("1.3.0"))),
            Some(("1.3.0".into(), ReleaseSource::Pinned))
        );
        assert_eq!(
            resolved(&tenant("prod", "eu-west-1", "canary", None)),
            Some(("1.5.0".into(), ReleaseSource::GroupOverride))
        );
        assert_eq!(
            resolved(&tenant("prod", "eu-west-1", "default", None)),
            Some(("1.4.1".into(), ReleaseSource::RegionDefault))
        );
        assert_eq!(
            p.release_for(&tenant("staging", "us-east-1", "canary", None)),
            Some(v("1.5.0")),
            "prod's canary override does not reach staging; staging's default applies"
        );
        assert_eq!(
            p.release_for(&tenant("prod", "ap-south-1", "default", None)),
            None
        );
        assert_eq!(
            VersionPolicy::default().release_for(&tenant("prod", "ap-south-1", "x", Some("1.0.0"))),
            Some(v("1.0.0"))
        );
    }

    #[test]
    fn setting_and_removing_entries_returns_what_was_there() {
        let mut p = policy();
        let prod = Environment::parse("prod").unwrap();
        let east = Region::parse("us-east-1").unwrap();
        assert_eq!(
            p.set_default(prod.clone(), east.clone(), v("1.4.3")),
            Some(v("1.4.2"))
        );
        assert_eq!(p.default_for(&prod, &east), Some(&v("1.4.3")));
        let canary = Group::parse("canary").unwrap();
        assert_eq!(p.remove_group_override(&prod, &canary), Some(v("1.5.0")));
        assert_eq!(
            p.release_for(&tenant("prod", "us-east-1", "canary", None)),
            Some(v("1.4.3"))
        );
        assert_eq!(p.remove_default(&prod, &east), Some(v("1.4.3")));
    }

    #[test]
    fn the_json_form_round_trips_and_refuses_a_key_given_twice() {
        let p = policy();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<VersionPolicy>(&json).unwrap(), p);
        let twice = r#"{"defaults": [
            {"environment": "prod", "region": "us-east-1", "release": "1.4.2"},
            {"environment": "prod", "region": "us-east-1", "release": "1.4.3"}]}"#;
        let err = serde_json::from_str::<VersionPolicy>(twice)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"prod/us-east-1\": the region default is given twice; keep one entry"),
            "{err}"
        );
        let typo = r#"{"default": []}"#;
        let err = serde_json::from_str::<VersionPolicy>(typo)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `default`"), "{err}");
    }

    #[test]
    fn platform_versions_resolve_like_releases_and_share_entries_in_json() {
        let mut p: VersionPolicy = serde_json::from_str(
            r#"{
              "defaults": [
                {"environment": "prod", "region": "us-east-1", "release": "1.4.2", "platform": "2.0.0"},
                {"environment": "prod", "region": "eu-west-1", "platform": "2.1.0"}
              ],
              "group_overrides": [{"environment": "prod", "group": "canary", "platform": "3.0.0"}]
            }"#,
        )
        .unwrap();
        let platform = |t: &TenantSpec| p.resolve_platform(t);
        assert_eq!(
            platform(&tenant("prod", "us-east-1", "default", None)),
            Some((pv("2.0.0"), ReleaseSource::RegionDefault))
        );
        assert_eq!(
            platform(&tenant("prod", "us-east-1", "canary", None)),
            Some((pv("3.0.0"), ReleaseSource::GroupOverride))
        );
        let mut pinned = tenant("prod", "us-east-1", "canary", None);
        pinned.pinned_platform = Some(pv("1.9.0"));
        assert_eq!(platform(&pinned), Some((pv("1.9.0"), ReleaseSource::Pinned)));
        assert_eq!(platform(&tenant("staging", "us-east-1", "canary", None)), None);
        assert_eq!(
            p.release_for(&tenant("prod", "eu-west-1", "default", None)),
            None,
            "an entry naming only a platform version gives no release"
        );

        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(
            json["defaults"][1],
            serde_json::json!({"environment": "prod", "region": "us-east-1", "release": "1.4.2", "platform": "2.0.0"}),
            "one entry per key carries both versions"
        );
        assert_eq!(serde_json::from_value::<VersionPolicy>(json).unwrap(), p);

        let prod = Environment::parse("prod").unwrap();
        let east = Region::parse("us-east-1").unwrap();
        assert_eq!(p.remove_platform_default(&prod, &east), Some(pv("2.0.0")));
        assert_eq!(
            p.default_for(&prod, &east),
            Some(&v("1.4.2")),
            "the release stays"
        );
        let mut versions: Vec<_> = p.platforms().copied().collect();
        versions.sort();
        assert_eq!(versions, [pv("2.1.0"), pv("3.0.0")]);

        let empty = r#"{"defaults": [{"environment": "prod", "region": "us-east-1"}]}"#;
        let err = serde_json::from_str::<VersionPolicy>(empty)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("names neither a release nor a platform version"),
            "{err}"
        );
    }
}
