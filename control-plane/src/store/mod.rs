//! The system of record: the `Store` trait and its backends.
//!
//! Every state change is one transaction inside a backend method, so callers never see
//! (or leave behind) a half-made change.

mod database;
mod error;
mod event_batches;
mod migrated;
mod outcomes;
mod postgres;
mod rows;
mod shared;
mod sqlite;

use std::collections::BTreeMap;

use async_trait::async_trait;
use kiln_protocol::{Event, RunnerId, SandboxId, TaskId, UnixMillis, WorkspaceId};

pub use database::{Database, UnknownDatabase};
pub use error::{RegistrationRefusal, StoreError};
pub use migrated::Migrated;
pub use postgres::notify as postgres_notify;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use crate::model::{
    AttemptRecord, CancelEffect, NewTask, RegistrationTokenRecord, RetryEffect, RunnerAnnouncement,
    RunnerRecord, SandboxRecord, SandboxState, TaskRecord, TaskState, WorkspaceRecord,
    WorkspaceState,
};
use crate::tokens::TokenHash;

/// Result of storing a batch of events.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Appended {
    /// Highest contiguous seq now stored for the attempt.
    pub acked_seq: u64,
    /// Events stored by this call (duplicates and events past a gap are not).
    pub stored: Vec<Event>,
    /// True when this call stored the attempt's `finished` event.
    pub finished: bool,
}

/// A runner's new registration.
#[derive(Clone, Debug)]
pub struct NewRunner {
    /// Its record.
    pub record: RunnerRecord,
    /// Hash of its runner token.
    pub token_hash: TokenHash,
}

/// Counts for the metrics endpoint.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoreStats {
    /// Tasks per state (states with none are absent).
    pub tasks_by_state: Vec<(TaskState, u64)>,
    /// Submission time of the oldest queued task.
    pub oldest_queued_at: Option<UnixMillis>,
    /// Size of the database.
    pub bytes: u64,
}

/// What one retention pass deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Tasks whose output was pruned.
    pub tasks: u64,
    /// Stored event chunks deleted.
    pub event_chunks: u64,
    /// Artifact (bundle, diff) bytes deleted.
    pub artifact_bytes: u64,
}

/// Which tasks to list, newest first.
#[derive(Clone, Debug, Default)]
pub struct TaskFilter {
    /// Only tasks in this state.
    pub state: Option<TaskState>,
    /// Only tasks on this repository.
    pub repo: Option<String>,
    /// Only tasks that had an attempt on this runner.
    pub runner: Option<RunnerId>,
    /// Only tasks with this label (key, value).
    pub label: Option<(String, String)>,
    /// Only tasks older than this one (the previous page's last id).
    pub before: Option<TaskId>,
    /// At most this many.
    pub limit: u32,
}

