//! One test per transition, including every rollback path. No AWS, no clock.

use super::*;

fn v(s: &str) -> ReleaseVersion {
    ReleaseVersion::parse(s).unwrap()
}

fn ok(state: &TenantState, event: TenantEvent) -> TenantState {
    state
        .apply(&event)
        .unwrap_or_else(|e| panic!("{} should accept {}: {e}", state.label(), event.name()))
}

fn failed_step(reason: &str) -> TenantEvent {
    TenantEvent::StepFailed {
        reason: reason.into(),
    }
}

/// Drives a state with StepSucceeded until it has no step, returning the labels seen.
fn run_to_rest(mut state: TenantState) -> (TenantState, Vec<String>) {
    let mut labels = vec![];
    while state.step().is_some() {
        labels.push(state.label());
        state = ok(&state, TenantEvent::StepSucceeded);
    }
    (state, labels)
}

fn active(release: &str) -> TenantState {
    TenantState::active(v(release), None)
}

#[test]
fn a_new_tenant_is_provisioned_through_every_step_to_active() {
    let start = ok(
        &TenantState::new_tenant(),
        TenantEvent::Provision { release: v("1.0.0") },
    );
    let (end, labels) = run_to_rest(start);
    assert_eq!(
        labels,
        [
            "Provisioning/CheckArtifact",
            "Provisioning/ProvisionInfra",
            "Provisioning/WriteConfig",
            "Provisioning/EnsureCertificates",
            "Provisioning/Deploy",
            "Provisioning/Verify",
        ]
    );
    assert_eq!(end, active("1.0.0"));
}

#[test]
fn a_new_tenant_accepts_only_provision() {
    let err = TenantState::new_tenant()
        .apply(&TenantEvent::Deprovision)
        .unwrap_err();
    assert_eq!(err.event, "Deprovision");
    assert!(err.to_string().contains("not been provisioned"), "{err}");
}

#[test]
fn a_provisioning_failure_stops_in_failed_and_retry_resumes_at_that_step() {
    let deploying = TenantState::provisioning(ProvisionStep::Deploy, v("1.0.0"));
    let failed = ok(&deploying, failed_step("helm timed out"));
    let TenantState::Failed { reason, release, .. } = &failed else {
        panic!("expected Failed, got {failed:?}")
    };
    assert!(
        reason.contains("provisioning 1.0.0 failed at Deploy: helm timed out"),
        "{reason}"
    );
    assert_eq!(release, &None);
    assert_eq!(ok(&failed, TenantEvent::Retry), deploying);
}

#[test]
fn a_tenant_that_failed_provisioning_cannot_be_rolled_back_or_restored() {
    let failed = ok(
        &TenantState::provisioning(ProvisionStep::ProvisionInfra, v("1.0.0")),
        failed_step("stack failed"),
    );
    assert!(failed.apply(&TenantEvent::Rollback).is_err());
    let err = failed
        .apply(&TenantEvent::Restore { snapshot: "s".into() })
        .unwrap_err();
    assert!(err.reason.contains("no release was ever deployed"), "{err}");
    assert_eq!(
        ok(&failed, TenantEvent::Deprovision),
        TenantState::deprovisioning(DeprovisionStep::FinalBackup)
    );
}

#[test]
fn an_upgrade_runs_every_step_and_lands_on_the_target() {
    let start = ok(&active("1.0.0"), TenantEvent::Upgrade { release: v("1.1.0") });
    let (end, labels) = run_to_rest(start);
    assert_eq!(
        labels,
        [
            "Upgrading/CheckArtifact",
            "Upgrading/Quiesce",
            "Upgrading/Backup",
            "Upgrading/UpdateInfra",
            "Upgrading/WriteConfig",
            "Upgrading/EnsureCertificates",
            "Upgrading/Deploy",
            "Upgrading/Verify",
            "Upgrading/Reopen",
        ]
    );
    assert_eq!(end, active("1.1.0"));
}

#[test]
fn upgrading_to_the_running_release_is_refused() {
    let err = active("1.0.0")
        .apply(&TenantEvent::Upgrade { release: v("1.0.0") })
        .unwrap_err();
    assert!(err.to_string().contains("already runs 1.0.0"), "{err}");
}

#[test]
fn upgrading_to_the_running_release_is_refused_and_points_to_reconcile() {
    let err = active("1.0.0")
        .apply(&TenantEvent::Upgrade { release: v("1.0.0") })
        .unwrap_err();
    assert!(err.to_string().contains("reconcile it"), "{err}");
}

