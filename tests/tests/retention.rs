//! Retention on the real control plane: the output of a task finished longer ago than
//! `--retention` is deleted, its record stays, and a task still running is not touched.

use std::time::Duration;

use kiln_tests::control_plane::stdout_lines;
use kiln_tests::{git, wait, ControlPlane, Runner};

const TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn finished_output_is_pruned_and_a_running_task_is_untouched() {
    let control_plane =
        ControlPlane::start_with(&["--retention", "2s", "--prune-every", "100ms"]).await;
    let mut runner = Runner::register(&control_plane, "box", &["--max-concurrent", "2"]);
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let release = control_plane.scratch().join("release");

    // Runs for longer than the retention age, until the test lets it finish.
    let long = control_plane.submit(
        &repo,
        &[],
        &format!(
            "seq 1 50; while [ ! -e {} ]; do sleep 0.05; done; echo end",
            release.display()
        ),
    );
    control_plane.wait_events(&long, 1, 50, TIMEOUT).await;
    let short = control_plane.submit(&repo, &[], "echo result > result.txt; echo short");
    let finished = control_plane.wait_terminal(&short, TIMEOUT).await;
    assert_eq!(finished["state"], "succeeded");
    assert!(
        !control_plane.events(&short, 1).await.is_empty(),
        "events are kept until the retention age"
    );

    let pruned = wait::until("the finished task to be pruned", TIMEOUT, || async {
        let task = control_plane.task(&short).await;
        task["pruned_at"].is_i64().then_some(task)
    })
    .await;
    assert_eq!(pruned["state"], "succeeded", "the record stays");
    assert!(control_plane.events(&short, 1).await.is_empty());
    let fetch = control_plane.kiln(&["diff", &short]);
    assert!(!fetch.status.success());
    let said = String::from_utf8_lossy(&fetch.stderr);
    assert!(said.contains("pruned by retention"), "{said}");

    // The long task has run for longer than the retention age: all of it is still there.
    let running = control_plane.task(&long).await;
    assert_eq!(running["state"], "running");
    assert!(running["pruned_at"].is_null());
    let lines = stdout_lines(&control_plane.events(&long, 1).await);
    assert_eq!(lines.len(), 50, "{lines:?}");

    let metrics = reqwest::get(format!("{}/metrics", control_plane.url))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics body");
    assert!(
        metrics.contains("\nkiln_pruned_tasks_total 1\n"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("\nkiln_pruned_artifact_bytes_total 0\n"),
        "the bundle and diff were counted: {metrics}"
    );

    std::fs::write(&release, b"").expect("release the long task");
    let done = control_plane.wait_terminal(&long, TIMEOUT).await;
    assert_eq!(done["state"], "succeeded");
}
