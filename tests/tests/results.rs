//! Results and branch strategies: push to a real remote, apply onto a clone, say when
//! nothing changed, and keep large and ignored files out of commits.

use std::time::Duration;

use kiln_tests::git::{self, git};
use kiln_tests::{ControlPlane, Runner};

const TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn push_sends_the_result_branch_to_the_remote() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box", &[]);
    runner.start_connected(&control_plane).await;
    let source = git::repo(&control_plane.scratch(), "source");
    let remote = control_plane.scratch().join("remote.git");
    git(
        &control_plane.scratch(),
        &[
            "clone",
            "--quiet",
            "--bare",
            &source.to_string_lossy(),
            "remote.git",
        ],
    );
    let id = control_plane.submit(
        &remote,
        &["--push", "--branch", "feature/pushed"],
        "echo pushed > pushed.txt",
    );
    let task = control_plane.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    assert_eq!(task["outcome"]["result"]["pushed"], true);
    let head = git(&remote, &["rev-parse", "refs/heads/feature/pushed"]);
    assert_eq!(
        head.trim(),
        task["outcome"]["result"]["head_commit"].as_str().unwrap()
    );
}

#[tokio::test]
async fn apply_merges_the_result_onto_the_current_branch_of_a_clone() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box", &[]);
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let id = control_plane.submit(&repo, &[], "echo applied > applied.txt");
    assert_eq!(
        control_plane.wait_terminal(&id, TIMEOUT).await["state"],
        "succeeded"
    );
    git(
        &control_plane.scratch(),
        &["clone", "--quiet", &repo.to_string_lossy(), "clone"],
    );
    let clone = control_plane.scratch().join("clone");
    std::fs::write(clone.join("local.txt"), "mine\n").unwrap();
    git(&clone, &["add", "local.txt"]);
    git(&clone, &["commit", "--quiet", "-m", "local work"]);
    let applied = control_plane.kiln_in(&clone, &["apply", &id]);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(clone.join("applied.txt")).unwrap(),
        "applied\n"
    );
    assert_eq!(
        std::fs::read_to_string(clone.join("local.txt")).unwrap(),
        "mine\n"
    );
    let subject = git(&clone, &["log", "-1", "--format=%s"]);
    assert!(subject.starts_with("Merge kiln task"), "{subject}");
}

#[tokio::test]
async fn an_agent_that_changed_nothing_is_told_plainly() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box", &[]);
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let id = control_plane.submit(&repo, &[], "echo looked around");
    let task = control_plane.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded");
    assert_eq!(
        task["outcome"]["message"],
        "agent exited with code 0; the agent changed nothing"
    );
    let fetch = control_plane.kiln(&["fetch", &id]);
    assert_eq!(fetch.status.code(), Some(4), "nothing to fetch");
}

#[tokio::test]
async fn large_files_and_ignored_files_are_not_committed() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box", &[]);
    runner.start_with_env(&[("KILN_MAX_COMMIT_FILE_SIZE", "1K")]);
    runner.wait_online(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    std::fs::write(repo.join(".gitignore"), "target/\n").unwrap();
    git(&repo, &["add", ".gitignore"]);
    git(&repo, &["commit", "--quiet", "-m", "ignore target"]);
    let script = "mkdir -p target; echo built > target/app; head -c 4096 /dev/zero > model.bin; echo code > code.rs";
    let id = control_plane.submit(&repo, &[], script);
    let task = control_plane.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    let result = &task["outcome"]["result"];
    assert_eq!(result["skipped_files"], serde_json::json!(["model.bin"]));
    assert_eq!(result["diffstat"]["files_changed"], 1, "only code.rs");
    let diff = control_plane.kiln_ok(&["diff", &id]);
    assert!(
        diff.contains("code.rs") && !diff.contains("target/app") && !diff.contains("model.bin"),
        "{diff}"
    );
}
