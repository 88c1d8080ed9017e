//! Load on `GET /v1/tenants/{id}` against the same reads made straight with the SDK,
//! side by side on one DynamoDB Local.
//!
//!   eval "$(localstack/start.sh)" && cargo bench --bench api_load
//!
//! Seeds a fresh table with tenants, serves the real router in-process on 127.0.0.1:0
//! through `tenantctl serve`'s own accept loop with one read token, and drives it
//! with a closed-loop generator (wrk's shape: a fixed number of keep-alive
//! connections, each sending its next request as soon as the last one answered) over
//! random seeded ids; the API reads through the store's own client, as `serve` builds
//! it (with the interceptor that counts and times each AWS call). In the same run,
//! with the same
//! concurrency, duration and key sequence, it issues consistent `GetItem`s for the
//! same items through the SDK, and it reads them through the least HTTP API there can
//! be over that read (the floor: a route that makes the same `GetItem` and answers 200
//! with a body of the API's size, no auth, decoding, metrics or logging), so the
//! cost of the HTTP hop itself is measured apart from the handler's. Each round runs
//! the three sides in a rotated order so drift on the shared machine hits all alike.
//! Prints throughput and p50/p99 latency of each side and the ratios API / raw (the
//! bar), floor / raw and API / floor, and the median and range of the rounds' own
//! API / raw ratios, and what each side's requests cost in CPU, this process's (the
//! generator, the server, the SDK) and DynamoDB Local's, from `/proc` over the
//! measured windows. Any response other than 200 (or a missing item) fails the run.

#[path = "common/allocator.rs"]
mod allocator;
#[path = "common/fleet_spec.rs"]
mod fleet_spec;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tenant_orchestrator::api::listen::{
    self, serve_until, LimitedListener, DEFAULT_MAX_CONNECTIONS, DEFAULT_READ_TIMEOUT,
};
use tenant_orchestrator::api::{router, token_hash, ApiState, Tokens};
use tenant_orchestrator::app::TenantCommands;
use tenant_orchestrator::domain::{ReleaseVersion, TenantId, TenantSpec};
use tenant_orchestrator::record::Actor;
use tenant_orchestrator::store::{self, table, DynamoStore, TenantStore};

const TENANTS: usize = 500;
const CONNECTIONS: usize = 32;
/// Unrecorded traffic at the start of every round: connections, pools, JIT.
const WARM_UP: Duration = Duration::from_secs(1);
const MEASURED: Duration = Duration::from_secs(3);
/// Rounds per side: many short rounds, so a slow spell of the shared machine (DynamoDB
/// Local's collector, another process) falls on every side alike, and the spread of
/// the rounds' own ratios shows how far one figure can be trusted.
const ROUNDS: u64 = 9;
const READ_TOKEN: &str = "bench-read-token-0123456789";

fn spec(i: usize) -> TenantSpec {
    fleet_spec::bench_spec(
        &format!("load-{i:05}"),
        if i % 2 == 0 { "us-east-1" } else { "eu-west-1" },
    )
}

