//! A real `kiln serve` process on 127.0.0.1, port 0, in a temp data dir.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::{bins, wait};

/// How long a control plane has to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Heartbeat period the test control plane gives runners: short, so liveness tests are
/// quick.
pub const TEST_HEARTBEAT: &str = "1s";

/// The admin token benchmark control planes on PostgreSQL use.
const BENCH_ADMIN_TOKEN: &str = "kiln_adm_bench0123456789abcdef0123456789ab";

/// A running control plane.
#[derive(Debug)]
pub struct ControlPlane {
    /// Temp dir holding the data dir and logs; removed on drop.
    pub root: TempDir,
    /// Its base URL, such as `http://127.0.0.1:41234`.
    pub url: String,
    /// The admin token it generated.
    pub admin_token: String,
    child: Option<Child>,
    http: reqwest::Client,
    extra_args: Vec<String>,
    /// The admin token given to it (`KILN_ADMIN_TOKEN`) rather than generated.
    given_admin_token: Option<String>,
    /// The CA to trust when the server speaks TLS.
    pub ca: Option<PathBuf>,
    profile: Profile,
    /// `KILN_LOG` instead of the profile's.
    log_filter: Option<String>,
}

/// How the control plane is set up for its job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Profile {
    /// Tests: 1 s heartbeats (liveness tests are quick), debug logs (failures are readable).
    Test,
    /// Benchmarks: default heartbeats, warnings only, no sandbox provider.
    Bench,
}

impl ControlPlane {
    /// Starts a control plane in a fresh temp dir.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts a control plane with extra `kiln serve` flags (kept for restarts).
    pub async fn start_with(extra_args: &[&str]) -> Self {
        Self::start_profile(extra_args, Profile::Test).await
    }

    /// Starts a control plane as an operator would run it: default heartbeat, warnings
    /// only, no sandboxes; for benchmarks.
    pub async fn start_bench(extra_args: &[&str]) -> Self {
        Self::start_profile(extra_args, Profile::Bench).await
    }

    /// Starts a control plane for benchmarks on `database` (a PostgreSQL URL), or on its
    /// data dir's SQLite file; on PostgreSQL it gets a fixed admin token, since a database
    /// that a previous run used already has one.
    pub async fn start_bench_on(database: Option<&str>) -> Self {
        let Some(url) = database else {
            return Self::start_bench(&[]).await;
        };
        let mut control_plane = Self::unlaunched(&["--database", url], Profile::Bench);
        control_plane.given_admin_token = Some(BENCH_ADMIN_TOKEN.to_owned());
        control_plane.launch().await;
        control_plane
    }

    async fn start_profile(extra_args: &[&str], profile: Profile) -> Self {
        let mut control_plane = Self::unlaunched(extra_args, profile);
        control_plane.launch().await;
        control_plane
    }

    /// A control plane in a fresh temp dir, not started yet.
    fn unlaunched(extra_args: &[&str], profile: Profile) -> Self {
        Self {
            root: crate::scratch::tempdir(),
            url: String::new(),
            admin_token: String::new(),
            child: None,
            http: reqwest::Client::new(),
            extra_args: extra_args.iter().map(|a| (*a).to_owned()).collect(),
            given_admin_token: None,
            ca: None,
            profile,
            log_filter: None,
        }
    }

    /// Starts a control plane whose log filter (`KILN_LOG`) is `filter`.
    pub async fn start_logging(filter: &str) -> Self {
        let mut control_plane = Self::unlaunched(&[], Profile::Test);
        control_plane.log_filter = Some(filter.to_owned());
        control_plane.launch().await;
        control_plane
    }

    /// Starts one replica of a control plane whose store is the PostgreSQL database at
    /// `database`, with extra `kiln serve` flags; replicas share `admin_token` (only the
    /// first would write a generated one).
    pub async fn start_replica(database: &str, admin_token: &str, extra_args: &[&str]) -> Self {
        let args = [&["--database", database][..], extra_args].concat();
        let mut control_plane = Self::unlaunched(&args, Profile::Test);
        control_plane.given_admin_token = Some(admin_token.to_owned());
        control_plane.launch().await;
        control_plane
    }

