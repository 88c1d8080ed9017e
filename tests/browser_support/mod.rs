//! Headless Chromium driven through WebDriver (Debian's `chromium-driver`), with
//! the few commands the dashboard test needs: open a page, find, type, click, read.
//! WebDriver is plain HTTP and JSON, so reqwest is the whole client.
//!
//! `scripts/install-browser.sh` installs the browser and prints `TENANTCTL_CHROMIUM`
//! and `TENANTCTL_CHROMEDRIVER`; without them the usual Debian paths are tried.
//! `TENANTCTL_BROWSER_TESTS=skip` skips browser tests, and nothing else does: a
//! missing browser fails the test, saying how to install one.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The W3C name of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Whether browser tests are switched off (`TENANTCTL_BROWSER_TESTS=skip`); prints
/// why when they are.
pub fn skipped(test: &str) -> bool {
    let skip = std::env::var("TENANTCTL_BROWSER_TESTS").is_ok_and(|v| v == "skip");
    if skip {
        eprintln!("SKIPPED {test}: TENANTCTL_BROWSER_TESTS=skip is set; unset it to run the browser test");
    }
    skip
}

fn locate(var: &str, candidates: &[&str]) -> PathBuf {
    if let Ok(path) = std::env::var(var) {
        return PathBuf::from(path);
    }
    let from_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    for name in candidates {
        let name = PathBuf::from(name);
        if name.is_absolute() && name.is_file() {
            return name;
        }
        if let Some(found) = from_path.iter().map(|dir| dir.join(&name)).find(|p| p.is_file()) {
            return found;
        }
    }
    panic!(
        "no {} found for the browser test: run `eval \"$(scripts/install-browser.sh)\"` \
         (scripts/test.sh does), set {var}, or set TENANTCTL_BROWSER_TESTS=skip to skip it",
        candidates[0]
    );
}

pub struct Browser {
    driver: Child,
    endpoint: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver and the Chromium it started share a process group of their own
        // (see `launch`): end them all, even when a failed test never called `quit`.
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

impl Browser {
    /// Starts chromedriver on a free local port and a headless Chromium session.
    pub async fn launch() -> Self {
        let chromium = locate(
            "TENANTCTL_CHROMIUM",
            &["chromium", "chromium-browser", "/usr/bin/chromium"],
        );
        let chromedriver = locate(
            "TENANTCTL_CHROMEDRIVER",
            &[
                "chromedriver",
                "/usr/lib/chromium/chromedriver",
                "/usr/bin/chromedriver",
            ],
        );
        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", chromedriver.display()));
        let profile = tempfile::tempdir().unwrap();
        let mut browser = Browser {
            driver,
            endpoint: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            http: reqwest::Client::new(),
            _profile: profile,
        };
        browser.wait_until_ready().await;
        let args = [
            "--headless=new".to_owned(),
            // Tests run as root in containers, where Chromium's sandbox cannot start.
            "--no-sandbox".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-gpu".to_owned(),
            "--window-size=1280,1000".to_owned(),
            format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let answer = browser
            .command(
                reqwest::Method::POST,
                "/session",
                json!({"capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {"binary": chromium, "args": args}
                }}}),
            )
            .await
            .unwrap_or_else(|e| panic!("Chromium ({}) did not start: {e}", chromium.display()));
        browser.session = answer["sessionId"].as_str().expect("a session id").to_owned();
        browser
    }

