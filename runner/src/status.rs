//! `kiln-runner status`: the daemon answers on a Unix socket in its config dir with a JSON
//! report; the command reads it. A socket that nobody answers means no daemon is running.

use std::path::Path;
use std::sync::{Arc, Mutex};

use kiln_protocol::{ConnectionId, RunnerId, UnixMillis};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use crate::outbox::Outbox;
use crate::running::{AttemptStatus, Attempts};
use crate::workspace::spares::Spares;

/// Longest status report read; a report is a few KiB even with many attempts.
const MAX_REPORT_BYTES: u64 = 4 * 1024 * 1024;

/// The daemon's connection, as last known.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// Connected to the control plane now.
    pub connected: bool,
    /// The current connection, when connected (`session_id` in the report).
    #[serde(rename = "session_id")]
    pub connection_id: Option<ConnectionId>,
    /// Since when connected (or disconnected).
    pub since: Option<UnixMillis>,
    /// Why the last connection ended or failed.
    pub last_error: Option<String>,
}

/// What `kiln-runner status` prints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The daemon's process id.
    pub pid: u32,
    /// kiln-runner's version.
    pub version: String,
    /// Runner name.
    pub name: String,
    /// Runner id, once registered.
    pub runner_id: Option<RunnerId>,
    /// Control plane URL.
    pub server_url: String,
    /// Connection state.
    pub link: Link,
    /// Taking no new work.
    pub draining: bool,
    /// Slots.
    pub max_concurrent: u32,
    /// Attempts running.
    pub running: Vec<AttemptStatus>,
    /// Attempts with events not yet acknowledged by the control plane.
    pub unacked_attempts: usize,
    /// Events written to disk since start because the control plane did not take them
    /// fast enough or was away.
    #[serde(default)]
    pub spilled_events: u64,
    /// Repositories with a spare worktree checked out and waiting for a task.
    #[serde(default)]
    pub spare_worktrees: Vec<String>,
    /// Whether agents run fenced (`fenced`), or why not (`not fenced: ...`).
    #[serde(default)]
    pub agents: String,
    /// Where `/metrics` and `/status` are served over HTTP (`--metrics-listen`), if anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_address: Option<String>,
}

/// Live state the status report is made from.
#[derive(Debug)]
pub struct Board {
    /// Fixed facts: pid, name, ids.
    pub template: StatusReport,
    /// The connection.
    pub link: Mutex<Link>,
    /// Running attempts.
    pub attempts: Arc<Attempts>,
    /// Unacked events.
    pub outbox: Arc<Outbox>,
    /// Spare worktrees.
    pub spares: Arc<Spares>,
}

impl Board {
    /// Records the connection's state.
    pub fn set_link(&self, link: Link) {
        *self.link.lock().unwrap_or_else(|p| p.into_inner()) = link;
    }

    /// The report as of now.
    pub fn report(&self) -> StatusReport {
        let mut report = self.template.clone();
        report.link = self.link.lock().unwrap_or_else(|p| p.into_inner()).clone();
        report.draining = self.attempts.is_draining();
        report.running = self.attempts.snapshot();
        report.unacked_attempts = self.outbox.announce().len();
        report.spilled_events = self.outbox.spilled();
        report.spare_worktrees = self.spares.ready();
        report
    }
}

/// The status socket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// Another daemon answers on this socket.
    #[error("another kiln-runner is already running with this config dir (it answers on {0})")]
    AlreadyRunning(String),
    /// The socket could not be made.
    #[error("cannot open status socket {path}: {source}")]
    Io {
        /// The socket path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Binds the status socket, refusing if a live daemon already holds it (a stale socket
/// from a killed daemon is replaced).
pub async fn bind(path: &Path) -> Result<UnixListener, StatusError> {
    let shown = path.display().to_string();
    if UnixStream::connect(path).await.is_ok() {
        return Err(StatusError::AlreadyRunning(shown));
    }
    let _ = std::fs::remove_file(path);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| StatusError::Io {
            path: shown.clone(),
            source,
        })?;
    }
    UnixListener::bind(path).map_err(|source| StatusError::Io {
        path: shown,
        source,
    })
}

/// Answers status requests until `stop`.
pub async fn serve(listener: UnixListener, board: Arc<Board>, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => break,
        };
        let Ok((mut stream, _)) = accepted else {
            continue;
        };
        let report = serde_json::to_vec(&board.report()).unwrap_or_default();
        tokio::spawn(async move {
            let _ = stream.write_all(&report).await;
            let _ = stream.shutdown().await;
        });
    }
    if let Ok(address) = listener.local_addr() {
        if let Some(path) = address.as_pathname() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Asks the daemon behind `path`. `None` when no daemon answers.
pub async fn query(path: &Path) -> Option<Result<StatusReport, String>> {
    let stream = UnixStream::connect(path).await.ok()?;
    let mut text = Vec::new();
    let read = stream.take(MAX_REPORT_BYTES).read_to_end(&mut text).await;
    Some(
        read.map_err(|e| e.to_string()).and_then(|_| {
            serde_json::from_slice(&text).map_err(|e| format!("unreadable status: {e}"))
        }),
    )
}
