//! The docker executor: the agent runs in a container that sees only its task's worktree
//! (at /workspace) and its prompt, with resource limits, no capabilities, and none of the
//! runner's token, config or environment.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use kiln_protocol::ContainerSpec;
use tokio::process::Command;

/// Where the worktree is mounted in the container.
pub const WORKSPACE: &str = "/workspace";

/// Where the prompt file is mounted in the container.
const PROMPT: &str = "/kiln/prompt";

/// Label on every agent container, holding the runner id, so that a restarted runner can
/// remove containers a crash left behind.
const RUNNER_LABEL: &str = "kiln.runner";

/// Memory an agent container may use by default: room for a language server and a build.
pub const DEFAULT_MEMORY_BYTES: u64 = 4 << 30;

/// CPUs an agent container may use by default.
pub const DEFAULT_CPUS: f64 = 2.0;

/// Processes an agent container may hold by default: enough for builds, not a fork bomb.
pub const DEFAULT_PIDS: u32 = 1024;

/// Network of agent containers by default: agents call model APIs, so they need egress.
pub const DEFAULT_NETWORK: &str = "bridge";

/// Limits put on every agent container (runner.yaml `container:`).
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerLimits {
    /// `--memory`, in bytes.
    pub memory_bytes: u64,
    /// `--cpus`.
    pub cpus: f64,
    /// `--pids-limit`.
    pub pids: u32,
    /// `--network`.
    pub network: String,
}

impl Default for ContainerLimits {
    fn default() -> Self {
        Self {
            memory_bytes: DEFAULT_MEMORY_BYTES,
            cpus: DEFAULT_CPUS,
            pids: DEFAULT_PIDS,
            network: DEFAULT_NETWORK.to_owned(),
        }
    }
}

/// One agent run in a container.
#[derive(Debug)]
pub struct AgentContainer<'a> {
    /// Container name, unique per attempt and run.
    pub name: String,
    /// The runner, for the cleanup label.
    pub runner: &'a str,
    /// The image.
    pub spec: &'a ContainerSpec,
    /// Limits.
    pub limits: &'a ContainerLimits,
    /// The worktree on this machine.
    pub worktree: &'a Path,
    /// The prompt file on this machine, if the run has one.
    pub prompt_file: Option<&'a Path>,
    /// Where the agent's environment is written for `docker run --env-file` (0600, outside
    /// the worktree, removed after the run).
    pub env_file: PathBuf,
}

impl AgentContainer<'_> {
    /// Writes the agent's environment (paths pointing inside the container) to the env
    /// file, and returns the `docker run` argv that runs `argv` inside the container. The
    /// docker client itself keeps the runner's environment: task variables cannot steer it
    /// (`DOCKER_HOST`, `HOME`), and values never appear on a command line.
    pub fn wrap(&self, argv: &[String], env: Vec<(String, String)>) -> Result<Vec<String>, String> {
        let (program, args) = argv.split_first().ok_or("the agent command is empty")?;
        let mut file = String::new();
        for (key, value) in env {
            let value = match key.as_str() {
                "KILN_WORKTREE" => WORKSPACE.to_owned(),
                "KILN_PROMPT_FILE" => PROMPT.to_owned(),
                _ => value,
            };
            if value.contains(['\n', '\r']) {
                return Err(format!(
                    "env {key} has a line break, which the docker executor cannot pass"
                ));
            }
            file.push_str(&format!("{key}={value}\n"));
        }
        // No passwd entry for the runner's uid in the image: give it a writable home.
        file.push_str("HOME=/tmp\n");
        crate::atomic_file::write(
            &self.env_file,
            file.as_bytes(),
            crate::atomic_file::SECRET_MODE,
        )
        .map_err(|e| format!("cannot write {}: {e}", self.env_file.display()))?;
        let user = format!("{}:{}", nix::unistd::getuid(), nix::unistd::getgid());
        let mut command: Vec<String> = [
            "docker",
            "run",
            "--rm",
            "--interactive",
            "--init",
            "--name",
            &self.name,
            "--label",
            &format!("{RUNNER_LABEL}={}", self.runner),
            "--user",
            &user,
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--memory",
            &self.limits.memory_bytes.to_string(),
            "--cpus",
            &self.limits.cpus.to_string(),
            "--pids-limit",
            &self.limits.pids.to_string(),
            "--network",
            &self.limits.network,
            "--env-file",
            &self.env_file.to_string_lossy(),
            "--mount",
            &bind(self.worktree, WORKSPACE, Access::ReadWrite)?,
            "--workdir",
            WORKSPACE,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        if let Some(prompt) = self.prompt_file {
            command.extend([
                "--mount".to_owned(),
                bind(prompt, PROMPT, Access::ReadOnly)?,
            ]);
        }
        // The agent is the program, whatever the image's own entrypoint is.
        command.extend([
            "--entrypoint".to_owned(),
            program.clone(),
            self.spec.image.clone(),
        ]);
        command.extend(args.iter().cloned());
        Ok(command)
    }
}

