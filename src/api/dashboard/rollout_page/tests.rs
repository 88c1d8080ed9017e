use super::*;
use crate::api::dashboard::rollout_timeline::tests::{member, ran, record, t};
use crate::api::dashboard::rollout_timeline::timeline;
use crate::record::RollbackStatus;

const HOSTILE: &str = "<script>alert(1)</script>";

const VIEWER: Who = Who {
    name: "ops",
    logout_token: None,
};

/// The record of the timeline tests halted in wave 1, with a hostile reason.
fn halted() -> (RolloutRecord, Vec<RolloutMember>) {
    let mut record = record();
    record.waves[0].started_at = Some(t(0));
    record.waves[0].finished_at = Some(t(10));
    record.waves[0].status = WaveStatus::Succeeded;
    record.waves[1].started_at = Some(t(20));
    record.waves[1].status = WaveStatus::Breached;
    record.current_wave = 1;
    record.phase = Phase::Halted;
    record.halt_reason = Some(format!("wave 1 failed: {HOSTILE}"));
    record.log(t(25), "controller", "halted: wave 1 failed");
    let mut failed = ran(
        member(
            1,
            "bravo",
            Outcome::Failed {
                reason: HOSTILE.into(),
            },
            20,
        ),
        21,
        Some(25),
    );
    failed.rollback = Some(RollbackStatus::Done);
    let members = vec![ran(member(0, "alpha", Outcome::Succeeded, 0), 0, Some(5)), failed];
    (record, members)
}

fn html(record: &RolloutRecord, members: &[RolloutMember], forms: Option<&RolloutForms>) -> String {
    let timeline = timeline(record, members, t(30));
    let cx = PageContext {
        viewer: &VIEWER,
        forms,
        done: None,
    };
    render(record, members, &timeline, &cx).into_string()
}

#[test]
fn the_actions_offered_follow_the_rollouts_phase() {
    let (halted, members) = halted();
    assert_eq!(
        allowed_actions(&halted, &members),
        vec![RolloutAction::Resume, RolloutAction::Retry, RolloutAction::Abort]
    );
    let mut waiting = record();
    waiting.phase = Phase::Running;
    waiting.waves[0].status = WaveStatus::AwaitingApproval;
    assert_eq!(
        allowed_actions(&waiting, &[]),
        vec![RolloutAction::Approve, RolloutAction::Pause, RolloutAction::Abort]
    );
    waiting.phase = Phase::Paused;
    waiting.waves[0].status = WaveStatus::Deploying;
    assert_eq!(
        allowed_actions(&waiting, &[]),
        vec![RolloutAction::Resume, RolloutAction::Abort]
    );
    waiting.phase = Phase::Completed;
    assert!(allowed_actions(&waiting, &[]).is_empty());
}

#[test]
fn a_halted_rollout_is_drawn_and_tabled_with_its_text_escaped() {
    let (record, members) = halted();
    let page = html(&record, &members, None);
    assert!(!page.contains("<script>"), "{page}");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.contains("data-segment=\"halted\""), "{page}");
    assert!(page.contains("<g data-tenant=\"bravo\" data-outcome=\"rolled-back\"><title>bravo (eu-west-1) in wave 1: rolled back: &lt;script&gt;"));
    assert!(
        page.contains("<desc id=\"timeline-desc\">Rollout r-t to 1.1.0, halted, 2 waves."),
        "{page}"
    );
    assert!(
        page.contains("<td class=\"n bad\" data-budget=\"1\">1 / 0</td>"),
        "{page}"
    );
    assert!(!page.contains("<details"), "no forms without a deploy session");
    assert!(!page.contains("id=\"not-started\""));
}

#[test]
fn a_deploy_session_gets_each_action_behind_a_confirmation_with_its_token() {
    let (record, members) = halted();
    let forms = RolloutForms {
        session_id: "session-1",
    };
    let page = html(&record, &members, Some(&forms));
    for action in [RolloutAction::Resume, RolloutAction::Retry, RolloutAction::Abort] {
        let name = action.as_str();
        let form = format!(
            "<form class=\"action\" method=\"post\" action=\"/rollouts/r-t/{name}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"back\" value=\"rollout\">",
            forms.token(action, "r-t")
        );
        assert!(page.contains(&form), "{name}: {page}");
        assert!(page.contains(&format!("<details class=\"confirm\" data-action=\"{name}\">")));
    }
    assert!(page.contains(">Confirm: Retry wave 1's failed tenants</button>"));
    assert!(!page.contains("data-action=\"pause\""));
    assert!(!page.contains("data-action=\"approve\""));
}

#[test]
fn a_rollout_not_started_says_it_shows_the_estimate_only() {
    let record = record();
    let members = vec![
        member(0, "alpha", Outcome::Pending, 0),
        member(1, "bravo", Outcome::Pending, 60),
    ];
    let page = html(&record, &members, None);
    assert!(page.contains("id=\"not-started\""), "{page}");
    assert!(page.contains("class=\"planned\""));
    assert!(!page.contains("data-segment="), "nothing actual to draw: {page}");
    assert!(!page.contains("class=\"now\""));
}

#[test]
fn a_sampled_wave_offers_a_retry_when_its_tally_counts_failures_the_sample_lacks() {
    let (record, members) = crate::api::dashboard::rollout_timeline::tests::sampled();
    assert!(allowed_actions(&record, &members).contains(&RolloutAction::Retry));
    let mut clean = record.clone();
    if let Some(tally) = clean.waves[0].tally.as_mut() {
        tally.succeeded += tally.failed;
        tally.failed = 0;
    }
    assert!(!allowed_actions(&clean, &members).contains(&RolloutAction::Retry));
    let page = render(
        &record,
        &members,
        &timeline(&record, &members, t(30)),
        &PageContext {
            viewer: &VIEWER,
            forms: None,
            done: None,
        },
    )
    .into_string();
    assert!(page.contains("9997 more not shown"), "{page}");
    assert!(page.contains("/v1/rollouts/r-t/members?wave=0"), "{page}");
    assert!(page.contains("tenantctl rollout members r-t --wave 0"), "{page}");
}
