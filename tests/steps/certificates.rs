//! EnsureCertificates and ReleaseCertificates on the local AWS (moto: ACM, Route 53,
//! ELBv2, CloudFormation; DynamoDB Local for the slots), run through the `Step` trait.
//! After every step run the test asks AWS itself whether every hostname of every
//! tenant whose certificates are ensured is on an ISSUED certificate attached to a
//! listener; `RecordingCloud` checks the same at every detach.

pub(crate) mod platform;
mod recording;
mod routes;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{fresh_store, release, tenant_id};
use crate::fault_proxy_support::FaultProxy;
use chrono::Utc;
use platform::Platform;
use recording::{Call, RecordingCloud};
use tenant_orchestrator::domain::{Environment, Group, Hostname, Region, TenantSpec, Tier};
use tenant_orchestrator::machine::{StepKind, TenantEvent, TenantState};
use tenant_orchestrator::record::slot::{Names, Slot};
use tenant_orchestrator::record::TenantRecord;
use tenant_orchestrator::step::{Step, StepContext, StepOutcome};
use tenant_orchestrator::steps::certificates::{CertificateConfig, CertificateStep};
use tenant_orchestrator::steps::StepsConfig;
use tenant_orchestrator::store::{CertificateSlotStore, DynamoStore, StoreError};

struct Harness {
    platform: Arc<Platform>,
    cloud: Arc<RecordingCloud>,
    step: Arc<dyn Step>,
    config: CertificateConfig,
    /// Problems seen by the checks after each step run.
    problems: Mutex<Vec<String>>,
    /// One check at a time, so checks do not pile up on the local AWS.
    check: tokio::sync::Mutex<()>,
}

fn config(names_per_certificate: usize, certificates_per_listener: usize) -> CertificateConfig {
    CertificateConfig {
        names_per_certificate,
        certificates_per_listener,
        poll_seconds: 1,
        gather_seconds: 1,
    }
}

impl Harness {
    async fn new(listeners: usize, certificates: CertificateConfig) -> Arc<Self> {
        let platform = Platform::build(listeners).await;
        let store = fresh_store().await;
        let cloud = RecordingCloud::new(platform.clone());
        let steps = StepsConfig {
            certificates: certificates.clone(),
            regions: BTreeMap::from([(platform.region.to_string(), platform.settings())]),
            ..StepsConfig::default()
        };
        let step = Arc::new(CertificateStep::new(Arc::new(steps), cloud.clone(), store.arc()));
        Arc::new(Self {
            platform,
            cloud,
            step,
            config: certificates,
            problems: Mutex::default(),
            check: tokio::sync::Mutex::new(()),
        })
    }

    fn spec(&self, id: &str, hostnames: usize) -> TenantSpec {
        let labels = [id.to_owned(), format!("{id}-www")];
        TenantSpec {
            id: tenant_id(id),
            region: self.platform.region.clone(),
            environment: Environment::parse("test").unwrap(),
            group: Group::default_group(),
            tier: Tier::Small,
            hostnames: labels[..hostnames]
                .iter()
                .map(|l| Hostname::parse(&self.platform.hostname(l)).unwrap())
                .collect(),
            pinned_release: None,
            maintenance: None,
            platform: None,
            pinned_platform: None,
        }
    }

    /// The tenant in the state whose step is `kind`, reached through the machine.
    fn record_at(&self, spec: TenantSpec, kind: StepKind) -> TenantRecord {
        let mut state = TenantState::initial()
            .apply(&TenantEvent::Provision {
                release: release("1.0.0"),
            })
            .unwrap();
        for _ in 0..20 {
            if state.step() == Some(kind) {
                return TenantRecord::new(spec, state, Utc::now());
            }
            state = match state.step() {
                Some(_) => state.apply(&TenantEvent::StepSucceeded).unwrap(),
                None => state.apply(&TenantEvent::Deprovision).unwrap(),
            };
        }
        panic!("no state runs {kind}");
    }

