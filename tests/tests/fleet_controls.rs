//! Fleet controls on the real binaries: drain with a deadline, pause and resume, revoke,
//! and runners that exit after one task or after idling.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly, naming the call"
)]

use std::time::Duration;

use kiln_tests::control_plane::stdout_lines;
use kiln_tests::{git, wait, ControlPlane, Runner};

const TIMEOUT: Duration = Duration::from_secs(60);

async fn runner_state(control_plane: &ControlPlane, id: &str) -> String {
    let runners = control_plane.get("/v1/runners").await;
    runners
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .map(|r| r["state"].as_str().unwrap().to_owned())
        .unwrap()
}

async fn wait_running(control_plane: &ControlPlane, id: &str) {
    wait::until("the task to run", TIMEOUT, || async {
        (control_plane.task(id).await["state"] == "running").then_some(())
    })
    .await;
}

#[tokio::test]
async fn drain_with_a_deadline_stops_new_work_then_cancels_what_is_left() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(
        &control_plane,
        "box",
        &["--max-concurrent", "2", "--kill-grace", "1s"],
    );
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let long = control_plane.submit(&repo, &[], "echo started; sleep 1000");
    wait_running(&control_plane, &long).await;

    let output = control_plane.kiln_ok(&["runners", "drain", &runner.id, "--deadline", "2s"]);
    assert!(output.contains("is draining"), "{output}");
    wait::until("the runner to be draining", TIMEOUT, || async {
        (runner_state(&control_plane, &runner.id).await == "draining").then_some(())
    })
    .await;
    let later = control_plane.submit(&repo, &[], "echo later");

    let task = control_plane.wait_terminal(&long, TIMEOUT).await;
    assert_eq!(
        task["state"], "cancelled",
        "the deadline cancels what is left: {task}"
    );
    let status = runner.wait_exit(TIMEOUT).await;
    assert!(status.success(), "a drained runner exits 0: {status}");
    let waiting = control_plane.task(&later).await;
    assert_eq!(waiting["state"], "queued");
    assert_eq!(waiting["attempts"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn a_paused_runner_gets_nothing_until_resumed() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box", &[]);
    runner.start_connected(&control_plane).await;
    control_plane.kiln_ok(&["runners", "pause", &runner.id]);
    assert_eq!(runner_state(&control_plane, &runner.id).await, "paused");
    let repo = git::repo(&control_plane.scratch(), "app");
    let id = control_plane.submit(&repo, &[], "echo resumed");
    let detail = control_plane.task(&id).await;
    assert_eq!(detail["state"], "queued");
    let reason = detail["waiting_reason"].as_str().unwrap();
    assert!(
        reason.contains("draining, paused or unresponsive"),
        "{reason}"
    );

    control_plane.kiln_ok(&["runners", "resume", &runner.id]);
    let task = control_plane.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded");
    assert_eq!(runner_state(&control_plane, &runner.id).await, "online");
}

#[tokio::test]
async fn revoke_closes_the_socket_at_once_and_refuses_the_token_for_good() {
    let control_plane = ControlPlane::start().await;
    let mut revoked = Runner::register(&control_plane, "revoked", &["--kill-grace", "1s"]);
    revoked.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let script = r#"if [ "$KILN_ATTEMPT" = 1 ]; then echo started; sleep 1000; fi; echo "attempt $KILN_ATTEMPT""#;
    let id = control_plane.submit(&repo, &[], script);
    wait_running(&control_plane, &id).await;

    control_plane.kiln_ok(&["runners", "revoke", &revoked.id]);
    let status = revoked.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(status.code(), Some(4), "the revoked runner stops: refused");
    assert!(revoked.log().contains("revoked"), "{}", revoked.log());
    assert_eq!(runner_state(&control_plane, &revoked.id).await, "revoked");

    // Its token is refused from now on.
    revoked.start();
    let status = revoked.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(status.code(), Some(4));

    // Its task was given back and runs elsewhere.
    let mut other = Runner::register(&control_plane, "other", &[]);
    other.start_connected(&control_plane).await;
    let task = control_plane.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    assert_eq!(task["attempts"][0]["state"], "lost");
    assert_eq!(
        stdout_lines(&control_plane.events(&id, 2).await),
        ["attempt 2"]
    );
}

#[tokio::test]
async fn disconnect_after_task_takes_exactly_one_task_and_exits() {
    let control_plane = ControlPlane::start().await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let first = control_plane.submit(&repo, &[], "echo one");
    let second = control_plane.submit(&repo, &[], "echo two");
    let mut runner = Runner::register(&control_plane, "ephemeral", &["--max-concurrent", "2"]);
    runner.start_with(&["--disconnect-after-task"]);
    let status = runner.wait_exit(TIMEOUT).await;
    assert!(status.success(), "{status}");
    let states = [
        control_plane.task(&first).await["state"].clone(),
        control_plane.task(&second).await["state"].clone(),
    ];
    assert!(states.contains(&"succeeded".into()), "{states:?}");
    assert!(
        states.contains(&"queued".into()),
        "exactly one task taken: {states:?}"
    );
}

#[tokio::test]
async fn disconnect_after_idle_exits_once_idle_long_enough() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "ephemeral", &[]);
    runner.start_with(&["--disconnect-after-idle", "1s"]);
    runner.wait_online(&control_plane).await;
    let status = runner.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "{status}");
}
