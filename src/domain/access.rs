//! Who may do what to which tenants: a principal's role bindings. A binding grants a
//! [`Scope`] (read < deploy < admin) on a [`Reach`] (environments, regions, groups,
//! tenant ids); a tenant is in reach when it matches every list the reach gives. The
//! same shape serves every way a principal is identified (a static token, a mapped
//! OIDC claim): how the principal was recognised is none of this module's business.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::rollout::Selector;
use super::{Environment, Group, InvalidValue, Region, TenantId};

/// What a principal may do; each scope includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read tenants, history, policy, fleet summary and reports.
    Read,
    /// Also provision, upgrade, retry, roll back tenants and run rollouts.
    Deploy,
    /// Also change the version policy and tenant specs, restore and deprovision.
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Deploy => "deploy",
            Scope::Admin => "admin",
        }
    }
}

/// Which tenants a binding covers. Each list given narrows it (a tenant must match
/// one entry of every list given); a list left out matches any tenant, so the empty
/// reach is the whole fleet. A list given empty is refused: it would read as "none"
/// and mean "all".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ReachFields", into = "ReachFields")]
pub struct Reach {
    pub environments: BTreeSet<Environment>,
    pub regions: BTreeSet<Region>,
    pub groups: BTreeSet<Group>,
    pub tenants: BTreeSet<TenantId>,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReachFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    environments: Option<Vec<Environment>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    regions: Option<Vec<Region>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    groups: Option<Vec<Group>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tenants: Option<Vec<TenantId>>,
}

impl TryFrom<ReachFields> for Reach {
    type Error = InvalidValue;
    fn try_from(f: ReachFields) -> Result<Self, Self::Error> {
        fn list<T: Ord>(name: &str, given: Option<Vec<T>>) -> Result<BTreeSet<T>, InvalidValue> {
            match given {
                Some(items) if items.is_empty() => Err(InvalidValue::new(
                    "binding",
                    name,
                    format!(
                        "the list `{name}` is empty; leave it out to mean every {name}, or name at least one"
                    ),
                )),
                Some(items) => Ok(items.into_iter().collect()),
                None => Ok(BTreeSet::new()),
            }
        }
        Ok(Reach {
            environments: list("environments", f.environments)?,
            regions: list("regions", f.regions)?,
            groups: list("groups", f.groups)?,
            tenants: list("tenants", f.tenants)?,
        })
    }
}

impl From<Reach> for ReachFields {
    fn from(r: Reach) -> Self {
        fn list<T>(set: BTreeSet<T>) -> Option<Vec<T>> {
            (!set.is_empty()).then(|| set.into_iter().collect())
        }
        ReachFields {
            environments: list(r.environments),
            regions: list(r.regions),
            groups: list(r.groups),
            tenants: list(r.tenants),
        }
    }
}

/// Where a tenant sits, as far as bindings care. The environment may be unknown (the
/// listing index does not hold it); a reach that names environments then does not
/// contain the tenant, so an unknown environment never widens access.
#[derive(Debug, Clone, Copy)]
pub struct TenantPlace<'a> {
    pub id: &'a TenantId,
    pub environment: Option<&'a Environment>,
    pub region: &'a Region,
    pub group: &'a str,
}

impl<'a> From<&'a super::TenantSpec> for TenantPlace<'a> {
    fn from(spec: &'a super::TenantSpec) -> Self {
        Self {
            id: &spec.id,
            environment: Some(&spec.environment),
            region: &spec.region,
            group: spec.group.as_str(),
        }
    }
}

impl fmt::Display for TenantPlace<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.environment {
            Some(environment) => write!(
                f,
                "tenant {} (environment {environment}, region {}, group {})",
                self.id, self.region, self.group
            ),
            None => write!(
                f,
                "tenant {} (region {}, group {})",
                self.id, self.region, self.group
            ),
        }
    }
}

impl Reach {
    /// The whole fleet: no list given.
    pub fn is_everything(&self) -> bool {
        self.environments.is_empty()
            && self.regions.is_empty()
            && self.groups.is_empty()
            && self.tenants.is_empty()
    }

    pub fn contains(&self, t: TenantPlace<'_>) -> bool {
        (self.environments.is_empty() || t.environment.is_some_and(|e| self.environments.contains(e)))
            && (self.regions.is_empty() || self.regions.contains(t.region))
            && (self.groups.is_empty() || self.groups.iter().any(|g| g.as_str() == t.group))
            && (self.tenants.is_empty() || self.tenants.contains(t.id))
    }

