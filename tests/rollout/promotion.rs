//! Environment-scoped rollouts, the version policy advanced on completion, and
//! promotion from staging to production after a soak, on the local DynamoDB with
//! `ScriptedStep` and `HealthDouble`. The promotion pass is stepped with explicit
//! times, so the soak needs no waiting.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tenant_orchestrator::app::{PromotionCommands, RuleRequest};
use tenant_orchestrator::domain::{Environment, PromotionName, Region, RolloutId};
use tenant_orchestrator::machine::{StepKind, TenantEvent, TenantState};
use tenant_orchestrator::record::{
    Actor, Cause, Phase, PromotionRecord, PromotionState, TenantRecord, Transition,
};
use tenant_orchestrator::step::StepOutcome;
use tenant_orchestrator::store::{PolicyStore, PromotionStore, RolloutStore, TenantStore};

use crate::common::*;
use crate::rollout_support::*;

const LONG: Duration = Duration::from_secs(60);

fn quick_strategy() -> serde_json::Value {
    json!({
        "waves": ["100%"], "bake_time": "0s", "bake_checks": 0,
        "approvals": {"after_canary": false, "between_regions": false}
    })
}

/// Adds an Active tenant of `environment` on `on`.
async fn add_tenant(fleet: &Fleet, id: &str, environment: &str, on: &str) {
    let mut spec = spec(id, "eu-west-1");
    spec.environment = Environment::parse(environment).unwrap();
    let state = TenantState::Active {
        release: release(on),
        failed_upgrade: None,
    };
    fleet
        .store
        .create(
            &TenantRecord::new(spec, state, Utc::now()),
            Transition::new(
                &TenantState::initial(),
                Cause::Event(TenantEvent::Provision { release: release(on) }),
                Actor("test".into()),
            ),
        )
        .await
        .unwrap();
}

/// A fleet of two staging and two prod tenants on 1.0.0, with workers and a
/// controller (whose promotion pass the test steps itself).
async fn staging_and_prod() -> Fleet {
    let mut fleet = Fleet::new(&[], "1.0.0").await;
    for (id, env) in [
        ("stg-1", "staging"),
        ("stg-2", "staging"),
        ("prod-1", "prod"),
        ("prod-2", "prod"),
    ] {
        add_tenant(&fleet, id, env, "1.0.0").await;
    }
    fleet.start_workers(1);
    fleet.start_controller("controller-a");
    fleet
}

fn promotions(fleet: &Fleet) -> PromotionCommands {
    PromotionCommands::new(fleet.store.arc(), fleet.store.arc(), fleet.commands.clone())
        .with_probe(fleet.health.clone())
}

async fn set_rule(fleet: &Fleet, approval: bool) -> PromotionName {
    let name = PromotionName::parse("staging-to-prod").unwrap();
    promotions(fleet)
        .set(
            RuleRequest {
                name: name.clone(),
                from: Environment::parse("staging").unwrap(),
                to: Environment::parse("prod").unwrap(),
                soak: Duration::from_secs(1),
                approval,
                template: serde_json::from_value(json!({ "strategy": quick_strategy() })).unwrap(),
            },
            "operator:test",
        )
        .await
        .unwrap();
    name
}

/// Starts the staging rollout of 2.0.0 and waits for it to complete.
async fn complete_staging(fleet: &Fleet) {
    fleet
        .start(
            "r-stage",
            json!({"release": "2.0.0", "selector": {"environment": "staging"}, "strategy": quick_strategy()}),
        )
        .await;
    let done = fleet
        .wait_for("r-stage", LONG, "finished", |r| r.phase.is_finished())
        .await;
    assert_eq!(done.phase, Phase::Completed, "{:#?}", done.events);
}

async fn promotion_of(fleet: &Fleet, name: &PromotionName) -> PromotionRecord {
    fleet.store.load_promotion(name).await.unwrap()
}

