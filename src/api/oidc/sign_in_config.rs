//! The `dashboard` section of the OpenID Connect configuration: the dashboard signs
//! browsers in with the issuer (authorization code flow with PKCE) as a confidential
//! client. The client secret is read from an environment variable or a file at
//! start-up and never written in the configuration itself.

use std::path::PathBuf;

use reqwest::Url;
use serde::Deserialize;

use super::config::{endpoint_url, OidcConfigError};

/// The path the issuer sends the browser back to; `redirect_url` must end in it.
pub const CALLBACK_PATH: &str = "/login/oidc/callback";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DashboardFile {
    name: Option<String>,
    client_id: String,
    client_secret_env: Option<String>,
    client_secret_file: Option<PathBuf>,
    /// Present only to refuse it with a message saying where a secret goes.
    client_secret: Option<serde_json::Value>,
    redirect_url: String,
    scopes: Option<Vec<String>>,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
}

/// The dashboard's client secret. It never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(String);

impl ClientSecret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret(..)")
    }
}

/// A checked `dashboard` section.
#[derive(Debug, Clone)]
pub struct DashboardSignInConfig {
    /// What the sign-in button says: "Sign in with <name>".
    pub name: String,
    /// The application (client) id registered with the issuer; ID tokens must be
    /// issued for it (`aud`).
    pub client_id: String,
    pub client_secret: ClientSecret,
    /// Where the issuer sends the browser back: this service's
    /// `https://<host>/login/oidc/callback`, registered with the issuer as is.
    pub redirect_url: Url,
    /// The scopes asked for; always includes `openid`.
    pub scopes: Vec<String>,
    /// `None` reads them from the issuer's discovery document.
    pub authorization_endpoint: Option<Url>,
    pub token_endpoint: Option<Url>,
}

fn field(field: &'static str, problem: impl Into<String>) -> OidcConfigError {
    OidcConfigError::Field {
        field,
        problem: problem.into(),
    }
}

fn read_secret(file: &DashboardFile) -> Result<ClientSecret, OidcConfigError> {
    let secret = match (
        &file.client_secret,
        &file.client_secret_env,
        &file.client_secret_file,
    ) {
        (Some(_), _, _) => {
            return Err(field(
                "dashboard.client_secret",
                "a secret is never written in the configuration; put it in an environment \
                 variable and name it with client_secret_env, or in a file named by \
                 client_secret_file",
            ))
        }
        (None, Some(_), Some(_)) => {
            return Err(field(
                "dashboard.client_secret_env",
                "give client_secret_env or client_secret_file, not both",
            ))
        }
        (None, None, None) => {
            return Err(field(
                "dashboard.client_secret_env",
                "the dashboard signs in as a confidential client: name the environment \
                 variable holding its client secret (client_secret_env) or a file holding \
                 it (client_secret_file)",
            ))
        }
        (None, Some(var), None) => std::env::var(var.trim()).map_err(|_| {
            field(
                "dashboard.client_secret_env",
                format!(
                    "the environment variable {var} is not set (or not UTF-8); set it to the client secret"
                ),
            )
        })?,
        (None, None, Some(path)) => std::fs::read_to_string(path).map_err(|e| {
            field(
                "dashboard.client_secret_file",
                format!(
                    "{} could not be read ({e}); it must hold the client secret",
                    path.display()
                ),
            )
        })?,
    };
    let secret = secret.trim();
    if secret.is_empty() {
        return Err(field(
            "dashboard.client_secret_env",
            "the client secret is empty; set it to the secret the issuer gave the application",
        ));
    }
    Ok(ClientSecret(secret.to_owned()))
}

