//! Backup and FinalBackup against moto's RDS.

use tenant_orchestrator::domain::TenantSpec;
use tenant_orchestrator::record::{TenantFacts, TenantRecord};
use tenant_orchestrator::steps::backup::{snapshot_identifier, BackupConfig, Purpose, SnapshotDatabase};

use crate::aws_support::*;

fn keep(n: usize) -> BackupConfig {
    BackupConfig {
        keep_snapshots: n,
        poll_seconds: 1,
    }
}

fn with_cluster(cluster: &str) -> TenantFacts {
    TenantFacts {
        stack_outputs: stack_outputs(cluster),
        ..TenantFacts::default()
    }
}

/// The tenant entering the Backup step of an upgrade to `to` with history event `seq`.
fn before_upgrade(spec: &TenantSpec, to: &str, seq: u64, facts: TenantFacts) -> TenantRecord {
    let mut r = record(spec, upgrading("1.0.0", to, 1), facts);
    r.event_seq = seq;
    r
}

#[tokio::test]
async fn a_backup_takes_one_tagged_snapshot_however_often_it_runs() {
    let cluster = create_cluster().await;
    let spec = tenant_spec();
    let step = SnapshotDatabase::before_upgrade(keep(5), aws().await);
    let mut tenant = before_upgrade(&spec, "1.1.0", 7, with_cluster(&cluster));
    let expected = snapshot_identifier(&spec, Purpose::PreUpgrade, Some(&version("1.1.0")), 7);

    let first = expect_done(run(&step, &tenant).await);
    // A crash before the outcome was saved: the step runs again on the old facts...
    let again = expect_done(run(&step, &tenant).await);
    // ...or after it was saved: it runs on its own facts.
    tenant.facts = first.facts.clone();
    let third = expect_done(run(&step, &tenant).await);

    assert_eq!(manual_snapshots(&cluster).await, vec![expected.clone()]);
    assert_eq!(first.facts.snapshots, vec![expected.clone()]);
    assert_eq!(again.facts, first.facts);
    assert_eq!(third.facts, first.facts, "no duplicate in facts.snapshots");
    assert!(
        first.summary.contains(&expected) && first.summary.contains("available"),
        "{}",
        first.summary
    );

    let snapshot = rds()
        .await
        .describe_db_cluster_snapshots()
        .db_cluster_snapshot_identifier(&expected)
        .send()
        .await
        .unwrap()
        .db_cluster_snapshots()[0]
        .clone();
    let tags: Vec<(&str, &str)> = snapshot
        .tag_list()
        .iter()
        .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()))
        .collect();
    for wanted in [
        ("tenant", spec.id.as_str()),
        ("environment", "test"),
        ("managed-by", "tenant-orchestrator"),
        ("purpose", "preupgrade"),
        ("release", "1.1.0"),
    ] {
        assert!(tags.contains(&wanted), "tag {wanted:?} missing from {tags:?}");
    }
}

