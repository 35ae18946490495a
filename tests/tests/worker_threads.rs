//! `kiln serve --worker-threads`: one thread by default (the whole suite runs so), more on
//! request, and a clear refusal of a count out of range.

use std::time::Duration;

use kiln_tests::git;
use kiln_tests::{ControlPlane, Runner};
use serde_json::Value;

const TASK_TIMEOUT: Duration = Duration::from_secs(60);

/// Threads of process `pid` whose name is `name`.
fn threads_named(pid: u32, name: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the control plane's threads")
        .filter_map(Result::ok)
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm")).is_ok_and(|comm| comm.trim() == name)
        })
        .count()
}

#[tokio::test]
async fn a_control_plane_with_three_worker_threads_has_them_and_runs_a_task() {
    let control_plane = ControlPlane::start_with(&["--worker-threads", "3"]).await;
    let pid = control_plane.pid().expect("a running control plane");
    assert!(threads_named(pid, "kiln-worker") >= 3, "pid {pid}");
    let mut runner = Runner::register(&control_plane, "box-1", &[]);
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let output = control_plane.kiln(&[
        "submit",
        "--json",
        "--repo",
        &repo.to_string_lossy(),
        "--",
        "sh",
        "-c",
        "echo ran",
    ]);
    assert!(output.status.success(), "{output:?}");
    let task: Value = serde_json::from_slice(&output.stdout).expect("task JSON");
    let id = task["id"].as_str().expect("task id");
    let done = control_plane.wait_terminal(id, TASK_TIMEOUT).await;
    assert_eq!(done["state"], "succeeded", "{done}");
}

/// A refusal comes before anything starts; a count wrongly accepted would serve forever.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_worker_thread_count_out_of_range_is_refused_naming_the_flag() {
    for count in ["0", "1025", "many"] {
        let running = tokio::process::Command::new(kiln_tests::bins::path("kiln"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--worker-threads",
                count,
            ])
            .env_remove("KILN_WORKER_THREADS")
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(REFUSAL_TIMEOUT, running)
            .await
            .unwrap_or_else(|_| panic!("--worker-threads {count} was not refused"))
            .expect("run kiln");
        assert_eq!(output.status.code(), Some(2), "{count}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("--worker-threads") && stderr.contains(count),
            "{count}: {stderr}"
        );
    }
}