#[test]
fn a_reconcile_runs_the_upgrade_steps_on_the_running_release() {
    let (end, labels) = run_to_rest(ok(&active("1.0.0"), TenantEvent::Reconcile));
    let upgrade: Vec<String> =
        run_to_rest(ok(&active("1.0.0"), TenantEvent::Upgrade { release: v("1.1.0") })).1;
    assert_eq!(labels, upgrade, "a reconcile takes the upgrade's steps");
    assert_eq!(end, active("1.0.0"));
}

#[test]
fn a_failed_reconcile_rolls_back_to_the_same_release_and_can_be_retried() {
    let deploying = TenantState::upgrading(UpgradeStep::Deploy, v("1.0.0"), v("1.0.0"));
    let rolling_back = ok(&deploying, failed_step("pods never ready"));
    assert!(
        matches!(&rolling_back, TenantState::RollingBack { previous, .. } if previous == &v("1.0.0")),
        "{rolling_back:?}"
    );
    let (end, _) = run_to_rest(rolling_back);
    assert_eq!(end, TenantState::active(v("1.0.0"), Some(v("1.0.0"))));
    let again = ok(&end, TenantEvent::Retry);
    assert_eq!(
        again,
        TenantState::upgrading(UpgradeStep::FIRST, v("1.0.0"), v("1.0.0"))
    );
}

#[test]
fn only_an_active_tenant_is_reconciled() {
    let busy = TenantState::upgrading(UpgradeStep::Deploy, v("1.0.0"), v("1.1.0"));
    assert!(busy.apply(&TenantEvent::Reconcile).is_err());
    assert!(TenantState::initial().apply(&TenantEvent::Reconcile).is_err());
    let failed = ok(
        &TenantState::provisioning(ProvisionStep::Deploy, v("1.0.0")),
        failed_step("boom"),
    );
    let err = failed.apply(&TenantEvent::Reconcile).unwrap_err();
    assert!(err.to_string().contains("then reconcile"), "{err}");
}

#[test]
fn a_failure_before_anything_changed_returns_to_active_without_rollback() {
    let upgrading = TenantState::upgrading(UpgradeStep::CheckArtifact, v("1.0.0"), v("9.9.9"));
    assert_eq!(
        ok(&upgrading, failed_step("image tag 9.9.9 not found")),
        TenantState::active(v("1.0.0"), Some(v("9.9.9")))
    );
}

#[test]
fn a_failure_in_maintenance_before_the_stack_changed_only_reopens() {
    for step in [UpgradeStep::Quiesce, UpgradeStep::Backup] {
        let upgrading = TenantState::upgrading(step, v("1.0.0"), v("1.1.0"));
        let rolling = ok(&upgrading, failed_step("snapshot quota exceeded"));
        let (end, labels) = run_to_rest(rolling);
        assert_eq!(labels, ["RollingBack/Reopen"], "{step:?}");
        assert_eq!(end, TenantState::active(v("1.0.0"), Some(v("1.1.0"))));
    }
}

#[test]
fn a_failure_after_the_stack_changed_rolls_back_the_stack_only() {
    for step in [
        UpgradeStep::UpdateInfra,
        UpgradeStep::WriteConfig,
        UpgradeStep::EnsureCertificates,
    ] {
        let upgrading = TenantState::upgrading(step, v("1.0.0"), v("1.1.0"));
        let next = ok(&upgrading, failed_step("boom"));
        let TenantState::RollingBack {
            step: first,
            abandoned,
            previous,
            cause,
        } = &next
        else {
            panic!("expected RollingBack, got {next:?}")
        };
        assert_eq!(*first, RollbackStep::RollbackInfra, "{step:?}");
        assert_eq!((abandoned, previous), (&v("1.1.0"), &v("1.0.0")));
        assert!(
            cause.contains(&format!("failed at {}: boom", step.kind())),
            "{cause}"
        );
    }
}

#[test]
fn a_failure_after_the_deploy_rolls_back_helm_then_the_stack() {
    for step in [UpgradeStep::Deploy, UpgradeStep::Verify, UpgradeStep::Reopen] {
        let upgrading = TenantState::upgrading(step, v("1.0.0"), v("1.1.0"));
        let rolling = ok(&upgrading, failed_step("unhealthy"));
        let (end, labels) = run_to_rest(rolling);
        assert_eq!(
            labels,
            [
                "RollingBack/RollbackDeploy",
                "RollingBack/RollbackInfra",
                "RollingBack/RestoreDatabase",
                "RollingBack/VerifyRollback",
                "RollingBack/Reopen"
            ]
        );
        assert_eq!(end, TenantState::active(v("1.0.0"), Some(v("1.1.0"))));
    }
}

