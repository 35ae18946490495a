//! Workspace sessions, file requests and exec on the real binaries.

use std::time::Duration;

use kiln_tests::control_plane::{lines_of, stdout_lines};
use kiln_tests::sessions::submit_in;
use kiln_tests::{git, wait, ControlPlane, Runner};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_session_runs_its_steps_in_one_worktree_with_setup_once() {
    let control_plane = ControlPlane::start().await;
    let mut first = Runner::register(&control_plane, "first", &[]);
    let mut second = Runner::register(&control_plane, "second", &[]);
    first.start_connected(&control_plane).await;
    second.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    std::fs::write(repo.join(".gitignore"), "deps/\n").unwrap();
    git::git(&repo, &["add", ".gitignore"]);
    git::git(&repo, &["commit", "--quiet", "-m", "ignore deps"]);
    let created = control_plane.kiln_ok(&[
        "session",
        "create",
        "--repo",
        &repo.to_string_lossy(),
        "--setup",
        "mkdir -p deps && echo installed >> deps/setup.log",
    ]);
    let session = created.trim().to_owned();

    let implement = submit_in(
        &control_plane,
        &session,
        "echo 'fn main() {}' > main.rs; mkdir -p deps/build; touch deps/build/artefact",
    );
    let review = submit_in(&control_plane, &session, "test -e deps/build/artefact && echo 'artefact still here'; cat deps/setup.log; echo '// reviewed' >> main.rs");
    let fix = submit_in(
        &control_plane,
        &session,
        "cat deps/setup.log | wc -l; echo '// fixed' >> main.rs",
    );
    let mut runners = Vec::new();
    for id in [&implement, &review, &fix] {
        let task = control_plane.wait_terminal(id, TIMEOUT).await;
        assert_eq!(task["state"], "succeeded", "{task}");
        runners.push(
            task["attempts"][0]["runner_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert!(
        runners.iter().all(|r| *r == runners[0]),
        "every step on the session's runner: {runners:?}"
    );
    assert_eq!(
        stdout_lines(&control_plane.events(&review, 1).await),
        ["artefact still here", "installed"]
    );
    assert_eq!(
        stdout_lines(&control_plane.events(&fix, 1).await),
        ["1"],
        "setup ran once"
    );
    // Each step starts where the one before left HEAD, and carries only its own commit.
    let mut left_at: Option<String> = None;
    for id in [&implement, &review, &fix] {
        let result = control_plane.task(id).await["outcome"]["result"].clone();
        if let Some(previous) = &left_at {
            assert_eq!(result["base_commit"], previous.as_str(), "{id}: {result}");
        }
        let commits = result["commits"].as_array().map(Vec::len);
        assert_eq!(commits, Some(1), "{id}: {result}");
        left_at = result["head_commit"].as_str().map(str::to_owned);
    }
    let last = control_plane.task(&fix).await;
    let branch = last["outcome"]["result"]["branch"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(branch.starts_with("kiln/session-"), "{branch}");

    let shown: Value =
        serde_json::from_str(&control_plane.kiln_ok(&["session", "show", &session, "--json"]))
            .unwrap();
    let holder = if shown["runner_id"] == first.id.as_str() {
        &first
    } else {
        &second
    };
    let worktree = holder.worktree_base().join(format!("ws-{session}"));
    assert!(worktree.join("main.rs").exists());
    control_plane.kiln_ok(&["session", "close", &session]);
    wait::until("the session's worktree to be removed", TIMEOUT, || async {
        (!worktree.exists()).then_some(())
    })
    .await;
    let refused = control_plane.kiln(&["submit", "--session", &session, "--", "true"]);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "a closed session takes no tasks"
    );
}

#[tokio::test]
async fn exec_streams_a_command_in_the_session_and_exits_with_its_status() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box", &[]);
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let session = control_plane
        .kiln_ok(&["session", "create", "--repo", &repo.to_string_lossy()])
        .trim()
        .to_owned();
    let ok = control_plane.kiln(&["exec", &session, "--", "sh", "-c", "echo out; echo err >&2"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "out\n");
    assert!(String::from_utf8_lossy(&ok.stderr).contains("err"));
    let failed = control_plane.kiln(&["exec", &session, "--", "sh", "-c", "echo failing; exit 3"]);
    assert_eq!(failed.status.code(), Some(3));
}

#[tokio::test]
async fn files_are_copied_in_and_out_of_a_live_worktree_and_never_outside_it() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box", &[]);
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let gate = control_plane.scratch().join("gate");
    let env = format!("GATE={}", gate.display());
    let id = control_plane.submit(
        &repo,
        &["--env", &env],
        r#"while [ ! -e "$GATE" ]; do sleep 0.05; done; cat notes/in.txt"#,
    );
    wait::until("the agent to run in its worktree", TIMEOUT, || async {
        let events = control_plane.events(&id, 1).await;
        events
            .iter()
            .any(|e| e["kind"] == "status" && e["phase"] == "running")
            .then_some(())
    })
    .await;
    let local = control_plane.scratch().join("in.txt");
    std::fs::write(&local, "copied in\n").unwrap();
    control_plane.kiln_ok(&[
        "files",
        &id,
        "put",
        &local.to_string_lossy(),
        "notes/in.txt",
    ]);
    let listing = control_plane.kiln_ok(&["files", &id, "ls", "notes"]);
    assert!(listing.contains("in.txt"), "{listing}");
    assert_eq!(
        control_plane.kiln_ok(&["files", &id, "get", "README.md"]),
        "hello\n"
    );
    control_plane.kiln_ok(&["files", &id, "put", &local.to_string_lossy(), "scratch.txt"]);
    control_plane.kiln_ok(&["files", &id, "rm", "scratch.txt"]);
    for escape in ["../../etc/passwd", "/etc/passwd", ".git/config"] {
        let refused = control_plane.kiln(&["files", &id, "get", escape]);
        assert_eq!(refused.status.code(), Some(1), "{escape}");
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains(escape),
            "the refusal names the path"
        );
    }
    std::fs::write(&gate, "").unwrap();
    let task = control_plane.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    assert_eq!(
        stdout_lines(&control_plane.events(&id, 1).await),
        ["copied in"]
    );
    assert!(lines_of(&control_plane.events(&id, 1).await, "stderr").is_empty());
    let finished = control_plane.kiln(&["files", &id, "ls"]);
    assert_eq!(
        finished.status.code(),
        Some(1),
        "no worktree once the task ended"
    );
}
