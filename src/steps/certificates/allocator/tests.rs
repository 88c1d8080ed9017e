use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;
use crate::domain::TenantId;

fn limits(names_per_certificate: usize, certificates_per_listener: usize) -> Limits {
    Limits {
        names_per_certificate,
        certificates_per_listener,
    }
}

fn host(s: &str) -> Hostname {
    Hostname::parse(s).unwrap()
}

fn tenant(t: usize) -> TenantId {
    TenantId::parse(&format!("tenant{t:03}")).unwrap()
}

/// `count` hostnames of tenant `t`.
fn names_of(t: usize, count: usize) -> Names {
    (0..count)
        .map(|j| (host(&format!("h{t}-{j}.example.com")), tenant(t)))
        .collect()
}

fn listeners(count: usize) -> Vec<String> {
    (1..=count).map(|i| format!("listener-{i}")).collect()
}

fn empty(limits: Limits, listener_count: usize) -> Layout {
    Layout::new([], listeners(listener_count), limits)
}

/// A settled slot holding `names`.
fn settled(n: u32, listener: &str, names: Names) -> SlotView {
    SlotView {
        n,
        listener: listener.into(),
        state: SlotState::Idle,
        current: names.keys().cloned().collect(),
        retired: 0,
        target: names,
    }
}

/// Requests every open change: from now on its names are frozen. Returns the
/// number of issuances this costs.
fn claim(layout: &mut Layout) -> usize {
    let mut issued = 0;
    for v in layout.slots_mut() {
        if v.state == SlotState::Open {
            v.state = SlotState::InFlight;
            issued += 1;
        }
    }
    issued
}

/// Requests every open change and lets every issuance finish: each slot ends on one
/// attached certificate with its target names; retiring slots disappear. Returns
/// the number of issuances.
fn settle(layout: &mut Layout) -> usize {
    let issued = claim(layout);
    let gone: Vec<u32> = layout
        .slots()
        .filter(|v| v.state == SlotState::Retiring)
        .map(|v| v.n)
        .collect();
    for n in gone {
        layout.remove_slot(n);
    }
    for v in layout.slots_mut() {
        v.state = SlotState::Idle;
        v.current = v.target.keys().cloned().collect();
        v.retired = 0;
    }
    layout.opened.clear();
    layout.retargeted.clear();
    issued
}

fn slot_sizes(layout: &Layout) -> Vec<(String, usize)> {
    layout
        .slots()
        .map(|v| (v.listener.clone(), v.target.len()))
        .collect()
}

#[test]
fn names_fill_one_certificate_before_the_next_opens() {
    let mut layout = empty(limits(10, 25), 1);
    for t in 0..25 {
        assert!(layout.place(&names_of(t, 1)).unwrap().is_empty());
    }
    let sizes: Vec<usize> = layout.slots().map(|v| v.target.len()).collect();
    assert_eq!(sizes, vec![10, 10, 5]);
    assert_eq!(layout.changes().len(), 3);
    assert!(layout
        .changes()
        .iter()
        .all(|c| matches!(c, SlotChange::Open { .. })));
}

#[test]
fn names_of_tenants_provisioned_together_share_one_issuance() {
    let mut layout = empty(limits(10, 25), 1);
    layout.place(&names_of(1, 2)).unwrap();
    layout.place(&names_of(2, 1)).unwrap();
    layout.place(&names_of(3, 2)).unwrap();
    assert_eq!(settle(&mut layout), 1, "five names, one open slot, one request");
    assert_eq!(layout.certificates(), 1);
}

#[test]
fn a_settled_slot_with_room_takes_a_name_before_a_new_slot_opens() {
    let mut layout = Layout::new(
        [settled(1, "listener-1", names_of(1, 3))],
        listeners(1),
        limits(10, 25),
    );
    layout.place(&names_of(2, 1)).unwrap();
    assert_eq!(
        layout.changes(),
        vec![SlotChange::Retarget {
            n: 1,
            target: names_of(1, 3).into_iter().chain(names_of(2, 1)).collect()
        }]
    );
    assert_eq!(
        layout.certificates_on("listener-1"),
        2,
        "old and new certificate side by side"
    );
}

