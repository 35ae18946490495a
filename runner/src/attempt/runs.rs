//! Running the agent in the worktree: once, or again and again until it prints its
//! completion signal, with a commit after each iteration; then saving the result.

use std::path::Path;
use std::sync::Arc;

use kiln_protocol::{EventBody, Outcome, OutcomeStatus, Phase, Usage};

use super::agent::AgentEnd;
use super::budget::LogBudget;
use super::launch::{Program, Role};
use super::outcome::{self, RunEnd};
use super::redact::Needles;
use super::watch::{Budgets, Verdict, Watcher};
use super::Attempt;
use crate::presets::Invocation;
use crate::workspace::step::Step;

impl Attempt {
    /// Runs a session setup command in the worktree, streaming its output.
    pub(super) async fn run_setup(&self, path: &Path, argv: &[String]) -> Result<(), String> {
        let key = self.key();
        let outbox = Arc::clone(&self.shared.outbox);
        let program = Program {
            role: Role::Agent,
            argv,
            stdin: None,
            prompt_file: None,
            name: "setup",
        };
        let command = self.prepare(program, path);
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
            let name = iteration.to_string();
            let program = Program {
                role: Role::Agent,
                argv: &invocation.argv,
                stdin,
                prompt_file: Some(&prompt_file),
                name: &name,
            };
            let command = self.prepare(program, path);
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
        let step = Step::Commit {
            message,
            max_file_bytes: self.shared.max_commit_file_bytes,
        };
        match self.step(path, step).await.map(|s| s.answer.committed) {
            Ok(Some(commit)) => self.say(format!(
                "iteration {iteration} committed as {}",
                &commit[..12.min(commit.len())]
            )),
            Ok(None) => self.say(format!("iteration {iteration} changed nothing")),
            Err(e) => self.say(format!("iteration {iteration} could not be committed: {e}")),
        }
    }
}
