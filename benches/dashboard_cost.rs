//! Page cost: what one view of the dashboard's overview costs as the fleet grows.
//!
//!   eval "$(localstack/start.sh)" && cargo bench --bench dashboard_cost
//!
//! Seeds two tables side by side through the store's own create path: a small fleet
//! (`DASHBOARD_SMALL`, default 100 tenants) and a large one (`DASHBOARD_TENANTS`,
//! default 10,000), each with 20 running rollouts of 5 tenants. Serves the real router
//! over each on its own metered DynamoDB client, with serve's default summary bound,
//! and views `GET /` as a signed-in reader would: once cold (the fleet summary not
//! cached yet) and `VIEWS` (default 20) times warm, as the page's refresh does. Prints
//! for each fleet the median time to answer a view, the store requests and read units
//! per warm view, and the cold view's; then the large fleet's figures over the small
//! one's. Panics when a page does not count every tenant or does not show the 20
//! rollouts. Then views the fleet-wide rollout's own page `VIEWS` times, drawn
//! from a sample of each wave, and again with its tallies removed (a record from
//! before them, drawn from every member), and prints both; panics when the page does
//! not list one to 40 tenants a wave.

#[path = "common/allocator.rs"]
mod allocator;
#[path = "common/local_fleet.rs"]
mod common;

#[path = "common/fleet_spec.rs"]
mod fleet_spec;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tenant_orchestrator::api::{router, token_hash, ApiState, Tokens, DEFAULT_SUMMARY_MAX_AGE};
use tenant_orchestrator::app::{App, RolloutCommands};
use tenant_orchestrator::domain::{RolloutId, RolloutSpec};
use tenant_orchestrator::store::{DynamoStore, Meter, RolloutStore, Usage, WriteGuard};

const ROLLOUTS: usize = 20;
/// The tenants a rollout page lists per wave (`rollout_timeline::MARKS_SHOWN`).
const MARKS_SHOWN: usize = 40;
const ROLLOUT_TENANTS: usize = 5;
const TOKEN: &str = "dashboard-cost-read-token";

fn env_number(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, not {v:?}")),
        Err(_) => default,
    }
}

/// One fleet's figures.
struct Cost {
    tenants: usize,
    /// Members of the rollout over the rest of the fleet.
    fleet_wide: usize,
    cold: Duration,
    cold_usage: Usage,
    /// Warm views reading the waves' tallies.
    tallied: Warm,
    /// Warm views of the same rollouts without tallies (counting their members).
    counted: Warm,
    /// Warm views of the fleet-wide rollout's own page: drawn from a sample of each
    /// wave, then (its tallies removed, as a record from before them) from every member.
    page_sampled: Warm,
    page_whole: Warm,
}

#[derive(Clone, Copy)]
enum Page {
    Overview,
    Rollout,
}

/// Warm views of the overview: the median time, and store requests and read units
/// per view.
struct Warm {
    median: Duration,
    requests: f64,
    units: f64,
}