/// Creates the tenants through the commands (16 at a time) and returns their ids.
async fn seed(store: Arc<DynamoStore>) -> Arc<Vec<String>> {
    let commands = TenantCommands::new(store);
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let commands = commands.clone();
            tokio::spawn(async move {
                for i in (w..TENANTS).step_by(16) {
                    commands
                        .create(
                            spec(i),
                            ReleaseVersion::parse("1.0.0").unwrap(),
                            &Actor::operator("bench"),
                        )
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    Arc::new((0..TENANTS).map(|i| spec(i).id.to_string()).collect())
}

/// What the load generator reads from.
#[derive(Clone)]
enum Target {
    /// The API listening at `addr`, one keep-alive HTTP/1.1 connection per generator
    /// connection.
    Api { addr: std::net::SocketAddr },
    /// The floor ([`floor_router`]) listening at `addr`, reached as the API is.
    Floor { addr: std::net::SocketAddr },
    /// DynamoDB Local through the SDK client (its pool holds one connection per
    /// request in flight), with the store's key layout.
    Raw {
        client: aws_sdk_dynamodb::Client,
        table: Arc<str>,
    },
}

impl Target {
    fn name(&self) -> &'static str {
        match self {
            Target::Api { .. } => "API GET /v1/tenants/{id}",
            Target::Floor { .. } => "floor: GetItem behind HTTP",
            Target::Raw { .. } => "raw consistent GetItem",
        }
    }

    /// A connection of the generator. On the API side it is hyper's bare HTTP/1.1
    /// client connection over one TCP stream, the shape of wrk's (no pool, no proxy
    /// or redirect handling), so the generator's own share of the shared cores stays
    /// as small as a load tool's.
    async fn connect(&self) -> Connection {
        match self {
            Target::Api { addr } | Target::Floor { addr } => {
                let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                stream.set_nodelay(true).unwrap();
                let (sender, connection) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                        .await
                        .unwrap();
                tokio::spawn(connection);
                Connection::Api {
                    sender,
                    authorization: axum::http::HeaderValue::from_str(&format!("Bearer {READ_TOKEN}"))
                        .unwrap(),
                    host: axum::http::HeaderValue::from_str(&addr.to_string()).unwrap(),
                }
            }
            Target::Raw { client, table } => Connection::Raw {
                client: client.clone(),
                table: table.clone(),
            },
        }
    }
}

enum Connection {
    Api {
        sender: hyper::client::conn::http1::SendRequest<http_body_util::Empty<axum::body::Bytes>>,
        authorization: axum::http::HeaderValue,
        host: axum::http::HeaderValue,
    },
    Raw {
        client: aws_sdk_dynamodb::Client,
        table: Arc<str>,
    },
}

impl Connection {
    /// Reads one tenant; an error says what came back instead of the tenant.
    async fn read(&mut self, id: &str) -> Result<(), String> {
        match self {
            Connection::Api {
                sender,
                authorization,
                host,
            } => {
                use http_body_util::BodyExt;
                let request = axum::http::Request::get(format!("/v1/tenants/{id}"))
                    .header(axum::http::header::HOST, host.clone())
                    .header(axum::http::header::AUTHORIZATION, authorization.clone())
                    .body(http_body_util::Empty::new())
                    .unwrap();
                let response = sender
                    .send_request(request)
                    .await
                    .map_err(|e| format!("GET {id}: {e}"))?;
                let status = response.status();
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| format!("GET {id}: body: {e}"))?
                    .to_bytes();
                if status != axum::http::StatusCode::OK {
                    return Err(format!("GET {id}: {status}: {}", String::from_utf8_lossy(&body)));
                }
                Ok(())
            }
            Connection::Raw { client, table } => match raw_read(client, table, id).await? {
                true => Ok(()),
                false => Err(format!("GetItem {id}: no such item")),
            },
        }
    }
}

/// The raw read: a consistent `GetItem` of tenant `id`'s item, with the store's key
/// layout; whether it exists.
async fn raw_read(client: &aws_sdk_dynamodb::Client, table: &str, id: &str) -> Result<bool, String> {
    let out = client
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(format!("TENANT#{id}")))
        .key("sk", AttributeValue::S("TENANT".into()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| {
            format!(
                "GetItem {id}: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(&e)
            )
        })?;
    Ok(out.item().is_some())
}

/// What one side did in the measured windows: every latency, kept whole (a few
/// tens of thousands per run) so percentiles are exact, and the failures.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    measured: Duration,
    errors: usize,
    first_error: Option<String>,
    /// CPU seconds used in the measured windows by this process (the generator, the
    /// server and the SDK) and by DynamoDB Local, where `/proc` tells.
    cpu_here: f64,
    cpu_store: Option<f64>,
}

impl Tally {
    fn fail(&mut self, error: String) {
        self.errors += 1;
        self.first_error.get_or_insert(error);
    }

