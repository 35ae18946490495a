//! The runner daemon: wires the outbox, the attempt table, the connection loop and the
//! status socket together, and implements drain (finish, then exit) and abort (cancel).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::path::PathBuf;

use kiln_protocol::{
    EventBody, FileResult, FileTarget, LogLine, RunnerMessage, ServerMessage, TaskSpec, Welcome,
    WorkspaceId,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::attempt;
use crate::attempts::Attempts;
use crate::config::sandbox::SandboxIdentity;
use crate::config::{ConfigError, Identity, RunnerConfig};
use crate::connection::{self, Refused};
use crate::outbox::Outbox;
use crate::rotation::TokenSource;
use crate::secret::{CurrentToken, Secret};
use crate::status::{self, Board, Link, StatusError, StatusReport};
use crate::upload::Uploader;
use crate::workspace::mirror::Mirrors;
use crate::workspace::worktree;

/// After the last attempt ends, how long the daemon waits for the control plane to
/// acknowledge the remaining events before it writes them to the spool and exits; the next
/// start delivers them.
const FINAL_FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// The same wait when the operator asked to abort: short, since they want out.
const ABORT_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// The daemon's stop triggers, fired by `main` from signals (or by tests).
#[derive(Clone, Debug, Default)]
pub struct Signals {
    /// Take no new work; exit when running attempts are done.
    pub drain: CancellationToken,
    /// Cancel running attempts and exit.
    pub abort: CancellationToken,
}

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The status socket is taken or cannot be made.
    #[error(transparent)]
    Status(#[from] StatusError),
    /// The control plane refused the runner.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The spool directory cannot be used.
    #[error("cannot use spool dir {path}: {detail}")]
    Spool {
        /// The directory.
        path: String,
        /// Why.
        detail: String,
    },
    /// The HTTP or TLS client could not be built.
    #[error("{0}")]
    Http(String),
    /// `--metrics-listen` could not be bound.
    #[error("cannot listen on {address} (metrics_listen): {detail}")]
    MetricsListen {
        /// The address.
        address: String,
        /// Why.
        detail: String,
    },
}

/// Everything the connection needs to serve the control plane.
#[derive(Debug)]
pub struct Runtime {
    /// Where to connect, as whom.
    pub identity: Identity,
    /// Whom to trust for wss://.
    pub tls: Arc<rustls::ClientConfig>,
    /// The runner token as of now (rotations replace it).
    pub token: CurrentToken,
    /// Where a rotated token is saved.
    pub token_source: TokenSource,
    /// Runner name.
    pub name: String,
    /// Capabilities announced.
    pub capabilities: Vec<String>,
    /// Labels announced.
    pub labels: BTreeMap<String, String>,
    /// Slots announced.
    pub max_concurrent: u32,
    /// Unacked events.
    pub outbox: Arc<Outbox>,
    /// Running attempts.
    pub attempts: Arc<Attempts>,
    /// What attempts share.
    pub shared: attempt::Shared,
    /// Status report state.
    pub board: Arc<Board>,
    /// Cancelled once the runner stops taking work.
    pub draining: CancellationToken,
    /// The sandbox this runner serves, if it lives in one.
    pub sandbox_id: Option<String>,
    tracker: TaskTracker,
    signals: Signals,
    /// Exit after the first task.
    once: bool,
}

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
                let result = match self.worktree_of(&target) {
                    Some(path) if path.exists() => crate::workspace::files::apply(&path, &op),
                    Some(_) => FileResult::Failed {
                        error: "the worktree is not ready yet (it is still being checked out)"
                            .into(),
                    },
                    None => FileResult::Failed {
                        error: "no live worktree for that task or session on this runner".into(),
                    },
                };
                vec![RunnerMessage::FileResponse { request_id, result }]
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

/// Capability of runners that run agents in containers (the docker executor).
pub const DOCKER_CAPABILITY: &str = "docker";

/// The configured capabilities plus `agent:<preset>` for each agent CLI found on PATH.
fn announced_capabilities(config: &RunnerConfig) -> Vec<String> {
    let mut capabilities = config.capabilities.clone();
    for detected in crate::presets::capabilities(&config.presets) {
        if !capabilities.contains(&detected) {
            capabilities.push(detected);
        }
    }
    capabilities
}

/// Runs the daemon until drained, aborted, or refused by the control plane. A sandbox
/// runner also stops at its sandbox's expiry.
pub async fn run(
    config: RunnerConfig,
    sandbox: Option<SandboxIdentity>,
    signals: Signals,
) -> Result<(), DaemonError> {
    let identity = config.identity()?;
    if let Some(runner) = config.runner_id {
        if config.capabilities.iter().any(|c| c == DOCKER_CAPABILITY) {
            crate::attempt::container::remove_leftovers(&runner.to_string()).await;
        }
    }
    let listener = status::bind(&config.config_dir.status_socket()).await?;
    let metrics_listener =
        match config.metrics_listen {
            Some(address) => Some(TcpListener::bind(address).await.map_err(|source| {
                DaemonError::MetricsListen {
                    address: address.to_string(),
                    detail: source.to_string(),
                }
            })?),
            None => None,
        };
    let token = CurrentToken::new(identity.token.clone());
    let tls = crate::tls::client_config(config.ca_cert.as_deref())
        .map_err(|e| DaemonError::Http(e.to_string()))?;
    let http = crate::tls::http_client(&tls).map_err(|e| DaemonError::Http(e.to_string()))?;
    let spool = config.cache_dir.join("spool");
    let outbox = Arc::new(
        Outbox::with_spool(spool.clone()).map_err(|e| DaemonError::Spool {
            path: spool.display().to_string(),
            detail: e.to_string(),
        })?,
    );
    let attempts = Arc::new(Attempts::new(config.max_concurrent_agents));
    let board = Arc::new(Board {
        template: StatusReport {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            name: config.name.clone(),
            runner_id: config.runner_id,
            server_url: identity.server_url.to_string(),
            link: Link::default(),
            draining: false,
            max_concurrent: config.max_concurrent_agents,
            running: Vec::new(),
            unacked_attempts: 0,
            metrics_address: metrics_listener
                .as_ref()
                .and_then(|l| l.local_addr().ok())
                .map(|a| a.to_string()),
        },
        link: Mutex::default(),
        attempts: Arc::clone(&attempts),
        outbox: Arc::clone(&outbox),
    });
    let runtime = Arc::new(Runtime {
        shared: attempt::Shared {
            outbox: Arc::clone(&outbox),
            attempts: Arc::clone(&attempts),
            mirrors: Arc::new(Mirrors::new(&config.cache_dir)),
            worktree_base: config.worktree_base.clone(),
            uploader: Uploader::new(http, identity.server_url.clone(), token.clone()),
            kill_grace: config.kill_grace,
            shim: std::env::current_exe()
                .map_err(|e| DaemonError::Http(format!("cannot find own executable: {e}")))?,
            abort: signals.abort.clone(),
            notices: Arc::default(),
            max_commit_file_bytes: config.max_commit_file_bytes,
            presets: Arc::new(config.presets.clone()),
            workspaces: Arc::default(),
            cache_max_bytes: config.cache_max_bytes,
            max_log_bytes: config.max_log_bytes,
            runner_id: config
                .runner_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
            container_limits: config.container_limits.clone(),
        },
        identity,
        tls,
        token,
        token_source: config.token_source(),
        name: config.name.clone(),
        capabilities: announced_capabilities(&config),
        labels: config.labels.clone(),
        max_concurrent: config.max_concurrent_agents,
        outbox,
        attempts,
        board: Arc::clone(&board),
        draining: CancellationToken::new(),
        sandbox_id: sandbox.as_ref().map(|s| s.sandbox_id.clone()),
        tracker: TaskTracker::new(),
        signals: signals.clone(),
        once: config.disconnect_after_task,
    });
    let stop_status = CancellationToken::new();
    if let Some(metrics_listener) = metrics_listener {
        tokio::spawn(crate::metrics::serve(
            metrics_listener,
            Arc::clone(&board),
            stop_status.clone(),
        ));
    }
    let status_server = tokio::spawn(status::serve(listener, board, stop_status.clone()));
    tracing::info!(name = %runtime.name, server = %runtime.identity.server_url,
        slots = runtime.max_concurrent, "runner starting");

    if let Some(expires_at) = sandbox.as_ref().and_then(|s| s.expires_at) {
        tokio::spawn(stop_at_expiry(expires_at, signals.clone()));
    }
    if let Some(idle) = config.disconnect_after_idle {
        tokio::spawn(exit_when_idle(
            Arc::clone(&runtime.attempts),
            idle,
            signals.drain.clone(),
        ));
    }
    let stop_link = CancellationToken::new();
    let link = {
        let runtime = Arc::clone(&runtime);
        let stop_link = stop_link.clone();
        tokio::spawn(async move { connection::run(&runtime, stop_link).await })
    };
    let result = supervise(&runtime, &signals, &stop_link, link).await;
    stop_status.cancel();
    let _ = status_server.await;
    result
}

/// The TTL inside the box: at the sandbox's expiry, stop everything, whatever happened to
/// the control plane that forged it.
async fn stop_at_expiry(expires_at: kiln_protocol::UnixMillis, signals: Signals) {
    let left = u64::try_from(expires_at - kiln_protocol::now_millis()).unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(left)).await;
    tracing::warn!("the sandbox's time is up; stopping");
    signals.drain.cancel();
    signals.abort.cancel();
}

