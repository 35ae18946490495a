//! Timeouts and cancels hold whatever the runner does: a fetch from a server that never
//! answers is under the task's timeout, a draining runner is not held by a stalled fetch,
//! and a runner that accepts and heartbeats but never reports cannot keep a task running
//! past its timeout or its cancel.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly, naming the call"
)]

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use kiln_tests::raw;
use kiln_tests::{wait, ControlPlane, Runner};
use nix::sys::signal::Signal;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

const TIMEOUT: Duration = Duration::from_secs(60);

/// A server on 127.0.0.1 that accepts connections and never says a word; its URL.
async fn silent_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("http://{address}/app.git")
}

fn submit(control_plane: &ControlPlane, repo: &str, extra: &[&str]) -> String {
    let mut args = vec!["submit", "--json", "--repo", repo];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "true"]);
    let task: Value = serde_json::from_str(&control_plane.kiln_ok(&args)).unwrap();
    task["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_timeout_covers_a_fetch_from_a_server_that_never_answers() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box", &[]);
    runner.start_connected(&control_plane).await;
    let repo = silent_server().await;
    let started = std::time::Instant::now();
    let id = submit(&control_plane, &repo, &["--timeout", "3s"]);
    let task = control_plane.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["state"], "timed_out", "{task}");
    let message = task["outcome"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("while fetching"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "ended at its timeout, not much later: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_draining_runner_is_not_held_by_a_stalled_fetch() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box", &[]);
    runner.start_with_env(&[("KILN_FETCH_STALL_TIMEOUT", "2s")]);
    runner.wait_online(&control_plane).await;
    let repo = silent_server().await;
    let id = submit(&control_plane, &repo, &[]);
    wait::until("the fetch to start", TIMEOUT, || async {
        let events = control_plane.events(&id, 1).await;
        events
            .iter()
            .any(|e| e["kind"] == "status" && e["phase"] == "fetching")
            .then_some(())
    })
    .await;
    runner.signal(Signal::SIGTERM);
    let status = runner.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "{status}");
    let task = control_plane.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["state"], "error", "{task}");
    let message = task["outcome"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("fetching") && message.contains("too slow"),
        "{message}"
    );
}

/// A runner that accepts every assignment and heartbeats, and never reports anything;
/// the frames it receives come out of the channel.
async fn silent_runner(control_plane: &ControlPlane) -> mpsc::UnboundedReceiver<Value> {
    let (_id, token) = control_plane.register_raw("silent", 2).await;
    let mut socket = raw::connect(&control_plane.url, &token).await.unwrap();
    raw::send(&mut socket, raw::hello(1, json!([])).to_string()).await;
    let (frames, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut beat = tokio::time::interval(Duration::from_millis(300));
        loop {
            tokio::select! {
                _ = beat.tick() => {
                    let heartbeat = json!({"type": "heartbeat", "running": 0, "free_slots": 2});
                    if socket.send(Message::Text(heartbeat.to_string().into())).await.is_err() {
                        return;
                    }
                }
                frame = socket.next() => {
                    let Some(Ok(Message::Text(text))) = frame else { return };
                    let frame: Value = serde_json::from_str(&text).unwrap();
                    if frame["type"] == "assign" {
                        let accepted = json!({"type": "accepted",
                            "task_id": frame["task"]["task_id"], "attempt": frame["attempt"]});
                        let _ = socket.send(Message::Text(accepted.to_string().into())).await;
                    }
                    let _ = frames.send(frame);
                }
            }
        }
    });
    received
}

#[tokio::test]
async fn a_runner_that_never_reports_cannot_hold_a_task_past_its_timeout_or_cancel() {
    let control_plane = ControlPlane::start_with(&["--stop-grace", "2s"]).await;
    let mut frames = silent_runner(&control_plane).await;
    let repo = kiln_tests::git::repo(&control_plane.scratch(), "app");
    let repo = repo.to_string_lossy();
    let timed = submit(&control_plane, &repo, &["--timeout", "2s"]);
    let cancelled = submit(&control_plane, &repo, &[]);
    for id in [&timed, &cancelled] {
        wait::until("the silent runner to accept", TIMEOUT, || async {
            (control_plane.task(id).await["state"] == "running").then_some(())
        })
        .await;
    }
    control_plane.kiln_ok(&["cancel", &cancelled]);

    let started = std::time::Instant::now();
    let timed_out = control_plane.wait_terminal(&timed, TIMEOUT).await;
    assert_eq!(timed_out["state"], "timed_out", "{timed_out}");
    let message = timed_out["outcome"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("the control plane ended it"), "{message}");
    let gone = control_plane.wait_terminal(&cancelled, TIMEOUT).await;
    assert_eq!(gone["state"], "cancelled", "{gone}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    // The runner was told to stop both.
    let mut cancels = Vec::new();
    while cancels.len() < 2 {
        let frame = tokio::time::timeout(TIMEOUT, frames.recv())
            .await
            .expect("a cancel for each task")
            .expect("the runner's socket");
        if frame["type"] == "cancel" {
            cancels.push(frame["task_id"].as_str().unwrap().to_owned());
        }
    }
    assert!(
        cancels.contains(&timed) && cancels.contains(&cancelled),
        "{cancels:?}"
    );
}