    fn add(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        self.measured += other.measured;
        self.errors += other.errors;
        self.cpu_here += other.cpu_here;
        self.cpu_store = match (self.cpu_store, other.cpu_store) {
            (None, other) => other,
            (Some(a), Some(b)) => Some(a + b),
            (Some(_), None) => None,
        };
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.measured.as_secs_f64()
    }

    /// The latency that `p` percent of requests stayed within (nearest rank).
    fn percentile(&mut self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        self.latencies.sort_unstable();
        let rank = ((p / 100.0) * self.latencies.len() as f64).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1]
    }

    /// CPU microseconds per request: this process's, and DynamoDB Local's.
    fn cpu_line(&self, label: &str) -> String {
        let per = |seconds: f64| seconds * 1e6 / self.latencies.len() as f64;
        match self.cpu_store {
            Some(store) => format!(
                "{label:<28} CPU per request: this process {:>6.1} us, DynamoDB Local {:>6.1} us, both {:>6.1} us",
                per(self.cpu_here),
                per(store),
                per(self.cpu_here + store)
            ),
            None => format!("{label:<28} CPU per request: this process {:>6.1} us", per(self.cpu_here)),
        }
    }

    fn line(&mut self, label: &str) -> String {
        format!(
            "{label:<28} {:>9.1} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ({} requests)",
            self.per_second(),
            ms(self.percentile(50.0)),
            ms(self.percentile(99.0)),
            self.latencies.len()
        )
    }
}

/// The throughput and latency ratios of side `a` to side `b`.
fn ratios(label: &str, a: &mut Tally, b: &mut Tally) -> String {
    format!(
        "ratio {label}: throughput {:.2}, p50 latency {:.2}, p99 latency {:.2}",
        a.per_second() / b.per_second(),
        ms(a.percentile(50.0)) / ms(b.percentile(50.0)),
        ms(a.percentile(99.0)) / ms(b.percentile(99.0)),
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// CPU seconds (user and system) process `pid` (or `self`) has used, from
/// `/proc/<pid>/stat` (in the kernel's 100 ticks a second); `None` without `/proc`.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name (in parentheses, and it may hold spaces) come the fields
    // from the third on: utime and stime are the 14th and 15th.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// The process id of DynamoDB Local (the Java process running `DynamoDBLocal.jar`),
/// if this machine runs one.
fn dynamodb_local() -> Option<String> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid = entry.file_name().into_string().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        String::from_utf8_lossy(&cmdline)
            .contains("DynamoDBLocal.jar")
            .then_some(pid)
    })
}

/// One round: CONNECTIONS connections, each reading random tenants back to back for
/// WARM_UP (not recorded) then MEASURED. A request counts if it started and ended
/// inside the measured window; failures count whenever they happen.
async fn closed_loop(target: &Target, ids: &Arc<Vec<String>>, seed: u64) -> Tally {
    let store_pid = dynamodb_local();
    let measure_from = Instant::now() + WARM_UP;
    let until = measure_from + MEASURED;
    let connections: Vec<_> = (0..CONNECTIONS as u64)
        .map(|c| {
            let target = target.clone();
            let ids = ids.clone();
            tokio::spawn(async move {
                let mut connection = target.connect().await;
                let mut keys = SmallRng::seed_from_u64(seed * 1000 + c);
                let mut tally = Tally::default();
                loop {
                    let sent = Instant::now();
                    if sent >= until {
                        break;
                    }
                    let id = &ids[keys.random_range(0..ids.len())];
                    let result = connection.read(id).await;
                    let done = Instant::now();
                    match result {
                        Err(e) => tally.fail(e),
                        Ok(()) if sent >= measure_from && done <= until => tally.latencies.push(done - sent),
                        Ok(()) => {}
                    }
                }
                tally
            })
        })
        .collect();
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu = || (cpu_seconds("self"), store_pid.as_deref().and_then(cpu_seconds));
    let (here, store) = cpu();
    tokio::time::sleep_until(until.into()).await;
    let (here_after, store_after) = cpu();
    let mut round = Tally::default();
    for c in connections {
        round.add(c.await.unwrap());
    }
    round.measured = MEASURED;
    round.cpu_here = here_after.zip(here).map_or(0.0, |(b, a)| b - a);
    round.cpu_store = store_after.zip(store).map(|(b, a)| b - a);
    round
}