#[tokio::test]
async fn retention_deletes_only_this_tenants_oldest_upgrade_snapshots() {
    let cluster = create_cluster().await;
    let spec = tenant_spec();
    let aws = aws().await;
    let step = SnapshotDatabase::before_upgrade(keep(2), aws.clone());
    // An operator's snapshot that the tenant's facts happen to list: never retention's.
    rds()
        .await
        .create_db_cluster_snapshot()
        .db_cluster_identifier(&cluster)
        .db_cluster_snapshot_identifier(unique("operator"))
        .send()
        .await
        .unwrap();
    let operator = manual_snapshots(&cluster).await[0].clone();
    let mut facts = with_cluster(&cluster);
    facts.snapshots.push(operator.clone());

    let mut taken = Vec::new();
    for (seq, to) in [(3, "1.1.0"), (9, "1.2.0"), (15, "1.3.0"), (21, "1.4.0")] {
        let tenant = before_upgrade(&spec, to, seq, facts.clone());
        facts = expect_done(run(&step, &tenant).await).facts;
        taken.push(snapshot_identifier(
            &spec,
            Purpose::PreUpgrade,
            Some(&version(to)),
            seq,
        ));
    }

    let mut expected = vec![operator.clone(), taken[2].clone(), taken[3].clone()];
    assert_eq!(facts.snapshots, expected, "oldest first, the deleted ones gone");
    expected.sort();
    assert_eq!(manual_snapshots(&cluster).await, expected);

    // The final backup is never retention's either, even with room for one snapshot.
    let mut leaving = record(&spec, deprovisioning("1.4.0"), facts.clone());
    leaving.event_seq = 30;
    let final_step = SnapshotDatabase::final_backup(keep(1), aws.clone());
    let after_final = expect_done(run(&final_step, &leaving).await).facts;
    let final_id = snapshot_identifier(&spec, Purpose::Final, None, 30);
    assert_eq!(
        after_final.snapshots,
        vec![operator, taken[3].clone(), final_id.clone()]
    );
    // Nor by the retention of a later backup (no real tenant upgrades after its final
    // backup; this checks the rule on its own).
    let step = SnapshotDatabase::before_upgrade(keep(1), aws);
    let tenant = before_upgrade(&spec, "1.5.0", 40, after_final);
    let last = expect_done(run(&step, &tenant).await).facts;
    assert!(last.snapshots.contains(&final_id), "{:?}", last.snapshots);
    assert!(manual_snapshots(&cluster).await.contains(&final_id));
}

#[tokio::test]
async fn a_final_backup_is_taken_once_and_names_no_release() {
    let cluster = create_cluster().await;
    let spec = tenant_spec();
    let step = SnapshotDatabase::final_backup(keep(5), aws().await);
    let mut tenant = record(&spec, deprovisioning("1.0.0"), with_cluster(&cluster));
    tenant.event_seq = 12;

    let first = expect_done(run(&step, &tenant).await);
    let second = expect_done(run(&step, &tenant).await);

    let id = format!("tenant-test-{}-final-12", spec.id);
    assert_eq!(manual_snapshots(&cluster).await, vec![id.clone()]);
    assert_eq!(first.facts.snapshots, vec![id]);
    assert_eq!(second.facts, first.facts);
}

#[tokio::test]
async fn without_a_cluster_a_final_backup_has_nothing_to_do_but_an_upgrade_stops() {
    let spec = tenant_spec();
    let aws = aws().await;
    let gone = unique("db-gone");
    for facts in [TenantFacts::default(), with_cluster(&gone)] {
        let leaving = record(&spec, deprovisioning("1.0.0"), facts.clone());
        let output = expect_done(run(&SnapshotDatabase::final_backup(keep(5), aws.clone()), &leaving).await);
        assert!(
            output.summary.starts_with("nothing to back up"),
            "{}",
            output.summary
        );
        assert!(output.facts.snapshots.is_empty());

        let upgrading = before_upgrade(&spec, "1.1.0", 4, facts);
        let reason = expect_final_failure(
            run(
                &SnapshotDatabase::before_upgrade(keep(5), aws.clone()),
                &upgrading,
            )
            .await,
        );
        for part in [
            "cannot back up",
            "upgrade was not started",
            "DatabaseClusterIdentifier",
        ] {
            assert!(reason.contains(part), "reason lacks {part:?}: {reason}");
        }
    }
}

#[tokio::test]
async fn a_snapshot_name_held_by_another_cluster_is_not_taken_for_the_backup() {
    let ours = create_cluster().await;
    let other = create_cluster().await;
    let spec = tenant_spec();
    let tenant = before_upgrade(&spec, "1.1.0", 5, with_cluster(&ours));
    let id = snapshot_identifier(&spec, Purpose::PreUpgrade, Some(&version("1.1.0")), 5);
    rds()
        .await
        .create_db_cluster_snapshot()
        .db_cluster_identifier(&other)
        .db_cluster_snapshot_identifier(&id)
        .send()
        .await
        .unwrap();

    let reason =
        expect_final_failure(run(&SnapshotDatabase::before_upgrade(keep(5), aws().await), &tenant).await);

    assert!(reason.contains(&id) && reason.contains(&other), "{reason}");
    assert!(manual_snapshots(&ours).await.is_empty());
}