#[test]
fn an_operator_can_abandon_an_upgrade_in_flight() {
    let early = TenantState::upgrading(UpgradeStep::CheckArtifact, v("1.0.0"), v("1.1.0"));
    assert_eq!(
        ok(&early, TenantEvent::Rollback),
        TenantState::active(v("1.0.0"), Some(v("1.1.0")))
    );
    let quiesced = TenantState::upgrading(UpgradeStep::Backup, v("1.0.0"), v("1.1.0"));
    assert!(matches!(
        ok(&quiesced, TenantEvent::Rollback),
        TenantState::RollingBack {
            step: RollbackStep::Reopen,
            ..
        }
    ));
    let late = TenantState::upgrading(UpgradeStep::Deploy, v("1.0.0"), v("1.1.0"));
    assert!(matches!(
        ok(&late, TenantEvent::Rollback),
        TenantState::RollingBack {
            step: RollbackStep::RollbackDeploy,
            ..
        }
    ));
}

#[test]
fn a_failed_rollback_stops_in_failed_with_both_reasons() {
    let upgrading = TenantState::upgrading(UpgradeStep::Verify, v("1.0.0"), v("1.1.0"));
    let rolling = ok(&upgrading, failed_step("health check returned 503"));
    let rolling = ok(&rolling, TenantEvent::StepSucceeded); // RollbackDeploy done
    let failed = ok(&rolling, failed_step("stack UPDATE_ROLLBACK_FAILED"));
    let TenantState::Failed { reason, release, .. } = &failed else {
        panic!("expected Failed, got {failed:?}")
    };
    assert!(
        reason.contains("rollback to 1.0.0 failed at RollbackInfra: stack UPDATE_ROLLBACK_FAILED"),
        "{reason}"
    );
    assert!(
        reason.contains("failed at Verify: health check returned 503"),
        "{reason}"
    );
    assert_eq!(release, &Some(v("1.0.0")));
    // Retry resumes at the failed rollback step; Rollback restarts the rollback.
    assert_eq!(ok(&failed, TenantEvent::Retry), rolling);
    assert!(matches!(
        ok(&failed, TenantEvent::Rollback),
        TenantState::RollingBack {
            step: RollbackStep::RollbackDeploy,
            ..
        }
    ));
}

#[test]
fn a_failed_verify_of_the_rollback_also_stops_in_failed() {
    let rolling = TenantState::rolling_back(
        RollbackStep::VerifyRollback,
        v("1.1.0"),
        v("1.0.0"),
        "cause".into(),
    );
    assert!(matches!(
        ok(&rolling, failed_step("503")),
        TenantState::Failed { .. }
    ));
    let deploy = TenantState::rolling_back(RollbackStep::RollbackDeploy, v("1.1.0"), v("1.0.0"), "c".into());
    assert!(matches!(
        ok(&deploy, failed_step("helm")),
        TenantState::Failed { .. }
    ));
}

#[test]
fn a_restore_awaiting_approval_stops_the_rollback_until_an_operator_restores() {
    let rolling = TenantState::rolling_back(
        RollbackStep::RestoreDatabase,
        v("1.1.0"),
        v("1.0.0"),
        "upgrade 1.0.0 -> 1.1.0 failed at Deploy: hook failed".into(),
    );
    let failed = ok(
        &rolling,
        failed_step("restoring snapshot snap-7 needs an operator's approval"),
    );
    let TenantState::Failed { reason, release, .. } = &failed else {
        panic!("expected Failed, got {failed:?}")
    };
    assert!(
        reason.contains("failed at RestoreDatabase: restoring snapshot snap-7"),
        "{reason}"
    );
    assert_eq!(release, &Some(v("1.0.0")));
    // The operator's restore is the approval: it restores, then verifies the old release.
    let restoring = ok(
        &failed,
        TenantEvent::Restore {
            snapshot: "snap-7".into(),
        },
    );
    let (end, labels) = run_to_rest(restoring);
    assert_eq!(
        labels,
        [
            "Restoring/RestoreDatabase",
            "Restoring/Verify",
            "Restoring/Reopen"
        ]
    );
    assert_eq!(end, TenantState::active(v("1.0.0"), None));
}

