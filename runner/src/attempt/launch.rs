//! How one program runs in an attempt's worktree: the agent itself, a session's setup
//! command, or one of the runner's own git steps. Each goes through a shim, in the
//! attempt's fence when the runner can make one (its run directory holding the status
//! file), or in a container for the docker executor.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::agent::{self, AgentCommand, AgentEnd, DEFAULT_COMPLETION_GRACE};
use super::container::{self, AgentContainer};
use super::fencing::{self, RunDir};
use super::watch::Verdict;
use super::Attempt;

/// What is started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The task's agent or a session setup command: the task's env, timeouts and
    /// executor (a container, for the docker executor).
    Agent,
    /// One of the runner's git steps: always on the host, in the agent's view, with no
    /// task env and its own time limit.
    Step,
}

/// A program to run in the worktree, and how.
#[derive(Clone, Copy, Debug)]
pub struct Program<'p> {
    /// What it is.
    pub role: Role,
    /// Its argv; the first element is the program.
    pub argv: &'p [String],
    /// Environment its preset needs, on top of the task's.
    pub env: &'p [(String, String)],
    /// File given as its stdin (none: empty stdin).
    pub stdin: Option<&'p Path>,
    /// The task's prompt file, shown (read-only) in the fence and named in the env.
    pub prompt_file: Option<&'p Path>,
    /// Names the run (the docker executor's container).
    pub name: &'p str,
}

/// Longest a git step on the worktree may take: a commit and bundle of a large change on
/// a slow disk take seconds; one that takes this long is stuck.
const STEP_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// What to clean up after a run.
#[derive(Debug, Default)]
pub struct Launched {
    /// The docker executor's container and env file.
    container: Option<(String, PathBuf)>,
    /// The run directory (status file, a step's bundle).
    pub run: Option<RunDir>,
}

impl Launched {
    /// Removes what the run left: its container, its run directory.
    pub async fn clean_up(self) {
        if let Some((name, env_file)) = self.container {
            container::remove(&name).await;
            let _ = std::fs::remove_file(&env_file);
        }
        if let Some(run) = self.run {
            fencing::remove_all(&run.path);
        }
    }
}