    /// One run of the step, then the check against AWS.
    async fn run_once(&self, record: &TenantRecord) -> StepOutcome {
        let ctx = StepContext {
            tenant: record,
            step: record.state.step().unwrap(),
            attempt: record.attempt,
            worker: "test-worker",
            fence: 1,
        };
        let outcome = self.step.run(ctx).await;
        self.check_coverage().await;
        outcome
    }

    /// Every protected hostname on an issued, attached certificate; no listener over
    /// its limit.
    async fn check_coverage(&self) {
        let _one_at_a_time = self.check.lock().await;
        let protected = self.cloud.protected();
        let problems = self
            .platform
            .uncovered(&protected, self.config.certificates_per_listener)
            .await;
        self.problems.lock().unwrap().extend(problems);
    }

    /// Runs the tenant's step until it is done, as the worker would (polls after
    /// Pending, retries retryable failures). Returns the record with the step's facts.
    async fn run_to_done(&self, mut record: TenantRecord) -> TenantRecord {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            assert!(
                Instant::now() < deadline,
                "{} did not finish in time",
                record.id()
            );
            match self.run_once(&record).await {
                StepOutcome::Done(output) => {
                    record.facts = output.facts;
                    if record.state.step() == Some(StepKind::EnsureCertificates) {
                        self.cloud.protect(names(&record));
                    }
                    return record;
                }
                StepOutcome::Pending {
                    poll_after, facts, ..
                } => {
                    record.facts = facts;
                    tokio::time::sleep(poll_after).await;
                }
                StepOutcome::Failed {
                    retryable: true,
                    reason,
                } => {
                    record.attempt += 1;
                    assert!(
                        record.attempt < 10,
                        "{}: too many retries, last: {reason}",
                        record.id()
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                StepOutcome::Failed { reason, .. } => panic!("{} failed: {reason}", record.id()),
            }
        }
    }

    /// Provisions tenants concurrently: `wave` tenants start together, a wave every
    /// `every`, so later tenants meet certificates in every phase of issuance.
    async fn provision(
        self: &Arc<Self>,
        specs: Vec<TenantSpec>,
        wave: usize,
        every: Duration,
    ) -> Vec<TenantRecord> {
        let mut tasks = Vec::new();
        for (i, spec) in specs.into_iter().enumerate() {
            let h = self.clone();
            let record = h.record_at(spec, StepKind::EnsureCertificates);
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(every * (i / wave) as u32).await;
                h.run_to_done(record).await
            }));
        }
        let mut done = Vec::new();
        for t in tasks {
            done.push(t.await.expect("tenant task"));
        }
        done
    }

    fn problems(&self) -> Vec<String> {
        self.problems.lock().unwrap().clone()
    }

    /// Certificates attached to the listeners now (ARN → names).
    async fn in_use(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.platform
            .attached_certificates()
            .await
            .into_iter()
            .map(|c| (c.arn, c.names))
            .collect()
    }

    /// Certificates requested during the test that are not attached must be gone,
    /// and each deleted certificate that had been attached was detached first.
    async fn assert_no_leftovers(&self, in_use: &BTreeMap<String, BTreeSet<String>>) {
        let calls = self.cloud.calls();
        let requested: BTreeSet<String> = self.cloud.requested().into_iter().map(|(_, arn)| arn).collect();
        for arn in requested.iter().filter(|a| !in_use.contains_key(*a)) {
            assert!(
                !self.platform.certificate_exists(arn).await,
                "{arn} is neither in use nor deleted"
            );
        }
        for (i, call) in calls.iter().enumerate() {
            let Call::Delete { arn } = call else { continue };
            let attached = calls[..i]
                .iter()
                .any(|c| matches!(c, Call::Attach { arn: a, .. } if a == arn));
            let detached = calls[..i]
                .iter()
                .any(|c| matches!(c, Call::Detach { arn: a, .. } if a == arn));
            assert!(!attached || detached, "{arn} deleted while still attached");
        }
    }
}

