//! The attempts this runner is running: one slot each, a cancel handle each, and the
//! phase each is in (for `kiln-runner status`).

use std::collections::BTreeMap;
use std::sync::Mutex;

use kiln_protocol::{now_millis, Phase, TaskId, UnixMillis, WorkspaceId};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::outbox::AttemptKey;

#[derive(Debug)]
struct Running {
    workspace: Option<WorkspaceId>,
    cancel: CancellationToken,
    phase: Option<Phase>,
    repo: String,
    started_at: UnixMillis,
}

/// One running attempt, as `kiln-runner status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptStatus {
    /// The task.
    pub task_id: TaskId,
    /// The attempt.
    pub attempt: u32,
    /// Its repository.
    pub repo: String,
    /// Its phase, once begun.
    pub phase: Option<Phase>,
    /// When the runner took it.
    pub started_at: UnixMillis,
}

/// Why an assignment cannot be taken.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    /// Every slot is busy.
    #[error("no free slot ({0} running)")]
    Full(u32),
    /// The runner is draining.
    #[error("runner is draining")]
    Draining,
}

/// The running attempts.
#[derive(Debug)]
pub struct Attempts {
    running: Mutex<BTreeMap<AttemptKey, Running>>,
    max: u32,
    draining: Mutex<bool>,
    idle: Notify,
    busy: Notify,
}

impl Attempts {
    /// A table with `max` slots.
    pub fn new(max: u32) -> Self {
        Self {
            running: Mutex::default(),
            max,
            draining: Mutex::new(false),
            idle: Notify::new(),
            busy: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<AttemptKey, Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a slot for `key`. `Ok(None)` means it already runs here (a repeated assign).
    pub fn claim(
        &self,
        key: AttemptKey,
        repo: &str,
        workspace: Option<WorkspaceId>,
    ) -> Result<Option<CancellationToken>, Refusal> {
        if self.is_draining() {
            return Err(Refusal::Draining);
        }
        let mut running = self.lock();
        if running.contains_key(&key) {
            return Ok(None);
        }
        let count = u32::try_from(running.len()).unwrap_or(u32::MAX);
        if count >= self.max {
            return Err(Refusal::Full(count));
        }
        let cancel = CancellationToken::new();
        running.insert(
            key,
            Running {
                workspace,
                cancel: cancel.clone(),
                phase: None,
                repo: repo.to_owned(),
                started_at: now_millis(),
            },
        );
        drop(running);
        self.busy.notify_waiters();
        Ok(Some(cancel))
    }

    /// Frees `key`'s slot.
    pub fn release(&self, key: AttemptKey) {
        let mut running = self.lock();
        running.remove(&key);
        if running.is_empty() {
            drop(running);
            self.idle.notify_waiters();
        }
    }

    /// Records the phase an attempt entered.
    pub fn set_phase(&self, key: AttemptKey, phase: Phase) {
        if let Some(entry) = self.lock().get_mut(&key) {
            entry.phase = Some(phase);
        }
    }

    /// The workspace session an attempt runs in: `None` if it does not run here,
    /// `Some(None)` for its own fresh worktree.
    pub fn workspace_of(&self, key: AttemptKey) -> Option<Option<WorkspaceId>> {
        self.lock().get(&key).map(|r| r.workspace)
    }

    /// Asks an attempt to stop. False if it does not run here or was asked already (a
    /// control plane may repeat a cancel it is not sure arrived).
    pub fn cancel(&self, key: AttemptKey) -> bool {
        self.lock().get(&key).is_some_and(|running| {
            let first = !running.cancel.is_cancelled();
            running.cancel.cancel();
            first
        })
    }

    /// Asks every attempt to stop.
    pub fn cancel_all(&self) {
        for running in self.lock().values() {
            running.cancel.cancel();
        }
    }

    /// Stops taking new attempts.
    pub fn start_draining(&self) {
        *self.draining.lock().unwrap_or_else(|p| p.into_inner()) = true;
    }

    /// True once draining.
    pub fn is_draining(&self) -> bool {
        *self.draining.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Attempts running now.
    pub fn count(&self) -> u32 {
        u32::try_from(self.lock().len()).unwrap_or(u32::MAX)
    }

    /// Slots free now.
    pub fn free_slots(&self) -> u32 {
        self.max.saturating_sub(self.count())
    }

    /// The running attempts, for status.
    pub fn snapshot(&self) -> Vec<AttemptStatus> {
        self.lock()
            .iter()
            .map(|((task_id, attempt), r)| AttemptStatus {
                task_id: *task_id,
                attempt: *attempt,
                repo: r.repo.clone(),
                phase: r.phase,
                started_at: r.started_at,
            })
            .collect()
    }

    /// Waits until an attempt starts.
    pub async fn wait_busy(&self) {
        self.busy.notified().await;
    }

    /// Waits until no attempt runs.
    pub async fn wait_idle(&self) {
        loop {
            let idle = self.idle.notified();
            if self.lock().is_empty() {
                return;
            }
            idle.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_and_repeats_are_idempotent() {
        let attempts = Attempts::new(1);
        let key = (TaskId::new(), 1);
        assert!(attempts.claim(key, "r", None).unwrap().is_some());
        assert_eq!(attempts.claim(key, "r", None), Ok(None));
        assert_eq!(
            attempts.claim((TaskId::new(), 1), "r", None),
            Err(Refusal::Full(1))
        );
        attempts.release(key);
        assert_eq!(attempts.free_slots(), 1);
    }

    #[test]
    fn a_repeated_cancel_is_reported_once() {
        let attempts = Attempts::new(1);
        let key = (TaskId::new(), 1);
        assert!(attempts.claim(key, "r", None).unwrap().is_some());
        assert!(attempts.cancel(key), "the first cancel");
        assert!(!attempts.cancel(key), "a repeat changes nothing");
        assert!(!attempts.cancel((TaskId::new(), 1)), "not here");
    }

    #[test]
    fn draining_refuses_new_work() {
        let attempts = Attempts::new(2);
        attempts.start_draining();
        assert_eq!(
            attempts.claim((TaskId::new(), 1), "r", None),
            Err(Refusal::Draining)
        );
    }
}