/// Drains the runner once it has run nothing for `idle` (for `--disconnect-after-idle`).
async fn exit_when_idle(attempts: Arc<Attempts>, idle: Duration, drain: CancellationToken) {
    loop {
        attempts.wait_idle().await;
        tokio::select! {
            () = tokio::time::sleep(idle) => {
                if attempts.count() == 0 {
                    tracing::info!(idle_s = idle.as_secs(), "--disconnect-after-idle: idle long enough; exiting");
                    drain.cancel();
                    return;
                }
            }
            () = attempts.wait_busy() => {}
            () = drain.cancelled() => return,
        }
    }
}

async fn supervise(
    runtime: &Runtime,
    signals: &Signals,
    stop_link: &CancellationToken,
    mut link: tokio::task::JoinHandle<Result<(), Refused>>,
) -> Result<(), DaemonError> {
    let refused = tokio::select! {
        joined = &mut link => Some(joined.unwrap_or(Ok(()))),
        () = signals.drain.cancelled() => None,
        () = signals.abort.cancelled() => None,
    };
    if let Some(result) = refused {
        // The control plane refused us: results could never be delivered; stop everything.
        runtime.attempts.start_draining();
        runtime.attempts.cancel_all();
        runtime.tracker.close();
        runtime.tracker.wait().await;
        return result.map_err(DaemonError::from);
    }
    runtime.attempts.start_draining();
    runtime.draining.cancel();
    let running = runtime.attempts.count();
    if running > 0 && !signals.abort.is_cancelled() {
        tracing::info!(
            running,
            "draining: finishing running attempts; signal again to cancel them"
        );
    }
    tokio::select! {
        () = runtime.attempts.wait_idle() => {}
        () = signals.abort.cancelled() => {
            tracing::info!("cancelling running attempts");
            runtime.attempts.cancel_all();
        }
    }
    runtime.tracker.close();
    runtime.tracker.wait().await;
    let already_aborted = signals.abort.is_cancelled();
    let flush_timeout = if already_aborted {
        ABORT_FLUSH_TIMEOUT
    } else {
        FINAL_FLUSH_TIMEOUT
    };
    let unflushed = tokio::select! {
        () = runtime.outbox.wait_empty() => false,
        () = tokio::time::sleep(flush_timeout) => true,
        () = signals.abort.cancelled(), if !already_aborted => true,
        joined = &mut link => {
            return joined.unwrap_or(Ok(())).map_err(DaemonError::from);
        }
    };
    if unflushed {
        tracing::warn!("control plane has not acknowledged every event; keeping them in the spool for the next start");
        runtime.outbox.persist();
    }
    stop_link.cancel();
    link.await.unwrap_or(Ok(())).map_err(DaemonError::from)
}
