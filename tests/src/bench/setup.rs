//! A control plane and one real runner as an operator would run them, and the calls the
//! benchmarks make on them: submit, follow a task's events.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt as _;
use memchr::memmem::Finder;
use serde_json::{json, Value};

use crate::{ControlPlane, Runner};

/// Longest wait for a spare worktree: a checkout of the mid-size repository takes seconds on
/// a slow disk.
const SPARE_TIMEOUT: Duration = Duration::from_secs(120);

/// A control plane with one connected real runner.
#[derive(Debug)]
pub struct Stack {
    /// The control plane.
    pub control_plane: ControlPlane,
    /// The runner.
    pub runner: Runner,
    http: reqwest::Client,
}

impl Stack {
    /// Starts both, the runner with `slots` agents at once, logging warnings only; the
    /// control plane on `database` (PostgreSQL) or SQLite.
    pub async fn start(slots: u32, database: Option<&str>) -> Self {
        let control_plane = ControlPlane::start_bench_on(database).await;
        let mut runner = Runner::register(
            &control_plane,
            "bench",
            &["--max-concurrent", &slots.to_string()],
        );
        runner.start_with_env(&[("KILN_LOG", "warn")]);
        runner.wait_online(&control_plane).await;
        Self {
            control_plane,
            runner,
            http: reqwest::Client::new(),
        }
    }

    /// Stops the runner and starts it again with `env` added; its caches stay.
    pub async fn restart_runner_with(&mut self, env: &[(&str, &str)]) {
        self.runner.kill();
        let mut all = vec![("KILN_LOG", "warn")];
        all.extend_from_slice(env);
        self.runner.start_with_env(&all);
        self.runner.wait_online(&self.control_plane).await;
    }

    /// Waits until the runner has a spare worktree of `repo` ready, as it has between tasks.
    pub async fn wait_spare(&self, repo: &Path) {
        let repo = repo.to_string_lossy();
        crate::wait::until("a spare worktree", SPARE_TIMEOUT, || async {
            let status: Value = serde_json::from_slice(&self.runner.status().stdout).ok()?;
            let spares = status["spare_worktrees"].as_array()?;
            spares
                .iter()
                .any(|r| r.as_str() == Some(&repo))
                .then_some(())
        })
        .await;
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.control_plane.url)
    }

    /// `POST /v1/tasks` with `body`; returns the task id.
    pub async fn submit(&self, body: &Value) -> String {
        let response = self
            .http
            .post(self.url("/v1/tasks"))
            .bearer_auth(&self.control_plane.admin_token)
            .json(body)
            .send()
            .await
            .expect("submit");
        assert!(
            response.status().is_success(),
            "submit: {}",
            response.status()
        );
        let task: Value = response.json().await.expect("task JSON");
        task["id"].as_str().expect("task id").to_owned()
    }

    /// Opens a workspace session on `repo`; returns its id.
    pub async fn session(&self, repo: &Path) -> String {
        let response = self
            .http
            .post(self.url("/v1/workspaces"))
            .bearer_auth(&self.control_plane.admin_token)
            .json(&json!({ "repo": repo }))
            .send()
            .await
            .expect("create session");
        assert!(
            response.status().is_success(),
            "session: {}",
            response.status()
        );
        let session: Value = response.json().await.expect("session JSON");
        session["id"].as_str().expect("session id").to_owned()
    }

    /// Follows attempt 1 of a task until it ends, calling `on_line` with each log line's
    /// text as it arrives.
    pub async fn follow(&self, task: &str, mut on_line: impl FnMut(&str)) {
        let response = self
            .http
            .get(self.url(&format!("/v1/tasks/{task}/events?attempt=1&follow=true")))
            .bearer_auth(&self.control_plane.admin_token)
            .send()
            .await
            .expect("follow");
        assert!(
            response.status().is_success(),
            "follow: {}",
            response.status()
        );
        let mut stream = response.bytes_stream();
        let mut pending = Vec::new();
        while let Some(chunk) = stream.next().await {
            pending.extend_from_slice(&chunk.expect("events chunk"));
            let mut start = 0;
            while let Some(end) = memchr::memchr(b'\n', &pending[start..]) {
                let record = &pending[start..start + end];
                if let Some(line) = log_text(record) {
                    on_line(line);
                }
                start += end + 1;
            }
            pending.drain(..start);
        }
    }
}

/// The `line` of a `log` event record, without parsing the whole record.
fn log_text(record: &[u8]) -> Option<&str> {
    static LOG: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(br#""kind":"log""#));
    static LINE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(br#""line":""#));
    LOG.find(record)?;
    let start = LINE.find(record)? + LINE.needle().len();
    let end = memchr::memchr(b'"', &record[start..])? + start;
    std::str::from_utf8(&record[start..end]).ok()
}

/// Nanoseconds since the Unix epoch (comparable across processes on this machine).
pub fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// This executable, which doubles as the log agent (`kiln-bench probe lines ...`).
pub fn probe_program() -> PathBuf {
    std::env::current_exe().expect("own executable")
}

/// The latency agent, `kiln-start-probe`, built statically by `tests/build.rs`.
pub fn start_probe() -> PathBuf {
    PathBuf::from(env!("KILN_START_PROBE"))
}

/// A repository of `files` small files in 100-file directories, one commit, in `parent`.
pub fn repo_with_files(parent: &Path, name: &str, files: usize) -> PathBuf {
    let path = crate::git::repo(parent, name);
    for i in 0..files {
        let dir = path.join(format!("src/d{:03}", i / 100));
        std::fs::create_dir_all(&dir).expect("dir");
        let text = format!("// file {i}\n{}\n", "let x = 1;\n".repeat(80));
        std::fs::write(dir.join(format!("f{i:05}.rs")), text).expect("file");
    }
    crate::git::git(&path, &["add", "--all"]);
    crate::git::git(&path, &["commit", "--quiet", "-m", "files"]);
    path
}

#[cfg(test)]
mod tests {
    #[test]
    fn log_text_finds_the_line_of_log_events_only() {
        let log = br#"{"attempt":1,"seq":3,"ts":1,"kind":"log","stream":"stdout","line":"123 xx"}"#;
        assert_eq!(super::log_text(log), Some("123 xx"));
        let status = br#"{"attempt":1,"seq":1,"ts":1,"kind":"status","phase":"running"}"#;
        assert_eq!(super::log_text(status), None);
    }
}
