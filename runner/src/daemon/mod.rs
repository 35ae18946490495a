//! The runner daemon: wires the outbox, the attempt table, the connection loop and the
//! status socket together. Frames from the control plane are handled in `inbound`; drain
//! (finish, then exit) and abort (cancel) in `stopping`.

mod inbound;
mod stopping;

use stopping::{exit_when_idle, stop_at_expiry, supervise};

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::attempt;
use crate::attempt::prompt_files::PromptFiles;
use crate::attempt::shims::{ShimKind, Shims};
use crate::config::sandbox::SandboxIdentity;
use crate::config::{ConfigError, Identity, RunnerConfig};
use crate::connection::{self, Refused};
use crate::outbox::Outbox;
use crate::rotation::TokenSource;
use crate::running::Attempts;
use crate::secret::CurrentToken;
use crate::status::{self, Board, Link, StatusError, StatusReport};
use crate::upload::Uploader;
use crate::workspace::mirror::Mirrors;
use crate::workspace::spares::Spares;

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

/// Fences agents if this machine can (see `fence/`); otherwise says loudly what that
/// means. The reason is kept for `kiln-runner status`. Returns the shims agents start in:
/// fenced ones ahead of work when fences can be made.
async fn fence_agents(
    config: &RunnerConfig,
    program: std::path::PathBuf,
    in_sandbox: bool,
) -> (Shims, Result<Arc<crate::attempt::fencing::Fencing>, String>) {
    let fencing = crate::attempt::fencing::Fencing::new(
        config.config_dir.path(),
        &config.cache_dir,
        &config.worktree_base,
        &config.agent_hidden_paths,
        &config.agent_shared_paths,
    );
    let fences = crate::workspace::worktree::fences_dir(&config.worktree_base);
    let fenced = Shims::new(program.clone(), ShimKind::Fenced(fences));
    let probed = crate::attempt::fence_probe::probe(&fenced, &fencing, &config.worktree_base).await;
    let (shims, fencing) = match probed {
        Ok(()) => {
            tracing::info!("agents run fenced: their own user, mount and PID namespaces, this runner's files hidden");
            (fenced, Ok(Arc::new(fencing)))
        }
        Err(reason) if in_sandbox => {
            tracing::info!(%reason, "agents are not fenced inside the sandbox: the box is their fence (one task; this runner is PID 1 and undumpable)");
            (Shims::new(program, ShimKind::Plain), Err(reason))
        }
        Err(reason) => {
            tracing::warn!(%reason, "agents are NOT fenced: they run as this runner's user and can read its token, config and other tasks' files (see SECURITY.md)");
            (Shims::new(program, ShimKind::Plain), Err(reason))
        }
    };
    shims.prepare();
    (shims, fencing)
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
    // A runner that leaves after one task would only waste disk and time on spares.
    let spare_limit = if config.disconnect_after_task {
        0
    } else {
        config.spare_worktrees
    };
    let spares = Spares::new(&config.worktree_base, spare_limit);
    let program = std::env::current_exe()
        .map_err(|e| DaemonError::Http(format!("cannot find own executable: {e}")))?;
    crate::workspace::worktree::clear_orphan_fences(&config.worktree_base);
    let (shims, fencing) = fence_agents(&config, program, sandbox.is_some()).await;
    let shims = Arc::new(shims);
    let prompt_files = Arc::new(PromptFiles::new(&config.worktree_base));
    prompt_files.prepare();
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
            spilled_events: 0,
            spare_worktrees: Vec::new(),
            agents: match &fencing {
                Ok(_) => "fenced".to_owned(),
                Err(reason) => format!("not fenced: {reason}"),
            },
            metrics_address: metrics_listener
                .as_ref()
                .and_then(|l| l.local_addr().ok())
                .map(|a| a.to_string()),
        },
        link: Mutex::default(),
        attempts: Arc::clone(&attempts),
        outbox: Arc::clone(&outbox),
        spares: Arc::clone(&spares),
    });
    let runtime = Arc::new(Runtime {
        shared: attempt::Shared {
            outbox: Arc::clone(&outbox),
            attempts: Arc::clone(&attempts),
            mirrors: Arc::new(Mirrors::new(&config.cache_dir, config.fetch_stall_timeout)),
            spares,
            worktree_base: config.worktree_base.clone(),
            uploader: Uploader::new(http, identity.server_url.clone(), token.clone()),
            kill_grace: config.kill_grace,
            shims: Arc::clone(&shims),
            prompt_files,
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
            results: Arc::new(crate::workspace::results::Results::new(&config.cache_dir)),
            fencing: fencing.as_ref().ok().cloned(),
            enclosure: match sandbox {
                Some(_) => crate::presets::Enclosure::Box,
                None => crate::presets::Enclosure::Host,
            },
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
