//! Hot writes to attempts: the dispatcher's assignments and the runners' accepts.

use std::collections::HashMap;

use kiln_protocol::{RunnerId, TaskId, UnixMillis};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension as _};

use crate::model::AttemptRecord;
use crate::store::{rows, StoreError};

/// Placements per statement: within SQLite's limit of bound variables (four per row in
/// the insert).
const ASSIGN_CHUNK: usize = 500;

/// Records the attempts of a dispatch round; tasks no longer queued are skipped. The
/// statements, whose text depends on the number of placements, are kept prepared: a
/// submit placing its own task uses those for one placement every time.
pub fn assign(
    conn: &Connection,
    placements: &[(TaskId, RunnerId)],
    now: UnixMillis,
) -> Result<Vec<AttemptRecord>, StoreError> {
    let mut assigned = Vec::with_capacity(placements.len());
    for chunk in placements.chunks(ASSIGN_CHUNK) {
        let ids: Vec<String> = chunk.iter().map(|(task, _)| task.to_string()).collect();
        let numbers = take_queued(conn, &ids, now)?;
        let taken: Vec<(TaskId, RunnerId, i64, &String)> = chunk
            .iter()
            .zip(&ids)
            .filter_map(|((task, runner), id)| numbers.get(id).map(|n| (*task, *runner, *n, id)))
            .collect();
        if taken.is_empty() {
            continue;
        }
        insert_attempts(conn, &taken, now)?;
        bind_workspaces(conn, &taken)?;
        assigned.extend(
            taken.into_iter().map(|(task, runner, attempt, _)| {
                rows::assigned_attempt(task, attempt, runner, now)
            }),
        );
    }
    Ok(assigned)
}

/// Marks the tasks of `ids` that are still queued as assigned; their new attempt numbers.
/// A session's task is skipped while another task of its session is under way: a session
/// runs one task at a time, whatever the caller read before.
fn take_queued(
    conn: &Connection,
    ids: &[String],
    now: UnixMillis,
) -> Result<HashMap<String, i64>, StoreError> {
    let sql = format!(
        "UPDATE tasks SET state = 'assigned', attempt = attempt + 1, updated_at = ?
         WHERE state = 'queued' AND id IN ({})
           AND NOT EXISTS (SELECT 1 FROM tasks AS busy
                           WHERE busy.workspace_id = tasks.workspace_id
                             AND busy.state IN ('assigned', 'running'))
         RETURNING id, attempt",
        placeholders(ids.len())
    );
    let mut update = conn.prepare_cached(&sql)?;
    let values = std::iter::once(rusqlite::types::Value::Integer(now)).chain(
        ids.iter()
            .map(|id| rusqlite::types::Value::Text(id.clone())),
    );
    let rows = update.query_map(params_from_iter(values), |row| {
        Ok((row.get(0)?, row.get(1)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn insert_attempts(
    conn: &Connection,
    taken: &[(TaskId, RunnerId, i64, &String)],
    now: UnixMillis,
) -> Result<(), StoreError> {
    let rows = vec!["(?, ?, ?, 'assigned', ?)"; taken.len()].join(", ");
    let sql = format!(
        "INSERT INTO attempts (task_id, attempt, runner_id, state, assigned_at) VALUES {rows}"
    );
    let values = taken.iter().flat_map(|(_, runner, attempt, id)| {
        [
            rusqlite::types::Value::Text((*id).clone()),
            rusqlite::types::Value::Integer(*attempt),
            rusqlite::types::Value::Text(runner.to_string()),
            rusqlite::types::Value::Integer(now),
        ]
    });
    conn.prepare_cached(&sql)?
        .execute(params_from_iter(values))?;
    Ok(())
}

/// A session's first assigned task binds the session to its runner.
fn bind_workspaces(
    conn: &Connection,
    taken: &[(TaskId, RunnerId, i64, &String)],
) -> Result<(), StoreError> {
    let sql = format!(
        "UPDATE workspaces SET runner_id = (
             SELECT a.runner_id FROM tasks t JOIN attempts a ON a.task_id = t.id AND a.attempt = t.attempt
             WHERE t.workspace_id = workspaces.id AND t.state = 'assigned' LIMIT 1)
         WHERE runner_id IS NULL AND id IN (SELECT workspace_id FROM tasks WHERE id IN ({}))",
        placeholders(taken.len())
    );
    conn.prepare_cached(&sql)?
        .execute(params_from_iter(taken.iter().map(|(_, _, _, id)| *id)))?;
    Ok(())
}

/// `?, ?, ...`, `count` of them.
fn placeholders(count: usize) -> String {
    vec!["?"; count].join(", ")
}

/// Marks an assigned attempt (and its task) running. False if it is no longer assigned to
/// this runner and does not run there.
pub fn start_attempt(
    conn: &Connection,
    task: TaskId,
    attempt: u32,
    runner: RunnerId,
    now: UnixMillis,
) -> Result<bool, StoreError> {
    let (task, attempt, runner) = (task.to_string(), i64::from(attempt), runner.to_string());
    let updated = conn
        .prepare_cached(
            "UPDATE attempts SET state = 'running', started_at = ?
             WHERE task_id = ? AND attempt = ? AND runner_id = ? AND state = 'assigned'",
        )?
        .execute(params![now, task, attempt, runner])?;
    if updated == 1 {
        conn.prepare_cached(
            "UPDATE tasks SET state = 'running', updated_at = ?
             WHERE id = ? AND attempt = ? AND state = 'assigned'",
        )?
        .execute(params![now, task, attempt])?;
        return Ok(true);
    }
    // Not assigned any more: fine if it already runs here (a repeated accept).
    let state: Option<String> = conn
        .prepare_cached(
            "SELECT state FROM attempts WHERE task_id = ? AND attempt = ? AND runner_id = ?",
        )?
        .query_row(params![task, attempt, runner], |row| row.get(0))
        .optional()?;
    Ok(state.as_deref() == Some("running"))
}
