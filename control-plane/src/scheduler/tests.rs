//! Placement and explanation, as pure functions.

use std::collections::{BTreeMap, BTreeSet};

use super::*;

fn runner(n: u128, free: u32, caps: &[&str]) -> RunnerSlots {
    RunnerSlots {
        id: RunnerId(uuid::Uuid::from_u128(n)),
        capabilities: caps.iter().map(|c| c.to_string()).collect(),
        labels: BTreeMap::new(),
        running: 0,
        free,
        cached_projects: BTreeSet::new(),
        idle_since: 0,
        draining: false,
        paused: false,
        stale: false,
        sandbox: false,
    }
}

fn id(n: u128) -> RunnerId {
    RunnerId(uuid::Uuid::from_u128(n))
}

fn task(n: u128, requires: &[&str]) -> QueuedTask {
    QueuedTask {
        id: TaskId(uuid::Uuid::from_u128(n)),
        repo: "repo".into(),
        requires: requires.iter().map(|c| c.to_string()).collect(),
        labels: BTreeMap::new(),
        refused_by: Vec::new(),
        pinned: None,
    }
}

#[test]
fn never_places_more_tasks_than_free_slots() {
    let tasks: Vec<_> = (0..5).map(|n| task(n, &[])).collect();
    let placements = place(&tasks, &[runner(1, 2, &[]), runner(2, 1, &[])]);
    assert_eq!(placements.len(), 3);
    assert_eq!(placements.iter().filter(|p| p.runner == id(1)).count(), 2);
}

#[test]
fn required_capabilities_filter_runners() {
    let placements = place(
        &[task(1, &["gpu"]), task(2, &[])],
        &[runner(1, 1, &["docker"]), runner(2, 1, &["gpu", "docker"])],
    );
    assert_eq!(placements.len(), 2);
    assert_eq!(placements[0].runner, id(2));
    assert_eq!(placements[1].runner, id(1));
}

#[test]
fn requested_labels_filter_runners() {
    let mut eu = runner(1, 1, &[]);
    eu.labels.insert("zone".into(), "eu".into());
    let us = {
        let mut r = runner(2, 1, &[]);
        r.labels.insert("zone".into(), "us".into());
        r
    };
    let mut wants_eu = task(1, &[]);
    wants_eu.labels.insert("zone".into(), "eu".into());
    let placements = place(&[wants_eu], &[us, eu]);
    assert_eq!(
        placements,
        [Placement {
            task: task(1, &[]).id,
            runner: id(1)
        }]
    );
}

#[test]
fn draining_paused_stale_and_refusing_runners_are_never_chosen() {
    let mut draining = runner(1, 4, &[]);
    draining.draining = true;
    let mut paused = runner(2, 4, &[]);
    paused.paused = true;
    let mut stale = runner(3, 4, &[]);
    stale.stale = true;
    let refusing = runner(4, 4, &[]);
    let mut refused = task(1, &[]);
    refused.refused_by.push(id(4));
    assert!(place(&[refused.clone()], &[draining, paused, stale, refusing]).is_empty());
}

#[test]
fn a_task_no_runner_can_take_does_not_block_the_next() {
    let placements = place(&[task(1, &["gpu"]), task(2, &[])], &[runner(1, 1, &[])]);
    assert_eq!(placements.len(), 1);
    assert_eq!(placements[0].task, task(2, &[]).id);
}

#[test]
fn affinity_beats_load() {
    let mut warm = runner(1, 4, &[]);
    warm.running = 3;
    warm.cached_projects.insert("repo".into());
    let cold = runner(2, 4, &[]);
    let placements = place(&[task(1, &[])], &[cold, warm.clone()]);
    assert_eq!(placements[0].runner, warm.id);
}

#[test]
fn least_loaded_wins_without_affinity_and_work_spreads() {
    let mut busy = runner(1, 3, &[]);
    busy.running = 1;
    let idle = runner(2, 4, &[]);
    let placements = place(&[task(1, &[]), task(2, &[]), task(3, &[])], &[busy, idle]);
    assert_eq!(placements[0].runner, id(2));
    let on_busy = placements.iter().filter(|p| p.runner == id(1)).count();
    assert_eq!(
        on_busy, 1,
        "after two on the idle runner, loads are level again"
    );
}

#[test]
fn longest_idle_breaks_ties() {
    let mut recent = runner(1, 1, &[]);
    recent.idle_since = 200;
    let mut old = runner(2, 1, &[]);
    old.idle_since = 100;
    let placements = place(&[task(1, &[])], &[recent, old]);
    assert_eq!(placements[0].runner, id(2));
}

#[test]
fn explanations_name_what_is_missing() {
    assert_eq!(explain(&task(1, &[]), &[]), "no runner is connected");
    assert_eq!(
        explain(&task(1, &["gpu"]), &[runner(1, 1, &["docker"])]),
        "no connected runner has capability gpu"
    );
    let mut labelled = task(1, &[]);
    labelled.labels.insert("zone".into(), "eu".into());
    assert_eq!(
        explain(&labelled, &[runner(1, 1, &[])]),
        "no connected runner has label zone=eu"
    );
    let mut draining = runner(1, 1, &[]);
    draining.draining = true;
    assert!(explain(&task(1, &[]), &[draining]).contains("draining, paused or unresponsive"));
    let mut full = runner(1, 0, &[]);
    full.running = 2;
    assert!(explain(&task(1, &[]), &[full])
        .starts_with("all 2 slot(s) of the 1 matching runner(s) are busy"));
}
