//! A real `kiln-runner` process, registered with a test control plane.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use tempfile::TempDir;

use crate::{bins, wait, ControlPlane};

/// How long a runner has to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// A registered runner, running or not.
#[derive(Debug)]
pub struct Runner {
    /// Temp dir with its config dir, cache and log.
    pub root: TempDir,
    /// Its name.
    pub name: String,
    /// Its id.
    pub id: String,
    /// The test's scratch directory, which its agents may write (as an operator's shared
    /// cache would be): tests hand agents gates and collect their records there.
    shared: PathBuf,
    child: Option<Child>,
}

impl Runner {
    /// Registers a runner named `name` with `extra` register flags.
    pub fn register(control_plane: &ControlPlane, name: &str, extra: &[&str]) -> Self {
        Self::register_with_env(control_plane, name, extra, &[])
    }

    /// Registers a runner with extra environment variables for `kiln-runner register`
    /// (such as a `PATH` with stand-in agent CLIs, which it registers as capabilities).
    pub fn register_with_env(
        control_plane: &ControlPlane,
        name: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let root = crate::scratch::tempdir();
        let token = control_plane.registration_token(1);
        let config_dir = root.path().join("config");
        let mut command = Command::new(bins::path("kiln-runner"));
        command
            .args([
                "register",
                "--json",
                "--server",
                &control_plane.url,
                "--name",
                name,
                "--token",
                &token,
            ])
            .arg("--config-dir")
            .arg(&config_dir)
            .arg("--cache-dir")
            .arg(root.path().join("cache"))
            .arg("--worktree-base")
            .arg(root.path().join("worktrees"))
            .args(extra)
            .envs(env.iter().copied());
        if let Some(ca) = &control_plane.ca {
            command.arg("--ca-cert").arg(ca);
        }
        let output = command.output().expect("run kiln-runner register");
        assert!(
            output.status.success(),
            "register failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let registered: Value = serde_json::from_slice(&output.stdout).expect("register JSON");
        Self {
            root,
            shared: control_plane.scratch(),
            name: name.to_owned(),
            id: registered["runner_id"]
                .as_str()
                .expect("runner_id")
                .to_owned(),
            child: None,
        }
    }

    /// The config dir (runner.yaml, status socket).
    pub fn config_dir(&self) -> PathBuf {
        self.root.path().join("config")
    }

    /// Where its worktrees go.
    pub fn worktree_base(&self) -> PathBuf {
        self.root.path().join("worktrees")
    }

    fn log_path(&self) -> PathBuf {
        self.root.path().join("runner.log")
    }

    /// A `kiln-runner` command with this runner's config dir.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(bins::path("kiln-runner"));
        command
            .args(args)
            .arg("--config-dir")
            .arg(self.config_dir())
            .env_remove("KILN_RUNNER_TOKEN")
            .env_remove("KILN_SERVER_URL");
        command
    }

    /// Starts `kiln-runner run`.
    pub fn start(&mut self) {
        self.start_with(&[]);
    }

    /// Starts `kiln-runner run` with extra environment variables.
    pub fn start_with_env(&mut self, env: &[(&str, &str)]) {
        self.spawn(&[], env);
    }

    /// Starts `kiln-runner run` with extra flags (such as `--server` for a proxy).
    pub fn start_with(&mut self, extra: &[&str]) {
        self.spawn(extra, &[]);
    }

    fn spawn(&mut self, extra: &[&str], env: &[(&str, &str)]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open runner log");
        let child = self
            .command(&["run"])
            .args(nix::unistd::geteuid().is_root().then_some("--allow-root"))
            .args(extra)
            .env("KILN_LOG", "info,kiln_runner=debug")
            .env("KILN_AGENT_SHARED_PATHS", &self.shared)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn kiln-runner run");
        self.child = Some(child);
    }

    /// Starts `kiln-runner run` as the unprivileged `uid` and `gid` (through `setpriv`, with
    /// no supplementary groups), its directories given to them first. The test must be
    /// root to do so.
    pub fn start_unprivileged(&mut self, uid: u32, gid: u32) {
        give_tree(self.root.path(), uid, gid);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open runner log");
        let child = Command::new("setpriv")
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .arg("--clear-groups")
            .arg(bins::path("kiln-runner"))
            .arg("run")
            .arg("--config-dir")
            .arg(self.config_dir())
            .env_remove("KILN_RUNNER_TOKEN")
            .env_remove("KILN_SERVER_URL")
            .env("HOME", "/nonexistent")
            .env("KILN_LOG", "info,kiln_runner=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn setpriv kiln-runner run");
        self.child = Some(child);
    }

    /// Starts the runner and waits until the control plane lists it online.
    pub async fn start_connected(&mut self, control_plane: &ControlPlane) {
        self.start();
        self.wait_online(control_plane).await;
    }

    /// Waits until the control plane lists this runner online.
    pub async fn wait_online(&self, control_plane: &ControlPlane) {
        wait::until(
            &format!("runner {} to connect", self.name),
            CONNECT_TIMEOUT,
            || async {
                let runners = control_plane.get("/v1/runners").await;
                runners
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|r| r["id"] == self.id.as_str() && r["state"] == "online")
                    .then_some(())
            },
        )
        .await;
    }

    /// `kiln-runner status --json`.
    pub fn status(&self) -> Output {
        self.command(&["status", "--json"])
            .output()
            .expect("run status")
    }

    /// Sends a signal to the runner process.
    pub fn signal(&self, signal: Signal) {
        let pid = self.child.as_ref().expect("runner running").id();
        kill(Pid::from_raw(i32::try_from(pid).expect("pid")), signal).expect("signal runner");
    }

    /// The runner process's pid.
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.as_ref().expect("runner running").id()).expect("pid")
    }

    /// Waits for the runner process to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("runner running");
        wait::until("runner to exit", timeout, || {
            let status = child.try_wait().expect("try_wait");
            async move { status }
        })
        .await
    }

    /// Kills the runner with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The runner's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- kiln-runner {} log (last lines) ---", self.name);
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// Gives `path` and everything under it to `uid` and `gid`.
fn give_tree(path: &std::path::Path, uid: u32, gid: u32) {
    let _ = std::os::unix::fs::lchown(path, Some(uid), Some(gid));
    if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                give_tree(&entry.path(), uid, gid);
            } else {
                let _ = std::os::unix::fs::lchown(entry.path(), Some(uid), Some(gid));
            }
        }
    }
}
