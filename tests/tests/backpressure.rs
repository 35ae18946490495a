//! Backpressure on agent output: while connected, a fast agent waits for the control plane
//! to take its lines rather than the runner spilling them to disk; while the control
//! plane is away, nothing waits and nothing is lost.

use std::time::Duration;

use kiln_tests::control_plane::stdout_lines;
use kiln_tests::{git, wait, ControlPlane, Runner};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(120);

/// More lines than the outbox keeps in memory per attempt before spilling (64Ki).
const MANY_LINES: u32 = 150_000;

/// More lines than an attempt may have unacknowledged before its agent waits (32Ki), with
/// what the pipe and the line buffer hold besides; fewer than the spill bound.
const OVER_ROOM_LINES: u32 = 40_000;

/// `seq -f` format of the long lines: at 100 bytes, a pipe holds only ~650 of them.
const LONG_LINE: &str =
    "line %g, padded to a hundred bytes so that a pipe holds few of them ................";

fn numbers(count: u32) -> Vec<String> {
    (1..=count).map(|i| i.to_string()).collect()
}

fn long_lines(count: u32) -> Vec<String> {
    (1..=count)
        .map(|i| LONG_LINE.replace("%g", &i.to_string()))
        .collect()
}

fn status(runner: &Runner) -> Value {
    serde_json::from_slice(&runner.status().stdout).expect("kiln-runner status --json")
}

#[tokio::test]
async fn a_fast_agent_waits_for_a_connected_control_plane_and_nothing_spills() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box", &[]);
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let id = control_plane.submit(&repo, &[], &format!("seq 1 {MANY_LINES}"));
    let task = control_plane.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    assert_eq!(
        stdout_lines(&control_plane.events(&id, 1).await),
        numbers(MANY_LINES)
    );
    assert_eq!(
        status(&runner)["spilled_events"],
        0,
        "no event went to disk"
    );
}

#[tokio::test]
async fn with_the_control_plane_away_a_fast_agent_is_not_held_back_and_nothing_is_lost() {
    let mut control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box", &[]);
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let gate = control_plane.scratch().join("gate");
    let script = format!(
        r#"echo ready; while [ ! -e "$GATE" ]; do sleep 0.02; done; seq -f '{LONG_LINE}' 1 {OVER_ROOM_LINES}"#
    );
    let env = format!("GATE={}", gate.display());
    let id = control_plane.submit(&repo, &["--env", &env], &script);
    wait::until("the agent to start", TIMEOUT, || async {
        stdout_lines(&control_plane.events(&id, 1).await)
            .first()
            .is_some_and(|line| line == "ready")
            .then_some(())
    })
    .await;
    control_plane.kill();
    wait::until(
        "the runner to see the control plane gone",
        TIMEOUT,
        || async { (status(&runner)["link"]["connected"] == false).then_some(()) },
    )
    .await;
    std::fs::write(&gate, "").expect("open the gate");
    wait::until(
        "the agent to finish while disconnected",
        TIMEOUT,
        || async {
            status(&runner)["running"]
                .as_array()?
                .is_empty()
                .then_some(())
        },
    )
    .await;

    control_plane.launch().await;
    let task = control_plane.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    let mut expected = vec!["ready".to_owned()];
    expected.extend(long_lines(OVER_ROOM_LINES));
    assert_eq!(stdout_lines(&control_plane.events(&id, 1).await), expected);
}
