//! The writer thread: the hot writes (submits, assignments, accepts, event batches,
//! heartbeats) run synchronously on one thread with its own connection. A group of them is
//! one transaction and one fsync, with no hand-off between threads per statement: through
//! sqlx every statement was a round trip to SQLite's worker thread, and those wake-ups,
//! not SQLite, bounded the group's time.

mod attempts;
mod events;
mod placing;
mod tasks;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln_protocol::{Event, RunnerId, TaskId, UnixMillis};
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::metrics::Histogram;
use crate::model::{AttemptRecord, NewTask, SandboxRecord};
use crate::store::{Appended, NewRunner, StoreError};

/// Most writes in one transaction: bounds how long one commit holds the writer.
const MAX_GROUP: usize = 512;

/// Prepared statements kept by the writer: every fixed statement of the hot writes, and
/// room beside them for the assignment statements of the batch sizes seen lately (the
/// cache drops the least recently used, so the fixed ones stay).
const STATEMENT_CACHE: usize = 64;

/// A write the writer performs.
#[derive(Debug)]
pub enum Write {
    /// `Store::insert_task`.
    InsertTask(Box<NewTask>),
    /// `Store::insert_and_assign`.
    InsertAndAssign {
        task: Box<NewTask>,
        runner: RunnerId,
        now: UnixMillis,
    },
    /// `Store::insert_tasks`: all in one savepoint.
    InsertTasks(Vec<NewTask>),
    /// `Store::create_sandbox`: task, sandbox and its runner in one savepoint.
    CreateSandbox(Box<(NewTask, SandboxRecord, NewRunner)>),
    /// `Store::append_events`.
    AppendEvents {
        key: (TaskId, u32),
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
        key: (TaskId, u32),
        runner: RunnerId,
        now: UnixMillis,
    },
    /// `SqliteStore::close`: the thread commits the writes queued before this one, closes
    /// its connection and ends; writes queued after it fail as closed.
    Close,
}

/// What a write returns.
#[derive(Debug)]
pub enum Written {
    /// Nothing to report.
    Done,
    /// The events stored.
    Appended(Appended),
    /// Whether the attempt now runs.
    Started(bool),
    /// The attempts recorded.
    Assigned(Vec<AttemptRecord>),
}

/// Where a write's outcome goes.
pub type Reply = oneshot::Sender<Result<Written, StoreError>>;

/// The right to write to the database. The writer thread and the pool that performs the
/// other (rare) writes take turns, so neither ever meets the other's lock in SQLite.
pub type WriteTurn = Arc<tokio::sync::Mutex<()>>;

/// Opens the writer's connection to the (already migrated) database at `path`.
pub fn open(path: &Path, busy_timeout: Duration) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    let journal: String = conn.query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
    if !journal.eq_ignore_ascii_case("wal") {
        // The sqlx connection that migrated the file set WAL; without it readers would
        // block the writer.
        return Err(StoreError::GroupFailed(format!(
            "{} is in journal mode {journal}, not wal",
            path.display()
        )));
    }
    conn.busy_timeout(busy_timeout)?;
    // FULL: an acknowledged write survives power loss, not only a process crash.
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Starts the writer thread; it ends when every sender of `queue` is gone.
pub fn start(
    conn: Connection,
    queue: mpsc::Receiver<(Write, Reply)>,
    turn: WriteTurn,
    latency: Arc<Histogram>,
) -> Result<(), StoreError> {
    std::thread::Builder::new()
        .name("kiln-sqlite-writer".into())
        .spawn(move || run(conn, queue, &turn, &latency))
        .map_err(|error| StoreError::GroupFailed(format!("cannot start the writer: {error}")))?;
    Ok(())
}

fn run(
    conn: Connection,
    mut queue: mpsc::Receiver<(Write, Reply)>,
    turn: &WriteTurn,
    latency: &Histogram,
) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    let mut closing = None;
    while closing.is_none() {
        let Some(first) = queue.blocking_recv() else {
            break;
        };
        group.push(first);
        while group.len() < MAX_GROUP {
            let Ok(next) = queue.try_recv() else { break };
            group.push(next);
        }
        if let Some(at) = group.iter().position(|(w, _)| matches!(w, Write::Close)) {
            // Dropping the replies of the writes after it tells their callers "closed".
            group.truncate(at + 1);
            closing = group.pop().map(|(_, reply)| reply);
        }
        if group.is_empty() {
            continue;
        }
        let results = {
            let _turn = turn.blocking_lock();
            let started = Instant::now();
            let results = commit(&conn, &mut group);
            latency.observe(started.elapsed());
            results
        };
        for ((_, reply), result) in group.drain(..).zip(results) {
            let _ = reply.send(result);
        }
    }
    drop(queue);
    drop(conn);
    if let Some(reply) = closing {
        let _ = reply.send(Ok(Written::Done));
    }
}

