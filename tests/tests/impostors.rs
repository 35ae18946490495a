//! A runner's hello cannot claim what it was not given: capabilities and labels come from
//! its registration, and change only through an operator (`kiln runners update`).

use std::time::Duration;

use kiln_tests::raw;
use kiln_tests::{git, ControlPlane};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_hello_cannot_claim_capabilities_or_labels_only_an_operator_gives_them() {
    let control_plane = ControlPlane::start().await;
    let (id, token) = control_plane.register_raw("plain", 1).await;
    let mut socket = raw::connect(&control_plane.url, &token)
        .await
        .expect("connect");
    let mut hello = raw::hello(1, json!([]));
    hello["capabilities"] = json!(["gpu"]);
    hello["labels"] = json!({"team": "payments"});
    raw::send(&mut socket, hello.to_string()).await;
    assert_eq!(
        raw::next(&mut socket).await.expect("welcome")["type"],
        "welcome"
    );

    let repo = git::repo(&control_plane.scratch(), "app");
    let task = control_plane.submit(
        &repo,
        &["--require", "gpu", "--label", "team=payments"],
        "true",
    );
    let shown = control_plane.kiln_ok(&["task", &task]);
    assert!(
        shown.contains("no connected runner has capability gpu"),
        "the claim did not count: {shown}"
    );
    let runners = control_plane.get("/v1/runners").await;
    assert_eq!(runners[0]["capabilities"], json!([]), "{runners}");
    assert_eq!(runners[0]["labels"], json!({}), "{runners}");
    let nothing = tokio::time::timeout(Duration::from_millis(500), raw::next(&mut socket)).await;
    assert!(
        !matches!(&nothing, Ok(Ok(frame)) if frame["type"] == "assign"),
        "a claimed capability drew the task: {nothing:?}"
    );

    control_plane.kiln_ok(&[
        "runners",
        "update",
        &id,
        "--capability",
        "gpu",
        "--label",
        "team=payments",
    ]);
    let assign = tokio::time::timeout(TIMEOUT, async {
        loop {
            let frame = raw::next(&mut socket).await.expect("a frame");
            if frame["type"] == "assign" {
                return frame;
            }
        }
    })
    .await
    .expect("the operator's update places the task");
    assert_eq!(assign["task"]["task_id"], task.as_str());
    let runners = control_plane.get("/v1/runners").await;
    assert_eq!(runners[0]["capabilities"], json!(["gpu"]), "{runners}");
}
