//! The task API on the real binaries: filters and pages, retry, logs from any seq, several
//! watchers, and mirror hygiene under concurrency and a cache limit.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly, naming the call"
)]

use std::time::Duration;

use kiln_tests::control_plane::stdout_lines;
use kiln_tests::follower::{open_follow, read_to_end};
use kiln_tests::{git, wait, ControlPlane, Runner};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(60);

fn page(control_plane: &ControlPlane, args: &[&str]) -> Value {
    let mut all = vec!["tasks", "--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&control_plane.kiln_ok(&all)).unwrap()
}

fn ids(page: &Value) -> Vec<String> {
    page["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn tasks_filter_by_state_repo_label_and_runner_and_page_without_gaps() {
    let control_plane = ControlPlane::start().await;
    let app = git::repo(&control_plane.scratch(), "app");
    let other = git::repo(&control_plane.scratch(), "other");
    let mut submitted = Vec::new();
    for i in 0..5 {
        let team = if i % 2 == 0 { "team=red" } else { "team=blue" };
        submitted.push(control_plane.submit(&app, &["--label", team], "echo app"));
    }
    let elsewhere = control_plane.submit(&other, &[], "echo other");
    submitted.push(elsewhere.clone());

    let mut seen = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let mut args = vec!["--limit", "2"];
        if let Some(before) = &before {
            args.extend_from_slice(&["--before", before]);
        }
        let page = page(&control_plane, &args);
        seen.extend(ids(&page));
        match page["next_before"].as_str() {
            Some(next) => before = Some(next.to_owned()),
            None => break,
        }
    }
    let newest_first: Vec<String> = submitted.iter().rev().cloned().collect();
    assert_eq!(
        seen, newest_first,
        "pages cover every task once, newest first"
    );

    assert_eq!(
        ids(&page(&control_plane, &["--label", "team=red"])).len(),
        3
    );
    assert_eq!(
        ids(&page(&control_plane, &["--repo", &other.to_string_lossy()])),
        std::slice::from_ref(&elsewhere)
    );
    assert_eq!(ids(&page(&control_plane, &["--state", "queued"])).len(), 6);

    // Task labels select runners: red tasks run on the red runner, blue on the blue one.
    let mut red = Runner::register(
        &control_plane,
        "red",
        &["--max-concurrent", "4", "--label", "team=red"],
    );
    let mut blue = Runner::register(
        &control_plane,
        "blue",
        &["--max-concurrent", "4", "--label", "team=blue"],
    );
    red.start_connected(&control_plane).await;
    blue.start_connected(&control_plane).await;
    for id in &submitted {
        assert_eq!(
            control_plane.wait_terminal(id, TIMEOUT).await["state"],
            "succeeded"
        );
    }
    let on_red = ids(&page(&control_plane, &["--runner", &red.id]));
    let on_blue = ids(&page(&control_plane, &["--runner", &blue.id]));
    assert_eq!(on_red.len() + on_blue.len(), 6);
    let red_tasks = ids(&page(&control_plane, &["--label", "team=red"]));
    assert!(
        red_tasks.iter().all(|id| on_red.contains(id)),
        "labels select runners"
    );
    assert_eq!(ids(&page(&control_plane, &["--state", "queued"])).len(), 0);
    let bad = control_plane.kiln(&["tasks", "--state", "sleeping"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[tokio::test]
async fn retry_makes_a_new_attempt_of_a_finished_task() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box", &[]);
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let flag = control_plane.scratch().join("second-time");
    let env = format!("FLAG={}", flag.display());
    let script =
        r#"if [ -e "$FLAG" ]; then echo fixed; else touch "$FLAG"; echo broken; exit 1; fi"#;
    let id = control_plane.submit(&repo, &["--env", &env], script);
    assert_eq!(
        control_plane.wait_terminal(&id, TIMEOUT).await["state"],
        "failed"
    );
    let running = control_plane.kiln(&["retry", &id]);
    assert!(
        running.status.success(),
        "{}",
        String::from_utf8_lossy(&running.stderr)
    );
    let task = wait::until("the retry to finish", TIMEOUT, || async {
        let task = control_plane.task(&id).await;
        (task["attempts"].as_array()?.len() == 2 && task["state"] == "succeeded").then_some(task)
    })
    .await;
    assert_eq!(task["attempt"], 2);
    assert_eq!(stdout_lines(&control_plane.events(&id, 2).await), ["fixed"]);
    let again = control_plane.kiln(&["retry", &id]);
    assert!(again.status.success());
    let live = control_plane.task(&id).await;
    if ["queued", "assigned", "running"].contains(&live["state"].as_str().unwrap()) {
        let refused = control_plane.kiln(&["retry", &id]);
        assert_eq!(
            refused.status.code(),
            Some(1),
            "a live task cannot be retried"
        );
    }
}

/// Follows a task's events to its end, from after `since`.
async fn follow(control_plane: &ControlPlane, id: &str, since: u64) -> Vec<Value> {
    read_to_end(open_follow(control_plane, id, since).await).await
}

#[tokio::test]
async fn several_watchers_each_get_every_line_and_any_seq_can_be_the_start() {
    let control_plane = ControlPlane::start().await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let gate = control_plane.scratch().join("gate");
    let env = format!("GATE={}", gate.display());
    let script = r#"
        for i in $(seq 1 50); do echo "early $i"; done
        while [ ! -e "$GATE" ]; do sleep 0.02; done
        for i in $(seq 1 500); do echo "late $i"; done
    "#;
    let id = control_plane.submit(&repo, &["--env", &env], script);
    let mut runner = Runner::register(&control_plane, "box", &[]);
    runner.start_connected(&control_plane).await;
    control_plane.wait_events(&id, 1, 50, TIMEOUT).await;

    let mut watchers = Vec::new();
    for _ in 0..3 {
        let following = open_follow(&control_plane, &id, 0).await;
        watchers.push(tokio::spawn(read_to_end(following)));
    }
    std::fs::write(&gate, "").unwrap();
    let expected: Vec<String> = (1..=50)
        .map(|i| format!("early {i}"))
        .chain((1..=500).map(|i| format!("late {i}")))
        .collect();
    for watcher in watchers {
        let events = watcher.await.unwrap();
        assert_eq!(
            stdout_lines(&events),
            expected,
            "each watcher sees every line once"
        );
        assert_eq!(
            events.last().unwrap()["kind"],
            "finished",
            "follow ends with the task"
        );
    }
    let all = follow(&control_plane, &id, 0).await;
    let cut = all[40]["seq"].as_u64().unwrap();
    let tail = follow(&control_plane, &id, cut).await;
    assert_eq!(tail.first().unwrap()["seq"].as_u64().unwrap(), cut + 1);
    assert_eq!(tail.len(), all.len() - 41);
    let cli = control_plane.kiln_ok(&["logs", &id, "--since-seq", &cut.to_string(), "--json"]);
    assert_eq!(cli.lines().count(), tail.len());
}

#[tokio::test]
async fn concurrent_tasks_on_one_repository_share_its_mirror_safely() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box", &["--max-concurrent", "4"]);
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let ids: Vec<String> = (0..8)
        .map(|i| control_plane.submit(&repo, &[], &format!("echo {i} > file-{i}.txt")))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        let task = control_plane.wait_terminal(id, TIMEOUT).await;
        assert_eq!(task["state"], "succeeded", "{task}");
        assert_eq!(
            task["outcome"]["result"]["diffstat"]["files_changed"], 1,
            "task {i}"
        );
    }
    let mirrors: Vec<_> = std::fs::read_dir(runner.root.path().join("cache/mirrors"))
        .unwrap()
        .collect();
    assert_eq!(mirrors.len(), 1, "one mirror per repository");
    let worktrees: Vec<_> = std::fs::read_dir(runner.worktree_base())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir() && !e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(
        worktrees.is_empty(),
        "every worktree removed after its task"
    );
    let fences =
        std::fs::read_dir(runner.worktree_base().join(".fences")).map_or(0, Iterator::count);
    assert_eq!(fences, 0, "every worktree's fence removed with it");
    let spares =
        std::fs::read_dir(runner.worktree_base().join(".spares")).map_or(0, Iterator::count);
    assert!(
        spares <= 1,
        "at most one spare per repository, found {spares}"
    );
}

#[tokio::test]
async fn the_cache_limit_evicts_unused_mirrors_but_never_one_in_use() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box", &["--max-concurrent", "2"]);
    runner.start_with(&["--cache-max-size", "1K"]);
    runner.wait_online(&control_plane).await;
    let busy_repo = git::repo(&control_plane.scratch(), "busy");
    let quick_repo = git::repo(&control_plane.scratch(), "quick");
    let gate = control_plane.scratch().join("gate");
    let env = format!("GATE={}", gate.display());
    let busy = control_plane.submit(
        &busy_repo,
        &["--env", &env],
        r#"while [ ! -e "$GATE" ]; do sleep 0.02; done"#,
    );
    wait::until("the busy task to run", TIMEOUT, || async {
        (control_plane.task(&busy).await["state"] == "running").then_some(())
    })
    .await;
    let quick = control_plane.submit(&quick_repo, &[], "echo quick");
    assert_eq!(
        control_plane.wait_terminal(&quick, TIMEOUT).await["state"],
        "succeeded"
    );
    let mirrors = runner.root.path().join("cache/mirrors");
    let origins = || -> Vec<String> {
        std::fs::read_dir(&mirrors)
            .unwrap()
            .filter_map(|e| std::fs::read_to_string(e.unwrap().path().join("kiln-origin")).ok())
            .collect()
    };
    wait::until("the unused mirror to be evicted", TIMEOUT, || async {
        (origins() == [busy_repo.to_string_lossy().into_owned()]).then_some(())
    })
    .await;
    std::fs::write(&gate, "").unwrap();
    assert_eq!(
        control_plane.wait_terminal(&busy, TIMEOUT).await["state"],
        "succeeded"
    );
    wait::until("the last mirror to go once unused", TIMEOUT, || async {
        origins().is_empty().then_some(())
    })
    .await;
}
