//! A runner cannot change its attempt once the attempt has reported `finished`: a later
//! diff upload does not replace the stored one, and later events (a second `finished`
//! among them) are refused and stored nowhere.

use std::time::Duration;

use kiln_tests::raw::{self, RawSocket};
use kiln_tests::{git, ControlPlane};
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(30);

/// The next frame of `kind`, skipping acks and the rest.
async fn next_of(socket: &mut RawSocket, kind: &str) -> Value {
    tokio::time::timeout(TIMEOUT, async {
        loop {
            let frame = raw::next(socket).await.expect("a frame");
            if frame["type"] == kind {
                return frame;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {kind} frame within {TIMEOUT:?}"))
}

async fn upload_diff(control_plane: &ControlPlane, token: &str, task: &str, diff: &str) -> u16 {
    reqwest::Client::new()
        .put(format!(
            "{}/v1/tasks/{task}/attempts/1/artifacts/diff",
            control_plane.url
        ))
        .bearer_auth(token)
        .body(diff.to_owned())
        .send()
        .await
        .expect("upload")
        .status()
        .as_u16()
}

#[tokio::test]
async fn an_attempt_that_finished_takes_no_upload_and_no_event() {
    let control_plane = ControlPlane::start().await;
    let (_id, token) = control_plane.register_raw("raw", 1).await;
    let mut socket = raw::connect(&control_plane.url, &token)
        .await
        .expect("connect");
    raw::send(&mut socket, raw::hello(1, json!([])).to_string()).await;
    next_of(&mut socket, "welcome").await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let task = control_plane.submit(&repo, &[], "echo hi");
    next_of(&mut socket, "assign").await;
    raw::send(
        &mut socket,
        json!({"type": "accepted", "task_id": task, "attempt": 1}).to_string(),
    )
    .await;
    assert_eq!(
        upload_diff(&control_plane, &token, &task, "the real diff\n").await,
        204
    );
    let finished = json!({"type": "events", "task_id": task, "attempt": 1, "events": [
        {"seq": 1, "ts": 0, "kind": "finished", "outcome": {"status": "succeeded", "message": "done"}}]});
    raw::send(&mut socket, finished.to_string()).await;
    assert_eq!(next_of(&mut socket, "ack").await["seq"], 1);
    let done = control_plane.wait_terminal(&task, TIMEOUT).await;
    assert_eq!(done["state"], "succeeded", "{done}");

    // The attack: replace the result, then report again.
    let status = upload_diff(&control_plane, &token, &task, "a forged diff\n").await;
    assert_eq!(status, 409, "an upload after finished is refused");
    let more = json!({"type": "events", "task_id": task, "attempt": 1, "events": [
        {"seq": 2, "ts": 0, "kind": "log", "stream": "stdout", "line": "after the end"},
        {"seq": 3, "ts": 0, "kind": "finished", "outcome": {"status": "failed", "message": "second report"}}]});
    raw::send(&mut socket, more.to_string()).await;
    let refusal = next_of(&mut socket, "error").await;
    assert!(
        refusal["message"]
            .as_str()
            .unwrap_or_default()
            .contains("has ended"),
        "{refusal}"
    );

    let diff = control_plane.kiln_ok(&["diff", &task]);
    assert_eq!(diff, "the real diff\n");
    let events = control_plane.events(&task, 1).await;
    assert_eq!(events.len(), 1, "nothing stored after finished: {events:?}");
    let after = control_plane.task(&task).await;
    assert_eq!(after["state"], "succeeded", "{after}");
    assert_eq!(after["outcome"]["message"], "done", "{after}");
}
