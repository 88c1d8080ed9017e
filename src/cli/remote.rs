//! `tenantctl --server URL …`: the CLI as a client of a `tenantctl serve` API, with the
//! bearer token from `TENANTCTL_TOKEN`. API errors map onto the CLI's exit codes;
//! POSTs carry an `Idempotency-Key` (fixed per invocation, or `TENANTCTL_IDEMPOTENCY_KEY`)
//! so the client's own retries of a busy or unreachable server never act twice.

use std::time::Duration;

use anyhow::anyhow;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::{Failure, EXIT_CONFLICT, EXIT_FAILURE, EXIT_FORBIDDEN, EXIT_INVALID_INPUT, EXIT_NOT_FOUND};

/// A call the API refused or that never got an answer, with the exit code it maps to
/// (a 404 is "not found", a 409 a conflict, a 400 invalid input).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RemoteError {
    pub code: u8,
    pub message: String,
}

fn failed(code: u8, message: String) -> RemoteError {
    RemoteError { code, message }
}

/// Attempts of a call that the server answered 503 or could not be reached for.
const ATTEMPTS: u32 = 4;

#[derive(Clone)]
pub struct Remote {
    base: String,
    token: String,
    client: reqwest::Client,
    idempotency_key: String,
}

impl Remote {
    /// A client of `server`; the token comes from `TENANTCTL_TOKEN`.
    pub fn new(server: &str) -> Result<Self, Failure> {
        let invalid = |message: String| Failure {
            code: EXIT_INVALID_INPUT,
            error: anyhow!(message),
        };
        let base = server.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(invalid(format!(
                "--server {server:?} is not an http(s) URL; use e.g. https://tenantctl.example.com"
            )));
        }
        let token = std::env::var("TENANTCTL_TOKEN").unwrap_or_default();
        if token.trim().is_empty() {
            return Err(invalid(
                "--server needs a token: set TENANTCTL_TOKEN to an API token (read scope to look, deploy to \
                 provision and roll out, admin for policy, restore and deprovision)"
                    .into(),
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("tenantctl/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| invalid(format!("cannot build the HTTP client: {e}")))?;
        let idempotency_key = std::env::var("TENANTCTL_IDEMPOTENCY_KEY")
            .ok()
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        Ok(Self {
            base,
            token: token.trim().to_owned(),
            client,
            idempotency_key,
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, RemoteError> {
        self.call(Method::GET, path, None::<&()>).await
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&(impl Serialize + Sync)>,
    ) -> Result<T, RemoteError> {
        self.call(Method::POST, path, body).await
    }

    /// Calls the API and decodes the answer; errors carry the server's message and
    /// the exit code that fits its status.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + Sync)>,
    ) -> Result<T, RemoteError> {
        let url = format!("{}{path}", self.base);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self.client.request(method.clone(), &url).bearer_auth(&self.token);
            if method == Method::POST {
                // One key per request of this invocation, so its retries replay.
                let key = format!("{}:{path}", self.idempotency_key);
                request = request.header("Idempotency-Key", key);
            }
            if let Some(b) = body {
                request = request.json(b);
            }
            let retry = match request.send().await {
                Ok(response) if response.status() == StatusCode::SERVICE_UNAVAILABLE => {
                    // The server is up; what it says is what to fix.
                    let text = response.text().await.unwrap_or_default();
                    let said = serde_json::from_str::<Value>(&text)
                        .ok()
                        .and_then(|v| v["error"]["message"].as_str().map(|m| format!(": {m}")));
                    Some(format!("{method} {url} answered 503{}", said.unwrap_or_default()))
                }
                Ok(response) => return decode(&method, &url, response).await,
                Err(e) if e.is_connect() || e.is_timeout() => Some(format!("{method} {url}: {e}")),
                Err(e) => return Err(failed(EXIT_FAILURE, format!("{method} {url} failed: {e}"))),
            };
            if attempt >= ATTEMPTS {
                return Err(failed(
                    EXIT_FAILURE,
                    format!(
                        "{} (after {attempt} attempts); check that the server and what it depends on are up, and that --server is right",
                        retry.unwrap_or_default()
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(300 << attempt)).await;
        }
    }
}

async fn decode<T: DeserializeOwned>(
    method: &Method,
    url: &str,
    response: reqwest::Response,
) -> Result<T, RemoteError> {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if status.is_success() {
        let text = if text.is_empty() { "null" } else { text.as_str() };
        return serde_json::from_str(text).map_err(|e| {
            failed(
                EXIT_FAILURE,
                format!("{method} {url} answered {status} with a body this tenantctl cannot read ({e}); is the server the same version?"),
            )
        });
    }
    let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let message = parsed["error"]["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| {
            format!(
                "{method} {url} answered {status}: {}",
                text.chars().take(200).collect::<String>()
            )
        });
    let code = match status {
        StatusCode::BAD_REQUEST
        | StatusCode::PAYLOAD_TOO_LARGE
        | StatusCode::UNSUPPORTED_MEDIA_TYPE
        | StatusCode::UNPROCESSABLE_ENTITY => EXIT_INVALID_INPUT,
        StatusCode::NOT_FOUND => EXIT_NOT_FOUND,
        StatusCode::CONFLICT => EXIT_CONFLICT,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => EXIT_FORBIDDEN,
        _ => EXIT_FAILURE,
    };
    let hint = match status {
        StatusCode::UNAUTHORIZED => "; check TENANTCTL_TOKEN",
        StatusCode::FORBIDDEN => "; use a token whose scope and bindings allow this command",
        _ => "",
    };
    Err(failed(code, format!("{message}{hint}")))
}

/// `value` as a path segment or query value.
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
