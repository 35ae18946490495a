//! Placing a task as it is stored: one transaction stores it and assigns it, when nothing
//! queued goes before it and its session is free.

use kiln_protocol::{RunnerId, UnixMillis};
use rusqlite::{params, Connection};

use crate::model::{AttemptRecord, NewTask};
use crate::store::StoreError;

use super::{attempts, tasks};

/// Stores `task` and assigns it to `runner` unless something must go first; the attempt
/// made, if any.
pub fn insert_and_assign(
    conn: &Connection,
    task: &NewTask,
    runner: RunnerId,
    now: UnixMillis,
) -> Result<Option<AttemptRecord>, StoreError> {
    let waits = waits_its_turn(conn, task, runner)?;
    tasks::insert_task(conn, task)?;
    if waits {
        return Ok(None);
    }
    Ok(attempts::assign(conn, &[(task.id, runner)], now)?.pop())
}

/// True when a queued task of the same or a higher priority goes first, or the task's
/// session has a task queued, assigned or running, or belongs to another runner. (The
/// dispatcher relies on the queued case: it reads a session's queued tasks before it
/// takes the placement turn.)
fn waits_its_turn(conn: &Connection, task: &NewTask, runner: RunnerId) -> Result<bool, StoreError> {
    let workspace = task.workspace_id.map(|w| w.to_string());
    let waits = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM tasks WHERE state = 'queued' AND priority >= ?1)
                 OR EXISTS (SELECT 1 FROM tasks WHERE workspace_id = ?2
                                                  AND state IN ('queued', 'assigned', 'running'))
                 OR EXISTS (SELECT 1 FROM workspaces WHERE id = ?2 AND runner_id <> ?3)",
        )?
        .query_row(
            params![task.priority, workspace, runner.to_string()],
            |row| row.get(0),
        )?;
    Ok(waits)
}
