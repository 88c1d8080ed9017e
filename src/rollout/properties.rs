//! Properties every plan has, checked on generated fleets and strategies: coverage,
//! wave sizes, region order, pinned tenants, windows and limits, determinism.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;

use super::*;
use crate::domain::rollout::{
    Approvals, Bake, FailureBudget, OutageBudget, Percent, Plan, Selector, SkipReason,
    Strategy as RolloutStrategy, Wave, WaveKind, WaveSize, Waves,
};
use crate::domain::window::tests::arb_windows;
use crate::domain::{Group, Region, ReleaseVersion, RolloutSpec, TenantId, Tier};

const REGIONS: [&str; 4] = ["us-east-1", "eu-west-1", "ap-south-1", "sa-east-1"];
const GROUPS: [&str; 3] = ["canary", "ring-1", "default"];
const TARGET: &str = "1.1.0";

#[derive(Debug, Clone)]
struct Case {
    spec: RolloutSpec,
    fleet: Vec<TenantSummaryForPlanning>,
    now: DateTime<Utc>,
    options: PlanOptions,
}

impl Case {
    fn plan(&self) -> Plan {
        plan_with(&self.spec, &self.fleet, self.now, &self.options)
    }

    fn strategy(&self) -> &RolloutStrategy {
        &self.spec.strategy
    }

    /// Who the rollout must move, decided from the spec's rules directly.
    fn eligible(&self, t: &TenantSummaryForPlanning) -> bool {
        let selector = &self.spec.selector;
        selector.matches(&t.id, &t.region, &t.group, t.tier)
            && !selector.excludes(&t.id)
            && t.pinned_release.is_none()
            && t.current_release
                .as_ref()
                .is_some_and(|r| Some(r) != self.spec.release.as_ref())
            && match (&t.maintenance, self.strategy().outage_budget) {
                (Some(windows), Some(budget)) => windows.longest_opening(self.now) >= budget.get(),
                _ => true,
            }
    }

    fn tenant(&self, id: &TenantId) -> &TenantSummaryForPlanning {
        self.fleet.iter().find(|t| t.id == *id).unwrap()
    }
}

fn id(i: usize) -> TenantId {
    TenantId::parse(&format!("t-{i:03}")).unwrap()
}

fn pick<T: Clone + std::fmt::Debug>(items: Vec<T>) -> impl Strategy<Value = Vec<T>> {
    let n = items.len();
    Just(items)
        .prop_shuffle()
        .prop_flat_map(move |all| (0..=n).prop_map(move |k| all[..k].to_vec()))
}

fn arb_fleet() -> impl Strategy<Value = Vec<TenantSummaryForPlanning>> {
    let release = prop::sample::select(vec![None, Some("1.0.0"), Some(TARGET), Some("0.9.0")]);
    let tenant = (
        0..REGIONS.len(),
        0..GROUPS.len(),
        prop::sample::select(Tier::ALL.to_vec()),
        release,
        prop::option::weighted(0.15, prop::sample::select(vec!["1.0.0", TARGET])),
        prop::option::weighted(0.3, arb_windows()),
    );
    prop::collection::vec(tenant, 0..120).prop_map(|tenants| {
        (tenants.into_iter().enumerate())
            .map(
                |(i, (region, group, tier, current, pinned, maintenance))| TenantSummaryForPlanning {
                    id: id(i),
                    region: Region::parse(REGIONS[region]).unwrap(),
                    group: Group::parse(GROUPS[group]).unwrap(),
                    tier,
                    current_release: current.map(|v| ReleaseVersion::parse(v).unwrap()),
                    pinned_release: pinned.map(|v| ReleaseVersion::parse(v).unwrap()),
                    maintenance,
                    revision: crate::rollout::TenantRevision::built_in(tier),
                },
            )
            .collect()
    })
}

/// A valid wave list: a canary (count or share), then counts and shares, each kind
/// increasing, interleaved at random, ending at 100%.
fn arb_waves() -> impl Strategy<Value = Waves> {
    let canary = prop_oneof![
        (1u32..5).prop_map(|n| WaveSize::Count(NonZeroU32::new(n).unwrap())),
        (1u8..30).prop_map(|p| WaveSize::Percent(Percent::new(p).unwrap())),
    ];
    let percents = prop::collection::btree_set(1u8..100, 0..4);
    let counts = prop::collection::btree_set(2u32..40, 0..3);
    let pattern = prop::collection::vec(any::<bool>(), 8);
    (canary, percents, counts, pattern).prop_map(|(canary, percents, counts, pattern)| {
        let above = |s: WaveSize| match (canary, s) {
            (WaveSize::Count(a), WaveSize::Count(b)) => b > a,
            (WaveSize::Percent(a), WaveSize::Percent(b)) => b > a,
            _ => true,
        };
        let mut percents = (percents.into_iter())
            .map(|p| WaveSize::Percent(Percent::new(p).unwrap()))
            .filter(|s| above(*s))
            .peekable();
        let mut counts = (counts.into_iter())
            .map(|n| WaveSize::Count(NonZeroU32::new(n).unwrap()))
            .filter(|s| above(*s))
            .peekable();
        let mut sizes = vec![canary];
        for take_count in pattern.into_iter().cycle().take(8) {
            let next = if take_count {
                counts.next()
            } else {
                percents.next()
            };
            sizes.extend(next);
        }
        sizes.extend(counts.chain(percents));
        sizes.push(WaveSize::Percent(Percent::FULL));
        Waves::new(sizes).unwrap()
    })
}