#[test]
fn restore_is_an_operator_action_from_active_or_failed() {
    let restoring = ok(
        &active("1.0.0"),
        TenantEvent::Restore {
            snapshot: "snap-1".into(),
        },
    );
    assert_eq!(
        restoring,
        TenantState::restoring(RestoreStep::RestoreDatabase, "snap-1".into(), v("1.0.0"))
    );
    let (end, labels) = run_to_rest(restoring.clone());
    assert_eq!(
        labels,
        [
            "Restoring/RestoreDatabase",
            "Restoring/Verify",
            "Restoring/Reopen"
        ]
    );
    assert_eq!(end, active("1.0.0"));

    let failed_rollback = ok(
        &TenantState::rolling_back(RollbackStep::RollbackInfra, v("1.1.0"), v("1.0.0"), "c".into()),
        failed_step("x"),
    );
    assert_eq!(
        ok(
            &failed_rollback,
            TenantEvent::Restore {
                snapshot: "snap-2".into()
            }
        ),
        TenantState::restoring(RestoreStep::RestoreDatabase, "snap-2".into(), v("1.0.0"))
    );
}

#[test]
fn a_failed_restore_can_be_retried() {
    let restoring = TenantState::restoring(RestoreStep::RestoreDatabase, "snap".into(), v("1.0.0"));
    let failed = ok(&restoring, failed_step("snapshot not found"));
    let TenantState::Failed { reason, .. } = &failed else {
        panic!()
    };
    assert!(
        reason.contains("restore from snapshot snap failed at RestoreDatabase"),
        "{reason}"
    );
    assert_eq!(ok(&failed, TenantEvent::Retry), restoring);
}

#[test]
fn deprovisioning_backs_up_then_removes_everything() {
    let start = ok(&active("1.0.0"), TenantEvent::Deprovision);
    let (end, labels) = run_to_rest(start);
    assert_eq!(
        labels,
        [
            "Deprovisioning/FinalBackup",
            "Deprovisioning/Uninstall",
            "Deprovisioning/ReleaseCertificates",
            "Deprovisioning/DeleteConfig",
            "Deprovisioning/DeleteStack",
        ]
    );
    assert_eq!(end, TenantState::deleted());
    assert!(end.is_terminal());
}

#[test]
fn a_deprovisioning_failure_can_be_retried_where_it_stopped() {
    let deleting = TenantState::deprovisioning(DeprovisionStep::DeleteStack);
    let failed = ok(&deleting, failed_step("DELETE_FAILED"));
    assert_eq!(ok(&failed, TenantEvent::Retry), deleting);
}

#[test]
fn a_failed_upgrade_can_be_retried_from_active() {
    let after = TenantState::active(v("1.0.0"), Some(v("1.1.0")));
    assert_eq!(
        ok(&after, TenantEvent::Retry),
        TenantState::upgrading(UpgradeStep::CheckArtifact, v("1.0.0"), v("1.1.0"))
    );
    assert!(active("1.0.0").apply(&TenantEvent::Retry).is_err());
}

#[test]
fn commands_during_a_step_are_refused_not_queued() {
    let busy = [
        TenantState::provisioning(ProvisionStep::Deploy, v("1.0.0")),
        TenantState::upgrading(UpgradeStep::Deploy, v("1.0.0"), v("1.1.0")),
        TenantState::rolling_back(RollbackStep::RollbackInfra, v("1.1.0"), v("1.0.0"), "c".into()),
        TenantState::restoring(RestoreStep::Verify, "s".into(), v("1.0.0")),
        TenantState::deprovisioning(DeprovisionStep::Uninstall),
    ];
    for state in busy {
        for event in [
            TenantEvent::Upgrade { release: v("2.0.0") },
            TenantEvent::Deprovision,
            TenantEvent::Retry,
            TenantEvent::Restore { snapshot: "s".into() },
            TenantEvent::Provision { release: v("2.0.0") },
        ] {
            let err = state.apply(&event).unwrap_err();
            assert!(
                err.reason.contains("a step is in progress"),
                "{}: {err}",
                state.label()
            );
        }
    }
}

#[test]
fn step_outcomes_for_a_state_without_a_step_are_refused() {
    let failed = ok(
        &TenantState::deprovisioning(DeprovisionStep::Uninstall),
        failed_step("x"),
    );
    for state in [active("1.0.0"), failed, TenantState::deleted()] {
        assert!(
            state.apply(&TenantEvent::StepSucceeded).is_err(),
            "{}",
            state.label()
        );
        assert!(state.apply(&failed_step("late")).is_err(), "{}", state.label());
    }
}

