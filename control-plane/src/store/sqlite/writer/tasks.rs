//! Hot writes to tasks and runners: submits, sandboxed submits, heartbeats.

use kiln_protocol::{RunnerId, UnixMillis};
use rusqlite::{params, Connection};

use crate::model::{NewTask, SandboxRecord, TaskState};
use crate::store::rows::{int, to_json};
use crate::store::{NewRunner, StoreError};

/// Stores a submitted task, queued.
pub fn insert_task(conn: &Connection, task: &NewTask) -> Result<(), StoreError> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO tasks (id, repo, base_ref, branch, prompt, command, env, secret_env, requires,
                            labels, priority, timeout_ms, idle_timeout_ms, max_attempts, state,
                            attempt, created_at, updated_at, options, workspace_id, sandbox_id)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?)",
    )?;
    insert.execute(params![
        task.id.to_string(),
        task.repo,
        task.base_ref,
        task.branch,
        task.prompt,
        to_json(&task.command),
        to_json(&task.env),
        to_json(&task.secret_env.0),
        to_json(&task.requires),
        to_json(&task.labels),
        task.priority,
        task.timeout_ms.map(int),
        task.idle_timeout_ms.map(int),
        i64::from(task.max_attempts),
        TaskState::Queued.as_str(),
        task.created_at,
        task.created_at,
        to_json(&task.options),
        task.workspace_id.map(|w| w.to_string()),
        task.sandbox_id.map(|s| s.to_string()),
    ])?;
    Ok(())
}

/// Saves a sandboxed task, the sandbox's runner identity and the sandbox (atomic: the
/// caller runs it in a savepoint).
pub fn create_sandbox(
    conn: &Connection,
    task: &NewTask,
    sandbox: &SandboxRecord,
    runner: &NewRunner,
) -> Result<(), StoreError> {
    let record = &runner.record;
    conn.prepare_cached(
        "INSERT INTO runners (id, name, token_hash, capabilities, labels, max_concurrent, version,
                              created_at, sandbox_id)
         VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?)",
    )?
    .execute(params![
        record.id.to_string(),
        record.name,
        runner.token_hash.0,
        to_json(&record.capabilities),
        to_json(&record.labels),
        i64::from(record.max_concurrent),
        record.created_at,
        sandbox.id.to_string(),
    ])?;
    insert_task(conn, task)?;
    conn.prepare_cached(
        "INSERT INTO sandboxes (id, task_id, runner_id, provider, image, handle, state, expires_at, created_at)
         VALUES (?, ?, ?, ?, ?, NULL, 'forging', ?, ?)",
    )?
    .execute(params![
        sandbox.id.to_string(),
        task.id.to_string(),
        record.id.to_string(),
        sandbox.provider,
        sandbox.image,
        sandbox.expires_at,
        sandbox.created_at,
    ])?;
    Ok(())
}

/// Records that a runner was heard from.
pub fn touch_runner(conn: &Connection, id: RunnerId, now: UnixMillis) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE runners SET last_seen_at = ? WHERE id = ?")?
        .execute(params![now, id.to_string()])?;
    Ok(())
}
