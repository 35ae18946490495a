//! Group commit: the hot writes (task submits, event batches, heartbeats) that arrive
//! together share one transaction, so one fsync covers many of them. Each write of several
//! statements runs in its own savepoint, and SQLite undoes a failed single statement by
//! itself: a write that fails is rolled back alone and gets its own error.

use std::sync::Arc;

use kiln_protocol::{Event, RunnerId, TaskId, UnixMillis};
use sqlx::{Acquire as _, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::{attempts, auth, events, tasks};
use crate::metrics::Histogram;
use crate::model::{AttemptRecord, NewTask};
use crate::store::{Appended, StoreError};

/// Writes waiting for the writer before submitters wait: bounds memory under overload.
const QUEUE: usize = 4096;

/// Most writes in one transaction: bounds how long one commit holds the writer.
const MAX_GROUP: usize = 512;

/// A write the group commit performs.
#[derive(Debug)]
enum Write {
    /// `Store::insert_task`.
    InsertTask(Box<NewTask>),
    /// `Store::insert_tasks`: all in one savepoint.
    InsertTasks(Vec<NewTask>),
    /// `Store::append_events`.
    AppendEvents {
        task: TaskId,
        attempt: u32,
        runner: RunnerId,
        events: Vec<Event>,
        log_cap: u64,
        now: UnixMillis,
    },
    /// `Store::touch_runner`.
    TouchRunner { id: RunnerId, now: UnixMillis },
    /// `Store::assign`.
    Assign {
        placements: Vec<(TaskId, RunnerId)>,
        now: UnixMillis,
    },
    /// `Store::start_attempt`.
    StartAttempt {
        task: TaskId,
        attempt: u32,
        runner: RunnerId,
        now: UnixMillis,
    },
}

/// What a write returns.
#[derive(Debug)]
enum Written {
    /// Nothing to report.
    Done,
    /// The events stored.
    Appended(Appended),
    /// Whether the attempt now runs.
    Started(bool),
    /// The attempts recorded.
    Assigned(Vec<AttemptRecord>),
}

impl Write {
    /// Whether the write is a single SQL statement, which SQLite makes atomic by itself.
    fn is_one_statement(&self) -> bool {
        matches!(self, Self::InsertTask(_) | Self::TouchRunner { .. })
    }
}

type Reply = oneshot::Sender<Result<Written, StoreError>>;

/// The queue into the group-committing writer task.
#[derive(Clone, Debug)]
pub struct GroupCommit {
    queue: mpsc::Sender<(Write, Reply)>,
    latency: Arc<Histogram>,
}

impl GroupCommit {
    /// Starts the writer task on `writer` (the store's single writing connection).
    pub fn start(writer: SqlitePool) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        let latency = Arc::new(Histogram::default());
        tokio::spawn(run(writer, rx, Arc::clone(&latency)));
        Self { queue, latency }
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

    /// `Store::insert_task`.
    pub async fn insert_task(&self, task: NewTask) -> Result<(), StoreError> {
        match self.write(Write::InsertTask(Box::new(task))).await? {
            Written::Done => Ok(()),
            other => Err(mismatched(&other)),
        }
    }

    /// `Store::insert_tasks`.
    pub async fn insert_tasks(&self, tasks: Vec<NewTask>) -> Result<(), StoreError> {
        match self.write(Write::InsertTasks(tasks)).await? {
            Written::Done => Ok(()),
            other => Err(mismatched(&other)),
        }
    }

    /// `Store::touch_runner`.
    pub async fn touch_runner(&self, id: RunnerId, now: UnixMillis) -> Result<(), StoreError> {
        match self.write(Write::TouchRunner { id, now }).await? {
            Written::Done => Ok(()),
            other => Err(mismatched(&other)),
        }
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
        task: TaskId,
        attempt: u32,
        runner: RunnerId,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        let write = Write::StartAttempt {
            task,
            attempt,
            runner,
            now,
        };
        match self.write(write).await? {
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
            task: key.0,
            attempt: key.1,
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

async fn run(writer: SqlitePool, mut rx: mpsc::Receiver<(Write, Reply)>, latency: Arc<Histogram>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while rx.recv_many(&mut group, MAX_GROUP).await > 0 {
        let started = std::time::Instant::now();
        let results = commit(&writer, &mut group).await;
        latency.observe(started.elapsed());
        for ((_, reply), result) in group.drain(..).zip(results) {
            let _ = reply.send(result);
        }
    }
}

/// Runs every write of the group in one transaction; if the commit itself fails, every
/// write gets that error.
async fn commit(
    writer: &SqlitePool,
    group: &mut [(Write, Reply)],
) -> Vec<Result<Written, StoreError>> {
    let size = group.len();
    let failed = |error: &StoreError| {
        (0..size)
            .map(|_| Err(StoreError::GroupFailed(error.to_string())))
            .collect()
    };
    let mut tx = match writer.begin().await {
        Ok(tx) => tx,
        Err(error) => return failed(&error.into()),
    };
    let mut results = Vec::with_capacity(group.len());
    for (write, _) in group.iter_mut() {
        results.push(in_savepoint(&mut tx, write).await);
    }
    match tx.commit().await {
        Ok(()) => results,
        Err(error) => failed(&error.into()),
    }
}

/// Performs `write`, which may give up what it carries (event batches are moved, not
/// copied, into the store).
async fn in_savepoint(
    conn: &mut SqliteConnection,
    write: &mut Write,
) -> Result<Written, StoreError> {
    if write.is_one_statement() {
        // Each statement costs a round trip to SQLite's thread; a savepoint costs two more.
        return perform(conn, write).await;
    }
    let mut savepoint = conn.begin().await?;
    let result = perform(&mut savepoint, write).await;
    match &result {
        Ok(_) => savepoint.commit().await?,
        Err(_) => savepoint.rollback().await?,
    }
    result
}

async fn perform(conn: &mut SqliteConnection, write: &mut Write) -> Result<Written, StoreError> {
    match write {
        Write::InsertTasks(tasks) => {
            for task in tasks {
                tasks::insert_task(&mut *conn, task).await?;
            }
            Ok(Written::Done)
        }
        Write::InsertTask(task) => {
            tasks::insert_task(&mut *conn, task).await?;
            Ok(Written::Done)
        }
        Write::AppendEvents {
            task,
            attempt,
            runner,
            events,
            log_cap,
            now,
        } => {
            let events = std::mem::take(events);
            let appended =
                events::append_events(conn, *task, *attempt, *runner, events, *log_cap, *now)
                    .await?;
            Ok(Written::Appended(appended))
        }
        Write::Assign { placements, now } => {
            let assigned = attempts::assign(conn, placements, *now).await?;
            Ok(Written::Assigned(assigned))
        }
        Write::StartAttempt {
            task,
            attempt,
            runner,
            now,
        } => {
            let started = attempts::start_attempt(conn, *task, *attempt, *runner, *now).await?;
            Ok(Written::Started(started))
        }
        Write::TouchRunner { id, now } => {
            auth::touch_runner(&mut *conn, *id, *now).await?;
            Ok(Written::Done)
        }
    }
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
        assert!(matches!(failures[0], StoreError::Database(_)));
        for new in &fresh {
            assert!(
                store.task(new.id).await.unwrap().is_some(),
                "{} lost",
                new.id
            );
        }
    }
}
