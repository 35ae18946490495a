//! Reading rows of either backend into records, with errors that name the table and column.
//!
//! Both schemas keep the same columns with the same kinds (text, 64-bit integers, JSON as
//! text), so one mapping serves SQLite and PostgreSQL.

use std::str::FromStr;

use kiln_protocol::{RunnerId, TaskId, UnixMillis};
use serde::de::DeserializeOwned;
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::model::{AttemptRecord, AttemptState, NewTask, RunnerRecord, TaskRecord};
use crate::store::StoreError;

/// A row that can be read by column name as text and 64-bit integers.
pub trait Columns {
    /// A column holding text or NULL.
    fn optional_text(&self, column: &str) -> Result<Option<String>, sqlx::Error>;
    /// A column holding a 64-bit integer or NULL.
    fn optional_integer(&self, column: &str) -> Result<Option<i64>, sqlx::Error>;

    /// A column holding text, never NULL.
    fn text(&self, column: &str) -> Result<String, sqlx::Error>;
    /// A column holding a 64-bit integer, never NULL.
    fn integer(&self, column: &str) -> Result<i64, sqlx::Error>;
}

impl<R: Row> Columns for R
where
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'c> &'c str: ColumnIndex<R>,
{
    fn optional_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
        self.try_get(column)
    }
    fn optional_integer(&self, column: &str) -> Result<Option<i64>, sqlx::Error> {
        self.try_get(column)
    }
    fn text(&self, column: &str) -> Result<String, sqlx::Error> {
        self.try_get(column)
    }
    fn integer(&self, column: &str) -> Result<i64, sqlx::Error> {
        self.try_get(column)
    }
}

fn corrupt(table: &'static str, column: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        table,
        detail: format!("column {column}: {detail}"),
    }
}

fn parsed<T: FromStr>(
    row: &impl Columns,
    table: &'static str,
    column: &str,
) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    let text = row.text(column)?;
    text.parse().map_err(|e| corrupt(table, column, e))
}

fn optional_parsed<T: FromStr>(
    row: &impl Columns,
    table: &'static str,
    column: &str,
) -> Result<Option<T>, StoreError>
where
    T::Err: std::fmt::Display,
{
    let text = row.optional_text(column)?;
    text.map(|t| t.parse().map_err(|e| corrupt(table, column, e)))
        .transpose()
}

fn json<T: DeserializeOwned>(
    row: &impl Columns,
    table: &'static str,
    column: &str,
) -> Result<T, StoreError> {
    let text = row.text(column)?;
    serde_json::from_str(&text).map_err(|e| corrupt(table, column, e))
}

fn optional_json<T: DeserializeOwned>(
    row: &impl Columns,
    table: &'static str,
    column: &str,
) -> Result<Option<T>, StoreError> {
    let text = row.optional_text(column)?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| corrupt(table, column, e)))
        .transpose()
}

fn unsigned<T: TryFrom<i64>>(
    row: &impl Columns,
    table: &'static str,
    column: &str,
) -> Result<T, StoreError> {
    let value = row.integer(column)?;
    T::try_from(value).map_err(|_| corrupt(table, column, format!("{value} out of range")))
}

fn optional_unsigned<T: TryFrom<i64>>(
    row: &impl Columns,
    table: &'static str,
    column: &str,
) -> Result<Option<T>, StoreError> {
    let value = row.optional_integer(column)?;
    value
        .map(|v| T::try_from(v).map_err(|_| corrupt(table, column, format!("{v} out of range"))))
        .transpose()
}

/// A `tasks` row.
pub fn task(row: &impl Columns) -> Result<TaskRecord, StoreError> {
    const T: &str = "tasks";
    Ok(TaskRecord {
        spec: NewTask {
            id: parsed(row, T, "id")?,
            repo: row.text("repo")?,
            base_ref: row.optional_text("base_ref")?,
            branch: row.text("branch")?,
            prompt: row.text("prompt")?,
            command: json(row, T, "command")?,
            env: json(row, T, "env")?,
            secret_env: crate::model::SecretEnv(json(row, T, "secret_env")?),
            requires: json(row, T, "requires")?,
            labels: json(row, T, "labels")?,
            priority: row.integer("priority")?,
            timeout_ms: optional_unsigned(row, T, "timeout_ms")?,
            idle_timeout_ms: optional_unsigned(row, T, "idle_timeout_ms")?,
            max_attempts: unsigned(row, T, "max_attempts")?,
            created_at: row.integer("created_at")?,
            options: json(row, T, "options")?,
            workspace_id: optional_parsed(row, T, "workspace_id")?,
            sandbox_id: optional_parsed(row, T, "sandbox_id")?,
        },
        state: parsed(row, T, "state")?,
        attempt: unsigned(row, T, "attempt")?,
        outcome: optional_json(row, T, "outcome")?,
        updated_at: row.integer("updated_at")?,
        finished_at: row.optional_integer("finished_at")?,
        cancel_requested_at: row.optional_integer("cancel_requested_at")?,
        pruned_at: row.optional_integer("pruned_at")?,
    })
}

