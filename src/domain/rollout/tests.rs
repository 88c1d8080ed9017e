use std::time::Duration;

use super::*;

const FULL_SPEC: &str = r#"{
  "release": "1.4.2",
  "selector": {
    "regions": ["eu-west-1", "us-east-1"],
    "tiers": ["small", "medium"],
    "exclude": ["acme"]
  },
  "strategy": {
    "region_order": ["eu-west-1", "us-east-1"],
    "max_parallel_regions": 1,
    "group_order": ["canary", "ring-1"],
    "waves": ["1", "10%", "50%", "100%"],
    "max_in_flight_per_wave": 20,
    "max_in_flight_per_region": 10,
    "bake_time": "30m",
    "bake_checks": 5,
    "bake_check_interval": "5m",
    "failure_budget": "10%",
    "on_breach": { "action": "halt", "rollback": "wave" },
    "approvals": { "after_canary": true, "between_regions": true }
  }
}"#;

fn parse(json: &str) -> Result<RolloutSpec, String> {
    serde_json::from_str(json).map_err(|e| e.to_string())
}

/// A spec whose strategy holds `fields` (a JSON object body) and defaults otherwise.
fn with_strategy(fields: &str) -> Result<RolloutSpec, String> {
    parse(&format!(r#"{{"release": "1.4.2", "strategy": {{ {fields} }}}}"#))
}

#[test]
fn a_full_spec_parses_and_round_trips() {
    let spec = parse(FULL_SPEC).unwrap();
    let s = &spec.strategy;
    assert_eq!(spec.release.as_ref().unwrap().to_string(), "1.4.2");
    assert_eq!(spec.selector.regions.len(), 2);
    assert!(spec.selector.excludes(&TenantId::parse("acme").unwrap()));
    assert_eq!(s.waves.to_string(), "1,10%,50%,100%");
    assert_eq!(s.max_in_flight_per_region.map(|n| n.get()), Some(10));
    assert_eq!(s.bake.time(), Duration::from_secs(1800));
    assert_eq!(s.bake.checks(), 5);
    assert_eq!(s.failure_budget, "10%".parse().unwrap());
    assert_eq!(s.on_breach.rollback, RollbackScope::Wave);
    assert!(s.approvals.between_regions);
    let json = serde_json::to_string(&spec).unwrap();
    assert_eq!(parse(&json).unwrap(), spec);
}

#[test]
fn only_the_release_is_required() {
    let spec = parse(r#"{"release": "v2.0.0-rc.1"}"#).unwrap();
    assert_eq!(
        spec,
        RolloutSpec::new(ReleaseVersion::parse("2.0.0-rc.1").unwrap())
    );
    let s = &spec.strategy;
    assert_eq!(s.waves.to_string(), "1,10%,50%,100%");
    assert_eq!(s.max_parallel_regions.get(), 1);
    assert_eq!(s.failure_budget, FailureBudget::Count(0));
    assert_eq!(s.on_breach.action, BreachAction::Halt);
    assert_eq!(s.on_breach.rollback, RollbackScope::Failed);
    assert!(s.approvals.after_canary && !s.approvals.between_regions);
    assert_eq!(s.bake, Bake::default());
    assert_eq!(spec.selector, Selector::default());
    assert_eq!(spec.target_text(), "2.0.0-rc.1");
}

#[test]
fn invalid_strategies_say_what_is_wrong_and_what_to_write() {
    let cases = [
        (
            r#""waves": ["1", "150%", "100%"]"#,
            r#"invalid wave "150%": is over 100%; use a percentage in 1–100 or a count"#,
        ),
        (
            r#""waves": ["1", "10%", "50%"]"#,
            r#"the last wave must be "100%""#,
        ),
        (r#""waves": ["1", "10%", "50%"]"#, r#"add "100%" at the end"#),
        (
            r#""waves": ["1", "50%", "10%", "100%"]"#,
            r#""10%" comes after "50%"; waves are cumulative"#,
        ),
        (r#""waves": ["5", "2", "100%"]"#, r#""2" comes after "5""#),
        (
            r#""waves": ["1", "100%", "100%"]"#,
            r#""100%" comes after "100%""#,
        ),
        (r#""waves": []"#, "list no wave; use e.g."),
        (r#""waves": ["0", "100%"]"#, "would start no tenant"),
        (
            r#""waves": ["ten", "100%"]"#,
            r#"like "10%" or a count of tenants like "5""#,
        ),
        (r#""waves": ["1.5%", "100%"]"#, r#"like "10%""#),
        (
            r#""failure_budget": "150%""#,
            "is over 100%; use a percentage in 0–100 or a count",
        ),
        (r#""failure_budget": -1"#, r#"count of failed tenants like "1""#),
        (
            r#""max_parallel_regions": 0"#,
            "must be at least 1 (1 moves one region at a time)",
        ),
        (r#""max_in_flight_per_region": 0"#, "leave it out for no limit"),
        (
            r#""bake_checks": 10"#,
            "10 checks every 5m take 50m, longer than bake_time 30m",
        ),
        (r#""bake_checks": 0"#, "a bake needs evidence"),
        // A product past what a duration holds is said as such, not as a saturated
        // figure.
        (
            r#""bake_checks": 4294967295, "bake_check_interval": "500000000y""#,
            "4294967295 checks every 500000000years take more than any duration, longer than bake_time 30m",
        ),
        (r#""bake_time": "soon""#, "invalid bake_time \"soon\""),
        (r#""bake_check_interval": "0s""#, "must be at least 1s"),
        (r#""bake_time": "8d""#, "must be at most 7d"),
        (
            r#""outage_budget": "0s""#,
            "invalid outage_budget \"0s\": must be at least 1s, e.g. 5m; leave it out for no outage budget",
        ),
        (
            r#""outage_budget": "8d""#,
            "must be at most 7d, the longest maintenance window",
        ),
        (
            r#""outage_budget": "a while""#,
            "invalid outage_budget \"a while\"",
        ),
        (
            r#""on_breach": {"rollback": "all"}"#,
            "expected one of `failed`, `wave`, `none`",
        ),
        (r#""on_breach": {"action": "pause"}"#, "expected `halt`"),
        (r#""region_order": ["us-east-1", "us-east-1"]"#, "is listed twice"),
        (r#""region_order": ["useast1"]"#, "like us-east-1"),
        (
            r#""max_paralel_regions": 2"#,
            "unknown field `max_paralel_regions`",
        ),
    ];
    for (fields, expected) in cases {
        let err = with_strategy(fields).unwrap_err();
        assert!(
            err.contains(expected),
            "{fields}\n  gave: {err}\n  missing: {expected}"
        );
    }
}

#[test]
fn invalid_specs_and_selectors_are_refused() {
    let cases = [
        (r#"{"release": "latest"}"#, "semantic version like 1.4.2"),
        (
            r#"{}"#,
            "target\": is missing; give at least one of `release`, `platform`, `change`",
        ),
        (r#"{"reconcile": false}"#, "target\": is missing"),
        (r#"{"change": {}}"#, "\"change\": names no field to change"),
        (r#"{"change": {"group": "a"}}"#, "unknown field `group`"),
        (r#"{"platform": "v2026.12.1"}"#, "expected MAJOR.MINOR.PATCH"),
        (
            r#"{"release": "1.4.2", "selectr": {}}"#,
            "unknown field `selectr`",
        ),
        (
            r#"{"release": "1.4.2", "selector": {"tenants": ["acme"], "exclude": ["acme"]}}"#,
            "in both tenants and exclude",
        ),
        (
            r#"{"release": "1.4.2", "selector": {"tiers": ["huge"]}}"#,
            "unknown variant `huge`",
        ),
        (
            r#"{"release": "1.4.2", "selector": {"tenant": ["acme"]}}"#,
            "unknown field `tenant`",
        ),
    ];
    for (json, expected) in cases {
        let err = parse(json).unwrap_err();
        assert!(
            err.contains(expected),
            "{json}\n  gave: {err}\n  missing: {expected}"
        );
    }
}

#[test]
fn counts_may_be_json_numbers() {
    let spec = with_strategy(r#""waves": [1, 5, "100%"], "failure_budget": 2"#).unwrap();
    assert_eq!(spec.strategy.waves.to_string(), "1,5,100%");
    assert_eq!(spec.strategy.failure_budget, FailureBudget::Count(2));
}

#[test]
fn waves_have_a_command_line_form() {
    let waves: Waves = "2, 25%,100%".parse().unwrap();
    assert_eq!(waves.to_string(), "2,25%,100%");
    assert_eq!(waves.canary(), WaveSize::parse("2").unwrap());
    let err = "1,50%".parse::<Waves>().unwrap_err().to_string();
    assert!(err.contains("invalid waves \"1, 50%\""), "{err}");
}

#[test]
fn wave_targets_are_cumulative_and_round_down() {
    let size = |s: &str| WaveSize::parse(s).unwrap();
    assert_eq!(size("50%").cumulative_target(3), 1, "up to half");
    assert_eq!(size("10%").cumulative_target(5), 0);
    assert_eq!(size("100%").cumulative_target(7), 7);
    assert_eq!(
        size("5").cumulative_target(3),
        3,
        "a count never exceeds the region"
    );
    assert_eq!(size("5").cumulative_target(30), 5);
}

#[test]
fn failure_budgets_count_or_share_a_wave() {
    let budget = |s: &str| FailureBudget::parse(s).unwrap();
    assert_eq!(
        budget("10%").allowed_failures(1),
        0,
        "a canary of one tolerates nothing"
    );
    assert_eq!(budget("10%").allowed_failures(25), 2);
    assert_eq!(budget("0").allowed_failures(100), 0);
    assert!(budget("2").is_breached(3, 100));
    assert!(!budget("2").is_breached(2, 100));
}

#[test]
fn rollout_ids_are_dns_labels() {
    for ok in ["r-2026-11-21-1-4-2", "hotfix-eu", "abc"] {
        assert!(RolloutId::parse(ok).is_ok(), "{ok}");
    }
    for (bad, expected) in [
        ("R-1", "'R'"),
        ("1-4-2", "start with a lowercase letter"),
        ("ab", "3 to 63"),
        ("r_1", "'_'"),
        ("r-1-", "start or end"),
    ] {
        let err = RolloutId::parse(bad).unwrap_err().to_string();
        assert!(
            err.contains(expected) && err.contains("rollout id"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn derived_rollout_ids_name_the_date_and_release() {
    let date = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
    let id = |v: &str| RolloutId::derived(&ReleaseVersion::parse(v).unwrap(), date);
    assert_eq!(id("1.4.2").as_str(), "r-2026-11-21-1-4-2");
    assert_eq!(id("2.0.0-rc.1").as_str(), "r-2026-11-21-2-0-0-rc-1");
    let long = id(&format!("1.0.0-{}", "x".repeat(80)));
    assert!(long.as_str().len() <= 63);
    for derived in [id("1.4.2"), id("2.0.0-RC.1.Build-7"), long] {
        assert_eq!(RolloutId::parse(derived.as_str()).unwrap(), derived);
    }
}

#[test]
fn a_platform_a_change_or_a_reconcile_is_a_target_without_a_release() {
    let spec = parse(r#"{"platform": "2026.12.1", "selector": {"groups": ["eu-enterprise"]}}"#).unwrap();
    assert_eq!(spec.release, None);
    assert_eq!(spec.platform, Some(PlatformVersion::parse("2026.12.1").unwrap()));
    assert_eq!(spec.target_text(), "platform 2026.12.1");

    let spec = parse(r#"{"change": {"tier": "large"}, "reconcile": true}"#).unwrap();
    assert_eq!(spec.tier(), Some(Tier::Large));
    assert!(spec.reconcile);
    assert_eq!(spec.target_text(), "tier large, reconcile");

    let spec = parse(r#"{"release": "1.4.2", "platform": "2026.12.1"}"#).unwrap();
    assert_eq!(spec.target_text(), "release 1.4.2, platform 2026.12.1");
    let json = serde_json::to_value(&spec).unwrap();
    let mut keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        ["platform", "release", "selector", "strategy"],
        "absent targets are not written"
    );
    assert_eq!(parse(&json.to_string()).unwrap(), spec);
}

#[test]
fn derived_ids_of_revision_rollouts_name_their_targets() {
    let date = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
    let id = |json: &str| RolloutId::derived_for(&parse(json).unwrap(), date);
    assert_eq!(id(r#"{"release": "1.4.2"}"#).as_str(), "r-2026-11-21-1-4-2");
    assert_eq!(
        id(r#"{"platform": "2026.12.1"}"#).as_str(),
        "r-2026-11-21-platform-2026-12-1"
    );
    assert_eq!(
        id(r#"{"release": "1.4.2", "change": {"tier": "large"}, "reconcile": true}"#).as_str(),
        "r-2026-11-21-1-4-2-tier-large-reconcile"
    );
}

#[test]
fn selector_lists_narrow_and_exclusions_remove() {
    let spec = parse(
        r#"{"release": "1.4.2", "selector": {"regions": ["us-east-1"], "groups": ["ring-1", "canary"]}}"#,
    )
    .unwrap();
    let s = &spec.selector;
    let id = TenantId::parse("acme").unwrap();
    let east = Region::parse("us-east-1").unwrap();
    let west = Region::parse("us-west-2").unwrap();
    let ring = Group::parse("ring-1").unwrap();
    assert!(s.matches(&id, &east, &ring, Tier::Large), "tiers: any");
    assert!(!s.matches(&id, &west, &ring, Tier::Large));
    assert!(!s.matches(&id, &east, &Group::default_group(), Tier::Large));
    assert!(!s.excludes(&id));
}

#[test]
fn the_drifted_selector_is_read_and_written_only_when_set() {
    let spec = parse(r#"{"release": "1.4.2", "selector": {"drifted": true}}"#).unwrap();
    assert!(spec.selector.drifted);
    let written = serde_json::to_value(&spec).unwrap();
    assert_eq!(written["selector"]["drifted"], true);
    let plain = parse(r#"{"release": "1.4.2"}"#).unwrap();
    assert!(!plain.selector.drifted);
    let written = serde_json::to_value(&plain).unwrap();
    assert!(written["selector"].get("drifted").is_none(), "{written}");
    assert!(parse(r#"{"release": "1.4.2", "selector": {"drifted": "yes"}}"#).is_err());
}

#[test]
fn the_target_label_names_every_part() {
    let spec = |json: &str| serde_json::from_str::<RolloutSpec>(json).unwrap();
    assert_eq!(spec(r#"{"release": "1.5.0"}"#).target_label(), "release 1.5.0");
    assert_eq!(spec(r#"{"release": "1.5.0"}"#).target_text(), "1.5.0");
    assert_eq!(
        spec(r#"{"platform": "2026.12.1", "change": {"tier": "large"}}"#).target_label(),
        "platform 2026.12.1, tier large"
    );
}

#[test]
fn an_outage_budget_is_optional_and_round_trips_in_human_form() {
    assert_eq!(with_strategy("").unwrap().strategy.outage_budget, None);
    let spec = with_strategy(r#""outage_budget": "1h30m""#).unwrap();
    let budget = spec.strategy.outage_budget.unwrap();
    assert_eq!(budget.get(), Duration::from_secs(5400));
    assert_eq!(budget.to_string(), "1h 30m");
    let json = serde_json::to_value(&spec).unwrap();
    assert_eq!(json["strategy"]["outage_budget"], "1h 30m");
    assert_eq!(serde_json::from_value::<RolloutSpec>(json).unwrap(), spec);
    assert!(budget.overrun_by(5401) && !budget.overrun_by(5400));
}

#[test]
fn an_environment_narrows_the_selector_and_old_specs_still_read() {
    let old = parse(r#"{"release": "1.4.2", "selector": {"regions": ["eu-west-1"]}}"#).unwrap();
    assert_eq!(old.selector.environment, None);
    assert!(old
        .selector
        .admits_environment(&Environment::parse("prod").unwrap()));
    let written = serde_json::to_value(&old).unwrap();
    assert!(written["selector"].get("environment").is_none(), "{written}");
    assert!(written.get("on_complete").is_none(), "{written}");

    let staging = parse(r#"{"release": "1.4.2", "selector": {"environment": "staging"}}"#).unwrap();
    assert!(staging
        .selector
        .admits_environment(&Environment::parse("staging").unwrap()));
    assert!(!staging
        .selector
        .admits_environment(&Environment::parse("prod").unwrap()));
    let json = serde_json::to_value(&staging).unwrap();
    assert_eq!(json["selector"]["environment"], "staging");
    assert_eq!(serde_json::from_value::<RolloutSpec>(json).unwrap(), staging);
}

#[test]
fn advancing_the_policy_needs_an_environment_and_a_version() {
    let spec = parse(
        r#"{"release": "1.5.0", "selector": {"environment": "prod"}, "on_complete": {"advance_policy": true}}"#,
    )
    .unwrap();
    assert!(spec.on_complete.advance_policy);
    let json = serde_json::to_value(&spec).unwrap();
    assert_eq!(json["on_complete"]["advance_policy"], true);

    let err = parse(r#"{"release": "1.5.0", "on_complete": {"advance_policy": true}}"#).unwrap_err();
    assert!(
        err.to_string().contains("add \"environment\" to the selector"),
        "{err}"
    );
    let err = parse(
        r#"{"change": {"tier": "large"}, "selector": {"environment": "prod"}, "on_complete": {"advance_policy": true}}"#,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("give a `release` or a `platform`"),
        "{err}"
    );
}
