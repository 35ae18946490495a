//! The docker executor: the agent runs in a container that sees only its task's worktree
//! (at /workspace) and its prompt, with resource limits, no capabilities, and none of the
//! runner's token, config or environment.

use std::path::Path;
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
    /// Container name, unique per attempt and iteration.
    pub name: String,
    /// The runner, for the cleanup label.
    pub runner: &'a str,
    /// The image.
    pub spec: &'a ContainerSpec,
    /// Limits.
    pub limits: &'a ContainerLimits,
    /// The worktree on this machine.
    pub worktree: &'a Path,
    /// The prompt file on this machine.
    pub prompt_file: &'a Path,
}

impl AgentContainer<'_> {
    /// The `docker run` argv that runs `argv` inside the container, and the environment to
    /// give the docker client: values travel as `--env NAME` (never on the command line),
    /// and paths point inside the container.
    pub fn wrap(
        &self,
        argv: &[String],
        env: Vec<(String, String)>,
    ) -> (Vec<String>, Vec<(String, String)>) {
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
            "--volume",
            &format!("{}:{WORKSPACE}", self.worktree.display()),
            "--volume",
            &format!("{}:{PROMPT}:ro", self.prompt_file.display()),
            "--workdir",
            WORKSPACE,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let mut inner_env: Vec<(String, String)> = env
            .into_iter()
            .map(|(key, value)| match key.as_str() {
                "KILN_WORKTREE" => (key, WORKSPACE.to_owned()),
                "KILN_PROMPT_FILE" => (key, PROMPT.to_owned()),
                _ => (key, value),
            })
            .collect();
        // No passwd entry for the runner's uid in the image: give it a writable home.
        inner_env.push(("HOME".to_owned(), "/tmp".to_owned()));
        for (key, _) in &inner_env {
            command.extend(["--env".to_owned(), key.clone()]);
        }
        // The agent is the program, whatever the image's own entrypoint is.
        if let Some((program, args)) = argv.split_first() {
            command.extend(["--entrypoint".to_owned(), program.clone()]);
            command.push(self.spec.image.clone());
            command.extend(args.iter().cloned());
        }
        (command, inner_env)
    }
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
    fn values_stay_off_the_command_line_and_paths_point_inside() {
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
            prompt_file: Path::new("/w/t.prompt"),
        };
        let env = vec![
            ("API_KEY".to_owned(), "s3cr3t".to_owned()),
            ("KILN_WORKTREE".to_owned(), "/w/t".to_owned()),
        ];
        let (argv, env) = container.wrap(&["make".into(), "fix".into()], env);
        assert!(!argv.iter().any(|a| a.contains("s3cr3t")), "{argv:?}");
        assert!(argv.windows(2).any(|w| w == ["--env", "API_KEY"]));
        assert!(argv
            .windows(2)
            .any(|w| w == ["--volume", "/w/t:/workspace"]));
        assert_eq!(
            &argv[argv.len() - 4..],
            ["--entrypoint", "make", "agent:1", "fix"]
        );
        assert!(env.contains(&("KILN_WORKTREE".to_owned(), WORKSPACE.to_owned())));
        assert!(env.contains(&("API_KEY".to_owned(), "s3cr3t".to_owned())));
    }
}
