//! `kiln-runner run --metrics-listen`: the runner's own gauges and status over HTTP, on
//! the real daemon, against what it is doing.

use std::time::Duration;

use kiln_tests::prometheus::samples;
use kiln_tests::{git, wait, ControlPlane, Runner};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(60);

async fn get(address: &str, path: &str) -> String {
    let response = reqwest::get(format!("http://{address}{path}"))
        .await
        .expect("GET");
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.text().await.expect("body")
}

#[tokio::test]
async fn the_runner_serves_its_gauges_and_status_over_http() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box", &["--max-concurrent", "3"]);
    runner.start_with(&["--metrics-listen", "127.0.0.1:0"]);
    runner.wait_online(&control_plane).await;
    let status: Value =
        serde_json::from_slice(&runner.status().stdout).expect("kiln-runner status --json");
    let address = status["metrics_address"]
        .as_str()
        .expect("status names the metrics address")
        .to_owned();

    let idle = samples(&get(&address, "/metrics").await);
    assert_eq!(idle["kiln_runner_connected"], 1.0);
    assert_eq!(idle["kiln_runner_slots"], 3.0);
    assert_eq!(idle["kiln_runner_running_attempts"], 0.0);
    assert_eq!(idle["kiln_runner_spare_worktrees"], 0.0);
    assert_eq!(idle["kiln_runner_spilled_events_total"], 0.0);

    let repo = git::repo(&control_plane.scratch(), "app");
    let release = control_plane.scratch().join("release");
    let id = control_plane.submit(
        &repo,
        &[],
        &format!("while [ ! -e {} ]; do sleep 0.05; done", release.display()),
    );
    wait::until("the attempt to show in the gauges", TIMEOUT, || async {
        let busy = samples(&get(&address, "/metrics").await);
        (busy["kiln_runner_running_attempts"] == 1.0).then_some(())
    })
    .await;
    let report: Value = serde_json::from_str(&get(&address, "/status").await).expect("JSON");
    assert_eq!(report["running"][0]["task_id"], id.as_str());

    let missing = reqwest::get(format!("http://{address}/nope"))
        .await
        .expect("GET");
    assert_eq!(missing.status(), 404);
    std::fs::write(&release, b"").expect("release the task");
    control_plane.wait_terminal(&id, TIMEOUT).await;
    wait::until("a spare worktree of the repository", TIMEOUT, || async {
        let idle = samples(&get(&address, "/metrics").await);
        (idle["kiln_runner_spare_worktrees"] == 1.0).then_some(())
    })
    .await;
}