/// What a run of kiln keeps: tokens, runners, tasks, attempts, events and artifacts,
/// workspace sessions and sandboxes; the methods are grouped by subject.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // Health and upkeep.

    /// Writes one row and waits until it is durable: readiness means the store can write
    /// (a full disk fails here, where a read would still succeed).
    async fn probe_write(&self, now: UnixMillis) -> Result<(), StoreError>;
    /// Tasks per state, the oldest queued task and the database's size.
    async fn stats(&self) -> Result<StoreStats, StoreError>;
    /// Deletes the events and artifacts of up to `limit` terminal tasks that finished
    /// before `before`, and marks them pruned at `now`. Never touches a live task.
    async fn prune_finished(
        &self,
        before: UnixMillis,
        now: UnixMillis,
        limit: u32,
    ) -> Result<Pruned, StoreError>;
    /// Time taken by each commit of writes, if the backend measures it.
    fn commit_latency(&self) -> Option<&crate::metrics::Histogram> {
        None
    }

    // Admin and registration tokens.

    /// True when at least one admin token exists.
    async fn has_admin_token(&self) -> Result<bool, StoreError>;
    /// Adds an admin token hash (idempotent).
    async fn add_admin_token(&self, hash: &TokenHash, now: UnixMillis) -> Result<(), StoreError>;
    /// True when `hash` is an admin token's.
    async fn is_admin_token(&self, hash: &TokenHash) -> Result<bool, StoreError>;
    /// Saves a new registration token; saving a hash that exists already does nothing.
    async fn create_registration_token(
        &self,
        record: &RegistrationTokenRecord,
        hash: &TokenHash,
    ) -> Result<(), StoreError>;

    // Runners.

    /// Spends one use of a registration token and creates the runner, atomically.
    async fn register_runner(
        &self,
        registration: &TokenHash,
        runner: NewRunner,
        now: UnixMillis,
    ) -> Result<Result<RunnerRecord, RegistrationRefusal>, StoreError>;
    /// The runner whose token hashes to `hash`, revoked or not.
    async fn runner_by_token(&self, hash: &TokenHash) -> Result<Option<RunnerRecord>, StoreError>;
    /// One runner.
    async fn runner(&self, id: RunnerId) -> Result<Option<RunnerRecord>, StoreError>;
    /// Every registered runner, oldest first.
    async fn runners(&self) -> Result<Vec<RunnerRecord>, StoreError>;
    /// Records what a runner announced in its hello: its name, slots and version, never its
    /// capabilities or labels (those are registered, and changed by an operator).
    async fn announce_runner(
        &self,
        id: RunnerId,
        announcement: &RunnerAnnouncement,
        now: UnixMillis,
    ) -> Result<(), StoreError>;
    /// Records that a runner was heard from.
    async fn touch_runner(&self, id: RunnerId, now: UnixMillis) -> Result<(), StoreError>;
    /// Sets the capabilities and labels an operator gives a runner (its hello cannot). False
    /// if it does not exist.
    async fn set_runner_tags(
        &self,
        id: RunnerId,
        capabilities: &[String],
        labels: &BTreeMap<String, String>,
    ) -> Result<bool, StoreError>;
    /// Pauses (`Some(now)`) or resumes (`None`) a runner. False if it does not exist.
    async fn set_paused(
        &self,
        id: RunnerId,
        paused_at: Option<UnixMillis>,
    ) -> Result<bool, StoreError>;
    /// Records (`Some`) or clears (`None`) a drain to deliver when the runner connects.
    async fn set_drain_requested(
        &self,
        id: RunnerId,
        at: Option<UnixMillis>,
    ) -> Result<bool, StoreError>;
    /// Asks for the runner's token to be rotated the next time it is connected.
    async fn request_rotation(&self, id: RunnerId, now: UnixMillis) -> Result<bool, StoreError>;
    /// Makes `new_hash` the runner's token; its previous token stays valid until confirmed.
    async fn rotate_token(&self, id: RunnerId, new_hash: &TokenHash) -> Result<(), StoreError>;
    /// The runner saved its new token: retire the previous one.
    async fn confirm_rotation(&self, id: RunnerId) -> Result<(), StoreError>;
    /// Revokes a runner's token for good. False if it does not exist.
    async fn revoke_runner(&self, id: RunnerId, now: UnixMillis) -> Result<bool, StoreError>;
    /// Runners an operator paused, asked to drain, or revoked after `revoked_since`: what
    /// the replica holding each must have acted on.
    async fn runners_under_control(
        &self,
        revoked_since: UnixMillis,
    ) -> Result<Vec<RunnerRecord>, StoreError>;

    // Tasks.

    /// Saves a new queued task.
    async fn insert_task(&self, task: &NewTask) -> Result<(), StoreError>;
    /// Saves new queued tasks, all or none.
    async fn insert_tasks(&self, tasks: &[NewTask]) -> Result<(), StoreError>;
    /// Saves a new task and, in the same transaction, assigns it to `runner` when nothing
    /// queued goes before it: no other queued task of its priority or higher, and its
    /// session (if any) has no other task queued, assigned or running, and no other
    /// runner. `None` when the task was left queued.
    async fn insert_and_assign(
        &self,
        task: &NewTask,
        runner: RunnerId,
        now: UnixMillis,
    ) -> Result<Option<AttemptRecord>, StoreError>;
    /// One task.
    async fn task(&self, id: TaskId) -> Result<Option<TaskRecord>, StoreError>;
    /// Tasks matching `filter`, newest first.
    async fn tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskRecord>, StoreError>;
    /// Queued tasks in dispatch order: highest priority, then oldest.
    async fn queued_tasks(&self, limit: u32) -> Result<Vec<TaskRecord>, StoreError>;
    /// Queues a finished task again for a new attempt; `max_attempts` counts afresh.
    async fn retry_task(&self, task: TaskId, now: UnixMillis) -> Result<RetryEffect, StoreError>;
    /// Asks to cancel a task: a queued task ends at once; a running one is marked, and the
    /// caller tells its runner.
    async fn request_cancel(
        &self,
        task: TaskId,
        now: UnixMillis,
    ) -> Result<CancelEffect, StoreError>;
    /// Ends a task that has not ended, its open attempts lost. False if it had ended.
    async fn end_task(
        &self,
        task: TaskId,
        state: TaskState,
        message: &str,
        now: UnixMillis,
    ) -> Result<bool, StoreError>;

    // Attempts.

    /// Records a new attempt for each (task, runner) pair whose task is still queued, in
    /// one transaction; a session's task is skipped while another task of its session is
    /// assigned or running. The attempts exist before the runners hear of them.
    async fn assign(
        &self,
        placements: &[(TaskId, RunnerId)],
        now: UnixMillis,
    ) -> Result<Vec<AttemptRecord>, StoreError>;
    /// The runner accepted the attempt. False if the attempt is no longer the runner's to
    /// run (it expired, was given away or ended): the runner must drop it.
    async fn start_attempt(
        &self,
        task: TaskId,
        attempt: u32,
        runner: RunnerId,
        now: UnixMillis,
    ) -> Result<bool, StoreError>;
    /// The runner refused the attempt, or never took it; the task goes back to the queue,
    /// or ends as `error` once [`outcomes::MAX_UNTAKEN_ASSIGNMENTS`] of its assignments went
    /// untaken. Returns the task's new state, or `None` if the attempt was not assigned.
    async fn reject_attempt(
        &self,
        task: TaskId,
        attempt: u32,
        runner: RunnerId,
        now: UnixMillis,
    ) -> Result<Option<TaskState>, StoreError>;
    /// Ends an open attempt of `runner` as `lost` (its runner no longer has it). The task is
    /// queued again while fewer than `max_attempts` attempts have started, else it ends as
    /// `lost`. Returns the task's
    /// new state, or `None` if the attempt was not open.
    async fn lose_attempt(
        &self,
        task: TaskId,
        attempt: u32,
        runner: RunnerId,
        now: UnixMillis,
    ) -> Result<Option<TaskState>, StoreError>;
    /// One attempt.
    async fn attempt(
        &self,
        task: TaskId,
        attempt: u32,
    ) -> Result<Option<AttemptRecord>, StoreError>;
    /// Every attempt of a task, first to last.
    async fn attempts(&self, task: TaskId) -> Result<Vec<AttemptRecord>, StoreError>;
    /// Attempts given to `runner` that have not ended.
    async fn open_attempts(&self, runner: RunnerId) -> Result<Vec<AttemptRecord>, StoreError>;
    /// Runners that hold attempts that have not ended.
    async fn runners_with_open_attempts(&self) -> Result<Vec<RunnerId>, StoreError>;
    /// Runners that hold attempts that have not ended and that no control plane heard from
    /// after `heard_before`.
    async fn silent_runners_with_open_attempts(
        &self,
        heard_before: UnixMillis,
    ) -> Result<Vec<RunnerId>, StoreError>;
    /// Attempts that have not ended although their task's cancel was requested before
    /// `requested_before`: their runner may not have heard of it.
    async fn cancels_unheeded(
        &self,
        requested_before: UnixMillis,
    ) -> Result<Vec<AttemptRecord>, StoreError>;
    /// Open attempts of tasks whose timeout, counted from the attempt's start (or its
    /// assignment, if never started), ended before `due_before`.
    async fn timeouts_unheeded(
        &self,
        due_before: UnixMillis,
    ) -> Result<Vec<AttemptRecord>, StoreError>;

    // Events and artifacts.

    /// Stores the contiguous next events of an attempt owned by `runner`, idempotently, and
    /// ends the attempt (and task) when `finished` is among them. Log text beyond `log_cap`
    /// bytes per attempt is replaced by a marker.
    async fn append_events(
        &self,
        task: TaskId,
        attempt: u32,
        runner: RunnerId,
        events: Vec<Event>,
        log_cap: u64,
        now: UnixMillis,
    ) -> Result<Appended, StoreError>;
    /// Stored events of an attempt with `seq > after_seq`, in order, at most `limit`.
    async fn events(
        &self,
        task: TaskId,
        attempt: u32,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError>;
    /// Saves an attempt's artifact (`bundle` or `diff`), replacing an earlier upload of the
    /// same attempt; refused with [`StoreError::Ended`] once the attempt has ended or reported.
    async fn put_artifact(
        &self,
        task: TaskId,
        attempt: u32,
        kind: &str,
        data: &[u8],
        now: UnixMillis,
    ) -> Result<(), StoreError>;
    /// An attempt's artifact.
    async fn artifact(
        &self,
        task: TaskId,
        attempt: u32,
        kind: &str,
    ) -> Result<Option<Vec<u8>>, StoreError>;

    // Workspace sessions.

    /// Saves a new, open workspace session.
    async fn create_workspace(&self, record: &WorkspaceRecord) -> Result<(), StoreError>;
    /// One workspace session.
    async fn workspace(&self, id: WorkspaceId) -> Result<Option<WorkspaceRecord>, StoreError>;
    /// Ends an open session as `closed` or `lost`, ending its queued tasks: the tasks it
    /// ended, or `None` if the session was not open.
    async fn end_workspace(
        &self,
        id: WorkspaceId,
        state: WorkspaceState,
        now: UnixMillis,
    ) -> Result<Option<Vec<TaskId>>, StoreError>;
    /// Open sessions bound to `runner`.
    async fn open_workspaces_of(
        &self,
        runner: RunnerId,
    ) -> Result<Vec<WorkspaceRecord>, StoreError>;
    /// Sessions with a task assigned or running.
    async fn busy_workspaces(&self) -> Result<Vec<WorkspaceId>, StoreError>;

    // Sandboxes.

    /// Saves a sandboxed task with its sandbox and the sandbox's runner identity.
    async fn create_sandbox(
        &self,
        task: &NewTask,
        sandbox: &SandboxRecord,
        runner: &NewRunner,
    ) -> Result<(), StoreError>;
    /// One sandbox.
    async fn sandbox(&self, id: SandboxId) -> Result<Option<SandboxRecord>, StoreError>;
    /// The sandbox of a task, if it has one.
    async fn sandbox_of_task(&self, task: TaskId) -> Result<Option<SandboxRecord>, StoreError>;
    /// Sandboxes being forged or running.
    async fn live_sandboxes(&self) -> Result<Vec<SandboxRecord>, StoreError>;
    /// Records that a sandbox is up, under the provider's `handle`. False if it ended (was
    /// burned) meanwhile.
    async fn sandbox_forged(&self, id: SandboxId, handle: &str) -> Result<bool, StoreError>;
    /// Ends a live sandbox (burned or failed) and revokes its runner. False if it had ended.
    async fn end_sandbox(
        &self,
        id: SandboxId,
        state: SandboxState,
        reason: &str,
        now: UnixMillis,
    ) -> Result<bool, StoreError>;
}