#[test]
fn a_listener_keeps_a_place_for_replacements_and_new_slots_spill_to_the_next() {
    let mut layout = empty(limits(1, 3), 2);
    for t in 0..4 {
        layout.place(&names_of(t, 1)).unwrap();
        settle(&mut layout);
    }
    assert_eq!(
        slot_sizes(&layout),
        vec![
            ("listener-1".into(), 1),
            ("listener-1".into(), 1),
            ("listener-2".into(), 1),
            ("listener-2".into(), 1)
        ]
    );
    let err = layout.place(&names_of(9, 1)).unwrap_err();
    assert_eq!(err.name, host("h9-0.example.com"));
    assert!(err.to_string().contains("add a listener"), "{err}");
    // The kept place lets a slot on a full listener still change its names.
    layout.release(&BTreeSet::from([host("h0-0.example.com")]));
    assert_eq!(
        layout.slots().filter(|v| v.state == SlotState::Retiring).count(),
        1
    );
}

#[test]
fn a_busy_slot_is_passed_over_for_a_new_one_while_within_the_bound() {
    let mut layout = empty(limits(10, 25), 1);
    layout.place(&names_of(1, 5)).unwrap();
    claim(&mut layout);
    // 6 names: bound ceil(6/10)+1 = 2, so a second certificate is allowed.
    assert!(layout.place(&names_of(2, 1)).unwrap().is_empty());
    assert_eq!(layout.certificates(), 2);
    // It is open, so the next name rides along for free.
    layout.place(&names_of(3, 1)).unwrap();
    assert_eq!(
        layout.slots().map(|v| v.target.len()).collect::<Vec<_>>(),
        vec![5, 2]
    );
    claim(&mut layout);
    // 8 names, bound 2, two certificates: the name waits instead of opening a third.
    let waiting = layout.place(&names_of(4, 1)).unwrap();
    assert_eq!(waiting.len(), 1);
    assert!(waiting[0].why.contains("being issued"), "{}", waiting[0].why);
    assert_eq!(layout.certificates(), 2);
    // Once the issuances are done, the name joins a settled slot with room.
    settle(&mut layout);
    assert!(layout.place(&names_of(4, 1)).unwrap().is_empty());
    assert_eq!(layout.certificates(), 2);
}

#[test]
fn a_name_already_planned_or_covered_is_never_planned_again() {
    let mut layout = empty(limits(10, 25), 1);
    layout.place(&names_of(1, 2)).unwrap();
    let before = layout.changes();
    layout.place(&names_of(1, 2)).unwrap();
    assert_eq!(layout.changes(), before);
    settle(&mut layout);
    layout.place(&names_of(1, 2)).unwrap();
    assert!(layout.changes().is_empty(), "a covered name causes no re-issue");
}

#[test]
fn a_replacement_needs_a_free_place_on_its_listener() {
    let mut layout = Layout::new(
        [
            settled(1, "listener-1", names_of(1, 1)),
            settled(2, "listener-1", names_of(2, 1)),
        ],
        listeners(1),
        limits(2, 3),
    );
    layout.place(&names_of(3, 1)).unwrap();
    assert_eq!(layout.certificates_on("listener-1"), 3);
    let waiting = layout.place(&names_of(4, 1)).unwrap();
    assert_eq!(waiting.len(), 1);
    assert!(waiting[0].why.contains("no free place"), "{}", waiting[0].why);
}

#[test]
fn released_names_leave_and_a_slot_without_names_retires() {
    let mut layout = empty(limits(10, 25), 1);
    layout.place(&names_of(1, 2)).unwrap();
    layout.place(&names_of(2, 1)).unwrap();
    settle(&mut layout);
    let gone: BTreeSet<Hostname> = names_of(1, 2).into_keys().collect();
    assert!(layout.release(&gone).is_empty());
    assert_eq!(
        layout.changes(),
        vec![SlotChange::Retarget {
            n: 1,
            target: names_of(2, 1)
        }]
    );
    assert_eq!(settle(&mut layout), 1);
    layout.release(&names_of(2, 1).into_keys().collect());
    assert_eq!(settle(&mut layout), 0, "retiring needs no new certificate");
    assert_eq!(layout.slots().count(), 0);
}

#[test]
fn a_shrinking_slot_merges_into_another_with_room_for_the_same_issuance() {
    let mut layout = Layout::new(
        [
            settled(1, "listener-1", names_of(1, 6)),
            settled(2, "listener-1", names_of(2, 4)),
        ],
        listeners(1),
        limits(10, 25),
    );
    layout.release(&names_of(1, 6).into_keys().take(3).collect());
    assert_eq!(
        layout.slots().map(|v| v.target.len()).collect::<Vec<_>>(),
        vec![0, 7]
    );
    assert_eq!(
        settle(&mut layout),
        1,
        "one issuance either way, one certificate fewer"
    );
    assert_eq!(layout.certificates(), 1);
}

