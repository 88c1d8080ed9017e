//! One health check of one hostname: `GET <scheme>://<hostname>:<port><path>`, read as
//! the tenant's health report `{"status":"ok","release":"1.2.3"}`; and, once every
//! hostname passes, the tenant's alarms.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde::Deserialize;
use tokio::task::JoinSet;

use crate::domain::{Hostname, ReleaseVersion, TenantSpec};
use crate::ports::{TenantHealth, TenantProbe};
use crate::steps::AwsClients;

use super::alarms::{AlarmReport, AlarmWatch};
use super::VerifyConfig;

/// Connects every name to one address, as `curl --resolve` does: the hostname still
/// goes out as Host header and TLS server name, so the check sees what a client of
/// that hostname sees, from a load balancer address or a local test server.
struct FixedAddress(IpAddr);

impl Resolve for FixedAddress {
    fn resolve(&self, _name: Name) -> Resolving {
        // Port 0: the URL's port applies.
        let addrs: Addrs = Box::new(std::iter::once(SocketAddr::new(self.0, 0)));
        Box::pin(std::future::ready(Ok(addrs)))
    }
}

/// What a tenant's health endpoint reports.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HealthReport {
    pub status: String,
    #[serde(default, deserialize_with = "release_text")]
    pub release: Option<String>,
}

/// The release as text, whatever JSON type the application used for it.
fn release_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s),
        other => Some(other.to_string()),
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The endpoint answered; `report` is `None` when the body was no health report.
    Http {
        status: u16,
        report: Option<HealthReport>,
    },
    /// No HTTP answer at all (DNS, connection, TLS, timeout).
    Unreachable(String),
}

/// One hostname's answer to one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub host: String,
    pub answer: Answer,
}

impl Observation {
    /// Healthy and serving `release`: a 2xx with status `ok` and that release.
    pub fn serves(&self, release: &ReleaseVersion) -> bool {
        match &self.answer {
            Answer::Http {
                status,
                report: Some(report),
            } => {
                (200..300).contains(status)
                    && report.status == "ok"
                    && report
                        .release
                        .as_deref()
                        .and_then(|r| ReleaseVersion::parse(r).ok())
                        .is_some_and(|r| &r == release)
            }
            _ => false,
        }
    }

    /// Serving at all: a 2xx with a health report of status `ok`, whatever the release.
    pub fn healthy(&self) -> bool {
        matches!(&self.answer, Answer::Http { status, report: Some(report) }
            if (200..300).contains(status) && report.status == "ok")
    }

    /// The release the hostname reported, when it answered with a health report
    /// that names one.
    pub fn reported_release(&self) -> Option<String> {
        match &self.answer {
            Answer::Http {
                report: Some(report), ..
            } => report.release.clone(),
            _ => None,
        }
    }
}

impl fmt::Display for Observation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = &self.host;
        match &self.answer {
            Answer::Http {
                status,
                report: Some(report),
            } => {
                let release = report.release.as_deref().unwrap_or("none reported");
                write!(
                    f,
                    "{host} answered {status} {} (release {release})",
                    report.status
                )
            }
            Answer::Http { status, report: None } => {
                write!(f, "{host} answered {status} without a health report")
            }
            Answer::Unreachable(why) => write!(f, "{host} could not be reached: {why}"),
        }
    }
}

/// An HTTP client and an alarm reader set up from the verify configuration.
#[derive(Clone)]
pub struct HealthProbe {
    client: reqwest::Client,
    scheme: String,
    port: u16,
    path: String,
    alarms: AlarmWatch,
}

impl HealthProbe {
    pub fn new(config: &VerifyConfig, aws: Arc<AwsClients>) -> Result<Self, String> {
        let alarms = AlarmWatch::new(config, aws)?;
        if !matches!(config.scheme.as_str(), "http" | "https") {
            return Err(format!(
                "verify.scheme {:?} must be \"https\" or \"http\"",
                config.scheme
            ));
        }
        if !config.path.starts_with('/') {
            return Err(format!("verify.path {:?} must start with '/'", config.path));
        }
        let timeout = Duration::from_millis(config.request_timeout_ms);
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A health endpoint answers for itself; a redirect is not a health report.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tenantctl-verify/", env!("CARGO_PKG_VERSION")));
        if let Some(ip) = config.resolve_to {
            builder = builder.dns_resolver(Arc::new(FixedAddress(ip))).no_proxy();
        }
        let client = builder
            .build()
            .map_err(|e| format!("cannot build the health check client: {e}"))?;
        Ok(Self {
            client,
            scheme: config.scheme.clone(),
            port: config.port,
            path: config.path.clone(),
            alarms,
        })
    }

    /// The tenant's alarms and their states, judged by the configured policy.
    pub async fn alarms(&self, tenant: &TenantSpec) -> AlarmReport {
        self.alarms.read(tenant).await
    }

