//! Nothing lost, nothing doubled when the control plane dies or the link is cut: agents
//! print numbered lines; every line must be stored exactly once, in order.

use std::path::Path;
use std::time::Duration;

use kiln_tests::control_plane::stdout_lines;
use kiln_tests::{git, wait, ControlPlane, Proxy, Runner};

const TIMEOUT: Duration = Duration::from_secs(60);

/// An agent that prints `per_phase` numbered lines, then waits for gate file `<phase>`
/// before the next phase; `phases` phases in all.
fn gated_printer(per_phase: u32, phases: u32) -> String {
    format!(
        r#"
        n=0
        for phase in $(seq 1 {phases}); do
            for i in $(seq 1 {per_phase}); do n=$((n+1)); echo "line $n"; done
            if [ $phase -lt {phases} ]; then
                while [ ! -e "$GATES/$phase" ]; do sleep 0.02; done
            fi
        done
        "#
    )
}

fn numbered(count: u32) -> Vec<String> {
    (1..=count).map(|n| format!("line {n}")).collect()
}

fn open_gate(gates: &Path, phase: u32) {
    std::fs::write(gates.join(phase.to_string()), "").expect("open gate");
}

async fn wait_stdout_lines(control_plane: &ControlPlane, id: &str, count: usize) {
    wait::until(&format!("{count} stdout lines stored"), TIMEOUT, || async {
        (stdout_lines(&control_plane.events(id, 1).await).len() >= count).then_some(())
    })
    .await;
}

#[tokio::test]
async fn control_plane_killed_three_times_mid_stream_loses_and_repeats_nothing() {
    let mut control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box-1", &[]);
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let gates = control_plane.scratch().join("gates");
    std::fs::create_dir_all(&gates).unwrap();
    let env = format!("GATES={}", gates.display());
    let id = control_plane.submit(&repo, &["--env", &env], &gated_printer(500, 4));

    for phase in 1..=3 {
        wait_stdout_lines(&control_plane, &id, 500 * phase as usize).await;
        control_plane.kill();
        // The agent prints the next 500 lines while the control plane is down.
        open_gate(&gates, phase);
        control_plane.launch().await;
    }
    let task = control_plane.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    let events = control_plane.events(&id, 1).await;
    assert_eq!(
        stdout_lines(&events),
        numbered(2000),
        "every line once, in order"
    );
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
    assert_eq!(events.last().unwrap()["kind"], "finished");
    assert_eq!(
        task["attempts"].as_array().unwrap().len(),
        1,
        "nothing ran twice"
    );
}

#[tokio::test]
async fn a_link_cut_past_the_heartbeat_timeout_loses_and_repeats_nothing() {
    let control_plane = ControlPlane::start().await;
    let proxy = Proxy::start(&control_plane.url).await;
    let mut runner = Runner::register(&control_plane, "box-1", &[]);
    runner.start_with(&["--server", &proxy.url]);
    runner.wait_online(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let gates = control_plane.scratch().join("gates");
    std::fs::create_dir_all(&gates).unwrap();
    let env = format!("GATES={}", gates.display());
    let id = control_plane.submit(&repo, &["--env", &env], &gated_printer(300, 2));

    wait_stdout_lines(&control_plane, &id, 300).await;
    proxy.pause();
    open_gate(&gates, 1);
    // Held long enough that the control plane drops the silent runner.
    wait::until(
        "the control plane to drop the silent runner",
        TIMEOUT,
        || async {
            let runners = control_plane.get("/v1/runners").await;
            (runners[0]["state"] == "offline").then_some(())
        },
    )
    .await;
    proxy.cut();
    proxy.resume();

    let task = control_plane.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    assert_eq!(
        stdout_lines(&control_plane.events(&id, 1).await),
        numbered(600)
    );
    assert_eq!(
        task["attempts"].as_array().unwrap().len(),
        1,
        "nothing ran twice"
    );
}

#[tokio::test]
async fn a_lost_attempt_that_comes_back_is_cancelled_and_its_late_lines_stay_its_own() {
    let control_plane = ControlPlane::start_with(&["--lost-after", "1s"]).await;
    let proxy = Proxy::start(&control_plane.url).await;
    let mut first = Runner::register(&control_plane, "first", &["--kill-grace", "1s"]);
    first.start_with(&["--server", &proxy.url]);
    first.wait_online(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let script = r#"
        if [ "$KILN_ATTEMPT" = 1 ]; then
            i=0; while true; do i=$((i+1)); echo "first $i"; sleep 0.05; done
        fi
        echo "second done"
    "#;
    let id = control_plane.submit(&repo, &[], script);
    wait_stdout_lines(&control_plane, &id, 5).await;
    proxy.pause();
    let stored_before: usize = stdout_lines(&control_plane.events(&id, 1).await).len();
    wait::until("attempt 1 to be declared lost", TIMEOUT, || async {
        let task = control_plane.task(&id).await;
        (task["attempts"][0]["state"] == "lost").then_some(())
    })
    .await;
    let mut second = Runner::register(&control_plane, "second", &[]);
    second.start_connected(&control_plane).await;
    let task = control_plane.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    assert_eq!(task["attempts"][1]["runner_id"], second.id.as_str());

    proxy.cut();
    proxy.resume();
    // The first runner reconnects, is told to cancel, and delivers what it printed while
    // it was away, ending with its own `finished`.
    let late = wait::until("attempt 1's late events and finish", TIMEOUT, || async {
        let events = control_plane.events(&id, 1).await;
        events
            .last()
            .is_some_and(|e| e["kind"] == "finished")
            .then_some(events)
    })
    .await;
    let lines = stdout_lines(&late);
    assert!(
        lines.len() > stored_before,
        "lines printed while away were delivered"
    );
    let expected: Vec<String> = (1..=lines.len()).map(|i| format!("first {i}")).collect();
    assert_eq!(lines, expected, "attempt 1's lines complete and in order");
    assert_eq!(late.last().unwrap()["outcome"]["status"], "cancelled");
    assert_eq!(
        stdout_lines(&control_plane.events(&id, 2).await),
        ["second done"]
    );
    let task = control_plane.task(&id).await;
    assert_eq!(task["state"], "succeeded", "late events change nothing");
    assert_eq!(task["attempts"][0]["state"], "lost");
}
