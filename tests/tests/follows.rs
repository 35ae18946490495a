//! Following a task's events (`GET /v1/tasks/ID/events?follow=true`) through the changes
//! of its state: placement, cancel, a session's close or loss. (Following a lost attempt's
//! retry is in runner_faults.rs, several watchers at once in task_api.rs.)

use std::time::Duration;

use kiln_tests::control_plane::stdout_lines;
use kiln_tests::follower::{open_follow, read_to_end};
use kiln_tests::sessions::{self, submit_in};
use kiln_tests::{git, ControlPlane, Runner};

const TIMEOUT: Duration = Duration::from_secs(60);

/// A session made on `control_plane` for a new repository; its id.
fn session(control_plane: &ControlPlane) -> String {
    let repo = git::repo(&control_plane.scratch(), "app");
    sessions::create(control_plane, &repo, &[])
}

/// A follower that starts while the task is queued lives through its state changes
/// (assigned, started, ended), which it reads without re-reading the events.
#[tokio::test]
async fn a_follower_from_before_the_task_is_placed_sees_it_to_the_end() {
    let control_plane = ControlPlane::start().await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let id = control_plane.submit(&repo, &[], "for i in $(seq 1 200); do echo line $i; done");
    let following = open_follow(&control_plane, &id, 0).await;
    let mut runner = Runner::register(&control_plane, "box", &[]);
    runner.start_connected(&control_plane).await;
    let events = tokio::time::timeout(TIMEOUT, read_to_end(following))
        .await
        .expect("the follow ends when the task does");
    let expected: Vec<String> = (1..=200).map(|i| format!("line {i}")).collect();
    assert_eq!(stdout_lines(&events), expected, "every line once, in order");
    assert_eq!(events.last().unwrap()["kind"], "finished", "{events:?}");
    let task = control_plane.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded", "{task}");
}

/// A task cancelled while queued has no events: its state change alone ends the follow.
#[tokio::test]
async fn a_follower_of_a_queued_task_ends_when_it_is_cancelled() {
    let control_plane = ControlPlane::start().await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let id = control_plane.submit(&repo, &[], "echo never");
    let following = open_follow(&control_plane, &id, 0).await;
    control_plane.kiln_ok(&["cancel", &id]);
    let events = tokio::time::timeout(TIMEOUT, read_to_end(following))
        .await
        .expect("the follow ends when the task is cancelled");
    assert!(events.is_empty(), "{events:?}");
}

/// Closing a session ends its queued tasks, and with them their follows.
#[tokio::test]
async fn a_follower_of_a_queued_session_task_ends_when_the_session_closes() {
    let control_plane = ControlPlane::start().await;
    let session = session(&control_plane);
    let id = submit_in(&control_plane, &session, "echo never");
    let following = open_follow(&control_plane, &id, 0).await;
    control_plane.kiln_ok(&["session", "close", &session]);
    let events = tokio::time::timeout(TIMEOUT, read_to_end(following))
        .await
        .expect("the follow ends when the session's close ends the task");
    assert!(events.is_empty(), "{events:?}");
    let task = control_plane.task(&id).await;
    assert_eq!(task["state"], "cancelled", "{task}");
}

/// A session lost with its runner (the runner came back without it, after kill -9) ends
/// its queued task, and with it the follow of that task.
#[tokio::test]
async fn a_follower_of_a_queued_session_task_ends_when_the_session_is_lost() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box", &["--kill-grace", "1s"]);
    runner.start_connected(&control_plane).await;
    let session = session(&control_plane);
    let first = submit_in(&control_plane, &session, "echo started; sleep 1000");
    control_plane.wait_events(&first, 1, 1, TIMEOUT).await;
    // The session runs one task at a time: this one waits in the queue.
    let second = submit_in(&control_plane, &session, "echo never");
    assert_eq!(control_plane.task(&second).await["state"], "queued");
    let following = open_follow(&control_plane, &second, 0).await;
    runner.kill();
    runner.start();
    let events = tokio::time::timeout(TIMEOUT, read_to_end(following))
        .await
        .expect("the follow ends when the lost session ends the task");
    assert!(events.is_empty(), "{events:?}");
    let task = control_plane.task(&second).await;
    assert_eq!(task["state"], "error", "{task}");
}
