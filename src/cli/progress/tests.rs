use super::*;

/// Everything `f` writes through a reporter in `mode`.
fn written(mode: Mode, f: impl FnOnce(&mut Progress<&mut Vec<u8>>)) -> String {
    let mut buf = Vec::new();
    {
        let mut progress = Progress::new(mode, &mut buf);
        f(&mut progress);
    }
    String::from_utf8(buf).unwrap()
}

#[test]
fn azure_is_chosen_by_tf_build_in_any_case() {
    for value in ["True", "true", "TRUE", " True "] {
        assert_eq!(Mode::detect(None, Some(value), false), Mode::Azure, "{value:?}");
        assert_eq!(Mode::detect(None, Some(value), true), Mode::Azure, "{value:?}");
    }
}

#[test]
fn without_azure_a_terminal_gets_a_bar_and_anything_else_plain_lines() {
    assert_eq!(Mode::detect(None, None, true), Mode::Terminal);
    assert_eq!(Mode::detect(None, None, false), Mode::Plain);
    assert_eq!(Mode::detect(None, Some("False"), true), Mode::Terminal);
    assert_eq!(Mode::detect(None, Some(""), false), Mode::Plain);
    assert_eq!(Mode::detect(None, Some("1"), false), Mode::Plain);
}

#[test]
fn tenantctl_progress_overrides_detection_and_an_unknown_value_is_ignored() {
    assert_eq!(Mode::detect(Some("plain"), Some("True"), true), Mode::Plain);
    assert_eq!(Mode::detect(Some("Azure"), None, false), Mode::Azure);
    assert_eq!(Mode::detect(Some("bar"), None, false), Mode::Terminal);
    assert_eq!(Mode::detect(Some("fancy"), Some("True"), false), Mode::Azure);
}

#[test]
fn messages_escape_percent_first_then_line_breaks() {
    assert_eq!(escape_data("100% done"), "100%AZP25 done");
    assert_eq!(escape_data("a\r\nb"), "a%0D%0Ab");
    // An already escaped-looking sequence is escaped again, so it reads back literally.
    assert_eq!(escape_data("%0A"), "%AZP250A");
    // `;` and `]` end nothing in a message.
    assert_eq!(escape_data("x;y]z"), "x;y]z");
}

#[test]
fn properties_also_escape_semicolon_and_closing_bracket() {
    assert_eq!(escape_property("a;b]c"), "a%3Bb%5Dc");
    assert_eq!(escape_property("50%;\n]"), "50%AZP25%3B%0A%5D");
}

#[test]
fn vso_commands_are_formatted_exactly() {
    assert_eq!(
        vso_command(
            "task.setprogress",
            &[("value", "42")],
            "3/7 acme Upgrading/Deploy"
        ),
        "##vso[task.setprogress value=42;]3/7 acme Upgrading/Deploy"
    );
    assert_eq!(
        vso_command("task.logissue", &[("type", "error")], "line 1\nline 2: 5% [x]"),
        "##vso[task.logissue type=error;]line 1%0Aline 2: 5%AZP25 [x]"
    );
    assert_eq!(
        vso_command("task.complete", &[("result", "Failed")], ""),
        "##vso[task.complete result=Failed;]"
    );
    assert_eq!(
        vso_command(
            "task.logissue",
            &[("type", "warning"), ("sourcepath", "a;b]")],
            "w"
        ),
        "##vso[task.logissue type=warning;sourcepath=a%3Bb%5D;]w"
    );
}

#[test]
fn an_azure_wait_that_fails_writes_group_progress_issues_and_result() {
    let out = written(Mode::Azure, |p| {
        p.group("Waiting for acme to be Active");
        p.update(0, 6, "acme Provisioning/CheckArtifact");
        p.update(0, 6, "acme Provisioning/CheckArtifact");
        p.update(3, 6, "acme Provisioning/EnsureCertificates");
        p.warn("acme: certificate still pending; 50% of checks\nretrying");
        p.error("acme is Failed: verify; got 503");
        p.finish(Outcome::Failed, "not Active: acme");
    });
    assert_eq!(
        out,
        "##[group]Waiting for acme to be Active\n\
         ##vso[task.setprogress value=0;]0/6 acme Provisioning/CheckArtifact\n\
         ##vso[task.setprogress value=50;]3/6 acme Provisioning/EnsureCertificates\n\
         ##vso[task.logissue type=warning;]acme: certificate still pending; 50%AZP25 of checks%0Aretrying\n\
         ##vso[task.logissue type=error;]acme is Failed: verify; got 503\n\
         ##[endgroup]\n\
         ##vso[task.complete result=Failed;]not Active: acme\n"
    );
}

