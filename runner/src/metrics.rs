//! `kiln-runner run --metrics-listen ADDR`: a small HTTP endpoint with Prometheus gauges
//! at `/metrics` and the status report as JSON at `/status` (what `kiln-runner status`
//! prints), for monitoring that cannot reach the daemon's Unix socket.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::status::{Board, StatusReport};

/// Longest request head read: a scraper's GET is a few hundred bytes.
const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// Time a client has to send its request: a stalled client must not hold a task forever.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves until `stop`.
pub async fn serve(listener: TcpListener, board: Arc<Board>, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => return,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        let board = Arc::clone(&board);
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, &board)).await;
        });
    }
}

async fn answer(mut stream: TcpStream, board: &Board) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = stream.read(&mut buffer).await?;
        if read == 0 || head.len() + read > MAX_REQUEST_BYTES {
            return Ok(());
        }
        head.extend_from_slice(&buffer[..read]);
    }
    let first_line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = first_line.split(|&b| b == b' ');
    let (method, path) = (parts.next(), parts.next());
    let (status, content_type, body) = match (method, path) {
        (Some(b"GET"), Some(b"/metrics")) => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            render(&board.report()),
        ),
        (Some(b"GET"), Some(b"/status")) => (
            "200 OK",
            "application/json",
            serde_json::to_string(&board.report()).unwrap_or_default(),
        ),
        (Some(b"GET"), _) => ("404 Not Found", "text/plain", "no such page\n".into()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET is served\n".into(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// The runner's gauges.
pub fn render(report: &StatusReport) -> String {
    let mut out = String::new();
    let gauges: [(&str, &str, u64); 6] = [
        (
            "kiln_runner_connected",
            "1 when connected to the control plane.",
            u64::from(report.link.connected),
        ),
        (
            "kiln_runner_draining",
            "1 when taking no new work.",
            u64::from(report.draining),
        ),
        (
            "kiln_runner_slots",
            "Agents this runner runs at once.",
            u64::from(report.max_concurrent),
        ),
        (
            "kiln_runner_running_attempts",
            "Attempts running now.",
            report.running.len() as u64,
        ),
        (
            "kiln_runner_unacked_attempts",
            "Attempts with events the control plane has not acknowledged.",
            report.unacked_attempts as u64,
        ),
        (
            "kiln_runner_spare_worktrees",
            "Spare worktrees checked out and waiting for a task.",
            report.spare_worktrees.len() as u64,
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        let _ = writeln!(out, "{name} {value}");
    }
    let _ = writeln!(
        out,
        "# HELP kiln_runner_spilled_events_total Events written to disk because the control plane did not take them fast enough or was away."
    );
    let _ = writeln!(out, "# TYPE kiln_runner_spilled_events_total counter");
    let _ = writeln!(
        out,
        "kiln_runner_spilled_events_total {}",
        report.spilled_events
    );
    let _ = writeln!(out, "# HELP kiln_runner_info The running version.");
    let _ = writeln!(out, "# TYPE kiln_runner_info gauge");
    let _ = writeln!(out, "kiln_runner_info{{version=\"{}\"}} 1", report.version);
    out
}
