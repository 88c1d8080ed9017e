//! `tenantctl serve` over HTTPS: certificates made here by a CA made here, a client
//! that trusts only that CA, a certificate replaced under the running server, plain
//! HTTP refused in HTTPS-only mode while the health port answers, a client stalled in
//! its headers or its body let go, a port at its connection limit, and the start-up errors for a certificate or key
//! that cannot be used.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use sha2::{Digest, Sha256};

const HOST: &str = "orchestrator.test";
const TOKEN: &str = "tls-test-token";

/// A CA that signs server certificates for [`HOST`].
struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A server certificate and its key, in PEM, and the certificate's DER.
struct ServerPair {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl TestCa {
    fn new() -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("a CA key"))
            .expect("the CA certificate");
        TestCa { issuer }
    }

    fn issue(&self) -> ServerPair {
        let key = KeyPair::generate().expect("a server key");
        let params = CertificateParams::new(vec![HOST.to_owned()]).expect("server parameters");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("a server certificate");
        ServerPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    /// A client that trusts this CA alone. Each client has its own TLS session cache,
    /// so a new one makes a full handshake (no resumption of an earlier session).
    fn client(&self, addr: SocketAddr) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.issuer.pem().as_bytes()).expect("CA PEM"),
            )
            .resolve(HOST, addr)
            .pool_max_idle_per_host(0)
            .tls_info(true)
            .timeout(Duration::from_secs(10))
            .build()
            .expect("an HTTPS client")
    }
}

/// Replaces `path` the way secret mounts and certificate managers do: write aside, rename.
fn replace(path: &Path, content: &str) {
    let aside = path.with_extension("new");
    std::fs::write(&aside, content).expect("file written");
    std::fs::rename(&aside, path).expect("file replaced");
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

async fn fresh_table() -> String {
    assert!(
        std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_ok(),
        "these tests need the local AWS: run `eval \"$(localstack/start.sh)\"` first (scripts/test.sh does it)"
    );
    let config = aws_config::load_from_env().await;
    let client = tenant_orchestrator::store::client(&config);
    let name = format!("test-{}", uuid::Uuid::new_v4().simple());
    tenant_orchestrator::store::table::ensure_table(&client, &name)
        .await
        .expect("table created");
    name
}

/// The files `serve` is given: tokens, certificate, key, and where its log goes.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new(pair: &ServerPair) -> Files {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let hash = format!("{:x}", Sha256::digest(TOKEN.as_bytes()));
        std::fs::write(
            dir.path().join("tokens.json"),
            format!(r#"[{{"name": "tls", "scope": "read", "sha256": "{hash}"}}]"#),
        )
        .expect("token file written");
        std::fs::write(dir.path().join("tls.crt"), &pair.cert_pem).expect("certificate written");
        std::fs::write(dir.path().join("tls.key"), &pair.key_pem).expect("key written");
        Files { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("serve.log")).unwrap_or_default()
    }
}

/// `tenantctl serve --no-worker` with the files and `extra` arguments; killed when dropped.
struct Serve {
    child: Child,
}