#[test]
fn a_deleted_tenant_accepts_nothing() {
    for event in [
        TenantEvent::Provision { release: v("1.0.0") },
        TenantEvent::Retry,
        TenantEvent::Deprovision,
    ] {
        let err = TenantState::deleted().apply(&event).unwrap_err();
        assert!(err.to_string().contains("deleted"), "{err}");
    }
}

#[test]
fn the_step_is_a_pure_function_of_the_state() {
    assert_eq!(
        TenantState::upgrading(UpgradeStep::Backup, v("1.0.0"), v("1.1.0")).step(),
        Some(StepKind::Backup)
    );
    assert_eq!(active("1.0.0").step(), None);
    assert_eq!(TenantState::new_tenant().step(), None);
}

/// One of every kind of event.
fn every_event() -> [TenantEvent; 8] {
    [
        TenantEvent::Provision { release: v("1.0.0") },
        TenantEvent::Upgrade { release: v("1.1.0") },
        TenantEvent::StepSucceeded,
        failed_step("x"),
        TenantEvent::Retry,
        TenantEvent::Rollback,
        TenantEvent::Restore { snapshot: "s".into() },
        TenantEvent::Deprovision,
    ]
}

/// Every state reachable from a new tenant by [`every_event`].
fn reachable_states() -> Vec<TenantState> {
    let mut frontier = vec![TenantState::new_tenant()];
    let mut seen = std::collections::HashSet::new();
    let mut reached = Vec::new();
    while let Some(state) = frontier.pop() {
        if !seen.insert(serde_json::to_string(&state).unwrap()) {
            continue;
        }
        frontier.extend(every_event().iter().filter_map(|event| state.apply(event).ok()));
        reached.push(state);
    }
    reached
}

#[test]
fn every_reachable_state_survives_a_round_trip_through_storage_unchanged() {
    // Restoring a persisted state must give the same state and the same next step, and
    // must not advance anything on its own.
    let states = reachable_states();
    for state in &states {
        let json = serde_json::to_string(state).unwrap();
        let restored: TenantState = serde_json::from_str(&json).unwrap();
        assert_eq!(&restored, state);
        assert_eq!(restored.step(), state.step());
        for event in &every_event() {
            assert_eq!(restored.apply(event), state.apply(event));
        }
    }
    assert!(states.len() > 20, "explored only {} states", states.len());
}

#[test]
fn the_state_names_are_exactly_the_names_of_the_reachable_states() {
    let names: std::collections::BTreeSet<&str> = reachable_states().iter().map(TenantState::name).collect();
    assert_eq!(names, TenantState::NAMES.into_iter().collect());
}

#[test]
fn the_stepping_names_are_exactly_the_names_of_the_states_with_a_step() {
    for state in reachable_states() {
        assert_eq!(
            TenantState::STEPPING.contains(&state.name()),
            state.step().is_some(),
            "{}",
            state.label()
        );
    }
}

#[test]
fn a_state_name_parses_only_if_it_is_one_of_the_names() {
    for name in TenantState::NAMES {
        assert_eq!(TenantState::parse_name(name), Ok(name));
    }
    let unknown = TenantState::parse_name("upgrading").unwrap_err().to_string();
    assert!(
        unknown.starts_with("unknown state \"upgrading\"; use one of New, Provisioning,"),
        "{unknown}"
    );
    let long = TenantState::parse_name(&"x".repeat(1000))
        .unwrap_err()
        .to_string();
    assert!(long.len() < 200, "the name given is cut short: {long}");
}

#[test]
fn the_committed_diagram_matches_the_machine() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/state/tenant-machine.mmd");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == mermaid_diagram(),
        "state/tenant-machine.mmd is out of date; regenerate it with \
         `cargo run -- state diagram > state/tenant-machine.mmd`"
    );
}

#[test]
fn a_phase_named_by_a_state_holds_the_step_it_is_at() {
    let mut phases = 0;
    for state in reachable_states() {
        match (state.step(), TenantState::phase_steps(state.name())) {
            (Some(step), Some(steps)) => {
                phases += 1;
                assert!(
                    steps.contains(&step),
                    "{} has no {step} in {steps:?}",
                    state.name()
                );
            }
            (None, None) => {}
            (step, steps) => panic!("{}: step {step:?} but phase {steps:?}", state.name()),
        }
    }
    assert!(phases > 10, "the walk reached only {phases} states with a step");
    assert_eq!(TenantState::phase_steps("NoSuchState"), None);
}
