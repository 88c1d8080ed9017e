//! Load on `GET /v1/tenants/{id}` against the same reads made straight with the SDK,
//! side by side on one DynamoDB Local.
//!
//!   eval "$(localstack/start.sh)" && cargo bench --bench api_load
//!
//! Seeds a fresh table with tenants, serves the real router in-process on 127.0.0.1:0
//! with one read token, and drives it with a closed-loop generator (wrk's shape: a
//! fixed number of keep-alive connections, each sending its next request as soon as
//! the last one answered) over random seeded ids. In the same run, with the same
//! concurrency, duration and key sequence, it issues consistent `GetItem`s for the
//! same items through the SDK. Rounds alternate API-raw, raw-API so drift on the shared
//! machine hits both alike. Prints throughput and p50/p99 latency of each side and the
//! ratios API / raw. Any response other than 200 (or a missing item) fails the run.

#[path = "common/fleet_spec.rs"]
mod fleet_spec;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tenant_orchestrator::api::{router, token_hash, ApiState, Tokens};
use tenant_orchestrator::app::TenantCommands;
use tenant_orchestrator::domain::{ReleaseVersion, TenantId, TenantSpec};
use tenant_orchestrator::record::Actor;
use tenant_orchestrator::store::{table, DynamoStore, TenantStore};

const TENANTS: usize = 500;
const CONNECTIONS: usize = 32;
/// Unrecorded traffic at the start of every round: connections, pools, JIT.
const WARM_UP: Duration = Duration::from_secs(2);
const MEASURED: Duration = Duration::from_secs(5);
/// Rounds per side.
const ROUNDS: u64 = 3;
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
            Target::Raw { .. } => "raw consistent GetItem",
        }
    }

    /// A connection of the generator. On the API side it is hyper's bare HTTP/1.1
    /// client connection over one TCP stream, the shape of wrk's (no pool, no proxy
    /// or redirect handling), so the generator's own share of the shared cores stays
    /// as small as a load tool's.
    async fn connect(&self) -> Connection {
        match self {
            Target::Api { addr } => {
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
            Connection::Raw { client, table } => {
                let out = client
                    .get_item()
                    .table_name(table.as_ref())
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
                match out.item() {
                    Some(_) => Ok(()),
                    None => Err(format!("GetItem {id}: no such item")),
                }
            }
        }
    }
}

/// What one side did in the measured windows: every latency, kept whole (a few
/// tens of thousands per run) so percentiles are exact, and the failures.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    measured: Duration,
    errors: usize,
    first_error: Option<String>,
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

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One round: CONNECTIONS connections, each reading random tenants back to back for
/// WARM_UP (not recorded) then MEASURED. A request counts if it started and ended
/// inside the measured window; failures count whenever they happen.
async fn closed_loop(target: &Target, ids: &Arc<Vec<String>>, seed: u64) -> Tally {
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
    let mut round = Tally::default();
    for c in connections {
        round.add(c.await.unwrap());
    }
    round.measured = MEASURED;
    round
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
        let store = Arc::new(DynamoStore::new(client.clone(), name.clone()));
        let ids = seed(store.clone()).await;
        // The API's own read path, once, so a broken seed fails before any load.
        store.load(&TenantId::parse(&ids[0]).unwrap()).await.unwrap();

        let app = router(ApiState::new(store, tokens()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // As `tenantctl serve` listens.
        let listener = axum::serve::ListenerExt::tap_io(listener, tenant_orchestrator::api::no_delay);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let api = Target::Api { addr };
        let raw = Target::Raw {
            client,
            table: name.into(),
        };
        println!(
            "tenants: {TENANTS}, connections: {CONNECTIONS}, rounds per side: {ROUNDS} x {}s measured after {}s warm-up",
            MEASURED.as_secs(),
            WARM_UP.as_secs()
        );
        // One unreported round per side first: JIT of DynamoDB Local's read path, the
        // metrics recorder's first series, connection set-up.
        for target in [&api, &raw] {
            let tally = closed_loop(target, &ids, 0).await;
            assert_eq!(tally.errors, 0, "{}", tally.first_error.unwrap_or_default());
        }
        let (mut api_total, mut raw_total) = (Tally::default(), Tally::default());
        for round in 1..=ROUNDS {
            let order = if round % 2 == 1 { [&api, &raw] } else { [&raw, &api] };
            for target in order {
                let mut tally = closed_loop(target, &ids, round).await;
                println!("round {round}: {}", tally.line(target.name()));
                match target {
                    Target::Api { .. } => api_total.add(tally),
                    Target::Raw { .. } => raw_total.add(tally),
                }
            }
        }

        println!();
        println!("{}", api_total.line("API, all rounds"));
        println!("{}", raw_total.line("raw, all rounds"));
        println!(
            "ratio API / raw: throughput {:.2}, p50 latency {:.2}, p99 latency {:.2}",
            api_total.per_second() / raw_total.per_second(),
            ms(api_total.percentile(50.0)) / ms(raw_total.percentile(50.0)),
            ms(api_total.percentile(99.0)) / ms(raw_total.percentile(99.0)),
        );
        let mut failed = false;
        for (side, tally) in [("API", &api_total), ("raw", &raw_total)] {
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
