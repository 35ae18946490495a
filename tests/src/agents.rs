//! Stand-in agent CLIs for tests: `kiln-fake-agent` installed as `claude`, `codex` and
//! `gemini`, replaying transcripts the real CLIs printed, and small shell scripts for
//! loops and escapes no transcript shows.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// Writes an executable script `name` into `bin`.
pub fn install(bin: &Path, name: &str, script: &str) -> PathBuf {
    std::fs::create_dir_all(bin).expect("bin dir");
    let path = bin.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).expect("write agent");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod agent");
    path
}

/// `PATH` with `bin` first.
pub fn path_with(bin: &Path) -> String {
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Installs `claude`, `codex` and `gemini` in `bin` as links to `kiln-fake-agent`, which
/// replays transcripts the real CLIs printed (tests/fixtures/agents/).
pub fn install_fakes(bin: &Path) {
    std::fs::create_dir_all(bin).expect("bin dir");
    let fake = crate::bins::path("kiln-fake-agent");
    for cli in ["claude", "codex", "gemini"] {
        let link = bin.join(cli);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&fake, &link).expect("link the fake agent");
    }
}

/// One task's fake agent: where it records its runs, and what they replay.
#[derive(Debug)]
pub struct FakeAgent {
    dir: PathBuf,
    runs: Vec<String>,
    resets_in: Option<u64>,
}

impl FakeAgent {
    /// A fake whose Nth run replays `runs[N]` (the last repeating), such as
    /// `claude/permission-allow-2.1.226.jsonl`, recording under `dir`.
    pub fn new(dir: &Path, runs: &[&str]) -> Self {
        std::fs::create_dir_all(dir).expect("fake agent dir");
        Self {
            dir: dir.to_path_buf(),
            runs: runs.iter().map(|r| (*r).to_owned()).collect(),
            resets_in: None,
        }
    }

    /// Claude's rate limit resets `seconds` from when the fake prints it.
    pub fn resetting_in(mut self, seconds: u64) -> Self {
        self.resets_in = Some(seconds);
        self
    }

    /// `--env` arguments for `kiln submit`.
    pub fn env_args(&self) -> Vec<String> {
        let mut env = vec![
            format!("KILN_FAKE_AGENT_DIR={}", self.dir.display()),
            format!("KILN_FAKE_AGENT_RUNS={}", self.runs.join(",")),
        ];
        env.extend(
            self.resets_in
                .map(|s| format!("KILN_FAKE_AGENT_RESETS_IN={s}")),
        );
        env.into_iter()
            .flat_map(|e| ["--env".to_owned(), e])
            .collect()
    }

    /// What each run recorded (`argv`, `stdin`, `env`), in order.
    pub fn recorded(&self) -> Vec<serde_json::Value> {
        (0..)
            .map(|n| self.dir.join(format!("run-{n}.json")))
            .take_while(|path| path.exists())
            .map(|path| {
                let text = std::fs::read_to_string(&path).expect("read a run record");
                serde_json::from_str(&text).expect("a run record is JSON")
            })
            .collect()
    }
}

/// A control plane and one runner with the fake agents on its PATH.
#[derive(Debug)]
pub struct AgentFleet {
    /// The control plane.
    pub control_plane: crate::ControlPlane,
    /// Its runner.
    pub runner: crate::Runner,
    /// A repository to work on.
    pub repo: PathBuf,
}

impl AgentFleet {
    /// Starts both, the runner taking four tasks at once.
    pub async fn start() -> Self {
        let control_plane = crate::ControlPlane::start().await;
        let bin = control_plane.scratch().join("bin");
        install_fakes(&bin);
        let path = path_with(&bin);
        let mut runner = crate::Runner::register_with_env(
            &control_plane,
            "agents",
            &["--max-concurrent", "4"],
            &[("PATH", &path)],
        );
        runner.start_with_env(&[("PATH", &path)]);
        runner.wait_online(&control_plane).await;
        let repo = crate::git::repo(&control_plane.scratch(), "app");
        Self {
            control_plane,
            runner,
            repo,
        }
    }

    /// A fake agent recording under the scratch dir's `name`.
    pub fn fake(&self, name: &str, runs: &[&str]) -> FakeAgent {
        FakeAgent::new(&self.control_plane.scratch().join(name), runs)
    }

    /// Submits a task for `preset` whose agent is `fake`; its id.
    pub fn submit(&self, preset: &str, fake: &FakeAgent, extra: &[&str]) -> String {
        let env = fake.env_args();
        let mut args: Vec<&str> = vec!["--agent", preset];
        args.extend(env.iter().map(String::as_str));
        args.extend_from_slice(extra);
        self.control_plane.submit(&self.repo, &args, "unused")
    }

    /// Submits a task for `preset` into workspace session `session`; its id.
    pub fn submit_in(
        &self,
        session: &str,
        preset: &str,
        fake: &FakeAgent,
        extra: &[&str],
    ) -> String {
        let env = fake.env_args();
        let mut args: Vec<&str> = vec!["submit", "--json", "--session", session, "--agent", preset];
        args.extend(env.iter().map(String::as_str));
        args.extend_from_slice(extra);
        let output = self.control_plane.kiln_ok(&args);
        let task: serde_json::Value = serde_json::from_str(&output).expect("submit JSON");
        task["id"].as_str().expect("task id").to_owned()
    }
}

/// The `event` names of an attempt's agent events.
pub fn agent_kinds(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["kind"] == "agent")
        .filter_map(|e| e["event"].as_str().map(str::to_owned))
        .collect()
}

/// The argv a run recorded.
pub fn argv_of(run: &serde_json::Value) -> Vec<String> {
    run["argv"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