impl Serve {
    fn command(table: &str, files: &Files, listen: SocketAddr, extra: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tenantctl"));
        command
            .args([
                "--table",
                table,
                "serve",
                "--no-worker",
                "--listen",
                &listen.to_string(),
            ])
            .arg("--tokens-file")
            .arg(files.path("tokens.json"))
            .arg("--tls-cert")
            .arg(files.path("tls.crt"))
            .arg("--tls-key")
            .arg(files.path("tls.key"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(files.path("serve.log")).expect("log file"));
        command
    }

    /// Starts it with `extra` arguments and a plain health port at `health`, and waits
    /// until that port answers.
    async fn with_health_port(
        table: &str,
        files: &Files,
        listen: SocketAddr,
        health: SocketAddr,
        extra: &[&str],
    ) -> Serve {
        let health_arg = health.to_string();
        let mut args = vec!["--health-listen", &health_arg];
        args.extend_from_slice(extra);
        Serve::start(
            Serve::command(table, files, listen, &args),
            files,
            &reqwest::Client::new(),
            &format!("http://{health}/readyz"),
        )
        .await
    }

    /// Starts it and waits until `ready` (a URL) answers 200 through `client`.
    async fn start(mut command: Command, files: &Files, client: &reqwest::Client, ready: &str) -> Serve {
        let mut serve = Serve {
            child: command.spawn().expect("tenantctl serve starts"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(ready).send().await {
                if r.status() == 200 {
                    return serve;
                }
            }
            if let Ok(Some(status)) = serve.child.try_wait() {
                panic!("tenantctl serve exited ({status}):\n{}", files.log());
            }
            assert!(
                Instant::now() < deadline,
                "tenantctl serve never answered {ready}:\n{}",
                files.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The certificate the server presented for a request on a new connection.
async fn presented(client: &reqwest::Client, url: &str) -> Vec<u8> {
    let response = client
        .get(url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("an HTTPS request succeeds");
    assert_eq!(response.status(), 200, "{url}");
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("the server presented a certificate")
        .to_vec()
}

#[tokio::test]
async fn serves_https_and_picks_up_a_replaced_certificate_without_a_restart() {
    let ca = TestCa::new();
    let (first, second) = (ca.issue(), ca.issue());
    let files = Files::new(&first);
    let addr = free_addr();
    let client = ca.client(addr);
    let base = format!("https://{HOST}:{}", addr.port());
    let table = fresh_table().await;
    let _serve = Serve::start(
        Serve::command(&table, &files, addr, &[]),
        &files,
        &client,
        &format!("{base}/readyz"),
    )
    .await;

    let tenants = format!("{base}/v1/tenants");
    assert_eq!(
        presented(&ca.client(addr), &tenants).await,
        first.der,
        "the first certificate is served"
    );

    // A new key alone does not belong to the certificate: the server keeps the old pair.
    replace(&files.path("tls.key"), &second.key_pem);
    assert_eq!(
        presented(&ca.client(addr), &tenants).await,
        first.der,
        "a key without its certificate keeps the previous pair"
    );
    assert!(
        files.log().contains("does not belong to the certificate"),
        "the refused pair is logged with its reason:\n{}",
        files.log()
    );

    // Its certificate completes the pair: the next handshake presents it.
    replace(&files.path("tls.crt"), &second.cert_pem);
    assert_eq!(
        presented(&ca.client(addr), &tenants).await,
        second.der,
        "the replaced certificate is served"
    );

    // Without --https-only the same port still answers plain HTTP.
    let plain = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .expect("plain HTTP answered");
    assert_eq!(plain.status(), 200);

    // The dashboard's cookies are Secure on a TLS connection (its request line names
    // no scheme), and not on a plain one of the same port.
    let cookies = |response: &reqwest::Response| -> Vec<String> {
        (response.headers().get_all(reqwest::header::SET_COOKIE).iter())
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    };
    let over_tls = client.get(format!("{base}/login")).send().await.unwrap();
    let secure = cookies(&over_tls);
    assert!(
        !secure.is_empty() && secure.iter().all(|c| c.contains("; Secure")),
        "{secure:?}"
    );
    let plain = reqwest::get(format!("http://{addr}/login")).await.unwrap();
    let insecure = cookies(&plain);
    assert!(
        !insecure.is_empty() && insecure.iter().all(|c| !c.contains("Secure")),
        "{insecure:?}"
    );
}

#[tokio::test]
async fn https_only_refuses_plain_http_and_answers_health_checks_on_their_own_port() {
    let ca = TestCa::new();
    let pair = ca.issue();
    let files = Files::new(&pair);
    let (addr, health) = (free_addr(), free_addr());
    let base = format!("https://{HOST}:{}", addr.port());
    let table = fresh_table().await;
    let _serve = Serve::with_health_port(&table, &files, addr, health, &["--https-only"]).await;

    assert_eq!(
        presented(&ca.client(addr), &format!("{base}/v1/tenants")).await,
        pair.der
    );

    let refused = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .expect("an answer");
    assert_eq!(refused.status(), 400, "plain HTTP on the HTTPS port");
    let body: serde_json::Value = refused.json().await.expect("a JSON error");
    assert_eq!(body["error"]["code"], "https_required", "{body}");

    for path in ["/healthz", "/readyz"] {
        let answer = reqwest::get(format!("http://{health}{path}"))
            .await
            .expect("the health port answers");
        assert_eq!(answer.status(), 200, "{path} on the health port");
    }
    let api = reqwest::Client::new()
        .get(format!("http://{health}/v1/tenants"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("the health port answers");
    assert_eq!(api.status(), 404, "the health port serves no API");
}

/// Sends `start` of a request and nothing more, and returns how long the server took
/// to close the connection and what it sent before closing (`None`: still open after
/// 10 s).
async fn stall_after(addr: SocketAddr, start: &str) -> Option<(Duration, Vec<u8>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("a connection");
    stream
        .write_all(start.as_bytes())
        .await
        .expect("the start of the request sent");
    let sent = Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    match read {
        Ok(_) => Some((sent.elapsed(), answer)),
        Err(_) => None,
    }
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_or_its_body_is_let_go() {
    let ca = TestCa::new();
    let files = Files::new(&ca.issue());
    let (addr, health) = (free_addr(), free_addr());
    let table = fresh_table().await;
    let _serve =
        Serve::with_health_port(&table, &files, addr, health, &["--request-read-timeout", "1s"]).await;

    // A request line and one header, but never the blank line that ends the headers:
    // on the API port (plain HTTP beside HTTPS) and the health port alike.
    for port in [addr, health] {
        let (after, answer) = stall_after(port, "GET /healthz HTTP/1.1\r\nHost: orchestrator.test\r\n")
            .await
            .unwrap_or_else(|| panic!("{port} kept a connection with unfinished headers open for 10 s"));
        assert!(
            after >= Duration::from_millis(900),
            "{port} closed the connection after {after:?}, before the 1 s deadline"
        );
        assert!(
            answer.is_empty(),
            "{port} answered {:?}",
            String::from_utf8_lossy(&answer)
        );
        // Requests that arrive whole are still served.
        let served = reqwest::get(format!("http://{port}/healthz"))
            .await
            .expect("a whole request answered");
        assert_eq!(served.status(), 200, "{port}");
    }

    // Whole headers, then a body that stops short of its length: the request fails
    // with a 400 that says why, and the connection is let go.
    let (after, answer) = stall_after(
        addr,
        &format!(
            "POST /v1/catalog/plan HTTP/1.1\r\nHost: orchestrator.test\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"catalog\""
        ),
    )
    .await
    .expect("a request whose body stalls is let go within 10 s");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        after >= Duration::from_millis(900),
        "answered after {after:?}: {answer}"
    );
    assert!(
        answer.starts_with("HTTP/1.1 400") && answer.contains("did not arrive within 1s"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_port_holds_no_more_connections_than_its_limit_and_takes_the_next_when_one_closes() {
    let ca = TestCa::new();
    let files = Files::new(&ca.issue());
    let (addr, health) = (free_addr(), free_addr());
    let table = fresh_table().await;
    let _serve = Serve::with_health_port(&table, &files, addr, health, &["--max-connections", "2"]).await;

    // Two clients connect and send nothing: a handshake not yet begun holds a slot.
    let mut idle = Vec::new();
    for _ in 0..2 {
        idle.push(tokio::net::TcpStream::connect(addr).await.expect("a connection"));
    }
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(800))
        .build()
        .expect("a client");
    let waiting = quick.get(format!("http://{addr}/healthz")).send().await;
    assert!(
        waiting.as_ref().is_err_and(|e| e.is_timeout()),
        "a third connection was served while the limit of 2 were open: {waiting:?}"
    );
    // The health port keeps its own limit, so probes still get through.
    let probe = reqwest::get(format!("http://{health}/readyz"))
        .await
        .expect("the health port answers");
    assert_eq!(probe.status(), 200);

    // One closes: the port accepts again.
    drop(idle.pop());
    let served = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a client")
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .expect("served once a connection closed");
    assert_eq!(served.status(), 200);
    let log = files.log();
    assert!(
        log.contains("every connection this port may hold is open; new ones wait"),
        "the limit was not logged:\n{log}"
    );
}

/// Runs `serve` with files that cannot be used and returns its exit code and stderr.
fn refused_start(files: &Files) -> (Option<i32>, String) {
    let mut command = Serve::command("no-table-needed", files, free_addr(), &[]);
    let status = command.status().expect("tenantctl runs");
    (status.code(), files.log())
}

#[test]
fn start_up_refuses_a_missing_certificate_a_non_pem_one_and_a_key_of_another_certificate() {
    let ca = TestCa::new();
    let (pair, other) = (ca.issue(), ca.issue());

    let files = Files::new(&pair);
    std::fs::remove_file(files.path("tls.crt")).expect("certificate removed");
    let (code, log) = refused_start(&files);
    assert_eq!(code, Some(2), "{log}");
    assert!(
        log.contains("cannot read the TLS certificate") && log.contains("tls.crt"),
        "{log}"
    );

    let files = Files::new(&pair);
    std::fs::write(files.path("tls.crt"), "not a certificate\n").expect("certificate written");
    let (code, log) = refused_start(&files);
    assert_eq!(code, Some(2), "{log}");
    assert!(log.contains("holds no PEM certificate"), "{log}");

    let files = Files::new(&pair);
    std::fs::write(files.path("tls.key"), &other.key_pem).expect("key written");
    let (code, log) = refused_start(&files);
    assert_eq!(code, Some(2), "{log}");
    assert!(log.contains("does not belong to the certificate"), "{log}");
}