    /// Whether every tenant a rollout's `selector` can reach, now or later, is in
    /// reach: for each list this reach gives, the selector names a subset of it.
    pub fn covers(&self, selector: &Selector) -> bool {
        fn within<T: Ord>(allowed: &BTreeSet<T>, named: &BTreeSet<T>) -> bool {
            allowed.is_empty() || (!named.is_empty() && named.is_subset(allowed))
        }
        let environment = self.environments.is_empty()
            || selector
                .environment
                .as_ref()
                .is_some_and(|e| self.environments.contains(e));
        environment
            && within(&self.regions, &selector.regions)
            && within(&self.groups, &selector.groups)
            && within(&self.tenants, &selector.tenants)
    }
}

impl fmt::Display for Reach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_everything() {
            return f.write_str("every tenant");
        }
        fn part<T: fmt::Display>(name: &str, set: &BTreeSet<T>) -> Option<String> {
            (!set.is_empty()).then(|| {
                let items: Vec<String> = set.iter().map(ToString::to_string).collect();
                format!("{name} [{}]", items.join(", "))
            })
        }
        let parts: Vec<String> = [
            part("environments", &self.environments),
            part("regions", &self.regions),
            part("groups", &self.groups),
            part("tenants", &self.tenants),
        ]
        .into_iter()
        .flatten()
        .collect();
        f.write_str(&parts.join(", "))
    }
}

/// One grant: `scope` on the tenants in `on`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    pub scope: Scope,
    #[serde(default)]
    pub on: Reach,
}

impl fmt::Display for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}", self.scope.as_str(), self.on)
    }
}

/// The most cells (regions × groups × tenant ids a selector names) [`Access::covers`]
/// checks one by one; a larger selector must be covered by one binding.
pub const MAX_SELECTOR_CELLS: usize = 100_000;

/// Everything a principal is granted: one or more bindings, read together (a tenant
/// is allowed when any binding allows it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    bindings: Vec<Binding>,
}

impl Access {
    /// `scope` on the whole fleet: what a token entry without bindings means.
    pub fn everywhere(scope: Scope) -> Self {
        Self {
            bindings: vec![Binding {
                scope,
                on: Reach::default(),
            }],
        }
    }

    /// The bindings given; `None` when there are none.
    pub fn new(bindings: Vec<Binding>) -> Option<Self> {
        (!bindings.is_empty()).then_some(Self { bindings })
    }

    pub fn bindings(&self) -> &[Binding] {
        &self.bindings
    }

    /// The highest scope granted anywhere.
    pub fn highest(&self) -> Scope {
        self.bindings
            .iter()
            .map(|b| b.scope)
            .max()
            .expect("an Access holds at least one binding")
    }

    /// Whether `scope` is granted on the whole fleet by one binding.
    pub fn is_unrestricted(&self, scope: Scope) -> bool {
        self.bindings
            .iter()
            .any(|b| b.scope >= scope && b.on.is_everything())
    }

    /// Whether `scope` is granted on the tenant at `place`.
    pub fn allows(&self, scope: Scope, place: TenantPlace<'_>) -> bool {
        self.bindings
            .iter()
            .any(|b| b.scope >= scope && b.on.contains(place))
    }

    /// Whether the bindings of `scope` or higher, together, cover every tenant a
    /// rollout's `selector` can reach, now or later.
    ///
    /// The selector is cut into cells: one per element of the cross product of the
    /// environment, regions, groups and tenant ids it names, where a list it leaves
    /// out stays "any" in every cell (tiers, exclusions and the drift filter only
    /// narrow a selector and are ignored: ignoring them can only refuse more). A
    /// binding covers a cell when, for each list the binding gives, the cell names
    /// one of its entries; a cell that says "any" where a binding gives a list is not
    /// covered by it, since a tenant added later may fall outside. The selector is
    /// covered when every cell is covered by some binding. A selector with more than
    /// [`MAX_SELECTOR_CELLS`] cells is refused unless one binding covers it whole.
    pub fn covers(&self, scope: Scope, selector: &Selector) -> bool {
        let held: Vec<&Reach> = self
            .bindings
            .iter()
            .filter(|b| b.scope >= scope)
            .map(|b| &b.on)
            .collect();
        if held.iter().any(|on| on.covers(selector)) {
            return true;
        }
        let environments: Vec<Option<&Environment>> = match &selector.environment {
            Some(e) => vec![Some(e)],
            None => vec![None],
        };
        fn any_or<T>(named: &BTreeSet<T>) -> Vec<Option<&T>> {
            if named.is_empty() {
                vec![None]
            } else {
                named.iter().map(Some).collect()
            }
        }
        let (regions, groups, tenants) = (
            any_or(&selector.regions),
            any_or(&selector.groups),
            any_or(&selector.tenants),
        );
        let cells = regions.len() * groups.len() * tenants.len();
        if cells > MAX_SELECTOR_CELLS {
            return false;
        }
        fn within<T: Ord>(allowed: &BTreeSet<T>, named: Option<&T>) -> bool {
            allowed.is_empty() || named.is_some_and(|n| allowed.contains(n))
        }
        environments.iter().all(|environment| {
            regions.iter().all(|region| {
                groups.iter().all(|group| {
                    tenants.iter().all(|tenant| {
                        held.iter().any(|on| {
                            within(&on.environments, *environment)
                                && within(&on.regions, *region)
                                && within(&on.groups, *group)
                                && within(&on.tenants, *tenant)
                        })
                    })
                })
            })
        })
    }