#[test]
fn names_in_flight_wait_before_they_leave() {
    let mut layout = empty(limits(10, 25), 1);
    layout.place(&names_of(1, 2)).unwrap();
    claim(&mut layout);
    let waiting = layout.release(&names_of(1, 2).into_keys().collect());
    assert_eq!(waiting.len(), 2);
    assert!(layout.changes().is_empty() || layout.slots().all(|v| v.target.len() == 2));
    settle(&mut layout);
    assert!(layout.release(&names_of(1, 2).into_keys().collect()).is_empty());
}

#[test]
fn above_the_bound_the_smallest_slot_is_spread_over_the_others() {
    // Five slots of six names: 30 names would need 4 certificates at most.
    let slots = (1..=5).map(|n| settled(n, "listener-1", names_of(n as usize, 6)));
    let mut layout = Layout::new(slots, listeners(1), limits(10, 25));
    layout.release(&BTreeSet::from([host("h1-0.example.com")]));
    settle(&mut layout);
    assert_eq!(layout.names(), 29);
    assert!(layout.certificates() <= certificate_bound(29, 10));
    assert!(layout.slots().all(|v| v.target.len() <= 10));
}

#[test]
fn the_bound_is_ceil_names_over_capacity_plus_one() {
    assert_eq!(certificate_bound(0, 10), 1);
    assert_eq!(certificate_bound(10, 10), 2);
    assert_eq!(certificate_bound(11, 10), 3);
    assert_eq!(certificate_bound(37, 4), 11);
}

// ---- properties ----

#[derive(Debug, Clone)]
enum Op {
    /// Tenant provisions with 1 or 2 hostnames.
    Provision {
        tenant: usize,
        names: usize,
    },
    Deprovision {
        tenant: usize,
    },
    /// Every open change is requested (its names freeze).
    Request,
    /// Every issuance finishes; waiting tenants try again.
    Settle,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..32usize, 1..=2usize).prop_map(|(tenant, names)| Op::Provision { tenant, names }),
        2 => (0..32usize).prop_map(|tenant| Op::Deprovision { tenant }),
        2 => Just(Op::Request),
        1 => Just(Op::Settle),
    ]
}

/// Tenants of the model and what they still wait for.
#[derive(Default)]
struct Fleet {
    wanted: BTreeMap<usize, Names>,
    leaving: BTreeSet<Hostname>,
    refused: BTreeSet<usize>,
    /// Certificates requested so far.
    issuances: usize,
    /// Distinct hostnames ever provisioned.
    provisioned: BTreeSet<Hostname>,
}

fn check_invariants(layout: &Layout, limits: Limits, fleet: &Fleet) -> Result<(), TestCaseError> {
    let mut seen = BTreeSet::new();
    for v in layout.slots() {
        prop_assert!(
            v.target.len() <= limits.names_per_certificate,
            "slot {} over capacity",
            v.n
        );
        for name in v.target.keys() {
            prop_assert!(seen.insert(name.clone()), "{name} planned twice");
            let owned = fleet.wanted.values().any(|names| names.contains_key(name));
            prop_assert!(
                owned || fleet.leaving.contains(name),
                "{name} planned but nobody wants it"
            );
        }
    }
    for l in &layout.listeners {
        prop_assert!(
            layout.certificates_on(l) <= limits.certificates_per_listener,
            "{l} carries {} certificates",
            layout.certificates_on(l)
        );
    }
    Ok(())
}

/// Runs the requests that had to wait until nothing changes, settling in between.
fn settle_and_retry(layout: &mut Layout, fleet: &mut Fleet) {
    for _ in 0..8 {
        fleet.issuances += settle(layout);
        let leaving = std::mem::take(&mut fleet.leaving);
        if !leaving.is_empty() {
            let waiting = layout.release(&leaving);
            fleet.leaving = waiting.into_iter().map(|w| w.name).collect();
        }
        for (t, names) in fleet.wanted.clone() {
            if !fleet.refused.contains(&t) && layout.place(&names).is_err() {
                fleet.refused.insert(t);
            }
        }
    }
    fleet.issuances += settle(layout);
}

