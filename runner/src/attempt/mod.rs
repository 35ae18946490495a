//! One attempt of a task, from fetch to the `finished` event: mirror, worktree (fresh, or
//! the task's workspace session), agent runs, commit, upload, push, cleanup. Every step
//! reports into the attempt's event stream.

pub mod agent;
mod budget;
pub mod container;
pub mod fence_probe;
pub mod fencing;
mod gate;
mod launch;
mod lines;
mod outcome;
pub mod prompt_files;
mod rate_limit;
mod redact;
mod runs;
mod save;
pub mod shims;
mod steps;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kiln_protocol::{EventBody, LogLine, Outcome, Phase, TaskSpec, WorkspaceSpec};
use tokio_util::sync::CancellationToken;

use crate::outbox::{AttemptKey, Outbox};
use crate::presets::{self, Enclosure, Preset};
use crate::running::Attempts;
use crate::upload::Uploader;
use crate::workspace::mirror::{Fetched, LockedMirror, Mirrors};
use crate::workspace::sessions::{self, Workspace, Workspaces};
use crate::workspace::spares::Spares;
use crate::workspace::step::Step;
use crate::workspace::{result, worktree, GitError};
use container::ContainerLimits;
use prompt_files::PromptFiles;
use shims::Shims;

/// What an attempt needs from the daemon.
#[derive(Clone, Debug)]
pub struct Shared {
    /// Where events go.
    pub outbox: Arc<Outbox>,
    /// The running-attempt table.
    pub attempts: Arc<Attempts>,
    /// The mirror cache.
    pub mirrors: Arc<Mirrors>,
    /// Worktrees checked out ahead of tasks.
    pub spares: Arc<Spares>,
    /// Where worktrees are made.
    pub worktree_base: PathBuf,
    /// Artifact uploads.
    pub uploader: Uploader,
    /// SIGTERM-to-SIGKILL grace for agents.
    pub kill_grace: Duration,
    /// Agent shims, one started ahead of work.
    pub shims: Arc<Shims>,
    /// Prompt files, one made ahead of work.
    pub prompt_files: Arc<PromptFiles>,
    /// Cancelled when the runner must stop now (uploads give up).
    pub abort: CancellationToken,
    /// Notices for the control plane.
    pub notices: Arc<crate::notices::Notices>,
    /// Mirror cache size limit, if any.
    pub cache_max_bytes: Option<u64>,
    /// Agent output streamed per attempt; beyond it lines are counted, not sent.
    pub max_log_bytes: u64,
    /// Files larger than this are not committed.
    pub max_commit_file_bytes: u64,
    /// Agent presets this runner knows.
    pub presets: Arc<Vec<Preset>>,
    /// Open workspace sessions.
    pub workspaces: Arc<Workspaces>,
    /// This runner's id (labels its agent containers).
    pub runner_id: String,
    /// Limits of agent containers (the docker executor).
    pub container_limits: ContainerLimits,
    /// Where results are imported, read and pushed from.
    pub results: Arc<crate::workspace::results::Results>,
    /// How agents are fenced; `None` where this machine cannot (they then run as the
    /// runner's user, seeing what it sees).
    pub fencing: Option<Arc<fencing::Fencing>>,
    /// Where agents run: in a box when this runner is a sandbox's.
    pub enclosure: Enclosure,
}

/// One attempt in progress.
struct Attempt {
    shared: Shared,
    spec: TaskSpec,
    number: u32,
    cancel: CancellationToken,
    /// When the task's overall timeout ends the attempt, counted from its start: it covers
    /// the fetch, the checkout and any setup as well as the agent.
    deadline: Option<tokio::time::Instant>,
}

/// Why the preparation of an attempt stopped before its agent started.
enum Stopped {
    /// A cancel arrived.
    Cancelled,
    /// The task's timeout passed.
    TimedOut,
}

