//! One attempt of a task, from fetch to the `finished` event: mirror, worktree, agent,
//! commit, upload, cleanup. Every step reports into the attempt's event stream.

pub mod agent;
mod budget;
mod lines;
mod outcome;
mod redact;

use budget::LogBudget;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kiln_protocol::{EventBody, LogLine, Outcome, OutcomeStatus, Phase, TaskResult, TaskSpec};
use tokio_util::sync::CancellationToken;

use crate::attempts::Attempts;
use crate::outbox::{AttemptKey, Outbox};
use crate::upload::Uploader;
use crate::workspace::mirror::{Fetched, Mirrors};
use crate::workspace::{result, worktree};

/// What an attempt needs from the daemon.
#[derive(Clone, Debug)]
pub struct Shared {
    /// Where events go.
    pub outbox: Arc<Outbox>,
    /// The running-attempt table.
    pub attempts: Arc<Attempts>,
    /// The mirror cache.
    pub mirrors: Arc<Mirrors>,
    /// Where worktrees are made.
    pub worktree_base: PathBuf,
    /// Artifact uploads.
    pub uploader: Uploader,
    /// SIGTERM-to-SIGKILL grace for agents.
    pub kill_grace: Duration,
    /// The executable that runs the agent shim (this program).
    pub shim: PathBuf,
    /// Cancelled when the runner must stop now (uploads give up).
    pub abort: CancellationToken,
    /// Notices for the control plane.
    pub notices: Arc<crate::notices::Notices>,
    /// Mirror cache size limit, if any.
    pub cache_max_bytes: Option<u64>,
    /// Agent output streamed per attempt; beyond it lines are counted, not sent.
    pub max_log_bytes: u64,
}

/// One attempt in progress.
struct Attempt {
    shared: Shared,
    spec: TaskSpec,
    number: u32,
    cancel: CancellationToken,
}

/// Runs attempt `number` of `spec` to its end and frees its slot. The stream must already
/// be open in the outbox and the slot claimed.
pub async fn run(shared: Shared, spec: TaskSpec, number: u32, cancel: CancellationToken) {
    let attempt = Attempt {
        shared,
        spec,
        number,
        cancel,
    };
    let outcome = attempt.execute().await;
    tracing::info!(task = %attempt.spec.task_id, attempt = number, status = ?outcome.status,
        message = %outcome.message, "attempt finished");
    attempt.emit(EventBody::Finished { outcome });
    attempt.shared.attempts.release(attempt.key());
    if let Some(limit) = attempt.shared.cache_max_bytes {
        attempt.shared.mirrors.evict_over(limit).await;
    }
}

impl Attempt {
    fn key(&self) -> AttemptKey {
        (self.spec.task_id, self.number)
    }

    fn emit(&self, body: EventBody) {
        self.shared.outbox.push(self.key(), body);
    }

    fn say(&self, text: impl Into<String>) {
        self.emit(EventBody::Log(LogLine::system(text)));
    }

    fn phase(&self, phase: Phase) {
        self.shared.attempts.set_phase(self.key(), phase);
        self.emit(EventBody::Status { phase });
    }

    async fn execute(&self) -> Outcome {
        if let Err(refusal) = check_spec(&self.spec) {
            return outcome::error(format!("task refused: {refusal}"));
        }
        let repo = &self.spec.repo;
        self.phase(Phase::Fetching);
        let mirror = tokio::select! {
            mirror = self.shared.mirrors.lock(repo) => mirror,
            () = self.cancel.cancelled() => return outcome::cancelled_before_start(),
        };
        let fetched = tokio::select! {
            fetched = self.shared.mirrors.fetch(&mirror, repo) => fetched,
            () = self.cancel.cancelled() => return outcome::cancelled_before_start(),
        };
        match fetched {
            Err(e) => return outcome::error(format!("fetching {repo} failed: {e}")),
            Ok(Fetched::Created) => {
                let notice = kiln_protocol::RunnerMessage::Mirrored { repo: repo.clone() };
                self.shared.notices.post(notice);
            }
            Ok(Fetched::Updated) => {}
        }
        let mirror_path = mirror.path.clone();
        let base_ref = self.spec.base_ref.clone();
        let base =
            match blocking(move || result::resolve_base(&mirror_path, base_ref.as_deref())).await {
                Ok(base) => base,
                Err(e) => return outcome::error(e),
            };
        self.phase(Phase::CheckingOut);
        let task = self.spec.task_id.to_string();
        let base_dir = &self.shared.worktree_base;
        let path = worktree::path_for(base_dir, &task, self.number);
        let earlier: Vec<PathBuf> = (1..self.number)
            .map(|n| worktree::path_for(base_dir, &task, n))
            .collect();
        if let Err(e) = worktree::add(&mirror.path, &path, &self.spec.branch, &base, &earlier).await
        {
            return outcome::error(format!("checkout failed: {e}"));
        }
        self.say(format!(
            "worktree {} on branch {} at {}",
            path.display(),
            self.spec.branch,
            &base[..12.min(base.len())]
        ));
        drop(mirror);

        let outcome = self.work_in(&path, &base).await;
        let mirror = self.shared.mirrors.lock(repo).await;
        worktree::remove(&mirror.path, &path).await;
        outcome
    }