/// Runs every write of the group in one transaction, each in its own savepoint so that a
/// write that fails is undone alone and gets its own error. If the transaction cannot
/// begin or commit, or SQLite rolls all of it back (disk full, an I/O error), every write
/// gets that error: none of them is stored.
fn commit(conn: &Connection, group: &mut [(Write, Reply)]) -> Vec<Result<Written, StoreError>> {
    let size = group.len();
    let failed = |error: &dyn std::fmt::Display| {
        (0..size)
            .map(|_| Err(StoreError::GroupFailed(error.to_string())))
            .collect()
    };
    if !conn.is_autocommit() {
        // A transaction left open by a failure that could not end it: end it first.
        let _ = statement(conn, "ROLLBACK");
    }
    if let Err(error) = statement(conn, "BEGIN IMMEDIATE") {
        return failed(&error);
    }
    let mut results = Vec::with_capacity(size);
    for (write, _) in group.iter_mut() {
        let result = in_savepoint(conn, write);
        if conn.is_autocommit() {
            // The writes before this one were undone with it, whatever they were told;
            // going on would commit the rest one by one outside the group.
            let cause = match result {
                Err(error) => error.to_string(),
                Ok(_) => "it ended early".to_owned(),
            };
            return failed(&format!("the group's transaction was rolled back: {cause}"));
        }
        results.push(result);
    }
    match statement(conn, "COMMIT") {
        Ok(()) => results,
        Err(error) => {
            let _ = statement(conn, "ROLLBACK");
            failed(&error)
        }
    }
}

/// Performs `write` in a savepoint of the group's transaction. When SQLite has rolled back
/// the whole transaction there is no savepoint left to undo: the caller sees that.
fn in_savepoint(conn: &Connection, write: &mut Write) -> Result<Written, StoreError> {
    statement(conn, "SAVEPOINT write")?;
    let result = perform(conn, write);
    if conn.is_autocommit() {
        return result;
    }
    if result.is_err() {
        statement(conn, "ROLLBACK TO write")?;
    }
    statement(conn, "RELEASE write")?;
    result
}

/// Runs one statement without parameters, prepared once.
fn statement(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// Performs `write`, which may give up what it carries (event batches are moved, not
/// copied, into the store).
fn perform(conn: &Connection, write: &mut Write) -> Result<Written, StoreError> {
    match write {
        Write::InsertTask(task) => tasks::insert_task(conn, task).map(|()| Written::Done),
        Write::InsertAndAssign { task, runner, now } => {
            placing::insert_and_assign(conn, task, *runner, *now)
                .map(|attempt| Written::Assigned(attempt.into_iter().collect()))
        }
        Write::InsertTasks(new) => {
            for task in new.iter() {
                tasks::insert_task(conn, task)?;
            }
            Ok(Written::Done)
        }
        Write::CreateSandbox(records) => {
            let (task, sandbox, runner) = &**records;
            tasks::create_sandbox(conn, task, sandbox, runner).map(|()| Written::Done)
        }
        Write::AppendEvents {
            key,
            runner,
            events,
            log_cap,
            now,
        } => {
            let events = std::mem::take(events);
            events::append_events(conn, *key, *runner, events, *log_cap, *now)
                .map(Written::Appended)
        }
        Write::Assign { placements, now } => {
            attempts::assign(conn, placements, *now).map(Written::Assigned)
        }
        Write::StartAttempt { key, runner, now } => {
            attempts::start_attempt(conn, key.0, key.1, *runner, *now).map(Written::Started)
        }
        Write::TouchRunner { id, now } => {
            tasks::touch_runner(conn, *id, *now).map(|()| Written::Done)
        }
        Write::Close => Err(StoreError::GroupFailed(
            "close is not a write: it ends the writer".to_owned(),
        )),
    }
}