/// The least HTTP API over the raw read: `GET /v1/tenants/{id}` makes the same
/// consistent `GetItem` on the same SDK client and answers 200 with `body` (the size
/// of the API's answer), or 404. What the API does beyond it (auth, the metrics and
/// the log line, decoding the item, building and writing the view) is the handler's
/// own cost; the rest of the API's gap to the raw read is the HTTP hop, which any
/// HTTP API pays.
fn floor_router(client: aws_sdk_dynamodb::Client, table: Arc<str>, body: axum::body::Bytes) -> axum::Router {
    use axum::extract::Path;
    use axum::http::StatusCode;
    axum::Router::new().route(
        "/v1/tenants/{id}",
        axum::routing::get(move |Path(id): Path<String>| async move {
            match raw_read(&client, &table, &id).await {
                Ok(true) => (StatusCode::OK, body.clone()),
                Ok(false) => (StatusCode::NOT_FOUND, axum::body::Bytes::new()),
                Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, axum::body::Bytes::from(e)),
            }
        }),
    )
}

/// Serves `app` on 127.0.0.1 as `tenantctl serve` serves each of its ports: its own
/// accept loop ([`serve_until`]) over a [`LimitedListener`] (`TCP_NODELAY`, the
/// connection limit's slots, hyper's header-read timer and the body deadline) with
/// `serve`'s defaults; its address.
async fn serve(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let max_connections = listen::max_connections(DEFAULT_MAX_CONNECTIONS).unwrap();
    let listener = LimitedListener::new("bench", listener, max_connections);
    let read_timeout = listen::read_timeout(DEFAULT_READ_TIMEOUT).unwrap();
    // Never stopped: the benchmark ends with the process.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _stop = stop;
        serve_until("bench", listener, app, stopped, read_timeout).await
    });
    addr
}

/// The API's answer for tenant `id`, as the generator receives it.
async fn api_body(addr: std::net::SocketAddr, id: &str) -> axum::body::Bytes {
    use http_body_util::BodyExt;
    let Connection::Api {
        mut sender,
        authorization,
        host,
    } = (Target::Api { addr }).connect().await
    else {
        unreachable!("an API target connects over HTTP")
    };
    let request = axum::http::Request::get(format!("/v1/tenants/{id}"))
        .header(axum::http::header::HOST, host)
        .header(axum::http::header::AUTHORIZATION, authorization)
        .body(http_body_util::Empty::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), axum::http::StatusCode::OK);
    response.into_body().collect().await.unwrap().to_bytes()
}

fn tokens() -> Tokens {
    Tokens::parse(&format!(
        "- {{name: bench-viewer, scope: read, sha256: {}}}\n",
        token_hash(READ_TOKEN)
    ))
    .unwrap()
}

/// The request log line is formatted as `tenantctl serve --log-format json` would
/// (same filter), then dropped, so the API pays for its logging as in production.
fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "info,aws_config=warn,aws_smithy_runtime=warn",
        ))
        .with_writer(std::io::sink)
        .json()
        .flatten_event(true)
        .init();
}

