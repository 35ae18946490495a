//! The embedded SQLite backend: one file in WAL mode, one writer at a time (the writer
//! thread or the connection for other writes, taking turns), many readers.

mod attempts;
mod auth;
mod events;
mod fleet;
mod group;
mod retention;
mod sandboxes;
mod schema;
mod space;
mod tasks;
mod workspaces;
mod writer;

use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::Duration;

use async_trait::async_trait;
use kiln_protocol::{Event, RunnerId, SandboxId, TaskId, UnixMillis, WorkspaceId};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use group::GroupCommit;
use writer::WriteTurn;

use super::{
    Appended, Migrated, NewRunner, Pruned, RegistrationRefusal, Store, StoreError, StoreStats,
    TaskFilter,
};
use crate::model::{
    AttemptRecord, CancelEffect, NewTask, RegistrationTokenRecord, RetryEffect, RunnerAnnouncement,
    RunnerRecord, SandboxRecord, SandboxState, TaskRecord, TaskState, WorkspaceRecord,
    WorkspaceState,
};
use crate::tokens::TokenHash;

/// How long a statement waits for a lock held by another connection before failing. The two
/// writing connections take turns, so a writer waits only for a rollback still finishing on
/// the other (a cancelled write's) or for a checkpoint; readers never wait in WAL mode.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Reader connections. Reads are short; a few connections serve API calls and log
/// followers without holding up the writer.
const READER_CONNECTIONS: u32 = 4;

/// The SQLite store.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    /// The directory of the database file, for the free-space check.
    directory: PathBuf,
    /// The connection for writes other than the hot ones; it writes only in its turn.
    writer_pool: SqlitePool,
    /// Whose turn it is to write: this pool's or the writer thread's.
    turn: WriteTurn,
    /// Connections for queries.
    reader: SqlitePool,
    /// The hot writes, committed in groups on the writer thread.
    group: GroupCommit,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending migrations;
    /// refuses a database that a newer kiln migrated.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = Self::options(path)?;
        let writer = Self::pool(1).connect_with(options.clone()).await?;
        schema::migrate(&writer).await?;
        let reader = Self::pool(READER_CONNECTIONS)
            .connect_with(options.read_only(true))
            .await?;
        let turn = WriteTurn::default();
        let group = GroupCommit::start(path, turn.clone())?;
        Ok(Self {
            directory: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
            writer_pool: writer,
            turn,
            reader,
            group,
        })
    }

    /// Applies pending migrations to the database at `path` (creating it if needed) and
    /// says what it did; `kiln migrate`.
    pub async fn migrate(path: &Path) -> Result<Migrated, StoreError> {
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(Self::options(path)?)
            .await?;
        let migrated = schema::migrate(&writer).await;
        writer.close().await;
        migrated
    }

    /// The newest schema version this build knows.
    pub fn known_version() -> i64 {
        schema::known_version()
    }

    /// A pool of at most `connections` that hands out connections without pinging them
    /// first: a connection to a local file does not go stale, and sqlx's ping is a round
    /// trip to the connection's thread before every statement's own.
    fn pool(connections: u32) -> SqlitePoolOptions {
        SqlitePoolOptions::new()
            .max_connections(connections)
            .test_before_acquire(false)
    }

    fn options(path: &Path) -> Result<SqliteConnectOptions, StoreError> {
        Ok(SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an acknowledged event survives power loss, not only a process crash.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT))
    }

    /// The pool for writes other than the hot ones, once it is its turn to write.
    async fn writer(&self) -> WriterTurn<'_> {
        WriterTurn {
            _turn: self.turn.lock().await,
            pool: &self.writer_pool,
        }
    }

    /// Closes the pools and ends the writer thread, waiting for open transactions and the
    /// writes already queued to end.
    pub async fn close(&self) {
        self.reader.close().await;
        // Closed already when it fails: nothing is left to wait for.
        let _ = self.group.close().await;
        self.writer_pool.close().await;
    }
}

