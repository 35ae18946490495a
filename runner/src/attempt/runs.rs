//! Running the agent in the worktree: once, or again and again until it prints its
//! completion signal, with a commit after each iteration; then saving the result.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kiln_protocol::{EventBody, Outcome, OutcomeStatus, Phase, Usage};

use super::agent::{self, AgentCommand, AgentEnd, DEFAULT_COMPLETION_GRACE};
use super::budget::LogBudget;
use super::container::{self, AgentContainer};
use super::outcome::{self, RunEnd};
use super::redact::Needles;
use super::watch::{Budgets, Verdict, Watcher};
use super::{blocking, Attempt};
use crate::presets::Invocation;
use crate::workspace::result;

/// A container started for one run, to clean up after it.
#[derive(Debug)]
struct Launched {
    name: String,
    env_file: std::path::PathBuf,
}

impl Attempt {
    fn agent_env(&self, path: &Path, prompt_file: Option<&Path>) -> Vec<(String, String)> {
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
        env.extend(self.spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env.extend(
            self.spec
                .secret_env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        env
    }

    /// How to run `argv` in the worktree: directly, or through the docker executor (then
    /// also the container to clean up afterwards).
    fn command<'a>(
        &'a self,
        argv: &[String],
        path: &'a Path,
        stdin: Option<&'a Path>,
        prompt_file: Option<&Path>,
        run: &str,
    ) -> Result<(AgentCommand<'a>, Option<Launched>), String> {
        let env = self.agent_env(path, prompt_file);
        let (argv, env, launched) = match &self.spec.container {
            None => (argv.to_vec(), env, None),
            Some(spec) => {
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
                let argv = container.wrap(argv, env)?;
                let launched = Launched {
                    name: container.name,
                    env_file: container.env_file,
                };
                (argv, Vec::new(), Some(launched))
            }
        };
        let command = AgentCommand {
            shims: &self.shared.shims,
            argv,
            workdir: path,
            env,
            stdin_file: stdin,
            status_file: self
                .shared
                .worktree_base
                .join(format!("{}-{}.status", self.spec.task_id, self.number)),
            // The task's deadline, which the fetch, checkout and earlier runs count against.
            timeout: self
                .deadline
                .zip(self.spec.timeout_ms.map(Duration::from_millis)),
            idle_timeout: self.spec.idle_timeout_ms.map(Duration::from_millis),
            kill_grace: self.shared.kill_grace,
            secrets: self.spec.secret_env.values().cloned().collect(),
            completion_grace: self
                .spec
                .completion_grace_ms
                .map_or(DEFAULT_COMPLETION_GRACE, Duration::from_millis),
            outbox: &self.shared.outbox,
            key: self.key(),
        };
        Ok((command, launched))
    }

    /// Runs one agent command, removing its container (if any) afterwards.
    async fn run_agent(
        &self,
        command: Result<(AgentCommand<'_>, Option<Launched>), String>,
        handle: impl FnMut(kiln_protocol::LogLine) -> Verdict,
    ) -> AgentEnd {
        let (command, launched) = match command {
            Ok(prepared) => prepared,
            Err(reason) => return AgentEnd::SpawnFailed(reason),
        };
        let end = agent::run(command, &self.cancel, handle).await;
        if let Some(launched) = launched {
            container::remove(&launched.name).await;
            let _ = std::fs::remove_file(&launched.env_file);
        }
        end
    }

    /// Runs a session setup command in the worktree, streaming its output.
    pub(super) async fn run_setup(&self, path: &Path, argv: &[String]) -> Result<(), String> {
        let key = self.key();
        let outbox = Arc::clone(&self.shared.outbox);
        let command = self.command(argv, path, None, None, "setup");
        let end = self
            .run_agent(command, |line| {
                outbox.push(key, EventBody::Log(line));
                Verdict::Continue
            })
            .await;
        match end {
            AgentEnd::SpawnFailed(reason) => Err(format!("could not start: {reason}")),
            AgentEnd::Exited {
                halted: Some(halt), ..
            } => Err(format!("was stopped: {halt:?}")),
            AgentEnd::Exited { status, .. } if status.code == Some(0) => Ok(()),
            AgentEnd::Exited { status, .. } => Err(format!("failed ({status:?})")),
        }
    }

    /// Runs the agent (iterating when asked), then commits, uploads and pushes the result.
    /// `base` is where this task started; `bundle_base` is the oldest commit the bundle may
    /// assume the receiver has.
    pub(super) async fn work_in(
        &self,
        path: &Path,
        base: &str,
        bundle_base: &str,
        invocation: &Invocation,
    ) -> Outcome {
        self.phase(Phase::Running);
        let prompt_file = match self.shared.prompt_files.write(self.spec.prompt.as_bytes()) {
            Ok(path) => path,
            Err(e) => {
                let dir = self.shared.worktree_base.display();
                return outcome::error(format!("cannot write a prompt file in {dir}: {e}"));
            }
        };
        let stdin = invocation.prompt_on_stdin.then_some(prompt_file.as_path());
        let signal = self.spec.completion_signal.as_deref();
        let iterations = match signal {
            Some(_) => self.spec.max_iterations.unwrap_or(1).max(1),
            None => 1,
        };
        let budgets = Budgets {
            max_turns: self.spec.max_turns,
            max_cost_usd: self.spec.max_cost_usd,
        };
        let secrets: Vec<String> = self.spec.secret_env.values().cloned().collect();
        let (needles, _) = Needles::new(&secrets);
        let mut log = LogBudget::new(self.shared.max_log_bytes);
        let mut usage = Usage::default();
        let mut reported = false;
        let mut iteration = 0;
        let mut finished = loop {
            iteration += 1;
            if iterations > 1 {
                self.say(format!("iteration {iteration} of {iterations}"));
            }
            let key = self.key();
            let outbox = Arc::clone(&self.shared.outbox);
            let mut emit = |body: EventBody| {
                outbox.push(key, body);
            };
            let mut watcher = Watcher::new(
                invocation.format,
                needles.clone(),
                signal,
                budgets,
                usage.clone(),
                &mut log,
                &mut emit,
            );
            let command = self.command(
                &invocation.argv,
                path,
                stdin,
                Some(&prompt_file),
                &iteration.to_string(),
            );
            let end = self.run_agent(command, |line| watcher.on_line(line)).await;
            let (signaled, run_usage) = (watcher.signaled, watcher.usage.clone());
            reported |= run_usage != Usage::default();
            usage.add(&run_usage);
            let (status, halted) = match &end {
                AgentEnd::SpawnFailed(reason) => {
                    let _ = std::fs::remove_file(&prompt_file);
                    return outcome::spawn_failed(reason);
                }
                AgentEnd::Exited { status, halted } => (status, halted.as_ref()),
            };
            let run = RunEnd {
                status,
                halted,
                signaled,
                signal_wanted: signal.is_some(),
                last_iteration: iteration == iterations,
            };
            if !run.runs_again() {
                break run.outcome(iteration);
            }
            self.commit_iteration(path, iteration).await;
        };
        let _ = std::fs::remove_file(&prompt_file);
        // The next attempt's prompt file, made while nothing waits for it.
        let prompt_files = Arc::clone(&self.shared.prompt_files);
        tokio::task::spawn_blocking(move || prompt_files.prepare());
        if let Some(summary) = log.summary() {
            self.say(summary);
        }
        finished.usage = reported.then_some(usage);
        self.phase(Phase::Committing);
        match self.save_result(path, base, bundle_base).await {
            Ok(saved) => {
                if saved.commits.is_empty() {
                    finished.message = format!("{}; the agent changed nothing", finished.message);
                }
                finished.result = Some(saved);
            }
            Err(e) => {
                finished.status = OutcomeStatus::Error;
                finished.message = format!("{}; saving the result failed: {e}", finished.message);
            }
        }
        finished
    }

    async fn commit_iteration(&self, path: &Path, iteration: u32) {
        let message = outcome::commit_message(&self.spec, self.number, Some(iteration));
        let (worktree, limit) = (path.to_owned(), self.shared.max_commit_file_bytes);
        match blocking(move || {
            result::commit_leftovers(&worktree, &message, limit).map_err(|e| e.to_string())
        })
        .await
        {
            Ok((Some(commit), _)) => self.say(format!(
                "iteration {iteration} committed as {}",
                &commit[..12]
            )),
            Ok((None, _)) => self.say(format!("iteration {iteration} changed nothing")),
            Err(e) => self.say(format!("iteration {iteration} could not be committed: {e}")),
        }
    }
}