    /// Starts a control plane serving HTTPS and WSS with a certificate from a private CA.
    pub async fn start_tls() -> Self {
        let mut control_plane = Self::unlaunched(&[], Profile::Test);
        let files = crate::certs::make(control_plane.root.path());
        let ca_pem = std::fs::read(&files.ca).expect("read CA");
        control_plane.http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca_pem).expect("CA PEM"))
            .build()
            .expect("TLS client");
        let cert = files.cert.to_string_lossy().into_owned();
        let key = files.key.to_string_lossy().into_owned();
        control_plane.extra_args = vec!["--tls-cert".into(), cert, "--tls-key".into(), key];
        control_plane.ca = Some(files.ca);
        control_plane.launch().await;
        control_plane
    }

    /// The data dir.
    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// A scratch directory for the test's own files.
    pub fn scratch(&self) -> PathBuf {
        let path = self.root.path().join("scratch");
        std::fs::create_dir_all(&path).expect("scratch dir");
        path
    }

    fn log_path(&self) -> PathBuf {
        self.root.path().join("serve.log")
    }

    /// (Re)starts the server process on the same data dir, on the same port if it had one.
    pub async fn launch(&mut self) {
        let listen = match self.url.split_once("://") {
            Some((_, address)) => address.to_owned(),
            None => "127.0.0.1:0".to_owned(),
        };
        let data = self.data_dir();
        let _ = std::fs::remove_file(data.join("server.url"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open serve log");
        let (heartbeat, log_filter, sandbox_provider) = match self.profile {
            Profile::Test => (TEST_HEARTBEAT, "info,kiln_control_plane=debug", "docker"),
            Profile::Bench => ("5s", "warn", "none"),
        };
        let mut command = Command::new(bins::path("kiln"));
        match &self.given_admin_token {
            Some(token) => command.env("KILN_ADMIN_TOKEN", token),
            None => command.env_remove("KILN_ADMIN_TOKEN"),
        };
        let child = command
            .args([
                "serve",
                "--listen",
                &listen,
                "--heartbeat-interval",
                heartbeat,
            ])
            .args(["--sandbox-provider", sandbox_provider])
            .args(&self.extra_args)
            .arg("--data-dir")
            .arg(&data)
            .env_remove("KILN_SERVER_URL")
            .env("KILN_LOG", self.log_filter.as_deref().unwrap_or(log_filter))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn kiln serve");
        self.child = Some(child);
        let url_file = data.join("server.url");
        let url = wait::until("kiln serve to write server.url", START_TIMEOUT, || async {
            std::fs::read_to_string(&url_file)
                .ok()
                .map(|s| s.trim().to_owned())
        })
        .await;
        let http = self.http.clone();
        let health = format!("{url}/healthz");
        wait::until("kiln serve to answer /healthz", START_TIMEOUT, || async {
            http.get(&health)
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success())
        })
        .await;
        self.url = url;
        self.admin_token = match &self.given_admin_token {
            Some(token) => token.clone(),
            None => std::fs::read_to_string(data.join("admin.token"))
                .expect("admin token file")
                .trim()
                .to_owned(),
        };
    }

    /// The server's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server with SIGKILL (no graceful shutdown) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs the `kiln` CLI against this control plane (finding it through the data dir).
    pub fn kiln(&self, args: &[&str]) -> Output {
        self.kiln_in(Path::new("."), args)
    }

    /// Runs the `kiln` CLI in `cwd`.
    pub fn kiln_in(&self, cwd: &Path, args: &[&str]) -> Output {
        let mut command = Command::new(bins::path("kiln"));
        if let Some(ca) = &self.ca {
            command.env("KILN_CA_CERT", ca);
        } else {
            command.env_remove("KILN_CA_CERT");
        }
        match &self.given_admin_token {
            Some(token) => command.env("KILN_ADMIN_TOKEN", token),
            None => command.env_remove("KILN_ADMIN_TOKEN"),
        };
        command
            .args(args)
            .current_dir(cwd)
            .env("KILN_DATA_DIR", self.data_dir())
            .env_remove("KILN_SERVER_URL")
            .output()
            .expect("run kiln")
    }

    /// Runs the CLI and asserts it succeeded; returns stdout.
    pub fn kiln_ok(&self, args: &[&str]) -> String {
        let output = self.kiln(args);
        assert!(
            output.status.success(),
            "kiln {args:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `GET path` with the admin token, as JSON.
    pub async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .expect("GET");
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response.json().await.expect("JSON body")
    }

    /// `POST path` with the admin token and a JSON body; its status and JSON body (or
    /// `null` if the body is not JSON), whatever the status.
    pub async fn post_status(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.admin_token)
            .json(body)
            .send()
            .await
            .expect("POST");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `POST path` with the admin token and a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Value {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.admin_token)
            .json(body)
            .send()
            .await
            .expect("POST");
        assert!(
            response.status().is_success(),
            "POST {path}: {}",
            response.status()
        );
        response.json().await.expect("JSON body")
    }

    /// A task with its attempts.
    pub async fn task(&self, id: &str) -> Value {
        self.get(&format!("/v1/tasks/{id}")).await
    }

    /// Waits until a task reaches a terminal state; returns it.
    pub async fn wait_terminal(&self, id: &str, timeout: Duration) -> Value {
        wait::until(&format!("task {id} to end"), timeout, || async {
            let task = self.task(id).await;
            let state = task["state"].as_str().unwrap_or_default().to_owned();
            let live = ["queued", "assigned", "running"];
            (!live.contains(&state.as_str())).then_some(task)
        })
        .await
    }

    /// Waits until at least `count` events of an attempt are stored; returns them.
    pub async fn wait_events(
        &self,
        id: &str,
        attempt: u32,
        count: usize,
        timeout: Duration,
    ) -> Vec<Value> {
        wait::until(
            &format!("{count} events of task {id} attempt {attempt}"),
            timeout,
            || async {
                let events = self.events(id, attempt).await;
                (events.len() >= count).then_some(events)
            },
        )
        .await
    }

    /// Submits a task through the CLI and returns its id.
    pub fn submit(&self, repo: &Path, extra: &[&str], script: &str) -> String {
        let repo = repo.to_string_lossy();
        let mut args = vec!["submit", "--json", "--repo", &repo];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "sh", "-c", script]);
        let output = self.kiln_ok(&args);
        let task: Value = serde_json::from_str(&output).expect("submit JSON");
        task["id"].as_str().expect("task id").to_owned()
    }

    /// Stored events of one attempt, in order.
    pub async fn events(&self, id: &str, attempt: u32) -> Vec<Value> {
        let response = self
            .http
            .get(format!(
                "{}/v1/tasks/{id}/events?attempt={attempt}",
                self.url
            ))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .expect("GET events");
        let text = response.text().await.expect("events body");
        text.lines()
            .map(|l| serde_json::from_str(l).expect("event JSON"))
            .collect()
    }

    /// A registration token with `uses` uses.
    pub fn registration_token(&self, uses: u32) -> String {
        self.kiln_ok(&["token", "create", "--uses", &uses.to_string()])
            .trim()
            .to_owned()
    }

    /// Registers a runner over the API (for raw-socket tests); returns its id and token.
    pub async fn register_raw(&self, name: &str, max_concurrent: u32) -> (String, String) {
        let token = self.registration_token(1);
        let response = self
            .http
            .post(format!("{}/v1/runners/register", self.url))
            .bearer_auth(token)
            .json(&serde_json::json!({ "name": name, "max_concurrent": max_concurrent }))
            .send()
            .await
            .expect("register");
        assert!(
            response.status().is_success(),
            "register: {}",
            response.status()
        );
        let body: Value = response.json().await.expect("register JSON");
        (
            body["runner_id"].as_str().expect("id").to_owned(),
            body["runner_token"].as_str().expect("token").to_owned(),
        )
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- kiln serve log (last lines) ---");
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// stdout lines of an attempt's `log` events, in order.
pub fn stdout_lines(events: &[Value]) -> Vec<String> {
    lines_of(events, "stdout")
}

/// Lines of one stream of an attempt's `log` events, in order.
pub fn lines_of(events: &[Value], stream: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["kind"] == "log" && e["stream"] == stream)
        .map(|e| e["line"].as_str().unwrap_or_default().to_owned())
        .collect()
}