/// How a bind mount may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    ReadWrite,
    ReadOnly,
}

fn bind(source: &Path, target: &str, access: Access) -> Result<String, String> {
    let source = source
        .to_str()
        .filter(|s| !s.contains([',', '"', '\n']))
        .ok_or_else(|| {
            format!(
                "cannot mount {}: its path has a comma, quote or newline",
                source.display()
            )
        })?;
    let readonly = if access == Access::ReadOnly {
        ",readonly"
    } else {
        ""
    };
    Ok(format!(
        "type=bind,source={source},target={target}{readonly}"
    ))
}

/// Removes a container, whether it still runs or not (its client may have been killed).
pub async fn remove(name: &str) {
    let removed = Command::new("docker")
        .args(["rm", "--force", name])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await;
    match removed {
        Ok(output) if output.status.success() => {}
        Ok(output) => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            if !stderr.contains("No such container") {
                tracing::warn!(container = %name, error = %stderr.trim(), "cannot remove an agent container");
            }
        }
        Err(e) => tracing::warn!(container = %name, error = %e, "cannot run docker rm"),
    }
}

/// Removes the agent containers of `runner` that a crash left behind.
pub async fn remove_leftovers(runner: &str) {
    let listed = Command::new("docker")
        .args(["ps", "--all", "--quiet", "--filter"])
        .arg(format!("label={RUNNER_LABEL}={runner}"))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await;
    let Ok(output) = listed else { return };
    for id in String::from_utf8_lossy(&output.stdout).split_whitespace() {
        tracing::warn!(container = %id, "removing an agent container left by an earlier run");
        remove(id).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_go_to_the_env_file_and_paths_point_inside() {
        let dir = tempfile::tempdir().unwrap();
        let spec = ContainerSpec {
            image: "agent:1".into(),
        };
        let limits = ContainerLimits::default();
        let container = AgentContainer {
            name: "kiln-t-1".into(),
            runner: "r",
            spec: &spec,
            limits: &limits,
            worktree: Path::new("/w/t"),
            prompt_file: Some(Path::new("/w/t.prompt")),
            env_file: dir.path().join("t.env"),
        };
        let env = vec![
            ("API_KEY".to_owned(), "s3cr3t".to_owned()),
            ("KILN_WORKTREE".to_owned(), "/w/t".to_owned()),
        ];
        let argv = container.wrap(&["make".into(), "fix".into()], env).unwrap();
        assert!(!argv.iter().any(|a| a.contains("s3cr3t")), "{argv:?}");
        assert!(argv
            .windows(2)
            .any(|w| w == ["--mount", "type=bind,source=/w/t,target=/workspace"]));
        assert_eq!(
            &argv[argv.len() - 4..],
            ["--entrypoint", "make", "agent:1", "fix"]
        );
        let file = std::fs::read_to_string(dir.path().join("t.env")).unwrap();
        assert!(
            file.contains("API_KEY=s3cr3t\n") && file.contains("KILN_WORKTREE=/workspace\n"),
            "{file}"
        );
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("t.env"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let broken = container.wrap(&["sh".into()], vec![("X".into(), "a\nb".into())]);
        assert!(broken.unwrap_err().contains("env X"));
    }
}
