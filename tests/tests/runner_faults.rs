//! Runner faults: kill -9 leaves no agent behind and the task is retried elsewhere; SIGTERM
//! drains; a second SIGTERM cancels.

use std::time::Duration;

use kiln_tests::control_plane::stdout_lines;
use kiln_tests::follower::Follower;
use kiln_tests::{git, process_alive, wait, ControlPlane, Runner};
use nix::sys::signal::Signal;

const TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_runner_killed_mid_task_leaves_no_process_and_the_task_is_retried_elsewhere() {
    let control_plane = ControlPlane::start_with(&["--lost-after", "2s"]).await;
    let mut first = Runner::register(&control_plane, "first", &["--kill-grace", "1s"]);
    first.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let script = r#"
        if [ "$KILN_ATTEMPT" = 1 ]; then
            (trap '' TERM; sleep 1000) &
            setsid sh -c 'trap "" TERM; sleep 1000' &
            echo started
            sleep 1000
        fi
        echo "attempt $KILN_ATTEMPT done"
    "#;
    let id = control_plane.submit(&repo, &[], script);
    wait::until("attempt 1 to start its processes", TIMEOUT, || async {
        let lines = stdout_lines(&control_plane.events(&id, 1).await);
        lines.contains(&"started".to_owned()).then_some(())
    })
    .await;
    // The agent's own pids are those of its fence's PID namespace: find its processes by
    // the task id in their environment.
    let agent_pids = kiln_tests::processes::of_task(&id);
    assert!(
        agent_pids.len() >= 3,
        "the agent, its child and the detached one: {agent_pids:?}"
    );

    first.kill();
    wait::until(
        "every process of attempt 1 to be gone",
        Duration::from_secs(15),
        || async { kiln_tests::processes::of_task(&id).is_empty().then_some(()) },
    )
    .await;
    assert!(agent_pids.iter().all(|pid| !process_alive(*pid)));

    let mut second = Runner::register(&control_plane, "second", &[]);
    second.start_connected(&control_plane).await;
    let task = control_plane.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    let attempts = task["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["state"], "lost");
    assert_eq!(attempts[0]["runner_id"], first.id.as_str());
    assert_eq!(attempts[1]["runner_id"], second.id.as_str());
    assert_eq!(
        stdout_lines(&control_plane.events(&id, 2).await),
        ["attempt 2 done"]
    );
}

#[tokio::test]
async fn sigterm_drains_the_runner_before_it_exits() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box-1", &["--max-concurrent", "2"]);
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let gate = control_plane.scratch().join("gate");
    let script = r#"echo working; while [ ! -e "$GATE" ]; do sleep 0.02; done; echo finished work"#;
    let env = format!("GATE={}", gate.display());
    let running = control_plane.submit(&repo, &["--env", &env], script);
    wait::until("the task to run", TIMEOUT, || async {
        (control_plane.task(&running).await["state"] == "running").then_some(())
    })
    .await;

    runner.signal(Signal::SIGTERM);
    wait::until("the runner to report draining", TIMEOUT, || async {
        let status: serde_json::Value = serde_json::from_slice(&runner.status().stdout).ok()?;
        (status["draining"] == true).then_some(())
    })
    .await;
    wait::until(
        "the control plane to list the runner as draining",
        TIMEOUT,
        || async {
            let runners = control_plane.get("/v1/runners").await;
            (runners[0]["state"] == "draining").then_some(())
        },
    )
    .await;
    let queued = control_plane.submit(&repo, &[], "echo should not run here");
    std::fs::write(&gate, "").unwrap();

    let status = runner.wait_exit(TIMEOUT).await;
    assert!(status.success(), "drained runner exits 0, got {status}");
    let task = control_plane.task(&running).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    assert_eq!(
        stdout_lines(&control_plane.events(&running, 1).await),
        ["working", "finished work"]
    );
    let waiting = control_plane.task(&queued).await;
    assert_eq!(waiting["state"], "queued", "{waiting}");
    assert_eq!(
        waiting["attempts"].as_array().unwrap().len(),
        0,
        "never offered to the draining runner"
    );
}

#[tokio::test]
async fn a_second_sigterm_cancels_running_attempts() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box-1", &["--kill-grace", "1s"]);
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let id = control_plane.submit(&repo, &[], "echo started; sleep 1000");
    wait::until("the agent to start", TIMEOUT, || async {
        stdout_lines(&control_plane.events(&id, 1).await)
            .contains(&"started".to_owned())
            .then_some(())
    })
    .await;
    runner.signal(Signal::SIGTERM);
    wait::until("the runner to report draining", TIMEOUT, || async {
        let status: serde_json::Value = serde_json::from_slice(&runner.status().stdout).ok()?;
        (status["draining"] == true).then_some(())
    })
    .await;
    runner.signal(Signal::SIGTERM);
    let status = runner.wait_exit(TIMEOUT).await;
    assert!(status.success(), "{status}");
    let task = control_plane.task(&id).await;
    assert_eq!(task["state"], "cancelled", "{task}");
}