    /// One check of `host`; with `bypass` (the maintenance token) the request carries
    /// the bypass header, so it reaches the tenant past its maintenance page.
    pub async fn check(&self, host: &Hostname, bypass: Option<&str>) -> Observation {
        let url = format!("{}://{host}:{}{}", self.scheme, self.port, self.path);
        let mut request = self.client.get(&url);
        if let Some(token) = bypass {
            request = request.header(crate::steps::maintenance::BYPASS_HEADER, token);
        }
        let answer = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let report = match response.bytes().await {
                    Ok(body) => serde_json::from_slice::<HealthReport>(&body).ok(),
                    Err(_) => None,
                };
                Answer::Http { status, report }
            }
            Err(e) => Answer::Unreachable(error_chain(&e)),
        };
        Observation {
            host: host.to_string(),
            answer,
        }
    }

    /// One check of each of `hosts`, all at once, answered in the order given, so a
    /// reason built from the first failing one names the same hostname every time.
    pub async fn check_all(&self, hosts: &[Hostname], bypass: Option<&str>) -> Vec<Observation> {
        let mut checks = JoinSet::new();
        for (i, host) in hosts.iter().enumerate() {
            let (probe, host, bypass) = (self.clone(), host.clone(), bypass.map(str::to_owned));
            checks.spawn(async move { (i, probe.check(&host, bypass.as_deref()).await) });
        }
        let mut seen = checks.join_all().await;
        seen.sort_by_key(|(i, _)| *i);
        seen.into_iter().map(|(_, o)| o).collect()
    }
}

/// Bake checks: every hostname of the tenant must answer 2xx with status `ok` and
/// the release, and no alarm of the tenant may count against it. The alarms are read
/// either way, so the answer carries them as evidence.
#[async_trait]
impl TenantProbe for HealthProbe {
    async fn probe(&self, tenant: &TenantSpec, release: &ReleaseVersion) -> TenantHealth {
        // The bake runs after Reopen: it checks what users see, without the bypass.
        let (seen, alarms) = tokio::join!(self.check_all(&tenant.hostnames, None), self.alarms(tenant));
        let evidence = alarms.seen();
        if let Some(failing) = seen.into_iter().find(|o| !o.serves(release)) {
            return TenantHealth::Unhealthy {
                reported_release: failing.reported_release(),
                reason: failing.to_string(),
                alarms: evidence,
            };
        }
        if alarms.healthy() {
            TenantHealth::Healthy { alarms: evidence }
        } else {
            TenantHealth::Unhealthy {
                reported_release: Some(release.to_string()),
                reason: alarms.to_string(),
                alarms: evidence,
            }
        }
    }
}

/// reqwest's top error says only "error sending request"; the cause is further down.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(status: u16, body: &str) -> Observation {
        Observation {
            host: "acme.example.com".into(),
            answer: Answer::Http {
                status,
                report: serde_json::from_str(body).ok(),
            },
        }
    }

    #[test]
    fn only_a_healthy_answer_with_the_wanted_release_serves_it() {
        let want = ReleaseVersion::parse("1.1.0").unwrap();
        assert!(observed(200, r#"{"status":"ok","release":"1.1.0"}"#).serves(&want));
        assert!(!observed(200, r#"{"status":"ok","release":"1.0.0"}"#).serves(&want));
        assert!(!observed(503, r#"{"status":"ok","release":"1.1.0"}"#).serves(&want));
        assert!(!observed(200, r#"{"status":"degraded","release":"1.1.0"}"#).serves(&want));
        assert!(!observed(200, "<html>ok</html>").serves(&want));
        let unreachable = Observation {
            host: "acme.example.com".into(),
            answer: Answer::Unreachable("connection refused".into()),
        };
        assert!(!unreachable.serves(&want));
    }

    #[test]
    fn observations_read_as_the_operator_needs_them() {
        assert_eq!(
            observed(503, r#"{"status":"unhealthy","release":"1.0.0"}"#).to_string(),
            "acme.example.com answered 503 unhealthy (release 1.0.0)"
        );
        assert_eq!(
            observed(404, "not found").to_string(),
            "acme.example.com answered 404 without a health report"
        );
        assert_eq!(
            observed(200, r#"{"status":"ok","release":2}"#).to_string(),
            "acme.example.com answered 200 ok (release 2)"
        );
    }

    #[test]
    fn the_configuration_is_checked_when_the_probe_is_built() {
        let aws = || Arc::new(AwsClients::new(aws_config::SdkConfig::builder().build()));
        let config = VerifyConfig {
            scheme: "ftp".into(),
            ..Default::default()
        };
        assert!(HealthProbe::new(&config, aws())
            .err()
            .unwrap()
            .contains("verify.scheme"));
        let config = VerifyConfig {
            path: "healthz".into(),
            ..Default::default()
        };
        assert!(HealthProbe::new(&config, aws())
            .err()
            .unwrap()
            .contains("verify.path"));
        let config = VerifyConfig {
            extra_alarms: vec!["shared-latency".into()],
            ..Default::default()
        };
        assert!(HealthProbe::new(&config, aws())
            .err()
            .unwrap()
            .contains("verify.extra_alarms"));
        assert!(HealthProbe::new(&VerifyConfig::default(), aws()).is_ok());
    }
}
