//! What follows a task's end is the same however it ends: a sandboxed task that ends
//! `lost` because its runner reconnected without it has its box burned at once, as one
//! that finishes does, not at the box's TTL (the handshake used to end the task and leave
//! the box to its TTL).

use std::time::Duration;

use kiln_tests::control_plane::stdout_lines;
use kiln_tests::docker::{
    self, containers_matching, docker_ok, open_up, sandbox_image, sandbox_of, wait_box_gone,
};
use kiln_tests::{git, raw, wait, ControlPlane};
use serde_json::json;

/// Time for a task in a fresh container: forging the box and connecting take seconds.
const TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn a_sandboxed_task_lost_through_a_reconnect_has_its_box_burned_at_once() {
    docker::images();
    let control_plane = ControlPlane::start_with(&["--sandbox-image", &sandbox_image()]).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    open_up(&control_plane.scratch());
    let task = control_plane.submit(
        &repo,
        &["--sandbox", "docker", "--sandbox-ttl", "30m"],
        "echo started; sleep 600",
    );
    let sandbox = sandbox_of(&control_plane, &task).await;
    let container = wait::until("the sandbox container", TIMEOUT, || async {
        containers_matching(&format!("label=kiln.sandbox={sandbox}")).pop()
    })
    .await;
    wait::until("the agent to start in its box", TIMEOUT, || async {
        stdout_lines(&control_plane.events(&task, 1).await)
            .contains(&"started".to_owned())
            .then_some(())
    })
    .await;
    let env = docker_ok(&[
        "inspect",
        "--format",
        "{{range .Config.Env}}{{println .}}{{end}}",
        &container,
    ]);
    let token = env
        .lines()
        .find_map(|l| l.strip_prefix("KILN_RUNNER_TOKEN="))
        .expect("the box's runner token")
        .to_owned();

    // The box freezes (its runner can send nothing more, not even a late `finished` that
    // would burn the box by another path), and its runner comes back holding nothing: its
    // attempt is lost, and the task with it (a sandboxed task has one attempt).
    docker_ok(&["pause", &container]);
    let mut socket = raw::connect(&control_plane.url, &token)
        .await
        .expect("connect");
    let mut hello = raw::hello(1, json!([]));
    hello["sandbox_id"] = json!(sandbox);
    raw::send(&mut socket, hello.to_string()).await;
    let ended = control_plane.wait_terminal(&task, TIMEOUT).await;
    assert_eq!(ended["state"], "lost", "{ended}");
    // Burned after the short grace for last events, long before its 30-minute TTL.
    wait_box_gone(&sandbox).await;
    wait::until("the sandbox to leave the live list", TIMEOUT, || async {
        let live: Vec<serde_json::Value> =
            serde_json::from_str(&control_plane.kiln_ok(&["sandboxes", "--json"])).ok()?;
        (!live.iter().any(|s| s["id"] == sandbox.as_str())).then_some(())
    })
    .await;
}
