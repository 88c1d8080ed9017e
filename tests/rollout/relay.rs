//! Relayed starts: a worker beside the controller starts the next tenant of a rollout
//! in the write that lands one, within the limits the controller counted, once per
//! tenant, and not after an operator paused the rollout.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tenant_orchestrator::domain::RolloutId;
use tenant_orchestrator::machine::StepKind;
use tenant_orchestrator::record::{Outcome, Phase};
use tenant_orchestrator::store::RolloutStore;

use crate::common::Call;
use crate::fault_proxy_support::{quick_store_retries, FaultProxy};
use crate::rollout_support::*;

const LONG: Duration = Duration::from_secs(60);
const LIMIT: usize = 3;

/// The most tenants whose steps overlapped at any moment, each counted from its first
/// step's start to its last step's end: no more than were in flight.
fn most_at_once(calls: &[Call]) -> usize {
    let mut spans: std::collections::HashMap<&str, (DateTime<Utc>, DateTime<Utc>)> = Default::default();
    for c in calls {
        let end = c.ended.unwrap_or(c.started);
        let span = spans.entry(c.tenant.as_str()).or_insert((c.started, end));
        span.0 = span.0.min(c.started);
        span.1 = span.1.max(end);
    }
    let mut edges: Vec<(DateTime<Utc>, i64)> =
        spans.values().flat_map(|(s, e)| [(*s, 1), (*e, -1)]).collect();
    // An end before a start at the same instant.
    edges.sort_by_key(|(at, delta)| (*at, *delta));
    let (mut now, mut most) = (0i64, 0i64);
    for (_, delta) in edges {
        now += delta;
        most = most.max(now);
    }
    most as usize
}

