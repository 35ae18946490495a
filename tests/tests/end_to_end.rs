//! One task through the whole path, on the real binaries: submit, runner, worktree, agent,
//! events, commit, bundle, fetch.

use std::path::Path;
use std::time::Duration;

use kiln_tests::control_plane::{lines_of, stdout_lines};
use kiln_tests::git::{self, git};
use kiln_tests::{ControlPlane, Runner};
use serde_json::Value;

const TASK_TIMEOUT: Duration = Duration::from_secs(60);

fn json(output: &std::process::Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn submit_wait(
    control_plane: &ControlPlane,
    repo: &Path,
    extra: &[&str],
    script: &str,
) -> (i32, Value) {
    let repo = repo.to_string_lossy();
    let mut args = vec!["submit", "--json", "--wait", "--repo", &repo];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "sh", "-c", script]);
    let output = control_plane.kiln(&args);
    (output.status.code().unwrap_or(-1), json(&output))
}

#[tokio::test]
async fn a_task_succeeds_with_every_line_in_order_and_a_fetchable_commit() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box-1", &[]);
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let script = r#"
        for i in $(seq 1 300); do echo "out $i"; done
        echo "err 1" >&2
        cat "$KILN_PROMPT_FILE" > from-file.txt
        cat > from-stdin.txt
        echo changed >> README.md
    "#;
    let prompt = "Make the change.";
    let (code, task) = submit_wait(&control_plane, &repo, &["--prompt", prompt], script);
    assert_eq!(code, 0, "{task}");
    assert_eq!(task["state"], "succeeded");
    let id = task["id"].as_str().unwrap().to_owned();

    let events = control_plane.events(&id, 1).await;
    let expected: Vec<String> = (1..=300).map(|i| format!("out {i}")).collect();
    assert_eq!(
        stdout_lines(&events),
        expected,
        "stdout complete, once each, in order"
    );
    assert_eq!(lines_of(&events, "stderr"), ["err 1"]);
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
    let phases: Vec<&str> = events
        .iter()
        .filter(|e| e["kind"] == "status")
        .map(|e| e["phase"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        [
            "fetching",
            "checking_out",
            "running",
            "committing",
            "uploading"
        ]
    );
    let last = events.last().unwrap();
    assert_eq!(last["kind"], "finished");
    assert_eq!(last["outcome"]["status"], "succeeded");

    let result = &task["outcome"]["result"];
    assert_eq!(result["branch"], format!("kiln/{id}"));
    assert_eq!(result["commits"].as_array().unwrap().len(), 1);
    assert_eq!(result["diffstat"]["files_changed"], 3);
    assert_eq!(result["bundle_uploaded"], true);

    let diff = control_plane.kiln_ok(&["diff", &id]);
    assert!(diff.contains("+changed"), "{diff}");

    let clone = control_plane.scratch().join("clone");
    git(
        &control_plane.scratch(),
        &["clone", "--quiet", &repo.to_string_lossy(), "clone"],
    );
    let fetched = control_plane.kiln_in(&clone, &["fetch", &id]);
    assert!(
        fetched.status.success(),
        "{}",
        String::from_utf8_lossy(&fetched.stderr)
    );
    let branch = format!("kiln/{id}");
    assert_eq!(
        git(&clone, &["show", &format!("{branch}:from-file.txt")]),
        prompt
    );
    assert_eq!(
        git(&clone, &["show", &format!("{branch}:from-stdin.txt")]),
        prompt
    );
    assert_eq!(
        git(&clone, &["show", &format!("{branch}:README.md")]),
        "hello\nchanged\n"
    );
    let head = git(&clone, &["rev-parse", &branch]);
    assert_eq!(head.trim(), result["head_commit"].as_str().unwrap());

    let leftover: Vec<_> = std::fs::read_dir(runner.worktree_base())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&id) && e.path().is_dir())
        .collect();
    assert!(
        leftover.is_empty(),
        "worktree removed after the result was uploaded"
    );
}

#[tokio::test]
async fn a_failing_agent_is_reported_failed_with_its_exit_code() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box-1", &[]);
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let (code, task) = submit_wait(&control_plane, &repo, &[], "echo about to fail; exit 7");
    assert_eq!(
        code, 3,
        "submit --wait exits 3 when the task did not succeed"
    );
    assert_eq!(task["state"], "failed");
    assert_eq!(task["outcome"]["exit_code"], 7);
    assert_eq!(
        task["outcome"]["message"],
        "agent exited with code 7; the agent changed nothing"
    );
    assert_eq!(task["outcome"]["stop"], "failed");
    let id = task["id"].as_str().unwrap();
    assert_eq!(
        stdout_lines(&control_plane.events(id, 1).await),
        ["about to fail"]
    );
    assert_eq!(
        task["outcome"]["result"]["commits"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[tokio::test]
async fn two_tasks_run_at_once_in_separate_worktrees() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box-1", &["--max-concurrent", "2"]);
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let barrier = control_plane.scratch().join("barrier");
    std::fs::create_dir_all(&barrier).unwrap();
    // Each agent records where it runs, then waits until both have started: it can only
    // succeed if the two run at the same time.
    let script = r#"
        pwd > "$BARRIER/$KILN_TASK_ID"
        n=0
        while [ "$(ls "$BARRIER" | wc -l)" -lt 2 ]; do
            n=$((n+1)); [ $n -gt 600 ] && { echo "the other task never started"; exit 1; }
            sleep 0.05
        done
        echo both running
    "#;
    let env = format!("BARRIER={}", barrier.display());
    let repo_text = repo.to_string_lossy().into_owned();
    let ids: Vec<String> = (0..2)
        .map(|_| {
            let output = control_plane.kiln_ok(&[
                "submit", "--json", "--repo", &repo_text, "--env", &env, "--", "sh", "-c", script,
            ]);
            serde_json::from_str::<Value>(&output).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for id in &ids {
        let task = control_plane.wait_terminal(id, TASK_TIMEOUT).await;
        assert_eq!(task["state"], "succeeded", "{task}");
        assert_eq!(
            stdout_lines(&control_plane.events(id, 1).await),
            ["both running"]
        );
    }
    let dirs: Vec<String> = ids
        .iter()
        .map(|id| {
            std::fs::read_to_string(barrier.join(id))
                .unwrap()
                .trim()
                .to_owned()
        })
        .collect();
    assert_ne!(dirs[0], dirs[1]);
    for dir in &dirs {
        assert!(Path::new(dir).starts_with(runner.worktree_base()), "{dir}");
    }
}