fn run(ops: Vec<Op>, limits: Limits, listener_count: usize, check_bound: bool) -> Result<(), TestCaseError> {
    let mut layout = empty(limits, listener_count);
    let mut fleet = Fleet::default();
    let mut deprovisions = 0;
    for op in ops {
        match op {
            Op::Provision { tenant, names } => {
                if fleet.wanted.contains_key(&tenant) {
                    continue;
                }
                let names = names_of(tenant, names);
                if fleet.leaving.iter().any(|n| names.contains_key(n)) {
                    continue; // the same hostnames are still leaving
                }
                fleet.wanted.insert(tenant, names.clone());
                fleet.provisioned.extend(names.keys().cloned());
                if let Err(no_room) = layout.place(&names) {
                    // Refused only when truly full: nothing in flight, no listener can
                    // take a new slot and no slot has room.
                    for l in &layout.listeners {
                        prop_assert!(layout.free_places(l) < 2, "{no_room} but {l} has room");
                    }
                    for v in layout.slots() {
                        prop_assert!(
                            v.state == SlotState::Idle,
                            "{no_room} but slot {} is changing",
                            v.n
                        );
                        prop_assert!(v.room(&limits) == 0, "{no_room} but slot {} has room", v.n);
                    }
                    fleet.refused.insert(tenant);
                }
            }
            Op::Deprovision { tenant } => {
                if let Some(names) = fleet.wanted.remove(&tenant) {
                    deprovisions += names.len();
                    fleet.refused.remove(&tenant);
                    let names: BTreeSet<Hostname> = names.into_keys().collect();
                    let waiting = layout.release(&names);
                    fleet.leaving.extend(waiting.into_iter().map(|w| w.name));
                }
            }
            Op::Request => fleet.issuances += claim(&mut layout),
            Op::Settle => settle_and_retry(&mut layout, &mut fleet),
        }
        check_invariants(&layout, limits, &fleet)?;
    }
    settle_and_retry(&mut layout, &mut fleet);
    check_invariants(&layout, limits, &fleet)?;
    prop_assert!(fleet.leaving.is_empty(), "still leaving: {:?}", fleet.leaving);
    for (t, names) in &fleet.wanted {
        if fleet.refused.contains(t) {
            continue;
        }
        for name in names.keys() {
            prop_assert!(layout.slot_of(name).is_some(), "{name} of tenant {t} has no slot");
        }
    }
    if check_bound {
        let bound = certificate_bound(layout.names(), limits.names_per_certificate);
        prop_assert!(
            layout.certificates() <= bound,
            "{} certificates for {} names (bound {bound}); sizes {:?}",
            layout.certificates(),
            layout.names(),
            slot_sizes(&layout)
        );
    }
    // Every request carries at least one name that was never on a certificate
    // before, or a removal: a covered name alone never causes one.
    prop_assert!(
        fleet.issuances <= fleet.provisioned.len() + deprovisions,
        "{} issuances for {} hostnames and {deprovisions} deprovisions",
        fleet.issuances,
        fleet.provisioned.len()
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Provisioning only, any capacities: every name in exactly one slot, no slot over
    /// capacity, no listener over its limit, certificates within the bound.
    #[test]
    fn provisioning_keeps_every_limit_and_the_certificate_bound(
        ops in proptest::collection::vec(
            prop_oneof![
                3 => (0..16usize, 1..=2usize).prop_map(|(tenant, names)| Op::Provision { tenant, names }),
                2 => Just(Op::Request),
                1 => Just(Op::Settle),
            ],
            1..60,
        ),
        per_certificate in 1..=5usize,
        per_listener in 2..=6usize,
        listener_count in 1..=3usize,
    ) {
        run(ops, limits(per_certificate, per_listener), listener_count, true)?;
    }

    /// Provisioning and deprovisioning with listeners that have places to spare:
    /// the same limits, and removals keep the region within the bound.
    #[test]
    fn provisioning_and_deprovisioning_keep_every_limit_and_the_bound(
        ops in proptest::collection::vec(op(), 1..150),
        per_certificate in 1..=5usize,
        listener_count in 1..=2usize,
    ) {
        run(ops, limits(per_certificate, 64), listener_count, true)?;
    }

    /// Tight listeners, provisioning and deprovisioning: nothing is over a limit,
    /// no name is lost or doubled, and a tenant is refused only when truly full.
    #[test]
    fn tight_listeners_never_go_over_their_limit(
        ops in proptest::collection::vec(op(), 1..150),
        per_certificate in 1..=4usize,
        per_listener in 2..=4usize,
        listener_count in 1..=3usize,
    ) {
        run(ops, limits(per_certificate, per_listener), listener_count, false)?;
    }
}