/// Steps the promotion pass as of `at` until nothing changes; the last state.
async fn step_until_quiet(fleet: &Fleet, at: DateTime<Utc>) {
    let commands = promotions(fleet);
    for _ in 0..5 {
        if commands.step_at(at).await.unwrap().is_empty() {
            return;
        }
    }
    panic!("the promotion pass kept changing at {at}");
}

async fn prod_rollouts(fleet: &Fleet) -> Vec<RolloutId> {
    let page = fleet.store.list_rollouts(false, 100, None).await.unwrap();
    (page.items.into_iter())
        .map(|s| s.id)
        .filter(|id| id.as_str().ends_with("-to-prod"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_completed_rollout_advances_its_environments_policy_and_an_aborted_or_halted_one_does_not() {
    let mut fleet = Fleet::new(&tenants("eu", "eu-west-1", 2), "1.0.0").await;
    let test = Environment::parse("test").unwrap();
    let eu = Region::parse("eu-west-1").unwrap();
    let advancing = |release: &str| {
        json!({"release": release, "selector": {"environment": "test"},
            "on_complete": {"advance_policy": true}, "strategy": quick_strategy()})
    };

    // Aborted before any controller ran it: the policy stays as it was.
    fleet.start("r-aborted", advancing("1.5.0")).await;
    fleet
        .commands
        .abort(&RolloutId::parse("r-aborted").unwrap(), "operator:test")
        .await
        .unwrap();
    fleet.start_workers(1);
    fleet.start_controller("controller-a");
    fleet.start("r-advance", advancing("2.0.0")).await;
    let done = fleet
        .wait_for("r-advance", LONG, "finished", |r| r.phase.is_finished())
        .await;

    assert_eq!(done.phase, Phase::Completed, "{:#?}", done.events);
    let (policy, changes) = fleet.store.load_policy_audited().await.unwrap();
    assert_eq!(policy.default_for(&test, &eu), Some(&release("2.0.0")));
    assert_eq!(
        changes.len(),
        1,
        "only the completed rollout changed the policy: {changes:#?}"
    );
    assert_eq!(changes[0].actor, "rollout:r-advance");
    assert!(
        (done.events.iter()).any(|e| e.what == "policy advanced: test/eu-west-1 → release 2.0.0"),
        "{:#?}",
        done.events
    );
    assert_eq!(fleet.rollout("r-aborted").await.phase, Phase::Aborted);

    // Halted by a failed tenant: the policy stays on the last completed rollout's.
    fleet.steps.script(
        "eu-00",
        StepKind::Verify,
        vec![StepOutcome::fail("health check answered 503")],
    );
    let mut halting = advancing("3.0.0");
    halting["strategy"]["failure_budget"] = json!(0);
    fleet.start("r-halted", halting).await;
    let halted = fleet
        .wait_for("r-halted", LONG, "halted and settled", |r| r.is_settled())
        .await;
    assert_eq!(halted.phase, Phase::Halted, "{:#?}", halted.events);
    let (policy, changes) = fleet.store.load_policy_audited().await.unwrap();
    assert_eq!(policy.default_for(&test, &eu), Some(&release("2.0.0")));
    assert_eq!(changes.len(), 1, "{changes:#?}");
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_staging_rollout_is_promoted_to_prod_after_its_soak_and_started_once() {
    let fleet = staging_and_prod().await;
    let name = set_rule(&fleet, false).await;

    complete_staging(&fleet).await;

    assert_eq!(
        fleet.release_of("prod-1").await,
        "Active/1.0.0",
        "prod is not in the staging rollout"
    );
    assert_eq!(fleet.rollout("r-stage").await.not_selected, 2);
    let soaking = promotion_of(&fleet, &name).await;
    let promotion = soaking
        .promotion
        .clone()
        .expect("the completion recorded a promotion");
    assert_eq!(promotion.state, PromotionState::Soaking);
    assert_eq!(promotion.source.as_str(), "r-stage");
    assert_eq!(promotion.tenants.len(), 2);
    assert_eq!(
        promotion.soak_until,
        promotion.completed_at + chrono::Duration::seconds(1)
    );

    // During the soak: checks pass, nothing starts.
    step_until_quiet(&fleet, promotion.completed_at).await;
    assert!(fleet.health.checks() >= 2, "both staging tenants were checked");
    assert!(prod_rollouts(&fleet).await.is_empty());

    // After it: the last check, then the start of prod's rollout of the same release.
    let after = promotion.soak_until + chrono::Duration::seconds(1);
    let commands = promotions(&fleet);
    commands.step_at(after).await.unwrap();
    let ready = promotion_of(&fleet, &name).await;
    assert_eq!(ready.promotion.as_ref().unwrap().state, PromotionState::Soaking);
    commands.step_at(after).await.unwrap();
    let started = promotion_of(&fleet, &name).await;
    assert_eq!(started.promotion.as_ref().unwrap().state, PromotionState::Started);

    // A pass that crashed after starting the rollout and before saving runs again.
    let mut replay = ready.clone();
    replay.version = started.version;
    fleet.store.save_promotion(&replay).await.unwrap();
    commands.step_at(after).await.unwrap();
    step_until_quiet(&fleet, after + chrono::Duration::hours(1)).await;

    let ids = prod_rollouts(&fleet).await;
    assert_eq!(
        ids,
        vec![RolloutId::parse("r-stage-to-prod").unwrap()],
        "one prod rollout"
    );
    let prod = fleet.rollout("r-stage-to-prod").await;
    assert_eq!(prod.spec.release, Some(release("2.0.0")));
    assert_eq!(
        prod.spec.selector.environment,
        Some(Environment::parse("prod").unwrap())
    );
    assert_eq!(prod.created_by, "promotion:staging-to-prod");
    fleet
        .wait_for("r-stage-to-prod", LONG, "finished", |r| r.phase.is_finished())
        .await;
    assert_eq!(fleet.release_of("prod-1").await, "Active/2.0.0");
    assert_eq!(fleet.release_of("prod-2").await, "Active/2.0.0");
    assert_eq!(fleet.upgrades_started("prod-1", "2.0.0").await, 1);
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unhealthy_tenant_during_the_soak_blocks_the_promotion_until_cancelled() {
    let fleet = staging_and_prod().await;
    let name = set_rule(&fleet, false).await;
    complete_staging(&fleet).await;
    let promotion = promotion_of(&fleet, &name).await.promotion.unwrap();

    fleet.health.make_sick("stg-2");
    step_until_quiet(&fleet, promotion.completed_at).await;
    step_until_quiet(&fleet, promotion.soak_until + chrono::Duration::hours(1)).await;

    let blocked = promotion_of(&fleet, &name).await.promotion.unwrap();
    assert_eq!(blocked.state, PromotionState::Blocked);
    let block = blocked.blocked.expect("the block names the tenant");
    assert_eq!(block.tenant.as_str(), "stg-2");
    assert!(block.reason.contains("503"), "{}", block.reason);
    assert!(
        prod_rollouts(&fleet).await.is_empty(),
        "a blocked promotion starts nothing"
    );

    let cancelled = promotions(&fleet).cancel(&name, "operator:ana").await.unwrap();
    assert_eq!(cancelled.promotion.unwrap().state, PromotionState::Cancelled);
    let err = promotions(&fleet)
        .approve(&name, "operator:ana")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("only a promotion awaiting approval"),
        "{err}"
    );
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_approval_the_promotion_waits_after_the_soak_until_approved() {
    let fleet = staging_and_prod().await;
    let name = set_rule(&fleet, true).await;
    complete_staging(&fleet).await;
    let promotion = promotion_of(&fleet, &name).await.promotion.unwrap();
    let after = promotion.soak_until + chrono::Duration::seconds(1);

    step_until_quiet(&fleet, after).await;
    let waiting = promotion_of(&fleet, &name).await.promotion.unwrap();
    assert_eq!(waiting.state, PromotionState::AwaitingApproval);
    step_until_quiet(&fleet, after + chrono::Duration::days(1)).await;
    assert!(
        prod_rollouts(&fleet).await.is_empty(),
        "nothing starts before the approval"
    );

    let commands = promotions(&fleet);
    let approved = commands.approve(&name, "operator:ana").await.unwrap();
    assert_eq!(
        approved.promotion.unwrap().approved_by.as_deref(),
        Some("operator:ana")
    );
    step_until_quiet(&fleet, after + chrono::Duration::days(1)).await;

    assert_eq!(
        promotion_of(&fleet, &name).await.promotion.unwrap().state,
        PromotionState::Started
    );
    assert_eq!(prod_rollouts(&fleet).await.len(), 1);
    fleet.stop().await;
}

#[tokio::test]
async fn rules_are_listed_and_deleted_and_bad_rules_say_what_to_change() {
    let fleet = Fleet::new(&[], "1.0.0").await;
    let name = set_rule(&fleet, false).await;
    let listed = promotions(&fleet).list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].rule.template.selector.environment,
        Some(Environment::parse("prod").unwrap())
    );

    let same = RuleRequest {
        name: name.clone(),
        from: Environment::parse("prod").unwrap(),
        to: Environment::parse("prod").unwrap(),
        soak: Duration::from_secs(60),
        approval: false,
        template: serde_json::from_value(json!({})).unwrap(),
    };
    let err = promotions(&fleet).set(same, "operator:test").await.unwrap_err();
    assert!(err.to_string().contains("give a different target"), "{err}");

    promotions(&fleet).delete(&name).await.unwrap();
    assert!(promotions(&fleet).list().await.unwrap().is_empty());
    let err = promotions(&fleet).get(&name).await.unwrap_err();
    assert!(
        err.to_string().contains("promotion rule staging-to-prod"),
        "{err}"
    );
}

/// Every replica's controller runs the promotion pass: a round of checks is taken by
/// one pass (a conditional write of its claim) and run once, and a claim left by a
/// pass that died holds the others off only until it runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_round_of_promotion_checks_runs_on_one_replica_and_a_dead_passs_claim_runs_out() {
    let fleet = staging_and_prod().await;
    let name = set_rule(&fleet, false).await;
    complete_staging(&fleet).await;
    let soaking = promotion_of(&fleet, &name).await;
    let promotion = soaking.promotion.clone().unwrap();
    let tenants = promotion.tenants.len();
    let at = promotion.completed_at;

    let (a, b) = (promotions(&fleet), promotions(&fleet));
    let before = fleet.health.checks();
    let (ran_a, ran_b) = tokio::join!(a.step_at(at), b.step_at(at));
    let rounds = ran_a.unwrap().len() + ran_b.unwrap().len();
    assert_eq!(rounds, 1, "one replica recorded the round");
    assert_eq!(
        fleet.health.checks() - before,
        tenants,
        "each tenant checked once"
    );
    let checked = promotion_of(&fleet, &name).await;
    let after_round = checked.promotion.clone().unwrap();
    assert_eq!(after_round.checks_passed, 1);
    assert_eq!(
        after_round.claimed_until, None,
        "the claim is cleared with the round"
    );

    // A pass that claimed the next round and died: the round waits for its claim.
    let next = at + chrono::Duration::from_std(promotion.check_interval).unwrap();
    let mut dead = checked.clone();
    dead.promotion.as_mut().unwrap().claimed_until = Some(next + chrono::Duration::minutes(2));
    fleet.store.save_promotion(&dead).await.unwrap();
    let before = fleet.health.checks();
    assert!(a.step_at(next).await.unwrap().is_empty());
    assert_eq!(fleet.health.checks(), before, "held off by the live claim");
    let later = next + chrono::Duration::minutes(3);
    assert_eq!(
        a.step_at(later).await.unwrap().len(),
        1,
        "taken over once it ran out"
    );
    assert_eq!(fleet.health.checks() - before, tenants);
    assert!(promotion_of(&fleet, &name).await.promotion.unwrap().checks_passed >= 2);
    fleet.stop().await;
}