/// Starts rollout `id` to 2.0.0: a canary, then the rest, `LIMIT` at a time, no bake.
async fn start_two_waves(fleet: &Fleet, id: &str) {
    let spec = json!({
        "release": "2.0.0",
        "strategy": {
            "waves": ["1", "100%"], "max_in_flight_per_region": LIMIT,
            "bake_time": "0s", "bake_checks": 0,
            "approvals": {"after_canary": false, "between_regions": false}
        }
    });
    fleet.start(id, spec).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_landing_starts_the_next_tenant_in_its_write_within_the_limits_and_once() {
    // The process's recorder, as `serve` installs it, so `/metrics` counts the relays.
    let recorder = tenant_orchestrator::api::metrics::handle();
    let fleet_tenants = tenants("relay", "eu-west-1", 16);
    let mut fleet = Fleet::new(&fleet_tenants, "1.0.0").await;
    fleet.steps.delay(StepKind::Deploy, Duration::from_millis(150));
    fleet.start_in_process("controller-r", 2);
    start_two_waves(&fleet, "r-relay").await;
    let done = fleet
        .wait_for("r-relay", LONG, "completed", |r| r.phase.is_finished())
        .await;
    assert_eq!(done.phase, Phase::Completed, "{:#?}", done.events);

    let relayed: f64 = (fleet.store.write_units_by_operation().into_iter())
        .filter(|(operation, _)| operation.starts_with("relay transaction"))
        .map(|(_, units)| units)
        .sum();
    assert!(
        relayed > 0.0,
        "no tenant was started with a landing: {:?}",
        fleet.store.write_units_by_operation()
    );
    let counted = recorder.render();
    let started = (counted.lines())
        .find_map(|l| l.strip_prefix("tenantctl_relayed_starts_total{result=\"started\"} "))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(
        started.is_some_and(|n| n > 0 && n < fleet_tenants.len() as u64),
        "/metrics counts the relayed starts, fewer than the tenants (the canary is no relay's): {counted}"
    );
    for (id, _) in &fleet_tenants {
        assert_eq!(fleet.release_of(id).await, "Active/2.0.0");
        assert_eq!(
            fleet.upgrades_started(id, "2.0.0").await,
            1,
            "{id} started exactly once"
        );
        assert_eq!(
            fleet.steps.calls_of(id, StepKind::Deploy),
            1,
            "{id} deployed once"
        );
    }
    let members = fleet.members("r-relay").await;
    assert!(
        members
            .iter()
            .all(|m| m.outcome == Outcome::Succeeded && m.attempts == 1),
        "{members:#?}"
    );
    let calls = fleet.steps.calls();
    assert!(
        most_at_once(&calls) <= LIMIT,
        "{} tenants upgraded at once, over the limit of {LIMIT}",
        most_at_once(&calls)
    );
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_tenant_starts_by_relay_once_the_rollout_is_paused() {
    let fleet_tenants = tenants("hold", "eu-west-1", 16);
    let mut fleet = Fleet::new(&fleet_tenants, "1.0.0").await;
    fleet.steps.delay(StepKind::Deploy, Duration::from_millis(300));
    fleet.start_in_process("controller-p", 1);
    start_two_waves(&fleet, "r-hold").await;
    let id = RolloutId::parse("r-hold").unwrap();
    let started = |members: &[tenant_orchestrator::record::RolloutMember]| {
        members.iter().filter(|m| m.outcome != Outcome::Pending).count()
    };
    // Paused once the second wave is under way.
    let deadline = std::time::Instant::now() + LONG;
    while started(&fleet.store.members(&id, None).await.unwrap()) < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the second wave never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fleet.commands.pause(&id, "operator:test").await.unwrap();
    // A pass that read the rollout before the pause may still start what it decided
    // then, as without relays; what follows it may not.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let at_pause = started(&fleet.store.members(&id, None).await.unwrap());
    // The tenants in flight land (each Deploy takes 300 ms) and start nothing more.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let members = fleet.store.members(&id, None).await.unwrap();
    assert_eq!(
        started(&members),
        at_pause,
        "tenants started after the pause: {members:#?}"
    );
    assert!(
        !members.iter().any(|m| m.outcome == Outcome::InFlight),
        "the tenants in flight at the pause landed: {members:#?}"
    );
    assert!(
        started(&members) < fleet_tenants.len(),
        "the pause came too late to test anything"
    );

    fleet.commands.resume(&id, "operator:test").await.unwrap();
    let done = fleet
        .wait_for("r-hold", LONG, "completed", |r| r.phase.is_finished())
        .await;
    assert_eq!(done.phase, Phase::Completed, "{:#?}", done.events);
    for (tenant, _) in &fleet_tenants {
        assert_eq!(
            fleet.upgrades_started(tenant, "2.0.0").await,
            1,
            "{tenant} started exactly once"
        );
    }
    fleet.stop().await;
}

/// A landing tenant leased to worker-w, and the rollout whose one pending tenant its
/// landing may start: what the joint-write tests write, through any store on the table.
struct Joint {
    fleet: Fleet,
    rollout: tenant_orchestrator::record::RolloutRecord,
    rollout_lease: tenant_orchestrator::record::Lease,
    member: tenant_orchestrator::record::RolloutMember,
    landing: tenant_orchestrator::record::TenantRecord,
    next_id: tenant_orchestrator::domain::TenantId,
}

impl Joint {
    async fn new(name: &str) -> Joint {
        use tenant_orchestrator::machine::TenantState;
        use tenant_orchestrator::record::{TenantRecord, Transition};
        use tenant_orchestrator::store::TenantStore;
        let (fleet, rollout, next_id) = crate::controller::one_tenant_rollout(name, LONG, Utc::now()).await;
        let rollout_lease = rollout.lease.clone().unwrap();
        let mut member = fleet.members(&format!("r-{name}")).await.remove(0);
        member.outcome = Outcome::InFlight;
        member.attempts = 1;
        let landing = TenantRecord::new(
            crate::common::spec(&format!("{name}-landing"), "eu-west-1"),
            TenantState::Active {
                release: crate::common::release("2.0.0"),
                failed_upgrade: None,
            },
            Utc::now(),
        );
        let created = Transition::new(&TenantState::initial(), Self::provision(), Self::worker());
        fleet.store.create(&landing, created).await.unwrap();
        Joint {
            fleet,
            rollout,
            rollout_lease,
            member,
            landing,
            next_id,
        }
    }

    fn provision() -> tenant_orchestrator::record::Cause {
        tenant_orchestrator::record::Cause::Event(tenant_orchestrator::machine::TenantEvent::Provision {
            release: crate::common::release("2.0.0"),
        })
    }

    fn worker() -> tenant_orchestrator::record::Actor {
        tenant_orchestrator::record::Actor("worker-w".into())
    }

    /// Through `store`: the landing tenant, leased to worker-w, writes one more
    /// transition and gives its lease up, with the start of the next tenant as read in
    /// `read` (the drive the pass decided), leased to worker-w.
    async fn land_and_start(
        &self,
        store: &tenant_orchestrator::store::DynamoStore,
        read: tenant_orchestrator::record::TenantRecord,
    ) -> tenant_orchestrator::ports::Relayed {
        use tenant_orchestrator::machine::TenantEvent;
        use tenant_orchestrator::ports::LeaseGrant;
        use tenant_orchestrator::record::{Actor, Cause, Transition};
        use tenant_orchestrator::store::{PassedStep, TenantDrive, TenantStore};
        let leased = (self.fleet.store)
            .acquire_lease(self.landing.id(), "worker-w", LONG, Utc::now())
            .await
            .unwrap();
        let lease = leased.lease.clone().unwrap();
        let mut after = leased.clone();
        after.lease = None;
        let step = PassedStep {
            transition: Transition::new(&leased.state, Self::provision(), Self::worker()),
            after: after.clone(),
            at: Utc::now(),
        };
        let event = TenantEvent::Upgrade {
            release: crate::common::release("2.0.0"),
        };
        let mut next = read.clone();
        next.enter(read.state.apply(&event).unwrap(), Utc::now());
        let grant = LeaseGrant {
            owner: "worker-w".into(),
            ttl: LONG,
        };
        let drive = TenantDrive {
            rollout: &self.rollout,
            lease: &self.rollout_lease,
            tenant: &next,
            transition: Transition::new(&read.state, Cause::Event(event), Actor::rollout(&self.rollout.id)),
            member: &self.member,
            finished_holder: None,
            grant: Some(&grant),
        };
        (store.save_steps_and_drive(&after, &lease, vec![step], drive))
            .await
            .unwrap()
    }

    /// The landing was written: the landing tenant at `written`'s version, unleased.
    async fn assert_landed(&self, written: &tenant_orchestrator::ports::Relayed) {
        use tenant_orchestrator::store::TenantStore;
        assert!(written.landed.lease.is_none());
        let stored = self.fleet.store.load(self.landing.id()).await.unwrap();
        assert_eq!(
            (stored.version, stored.lease.is_none()),
            (written.landed.version, true),
            "the landing was written"
        );
    }

    /// The start was written: the next tenant upgrading as `started` says, leased to
    /// worker-w, its member in flight.
    async fn assert_started(&self, started: &tenant_orchestrator::record::TenantRecord) {
        use tenant_orchestrator::machine::TenantState;
        use tenant_orchestrator::store::TenantStore;
        let loaded = self.fleet.store.load(&self.next_id).await.unwrap();
        assert_eq!(loaded.version, started.version);
        assert_eq!(loaded.state.label(), started.state.label());
        assert!(
            matches!(loaded.state, TenantState::Upgrading { .. }),
            "{:?}",
            loaded.state
        );
        assert_eq!(loaded.lease.as_ref().map(|l| l.owner.as_str()), Some("worker-w"));
        let members = self.fleet.members(self.rollout.id.as_str()).await;
        assert_eq!(
            members[0].outcome,
            Outcome::InFlight,
            "the member's start is in the same write"
        );
    }
}

/// The joint write: the landing and the next tenant's start land together, the next
/// tenant leased to the landing's worker; when the start's part is refused (the next
/// tenant changed since the pass read it) the landing is written alone and nothing of
/// the start is.
#[tokio::test]
async fn a_landing_and_a_start_are_written_together_or_the_landing_alone() {
    use tenant_orchestrator::store::{TenantStore, WriteGuard};
    let joint = Joint::new("joint").await;
    let store = &joint.fleet.store;

    // Refused: the next tenant was written after the pass read it.
    let read = store.load(&joint.next_id).await.unwrap();
    let changed = store.save(&read, WriteGuard::Version, None).await.unwrap();
    let written = joint.land_and_start(store, read.clone()).await;
    assert!(written.next.is_none(), "the start was refused");
    joint.assert_landed(&written).await;
    let untouched = store.load(&joint.next_id).await.unwrap();
    assert_eq!(
        untouched.version, changed.version,
        "nothing of the start was written"
    );
    assert!(untouched.lease.is_none());

    // Written together: the next tenant upgrades, leased to the landing's worker.
    let written = joint.land_and_start(store, untouched).await;
    joint.assert_landed(&written).await;
    let started = written.next.expect("the start was written with the landing");
    joint.assert_started(&started).await;
}

/// The joint write's every answer lost: when it never reached DynamoDB, the landing
/// is written alone and nothing of the start is; when DynamoDB applied it, the
/// landing's own write finds it in place and the caller learns that the start was
/// written too, so its worker runs the next tenant at once instead of leaving it
/// leased to nobody at work until the lease runs out.
#[tokio::test]
async fn a_joint_write_whose_answers_were_lost_tells_whether_it_started_the_next_tenant() {
    use tenant_orchestrator::store::{DynamoStore, TenantStore};
    let recorder = tenant_orchestrator::api::metrics::handle();
    let joint = Joint::new("joint-lost").await;
    let proxy = FaultProxy::for_dynamodb(61).await;
    // Two attempts a call, so two faults lose every attempt of the joint write and
    // leave the landing's own write alone.
    let config = aws_config::load_from_env().await;
    let product = tenant_orchestrator::store::client(&config);
    let through_proxy = aws_sdk_dynamodb::Client::from_conf(
        (product.config().to_builder())
            .endpoint_url(proxy.url())
            .retry_config(quick_store_retries().with_max_attempts(2))
            .build(),
    );
    let proxied = DynamoStore::new(through_proxy, joint.fleet.store.table().to_owned());
    let rule = |fault| json!([{"fault": fault, "service": "dynamodb", "operation": "TransactWriteItems", "count": 2}]);

    // Never arrived: the connection is reset before DynamoDB sees the write.
    proxy.set_rules(rule("reset")).await;
    let read = joint.fleet.store.load(&joint.next_id).await.unwrap();
    let written = joint.land_and_start(&proxied, read.clone()).await;
    assert_eq!(
        proxy.injected("reset").await,
        2,
        "both attempts of the joint write were lost"
    );
    assert!(written.next.is_none(), "the start was not written");
    joint.assert_landed(&written).await;
    let untouched = joint.fleet.store.load(&joint.next_id).await.unwrap();
    assert_eq!(
        untouched.version, read.version,
        "nothing of the start was written"
    );

    // Applied, answers lost: the start is reported with the landing.
    proxy.set_rules(rule("drop_answer")).await;
    let written = joint.land_and_start(&proxied, untouched).await;
    assert_eq!(
        proxy.injected("drop_answer").await,
        2,
        "both answers of the joint write were lost"
    );
    joint.assert_landed(&written).await;
    let started = written
        .next
        .expect("the joint write landed, so the start is reported with the landing");
    joint.assert_started(&started).await;
    let counted = recorder.render();
    assert!(
        counted.contains("tenantctl_transitions_total{from=\"Active\",to=\"Upgrading\"} 1\n"),
        "/metrics counts the start once: {counted}"
    );
}
