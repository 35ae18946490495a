//! A task placed as it is submitted, on the real binaries: a submit that finds a free slot
//! and nothing queued ahead is assigned in its own answer; one that finds no slot, or a
//! queued task of its priority or higher, waits in the queue; and a burst of submits never
//! gives a runner more tasks than it has slots.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly, naming the call"
)]

use std::path::Path;
use std::time::Duration;

use futures_util::future::join_all;
use kiln_tests::{git, wait, ControlPlane, Runner};
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(60);

/// Tasks in the burst: many more than the runner's slots.
const BURST: usize = 40;

/// Submits `script` on `repo` with the request's `extra` fields; the submit's answer.
async fn submit(control_plane: &ControlPlane, repo: &Path, script: &str, extra: Value) -> Value {
    let mut body = json!({
        "repo": repo.to_string_lossy(),
        "command": ["sh", "-c", script],
    });
    for (field, value) in extra.as_object().unwrap() {
        body[field] = value.clone();
    }
    control_plane.post("/v1/tasks", &body).await
}

fn id(task: &Value) -> &str {
    task["id"].as_str().unwrap()
}

/// Waits until the task runs.
async fn wait_running(control_plane: &ControlPlane, task: &Value) {
    wait::until(&format!("task {} to run", id(task)), TIMEOUT, || async {
        (control_plane.task(id(task)).await["state"] == "running").then_some(())
    })
    .await;
}

/// Waits until the task ends; asserts that it succeeded at its first and only attempt.
async fn assert_succeeded_once(control_plane: &ControlPlane, task: &Value) {
    let ended = control_plane.wait_terminal(id(task), TIMEOUT).await;
    assert_eq!(ended["state"], "succeeded", "{ended}");
    let attempts = ended["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "ran once, never refused: {ended}");
}

#[tokio::test]
async fn a_submit_is_assigned_in_its_own_answer_while_a_slot_is_free() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "two-slots", &["--max-concurrent", "2"]);
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let gate = control_plane.scratch().join("gate");
    let held = format!("while [ ! -e {} ]; do sleep 0.05; done", gate.display());

    let first = submit(&control_plane, &repo, &held, json!({})).await;
    assert_eq!(
        (&first["state"], &first["attempt"]),
        (&json!("assigned"), &json!(1)),
        "{first}"
    );
    wait_running(&control_plane, &first).await;
    let second = submit(&control_plane, &repo, &held, json!({})).await;
    assert_eq!(second["state"], "assigned", "{second}");
    wait_running(&control_plane, &second).await;
    let third = submit(&control_plane, &repo, &held, json!({})).await;
    assert_eq!(
        (&third["state"], &third["attempt"]),
        (&json!("queued"), &json!(0)),
        "both slots are taken: {third}"
    );

    std::fs::write(&gate, "").unwrap();
    for task in [&first, &second, &third] {
        assert_succeeded_once(&control_plane, task).await;
    }
}

#[tokio::test]
async fn a_submit_waits_behind_a_queued_task_of_its_priority_or_higher() {
    let control_plane = ControlPlane::start().await;
    // Two slots: the one `behind` used may still be freeing when `urgent` comes.
    let mut runner = Runner::register(&control_plane, "plain", &["--max-concurrent", "2"]);
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let stuck = json!({ "requires": ["gpu"], "priority": 5 });
    let stuck = submit(&control_plane, &repo, "echo never", stuck).await;
    assert_eq!(stuck["state"], "queued", "no runner has a gpu: {stuck}");

    let behind = submit(&control_plane, &repo, "echo ran", json!({ "priority": 5 })).await;
    assert_eq!(
        behind["state"], "queued",
        "a queued task of the same priority goes first: {behind}"
    );
    assert_succeeded_once(&control_plane, &behind).await;
    let urgent = submit(&control_plane, &repo, "echo ran", json!({ "priority": 9 })).await;
    assert_eq!(
        urgent["state"], "assigned",
        "nothing as urgent is queued: {urgent}"
    );
    assert_succeeded_once(&control_plane, &urgent).await;
    assert_eq!(control_plane.task(id(&stuck)).await["state"], "queued");
}

#[tokio::test]
async fn a_burst_of_submits_never_gives_a_runner_more_tasks_than_its_slots() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "two-slots", &["--max-concurrent", "2"]);
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let scripts: Vec<String> = (0..BURST).map(|i| format!("echo {i}")).collect();
    let submits = scripts
        .iter()
        .map(|script| submit(&control_plane, &repo, script, json!({})));
    let tasks = join_all(submits).await;
    for task in &tasks {
        assert_succeeded_once(&control_plane, task).await;
    }
    assert!(
        !control_plane.log().contains("assignment rejected"),
        "no assignment was refused:\n{}",
        control_plane.log()
    );
}
