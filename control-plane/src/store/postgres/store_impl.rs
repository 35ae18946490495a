//! The `Store` trait on PostgreSQL: each method one call into the query modules, writes
//! timed for `/metrics`.

use async_trait::async_trait;
use kiln_protocol::{Event, RunnerId, SandboxId, TaskId, UnixMillis, WorkspaceId};

use super::{
    attempts, auth, events, fleet, placing, retention, sandboxes, tasks, workspaces, PostgresStore,
};
use crate::model::{
    AttemptRecord, CancelEffect, NewTask, RegistrationTokenRecord, RetryEffect, RunnerAnnouncement,
    RunnerRecord, SandboxRecord, SandboxState, TaskRecord, TaskState, WorkspaceRecord,
    WorkspaceState,
};
use crate::store::{
    Appended, NewRunner, Pruned, RegistrationRefusal, Store, StoreError, StoreStats, TaskFilter,
};
use crate::tokens::TokenHash;

#[async_trait]
impl Store for PostgresStore {
    async fn has_admin_token(&self) -> Result<bool, StoreError> {
        auth::has_admin_token(&self.pool).await
    }
    async fn probe_write(&self, now: UnixMillis) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO write_probe (id, probed_at) VALUES (1, $1)
             ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at",
        )
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
    async fn stats(&self) -> Result<StoreStats, StoreError> {
        tasks::stats(&self.pool).await
    }
    async fn prune_finished(
        &self,
        before: UnixMillis,
        now: UnixMillis,
        limit: u32,
    ) -> Result<Pruned, StoreError> {
        self.timed(retention::prune_finished(&self.pool, before, now, limit))
            .await
    }
    fn commit_latency(&self) -> Option<&crate::metrics::Histogram> {
        Some(&self.latency)
    }
    async fn add_admin_token(&self, hash: &TokenHash, now: UnixMillis) -> Result<(), StoreError> {
        self.timed(auth::add_admin_token(&self.pool, hash, now))
            .await
    }
    async fn is_admin_token(&self, hash: &TokenHash) -> Result<bool, StoreError> {
        auth::is_admin_token(&self.pool, hash).await
    }
    async fn create_registration_token(
        &self,
        record: &RegistrationTokenRecord,
        hash: &TokenHash,
    ) -> Result<(), StoreError> {
        self.timed(auth::create_registration_token(&self.pool, record, hash))
            .await
    }
    async fn register_runner(
        &self,
        registration: &TokenHash,
        runner: NewRunner,
        now: UnixMillis,
    ) -> Result<Result<RunnerRecord, RegistrationRefusal>, StoreError> {
        self.timed(auth::register_runner(&self.pool, registration, runner, now))
            .await
    }
    async fn runner_by_token(&self, hash: &TokenHash) -> Result<Option<RunnerRecord>, StoreError> {
        auth::runner_by_token(&self.pool, hash).await
    }
    async fn set_runner_tags(
        &self,
        id: RunnerId,
        capabilities: &[String],
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Result<bool, StoreError> {
        self.timed(fleet::set_runner_tags(&self.pool, id, capabilities, labels))
            .await
    }
    async fn announce_runner(
        &self,
        id: RunnerId,
        announcement: &RunnerAnnouncement,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.timed(auth::announce_runner(&self.pool, id, announcement, now))
            .await
    }
    async fn touch_runner(&self, id: RunnerId, now: UnixMillis) -> Result<(), StoreError> {
        self.timed(auth::touch_runner(&self.pool, id, now)).await
    }
    async fn runners(&self) -> Result<Vec<RunnerRecord>, StoreError> {
        auth::runners(&self.pool).await
    }
    async fn insert_tasks(&self, tasks: &[NewTask]) -> Result<(), StoreError> {
        self.timed(tasks::insert_tasks(&self.pool, tasks)).await
    }
    async fn insert_task(&self, task: &NewTask) -> Result<(), StoreError> {
        self.timed(tasks::insert_tasks(&self.pool, std::slice::from_ref(task)))
            .await
    }
    async fn insert_and_assign(
        &self,
        task: &NewTask,
        runner: RunnerId,
        now: UnixMillis,
    ) -> Result<Option<AttemptRecord>, StoreError> {
        self.timed(placing::insert_and_assign(&self.pool, task, runner, now))
            .await
    }
    async fn task(&self, id: TaskId) -> Result<Option<TaskRecord>, StoreError> {
        tasks::task(&self.pool, id).await
    }
    async fn tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskRecord>, StoreError> {
        tasks::tasks(&self.pool, filter).await
    }
    async fn queued_tasks(&self, limit: u32) -> Result<Vec<TaskRecord>, StoreError> {
        tasks::queued_tasks(&self.pool, limit).await
    }
    async fn assign(
        &self,
        placements: &[(TaskId, RunnerId)],
        now: UnixMillis,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        self.timed(attempts::assign(&self.pool, placements, now))
            .await
    }
    async fn retry_task(&self, task: TaskId, now: UnixMillis) -> Result<RetryEffect, StoreError> {
        self.timed(tasks::retry_task(&self.pool, task, now)).await
    }
    async fn runner(&self, id: RunnerId) -> Result<Option<RunnerRecord>, StoreError> {
        fleet::runner(&self.pool, id).await
    }
    async fn set_paused(
        &self,
        id: RunnerId,
        paused_at: Option<UnixMillis>,
    ) -> Result<bool, StoreError> {
        self.timed(fleet::set_paused(&self.pool, id, paused_at))
            .await
    }
    async fn set_drain_requested(
        &self,
        id: RunnerId,
        at: Option<UnixMillis>,
    ) -> Result<bool, StoreError> {
        self.timed(fleet::set_drain_requested(&self.pool, id, at))
            .await
    }
    async fn request_rotation(&self, id: RunnerId, now: UnixMillis) -> Result<bool, StoreError> {
        self.timed(fleet::request_rotation(&self.pool, id, now))
            .await
    }
    async fn rotate_token(&self, id: RunnerId, new_hash: &TokenHash) -> Result<(), StoreError> {
        self.timed(fleet::rotate_token(&self.pool, id, new_hash))
            .await
    }
    async fn confirm_rotation(&self, id: RunnerId) -> Result<(), StoreError> {
        self.timed(fleet::confirm_rotation(&self.pool, id)).await
    }
    async fn create_workspace(&self, record: &WorkspaceRecord) -> Result<(), StoreError> {
        self.timed(workspaces::create_workspace(&self.pool, record))
            .await
    }
    async fn workspace(&self, id: WorkspaceId) -> Result<Option<WorkspaceRecord>, StoreError> {
        workspaces::workspace(&self.pool, id).await
    }
    async fn end_workspace(
        &self,
        id: WorkspaceId,
        state: WorkspaceState,
        now: UnixMillis,
    ) -> Result<Option<Vec<TaskId>>, StoreError> {
        self.timed(workspaces::end_workspace(&self.pool, id, state, now))
            .await
    }
    async fn open_workspaces_of(
        &self,
        runner: RunnerId,
    ) -> Result<Vec<WorkspaceRecord>, StoreError> {
        workspaces::open_workspaces_of(&self.pool, runner).await
    }
    async fn busy_workspaces(&self) -> Result<Vec<WorkspaceId>, StoreError> {
        workspaces::busy_workspaces(&self.pool).await
    }
    async fn end_task(
        &self,
        task: TaskId,
        state: TaskState,
        message: &str,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        self.timed(tasks::end_task(&self.pool, task, state, message, now))
            .await
    }
    async fn create_sandbox(
        &self,
        task: &NewTask,
        sandbox: &SandboxRecord,
        runner: &NewRunner,
    ) -> Result<(), StoreError> {
        self.timed(sandboxes::create_sandbox(&self.pool, task, sandbox, runner))
            .await
    }
    async fn sandbox(&self, id: SandboxId) -> Result<Option<SandboxRecord>, StoreError> {
        sandboxes::sandbox(&self.pool, id).await
    }
    async fn sandbox_of_task(&self, task: TaskId) -> Result<Option<SandboxRecord>, StoreError> {
        sandboxes::sandbox_of_task(&self.pool, task).await
    }
    async fn live_sandboxes(&self) -> Result<Vec<SandboxRecord>, StoreError> {
        sandboxes::live_sandboxes(&self.pool).await
    }
    async fn sandbox_forged(&self, id: SandboxId, handle: &str) -> Result<bool, StoreError> {
        self.timed(sandboxes::sandbox_forged(&self.pool, id, handle))
            .await
    }
    async fn end_sandbox(
        &self,
        id: SandboxId,
        state: SandboxState,
        reason: &str,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        self.timed(sandboxes::end_sandbox(&self.pool, id, state, reason, now))
            .await
    }
    async fn revoke_runner(&self, id: RunnerId, now: UnixMillis) -> Result<bool, StoreError> {
        self.timed(fleet::revoke_runner(&self.pool, id, now)).await
    }
    async fn start_attempt(
        &self,
        task: TaskId,
        attempt: u32,
        runner: RunnerId,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        self.timed(attempts::start_attempt(
            &self.pool, task, attempt, runner, now,
        ))
        .await
    }
    async fn reject_attempt(
        &self,
        task: TaskId,
        attempt: u32,
        runner: RunnerId,
        now: UnixMillis,
    ) -> Result<Option<TaskState>, StoreError> {
        self.timed(attempts::reject_attempt(
            &self.pool, task, attempt, runner, now,
        ))
        .await
    }
    async fn lose_attempt(
        &self,
        task: TaskId,
        attempt: u32,
        runner: RunnerId,
        now: UnixMillis,
    ) -> Result<Option<TaskState>, StoreError> {
        self.timed(attempts::lose_attempt(
            &self.pool, task, attempt, runner, now,
        ))
        .await
    }
    async fn request_cancel(
        &self,
        task: TaskId,
        now: UnixMillis,
    ) -> Result<CancelEffect, StoreError> {
        self.timed(tasks::request_cancel(&self.pool, task, now))
            .await
    }
    async fn attempt(
        &self,
        task: TaskId,
        attempt: u32,
    ) -> Result<Option<AttemptRecord>, StoreError> {
        attempts::attempt(&self.pool, task, attempt).await
    }
    async fn attempts(&self, task: TaskId) -> Result<Vec<AttemptRecord>, StoreError> {
        attempts::attempts(&self.pool, task).await
    }
    async fn runners_with_open_attempts(&self) -> Result<Vec<RunnerId>, StoreError> {
        attempts::runners_with_open_attempts(&self.pool).await
    }
    async fn cancels_unheeded(
        &self,
        requested_before: UnixMillis,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        attempts::cancels_unheeded(&self.pool, requested_before).await
    }
    async fn timeouts_unheeded(
        &self,
        due_before: UnixMillis,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        attempts::timeouts_unheeded(&self.pool, due_before).await
    }
    async fn runners_under_control(
        &self,
        revoked_since: UnixMillis,
    ) -> Result<Vec<RunnerRecord>, StoreError> {
        fleet::runners_under_control(&self.pool, revoked_since).await
    }
    async fn silent_runners_with_open_attempts(
        &self,
        heard_before: UnixMillis,
    ) -> Result<Vec<RunnerId>, StoreError> {
        attempts::silent_runners_with_open_attempts(&self.pool, heard_before).await
    }
    async fn open_attempts(&self, runner: RunnerId) -> Result<Vec<AttemptRecord>, StoreError> {
        attempts::open_attempts(&self.pool, runner).await
    }
    async fn append_events(
        &self,
        task: TaskId,
        attempt: u32,
        runner: RunnerId,
        events: Vec<Event>,
        log_cap: u64,
        now: UnixMillis,
    ) -> Result<Appended, StoreError> {
        self.timed(events::append_events(
            &self.pool, task, attempt, runner, events, log_cap, now,
        ))
        .await
    }
    async fn events(
        &self,
        task: TaskId,
        attempt: u32,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        events::events(&self.pool, task, attempt, after_seq, limit).await
    }
    async fn put_artifact(
        &self,
        task: TaskId,
        attempt: u32,
        kind: &str,
        data: &[u8],
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.timed(events::put_artifact(
            &self.pool, task, attempt, kind, data, now,
        ))
        .await
    }
    async fn artifact(
        &self,
        task: TaskId,
        attempt: u32,
        kind: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        events::artifact(&self.pool, task, attempt, kind).await
    }
}
