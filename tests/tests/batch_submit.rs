//! `POST /v1/tasks/batch` on the real binaries: a batch runs like single submits; a batch
//! with one bad task is refused whole, naming the task and field.

use std::time::Duration;

use kiln_tests::{git, ControlPlane, Runner};
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(60);

async fn post_batch(control_plane: &ControlPlane, body: &Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/tasks/batch", control_plane.url))
        .bearer_auth(&control_plane.admin_token)
        .json(body)
        .send()
        .await
        .expect("POST batch");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn queued_count(control_plane: &ControlPlane) -> usize {
    let page = control_plane.get("/v1/tasks?limit=1000").await;
    page["tasks"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn a_batch_runs_every_task_and_a_bad_one_refuses_the_whole_batch() {
    let control_plane = ControlPlane::start().await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let repo = repo.to_string_lossy();
    let good = |n: u32| json!({ "repo": repo, "command": ["sh", "-c", format!("echo task {n}")] });

    let (status, refused) = post_batch(
        &control_plane,
        &json!({ "tasks": [good(1), { "repo": repo, "command": [] }, good(3)] }),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    let said = refused["error"].as_str().unwrap_or_default();
    assert!(said.contains("tasks[1].command"), "{refused}");
    assert_eq!(
        queued_count(&control_plane).await,
        0,
        "nothing of a refused batch is queued"
    );
    let (status, _) = post_batch(&control_plane, &json!({ "tasks": [] })).await;
    assert_eq!(status, 400);
    let sandboxed = json!({ "tasks": [{ "repo": repo, "command": ["true"], "sandbox": { "provider": "docker" } }] });
    let (status, refused) = post_batch(&control_plane, &sandboxed).await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap_or_default()
            .contains("tasks[0].sandbox"),
        "{refused}"
    );

    let (status, created) = post_batch(
        &control_plane,
        &json!({ "tasks": [good(1), good(2), good(3)] }),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let ids: Vec<String> = created["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| t["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(ids.len(), 3);
    let mut runner = Runner::register(&control_plane, "box", &["--max-concurrent", "3"]);
    runner.start_connected(&control_plane).await;
    for id in &ids {
        let task = control_plane.wait_terminal(id, TIMEOUT).await;
        assert_eq!(task["state"], "succeeded", "{task}");
    }
}