    /// The bindings of `scope` or higher, in words, for a refusal's message.
    pub fn describe(&self, scope: Scope) -> String {
        let held: Vec<String> = self
            .bindings
            .iter()
            .filter(|b| b.scope >= scope)
            .map(ToString::to_string)
            .collect();
        if held.is_empty() {
            format!("no {} binding", scope.as_str())
        } else {
            held.join("; ")
        }
    }

    /// Whether a binding of `scope` or higher names environments: a tenant's
    /// environment must then be known to decide.
    pub fn names_environments(&self, scope: Scope) -> bool {
        self.bindings
            .iter()
            .any(|b| b.scope >= scope && !b.on.environments.is_empty())
    }

    /// The regions the bindings of `scope` or higher can reach; `None` when one of
    /// them reaches every region. Lets a restricted reader's counts read only those.
    pub fn regions(&self, scope: Scope) -> Option<BTreeSet<Region>> {
        let mut regions = BTreeSet::new();
        for b in self.bindings.iter().filter(|b| b.scope >= scope) {
            if b.on.regions.is_empty() {
                return None;
            }
            regions.extend(b.on.regions.iter().cloned());
        }
        Some(regions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reach(yaml: &str) -> Result<Reach, String> {
        serde_norway::from_str(yaml).map_err(|e| e.to_string())
    }

    fn place<'a>(
        id: &'a TenantId,
        env: &'a Environment,
        region: &'a Region,
        group: &'a str,
    ) -> TenantPlace<'a> {
        TenantPlace {
            id,
            environment: Some(env),
            region,
            group,
        }
    }

    #[test]
    fn a_tenant_is_in_reach_when_it_matches_every_list_given() {
        let on = reach("{regions: [eu-west-1], groups: [blue, green]}").unwrap();
        let (id, prod) = (
            TenantId::parse("acme").unwrap(),
            Environment::parse("prod").unwrap(),
        );
        let (eu, us) = (
            Region::parse("eu-west-1").unwrap(),
            Region::parse("us-east-1").unwrap(),
        );
        assert!(on.contains(place(&id, &prod, &eu, "blue")));
        assert!(!on.contains(place(&id, &prod, &eu, "red")));
        assert!(!on.contains(place(&id, &prod, &us, "blue")));
        assert!(Reach::default().contains(place(&id, &prod, &us, "red")));
        let unknown_environment = TenantPlace {
            environment: None,
            ..place(&id, &prod, &eu, "blue")
        };
        assert!(on.contains(unknown_environment));
        assert!(!reach("{environments: [prod]}")
            .unwrap()
            .contains(unknown_environment));
    }

    #[test]
    fn an_empty_or_misspelt_list_is_refused() {
        let err = reach("{regions: []}").unwrap_err();
        assert!(err.contains("`regions` is empty; leave it out"), "{err}");
        let err = reach("{region: [eu-west-1]}").unwrap_err();
        assert!(err.contains("unknown field `region`"), "{err}");
        let err = reach("{regions: [mars-1]}").unwrap_err();
        assert!(err.contains("region"), "{err}");
    }

