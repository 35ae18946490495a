//! Placement as a pure function: given queued tasks and connected runners, decide which
//! runner gets which task. No I/O, so it is tested and benchmarked in isolation.
//!
//! Filters first (available: not draining, paused or stale; a free slot; every required
//! capability; every requested label; not recently refused by it), then scores: a runner
//! that already mirrors the task's repository, then the least loaded, then the longest idle.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use kiln_protocol::{RunnerId, TaskId, UnixMillis};

/// A connected runner as the scheduler sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunnerSlots {
    /// The runner.
    pub id: RunnerId,
    /// Its capabilities.
    pub capabilities: BTreeSet<String>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Attempts it runs now.
    pub running: u32,
    /// Slots it has free.
    pub free: u32,
    /// Repositories it has mirrors of.
    pub cached_projects: BTreeSet<String>,
    /// When it last became idle.
    pub idle_since: UnixMillis,
    /// It takes no new work.
    pub draining: bool,
    /// An operator paused it.
    pub paused: bool,
    /// It has not been heard from for too long.
    pub stale: bool,
    /// It lives in a sandbox and takes only the task pinned to it.
    pub sandbox: bool,
}

impl RunnerSlots {
    fn is_available(&self) -> bool {
        !self.draining && !self.paused && !self.stale
    }
}

/// A queued task as the scheduler sees it, in dispatch order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedTask {
    /// The task.
    pub id: TaskId,
    /// Its repository, for affinity.
    pub repo: String,
    /// Capabilities a runner must have.
    pub requires: Vec<String>,
    /// Labels a runner must have.
    pub labels: BTreeMap<String, String>,
    /// Runners that refused it recently.
    pub refused_by: Vec<RunnerId>,
    /// The only runner that may take it (its workspace session's).
    pub pinned: Option<RunnerId>,
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
    let mut open: Vec<RunnerSlots> = runners
        .iter()
        .filter(|r| r.free > 0 && r.is_available())
        .cloned()
        .collect();
    let mut placements = Vec::new();
    for task in tasks {
        if open.is_empty() {
            break;
        }
        let best = open
            .iter()
            .enumerate()
            .filter(|(_, r)| can_run(task, r))
            .max_by_key(|(_, r)| score(task, r))
            .map(|(index, _)| index);
        let Some(index) = best else { continue };
        let runner = &mut open[index];
        placements.push(Placement {
            task: task.id,
            runner: runner.id,
        });
        runner.free -= 1;
        runner.running += 1;
        if runner.free == 0 {
            open.swap_remove(index);
        }
    }
    placements
}

/// The task's own demands: capabilities, labels, no recent refusal.
fn can_run(task: &QueuedTask, runner: &RunnerSlots) -> bool {
    task.requires
        .iter()
        .all(|c| runner.capabilities.contains(c))
        && task
            .labels
            .iter()
            .all(|(k, v)| runner.labels.get(k) == Some(v))
        && !task.refused_by.contains(&runner.id)
        && task.pinned.is_none_or(|pinned| pinned == runner.id)
        && (!runner.sandbox || task.pinned == Some(runner.id))
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

/// Says, for an operator, why `task` is still waiting given the connected `runners`.
pub fn explain(task: &QueuedTask, runners: &[RunnerSlots]) -> String {
    if let Some(pinned) = task.pinned {
        return match runners.iter().find(|r| r.id == pinned) {
            None => {
                format!("its runner {pinned} (its session's or sandbox's) is not connected yet")
            }
            Some(_) => format!("waiting for runner {pinned}, which holds its session or sandbox"),
        };
    }
    if runners.is_empty() {
        return "no runner is connected".into();
    }
    if let Some(missing) = task
        .requires
        .iter()
        .find(|c| !runners.iter().any(|r| r.capabilities.contains(*c)))
    {
        return format!("no connected runner has capability {missing}");
    }
    if let Some((key, value)) = task
        .labels
        .iter()
        .find(|(k, v)| !runners.iter().any(|r| r.labels.get(*k) == Some(*v)))
    {
        return format!("no connected runner has label {key}={value}");
    }
    let matching: Vec<&RunnerSlots> = runners
        .iter()
        .filter(|r| {
            task.requires.iter().all(|c| r.capabilities.contains(c))
                && task.labels.iter().all(|(k, v)| r.labels.get(k) == Some(v))
        })
        .collect();
    if matching.is_empty() {
        return "no single connected runner has every required capability and label".into();
    }
    if matching.iter().all(|r| task.refused_by.contains(&r.id)) {
        return format!("refused by every matching runner ({})", matching.len());
    }
    let available: Vec<&&RunnerSlots> = matching.iter().filter(|r| r.is_available()).collect();
    if available.is_empty() {
        return format!(
            "all {} matching runner(s) are draining, paused or unresponsive",
            matching.len()
        );
    }
    let slots: u32 = available.iter().map(|r| r.running + r.free).sum();
    format!(
        "all {} slot(s) of the {} matching runner(s) are busy; it starts when one frees",
        slots,
        available.len()
    )
}

#[cfg(test)]
mod tests;
