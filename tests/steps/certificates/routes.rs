//! Each hostname's Route 53 record, on the local AWS: an alias A record to the ALB
//! written with its certificate, moved when the tenant's hostnames change, deleted
//! at deprovisioning; a record someone else made is never changed or deleted.

use std::time::{Duration, Instant};

use aws_sdk_route53::types::ChangeAction;
use tenant_orchestrator::app::{RolloutHold, SpecChange, TenantCommands};
use tenant_orchestrator::domain::{Hostname, TenantId};
use tenant_orchestrator::machine::{StepKind, TenantEvent, TenantState, UpgradeStep};
use tenant_orchestrator::record::{Actor, TenantRecord};
use tenant_orchestrator::step::{StepOutcome, StepRegistry};
use tenant_orchestrator::steps::certificates::{AwsCertificateCloud, CertificateCloud};
use tenant_orchestrator::store::TenantStore;
use tenant_orchestrator::worker::Worker;

use super::{config, names, Harness};
use crate::common::{fast_worker, fresh_store, release, ScriptedStep};

/// The tenant of `done` in Upgrading/EnsureCertificates with `hostnames`, as after a
/// spec change and an upgrade.
fn upgrading_with(done: &TenantRecord, hostnames: Vec<Hostname>) -> TenantRecord {
    let mut record = done.clone();
    record.spec.hostnames = hostnames;
    record.state = TenantState::Upgrading {
        step: UpgradeStep::EnsureCertificates,
        from: release("1.0.0"),
        to: release("1.1.0"),
    };
    record.attempt = 0;
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostname_records_are_written_at_provisioning_moved_with_the_hostnames_and_deleted_at_deprovisioning()
{
    let h = Harness::new(1, config(10, 5)).await;
    let spec = h.spec("acme", 2);
    let (kept, dropped) = (spec.hostnames[0].to_string(), spec.hostnames[1].to_string());
    let added = h.platform.hostname("acme-new");

    // Provisioning: both hostnames alias the ALB and are marked as acme's.
    let provisioned = h
        .run_to_done(h.record_at(spec, StepKind::EnsureCertificates))
        .await;
    for name in [&kept, &dropped] {
        assert_eq!(
            h.platform.address_record(name).await.as_deref(),
            Some(h.platform.load_balancer_dns.as_str()),
            "{name} aliases the ALB"
        );
        assert_eq!(
            h.platform.ownership_record(name).await.as_deref(),
            Some("\"tenant-orchestrator tenant=acme\""),
            "{name} is marked as acme's"
        );
    }
    assert_eq!(provisioned.facts.routed_hostnames.len(), 2);

    // A hostname change applied by an upgrade: the dropped name loses its record and
    // its place on the certificate, the added one gets both.
    h.cloud.unprotect(std::slice::from_ref(&dropped));
    let hostnames = vec![Hostname::parse(&kept).unwrap(), Hostname::parse(&added).unwrap()];
    let upgraded = h.run_to_done(upgrading_with(&provisioned, hostnames)).await;
    assert_eq!(
        h.platform.address_record(&dropped).await,
        None,
        "dropped name's record is gone"
    );
    assert_eq!(h.platform.ownership_record(&dropped).await, None);
    for name in [&kept, &added] {
        assert_eq!(
            h.platform.address_record(name).await.as_deref(),
            Some(h.platform.load_balancer_dns.as_str()),
            "{name} aliases the ALB"
        );
    }
    let in_use = h.in_use().await;
    for (arn, on_it) in &in_use {
        assert!(
            !on_it.contains(&dropped),
            "{arn} still carries the dropped {dropped}"
        );
    }
    assert_eq!(
        h.platform
            .uncovered(&[kept.clone(), added.clone()].into(), 5)
            .await,
        Vec::<String>::new()
    );
    assert_eq!(
        upgraded
            .facts
            .routed_hostnames
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>(),
        {
            let mut v = vec![kept.clone(), added.clone()];
            v.sort();
            v
        }
    );
    h.assert_no_leftovers(&in_use).await;

    // Deprovisioning: no record and no certificate is left.
    h.cloud.unprotect(&names(&upgraded));
    let mut leaving = h.record_at(upgraded.spec.clone(), StepKind::ReleaseCertificates);
    leaving.facts = upgraded.facts.clone();
    let released = h.run_to_done(leaving).await;
    for name in [&kept, &added, &dropped] {
        assert_eq!(
            h.platform.address_record(name).await,
            None,
            "{name} still has a record"
        );
        assert_eq!(h.platform.ownership_record(name).await, None);
    }
    assert!(released.facts.routed_hostnames.is_empty());
    assert!(h.in_use().await.is_empty(), "no certificate stays attached");
    assert_eq!(h.problems(), Vec::<String>::new());
    assert_eq!(h.cloud.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_a_record_someone_else_made_is_refused_and_never_deleted() {
    let h = Harness::new(1, config(10, 5)).await;

    // Provisioning onto a name that already has someone's A record fails, saying so,
    // and leaves the record as it was.
    let taken = h.spec("globex", 1);
    let taken_name = taken.hostnames[0].to_string();
    h.platform
        .change_plain_a_record(&taken_name, "192.0.2.10", ChangeAction::Upsert)
        .await;
    let mut record = h.record_at(taken, StepKind::EnsureCertificates);
    let reason = loop {
        match h.run_once(&record).await {
            StepOutcome::Failed {
                retryable: false,
                reason,
            } => break reason,
            StepOutcome::Pending {
                facts, poll_after, ..
            } => {
                record.facts = facts;
                tokio::time::sleep(poll_after).await;
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    };
    assert!(
        reason.contains(&taken_name)
            && reason.contains("did not make")
            && reason.contains("delete that record"),
        "the refusal names the hostname and what to do: {reason}"
    );
    assert_eq!(
        h.platform.address_record(&taken_name).await.as_deref(),
        Some("192.0.2.10")
    );
    assert_eq!(h.platform.ownership_record(&taken_name).await, None);

    // A tenant's name whose record someone replaced by their own: deprovisioning
    // leaves that record alone.
    let provisioned = h
        .run_to_done(h.record_at(h.spec("initech", 1), StepKind::EnsureCertificates))
        .await;
    let name = provisioned.spec.hostnames[0].to_string();
    h.platform.delete_records(&name).await;
    h.platform
        .change_plain_a_record(&name, "192.0.2.20", ChangeAction::Upsert)
        .await;
    h.cloud.unprotect(&names(&provisioned));
    let mut leaving = h.record_at(provisioned.spec.clone(), StepKind::ReleaseCertificates);
    leaving.facts = provisioned.facts.clone();
    h.run_to_done(leaving).await;
    assert_eq!(
        h.platform.address_record(&name).await.as_deref(),
        Some("192.0.2.20"),
        "the foreign record stays"
    );
}

#[tokio::test]
async fn a_delete_repeated_after_its_answer_was_lost_is_done() {
    let platform = super::Platform::build(1).await;
    let cloud = AwsCertificateCloud::new(platform.aws.clone());
    let (region, zone) = (&platform.region, platform.hosted_zone_id.as_str());
    let name = Hostname::parse(&platform.hostname("umbrella")).unwrap();
    let target = cloud
        .listener_alias_target(region, &platform.listeners[0])
        .await
        .unwrap();
    assert_eq!(target.dns_name, platform.load_balancer_dns);
    cloud
        .upsert_hostname_records(region, zone, &name, &target, "umbrella")
        .await
        .unwrap();
    let read = cloud.read_hostname_records(region, zone, &name).await.unwrap();
    assert_eq!(read.owner.as_deref(), Some("umbrella"));

    cloud
        .delete_hostname_records(region, zone, &name, &read)
        .await
        .unwrap();
    // The same DELETE again, as the SDK sends it when the first answer was lost:
    // Route 53 refuses it (nothing to delete), which is what the caller wanted.
    cloud
        .delete_hostname_records(region, zone, &name, &read)
        .await
        .unwrap();
    assert_eq!(platform.address_record(name.as_str()).await, None);
    assert_eq!(platform.ownership_record(name.as_str()).await, None);
}

/// Runs the worker until the tenant is in `state`.
async fn run_until(worker: &Worker, store: &dyn TenantStore, id: &TenantId, state: &str) -> TenantRecord {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        worker.run_once().await.unwrap();
        let r = store.load(id).await.unwrap();
        if r.state.name() == state {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "{id} did not reach {state}; it is {} (last error: {:?})",
            r.state.label(),
            r.last_error
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostname_change_applied_by_an_upgrade_moves_the_records_through_the_worker() {
    // The real certificate steps; test doubles for the others.
    let h = Harness::new(1, config(10, 5)).await;
    let store = fresh_store().await;
    let steps = StepRegistry::all(ScriptedStep::new())
        .with(StepKind::EnsureCertificates, h.step.clone())
        .with(StepKind::ReleaseCertificates, h.step.clone());
    let worker = Worker::new(store.clone(), steps, fast_worker("w1"));
    let commands = TenantCommands::new(store.clone());
    let op = Actor::operator("test");
    let spec = h.spec("hooli", 2);
    let id = spec.id.clone();
    let (kept, dropped) = (spec.hostnames[0].clone(), spec.hostnames[1].clone());
    let added = Hostname::parse(&h.platform.hostname("hooli-api")).unwrap();
    let lb = Some(h.platform.load_balancer_dns.clone());

    commands.create(spec, release("1.0.0"), &op).await.unwrap();
    run_until(&worker, store.as_ref(), &id, "Active").await;
    assert_eq!(h.platform.address_record(dropped.as_str()).await, lb);

    // PATCH of the hostnames, then the upgrade that applies them.
    let change = SpecChange {
        hostnames: Some(vec![kept.clone(), added.clone()]),
        ..SpecChange::default()
    };
    commands
        .update_spec(&id, &change, None, &op, RolloutHold::Respect)
        .await
        .unwrap();
    let upgrade = TenantEvent::Upgrade {
        release: release("1.1.0"),
    };
    commands.command(&id, upgrade, &op).await.unwrap();
    let r = run_until(&worker, store.as_ref(), &id, "Active").await;
    assert_eq!(h.platform.address_record(kept.as_str()).await, lb);
    assert_eq!(h.platform.address_record(added.as_str()).await, lb);
    assert_eq!(h.platform.address_record(dropped.as_str()).await, None);
    assert_eq!(r.facts.routed_hostnames, {
        let mut v = vec![kept.clone(), added.clone()];
        v.sort();
        v
    });
    let on_certificates: Vec<String> = h.in_use().await.into_values().flatten().collect();
    assert!(
        !on_certificates.contains(&dropped.to_string()),
        "the dropped hostname left its certificate with the upgrade: {on_certificates:?}"
    );

    commands
        .command(&id, TenantEvent::Deprovision, &op)
        .await
        .unwrap();
    run_until(&worker, store.as_ref(), &id, "Deleted").await;
    for name in [&kept, &added, &dropped] {
        assert_eq!(h.platform.address_record(name.as_str()).await, None, "{name}");
        assert_eq!(h.platform.ownership_record(name.as_str()).await, None, "{name}");
    }
}
