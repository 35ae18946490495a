//! Placement as a pure function: given queued tasks and runners' free slots, decide which
//! runner gets which task. No I/O, so it is tested and benchmarked in isolation.
//!
//! Filters first (free slot, every required capability), then scores: a runner that
//! already mirrors the task's repository, then the least loaded, then the longest idle.

use std::cmp::Reverse;

use kiln_protocol::{RunnerId, TaskId};

use crate::hub::RunnerSlots;

/// A queued task as the scheduler sees it, in dispatch order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedTask {
    /// The task.
    pub id: TaskId,
    /// Its repository, for affinity.
    pub repo: String,
    /// Capabilities a runner must have.
    pub requires: Vec<String>,
}

/// One decision: run `task` on `runner`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The task.
    pub task: TaskId,
    /// The runner.
    pub runner: RunnerId,
}

/// Places `tasks` (highest priority first) onto `runners`, using each free slot once.
/// Tasks that no runner can take now are left out.
pub fn place(tasks: &[QueuedTask], runners: &[RunnerSlots]) -> Vec<Placement> {
    let mut runners: Vec<RunnerSlots> = runners.iter().filter(|r| r.free > 0).cloned().collect();
    let mut placements = Vec::new();
    for task in tasks {
        if runners.is_empty() {
            break;
        }
        let best = runners
            .iter()
            .enumerate()
            .filter(|(_, r)| is_eligible(task, r))
            .max_by_key(|(_, r)| score(task, r))
            .map(|(index, _)| index);
        let Some(index) = best else { continue };
        let runner = &mut runners[index];
        placements.push(Placement {
            task: task.id,
            runner: runner.id,
        });
        runner.free -= 1;
        runner.running += 1;
        if runner.free == 0 {
            runners.swap_remove(index);
        }
    }
    placements
}

fn is_eligible(task: &QueuedTask, runner: &RunnerSlots) -> bool {
    runner.free > 0
        && task
            .requires
            .iter()
            .all(|c| runner.capabilities.contains(c))
}

/// Higher is better: affinity, then fewer running, then idle longer (earlier idle_since),
/// then the lower id so that ties break the same way every time.
fn score(task: &QueuedTask, runner: &RunnerSlots) -> impl Ord {
    (
        runner.cached_projects.contains(&task.repo),
        Reverse(runner.running),
        Reverse(runner.idle_since),
        Reverse(runner.id),
    )
}

#[cfg(test)]
mod tests {
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
        }
    }

    fn task(n: u128, requires: &[&str]) -> QueuedTask {
        QueuedTask {
            id: TaskId(uuid::Uuid::from_u128(n)),
            repo: "repo".into(),
            requires: requires.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn never_places_more_tasks_than_free_slots() {
        let tasks: Vec<_> = (0..5).map(|n| task(n, &[])).collect();
        let placements = place(&tasks, &[runner(1, 2, &[]), runner(2, 1, &[])]);
        assert_eq!(placements.len(), 3);
        assert_eq!(
            placements
                .iter()
                .filter(|p| p.runner == runner(1, 0, &[]).id)
                .count(),
            2
        );
    }

    #[test]
    fn required_capabilities_filter_runners() {
        let placements = place(
            &[task(1, &["gpu"]), task(2, &[])],
            &[runner(1, 1, &["docker"]), runner(2, 1, &["gpu", "docker"])],
        );
        assert_eq!(placements.len(), 2);
        assert_eq!(placements[0].runner, runner(2, 0, &[]).id);
        assert_eq!(placements[1].runner, runner(1, 0, &[]).id);
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
    fn least_loaded_wins_without_affinity_and_spreads_work() {
        let mut busy = runner(1, 3, &[]);
        busy.running = 1;
        let idle = runner(2, 4, &[]);
        let placements = place(&[task(1, &[]), task(2, &[])], &[busy.clone(), idle.clone()]);
        assert_eq!(placements[0].runner, idle.id);
        // after the first placement both run one task; the tie goes to the longer-idle id
        assert_eq!(placements.len(), 2);
    }

    #[test]
    fn longest_idle_breaks_ties() {
        let mut recent = runner(1, 1, &[]);
        recent.idle_since = 200;
        let mut old = runner(2, 1, &[]);
        old.idle_since = 100;
        let placements = place(&[task(1, &[])], &[recent, old.clone()]);
        assert_eq!(placements[0].runner, old.id);
    }
}
