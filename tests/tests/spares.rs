//! Spare worktrees on the real binaries: a task handed a spare sees exactly the base
//! commit's files on its own branch (whatever was done to the spare meanwhile), spares of
//! an earlier run are deleted rather than reused, and `spare_worktrees: 0` makes none.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly, naming the call"
)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use kiln_tests::control_plane::{lines_of, stdout_lines};
use kiln_tests::{git, wait, ControlPlane, Runner};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(60);

/// What the agent prints of its worktree: branch, HEAD, status and every file.
const DESCRIBE: &str = "git branch --show-current; git rev-parse HEAD; \
    git status --porcelain --untracked-files=all; echo status-end; \
    find . -path ./.git -prune -o -type f -print | sort; cat README.md kept.txt";

fn spare_count(runner: &Runner) -> usize {
    let status: Value = serde_json::from_slice(&runner.status().stdout).unwrap();
    status["spare_worktrees"].as_array().unwrap().len()
}

async fn wait_spares(runner: &Runner, count: usize) {
    wait::until(&format!("{count} spare worktree(s)"), TIMEOUT, || async {
        (spare_count(runner) == count).then_some(())
    })
    .await;
}

fn spare_dirs(runner: &Runner) -> Vec<PathBuf> {
    std::fs::read_dir(runner.worktree_base().join(".spares"))
        .map(|entries| entries.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

/// Runs `script` as a task on `repo` to success; returns its stdout and system lines.
async fn run(
    control_plane: &ControlPlane,
    repo: &Path,
    script: &str,
) -> (Vec<String>, Vec<String>) {
    let id = control_plane.submit(repo, &[], script);
    let task = control_plane.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    let events = control_plane.events(&id, 1).await;
    (stdout_lines(&events), lines_of(&events, "system"))
}

fn from_a_spare(system: &[String]) -> bool {
    system
        .iter()
        .any(|l| l.starts_with("worktree ") && l.ends_with("(from a spare)"))
}

#[tokio::test]
async fn a_task_given_a_spare_sees_exactly_its_base_on_its_own_branch() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box", &[]);
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    std::fs::write(repo.join("doomed.txt"), "to be deleted\n").unwrap();
    std::fs::write(repo.join("kept.txt"), "kept as is\n").unwrap();
    git::git(&repo, &["add", "doomed.txt", "kept.txt"]);
    git::git(&repo, &["commit", "--quiet", "-m", "doomed"]);

    let (_, system) = run(&control_plane, &repo, "true").await;
    assert!(
        !from_a_spare(&system),
        "the first task has no spare: {system:?}"
    );
    wait_spares(&runner, 1).await;
    let status: Value = serde_json::from_slice(&runner.status().stdout).unwrap();
    assert_eq!(
        status["spare_worktrees"][0],
        repo.to_string_lossy().as_ref()
    );
    let told = runner.command(&["status"]).output().unwrap();
    let told = String::from_utf8_lossy(&told.stdout);
    let line = format!("spare worktrees: {}", repo.display());
    assert!(told.lines().any(|l| l == line), "{told}");

    // The base moves on, and the spare is tampered with as a stray agent might.
    std::fs::write(repo.join("README.md"), "hello\nsecond\n").unwrap();
    std::fs::write(repo.join("added.txt"), "new\n").unwrap();
    git::git(&repo, &["rm", "--quiet", "doomed.txt"]);
    git::git(&repo, &["add", "README.md", "added.txt"]);
    git::git(&repo, &["commit", "--quiet", "-m", "second"]);
    let base = git::git(&repo, &["rev-parse", "HEAD"]).trim().to_owned();
    let [spare] = spare_dirs(&runner).try_into().unwrap();
    std::fs::write(spare.join("README.md"), "tampered\n").unwrap();
    std::fs::write(spare.join("kept.txt"), "tampered too\n").unwrap();
    std::fs::write(spare.join("stray.txt"), "left behind\n").unwrap();
    std::fs::create_dir(spare.join("stray-dir")).unwrap();
    std::fs::write(spare.join("stray-dir/inner.txt"), "left behind\n").unwrap();

    let id = control_plane.submit(&repo, &[], DESCRIBE);
    let task = control_plane.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    let events = control_plane.events(&id, 1).await;
    let system = lines_of(&events, "system");
    assert!(
        from_a_spare(&system),
        "the second task uses the spare: {system:?}"
    );
    let expected = [
        format!("kiln/{id}"),
        base,
        "status-end".to_owned(),
        "./README.md".to_owned(),
        "./added.txt".to_owned(),
        "./kept.txt".to_owned(),
        "hello".to_owned(),
        "second".to_owned(),
        "kept as is".to_owned(),
    ];
    assert_eq!(stdout_lines(&events), expected);
    assert!(
        !spare.exists(),
        "the spare became the task's worktree and went with it"
    );
    // A spare at the new base is made for the next task.
    wait_spares(&runner, 1).await;
}

#[tokio::test]
async fn spares_of_an_earlier_run_are_deleted_not_reused() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box", &[]);
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    run(&control_plane, &repo, "true").await;
    wait_spares(&runner, 1).await;
    let [old] = spare_dirs(&runner).try_into().unwrap();

    runner.kill();
    runner.start_connected(&control_plane).await;
    assert_eq!(spare_count(&runner), 0, "nothing carried over");
    let (stdout, system) = run(&control_plane, &repo, "cat README.md").await;
    assert!(
        !from_a_spare(&system),
        "an old spare is never used: {system:?}"
    );
    assert_eq!(stdout, ["hello"]);
    let stale = || -> Vec<String> {
        std::fs::read_dir(runner.worktree_base())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(".spares-stale-"))
            .collect()
    };
    wait::until("the old spares to be deleted", TIMEOUT, || async {
        (!old.exists() && stale().is_empty()).then_some(())
    })
    .await;
    wait_spares(&runner, 1).await;
}

