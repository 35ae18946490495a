//! Group commit: the hot writes (task submits, event batches, heartbeats) that arrive
//! together share one transaction on the writer thread (`writer/`), so one fsync covers
//! many of them. Each write runs in its own savepoint: a write that fails is rolled back
//! alone and gets its own error.

use std::path::Path;
use std::sync::Arc;

use kiln_protocol::{Event, RunnerId, TaskId, UnixMillis};
use tokio::sync::{mpsc, oneshot};

use super::writer::{self, Reply, Write, WriteTurn, Written};
use super::BUSY_TIMEOUT;
use crate::metrics::Histogram;
use crate::model::{AttemptRecord, NewTask, SandboxRecord};
use crate::store::{Appended, NewRunner, StoreError};

/// Writes waiting for the writer before submitters wait: bounds memory under overload.
const QUEUE: usize = 4096;

/// The queue into the group-committing writer thread.
#[derive(Clone, Debug)]
pub struct GroupCommit {
    queue: mpsc::Sender<(Write, Reply)>,
    latency: Arc<Histogram>,
}

impl GroupCommit {
    /// Starts the writer thread on its own connection to the database at `path`; it writes
    /// only while it holds `turn`.
    pub fn start(path: &Path, turn: WriteTurn) -> Result<Self, StoreError> {
        let conn = writer::open(path, BUSY_TIMEOUT)?;
        let (queue, rx) = mpsc::channel(QUEUE);
        let latency = Arc::new(Histogram::default());
        writer::start(conn, rx, turn, Arc::clone(&latency))?;
        Ok(Self { queue, latency })
    }

    /// How long each group took, from its first statement to its commit.
    pub fn latency(&self) -> &Histogram {
        &self.latency
    }