    /// Runs the agent in the worktree, then commits and uploads what it left.
    async fn work_in(&self, path: &std::path::Path, base: &str) -> Outcome {
        self.phase(Phase::Running);
        let prompt_file = self
            .shared
            .worktree_base
            .join(format!("{}-{}.prompt", self.spec.task_id, self.number));
        if let Err(e) = crate::atomic_file::write(
            &prompt_file,
            self.spec.prompt.as_bytes(),
            crate::atomic_file::SECRET_MODE,
        ) {
            return outcome::error(format!(
                "cannot write prompt file {}: {e}",
                prompt_file.display()
            ));
        }
        let mut env: Vec<(String, String)> = vec![
            ("KILN_TASK_ID".into(), self.spec.task_id.to_string()),
            ("KILN_ATTEMPT".into(), self.number.to_string()),
            (
                "KILN_PROMPT_FILE".into(),
                prompt_file.to_string_lossy().into_owned(),
            ),
            ("KILN_WORKTREE".into(), path.to_string_lossy().into_owned()),
            ("KILN_BRANCH".into(), self.spec.branch.clone()),
        ];
        env.extend(self.spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env.extend(
            self.spec
                .secret_env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        let status_file = self
            .shared
            .worktree_base
            .join(format!("{}-{}.status", self.spec.task_id, self.number));
        let command = agent::AgentCommand {
            shim: &self.shared.shim,
            argv: &self.spec.command,
            workdir: path,
            env,
            stdin_file: &prompt_file,
            status_file,
            timeout: self.spec.timeout_ms.map(Duration::from_millis),
            idle_timeout: self.spec.idle_timeout_ms.map(Duration::from_millis),
            kill_grace: self.shared.kill_grace,
            secrets: self.spec.secret_env.values().cloned().collect(),
        };
        let key = self.key();
        let outbox = Arc::clone(&self.shared.outbox);
        let mut budget = LogBudget::new(self.shared.max_log_bytes);
        let end = agent::run(command, &self.cancel, |line| {
            for line in budget.admit(line) {
                outbox.push(key, EventBody::Log(line));
            }
        })
        .await;
        if let Some(summary) = budget.summary() {
            self.say(summary);
        }
        let _ = std::fs::remove_file(&prompt_file);
        let mut outcome = outcome::from_agent(&end);
        if matches!(end, agent::AgentEnd::SpawnFailed(_)) {
            return outcome;
        }
        self.phase(Phase::Committing);
        match self.save_result(path, base).await {
            Ok(result) => outcome.result = Some(result),
            Err(e) => {
                outcome.status = OutcomeStatus::Error;
                outcome.message = format!("{}; saving the result failed: {e}", outcome.message);
            }
        }
        outcome
    }

    /// Commits leftovers, summarises, and uploads bundle and diff when there are commits.
    async fn save_result(&self, path: &std::path::Path, base: &str) -> Result<TaskResult, String> {
        let message = outcome::commit_message(&self.spec, self.number);
        let (worktree, branch, base_commit) =
            (path.to_owned(), self.spec.branch.clone(), base.to_owned());
        let summary = blocking(move || {
            result::commit_leftovers(&worktree, &message).map_err(|e| e.to_string())?;
            result::summarize(&worktree, &branch, &base_commit).map_err(|e| e.to_string())
        })
        .await?;
        let mut saved = TaskResult {
            branch: self.spec.branch.clone(),
            base_commit: base.to_owned(),
            head_commit: summary.head.clone(),
            commits: summary.commits,
            diffstat: summary.diffstat,
            bundle_uploaded: false,
        };
        if saved.commits.is_empty() {
            self.say("the agent changed nothing");
            return Ok(saved);
        }
        self.phase(Phase::Uploading);
        let bundle = self.bundle(path, base).await?;
        let (worktree, head, base_commit) = (path.to_owned(), summary.head, base.to_owned());
        let diff = blocking(move || {
            result::patch(&worktree, &base_commit, &head).map_err(|e| e.to_string())
        })
        .await?;
        let uploader = &self.shared.uploader;
        let abort = &self.shared.abort;
        uploader
            .put(self.spec.task_id, self.number, "bundle", bundle, abort)
            .await?;
        uploader
            .put(self.spec.task_id, self.number, "diff", diff, abort)
            .await?;
        saved.bundle_uploaded = true;
        self.say(format!(
            "uploaded {} commit(s) on {}",
            saved.commits.len(),
            saved.branch
        ));
        Ok(saved)
    }

    async fn bundle(&self, path: &std::path::Path, base: &str) -> Result<Vec<u8>, String> {
        let file =
            tempfile::NamedTempFile::new().map_err(|e| format!("cannot make bundle file: {e}"))?;
        let file_path = file.path().to_string_lossy().into_owned();
        let branch_ref = format!("refs/heads/{}", self.spec.branch);
        let exclude = format!("^{base}");
        crate::workspace::git(
            path,
            &[
                "bundle",
                "create",
                "--quiet",
                &file_path,
                &branch_ref,
                &exclude,
            ],
        )
        .await
        .map_err(|e| e.to_string())?;
        std::fs::read(file.path()).map_err(|e| format!("cannot read bundle: {e}"))
    }
}

/// Runs blocking git work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(format!("git work panicked: {e}")))
}

/// The runner's own check of what it is asked to run (the control plane checks too): no
/// value that reaches git may pass for an option.
fn check_spec(spec: &TaskSpec) -> Result<(), String> {
    use kiln_protocol::validate;
    validate::repo(&spec.repo).map_err(|r| format!("repo {r}"))?;
    validate::git_ref(&spec.branch).map_err(|r| format!("branch {r}"))?;
    if let Some(base) = &spec.base_ref {
        validate::git_ref(base).map_err(|r| format!("base ref {r}"))?;
    }
    if spec.command.first().is_none_or(|p| p.is_empty()) {
        return Err("the command is empty".into());
    }
    Ok(())
}