#[test]
fn an_azure_success_closes_the_group_and_leaves_the_result_to_the_exit_code() {
    let out = written(Mode::Azure, |p| {
        p.group("first");
        p.group("second\nline");
        p.update(7, 7, "all Active");
        p.finish(Outcome::Succeeded, "acme is Active");
    });
    assert_eq!(
        out,
        "##[group]first\n##[endgroup]\n##[group]second line\n\
         ##vso[task.setprogress value=100;]7/7 all Active\n##[endgroup]\n"
    );
    let issues = written(Mode::Azure, |p| {
        p.finish(Outcome::SucceededWithIssues, "2 skipped")
    });
    assert_eq!(
        issues,
        "##vso[task.complete result=SucceededWithIssues;]2 skipped\n"
    );
}

#[test]
fn percent_is_whole_and_bounded() {
    assert_eq!(percent(0, 6), 0);
    assert_eq!(percent(1, 3), 33);
    assert_eq!(percent(6, 6), 100);
    assert_eq!(percent(9, 6), 100);
    assert_eq!(percent(0, 0), 100);
}

#[test]
fn plain_lines_appear_only_when_something_changes() {
    let out = written(Mode::Plain, |p| {
        p.group("Waiting for acme");
        p.update(1, 6, "acme Provisioning/ProvisionInfra");
        p.update(1, 6, "acme Provisioning/ProvisionInfra");
        p.update(2, 6, "acme Provisioning/WriteConfig");
        p.warn("slow");
    });
    assert_eq!(
        out,
        "==> Waiting for acme\n[1/6] acme Provisioning/ProvisionInfra\n\
         [2/6] acme Provisioning/WriteConfig\nwarning: slow\n"
    );
}

/// Reports through a terminal-mode bar drawn on a `cols`-wide in-memory terminal; `f`
/// gets the terminal too, to read what it shows at any moment. Returns the screen after
/// the reporter is dropped.
fn on_terminal(cols: u16, f: impl FnOnce(&mut Progress<&mut Vec<u8>>, &indicatif::InMemoryTerm)) -> String {
    let term = indicatif::InMemoryTerm::new(10, cols);
    let mut unused = Vec::new();
    {
        let target = indicatif::ProgressDrawTarget::term_like(Box::new(term.clone()));
        let mut progress = Progress::drawing_on(Mode::Terminal, &mut unused, target);
        f(&mut progress, &term);
    }
    assert!(unused.is_empty(), "the terminal mode writes through its bar only");
    term.contents()
}

#[test]
fn the_terminal_bar_draws_in_place_with_messages_above_it() {
    let mut during = String::new();
    let after = on_terminal(80, |p, term| {
        p.update(3, 6, "acme Provisioning/EnsureCertificates");
        p.update(4, 6, "acme Provisioning/DeployRelease");
        p.error("boom");
        during = term.contents();
        p.finish(Outcome::Failed, "not Active");
    });
    let lines: Vec<&str> = during.lines().collect();
    assert_eq!(lines.len(), 2, "one message and one bar: {during}");
    assert_eq!(lines[0], "error: boom", "{during}");
    assert!(
        lines[1].starts_with("[################--------] 4/6")
            && lines[1].ends_with("acme Provisioning/DeployRelease"),
        "the bar is redrawn below the message: {during}"
    );
    assert_eq!(
        after.lines().last(),
        Some("failed after 0s: not Active"),
        "{after}"
    );
    assert!(
        !after.contains("[####"),
        "the bar is cleared when the wait ends: {after}"
    );
}

#[test]
fn the_terminal_bar_fits_the_width() {
    let mut shown = String::new();
    on_terminal(60, |p, term| {
        p.update(1, 2, &"x".repeat(500));
        shown = term.contents();
    });
    let bar_line = shown.lines().next().unwrap_or_default();
    assert!(bar_line.starts_with("[############------------] 1/2"), "{shown}");
    assert!(
        bar_line.chars().count() <= 60 && bar_line.ends_with("xxxx"),
        "{shown}"
    );
}

#[test]
fn a_failed_wait_is_one_annotation_in_azure_and_not_repeated_elsewhere() {
    let azure = written(Mode::Azure, |p| {
        p.group("Waiting for acme");
        p.fail("not Active: acme is Failed: Verify; got 503");
    });
    assert_eq!(
        azure,
        "##[group]Waiting for acme\n\
         ##vso[task.logissue type=error;]not Active: acme is Failed: Verify; got 503\n\
         ##[endgroup]\n\
         ##vso[task.complete result=Failed;]\n"
    );
    let plain = written(Mode::Plain, |p| p.fail("not Active: acme is Failed"));
    assert_eq!(plain, "failed after 0s: see the error below\n");
}