/// Seeds `tenants` Active tenants and 20 running rollouts in a fresh table, serves
/// the dashboard over it and measures the overview.
async fn measure(client: &aws_sdk_dynamodb::Client, prefix: &str, tenants: usize, views: usize) -> Cost {
    let table = common::fresh_table(client, prefix).await;
    let seeder = Arc::new(DynamoStore::new(client.clone(), table.clone()));
    let seeding = common::seed_settled(&seeder, prefix, tenants, 32).await;
    println!(
        "{prefix}: seeded {tenants} Active tenants in {:.1} s",
        seeding.as_secs_f64()
    );
    let commands = RolloutCommands::new(seeder.clone(), seeder.clone());
    let mut ids = Vec::new();
    for r in 0..ROLLOUTS {
        // The last one takes every tenant the others do not hold.
        let selector = match r + 1 == ROLLOUTS {
            true => serde_json::json!({}),
            false => {
                let ids: Vec<String> = (0..ROLLOUT_TENANTS)
                    .map(|k| format!("{prefix}-{:06}", (r * ROLLOUT_TENANTS + k) % tenants))
                    .collect();
                serde_json::json!({"tenants": ids})
            }
        };
        let spec: RolloutSpec = serde_json::from_value(serde_json::json!({
            "release": "1.1.0",
            "selector": selector,
            "strategy": {"waves": ["1", "100%"], "bake_time": "0s", "bake_checks": 0}
        }))
        .unwrap();
        let id = RolloutId::parse(&format!("r-{prefix}-{r:02}")).unwrap();
        commands.start(id.clone(), spec, "operator:bench").await.unwrap();
        ids.push(id);
    }
    let fleet_wide = seeder.members(ids.last().unwrap(), None).await.unwrap().len();
    println!("{prefix}: started {ROLLOUTS} rollouts, the last over {fleet_wide} tenants");

    let (metered_client, meter) = Meter::attach(client);
    let store = Arc::new(DynamoStore::new(metered_client, table));
    let tokens = Tokens::parse(&format!(
        "- {{name: viewer, scope: read, sha256: {}}}\n",
        token_hash(TOKEN)
    ))
    .unwrap();
    let app = router(ApiState::new(App::new(store), tokens).with_summary_max_age(DEFAULT_SUMMARY_MAX_AGE));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let http = reqwest::Client::new();
    // One page as a reader views it: the time to its whole answer, and its HTML.
    let fetch = |path: String| {
        let (http, base) = (&http, &base);
        async move {
            let started = Instant::now();
            let response = (http.get(format!("{base}{path}")).bearer_auth(TOKEN).send())
                .await
                .unwrap();
            let status = response.status();
            assert!(status.is_success(), "{path} answered {status}");
            let html = response.text().await.unwrap();
            (started.elapsed(), html)
        }
    };
    let view = || async {
        let (took, html) = fetch("/".into()).await;
        let total = format!("id=\"fleet-total\">{tenants}<");
        assert!(
            html.contains(&total),
            "the overview does not count the {tenants} tenants"
        );
        let shown = html.matches("class=\"rollout\" data-rollout=").count();
        assert_eq!(
            shown, ROLLOUTS,
            "the overview shows {shown} of the {ROLLOUTS} running rollouts"
        );
        took
    };

    let wide = ids.last().unwrap().clone();
    let rollout_view = || async {
        let (took, html) = fetch(format!("/rollouts/{wide}")).await;
        let marks = html.matches("<tr data-member=").count();
        let waves = html.matches("data-wave-tenants=").count();
        assert!(
            waves > 0 && (1..=waves * MARKS_SHOWN).contains(&marks),
            "the rollout page lists {marks} tenants in {waves} waves, not one to {MARKS_SHOWN} a wave"
        );
        took
    };

    let cold = view().await;
    let cold_usage = meter.usage();
    let (meter, view, rollout_view) = (&meter, &view, &rollout_view);
    let warm = |page: Page| async move {
        let before = meter.usage();
        let mut warm = Vec::with_capacity(views);
        for _ in 0..views {
            warm.push(match page {
                Page::Overview => view().await,
                Page::Rollout => rollout_view().await,
            });
        }
        let after = meter.usage();
        warm.sort();
        let per_view = |n: f64| n / views as f64;
        Warm {
            median: warm[views / 2],
            requests: per_view((after.total_requests() - before.total_requests()) as f64),
            units: per_view(after.read_units - before.read_units),
        }
    };
    let tallied = warm(Page::Overview).await;
    let page_sampled = warm(Page::Rollout).await;
    // The same rollouts as records written before waves kept tallies: the page counts
    // their members instead.
    for id in &ids {
        let mut record = seeder.load_rollout(id).await.unwrap();
        for wave in &mut record.waves {
            wave.tally = None;
        }
        seeder.save_rollout(&record, WriteGuard::Version).await.unwrap();
    }
    let counted = warm(Page::Overview).await;
    let page_whole = warm(Page::Rollout).await;
    Cost {
        tenants,
        fleet_wide,
        cold,
        cold_usage,
        tallied,
        counted,
        page_sampled,
        page_whole,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    common::require_local_aws("dashboard_cost");
    let small = env_number("DASHBOARD_SMALL", 100);
    let large = env_number("DASHBOARD_TENANTS", 10_000);
    let views = env_number("VIEWS", 20).max(1);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let client = common::client().await;
        let small = measure(&client, "dash-small", small, views).await;
        let large = measure(&client, "dash-large", large, views).await;
        println!();
        println!("overview GET / with {ROLLOUTS} running rollouts (the last over every tenant the others leave); warm = median of {views} refreshes within the summary bound ({} s)", DEFAULT_SUMMARY_MAX_AGE.as_secs());
        println!(
            "{:>8} | {:>10} | {:>9} | {:>13} | {:>13} | {:>9} | {:>13} | {:>13}",
            "tenants", "fleet-wide", "warm ms", "warm requests", "warm read RCU", "cold ms", "cold requests", "cold read RCU"
        );
        for c in [&small, &large] {
            println!(
                "{:>8} | {:>10} | {:>9.1} | {:>13.1} | {:>13.1} | {:>9.1} | {:>13} | {:>13.1}",
                c.tenants,
                c.fleet_wide,
                ms(c.tallied.median),
                c.tallied.requests,
                c.tallied.units,
                ms(c.cold),
                c.cold_usage.total_requests(),
                c.cold_usage.read_units
            );
        }
        println!(
            "large / small: warm time {:.2}, warm requests {:.2}, warm read units {:.2}; cold requests {:.2}",
            ms(large.tallied.median) / ms(small.tallied.median),
            large.tallied.requests / small.tallied.requests,
            large.tallied.units / small.tallied.units.max(f64::EPSILON),
            large.cold_usage.total_requests() as f64 / small.cold_usage.total_requests() as f64,
        );
        println!();
        println!("the same warm views with the waves' tallies removed (progress counted from the members, as for records written before tallies)");
        println!("{:>8} | {:>9} | {:>13} | {:>13} | {:>22}", "tenants", "warm ms", "warm requests", "warm read RCU", "read units / tallied");
        for c in [&small, &large] {
            println!(
                "{:>8} | {:>9.1} | {:>13.1} | {:>13.1} | {:>22.2}",
                c.tenants,
                ms(c.counted.median),
                c.counted.requests,
                c.counted.units,
                c.counted.units / c.tallied.units.max(f64::EPSILON)
            );
        }
        println!();
        println!("the fleet-wide rollout's page GET /rollouts/{{id}}, warm: drawn from a sample of each wave, and from every member (its tallies removed)");
        println!(
            "{:>8} | {:>10} | {:>10} | {:>11} | {:>10} | {:>10} | {:>11} | {:>18}",
            "tenants", "fleet-wide", "sample ms", "sample reqs", "sample RCU", "whole ms", "whole reqs", "whole RCU / sample"
        );
        for c in [&small, &large] {
            println!(
                "{:>8} | {:>10} | {:>10.1} | {:>11.1} | {:>10.1} | {:>10.1} | {:>11.1} | {:>18.2}",
                c.tenants,
                c.fleet_wide,
                ms(c.page_sampled.median),
                c.page_sampled.requests,
                c.page_sampled.units,
                ms(c.page_whole.median),
                c.page_whole.requests,
                c.page_whole.units / c.page_sampled.units.max(f64::EPSILON)
            );
        }
        println!("large fleet, requests by operation: cold {:?}", large.cold_usage.requests);
    });
}
