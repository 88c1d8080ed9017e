//! Prometheus metrics. Counters and histograms are recorded through the `metrics`
//! facade (the worker's step durations, the store's transitions and the outages they
//! measured, HTTP requests here)
//! into one process-wide recorder that `/metrics` renders.

use std::collections::HashMap;
use std::sync::{OnceLock, PoisonError, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::ports::FleetSummary;

/// Seconds: from a fast DynamoDB write to a slow CloudFormation or RDS step run.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
];

/// Seconds a tenant was down during an upgrade or rollback: the report's buckets
/// (none, 30 s, 60 s, 180 s, 600 s) and a few finer and coarser ones.
const OUTAGE_BUCKETS: &[f64] = &[
    0.0, 5.0, 10.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 1800.0, 3600.0,
];

fn builder() -> PrometheusBuilder {
    // A full name is matched before a suffix, whatever the order they are set in.
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full("tenantctl_upgrade_outage_seconds".into()),
                OUTAGE_BUCKETS,
            )
        })
        .expect("buckets are not empty")
}

/// The process-wide recorder, installed on first use.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        builder().install_recorder().unwrap_or_else(|_| {
            // Another recorder is already global (an embedding program's): ours
            // then shows only what it records itself.
            builder().build_recorder().handle()
        })
    })
}

/// Counts and times every request by method, matched route and status. The series'
/// handles are built once per method, route and status and reused, so a request
/// allocates no label strings; the log line's fields are borrowed, not formatted.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let took = started.elapsed();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    tracing::info!(
        method = method.as_str(),
        route,
        status,
        ms = took.as_millis() as u64,
        "request"
    );
    let series = request_series(&method, route, status);
    series.requests.increment(1);
    series.duration.record(took.as_secs_f64());
    response
}

/// The handles of one method, route and status: its request counter and the
/// method and route's duration histogram.
#[derive(Clone)]
struct RequestSeries {
    requests: metrics::Counter,
    duration: metrics::Histogram,
}

/// Series built so far, by route, then method and status (a handful each).
type SeriesByRoute = HashMap<Box<str>, Vec<(Method, u16, RequestSeries)>>;

fn request_series(method: &Method, route: &str, status: u16) -> RequestSeries {
    static SERIES: OnceLock<RwLock<SeriesByRoute>> = OnceLock::new();
    let series = SERIES.get_or_init(Default::default);
    let find = |by_route: &SeriesByRoute| {
        by_route.get(route).and_then(|all| {
            all.iter()
                .find(|(m, s, _)| m == method && *s == status)
                .map(|(_, _, series)| series.clone())
        })
    };
    // A poisoned lock only means another request panicked while inserting; the map
    // itself is still whole.
    if let Some(found) = find(&series.read().unwrap_or_else(PoisonError::into_inner)) {
        return found;
    }
    let mut by_route = series.write().unwrap_or_else(PoisonError::into_inner);
    if let Some(found) = find(&by_route) {
        return found;
    }
    let (method_label, route_label) = (method.as_str().to_owned(), route.to_owned());
    let built = RequestSeries {
        requests: metrics::counter!("tenantctl_http_requests_total", "method" => method_label.clone(), "route" => route_label.clone(), "status" => status.to_string()),
        duration: metrics::histogram!("tenantctl_http_request_duration_seconds", "method" => method_label, "route" => route_label),
    };
    by_route
        .entry(route.into())
        .or_default()
        .push((method.clone(), status, built.clone()));
    built
}

fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Progress of one running rollout, for `/metrics`.
#[derive(Debug, Clone)]
pub struct RolloutProgress {
    pub id: String,
    pub release: String,
    pub phase: String,
    /// Waves done, and waves in all.
    pub waves_done: usize,
    pub waves: usize,
    /// Members by outcome (`pending`, `in_flight`, `succeeded`, `failed`, `skipped`).
    pub outcomes: std::collections::BTreeMap<String, usize>,
}

/// The Prometheus text: the recorder's metrics, the tenants-by-state gauge and the
/// progress of running rollouts.
pub fn render(fleet: Option<&FleetSummary>, rollouts: Option<&[RolloutProgress]>) -> String {
    let handle = handle();
    handle.run_upkeep();
    let mut out = handle.render();
    out.push_str("# HELP tenantctl_tenants Tenants by region and state, from the listing index.\n");
    out.push_str("# TYPE tenantctl_tenants gauge\n");
    if let Some(fleet) = fleet {
        for (region, states) in &fleet.by_region {
            for (state, count) in states {
                out.push_str(&format!(
                    "tenantctl_tenants{{region=\"{}\",state=\"{}\"}} {count}\n",
                    label(region.as_str()),
                    label(state)
                ));
            }
        }
    }
    out.push_str("# HELP tenantctl_fleet_summary_up 1 if the tenant counts could be read.\n");
    out.push_str("# TYPE tenantctl_fleet_summary_up gauge\n");
    out.push_str(&format!(
        "tenantctl_fleet_summary_up {}\n",
        u8::from(fleet.is_some())
    ));
    out.push_str("# HELP tenantctl_rollout_tenants Tenants of each running rollout by outcome.\n");
    out.push_str("# TYPE tenantctl_rollout_tenants gauge\n");
    for r in rollouts.unwrap_or_default() {
        for (outcome, count) in &r.outcomes {
            out.push_str(&format!(
                "tenantctl_rollout_tenants{{rollout=\"{}\",release=\"{}\",phase=\"{}\",outcome=\"{}\"}} {count}\n",
                label(&r.id),
                label(&r.release),
                label(&r.phase),
                label(outcome)
            ));
        }
    }
    out.push_str("# HELP tenantctl_rollout_waves_done Waves done of each running rollout (of tenantctl_rollout_waves).\n");
    out.push_str("# TYPE tenantctl_rollout_waves_done gauge\n");
    for r in rollouts.unwrap_or_default() {
        out.push_str(&format!(
            "tenantctl_rollout_waves_done{{rollout=\"{}\"}} {}\n",
            label(&r.id),
            r.waves_done
        ));
    }
    out.push_str("# TYPE tenantctl_rollout_waves gauge\n");
    for r in rollouts.unwrap_or_default() {
        out.push_str(&format!(
            "tenantctl_rollout_waves{{rollout=\"{}\"}} {}\n",
            label(&r.id),
            r.waves
        ));
    }
    out
}
