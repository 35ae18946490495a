//! Hostile input on the runner socket, sent by a raw WebSocket client: every bad frame gets
//! a clear refusal, nothing crashes, and stored state does not change.

use std::time::Duration;

use kiln_tests::raw::{self, RawSocket};
use kiln_tests::{git, ControlPlane, Runner};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const TIMEOUT: Duration = Duration::from_secs(30);

async fn welcomed(control_plane: &ControlPlane, token: &str) -> RawSocket {
    let mut socket = raw::connect(&control_plane.url, token)
        .await
        .expect("connect");
    raw::send(&mut socket, raw::hello(1, json!([])).to_string()).await;
    let welcome = raw::next(&mut socket).await.expect("welcome");
    assert_eq!(welcome["type"], "welcome");
    socket
}

/// The next frame that is not an `assign`.
async fn reply(socket: &mut RawSocket) -> Value {
    loop {
        let frame = raw::next(socket).await.expect("a reply");
        if frame["type"] != "assign" {
            return frame;
        }
    }
}

async fn assert_error(socket: &mut RawSocket, needle: &str) {
    let frame = reply(socket).await;
    assert_eq!(frame["type"], "error", "{frame}");
    let message = frame["message"].as_str().expect("error message");
    assert!(
        message.contains(needle),
        "{message:?} should mention {needle:?}"
    );
}

#[tokio::test]
async fn hostile_frames_get_error_replies_and_change_nothing() {
    let control_plane = ControlPlane::start().await;
    let (_id, token) = control_plane.register_raw("raw", 1).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let task = control_plane.submit(&repo, &[], "echo hi");
    let mut socket = welcomed(&control_plane, &token).await;
    let assign = raw::next(&mut socket).await.expect("assign");
    assert_eq!(assign["type"], "assign");

    raw::send(&mut socket, "{not json").await;
    assert_error(&mut socket, "malformed frame").await;
    raw::send(&mut socket, r#"{"type":"launch_missiles"}"#).await;
    assert_error(&mut socket, "unknown variant").await;
    socket.send_binary().await;
    assert_error(&mut socket, "binary frames").await;
    raw::send(&mut socket, raw::hello(1, json!([])).to_string()).await;
    assert_error(&mut socket, "hello was already received").await;
    let unknown = json!({"type":"events","task_id":"01930000-0000-7000-8000-000000000009","attempt":1,
        "events":[{"seq":1,"ts":0,"kind":"status","phase":"running"}]});
    raw::send(&mut socket, unknown.to_string()).await;
    assert_error(&mut socket, "not found").await;
    let wrong_attempt = json!({"type":"events","task_id":task,"attempt":7,
        "events":[{"seq":1,"ts":0,"kind":"status","phase":"running"}]});
    raw::send(&mut socket, wrong_attempt.to_string()).await;
    assert_error(&mut socket, "not found").await;
    let zero = json!({"type":"events","task_id":task,"attempt":1,
        "events":[{"seq":0,"ts":0,"kind":"status","phase":"running"}]});
    raw::send(&mut socket, zero.to_string()).await;
    assert_error(&mut socket, "consecutive").await;
    let far = json!({"type":"events","task_id":task,"attempt":1,
        "events":[{"seq":1000000000000u64,"ts":0,"kind":"finished","outcome":{"status":"succeeded","message":"forged"}}]});
    raw::send(&mut socket, far.to_string()).await;
    let ack = reply(&mut socket).await;
    assert_eq!(
        (ack["type"].as_str(), ack["seq"].as_u64()),
        (Some("ack"), Some(0)),
        "nothing past a gap is stored"
    );

    // A frame beyond the size limit ends the session, not the server.
    raw::send_unchecked(&mut socket, "x".repeat(5 * 1024 * 1024)).await;
    assert!(
        raw::next(&mut socket).await.is_err(),
        "oversized frame closes the socket"
    );
    let _ = welcomed(&control_plane, &token).await;

    let state = control_plane.task(&task).await;
    assert!(
        ["assigned", "queued"].contains(&state["state"].as_str().unwrap()),
        "{state}"
    );
    assert!(
        control_plane.events(&task, 1).await.is_empty(),
        "no event was stored"
    );
}

trait SendBinary {
    async fn send_binary(&mut self);
}

impl SendBinary for RawSocket {
    async fn send_binary(&mut self) {
        use futures_util::SinkExt as _;
        self.send(Message::Binary(vec![0xff, 0x00, 0x13].into()))
            .await
            .expect("send binary");
    }
}

#[tokio::test]
async fn a_wrong_protocol_version_is_closed_with_4001() {
    let control_plane = ControlPlane::start().await;
    let (_id, token) = control_plane.register_raw("raw", 1).await;
    let mut socket = raw::connect(&control_plane.url, &token)
        .await
        .expect("connect");
    raw::send(&mut socket, raw::hello(99, json!([])).to_string()).await;
    assert_eq!(raw::next(&mut socket).await.err(), Some(Some(4001)));
}

#[tokio::test]
async fn a_peer_that_never_says_hello_is_dropped_after_the_deadline() {
    let control_plane = ControlPlane::start().await;
    let (_id, token) = control_plane.register_raw("raw", 1).await;
    let mut socket = raw::connect(&control_plane.url, &token)
        .await
        .expect("connect");
    let closed = tokio::time::timeout(Duration::from_secs(20), raw::next(&mut socket)).await;
    assert_eq!(
        closed.expect("dropped within the hello deadline").err(),
        Some(Some(4002))
    );
}

#[tokio::test]
async fn events_for_another_runners_attempt_are_refused_and_logged() {
    let control_plane = ControlPlane::start().await;
    let (_owner_id, owner_token) = control_plane.register_raw("owner", 1).await;
    let mut owner = welcomed(&control_plane, &owner_token).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let task = control_plane.submit(&repo, &[], "echo hi");
    let assign = raw::next(&mut owner).await.expect("assign");
    assert_eq!(assign["task"]["task_id"], task.as_str());

    let (intruder_id, intruder_token) = control_plane.register_raw("intruder", 1).await;
    let mut intruder = welcomed(&control_plane, &intruder_token).await;
    let forged = json!({"type":"events","task_id":task,"attempt":1,
        "events":[{"seq":1,"ts":0,"kind":"finished","outcome":{"status":"succeeded","message":"forged"}}]});
    raw::send(&mut intruder, forged.to_string()).await;
    assert_error(&mut intruder, "is not assigned to runner").await;
    let log = control_plane.log();
    assert!(
        log.contains("frame refused") && log.contains(&intruder_id),
        "refusal logged with the runner id"
    );
    assert!(control_plane.events(&task, 1).await.is_empty());
    assert_ne!(control_plane.task(&task).await["state"], "succeeded");
}

#[tokio::test]
async fn an_assignment_that_is_never_accepted_goes_back_to_the_queue() {
    let control_plane = ControlPlane::start_with(&["--accept-deadline", "1s"]).await;
    let (silent_id, silent_token) = control_plane.register_raw("silent", 1).await;
    let mut silent = welcomed(&control_plane, &silent_token).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let task = control_plane.submit(&repo, &[], "echo taken elsewhere");
    let assign = raw::next(&mut silent).await.expect("assign");
    assert_eq!(assign["type"], "assign");
    // The silent runner never answers; the deadline gives the task back and cancels it there.
    let cancel = tokio::time::timeout(TIMEOUT, async {
        loop {
            let frame = raw::next(&mut silent).await.expect("a frame");
            if frame["type"] == "cancel" {
                return frame;
            }
        }
    })
    .await
    .expect("the expired assignment is cancelled");
    assert_eq!(cancel["task_id"], task.as_str());
    let mut real = Runner::register(&control_plane, "real", &[]);
    real.start_connected(&control_plane).await;
    let done = control_plane.wait_terminal(&task, TIMEOUT).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["attempts"][0]["state"], "rejected");
    assert_eq!(done["attempts"][0]["runner_id"], silent_id.as_str());
    assert_eq!(done["attempts"][1]["runner_id"], real.id.as_str());
}

