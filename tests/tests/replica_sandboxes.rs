//! The sandbox TTL reaper across replicas: a sandbox whose replica died is burned at its
//! TTL by another replica (the leader), once, with no replica restarted.

use std::time::Duration;

use kiln_control_plane::testing::postgres::TestPostgres;
use kiln_tests::control_plane::stdout_lines;
use kiln_tests::docker::{self, open_up, sandbox_image, sandbox_of, wait_box_gone};
use kiln_tests::{git, wait, ControlPlane};
use serde_json::Value;

/// Time for a task in a fresh container: forging the box and connecting take seconds.
const TIMEOUT: Duration = Duration::from_secs(120);

/// The operator's admin token, shared by the replicas.
const ADMIN_TOKEN: &str = "kiln_adm_0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn a_sandbox_whose_replica_died_is_burned_at_its_ttl_by_another_once() {
    docker::images();
    let server = TestPostgres::start();
    let database = server.fresh_database().await;
    let image = sandbox_image();
    let args = ["--sandbox-image", image.as_str()];
    let mut a = ControlPlane::start_replica(&database, ADMIN_TOKEN, &args).await;
    let b = ControlPlane::start_replica(&database, ADMIN_TOKEN, &args).await;
    let repo = git::repo(&a.scratch(), "app");
    open_up(&a.scratch());
    let task = a.submit(
        &repo,
        &["--sandbox", "docker", "--sandbox-ttl", "20s"],
        "echo started; sleep 600",
    );
    let sandbox = sandbox_of(&a, &task).await;
    wait::until("the agent to start", TIMEOUT, || async {
        stdout_lines(&a.events(&task, 1).await)
            .contains(&"started".to_owned())
            .then_some(())
    })
    .await;

    // A forged the box and dies; B was never told of it and is not restarted.
    a.kill();
    let ended = b.wait_terminal(&task, TIMEOUT).await;
    assert_eq!(ended["state"], "timed_out", "{ended}");
    assert_eq!(
        ended["attempts"].as_array().map(Vec::len),
        Some(1),
        "ran once: {ended}"
    );
    wait_box_gone(&sandbox).await;
    let live: Vec<Value> =
        serde_json::from_str(&b.kiln_ok(&["sandboxes", "--json"])).expect("sandboxes JSON");
    assert!(live.is_empty(), "{live:?}");
    let burned = b.log().matches("sandbox burned").count();
    assert_eq!(burned, 1, "burned once by B:\n{}", b.log());
}
