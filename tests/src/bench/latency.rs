//! Submit to agent started: with no checkout (a task in an open workspace session) and
//! with a fresh worktree of a mid-size repository whose mirror is warm, both with the
//! runner's spare worktree ready (its state between tasks) and with spares turned off.

use std::time::Duration;

use serde_json::json;

use super::reference;
use super::report::Row;
use super::setup::{now_nanos, repo_with_files, start_probe, Stack};
use super::stats::{ms, Samples};

/// Files in the mid-size repository (the target says 3–5k).
const MID_SIZE_FILES: usize = 4000;

/// Runs not measured before each series: the first builds the worktree or warms caches.
const WARM_UP_RUNS: usize = 2;

/// Measured fresh-worktree runs with spares turned off: each writes every file, so a few
/// give the comparison without doubling the section's time.
const NO_SPARE_RUNS: usize = 5;

/// Submit → probe start, and the part of it until the submit was answered (stored).
struct Timing {
    started: Duration,
    answered: Duration,
}

fn since(from: u128, to: u128) -> Duration {
    Duration::from_nanos(u64::try_from(to.saturating_sub(from)).unwrap_or(u64::MAX))
}

/// Submits a probe task (`body` plus the probe command) and times it.
async fn one(stack: &Stack, mut body: serde_json::Value) -> Timing {
    body["command"] = json!([start_probe()]);
    let submitted = now_nanos();
    let task = stack.submit(&body).await;
    let answered = since(submitted, now_nanos());
    let mut started = None;
    stack
        .follow(&task, |line| {
            if started.is_none() {
                started = line.trim().parse::<u128>().ok();
            }
        })
        .await;
    let started = started.unwrap_or_else(|| panic!("task {task} printed no start time"));
    Timing {
        started: since(submitted, started),
        answered,
    }
}

/// Both latency rows, with `runs` measured runs each.
pub async fn run(runs: usize, database: Option<&str>) -> Vec<Row> {
    let mut stack = Stack::start(1, database).await;
    let scratch = stack.control_plane.scratch();

    let small = crate::git::repo(&scratch, "small");
    let session = stack.session(&small).await;
    let mut no_checkout = Samples::new();
    let mut answered = Samples::new();
    for run in 0..WARM_UP_RUNS + runs {
        let timing = one(&stack, json!({ "workspace_id": session })).await;
        if run >= WARM_UP_RUNS {
            no_checkout.push(timing.started);
            answered.push(timing.answered);
        }
    }
    let spawn = reference::spawn_probe(&start_probe(), runs.max(50));
    let ok = no_checkout.p50() <= Duration::from_millis(2)
        && no_checkout.p99() <= Duration::from_millis(10);
    let row = Row::new(
        "submit → agent started, no checkout (session)",
        "p50 ≤ 2 ms, p99 ≤ 10 ms",
        format!(
            "p50 {}, p99 {} (submit answered: p50 {})",
            ms(no_checkout.p50()),
            ms(no_checkout.p99()),
            ms(answered.p50())
        ),
        Some(ok),
    )
    .against(
        format!("probe started by posix_spawn p50 {}", ms(spawn.p50())),
        no_checkout.p50().as_secs_f64() / spawn.p50().as_secs_f64(),
    );

    let mid = repo_with_files(&scratch, "mid", MID_SIZE_FILES);
    let mut fresh = Samples::new();
    for run in 0..WARM_UP_RUNS + runs.min(20) {
        if run > 0 {
            stack.wait_spare(&mid).await;
        }
        let timing = one(&stack, json!({ "repo": mid })).await;
        if run >= WARM_UP_RUNS {
            fresh.push(timing.started);
        }
    }
    stack
        .restart_runner_with(&[("KILN_SPARE_WORKTREES", "0")])
        .await;
    let mut no_spare = Samples::new();
    for run in 0..1 + runs.min(NO_SPARE_RUNS) {
        let timing = one(&stack, json!({ "repo": mid })).await;
        if run >= 1 {
            no_spare.push(timing.started);
        }
    }
    // Packed, like the runner's mirror (a plain local clone would hard-link loose objects,
    // which makes git several times slower).
    let bare = scratch.join("mid-bare.git");
    let source = format!("file://{}", mid.display());
    crate::git::git(
        &scratch,
        &[
            "clone",
            "--quiet",
            "--bare",
            &source,
            &bare.to_string_lossy(),
        ],
    );
    let worktree_add = reference::git_worktree_add(&bare, &scratch, 5);
    let clone_local = reference::git_clone_local(&bare, &scratch, 3);
    // Met by the runner as it runs by default, between tasks: with a spare ready. Without
    // one the checkout is `git worktree add` itself, shown for comparison.
    let ok = fresh.p50() <= Duration::from_millis(300) && fresh.p50() <= worktree_add;
    let fresh_row = Row::new(
        &format!("submit → agent started, fresh worktree ({MID_SIZE_FILES} files, mirror warm)"),
        "p50 ≤ 300 ms and ≤ `git worktree add`",
        format!(
            "spare ready: p50 {}, p99 {}; no spare: p50 {}",
            ms(fresh.p50()),
            ms(fresh.p99()),
            ms(no_spare.p50())
        ),
        Some(ok),
    )
    .against(
        format!(
            "`git worktree add` {}, `git clone --local` {}",
            ms(worktree_add),
            ms(clone_local)
        ),
        fresh.p50().as_secs_f64() / worktree_add.as_secs_f64(),
    );
    vec![row, fresh_row]
}
