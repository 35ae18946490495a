//! Cancel stops the agent's whole tree, including what traps SIGTERM or detaches; idle and
//! overall timeouts end a task as `timed_out`, distinct from `failed` and `cancelled`.

use std::time::{Duration, Instant};

use kiln_tests::control_plane::stdout_lines;
use kiln_tests::{git, process_alive, wait, ControlPlane, Runner};

const TIMEOUT: Duration = Duration::from_secs(60);

/// Runner grace between SIGTERM and SIGKILL in these tests.
const GRACE: Duration = Duration::from_secs(1);

/// Time allowed beyond the grace for the stop to be reported.
const MARGIN: Duration = Duration::from_secs(5);

#[tokio::test]
async fn cancel_kills_an_agent_that_traps_sigterm_and_its_detached_grandchild() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box-1", &["--kill-grace", "1s"]);
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let script = r#"
        trap '' TERM
        setsid sh -c 'trap "" TERM; sleep 1000' &
        echo ready
        while true; do sleep 0.1; done
    "#;
    let id = control_plane.submit(&repo, &[], script);
    wait::until("the agent to be ready", TIMEOUT, || async {
        stdout_lines(&control_plane.events(&id, 1).await)
            .contains(&"ready".to_owned())
            .then_some(())
    })
    .await;
    // Its own pids are its fence's: find its processes by the task id in their environment.
    let tree = kiln_tests::processes::of_task(&id);
    assert!(
        tree.len() >= 2,
        "the agent and its detached grandchild: {tree:?}"
    );
    assert!(tree.iter().all(|pid| process_alive(*pid)));

    let started = Instant::now();
    let output = control_plane.kiln_ok(&["cancel", &id, "--reason", "test says stop"]);
    assert!(output.contains("stopping"), "{output}");
    let task = control_plane.wait_terminal(&id, GRACE + MARGIN).await;
    assert_eq!(task["state"], "cancelled", "{task}");
    assert!(
        tree.iter().all(|pid| !process_alive(*pid)),
        "no process of the agent survives"
    );
    assert!(started.elapsed() < GRACE + MARGIN);
    let events = control_plane.events(&id, 1).await;
    let system: Vec<&str> = events
        .iter()
        .filter(|e| e["stream"] == "system")
        .map(|e| e["line"].as_str().unwrap())
        .collect();
    assert!(
        system.iter().any(|l| l.contains("test says stop")),
        "{system:?}"
    );
    assert_eq!(task["attempts"][0]["state"], "cancelled");
}

#[tokio::test]
async fn cancelling_a_queued_task_ends_it_at_once() {
    let control_plane = ControlPlane::start().await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let id = control_plane.submit(&repo, &[], "echo never");
    control_plane.kiln_ok(&["cancel", &id]);
    let task = control_plane.task(&id).await;
    assert_eq!(task["state"], "cancelled");
    assert_eq!(task["attempts"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn idle_and_overall_timeouts_end_as_timed_out() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(
        &control_plane,
        "box-1",
        &["--max-concurrent", "2", "--kill-grace", "1s"],
    );
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let idle = control_plane.submit(&repo, &["--idle-timeout", "1s"], "echo once; sleep 1000");
    let overall = control_plane.submit(
        &repo,
        &["--timeout", "2s"],
        "while true; do echo tick; sleep 0.2; done",
    );
    let idle_task = control_plane.wait_terminal(&idle, TIMEOUT).await;
    assert_eq!(idle_task["state"], "timed_out", "{idle_task}");
    let message = idle_task["outcome"]["message"].as_str().unwrap();
    assert!(message.contains("no output for 1s"), "{message}");

    let overall_task = control_plane.wait_terminal(&overall, TIMEOUT).await;
    assert_eq!(overall_task["state"], "timed_out", "{overall_task}");
    let message = overall_task["outcome"]["message"].as_str().unwrap();
    assert!(message.contains("timeout of 2s"), "{message}");
    let ticks = stdout_lines(&control_plane.events(&overall, 1).await).len();
    assert!(ticks >= 5, "it ran until the timeout: {ticks} ticks");
}