    async fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = self.http.get(format!("{}/status", self.endpoint)).send().await {
                if let Ok(v) = r.json::<Value>().await {
                    if v["value"]["ready"] == true {
                        return;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not get ready within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One WebDriver command; `Err` carries the driver's error (e.g. `no such element`).
    async fn command(&self, method: reqwest::Method, path: &str, body: Value) -> Result<Value, String> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.endpoint));
        if method == reqwest::Method::POST {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let ok = response.status().is_success();
        let value: Value = response.json().await.map_err(|e| e.to_string())?;
        match ok {
            true => Ok(value["value"].clone()),
            false => Err(format!(
                "{}: {}",
                value["value"]["error"].as_str().unwrap_or("error"),
                value["value"]["message"].as_str().unwrap_or("")
            )),
        }
    }

    async fn session_command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Result<Value, String> {
        self.command(method, &format!("/session/{}{path}", self.session), body)
            .await
    }

    pub async fn goto(&self, url: &str) {
        self.session_command(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await
            .unwrap_or_else(|e| panic!("could not open {url}: {e}"));
    }

    pub async fn url(&self) -> String {
        let v = self
            .session_command(reqwest::Method::GET, "/url", Value::Null)
            .await
            .unwrap();
        v.as_str().unwrap_or_default().to_owned()
    }

    pub async fn title(&self) -> String {
        let v = self
            .session_command(reqwest::Method::GET, "/title", Value::Null)
            .await
            .unwrap();
        v.as_str().unwrap_or_default().to_owned()
    }

    /// The first element matching a CSS selector, if there is one now.
    pub async fn find(&self, css: &str) -> Option<String> {
        let body = json!({"using": "css selector", "value": css});
        match self
            .session_command(reqwest::Method::POST, "/element", body)
            .await
        {
            Ok(v) => v[ELEMENT].as_str().map(str::to_owned),
            Err(e) if e.starts_with("no such element") => None,
            Err(e) => panic!("finding {css}: {e}"),
        }
    }

    /// Waits for an element to appear (pages load and redirect asynchronously).
    pub async fn wait_for(&self, css: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(element) = self.find(css).await {
                return element;
            }
            assert!(
                Instant::now() < deadline,
                "{css} did not appear within {within:?} on {}; the page is:\n{}",
                self.url().await,
                self.text_of("body").await.unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn type_into(&self, element: &str, text: &str) {
        let path = format!("/element/{element}/value");
        self.session_command(reqwest::Method::POST, &path, json!({ "text": text }))
            .await
            .unwrap();
    }

    pub async fn click(&self, element: &str) {
        let path = format!("/element/{element}/click");
        self.session_command(reqwest::Method::POST, &path, json!({}))
            .await
            .unwrap();
    }

    /// The rendered text of an element, as a person sees it.
    pub async fn text(&self, element: &str) -> String {
        let path = format!("/element/{element}/text");
        let v = self
            .session_command(reqwest::Method::GET, &path, Value::Null)
            .await
            .unwrap();
        v.as_str().unwrap_or_default().to_owned()
    }

    /// The text of the first element matching `css`, if any. A page that renders
    /// again between the find and the read leaves the element found stale: it is
    /// found again.
    pub async fn text_of(&self, css: &str) -> Option<String> {
        for _ in 0..5 {
            let element = self.find(css).await?;
            let path = format!("/element/{element}/text");
            match (self.session_command(reqwest::Method::GET, &path, Value::Null)).await {
                Ok(v) => return Some(v.as_str().unwrap_or_default().to_owned()),
                Err(e) if e.starts_with("stale element reference") => continue,
                Err(e) => panic!("reading the text of {css}: {e}"),
            }
        }
        panic!("{css} was rendered again on each of five reads of its text")
    }

    /// The browser's cookie called `name`, with its flags (`httpOnly`, `sameSite`, …).
    pub async fn cookie(&self, name: &str) -> Option<Value> {
        self.session_command(reqwest::Method::GET, &format!("/cookie/{name}"), Value::Null)
            .await
            .ok()
    }

    /// A PNG of the viewport, for a person to look at when the test fails.
    pub async fn screenshot(&self, path: &std::path::Path) {
        use base64::Engine;
        let v = self
            .session_command(reqwest::Method::GET, "/screenshot", Value::Null)
            .await
            .unwrap();
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// Closes the browser (dropping the `Browser` also ends chromedriver).
    pub async fn quit(self) {
        if let Err(e) = self
            .session_command(reqwest::Method::DELETE, "", Value::Null)
            .await
        {
            eprintln!("closing the browser session: {e}");
        }
    }
}