impl Attempt {
    fn agent_env(
        &self,
        path: &Path,
        prompt_file: Option<&Path>,
        preset_env: &[(String, String)],
    ) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = vec![
            ("KILN_TASK_ID".into(), self.spec.task_id.to_string()),
            ("KILN_ATTEMPT".into(), self.number.to_string()),
            ("KILN_WORKTREE".into(), path.to_string_lossy().into_owned()),
            ("KILN_BRANCH".into(), self.spec.branch.clone()),
        ];
        if let Some(prompt_file) = prompt_file {
            env.push((
                "KILN_PROMPT_FILE".into(),
                prompt_file.to_string_lossy().into_owned(),
            ));
        }
        // The task's env may override what the preset sets.
        env.extend(preset_env.iter().cloned());
        env.extend(self.spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env.extend(
            self.spec
                .secret_env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        env
    }

    /// A run directory for one launch: in the worktree's fence, or beside the worktrees.
    pub(super) fn run_dir(&self, path: &Path) -> Result<RunDir, String> {
        let made = match &self.shared.fencing {
            Some(fencing) => fencing
                .dirs(path, &self.shared.mirrors.path_for(&self.spec.repo))
                .and_then(|dirs| fencing.run_dir(&dirs)),
            None => fencing::loose_run_dir(&self.shared.worktree_base),
        };
        made.map_err(|e| format!("cannot make a run directory for {}: {e}", path.display()))
    }

    /// How to run `program` in the worktree at `path`; `run_dir` is where its status goes.
    pub(super) fn command<'a>(
        &'a self,
        program: Program<'a>,
        path: &'a Path,
        run_dir: RunDir,
    ) -> Result<(AgentCommand<'a>, Launched), String> {
        let Program {
            role,
            argv,
            env: preset_env,
            stdin,
            prompt_file,
            name: run,
        } = program;
        let mut launched = Launched::default();
        let container_spec = self.spec.container.as_ref().filter(|_| role == Role::Agent);
        let (argv, env) = match (role, container_spec) {
            (Role::Step, _) => (argv.to_vec(), Vec::new()),
            (Role::Agent, None) => (argv.to_vec(), self.agent_env(path, prompt_file, preset_env)),
            (Role::Agent, Some(spec)) => {
                let name = format!("kiln-agent-{}-{}-{run}", self.spec.task_id, self.number);
                let container = AgentContainer {
                    env_file: self.shared.worktree_base.join(format!("{name}.env")),
                    name,
                    runner: &self.shared.runner_id,
                    spec,
                    limits: &self.shared.container_limits,
                    worktree: path,
                    prompt_file,
                };
                let argv = container.wrap(argv, self.agent_env(path, prompt_file, preset_env))?;
                launched.container = Some((container.name, container.env_file));
                (argv, Vec::new())
            }
        };
        // The docker executor's container is the agent's fence (and the docker CLI needs
        // the engine's socket, which a fence hides).
        let fence = match (&self.shared.fencing, container_spec) {
            (Some(fencing), None) => {
                let mirror = self.shared.mirrors.path_for(&self.spec.repo);
                let dirs = fencing
                    .dirs(path, &mirror)
                    .map_err(|e| format!("cannot make the fence of {}: {e}", path.display()))?;
                // The fenced shim opens its stdin file itself.
                let mut readable: Vec<&Path> = prompt_file.into_iter().collect();
                readable.extend(stdin.filter(|s| Some(*s) != prompt_file));
                Some(fencing.plan(&dirs, &run_dir, path, Some(&mirror), &readable, &[]))
            }
            _ => None,
        };
        let (timeout, idle_timeout, secrets) = match role {
            Role::Agent => (
                // The task's deadline, which the fetch, checkout and earlier runs count
                // against.
                self.deadline
                    .zip(self.spec.timeout_ms.map(Duration::from_millis)),
                self.spec.idle_timeout_ms.map(Duration::from_millis),
                self.spec.secret_env.values().cloned().collect(),
            ),
            Role::Step => (
                Some((tokio::time::Instant::now() + STEP_TIMEOUT, STEP_TIMEOUT)),
                None,
                Vec::new(),
            ),
        };
        let command = AgentCommand {
            shims: &self.shared.shims,
            argv,
            workdir: path,
            env,
            stdin_file: stdin,
            status_file: run_dir.status_file.clone(),
            fence,
            timeout,
            idle_timeout,
            kill_grace: self.shared.kill_grace,
            secrets,
            completion_grace: self
                .spec
                .completion_grace_ms
                .map_or(DEFAULT_COMPLETION_GRACE, Duration::from_millis),
            outbox: &self.shared.outbox,
            key: self.key(),
        };
        launched.run = Some(run_dir);
        Ok((command, launched))
    }

    /// Runs one prepared command, then cleans up after it (its container, its run
    /// directory).
    pub(super) async fn run_agent(
        &self,
        command: Result<(AgentCommand<'_>, Launched), String>,
        handle: impl FnMut(kiln_protocol::LogLine) -> Verdict,
    ) -> AgentEnd {
        let (command, launched) = match command {
            Ok(prepared) => prepared,
            Err(reason) => return AgentEnd::SpawnFailed(reason),
        };
        let end = agent::run(command, &self.cancel, handle).await;
        launched.clean_up().await;
        end
    }

    /// Prepares `program` in the worktree at `path`, with a fresh run directory.
    pub(super) fn prepare<'a>(
        &'a self,
        program: Program<'a>,
        path: &'a Path,
    ) -> Result<(AgentCommand<'a>, Launched), String> {
        let run_dir = self.run_dir(path)?;
        self.command(program, path, run_dir)
    }
}