fn names(record: &TenantRecord) -> Vec<String> {
    record.spec.hostnames.iter().map(|h| h.to_string()).collect()
}

fn bound(names: usize, per_certificate: usize) -> usize {
    names.div_ceil(per_certificate) + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_five_tenants_share_few_certificates_spill_over_listeners_and_stay_covered() {
    let h = Harness::new(3, config(4, 5)).await;
    let specs: Vec<TenantSpec> = (0..25)
        .map(|i| h.spec(&format!("tenant{i:02}"), if i % 3 == 0 { 2 } else { 1 }))
        .collect();
    let hostnames: usize = specs.iter().map(|s| s.hostnames.len()).sum();

    let tenants = h.provision(specs, 5, Duration::from_millis(1500)).await;

    assert_eq!(h.problems(), Vec::<String>::new());
    assert_eq!(h.cloud.violations(), Vec::<String>::new());
    let in_use = h.in_use().await;
    assert!(
        in_use.len() <= bound(hostnames, 4),
        "{} certificates for {hostnames} hostnames",
        in_use.len()
    );
    let listeners_used: BTreeSet<String> = h
        .platform
        .attached_certificates()
        .await
        .into_iter()
        .map(|c| c.listener)
        .collect();
    assert_eq!(
        listeners_used.len(),
        3,
        "at most 4 certificates per listener: all three are needed"
    );
    // Facts name the certificates that covered the tenant when its step finished
    // (shared certificates are replaced as other tenants join later).
    let requested: BTreeMap<String, Vec<String>> = h
        .cloud
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Request { arn, names, .. } => Some((arn, names)),
            _ => None,
        })
        .collect();
    for t in &tenants {
        assert!(
            !t.facts.certificates.is_empty(),
            "{} has no certificates in its facts",
            t.id()
        );
        for name in names(t) {
            assert!(
                t.facts
                    .certificates
                    .iter()
                    .any(|arn| requested.get(arn).is_some_and(|n| n.contains(&name))),
                "{name} is not on a certificate recorded in {}'s facts",
                t.id()
            );
        }
    }
    let records = h.platform.cname_records().await;
    for t in &tenants {
        for name in names(t) {
            assert!(
                records.iter().any(|r| r.ends_with(&format!(".{name}."))),
                "no validation record for {name}"
            );
        }
    }
    let issuances = h.cloud.requested().len();
    assert!(
        issuances <= hostnames,
        "{issuances} requests for {hostnames} hostnames"
    );
    h.assert_no_leftovers(&in_use).await;
    eprintln!(
        "{issuances} certificates requested; {} in use for {hostnames} hostnames",
        in_use.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn released_tenants_leave_their_certificates_and_the_others_stay_covered() {
    let h = Harness::new(2, config(3, 5)).await;
    let specs: Vec<TenantSpec> = (0..10)
        .map(|i| h.spec(&format!("tenant{i:02}"), 1 + i % 2))
        .collect();
    let tenants = h.provision(specs, 10, Duration::ZERO).await;
    let leaving: Vec<TenantRecord> = tenants
        .iter()
        .filter(|t| [0, 3, 4, 7, 8].contains(&t.id().as_str()[6..].parse::<usize>().unwrap()))
        .cloned()
        .collect();
    let leaving_names: BTreeSet<String> = leaving.iter().flat_map(names).collect();
    for t in &leaving {
        h.cloud.unprotect(&names(t));
    }

    // Five tenants leave while three new ones arrive.
    let mut releases = Vec::new();
    for t in leaving {
        let h = h.clone();
        let mut record = h.record_at(t.spec.clone(), StepKind::ReleaseCertificates);
        record.facts = t.facts.clone();
        releases.push(tokio::spawn(async move { h.run_to_done(record).await }));
    }
    let arriving: Vec<TenantSpec> = (10..13).map(|i| h.spec(&format!("tenant{i:02}"), 2)).collect();
    let arrived = h.provision(arriving, 3, Duration::ZERO).await;
    for t in releases {
        let released = t.await.unwrap();
        assert!(
            released.facts.certificates.is_empty(),
            "released tenant keeps certificates"
        );
    }

    assert_eq!(h.problems(), Vec::<String>::new());
    assert_eq!(h.cloud.violations(), Vec::<String>::new());
    let in_use = h.in_use().await;
    for (arn, on_it) in &in_use {
        let gone: Vec<&String> = on_it.intersection(&leaving_names).collect();
        assert!(gone.is_empty(), "{arn} still carries released names {gone:?}");
    }
    let staying: BTreeSet<String> = tenants
        .iter()
        .chain(&arrived)
        .flat_map(names)
        .filter(|n| !leaving_names.contains(n))
        .collect();
    assert_eq!(h.platform.uncovered(&staying, 5).await, Vec::<String>::new());
    assert!(
        in_use.len() <= bound(staying.len(), 3),
        "{} certificates for {} hostnames",
        in_use.len(),
        staying.len()
    );
    let detached = h
        .cloud
        .calls()
        .iter()
        .filter(|c| matches!(c, Call::Detach { .. }))
        .count();
    assert!(detached > 0, "releasing names replaces certificates");
    h.assert_no_leftovers(&in_use).await;
    eprintln!(
        "{} certificates requested; {} in use for {} hostnames",
        h.cloud.requested().len(),
        in_use.len(),
        staying.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_the_step_again_requests_no_second_certificate() {
    let h = Harness::new(1, config(10, 25)).await;
    let record = h.record_at(h.spec("acme", 2), StepKind::EnsureCertificates);
    let first = h.run_to_done(record.clone()).await;
    assert_eq!(h.cloud.requested().len(), 1);
    assert_eq!(first.facts.certificates.len(), 1);

    let again = h.run_to_done(record).await;
    assert_eq!(h.cloud.requested().len(), 1, "a covered tenant causes no request");
    assert_eq!(again.facts.certificates, first.facts.certificates);
    assert_eq!(h.problems(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_response_was_lost_is_repeated_with_the_same_token() {
    let h = Harness::new(1, config(10, 25)).await;
    h.cloud.lose_request_responses(1);
    let record = h.record_at(h.spec("acme", 1), StepKind::EnsureCertificates);
    let done = h.run_to_done(record).await;

    let requested = h.cloud.requested();
    assert_eq!(requested.len(), 2, "the request was repeated");
    assert_eq!(requested[0], requested[1], "same token, same certificate");
    assert_eq!(done.facts.certificates, vec![requested[0].1.clone()]);
    assert_eq!(h.in_use().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_of_the_same_step_at_once_request_one_certificate() {
    let h = Harness::new(1, config(10, 25)).await;
    let record = h.record_at(h.spec("acme", 2), StepKind::EnsureCertificates);
    let (a, b) = tokio::join!(h.run_to_done(record.clone()), h.run_to_done(record));
    let arns: BTreeSet<String> = h.cloud.requested().into_iter().map(|(_, arn)| arn).collect();
    assert_eq!(
        arns.len(),
        1,
        "one certificate however often it was asked for: {:#?}",
        h.cloud.calls()
    );
    assert_eq!(a.facts.certificates, b.facts.certificates);
    let attaches = h
        .cloud
        .calls()
        .iter()
        .filter(|c| matches!(c, Call::Attach { .. }))
        .count();
    assert!(attaches >= 1);
    assert_eq!(h.in_use().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_without_room_fails_with_advice_to_add_a_listener() {
    // One listener with two places: one certificate, one place kept for replacements.
    let h = Harness::new(1, config(1, 2)).await;
    h.run_to_done(h.record_at(h.spec("first", 1), StepKind::EnsureCertificates))
        .await;
    let second = h.record_at(h.spec("second", 1), StepKind::EnsureCertificates);
    match h.run_once(&second).await {
        StepOutcome::Failed {
            retryable: false,
            reason,
        } => assert!(reason.contains("add a listener"), "{reason}"),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unconfigured_region_fails_without_retry() {
    let store = fresh_store().await;
    let platform = Platform::build(1).await;
    let cloud = RecordingCloud::new(platform.clone());
    let step = CertificateStep::new(Arc::new(StepsConfig::default()), cloud.clone(), store.arc());
    let h = Harness {
        platform,
        cloud,
        step: Arc::new(step),
        config: CertificateConfig::default(),
        problems: Mutex::default(),
        check: tokio::sync::Mutex::new(()),
    };
    let record = h.record_at(h.spec("acme", 1), StepKind::EnsureCertificates);
    match h.run_once(&record).await {
        StepOutcome::Failed {
            retryable: false,
            reason,
        } => assert!(reason.contains("is not configured"), "{reason}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(h.cloud.calls().is_empty());
}

/// A slot of one name on a made-up listener, not yet stored.
fn new_slot(listener: &str) -> Slot {
    let names: Names = [(
        Hostname::parse("acme.slots.example.test").unwrap(),
        tenant_id("acme"),
    )]
    .into();
    Slot::open(
        Region::parse("us-east-1").unwrap(),
        1,
        listener.to_owned(),
        names,
        Utc::now(),
    )
}

/// DynamoDB applies a slot write but its answer is lost; the SDK sends it again and the
/// version condition refuses it. The slot holds what was written: that is success, not
/// a conflict that makes the step start over.
#[tokio::test]
async fn slot_writes_whose_answers_were_lost_are_found_applied() {
    let proxy = FaultProxy::for_dynamodb(5).await;
    let store = fresh_store().await;
    let through_proxy = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&aws_config::load_from_env().await)
            .endpoint_url(proxy.url())
            .build(),
    );
    let table = DynamoStore::new(through_proxy, store.table());
    let mut slot = new_slot("arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/a/1/1");
    let lose = |operation: &str| serde_json::json!([{"fault": "drop_answer", "service": "dynamodb", "operation": operation, "count": 1}]);

    proxy.set_rules(lose("PutItem")).await;
    table.save_slot(&slot).await.expect("a new slot, created once");
    slot.version = 1;
    slot.generation = 2;
    table.save_slot(&slot).await.expect("progress, written once");
    slot.version = 2;
    proxy.set_rules(lose("DeleteItem")).await;
    table.remove_slot(&slot).await.expect("a slot deleted once");

    assert_eq!(proxy.injected("drop_answer").await, 2, "both answers were lost");
    let left = table.load_slots(&slot.region).await.unwrap();
    assert!(left.slots.is_empty(), "{:?}", left.slots);
}

/// What the lost-answer check must not hide: a slot that holds another write.
#[tokio::test]
async fn a_slot_holding_another_write_is_still_a_conflict() {
    let store = fresh_store().await;
    let table = store.arc();
    let mut ours = new_slot("arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/a/1/1");
    let theirs = new_slot("arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/a/1/2");
    table.save_slot(&theirs).await.unwrap();

    let created = table.save_slot(&ours).await;
    ours.version = 1;
    let removed = table
        .remove_slot(&Slot {
            version: 7,
            ..ours.clone()
        })
        .await;

    assert!(matches!(created, Err(StoreError::Conflict { .. })), "{created:?}");
    assert!(matches!(removed, Err(StoreError::Conflict { .. })), "{removed:?}");
    let stored = table.load_slots(&ours.region).await.unwrap();
    assert_eq!(stored.slots.len(), 1);
    assert_eq!(stored.slots[0].listener_arn, theirs.listener_arn);
}