fn main() {
    if std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_err() {
        eprintln!("the API load benchmark needs DynamoDB Local: run `eval \"$(localstack/start.sh)\"` first");
        std::process::exit(2);
    }
    init_tracing();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let failed = rt.block_on(async {
        let config = aws_config::load_from_env().await;
        let client = aws_sdk_dynamodb::Client::new(&config);
        let name = format!("bench-api-load-{}", uuid::Uuid::new_v4().simple());
        table::ensure_table(&client, &name).await.unwrap();
        // The API reads through the store's own client, as `tenantctl serve` builds it
        // (its retry settings and the interceptor that counts and times each call);
        // the raw read and the floor use a plain client.
        let store = Arc::new(DynamoStore::new(store::client(&config), name.clone()));
        let ids = seed(store.clone()).await;
        // The API's own read path, once, so a broken seed fails before any load.
        store.load(&TenantId::parse(&ids[0]).unwrap()).await.unwrap();

        let addr = serve(router(ApiState::new(store, tokens()))).await;
        let api = Target::Api { addr };
        let table: Arc<str> = name.into();
        let body = api_body(addr, &ids[0]).await;
        let floor = Target::Floor {
            addr: serve(floor_router(client.clone(), table.clone(), body.clone())).await,
        };
        let raw = Target::Raw { client, table };
        println!(
            "tenants: {TENANTS}, connections: {CONNECTIONS}, rounds per side: {ROUNDS} x {}s measured after {}s warm-up, \
             API answer {} bytes (the floor answers as many)",
            MEASURED.as_secs(),
            WARM_UP.as_secs(),
            body.len()
        );
        // One unreported round per side first: JIT of DynamoDB Local's read path, the
        // metrics recorder's first series, connection set-up.
        let sides = [&api, &raw, &floor];
        for target in sides {
            let tally = closed_loop(target, &ids, 0).await;
            assert_eq!(tally.errors, 0, "{}", tally.first_error.unwrap_or_default());
        }
        let (mut api_total, mut raw_total, mut floor_total) = (Tally::default(), Tally::default(), Tally::default());
        let mut round_ratios = Vec::new();
        for round in 1..=ROUNDS {
            // Rounds rotate the order: API, raw, floor; raw, floor, API; floor, API, raw.
            let mut order = sides;
            let sides = order.len();
            order.rotate_left((round as usize - 1) % sides);
            let (mut api_rate, mut raw_rate) = (0.0, 0.0);
            for target in order {
                let mut tally = closed_loop(target, &ids, round).await;
                println!("round {round}: {}", tally.line(target.name()));
                match target {
                    Target::Api { .. } => {
                        api_rate = tally.per_second();
                        api_total.add(tally)
                    }
                    Target::Raw { .. } => {
                        raw_rate = tally.per_second();
                        raw_total.add(tally)
                    }
                    Target::Floor { .. } => floor_total.add(tally),
                }
            }
            round_ratios.push(api_rate / raw_rate);
        }
        round_ratios.sort_by(f64::total_cmp);

        println!();
        println!("{}", api_total.line("API, all rounds"));
        println!("{}", raw_total.line("raw, all rounds"));
        println!("{}", floor_total.line("floor, all rounds"));
        println!("{}", api_total.cpu_line("API, all rounds"));
        println!("{}", raw_total.cpu_line("raw, all rounds"));
        println!("{}", floor_total.cpu_line("floor, all rounds"));
        println!("{}", ratios("API / raw", &mut api_total, &mut raw_total));
        println!("{}", ratios("floor / raw", &mut floor_total, &mut raw_total));
        println!("{}", ratios("API / floor", &mut api_total, &mut floor_total));
        println!(
            "rounds' own API / raw throughput ratios: median {:.2}, lowest {:.2}, highest {:.2}",
            round_ratios[round_ratios.len() / 2],
            round_ratios[0],
            round_ratios[round_ratios.len() - 1]
        );
        let mut failed = false;
        for (side, tally) in [("API", &api_total), ("raw", &raw_total), ("floor", &floor_total)] {
            if tally.errors > 0 {
                eprintln!(
                    "FAILED: {} {side} requests failed; first: {}",
                    tally.errors,
                    tally.first_error.as_deref().unwrap_or("?")
                );
                failed = true;
            }
        }
        failed
    });
    if failed {
        std::process::exit(1);
    }
}