/// The pool for the rare writes, holding the turn to write.
struct WriterTurn<'a> {
    _turn: tokio::sync::MutexGuard<'a, ()>,
    pool: &'a SqlitePool,
}

impl std::ops::Deref for WriterTurn<'_> {
    type Target = SqlitePool;

    fn deref(&self) -> &SqlitePool {
        self.pool
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn has_admin_token(&self) -> Result<bool, StoreError> {
        auth::has_admin_token(&self.reader).await
    }
    async fn probe_write(&self, now: UnixMillis) -> Result<(), StoreError> {
        // A write that fits the WAL's space already on disk still succeeds on a full disk,
        // while any that needs more fails: the free space says more than one small write.
        let directory = self.directory.clone();
        tokio::task::spawn_blocking(move || space::check(&directory))
            .await
            .map_err(|e| StoreError::GroupFailed(format!("the space check failed: {e}")))??;
        sqlx::query(
            "INSERT INTO write_probe (id, probed_at) VALUES (1, ?)
             ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at",
        )
        .bind(now)
        .execute(&*self.writer().await)
        .await?;
        Ok(())
    }
    async fn stats(&self) -> Result<StoreStats, StoreError> {
        tasks::stats(&self.reader).await
    }
    async fn prune_finished(
        &self,
        before: UnixMillis,
        now: UnixMillis,
        limit: u32,
    ) -> Result<Pruned, StoreError> {
        retention::prune_finished(&*self.writer().await, before, now, limit).await
    }
    fn commit_latency(&self) -> Option<&crate::metrics::Histogram> {
        Some(self.group.latency())
    }
    async fn add_admin_token(&self, hash: &TokenHash, now: UnixMillis) -> Result<(), StoreError> {
        auth::add_admin_token(&*self.writer().await, hash, now).await
    }
    async fn is_admin_token(&self, hash: &TokenHash) -> Result<bool, StoreError> {
        auth::is_admin_token(&self.reader, hash).await
    }
    async fn create_registration_token(
        &self,
        record: &RegistrationTokenRecord,
        hash: &TokenHash,
    ) -> Result<(), StoreError> {
        auth::create_registration_token(&*self.writer().await, record, hash).await
    }
    async fn register_runner(
        &self,
        registration: &TokenHash,
        runner: NewRunner,
        now: UnixMillis,
    ) -> Result<Result<RunnerRecord, RegistrationRefusal>, StoreError> {
        auth::register_runner(&*self.writer().await, registration, runner, now).await
    }
    async fn runner_by_token(&self, hash: &TokenHash) -> Result<Option<RunnerRecord>, StoreError> {
        auth::runner_by_token(&self.reader, hash).await
    }
    async fn set_runner_tags(
        &self,
        id: RunnerId,
        capabilities: &[String],
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Result<bool, StoreError> {
        fleet::set_runner_tags(&*self.writer().await, id, capabilities, labels).await
    }
    async fn announce_runner(
        &self,
        id: RunnerId,
        announcement: &RunnerAnnouncement,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        auth::announce_runner(&*self.writer().await, id, announcement, now).await
    }
    async fn touch_runner(&self, id: RunnerId, now: UnixMillis) -> Result<(), StoreError> {
        self.group.touch_runner(id, now).await
    }
    async fn runners(&self) -> Result<Vec<RunnerRecord>, StoreError> {
        auth::runners(&self.reader).await
    }
    async fn insert_tasks(&self, tasks: &[NewTask]) -> Result<(), StoreError> {
        self.group.insert_tasks(tasks.to_vec()).await
    }
    async fn insert_task(&self, task: &NewTask) -> Result<(), StoreError> {
        self.group.insert_task(task.clone()).await
    }
    async fn insert_and_assign(
        &self,
        task: &NewTask,
        runner: RunnerId,
        now: UnixMillis,
    ) -> Result<Option<AttemptRecord>, StoreError> {
        self.group
            .insert_and_assign(task.clone(), runner, now)
            .await
    }
    async fn task(&self, id: TaskId) -> Result<Option<TaskRecord>, StoreError> {
        tasks::task(&self.reader, id).await
    }
    async fn tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskRecord>, StoreError> {
        tasks::tasks(&self.reader, filter).await
    }
    async fn queued_tasks(&self, limit: u32) -> Result<Vec<TaskRecord>, StoreError> {
        tasks::queued_tasks(&self.reader, limit).await
    }
    async fn assign(
        &self,
        placements: &[(TaskId, RunnerId)],
        now: UnixMillis,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        self.group.assign(placements.to_vec(), now).await
    }
    async fn retry_task(&self, task: TaskId, now: UnixMillis) -> Result<RetryEffect, StoreError> {
        tasks::retry_task(&*self.writer().await, task, now).await
    }
    async fn runner(&self, id: RunnerId) -> Result<Option<RunnerRecord>, StoreError> {
        fleet::runner(&self.reader, id).await
    }
    async fn set_paused(
        &self,
        id: RunnerId,
        paused_at: Option<UnixMillis>,
    ) -> Result<bool, StoreError> {
        fleet::set_paused(&*self.writer().await, id, paused_at).await
    }
    async fn set_drain_requested(
        &self,
        id: RunnerId,
        at: Option<UnixMillis>,
    ) -> Result<bool, StoreError> {
        fleet::set_drain_requested(&*self.writer().await, id, at).await
    }
    async fn request_rotation(&self, id: RunnerId, now: UnixMillis) -> Result<bool, StoreError> {
        fleet::request_rotation(&*self.writer().await, id, now).await
    }
    async fn rotate_token(&self, id: RunnerId, new_hash: &TokenHash) -> Result<(), StoreError> {
        fleet::rotate_token(&*self.writer().await, id, new_hash).await
    }
    async fn confirm_rotation(&self, id: RunnerId) -> Result<(), StoreError> {
        fleet::confirm_rotation(&*self.writer().await, id).await
    }
    async fn create_workspace(&self, record: &WorkspaceRecord) -> Result<(), StoreError> {
        workspaces::create_workspace(&*self.writer().await, record).await
    }
    async fn workspace(&self, id: WorkspaceId) -> Result<Option<WorkspaceRecord>, StoreError> {
        workspaces::workspace(&self.reader, id).await
    }
    async fn end_workspace(
        &self,
        id: WorkspaceId,
        state: WorkspaceState,
        now: UnixMillis,
    ) -> Result<Option<Vec<TaskId>>, StoreError> {
        workspaces::end_workspace(&*self.writer().await, id, state, now).await
    }
    async fn open_workspaces_of(
        &self,
        runner: RunnerId,
    ) -> Result<Vec<WorkspaceRecord>, StoreError> {
        workspaces::open_workspaces_of(&self.reader, runner).await
    }
    async fn busy_workspaces(&self) -> Result<Vec<WorkspaceId>, StoreError> {
        workspaces::busy_workspaces(&self.reader).await
    }
    async fn end_task(
        &self,
        task: TaskId,
        state: TaskState,
        message: &str,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        tasks::end_task(&*self.writer().await, task, state, message, now).await
    }
    async fn create_sandbox(
        &self,
        task: &NewTask,
        sandbox: &SandboxRecord,
        runner: &NewRunner,
    ) -> Result<(), StoreError> {
        self.group
            .create_sandbox(task.clone(), sandbox.clone(), runner.clone())
            .await
    }
    async fn sandbox(&self, id: SandboxId) -> Result<Option<SandboxRecord>, StoreError> {
        sandboxes::sandbox(&self.reader, id).await
    }
    async fn sandbox_of_task(&self, task: TaskId) -> Result<Option<SandboxRecord>, StoreError> {
        sandboxes::sandbox_of_task(&self.reader, task).await
    }
    async fn live_sandboxes(&self) -> Result<Vec<SandboxRecord>, StoreError> {
        sandboxes::live_sandboxes(&self.reader).await
    }
    async fn sandbox_forged(&self, id: SandboxId, handle: &str) -> Result<bool, StoreError> {
        sandboxes::sandbox_forged(&*self.writer().await, id, handle).await
    }
    async fn end_sandbox(
        &self,
        id: SandboxId,
        state: SandboxState,
        reason: &str,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        sandboxes::end_sandbox(&*self.writer().await, id, state, reason, now).await
    }
    async fn revoke_runner(&self, id: RunnerId, now: UnixMillis) -> Result<bool, StoreError> {
        fleet::revoke_runner(&*self.writer().await, id, now).await
    }
    async fn start_attempt(
        &self,
        task: TaskId,
        attempt: u32,
        runner: RunnerId,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        self.group.start_attempt((task, attempt), runner, now).await
    }
    async fn reject_attempt(
        &self,
        task: TaskId,
        attempt: u32,
        runner: RunnerId,
        now: UnixMillis,
    ) -> Result<Option<TaskState>, StoreError> {
        attempts::reject_attempt(&*self.writer().await, task, attempt, runner, now).await
    }
    async fn lose_attempt(
        &self,
        task: TaskId,
        attempt: u32,
        runner: RunnerId,
        now: UnixMillis,
    ) -> Result<Option<TaskState>, StoreError> {
        attempts::lose_attempt(&*self.writer().await, task, attempt, runner, now).await
    }
    async fn request_cancel(
        &self,
        task: TaskId,
        now: UnixMillis,
    ) -> Result<CancelEffect, StoreError> {
        tasks::request_cancel(&*self.writer().await, task, now).await
    }
    async fn attempt(
        &self,
        task: TaskId,
        attempt: u32,
    ) -> Result<Option<AttemptRecord>, StoreError> {
        attempts::attempt(&self.reader, task, attempt).await
    }
    async fn attempts(&self, task: TaskId) -> Result<Vec<AttemptRecord>, StoreError> {
        attempts::attempts(&self.reader, task).await
    }
    async fn runners_with_open_attempts(&self) -> Result<Vec<RunnerId>, StoreError> {
        attempts::runners_with_open_attempts(&self.reader).await
    }
    async fn cancels_unheeded(
        &self,
        requested_before: UnixMillis,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        attempts::cancels_unheeded(&self.reader, requested_before).await
    }
    async fn timeouts_unheeded(
        &self,
        due_before: UnixMillis,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        attempts::timeouts_unheeded(&self.reader, due_before).await
    }
    async fn runners_under_control(
        &self,
        revoked_since: UnixMillis,
    ) -> Result<Vec<RunnerRecord>, StoreError> {
        fleet::runners_under_control(&self.reader, revoked_since).await
    }
    async fn silent_runners_with_open_attempts(
        &self,
        heard_before: UnixMillis,
    ) -> Result<Vec<RunnerId>, StoreError> {
        attempts::silent_runners_with_open_attempts(&self.reader, heard_before).await
    }
    async fn open_attempts(&self, runner: RunnerId) -> Result<Vec<AttemptRecord>, StoreError> {
        attempts::open_attempts(&self.reader, runner).await
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
        self.group
            .append_events((task, attempt), runner, events, log_cap, now)
            .await
    }
    async fn events(
        &self,
        task: TaskId,
        attempt: u32,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        events::events(&self.reader, task, attempt, after_seq, limit).await
    }
    async fn put_artifact(
        &self,
        task: TaskId,
        attempt: u32,
        kind: &str,
        data: &[u8],
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        events::put_artifact(&*self.writer().await, task, attempt, kind, data, now).await
    }
    async fn artifact(
        &self,
        task: TaskId,
        attempt: u32,
        kind: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        events::artifact(&self.reader, task, attempt, kind).await
    }
}
