//! Reading SQLite rows into records, with errors that name the table and column.

use std::str::FromStr;

use serde::de::DeserializeOwned;
use sqlx::sqlite::SqliteRow;
use sqlx::Row as _;

use crate::model::{AttemptRecord, NewTask, RunnerRecord, TaskRecord};
use crate::store::StoreError;

fn corrupt(table: &'static str, column: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        table,
        detail: format!("column {column}: {detail}"),
    }
}

fn parsed<T: FromStr>(row: &SqliteRow, table: &'static str, column: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    let text: String = row.try_get(column)?;
    text.parse().map_err(|e| corrupt(table, column, e))
}

fn optional_parsed<T: FromStr>(
    row: &SqliteRow,
    table: &'static str,
    column: &str,
) -> Result<Option<T>, StoreError>
where
    T::Err: std::fmt::Display,
{
    let text: Option<String> = row.try_get(column)?;
    text.map(|t| t.parse().map_err(|e| corrupt(table, column, e)))
        .transpose()
}

fn json<T: DeserializeOwned>(
    row: &SqliteRow,
    table: &'static str,
    column: &str,
) -> Result<T, StoreError> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| corrupt(table, column, e))
}

fn optional_json<T: DeserializeOwned>(
    row: &SqliteRow,
    table: &'static str,
    column: &str,
) -> Result<Option<T>, StoreError> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| corrupt(table, column, e)))
        .transpose()
}

fn unsigned<T: TryFrom<i64>>(
    row: &SqliteRow,
    table: &'static str,
    column: &str,
) -> Result<T, StoreError> {
    let value: i64 = row.try_get(column)?;
    T::try_from(value).map_err(|_| corrupt(table, column, format!("{value} out of range")))
}

fn optional_unsigned<T: TryFrom<i64>>(
    row: &SqliteRow,
    table: &'static str,
    column: &str,
) -> Result<Option<T>, StoreError> {
    let value: Option<i64> = row.try_get(column)?;
    value
        .map(|v| T::try_from(v).map_err(|_| corrupt(table, column, format!("{v} out of range"))))
        .transpose()
}

/// A `tasks` row.
pub fn task(row: &SqliteRow) -> Result<TaskRecord, StoreError> {
    const T: &str = "tasks";
    Ok(TaskRecord {
        spec: NewTask {
            id: parsed(row, T, "id")?,
            repo: row.try_get("repo")?,
            base_ref: row.try_get("base_ref")?,
            branch: row.try_get("branch")?,
            prompt: row.try_get("prompt")?,
            command: json(row, T, "command")?,
            env: json(row, T, "env")?,
            secret_env: crate::model::SecretEnv(json(row, T, "secret_env")?),
            requires: json(row, T, "requires")?,
            labels: json(row, T, "labels")?,
            priority: row.try_get("priority")?,
            timeout_ms: optional_unsigned(row, T, "timeout_ms")?,
            idle_timeout_ms: optional_unsigned(row, T, "idle_timeout_ms")?,
            max_attempts: unsigned(row, T, "max_attempts")?,
            created_at: row.try_get("created_at")?,
            options: json(row, T, "options")?,
            workspace_id: optional_parsed(row, T, "workspace_id")?,
            sandbox_id: optional_parsed(row, T, "sandbox_id")?,
        },
        state: parsed(row, T, "state")?,
        attempt: unsigned(row, T, "attempt")?,
        outcome: optional_json(row, T, "outcome")?,
        updated_at: row.try_get("updated_at")?,
        finished_at: row.try_get("finished_at")?,
        cancel_requested_at: row.try_get("cancel_requested_at")?,
        pruned_at: row.try_get("pruned_at")?,
    })
}

/// An `attempts` row.
pub fn attempt(row: &SqliteRow) -> Result<AttemptRecord, StoreError> {
    const T: &str = "attempts";
    Ok(AttemptRecord {
        task_id: parsed(row, T, "task_id")?,
        attempt: unsigned(row, T, "attempt")?,
        runner_id: parsed(row, T, "runner_id")?,
        state: parsed(row, T, "state")?,
        acked_seq: unsigned(row, T, "acked_seq")?,
        outcome: optional_json(row, T, "outcome")?,
        assigned_at: row.try_get("assigned_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

/// A `runners` row.
pub fn runner(row: &SqliteRow) -> Result<RunnerRecord, StoreError> {
    const T: &str = "runners";
    Ok(RunnerRecord {
        id: parsed(row, T, "id")?,
        name: row.try_get("name")?,
        capabilities: json(row, T, "capabilities")?,
        labels: json(row, T, "labels")?,
        max_concurrent: unsigned(row, T, "max_concurrent")?,
        version: row.try_get("version")?,
        created_at: row.try_get("created_at")?,
        last_seen_at: row.try_get("last_seen_at")?,
        revoked_at: row.try_get("revoked_at")?,
        paused_at: row.try_get("paused_at")?,
        drain_requested_at: row.try_get("drain_requested_at")?,
        rotation_requested_at: row.try_get("rotation_requested_at")?,
        sandbox_id: optional_parsed(row, T, "sandbox_id")?,
    })
}

/// Serialises a value for a JSON column.
pub fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// Converts an unsigned count to SQLite's integer.
pub fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A `workspaces` row.
pub fn workspace(row: &SqliteRow) -> Result<crate::model::WorkspaceRecord, StoreError> {
    const T: &str = "workspaces";
    Ok(crate::model::WorkspaceRecord {
        id: parsed(row, T, "id")?,
        repo: row.try_get("repo")?,
        base_ref: row.try_get("base_ref")?,
        branch: row.try_get("branch")?,
        setup: json(row, T, "setup")?,
        runner_id: optional_parsed(row, T, "runner_id")?,
        state: parsed(row, T, "state")?,
        created_at: row.try_get("created_at")?,
        closed_at: row.try_get("closed_at")?,
    })
}

/// A `sandboxes` row.
pub fn sandbox(row: &SqliteRow) -> Result<crate::model::SandboxRecord, StoreError> {
    const T: &str = "sandboxes";
    Ok(crate::model::SandboxRecord {
        id: parsed(row, T, "id")?,
        task_id: parsed(row, T, "task_id")?,
        runner_id: parsed(row, T, "runner_id")?,
        provider: row.try_get("provider")?,
        image: row.try_get("image")?,
        handle: row.try_get("handle")?,
        state: parsed(row, T, "state")?,
        expires_at: row.try_get("expires_at")?,
        created_at: row.try_get("created_at")?,
        burned_at: row.try_get("burned_at")?,
        reason: row.try_get("reason")?,
    })
}