fn arb_strategy() -> impl Strategy<Value = RolloutStrategy> {
    let regions: Vec<Region> = REGIONS.iter().map(|r| Region::parse(r).unwrap()).collect();
    let groups: Vec<Group> = GROUPS.iter().map(|g| Group::parse(g).unwrap()).collect();
    let limit = || prop::option::of((1u32..6).prop_map(|n| NonZeroU32::new(n).unwrap()));
    let bake = (0u32..4, 1u64..20, 0u64..60).prop_map(|(checks, every, extra)| {
        let every = Duration::from_secs(every * 60);
        Bake::new(
            every * checks + Duration::from_secs(extra * 60),
            checks.max(1),
            every,
        )
        .unwrap_or_else(|_| Bake::none())
    });
    (
        (arb_waves(), 1u32..=3, pick(regions), pick(groups)),
        (limit(), limit(), bake, 0u32..3, any::<bool>(), any::<bool>()),
        prop::option::weighted(
            0.4,
            (1u64..360).prop_map(|m| OutageBudget::new(Duration::from_secs(m * 60)).unwrap()),
        ),
    )
        .prop_map(
            |(
                (waves, parallel, region_order, group_order),
                (per_wave, per_region, bake, budget, after_canary, between),
                outage_budget,
            )| {
                RolloutStrategy {
                    region_order,
                    max_parallel_regions: NonZeroU32::new(parallel).unwrap(),
                    group_order,
                    waves,
                    max_in_flight_per_wave: per_wave,
                    max_in_flight_per_region: per_region,
                    bake,
                    failure_budget: FailureBudget::Count(budget),
                    on_breach: Default::default(),
                    approvals: Approvals {
                        after_canary,
                        between_regions: between,
                    },
                    allow_replacement: Vec::new(),
                    migration_restore: Default::default(),
                    outage_budget,
                }
            },
        )
}

fn arb_selector() -> impl Strategy<Value = Selector> {
    let regions: Vec<Region> = REGIONS.iter().map(|r| Region::parse(r).unwrap()).collect();
    let named = prop::option::weighted(0.15, prop::collection::btree_set(0usize..130, 1..20));
    let exclude = prop::collection::btree_set(0usize..120, 0..6);
    let tiers = prop::option::weighted(0.3, pick(Tier::ALL.to_vec()));
    (prop::option::weighted(0.4, pick(regions)), tiers, named, exclude).prop_map(
        |(regions, tiers, named, exclude)| {
            let named = named.unwrap_or_default();
            Selector {
                regions: regions.unwrap_or_default().into_iter().collect(),
                groups: Default::default(),
                tiers: tiers.unwrap_or_default().into_iter().collect(),
                exclude: exclude
                    .into_iter()
                    .filter(|i| !named.contains(i))
                    .map(id)
                    .collect(),
                tenants: named.into_iter().map(id).collect(),
                drifted: false,
                environment: None,
            }
        },
    )
}

fn arb_case() -> impl Strategy<Value = Case> {
    (
        arb_fleet(),
        arb_selector(),
        arb_strategy(),
        1_700_000_000i64..1_900_000_000,
        1u64..=120,
    )
        .prop_map(|(fleet, selector, strategy, now, minutes)| Case {
            spec: RolloutSpec {
                selector,
                strategy,
                ..RolloutSpec::new(ReleaseVersion::parse(TARGET).unwrap())
            },
            fleet,
            now: DateTime::from_timestamp(now, 0).unwrap(),
            options: PlanOptions {
                tenant_duration: Duration::from_secs(minutes * 60),
            },
        })
}

/// How many of a region's tenants each planned wave holds, as (stage, count).
fn region_waves<'p>(plan: &'p Plan, region: &Region) -> Vec<(&'p Wave, usize)> {
    (plan.waves.iter())
        .filter(|w| w.regions.contains(region))
        .map(|w| (w, w.tenants.iter().filter(|t| t.region == *region).count()))
        .collect()
}

