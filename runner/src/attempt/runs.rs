//! Running the agent in the worktree: once, or again and again until it prints its
//! completion signal, with a commit after each iteration; then saving the result.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_protocol::{EventBody, Outcome, OutcomeStatus, Phase, Usage};

use super::agent::AgentEnd;
use super::budget::LogBudget;
use super::launch::{Program, Role};
use super::outcome::{self, RunEnd};
use super::rate_limit::{Waited, RESUME_PROMPT};
use super::redact::Needles;
use super::watch::{Budgets, Verdict, Watcher};
use super::Attempt;
use crate::presets::{Invocation, Parser, RunArgs};
use crate::workspace::step::Step;

impl Attempt {
    /// Runs a session setup command in the worktree, streaming its output.
    pub(super) async fn run_setup(&self, path: &Path, argv: &[String]) -> Result<(), String> {
        let key = self.key();
        let outbox = Arc::clone(&self.shared.outbox);
        let program = Program {
            role: Role::Agent,
            argv,
            env: &[],
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

    /// Runs the agent (iterating when asked, waiting out rate limits), then commits,
    /// uploads and pushes the result. `base` is where this task started; `bundle_base` is
    /// the oldest commit the bundle may assume the receiver has; `conversation` is the one
    /// a workspace session's last task recorded.
    pub(super) async fn work_in(
        &self,
        path: &Path,
        base: &str,
        bundle_base: &str,
        invocation: &Invocation,
        conversation: Option<String>,
    ) -> Outcome {
        self.phase(Phase::Running);
        let prompt_file = match self.shared.prompt_files.write(self.spec.prompt.as_bytes()) {
            Ok(path) => path,
            Err(e) => {
                let dir = self.shared.worktree_base.display();
                return outcome::error(format!("cannot write a prompt file in {dir}: {e}"));
            }
        };
        let mut finished = self
            .agent_loop(path, invocation, &prompt_file, conversation)
            .await;
        let _ = std::fs::remove_file(&prompt_file);
        // The next attempt's prompt file, made while nothing waits for it.
        let prompt_files = Arc::clone(&self.shared.prompt_files);
        tokio::task::spawn_blocking(move || prompt_files.prepare());
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

    /// Runs the agent until the attempt's outcome is known.
    async fn agent_loop(
        &self,
        path: &Path,
        invocation: &Invocation,
        prompt_file: &Path,
        conversation: Option<String>,
    ) -> Outcome {
        let signal = self.spec.completion_signal.as_deref();
        let iterations = match signal {
            Some(_) => self.spec.max_iterations.unwrap_or(1).max(1),
            None => 1,
        };
        let budgets = Budgets {
            max_turns: self.spec.max_turns,
            max_cost_usd: self.spec.max_cost_usd,
        };
        let continuing = self
            .spec
            .agent
            .as_ref()
            .is_some_and(|a| a.continue_conversation);
        let secrets: Vec<String> = self.spec.secret_env.values().cloned().collect();
        let (needles, _) = Needles::new(&secrets);
        let mut log = LogBudget::new(self.shared.max_log_bytes);
        let mut usage = Usage::default();
        let mut reported = false;
        let mut session = conversation.filter(|_| continuing);
        let mut resume_prompt: Option<PathBuf> = None;
        let mut after_limit = false;
        let mut limit_waits = 0;
        let mut iteration = 0;
        let mut finished = loop {
            if !after_limit {
                iteration += 1;
                if iterations > 1 {
                    self.say(format!("iteration {iteration} of {iterations}"));
                }
            }
            let resume = session.as_deref().filter(|_| continuing || after_limit);
            let stdin = match (after_limit && resume.is_some(), &resume_prompt) {
                (true, Some(file)) => file.as_path(),
                _ => prompt_file,
            };
            let run = RunArgs {
                resume,
                budget_usd: budgets
                    .max_cost_usd
                    .map(|max| max - usage.cost_usd.unwrap_or(0.0)),
            };
            let argv = invocation.argv(run);
            let key = self.key();
            let outbox = Arc::clone(&self.shared.outbox);
            let mut emit = |body: EventBody| {
                outbox.push(key, body);
            };
            let parser = Parser::new(invocation.format, path);
            let mut watcher = Watcher::new(
                parser,
                needles.clone(),
                signal,
                budgets,
                usage.clone(),
                &mut log,
                &mut emit,
            );
            let name = format!("{iteration}-{limit_waits}");
            let program = Program {
                role: Role::Agent,
                argv: &argv,
                env: &invocation.env,
                stdin: invocation.prompt_on_stdin.then_some(stdin),
                prompt_file: Some(prompt_file),
                name: &name,
            };
            let command = self.prepare(program, path);
            let end = self.run_agent(command, |line| watcher.on_line(line)).await;
            let turns_started = watcher.turns_started;
            let mut report = watcher.finish();
            if turns_started > report.usage.turns.unwrap_or(0) {
                report.usage.turns = Some(turns_started);
            }
            reported |= report.usage != Usage::default();
            usage.add(&report.usage);
            session = report.session.take().or(session);
            let (status, halted) = match &end {
                AgentEnd::SpawnFailed(reason) => break outcome::spawn_failed(reason),
                AgentEnd::Exited { status, halted } => (status, halted.as_ref()),
            };
            if let (None, Some(limit)) = (halted, &report.rate_limit) {
                if invocation.can_resume() && resume_prompt.is_none() {
                    resume_prompt = self
                        .shared
                        .prompt_files
                        .write(RESUME_PROMPT.as_bytes())
                        .ok();
                }
                match self.wait_out(limit, &mut limit_waits).await {
                    Waited::Reset => {
                        after_limit = true;
                        continue;
                    }
                    Waited::Ended(ended) => break *ended,
                }
            }
            after_limit = false;
            let run = RunEnd {
                status,
                halted,
                signaled: report.signaled,
                signal_wanted: signal.is_some(),
                last_iteration: iteration == iterations,
                failure: report.failure.as_deref(),
                exhausted: report.exhausted,
            };
            if !run.runs_again() {
                break run.outcome(iteration);
            }
            self.commit_iteration(path, iteration).await;
        };
        if let Some(file) = resume_prompt {
            let _ = std::fs::remove_file(file);
        }
        if let Some(summary) = log.summary() {
            self.say(summary);
        }
        finished.iterations = finished.iterations.or(Some(iteration));
        finished.usage = reported.then_some(usage);
        finished.agent_session = session;
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
