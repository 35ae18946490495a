//! What the daemon does with each frame from the control plane: assignments, cancels,
//! acks, drains, token rotations, session closes and file requests.

use std::path::PathBuf;
use std::sync::Arc;

use kiln_protocol::{
    EventBody, FileResult, FileTarget, LogLine, RunnerMessage, ServerMessage, TaskSpec, Welcome,
    WorkspaceId,
};

use super::{Runtime, DOCKER_CAPABILITY};
use crate::attempt;
use crate::secret::Secret;
use crate::workspace::worktree;

impl Runtime {
    /// Applies the control plane's view from `welcome`, then marks everything unacked as
    /// unsent so it goes out again on this connection.
    pub fn apply_welcome(&self, welcome: &Welcome) {
        for acked in &welcome.acked {
            self.outbox.ack((acked.task_id, acked.attempt), acked.seq);
        }
        for unknown in &welcome.unknown {
            let key = (unknown.task_id, unknown.attempt);
            tracing::warn!(task = %unknown.task_id, attempt = unknown.attempt,
                "control plane has no record of this attempt; stopping it and dropping its events");
            self.attempts.cancel(key);
            self.outbox.forget(key);
        }
        self.outbox.rewind();
    }

    /// Handles one frame from the control plane; returns the replies to send.
    pub fn on_message(&self, text: &str) -> Vec<RunnerMessage> {
        let message = match kiln_protocol::decode::server_frame(text.as_bytes()) {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!(error = %e, "malformed frame from control plane ignored");
                return Vec::new();
            }
        };
        match message {
            ServerMessage::Assign { task, attempt } => vec![self.start(*task, attempt)],
            ServerMessage::Cancel {
                task_id,
                attempt,
                reason,
            } => {
                tracing::info!(task = %task_id, attempt, %reason, "cancel requested");
                let key = (task_id, attempt);
                if self.attempts.cancel(key) {
                    let line = LogLine::system(format!("cancel requested: {reason}"));
                    self.outbox.push(key, EventBody::Log(line));
                }
                Vec::new()
            }
            ServerMessage::Ack {
                task_id,
                attempt,
                seq,
            } => {
                self.outbox.ack((task_id, attempt), seq);
                Vec::new()
            }
            ServerMessage::Drain => {
                tracing::info!("control plane asked this runner to drain");
                self.signals.drain.cancel();
                Vec::new()
            }
            ServerMessage::Rotate { runner_token } => {
                match crate::rotation::apply(
                    &self.token_source,
                    &self.token,
                    Secret::new(runner_token),
                ) {
                    Ok(()) => {
                        tracing::info!("runner token rotated and saved");
                        vec![RunnerMessage::Rotated]
                    }
                    Err(error) => {
                        tracing::error!(%error, "cannot save the rotated token; keeping the old one");
                        Vec::new()
                    }
                }
            }
            ServerMessage::CloseWorkspace { workspace_id } => {
                self.close_workspace(workspace_id);
                Vec::new()
            }
            ServerMessage::FileRequest {
                request_id,
                target,
                op,
            } => {
                // Reading 2 MiB or listing a directory on a slow disk must not hold up the
                // one async thread (heartbeats, agents' output): the answer goes out as a
                // notice on the connection once the file work is done.
                let worktree = self.worktree_of(&target);
                let notices = Arc::clone(&self.shared.notices);
                tokio::task::spawn_blocking(move || {
                    let result = match worktree {
                        Some(path) if path.exists() => crate::workspace::files::apply(&path, &op),
                        Some(_) => FileResult::Failed {
                            error: "the worktree is not ready yet (it is still being checked out)"
                                .into(),
                        },
                        None => FileResult::Failed {
                            error: "no live worktree for that task or session on this runner"
                                .into(),
                        },
                    };
                    notices.post(RunnerMessage::FileResponse { request_id, result });
                });
                Vec::new()
            }
            ServerMessage::Error { message } => {
                tracing::warn!(%message, "control plane refused a frame");
                Vec::new()
            }
            ServerMessage::Welcome(_) => {
                tracing::warn!("unexpected second welcome ignored");
                Vec::new()
            }
        }
    }

    /// The worktree a file request is for, if it is live here.
    fn worktree_of(&self, target: &FileTarget) -> Option<PathBuf> {
        let workspace = match target {
            FileTarget::Workspace { workspace_id } => Some(*workspace_id),
            FileTarget::Task { task_id, attempt } => {
                match self.attempts.workspace_of((*task_id, *attempt))? {
                    Some(workspace) => Some(workspace),
                    None => {
                        let path = worktree::path_for(
                            &self.shared.worktree_base,
                            &task_id.to_string(),
                            *attempt,
                        );
                        return Some(path);
                    }
                }
            }
        };
        workspace
            .and_then(|id| self.shared.workspaces.get(id))
            .map(|w| w.path)
    }

    /// Removes a closed session's worktree (in the background, under its mirror's lock).
    fn close_workspace(&self, id: WorkspaceId) {
        let Some(workspace) = self.shared.workspaces.remove(id) else {
            return;
        };
        tracing::info!(workspace = %id, "closing workspace session");
        let mirrors = Arc::clone(&self.shared.mirrors);
        self.tracker.spawn(async move {
            let mirror = mirrors.lock(&workspace.repo).await;
            worktree::remove(&mirror.path, &workspace.path).await;
        });
    }

    fn start(&self, task: TaskSpec, attempt: u32) -> RunnerMessage {
        let (task_id, key) = (task.task_id, (task.task_id, attempt));
        let workspace = task.workspace.as_ref().map(|w| w.workspace_id);
        if task.container.is_some() && !self.capabilities.iter().any(|c| c == DOCKER_CAPABILITY) {
            return RunnerMessage::Rejected {
                task_id,
                attempt,
                reason: format!("this runner has no {DOCKER_CAPABILITY} capability to run the agent in a container"),
            };
        }
        match self.attempts.claim(key, &task.repo, workspace) {
            Ok(Some(cancel)) => {
                tracing::info!(task = %task_id, attempt, repo = %task.repo, "attempt accepted");
                if self.once {
                    tracing::info!("--disconnect-after-task: this is the last task; draining");
                    self.attempts.start_draining();
                    self.signals.drain.cancel();
                }
                self.outbox.open(key);
                self.tracker
                    .spawn(attempt::run(self.shared.clone(), task, attempt, cancel));
                RunnerMessage::Accepted { task_id, attempt }
            }
            Ok(None) => RunnerMessage::Accepted { task_id, attempt },
            Err(refusal) => RunnerMessage::Rejected {
                task_id,
                attempt,
                reason: refusal.to_string(),
            },
        }
    }
}