/// Runs attempt `number` of `spec` to its end and frees its slot. The stream must already
/// be open in the outbox and the slot claimed.
pub async fn run(shared: Shared, spec: TaskSpec, number: u32, cancel: CancellationToken) {
    let deadline = spec
        .timeout_ms
        .map(|ms| tokio::time::Instant::now() + Duration::from_millis(ms));
    let attempt = Attempt {
        shared,
        spec,
        number,
        cancel,
        deadline,
    };
    let outcome = attempt.execute().await;
    tracing::info!(task = %attempt.spec.task_id, attempt = number, status = ?outcome.status,
        message = %outcome.message, "attempt finished");
    attempt.emit(EventBody::Finished { outcome });
    attempt.shared.attempts.release(attempt.key());
    if let Some(limit) = attempt.shared.cache_max_bytes {
        let shared = &attempt.shared;
        shared.mirrors.evict_over(limit, &shared.spares).await;
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

    /// Resolves when the attempt must stop: cancelled, or past its deadline.
    async fn stopped(&self) -> Stopped {
        let deadline = async {
            match self.deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = self.cancel.cancelled() => Stopped::Cancelled,
            () = deadline => Stopped::TimedOut,
        }
    }

    /// The outcome of stopping for `why` while doing `during`, before the agent.
    fn stopped_before_start(&self, why: Stopped, during: &str) -> Outcome {
        match (why, self.spec.timeout_ms) {
            (Stopped::TimedOut, Some(ms)) => {
                outcome::timed_out_before_start(Duration::from_millis(ms), during)
            }
            _ => outcome::cancelled_before_start(),
        }
    }

    fn phase(&self, phase: Phase) {
        self.shared.attempts.set_phase(self.key(), phase);
        self.emit(EventBody::Status { phase, until: None });
    }

    async fn execute(&self) -> Outcome {
        if let Err(refusal) = check_spec(&self.spec) {
            return outcome::error(format!("task refused: {refusal}"));
        }
        let enclosure = match self.spec.container {
            Some(_) => Enclosure::Box,
            None => self.shared.enclosure,
        };
        let invocation = match presets::invocation(&self.spec, &self.shared.presets, enclosure) {
            Ok(invocation) => invocation,
            Err(e) => return outcome::error(format!("task refused: {e}")),
        };
        match self.spec.workspace.clone() {
            Some(workspace) => self.in_workspace(&workspace, &invocation).await,
            None => self.in_fresh_worktree(&invocation).await,
        }
    }

    /// Fetches the mirror and checks the base out at `path`; returns the base commit.
    async fn checkout(&self, path: &Path, earlier: &[PathBuf]) -> Result<String, Outcome> {
        let repo = &self.spec.repo;
        self.phase(Phase::Fetching);
        let mirror = tokio::select! {
            mirror = self.shared.mirrors.lock(repo) => mirror,
            why = self.stopped() => return Err(self.stopped_before_start(why, "waiting for the mirror")),
        };
        // Dropping the fetch kills git (`kill_on_drop`).
        let fetched = tokio::select! {
            fetched = self.shared.mirrors.fetch(&mirror, repo) => fetched,
            why = self.stopped() => return Err(self.stopped_before_start(why, "fetching")),
        };
        match fetched {
            Err(e) => return Err(outcome::error(format!("fetching {repo} failed: {e}"))),
            Ok(Fetched::Created) => {
                let notice = kiln_protocol::RunnerMessage::Mirrored { repo: repo.clone() };
                self.shared.notices.post(notice);
            }
            Ok(Fetched::Updated) => {}
        }
        let mirror_path = mirror.path.clone();
        let base_ref = self.spec.base_ref.clone();
        let base = blocking(move || result::resolve_base(&mirror_path, base_ref.as_deref()))
            .await
            .map_err(outcome::error)?;
        self.phase(Phase::CheckingOut);
        let spare = tokio::select! {
            spare = self.shared.spares.take(&mirror) => spare,
            why = self.stopped() => return Err(self.stopped_before_start(why, "checking out")),
        };
        let made = async {
            match spare {
                Some(spare) => {
                    self.adopt_or_add(&mirror, &spare, path, &base, earlier)
                        .await
                }
                None => worktree::add(&mirror.path, path, &self.spec.branch, &base, earlier)
                    .await
                    .map(|()| ""),
            }
        };
        let from = tokio::select! {
            made = made => made.map_err(|e| outcome::error(format!("checkout failed: {e}")))?,
            why = self.stopped() => {
                worktree::remove(&mirror.path, path).await;
                return Err(self.stopped_before_start(why, "checking out"));
            }
        };
        self.shared.spares.replenish(&mirror, repo, &base).await;
        self.say(format!(
            "worktree {} on branch {} at {}{from}",
            path.display(),
            self.spec.branch,
            &base[..12.min(base.len())]
        ));
        Ok(base)
    }

    /// Makes the worktree from a spare, or the usual way if the spare cannot be used.
    /// Returns how it was made, for the attempt's log.
    async fn adopt_or_add(
        &self,
        mirror: &LockedMirror,
        spare: &Path,
        path: &Path,
        base: &str,
        earlier: &[PathBuf],
    ) -> Result<&'static str, GitError> {
        let branch = &self.spec.branch;
        match worktree::adopt(&mirror.path, spare, path, branch, base, earlier).await {
            Ok(()) => Ok(" (from a spare)"),
            Err(error) => {
                tracing::warn!(spare = %spare.display(), %error, "cannot use a spare worktree");
                if spare.exists() {
                    worktree::remove(&mirror.path, spare).await;
                }
                worktree::add(&mirror.path, path, branch, base, earlier).await?;
                Ok("")
            }
        }
    }

    async fn in_fresh_worktree(&self, invocation: &presets::Invocation) -> Outcome {
        let task = self.spec.task_id.to_string();
        let base_dir = &self.shared.worktree_base;
        let path = worktree::path_for(base_dir, &task, self.number);
        let earlier: Vec<PathBuf> = (1..self.number)
            .map(|n| worktree::path_for(base_dir, &task, n))
            .collect();
        let base = match self.checkout(&path, &earlier).await {
            Ok(base) => base,
            Err(outcome) => return outcome,
        };
        let outcome = self.work_in(&path, &base, &base, invocation, None).await;
        let mirror = self.shared.mirrors.lock(&self.spec.repo).await;
        worktree::remove(&mirror.path, &path).await;
        outcome
    }

    /// Runs in the session's worktree, making it (and running the setup) the first time.
    async fn in_workspace(
        &self,
        spec: &WorkspaceSpec,
        invocation: &presets::Invocation,
    ) -> Outcome {
        let workspace = match self.shared.workspaces.get(spec.workspace_id) {
            Some(workspace) => workspace,
            None => match self.open_workspace(spec).await {
                Ok(workspace) => workspace,
                Err(outcome) => return outcome,
            },
        };
        let head = match workspace.head {
            Some(head) => head,
            // The setup commands may have committed, in the agent's view.
            None => match self.step(&workspace.path, Step::Head).await {
                Ok(stepped) => stepped.answer.head,
                Err(e) => return outcome::error(format!("workspace session is broken: {e}")),
            },
        };
        let conversation = workspace.conversations.get(&invocation.preset).cloned();
        let outcome = self
            .work_in(
                &workspace.path,
                &head,
                &workspace.base,
                invocation,
                conversation,
            )
            .await;
        let left_at = outcome.result.as_ref().map(|r| r.head_commit.clone());
        self.shared.workspaces.set_head(spec.workspace_id, left_at);
        if let Some(conversation) = &outcome.agent_session {
            let workspaces = &self.shared.workspaces;
            workspaces.set_conversation(
                spec.workspace_id,
                &invocation.preset,
                conversation.clone(),
            );
        }
        outcome
    }

    async fn open_workspace(&self, spec: &WorkspaceSpec) -> Result<Workspace, Outcome> {
        let path = sessions::path_for(&self.shared.worktree_base, spec.workspace_id);
        let base = self.checkout(&path, &[]).await?;
        for (index, command) in spec.setup.iter().enumerate() {
            self.say(format!(
                "setup {}/{}: {}",
                index + 1,
                spec.setup.len(),
                command.join(" ")
            ));
            if let Err(failure) = self.run_setup(&path, command).await {
                let mirror = self.shared.mirrors.lock(&self.spec.repo).await;
                worktree::remove(&mirror.path, &path).await;
                return Err(outcome::error(format!(
                    "session setup `{}` {failure}",
                    command.join(" ")
                )));
            }
        }
        let workspace = Workspace {
            path,
            repo: self.spec.repo.clone(),
            base,
            // The setup commands may have committed.
            head: None,
            conversations: Default::default(),
        };
        self.shared
            .workspaces
            .insert(spec.workspace_id, workspace.clone());
        Ok(workspace)
    }
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
    Ok(())
}

/// Runs blocking git work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(format!("git work panicked: {e}")))
}
