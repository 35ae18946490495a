//! Inputs too large for kiln: each is refused at once with the field and the limit named,
//! and a task that no runner can take ends instead of being handed out forever.

use std::time::Duration;

use kiln_tests::raw;
use kiln_tests::{git, wait, ControlPlane, Runner};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(60);

/// Five MiB of env: more than an `assign` frame (4 MiB) can carry.
fn poison_env() -> serde_json::Value {
    json!({"BIG": "x".repeat(5 << 20)})
}

#[tokio::test]
async fn a_task_whose_assignment_cannot_fit_a_frame_is_refused_by_every_submit_path() {
    let control_plane = ControlPlane::start().await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let repo = repo.to_string_lossy();
    let task = json!({"repo": repo, "command": ["true"], "env": poison_env()});
    let (status, body) = control_plane.post_status("/v1/tasks", &task).await;
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("env takes") && error.contains("frame limit"),
        "{error}"
    );

    let batch = json!({"tasks": [{"repo": repo, "command": ["true"]}, task]});
    let (status, body) = control_plane.post_status("/v1/tasks/batch", &batch).await;
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("tasks[1]") && error.contains("env takes"),
        "{error}"
    );
    let listed = control_plane.get("/v1/tasks").await;
    assert_eq!(listed["tasks"], json!([]), "nothing was stored");
}

#[tokio::test]
async fn a_huge_prompt_or_file_is_refused_naming_it() {
    let control_plane = ControlPlane::start().await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let text = "p".repeat(10 << 20);
    let task = json!({"repo": repo.to_string_lossy(), "command": ["true"], "prompt": text});
    let (status, body) = control_plane.post_status("/v1/tasks", &task).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"],
        format!("prompt is {} bytes; the limit is 1048576", 10 << 20)
    );

    let prompt_file = control_plane.scratch().join("prompt.md");
    std::fs::write(&prompt_file, &text).unwrap();
    let repo_arg = repo.to_string_lossy();
    let file_arg = prompt_file.to_string_lossy();
    let submitted = control_plane.kiln(&[
        "submit",
        "--repo",
        &repo_arg,
        "--prompt-file",
        &file_arg,
        "--",
        "true",
    ]);
    assert_eq!(submitted.status.code(), Some(2), "a usage error");
    let stderr = String::from_utf8_lossy(&submitted.stderr);
    assert!(
        stderr.contains("prompt.md") && stderr.contains("1048576"),
        "the prompt file and the limit are named: {stderr}"
    );

    // A file of 1.9 MiB goes into a live worktree; one over 2 MiB is refused by name.
    let mut runner = Runner::register(&control_plane, "box", &[]);
    runner.start_connected(&control_plane).await;
    let gate = control_plane.scratch().join("gate");
    let env = format!("GATE={}", gate.display());
    let id = control_plane.submit(
        &repo,
        &["--env", &env],
        r#"while [ ! -e "$GATE" ]; do sleep 0.05; done; wc -c < big.bin"#,
    );
    wait::until("the agent to run", TIMEOUT, || async {
        let events = control_plane.events(&id, 1).await;
        events
            .iter()
            .any(|e| e["kind"] == "status" && e["phase"] == "running")
            .then_some(())
    })
    .await;
    let big = control_plane.scratch().join("big.bin");
    std::fs::write(&big, vec![7u8; 1900 * 1024]).unwrap();
    control_plane.kiln_ok(&["files", &id, "put", &big.to_string_lossy(), "big.bin"]);
    let too_big = control_plane.scratch().join("too-big.bin");
    std::fs::write(&too_big, vec![7u8; 3 << 20]).unwrap();
    let refused = control_plane.kiln(&["files", &id, "put", &too_big.to_string_lossy(), "x"]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("too-big.bin") && stderr.contains("2097152"),
        "{stderr}"
    );
    std::fs::write(&gate, "").unwrap();
    let done = control_plane.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let lines = kiln_tests::control_plane::stdout_lines(&control_plane.events(&id, 1).await);
    assert_eq!(lines, [(1900 * 1024).to_string()]);
}

#[tokio::test]
async fn a_task_every_runner_drops_ends_and_the_runner_goes_on_to_other_work() {
    let control_plane = ControlPlane::start().await;
    let (_id, token) = control_plane.register_raw("dropper", 1).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let poison = control_plane.submit(&repo, &[], "echo never runs");
    // The runner reads each assignment and drops its connection, as one that cannot read
    // the frame does; it reconnects with nothing running.
    let mut drops = 0;
    let ended = tokio::time::timeout(TIMEOUT, async {
        loop {
            let mut socket = raw::connect(&control_plane.url, &token)
                .await
                .expect("connect");
            raw::send(&mut socket, raw::hello(1, json!([])).to_string()).await;
            // This hello gives back the assignment the last connection dropped; then
            // either the task comes again or it has ended.
            let assigned = async {
                loop {
                    match raw::next(&mut socket).await {
                        Ok(frame) if frame["type"] == "assign" => return,
                        Ok(_) => continue,
                        Err(code) => panic!("the socket closed ({code:?})"),
                    }
                }
            };
            let errored = wait::until("the task to end", TIMEOUT, || async {
                let task = control_plane.task(&poison).await;
                (task["state"] == "error").then_some(task)
            });
            tokio::select! {
                () = assigned => drops += 1,
                task = errored => return task,
            }
        }
    })
    .await
    .expect("the task ended instead of being handed out forever");
    assert!(
        ended["outcome"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no runner took its assignment"),
        "{ended}"
    );
    assert_eq!(drops, 5, "handed out {drops} times");
    let attempts = ended["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 5, "{ended}");
    assert!(attempts.iter().all(|a| a["state"] == "rejected"), "{ended}");

    let mut real = Runner::register(&control_plane, "real", &[]);
    real.start_connected(&control_plane).await;
    let next = control_plane.submit(&repo, &[], "echo next");
    let done = control_plane.wait_terminal(&next, TIMEOUT).await;
    assert_eq!(done["state"], "succeeded", "{done}");
}