#[tokio::test]
async fn events_a_stopping_runner_could_not_deliver_are_delivered_after_its_restart() {
    let mut control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box-1", &[]);
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let gate = control_plane.scratch().join("gate");
    let script = r#"
        for i in $(seq 1 100); do echo "line $i"; done
        while [ ! -e "$GATE" ]; do sleep 0.02; done
        for i in $(seq 101 250); do echo "line $i"; done
    "#;
    let env = format!("GATE={}", gate.display());
    let id = control_plane.submit(&repo, &["--env", &env], script);
    wait::until("the first 100 lines", TIMEOUT, || async {
        (stdout_lines(&control_plane.events(&id, 1).await).len() >= 100).then_some(())
    })
    .await;
    control_plane.kill();
    std::fs::write(&gate, "").unwrap();
    // The agent finishes while the control plane is down; the runner is then stopped
    // (drain, then abort) before it could deliver the rest.
    wait::until("the agent to finish on the runner", TIMEOUT, || async {
        let status: serde_json::Value = serde_json::from_slice(&runner.status().stdout).ok()?;
        status["running"].as_array()?.is_empty().then_some(())
    })
    .await;
    runner.signal(Signal::SIGTERM);
    wait::until("the runner to report draining", TIMEOUT, || async {
        let status: serde_json::Value = serde_json::from_slice(&runner.status().stdout).ok()?;
        (status["draining"] == true).then_some(())
    })
    .await;
    runner.signal(Signal::SIGTERM);
    let status = runner.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "{status}");
    let spool = runner.root.path().join("cache/spool");
    assert!(
        std::fs::read_dir(&spool).unwrap().count() > 0,
        "undelivered events kept on disk"
    );

    control_plane.launch().await;
    runner.start();
    let task = control_plane.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    let expected: Vec<String> = (1..=250).map(|i| format!("line {i}")).collect();
    assert_eq!(stdout_lines(&control_plane.events(&id, 1).await), expected);
    wait::until("the spool to empty once delivered", TIMEOUT, || async {
        (std::fs::read_dir(&spool).ok()?.count() == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_runner_restarted_after_kill_9_has_its_unknown_attempt_lost_at_once_and_retried() {
    // Default --lost-after (2 minutes): the retry must come from reconciliation at hello,
    // not from the timer.
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box-1", &["--kill-grace", "1s"]);
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let script = r#"
        if [ "$KILN_ATTEMPT" = 1 ]; then echo started; sleep 1000; fi
        echo "attempt $KILN_ATTEMPT done"
    "#;
    let id = control_plane.submit(&repo, &[], script);
    wait::until("attempt 1 to start", TIMEOUT, || async {
        stdout_lines(&control_plane.events(&id, 1).await)
            .contains(&"started".to_owned())
            .then_some(())
    })
    .await;
    runner.kill();
    runner.start();
    let task = control_plane.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    assert_eq!(task["attempts"][0]["state"], "lost");
    assert_eq!(task["attempts"][1]["state"], "succeeded");
    assert_eq!(
        stdout_lines(&control_plane.events(&id, 2).await),
        ["attempt 2 done"]
    );
}

/// A follower of a task whose attempt is lost with its runner moves on to the retry while
/// the retry runs (a lost attempt has no `finished` event to end it).
#[tokio::test]
async fn a_follower_moves_on_to_the_retry_of_a_lost_attempt_while_it_runs() {
    let control_plane = ControlPlane::start_with(&["--lost-after", "2s"]).await;
    let mut first = Runner::register(&control_plane, "first", &["--kill-grace", "1s"]);
    first.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let gate = control_plane.scratch().join("gate");
    let script = r#"
        echo "attempt $KILN_ATTEMPT started"
        if [ "$KILN_ATTEMPT" = 1 ]; then sleep 1000; fi
        while [ ! -e "$GATE" ]; do sleep 0.02; done
        echo "attempt $KILN_ATTEMPT done"
    "#;
    let env = format!("GATE={}", gate.display());
    let id = control_plane.submit(&repo, &["--env", &env], script);
    let follower = Follower::start(&control_plane, &id);
    follower.wait_lines(1).await;
    assert_eq!(follower.lines(), ["attempt 1 started"]);

    first.kill();
    let mut second = Runner::register(&control_plane, "second", &[]);
    second.start_connected(&control_plane).await;
    // The retry waits at the gate: its first line reaches the follower while it runs.
    follower.wait_lines(2).await;
    assert_eq!(follower.lines(), ["attempt 1 started", "attempt 2 started"]);
    std::fs::write(&gate, "").unwrap();
    let task = control_plane.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    let lines = tokio::task::spawn_blocking(move || follower.finish())
        .await
        .unwrap();
    assert_eq!(
        lines,
        ["attempt 1 started", "attempt 2 started", "attempt 2 done"]
    );
}