/// An `attempts` row.
pub fn attempt(row: &impl Columns) -> Result<AttemptRecord, StoreError> {
    const T: &str = "attempts";
    Ok(AttemptRecord {
        task_id: parsed(row, T, "task_id")?,
        attempt: unsigned(row, T, "attempt")?,
        runner_id: parsed(row, T, "runner_id")?,
        state: parsed(row, T, "state")?,
        acked_seq: unsigned(row, T, "acked_seq")?,
        outcome: optional_json(row, T, "outcome")?,
        assigned_at: row.integer("assigned_at")?,
        started_at: row.optional_integer("started_at")?,
        finished_at: row.optional_integer("finished_at")?,
        rate_limited_until: row.optional_integer("rate_limited_until")?,
    })
}

/// A `runners` row.
pub fn runner(row: &impl Columns) -> Result<RunnerRecord, StoreError> {
    const T: &str = "runners";
    Ok(RunnerRecord {
        id: parsed(row, T, "id")?,
        name: row.text("name")?,
        capabilities: json(row, T, "capabilities")?,
        labels: json(row, T, "labels")?,
        max_concurrent: unsigned(row, T, "max_concurrent")?,
        version: row.optional_text("version")?,
        created_at: row.integer("created_at")?,
        last_seen_at: row.optional_integer("last_seen_at")?,
        revoked_at: row.optional_integer("revoked_at")?,
        paused_at: row.optional_integer("paused_at")?,
        drain_requested_at: row.optional_integer("drain_requested_at")?,
        rotation_requested_at: row.optional_integer("rotation_requested_at")?,
        sandbox_id: optional_parsed(row, T, "sandbox_id")?,
    })
}

/// Serialises a value for a JSON column.
pub fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// The attempt a dispatch round just recorded: number `attempt` (as the database returned
/// it) of `task` on `runner`, assigned at `now`.
pub fn assigned_attempt(
    task: TaskId,
    attempt: i64,
    runner: RunnerId,
    now: UnixMillis,
) -> AttemptRecord {
    AttemptRecord {
        task_id: task,
        attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
        runner_id: runner,
        state: AttemptState::Assigned,
        acked_seq: 0,
        outcome: None,
        assigned_at: now,
        started_at: None,
        finished_at: None,
        rate_limited_until: None,
    }
}

/// Converts an unsigned count to the databases' 64-bit integer.
pub fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A `workspaces` row.
pub fn workspace(row: &impl Columns) -> Result<crate::model::WorkspaceRecord, StoreError> {
    const T: &str = "workspaces";
    Ok(crate::model::WorkspaceRecord {
        id: parsed(row, T, "id")?,
        repo: row.text("repo")?,
        base_ref: row.optional_text("base_ref")?,
        branch: row.text("branch")?,
        setup: json(row, T, "setup")?,
        runner_id: optional_parsed(row, T, "runner_id")?,
        state: parsed(row, T, "state")?,
        created_at: row.integer("created_at")?,
        closed_at: row.optional_integer("closed_at")?,
    })
}

/// A `sandboxes` row.
pub fn sandbox(row: &impl Columns) -> Result<crate::model::SandboxRecord, StoreError> {
    const T: &str = "sandboxes";
    Ok(crate::model::SandboxRecord {
        id: parsed(row, T, "id")?,
        task_id: parsed(row, T, "task_id")?,
        runner_id: parsed(row, T, "runner_id")?,
        provider: row.text("provider")?,
        image: row.text("image")?,
        handle: row.optional_text("handle")?,
        state: parsed(row, T, "state")?,
        expires_at: row.integer("expires_at")?,
        created_at: row.integer("created_at")?,
        burned_at: row.optional_integer("burned_at")?,
        reason: row.optional_text("reason")?,
    })
}

/// Ids read from column `column` of `table`, such as task ids from `tasks.id`.
pub fn ids<T>(table: &'static str, column: &str, ids: &[String]) -> Result<Vec<T>, StoreError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    ids.iter()
        .map(|id| {
            id.parse()
                .map_err(|e| corrupt(table, column, format!("{id:?}: {e}")))
        })
        .collect()
}