impl DashboardSignInConfig {
    /// Checks a `dashboard` section of the issuer at `issuer_host` and reads its
    /// client secret.
    pub(super) fn check(file: DashboardFile, issuer_host: &str) -> Result<Self, OidcConfigError> {
        let client_id = file.client_id.trim().to_owned();
        if client_id.is_empty() {
            return Err(field(
                "dashboard.client_id",
                "give the application (client) id the issuer registered for the dashboard",
            ));
        }
        let client_secret = read_secret(&file)?;
        let redirect_url = endpoint_url("dashboard.redirect_url", file.redirect_url.trim())?;
        if redirect_url.path() != CALLBACK_PATH || redirect_url.query().is_some() {
            return Err(field(
                "dashboard.redirect_url",
                format!(
                    "{redirect_url} must be this service's address followed by {CALLBACK_PATH}, \
                     e.g. https://tenants.example.com{CALLBACK_PATH}, registered with the issuer as is"
                ),
            ));
        }
        let scopes = file
            .scopes
            .unwrap_or_else(|| vec!["openid".into(), "profile".into()]);
        if !scopes.iter().any(|s| s == "openid") {
            return Err(field(
                "dashboard.scopes",
                "must include openid (without it the issuer returns no ID token), e.g. [openid, profile]",
            ));
        }
        if let Some(bad) = scopes
            .iter()
            .find(|s| s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(field(
                "dashboard.scopes",
                format!("{bad:?} is not a scope; list scopes one by one, e.g. [openid, profile, email]"),
            ));
        }
        let name =
            match file.name.map(|n| n.trim().to_owned()) {
                Some(n) if n.is_empty() => return Err(field(
                    "dashboard.name",
                    "is empty; name the identity provider as users know it (e.g. Entra ID) or leave it out",
                )),
                Some(n) => n,
                None => issuer_host.to_owned(),
            };
        let endpoint =
            |name: &'static str, text: Option<String>| text.map(|t| endpoint_url(name, t.trim())).transpose();
        Ok(Self {
            name,
            client_id,
            client_secret,
            redirect_url,
            scopes,
            authorization_endpoint: endpoint(
                "dashboard.authorization_endpoint",
                file.authorization_endpoint,
            )?,
            token_endpoint: endpoint("dashboard.token_endpoint", file.token_endpoint)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::OidcConfig;

    const BASE: &str = "issuer: https://login.microsoftonline.com/0b5c7a8e-0000-4000-8000-000000000001/v2.0
audience: api://tenant-orchestrator
algorithms: [RS256]
mappings:
  - {claim: groups, value: 5d2f7a10-0000-4000-8000-00000000000a, scope: deploy}
";

    fn with_dashboard(section: &str) -> Result<OidcConfig, String> {
        OidcConfig::parse(&format!("{BASE}dashboard:\n{section}")).map_err(|e| e.to_string())
    }

    fn secret_file(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn a_dashboard_section_loads_with_its_defaults_and_a_secret_from_a_file() {
        let secret = secret_file("s3cret\n");
        let config = with_dashboard(&format!(
            "  client_id: 6731de76-0000-4000-8000-000000000002\n  client_secret_file: {}\n  \
             redirect_url: https://tenants.example.com/login/oidc/callback\n",
            secret.path().display()
        ))
        .unwrap();
        let dashboard = config.dashboard.unwrap();
        assert_eq!(dashboard.name, "login.microsoftonline.com");
        assert_eq!(dashboard.scopes, vec!["openid", "profile"]);
        assert_eq!(dashboard.client_secret.expose(), "s3cret");
        assert!(
            !format!("{dashboard:?}").contains("s3cret"),
            "the secret never prints"
        );
        assert_eq!(dashboard.authorization_endpoint, None);
    }

    #[test]
    fn bad_dashboard_sections_say_what_to_fix() {
        let secret = secret_file("s3cret");
        let good = format!(
            "  name: Entra ID\n  client_id: app\n  client_secret_file: {}\n  \
             redirect_url: https://tenants.example.com/login/oidc/callback\n",
            secret.path().display()
        );
        assert_eq!(with_dashboard(&good).unwrap().dashboard.unwrap().name, "Entra ID");

        let inline = with_dashboard(&format!("{good}  client_secret: s3cret\n")).unwrap_err();
        assert!(
            inline.contains("never written") && inline.contains("client_secret_env"),
            "{inline}"
        );
        let missing = with_dashboard(
            "  client_id: app\n  redirect_url: https://tenants.example.com/login/oidc/callback\n",
        )
        .unwrap_err();
        assert!(missing.contains("client_secret_file"), "{missing}");
        let unset = with_dashboard(
            "  client_id: app\n  client_secret_env: TENANTCTL_TEST_SECRET_THAT_IS_NOT_SET\n  \
             redirect_url: https://tenants.example.com/login/oidc/callback\n",
        )
        .unwrap_err();
        assert!(
            unset.contains("TENANTCTL_TEST_SECRET_THAT_IS_NOT_SET is not set"),
            "{unset}"
        );
        let path = with_dashboard(&good.replace("/login/oidc/callback", "/callback")).unwrap_err();
        assert!(
            path.contains("redirect_url") && path.contains("/login/oidc/callback"),
            "{path}"
        );
        let plain = with_dashboard(&good.replace("https://tenants", "http://tenants")).unwrap_err();
        assert!(
            plain.contains("redirect_url") && plain.contains("https"),
            "{plain}"
        );
        let scopes = with_dashboard(&format!("{good}  scopes: [profile]\n")).unwrap_err();
        assert!(scopes.contains("must include openid"), "{scopes}");
        let blank = secret_file(" \n");
        let empty =
            with_dashboard(&good.replace(secret.path().to_str().unwrap(), blank.path().to_str().unwrap()))
                .unwrap_err();
        assert!(empty.contains("secret is empty"), "{empty}");
    }
}