#[tokio::test]
async fn too_many_handshakes_from_one_address_are_refused() {
    let control_plane = ControlPlane::start().await;
    let (_id, token) = control_plane.register_raw("raw", 1).await;
    let mut open = Vec::new();
    for _ in 0..64 {
        open.push(
            raw::connect(&control_plane.url, &token)
                .await
                .expect("within the limit"),
        );
    }
    let refused = raw::connect(&control_plane.url, &token)
        .await
        .expect_err("over the limit");
    assert!(refused.to_string().contains("429"), "{refused}");
    drop(open);
}

#[tokio::test]
async fn repositories_and_refs_that_are_options_in_disguise_are_refused() {
    let control_plane = ControlPlane::start().await;
    let client = reqwest::Client::new();
    for (field, value) in [
        ("repo", "--upload-pack=touch /tmp/pwned"),
        ("base_ref", "--output=/tmp/x"),
        ("branch", "-x"),
    ] {
        let mut body = json!({ "repo": "/srv/app", "command": ["true"] });
        body[field] = json!(value);
        let response = client
            .post(format!("{}/v1/tasks", control_plane.url))
            .bearer_auth(&control_plane.admin_token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400, "{field}");
        let error: Value = response.json().await.unwrap();
        let message = error["error"].as_str().unwrap();
        assert!(
            message.starts_with(field) && message.contains("starts with '-'"),
            "{message}"
        );
    }
    let page = control_plane.get("/v1/tasks").await;
    assert!(
        page["tasks"].as_array().unwrap().is_empty(),
        "nothing was queued"
    );
}