/// The most tenants in flight at once, given their starts and a common duration.
fn most_in_flight(starts: &[DateTime<Utc>], duration: TimeDelta) -> usize {
    (starts.iter())
        .map(|&s| starts.iter().filter(|&&o| o <= s && s < o + duration).count())
        .max()
        .unwrap_or(0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_eligible_tenant_is_planned_exactly_once(case in arb_case()) {
        let plan = case.plan();
        let mut planned: HashMap<&TenantId, usize> = HashMap::new();
        for t in plan.waves.iter().flat_map(|w| &w.tenants) {
            *planned.entry(&t.id).or_default() += 1;
            prop_assert_eq!(&t.region, &case.tenant(&t.id).region);
        }
        for t in &case.fleet {
            let expected = if case.eligible(t) { Some(&1) } else { None };
            prop_assert_eq!(planned.get(&t.id), expected, "{}", t.id);
        }
        let skipped_in_fleet = plan.skipped.iter().filter(|s| s.reason != SkipReason::NotInFleet).count();
        prop_assert_eq!(plan.tenant_count() + skipped_in_fleet + plan.not_selected, case.fleet.len());
        prop_assert!(plan.skipped.iter().all(|s| !planned.contains_key(&s.id)));
        prop_assert!(plan.skipped.windows(2).all(|p| p[0].id < p[1].id), "one entry per tenant, by id");
    }

    #[test]
    fn waves_reach_each_regions_cumulative_targets(case in arb_case()) {
        let plan = case.plan();
        let sizes = case.strategy().waves.sizes();
        for region in &plan.region_order {
            let n = case.fleet.iter().filter(|t| t.region == *region && case.eligible(t)).count();
            let waves = region_waves(&plan, region);
            let (canary, canary_size) = waves[0];
            prop_assert_eq!((canary.stage, canary.kind), (0, WaveKind::Canary));
            prop_assert_eq!(canary_size, sizes[0].cumulative_target(n).clamp(1, n));
            let mut started = canary_size;
            let mut stage = 0;
            for &(wave, count) in &waves[1..] {
                prop_assert!(wave.stage > stage);
                for skipped in &sizes[stage + 1..wave.stage] {
                    prop_assert!(skipped.cumulative_target(n) <= started, "a wave with nobody to start");
                }
                started += count;
                prop_assert_eq!(started, sizes[wave.stage].cumulative_target(n), "{} in {}", wave.target, region);
                stage = wave.stage;
            }
            prop_assert_eq!(started, n);
        }
    }

    #[test]
    fn tenants_go_by_group_order_then_id_within_a_region(case in arb_case()) {
        let plan = case.plan();
        let rank = |g: &Group| case.strategy().group_order.iter().position(|o| o == g).unwrap_or(usize::MAX);
        for region in &plan.region_order {
            let order: Vec<(usize, &Group, &TenantId)> = (plan.waves.iter().flat_map(|w| &w.tenants))
                .filter(|t| t.region == *region)
                .map(|t| { let g = &case.tenant(&t.id).group; (rank(g), g, &t.id) })
                .collect();
            prop_assert!(order.windows(2).all(|p| p[0] < p[1]));
        }
    }

    #[test]
    fn regions_follow_the_order_and_the_parallel_limit(case in arb_case()) {
        let plan = case.plan();
        let mut expected: Vec<&Region> = Vec::new();
        let has_work = |r: &Region| case.fleet.iter().any(|t| t.region == *r && case.eligible(t));
        for r in case.strategy().region_order.iter().filter(|r| has_work(r)) {
            expected.push(r);
        }
        let mut rest: Vec<&Region> = (case.fleet.iter()).map(|t| &t.region)
            .filter(|r| has_work(r) && !expected.contains(r)).collect();
        rest.sort();
        rest.dedup();
        expected.extend(rest);
        prop_assert_eq!(plan.region_order.iter().collect::<Vec<_>>(), expected);

        let k = case.strategy().max_parallel_regions.get() as usize;
        let span = |r: &Region| {
            let waves: Vec<usize> = plan.waves.iter().filter(|w| w.regions.contains(r)).map(|w| w.index).collect();
            (waves[0], waves[waves.len() - 1])
        };
        let spans: Vec<(usize, usize)> = plan.region_order.iter().map(span).collect();
        for w in &plan.waves {
            prop_assert!(w.regions.len() <= k);
            let active = spans.iter().filter(|(first, last)| *first <= w.index && w.index <= *last).count();
            prop_assert!(active <= k, "{} regions overlap at wave {}", active, w.index);
        }
        prop_assert!(spans.windows(2).all(|p| p[0].0 <= p[1].0), "a later region never starts first");
        if k == 1 {
            prop_assert!(spans.windows(2).all(|p| p[0].1 < p[1].0), "one region at a time");
        }
    }

    #[test]
    fn pinned_tenants_are_never_planned_and_always_reported(case in arb_case()) {
        let plan = case.plan();
        let selector = &case.spec.selector;
        for t in &case.fleet {
            let Some(pin) = &t.pinned_release else { continue };
            if !selector.matches(&t.id, &t.region, &t.group, t.tier) || selector.excludes(&t.id) {
                continue;
            }
            let entry = plan.skipped.iter().find(|s| s.id == t.id);
            prop_assert_eq!(entry.map(|s| &s.reason), Some(&SkipReason::Pinned { release: pin.clone() }));
            prop_assert_eq!(entry.unwrap().reason.to_string(), format!("pinned to {pin}"));
        }
    }

    #[test]
    fn tenants_start_inside_their_windows_within_limits_after_the_bake(case in arb_case()) {
        let plan = case.plan();
        let s = case.strategy();
        let duration = TimeDelta::from_std(case.options.tenant_duration).unwrap();
        let bake = TimeDelta::from_std(s.bake.time()).unwrap();
        let mut begin = case.now;
        for (i, w) in plan.waves.iter().enumerate() {
            prop_assert_eq!(w.earliest_start, begin);
            for t in &w.tenants {
                prop_assert!(t.earliest_start >= w.earliest_start);
                if let Some(windows) = &case.tenant(&t.id).maintenance {
                    prop_assert!(windows.contains(t.earliest_start), "{} starts at {} outside {}", t.id, t.earliest_start, windows);
                    if let Some(budget) = s.outage_budget {
                        let closes = windows.open_until(t.earliest_start).unwrap();
                        prop_assert!(
                            closes - t.earliest_start >= TimeDelta::from_std(budget.get()).unwrap(),
                            "{} starts at {} in {}, which closes before its outage budget {} runs out", t.id, t.earliest_start, windows, budget
                        );
                    }
                }
            }
            let starts: Vec<_> = w.tenants.iter().map(|t| t.earliest_start).collect();
            prop_assert_eq!(w.estimated_finish, starts.iter().map(|&t| t + duration).max().unwrap());
            prop_assert_eq!(w.bake_until, w.estimated_finish + bake);
            if let Some(limit) = s.max_in_flight_per_wave {
                prop_assert!(most_in_flight(&starts, duration) <= limit.get() as usize);
            }
            if let Some(limit) = s.max_in_flight_per_region {
                for r in &w.regions {
                    let in_region: Vec<_> = w.tenants.iter().filter(|t| t.region == *r).map(|t| t.earliest_start).collect();
                    prop_assert!(most_in_flight(&in_region, duration) <= limit.get() as usize);
                }
            }
            let previous = i.checked_sub(1).map(|p| &plan.waves[p]);
            let batch = |w: &Wave| plan.region_order.iter().position(|r| *r == w.regions[0]).unwrap() / s.max_parallel_regions.get() as usize;
            let approval = previous.is_some_and(|p| {
                (s.approvals.after_canary && p.kind == WaveKind::Canary)
                    || (s.approvals.between_regions && batch(p) != batch(w))
            });
            prop_assert_eq!(w.approval_before, approval, "wave {}", i);
            begin = w.bake_until;
        }
        prop_assert_eq!(plan.estimated_end, begin);
    }

    #[test]
    fn the_same_fleet_in_any_order_gives_the_same_plan(
        (case, shuffled) in arb_case().prop_flat_map(|c| { let fleet = c.fleet.clone(); (Just(c), Just(fleet).prop_shuffle()) })
    ) {
        let again = Case { fleet: shuffled, ..case.clone() };
        prop_assert_eq!(case.plan(), again.plan());
    }
}

#[test]
fn the_generated_cases_cover_the_interesting_shapes() {
    // Guards the generators: a property that only ever sees empty plans proves nothing.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut multi_region, mut windowed, mut pinned, mut parallel) = (0, 0, 0, 0);
    for _ in 0..200 {
        let case = arb_case().new_tree(&mut runner).unwrap().current();
        let plan = case.plan();
        multi_region += usize::from(plan.region_order.len() > 1);
        parallel += usize::from(plan.waves.iter().any(|w| w.regions.len() > 1));
        pinned += usize::from(
            plan.skipped
                .iter()
                .any(|s| matches!(s.reason, SkipReason::Pinned { .. })),
        );
        windowed += usize::from(
            (plan.waves.iter().flat_map(|w| &w.tenants)).any(|t| case.tenant(&t.id).maintenance.is_some()),
        );
    }
    let counts = BTreeMap::from([
        ("multi_region", multi_region),
        ("parallel", parallel),
        ("pinned", pinned),
        ("windowed", windowed),
    ]);
    assert!(counts.values().all(|&n| n >= 20), "{counts:?}");
}