#[tokio::test]
async fn no_spares_are_made_when_they_are_turned_off() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box", &[]);
    runner.start_with_env(&[("KILN_SPARE_WORKTREES", "0")]);
    runner.wait_online(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    for _ in 0..2 {
        let (stdout, system) = run(&control_plane, &repo, "cat README.md").await;
        assert_eq!(stdout, ["hello"]);
        assert!(!from_a_spare(&system), "{system:?}");
    }
    assert_eq!(spare_count(&runner), 0);
    assert!(spare_dirs(&runner).is_empty(), "{:?}", spare_dirs(&runner));
}

#[tokio::test]
async fn back_to_back_tasks_wait_for_the_spare_being_made_and_see_their_base() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box", &[]);
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    for round in 0..3 {
        // Each task comes as soon as the last ends, while its spare is still being made
        // (refreshing a spare waits for the next whole second).
        std::fs::write(repo.join("round.txt"), format!("{round}\n")).unwrap();
        git::git(&repo, &["add", "round.txt"]);
        git::git(&repo, &["commit", "--quiet", "-m", "round"]);
        let (stdout, system) = run(
            &control_plane,
            &repo,
            "cat round.txt; git status --porcelain",
        )
        .await;
        assert_eq!(stdout, [round.to_string()], "round {round}");
        assert_eq!(
            from_a_spare(&system),
            round > 0,
            "round {round}: {system:?}"
        );
    }
}

#[tokio::test]
async fn over_the_limit_the_least_recently_used_spare_makes_room() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box", &[]);
    runner.start_with_env(&[("KILN_SPARE_WORKTREES", "1")]);
    runner.wait_online(&control_plane).await;
    let first = git::repo(&control_plane.scratch(), "first");
    let second = git::repo(&control_plane.scratch(), "second");
    let listed = |runner: &Runner| -> Vec<String> {
        let status: Value = serde_json::from_slice(&runner.status().stdout).unwrap();
        serde_json::from_value(status["spare_worktrees"].clone()).unwrap()
    };
    run(&control_plane, &first, "true").await;
    wait_spares(&runner, 1).await;
    let [first_spare] = spare_dirs(&runner).try_into().unwrap();
    run(&control_plane, &second, "true").await;
    let expected = vec![second.to_string_lossy().into_owned()];
    wait::until("the second repository's spare alone", TIMEOUT, || async {
        (listed(&runner) == expected && !first_spare.exists()).then_some(())
    })
    .await;
    assert_eq!(spare_dirs(&runner).len(), 1, "{:?}", spare_dirs(&runner));
}