    /// Performs `write` in the next group and waits until it is committed.
    async fn write(&self, write: Write) -> Result<Written, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((write, reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// A write that returns nothing.
    async fn done(&self, write: Write) -> Result<(), StoreError> {
        match self.write(write).await? {
            Written::Done => Ok(()),
            other => Err(mismatched(&other)),
        }
    }

    /// `Store::insert_task`.
    pub async fn insert_task(&self, task: NewTask) -> Result<(), StoreError> {
        self.done(Write::InsertTask(Box::new(task))).await
    }

    /// `Store::insert_and_assign`.
    pub async fn insert_and_assign(
        &self,
        task: NewTask,
        runner: RunnerId,
        now: UnixMillis,
    ) -> Result<Option<AttemptRecord>, StoreError> {
        let write = Write::InsertAndAssign {
            task: Box::new(task),
            runner,
            now,
        };
        match self.write(write).await? {
            Written::Assigned(mut assigned) => Ok(assigned.pop()),
            other => Err(mismatched(&other)),
        }
    }

    /// `Store::insert_tasks`.
    pub async fn insert_tasks(&self, tasks: Vec<NewTask>) -> Result<(), StoreError> {
        self.done(Write::InsertTasks(tasks)).await
    }

    /// `Store::create_sandbox`.
    pub async fn create_sandbox(
        &self,
        task: NewTask,
        sandbox: SandboxRecord,
        runner: NewRunner,
    ) -> Result<(), StoreError> {
        self.done(Write::CreateSandbox(Box::new((task, sandbox, runner))))
            .await
    }

    /// Ends the writer thread once the writes queued before are committed, closing its
    /// connection; later writes fail as closed.
    pub async fn close(&self) -> Result<(), StoreError> {
        self.done(Write::Close).await
    }

    /// `Store::touch_runner`.
    pub async fn touch_runner(&self, id: RunnerId, now: UnixMillis) -> Result<(), StoreError> {
        self.done(Write::TouchRunner { id, now }).await
    }

    /// `Store::assign`.
    pub async fn assign(
        &self,
        placements: Vec<(TaskId, RunnerId)>,
        now: UnixMillis,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        match self.write(Write::Assign { placements, now }).await? {
            Written::Assigned(assigned) => Ok(assigned),
            other => Err(mismatched(&other)),
        }
    }

    /// `Store::start_attempt`.
    pub async fn start_attempt(
        &self,
        key: (TaskId, u32),
        runner: RunnerId,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        match self.write(Write::StartAttempt { key, runner, now }).await? {
            Written::Started(started) => Ok(started),
            other => Err(mismatched(&other)),
        }
    }

    /// `Store::append_events`.
    pub async fn append_events(
        &self,
        key: (TaskId, u32),
        runner: RunnerId,
        events: Vec<Event>,
        log_cap: u64,
        now: UnixMillis,
    ) -> Result<Appended, StoreError> {
        let write = Write::AppendEvents {
            key,
            runner,
            events,
            log_cap,
            now,
        };
        match self.write(write).await? {
            Written::Appended(appended) => Ok(appended),
            other => Err(mismatched(&other)),
        }
    }
}

/// The writer answered with the outcome of another kind of write: a bug, reported rather
/// than hidden.
fn mismatched(written: &Written) -> StoreError {
    StoreError::GroupFailed(format!(
        "the writer answered a different write: {written:?}"
    ))
}

#[cfg(test)]
mod tests {
    use crate::model::NewTask;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{Store as _, StoreError};
    use crate::testing::new_task;

    #[tokio::test]
    async fn a_failing_write_is_rolled_back_alone_and_its_group_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("kiln.db"))
            .await
            .unwrap();
        let first = new_task();
        store.insert_task(&first).await.unwrap();

        // Submitted together so that they share groups: the duplicate id must fail, the
        // rest must land.
        let fresh: Vec<NewTask> = (0..50).map(|_| new_task()).collect();
        let mut writes = Vec::new();
        for new in fresh.iter().chain(std::iter::once(&first)) {
            let store = store.clone();
            let new = new.clone();
            writes.push(tokio::spawn(async move { store.insert_task(&new).await }));
        }
        let mut failures = Vec::new();
        for write in writes {
            if let Err(error) = write.await.unwrap() {
                failures.push(error);
            }
        }
        assert_eq!(failures.len(), 1, "only the duplicate fails: {failures:?}");
        assert!(matches!(failures[0], StoreError::Sqlite(_)));
        for new in &fresh {
            assert!(
                store.task(new.id).await.unwrap().is_some(),
                "{} lost",
                new.id
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn other_writes_take_turns_with_the_writer_thread_and_none_fails() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("kiln.db"))
            .await
            .unwrap();
        let cancelled: Vec<NewTask> = (0..100).map(|_| new_task()).collect();
        for new in &cancelled {
            store.insert_task(new).await.unwrap();
        }

        // Cancels (read, then write, on the other connection) race with submits on the
        // writer thread. Without the turn, a cancel whose snapshot went stale before its
        // write would fail with SQLITE_BUSY.
        let mut writes = Vec::new();
        for new in &cancelled {
            let (cancelling, id) = (store.clone(), new.id);
            writes.push(tokio::spawn(async move {
                cancelling.request_cancel(id, 1).await.map(|_| ())
            }));
            let (submitting, fresh) = (store.clone(), new_task());
            writes.push(tokio::spawn(
                async move { submitting.insert_task(&fresh).await },
            ));
        }
        for write in writes {
            write.await.unwrap().unwrap();
        }
        for new in &cancelled {
            let task = store.task(new.id).await.unwrap().unwrap();
            assert!(task.state.is_terminal(), "{} not cancelled", new.id);
        }
    }

    #[tokio::test]
    async fn a_closed_store_refuses_hot_writes_and_the_file_reopens_for_every_kind_of_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kiln.db");
        let first = SqliteStore::open(&path).await.unwrap();
        let kept = new_task();
        first.insert_task(&kept).await.unwrap();
        first.close().await;
        assert!(matches!(
            first.insert_task(&new_task()).await,
            Err(StoreError::Closed)
        ));

        let reopened = SqliteStore::open(&path).await.unwrap();
        assert!(reopened.task(kept.id).await.unwrap().is_some());
        reopened.insert_task(&new_task()).await.unwrap();
        reopened.request_cancel(kept.id, 1).await.unwrap();
        let task = reopened.task(kept.id).await.unwrap().unwrap();
        assert!(task.state.is_terminal());
    }
}