    #[test]
    fn a_rollout_is_covered_only_when_its_selector_stays_within_the_reach() {
        let access = Access::new(vec![Binding {
            scope: Scope::Deploy,
            on: reach("{regions: [eu-west-1]}").unwrap(),
        }])
        .unwrap();
        let selector = |yaml: &str| -> Selector { serde_norway::from_str(yaml).unwrap() };
        assert!(access.covers(Scope::Deploy, &selector("{regions: [eu-west-1], groups: [blue]}")));
        assert!(!access.covers(Scope::Deploy, &selector("{}")));
        assert!(!access.covers(Scope::Deploy, &selector("{regions: [eu-west-1, us-east-1]}")));
        assert!(!access.covers(Scope::Admin, &selector("{regions: [eu-west-1]}")));
        assert!(Access::everywhere(Scope::Deploy).covers(Scope::Deploy, &selector("{}")));
    }

    fn bound(bindings: &[(Scope, &str)]) -> Access {
        Access::new(
            bindings
                .iter()
                .map(|(scope, on)| Binding {
                    scope: *scope,
                    on: reach(on).unwrap(),
                })
                .collect(),
        )
        .unwrap()
    }

    fn selector(yaml: &str) -> Selector {
        serde_norway::from_str(yaml).unwrap()
    }

    #[test]
    fn bindings_together_cover_a_rollout_over_what_each_covers() {
        let access = bound(&[
            (Scope::Deploy, "{regions: [eu-west-1]}"),
            (Scope::Deploy, "{regions: [us-east-1]}"),
            (Scope::Read, "{regions: [ap-south-1]}"),
        ]);
        assert!(access.covers(Scope::Deploy, &selector("{regions: [eu-west-1, us-east-1]}")));
        assert!(access.covers(
            Scope::Deploy,
            &selector("{regions: [eu-west-1, us-east-1], groups: [blue, red]}")
        ));
        // A read binding does not make up for a missing deploy one.
        assert!(!access.covers(Scope::Deploy, &selector("{regions: [eu-west-1, ap-south-1]}")));
        assert!(access.covers(Scope::Read, &selector("{regions: [eu-west-1, ap-south-1]}")));
        // Every region: later regions are outside both bindings.
        assert!(!access.covers(Scope::Deploy, &selector("{groups: [blue]}")));
    }

    #[test]
    fn each_cell_of_the_selector_needs_one_binding_that_holds_it_whole() {
        // eu-west-1/blue and us-east-1/red are covered, eu-west-1/red is not.
        let crossed = bound(&[
            (Scope::Deploy, "{regions: [eu-west-1], groups: [blue]}"),
            (Scope::Deploy, "{regions: [us-east-1], groups: [red]}"),
        ]);
        assert!(!crossed.covers(
            Scope::Deploy,
            &selector("{regions: [eu-west-1, us-east-1], groups: [blue, red]}")
        ));
        assert!(crossed.covers(Scope::Deploy, &selector("{regions: [eu-west-1], groups: [blue]}")));
        let by_tenant = bound(&[
            (Scope::Deploy, "{tenants: [acme]}"),
            (Scope::Deploy, "{regions: [eu-west-1]}"),
        ]);
        assert!(by_tenant.covers(
            Scope::Deploy,
            &selector("{regions: [eu-west-1], tenants: [acme, globex]}")
        ));
        assert!(!by_tenant.covers(
            Scope::Deploy,
            &selector("{regions: [us-east-1], tenants: [acme, globex]}")
        ));
        // A binding naming environments covers no selector that leaves it open.
        let prod = bound(&[
            (Scope::Deploy, "{environments: [prod], regions: [eu-west-1]}"),
            (Scope::Deploy, "{environments: [prod], regions: [us-east-1]}"),
        ]);
        assert!(!prod.covers(Scope::Deploy, &selector("{regions: [eu-west-1, us-east-1]}")));
        assert!(prod.covers(
            Scope::Deploy,
            &selector("{environment: prod, regions: [eu-west-1, us-east-1]}")
        ));
    }

    #[test]
    fn the_highest_scope_and_the_unrestricted_grant_are_told_apart() {
        let access = Access::new(vec![
            Binding {
                scope: Scope::Read,
                on: Reach::default(),
            },
            Binding {
                scope: Scope::Admin,
                on: reach("{tenants: [acme]}").unwrap(),
            },
        ])
        .unwrap();
        assert_eq!(access.highest(), Scope::Admin);
        assert!(access.is_unrestricted(Scope::Read));
        assert!(!access.is_unrestricted(Scope::Deploy));
        assert_eq!(access.regions(Scope::Read), None);
        assert_eq!(access.describe(Scope::Deploy), "admin on tenants [acme]");
    }
}
