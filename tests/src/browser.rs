//! A headless Chromium driven over the W3C WebDriver protocol (Debian's `chromium` and
//! `chromium-driver`), for the dashboard's browser test. chromedriver listens on port 0
//! and runs in its own process group, which is killed with the browser when dropped.

use std::io::{BufRead as _, BufReader};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::wait;

/// Time chromedriver has to say which port it took.
const DRIVER_START: Duration = Duration::from_secs(30);

/// A browser session.
#[derive(Debug)]
pub struct Browser {
    http: reqwest::Client,
    session: String,
    driver: Child,
}

/// The W3C key for element references in WebDriver answers.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub async fn start() -> Self {
        let mut driver = Command::new("chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver (apt-get install chromium chromium-driver; .ci/run does)");
        let stdout = driver.stdout.take().expect("chromedriver stdout");
        let port = tokio::task::spawn_blocking(move || {
            BufReader::new(stdout).lines().find_map(|line| {
                let line = line.ok()?;
                let (_, port) = line.split_once("started successfully on port ")?;
                port.trim_end_matches('.').parse::<u16>().ok()
            })
        });
        let port = tokio::time::timeout(DRIVER_START, port)
            .await
            .expect("chromedriver to start")
            .expect("reading chromedriver")
            .expect("chromedriver to name its port");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "args": [
                "--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--disable-gpu", "--window-size=1280,900"
            ] }
        } } });
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("session JSON");
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        Self {
            http,
            session: format!("{base}/session/{session}"),
            driver,
        }
    }

    /// One WebDriver command; `Err` holds the driver's error answer.
    async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Value> {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request
            .send()
            .await
            .expect("webdriver call")
            .json()
            .await
            .expect("webdriver JSON");
        if answer["value"]["error"].is_string() {
            return Err(answer);
        }
        Ok(answer["value"].clone())
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.try_call(method, path, body)
            .await
            .unwrap_or_else(|answer| panic!("webdriver {path}: {answer}"))
    }

    /// The rendered text of the element matching `css`, or `None` while the page has no
    /// such element (it may still be loading after a click).
    async fn try_text(&self, css: &str) -> Option<String> {
        let query = json!({ "using": "css selector", "value": css });
        let found = match self
            .try_call(reqwest::Method::POST, "/element", Some(query))
            .await
        {
            Ok(found) => found,
            Err(answer) if is_transient(&answer) => return None,
            Err(answer) => panic!("webdriver /element {css}: {answer}"),
        };
        let element = found[ELEMENT_KEY].as_str()?.to_owned();
        let path = format!("/element/{element}/text");
        match self.try_call(reqwest::Method::GET, &path, None).await {
            Ok(text) => Some(text.as_str().unwrap_or_default().to_owned()),
            Err(answer) if is_transient(&answer) => None,
            Err(answer) => panic!("webdriver {path}: {answer}"),
        }
    }

    /// Loads `url`.
    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// The page's URL now.
    pub async fn url(&self) -> String {
        let url = self.call(reqwest::Method::GET, "/url", None).await;
        url.as_str().unwrap_or_default().to_owned()
    }

    async fn element(&self, css: &str) -> String {
        let found = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        found[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_owned()
    }

    /// Types `text` into the element matching `css`.
    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.element(css).await;
        let path = format!("/element/{element}/value");
        self.call(reqwest::Method::POST, &path, Some(json!({ "text": text })))
            .await;
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) {
        let element = self.element(css).await;
        let path = format!("/element/{element}/click");
        self.call(reqwest::Method::POST, &path, Some(json!({})))
            .await;
    }

    /// The rendered text of the element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        let element = self.element(css).await;
        let path = format!("/element/{element}/text");
        let text = self.call(reqwest::Method::GET, &path, None).await;
        text.as_str().unwrap_or_default().to_owned()
    }

    /// Waits until the element matching `css` shows `wanted`.
    pub async fn wait_for_text(&self, css: &str, wanted: &str, timeout: Duration) -> String {
        wait::until(&format!("{css} to show {wanted:?}"), timeout, || async {
            let text = self.try_text(css).await?;
            text.contains(wanted).then_some(text)
        })
        .await
    }

    /// Ends the session (the browser closes); dropping also kills what is left.
    pub async fn quit(self) {
        let _ = self.http.delete(&self.session).send().await;
    }

    /// Saves a PNG of the page to `path`.
    pub async fn screenshot(&self, path: &std::path::Path) {
        let encoded = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().expect("base64 screenshot"))
            .expect("decode screenshot");
        std::fs::write(path, png).expect("write screenshot");
    }
}

/// Errors that mean "not yet": the page is between loads.
fn is_transient(answer: &Value) -> bool {
    matches!(
        answer["value"]["error"].as_str(),
        Some("no such element" | "stale element reference")
    )
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver and the browsers it started share its process group.
        let group = nix::unistd::Pid::from_raw(-i32::try_from(self.driver.id()).unwrap_or(0));
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.driver.wait();
    }
}
