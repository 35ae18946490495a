//! SQLite queries for tasks and their attempts.

use kiln_protocol::{RunnerId, TaskId, UnixMillis};
use sqlx::SqlitePool;

use super::rows::{self, int, to_json};
use kiln_protocol::{Outcome, OutcomeStatus};

use crate::model::{AttemptRecord, AttemptState, CancelEffect, NewTask, TaskRecord, TaskState};
use crate::store::{StoreError, TaskFilter};

pub async fn insert_task(pool: &SqlitePool, task: &NewTask) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO tasks (id, repo, base_ref, branch, prompt, command, env, requires,
                            priority, timeout_ms, idle_timeout_ms, max_attempts, state,
                            attempt, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
    )
    .bind(task.id.to_string())
    .bind(&task.repo)
    .bind(&task.base_ref)
    .bind(&task.branch)
    .bind(&task.prompt)
    .bind(to_json(&task.command))
    .bind(to_json(&task.env))
    .bind(to_json(&task.requires))
    .bind(task.priority)
    .bind(task.timeout_ms.map(int))
    .bind(task.idle_timeout_ms.map(int))
    .bind(i64::from(task.max_attempts))
    .bind(TaskState::Queued.as_str())
    .bind(task.created_at)
    .bind(task.created_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn task(pool: &SqlitePool, id: TaskId) -> Result<Option<TaskRecord>, StoreError> {
    let row = sqlx::query("SELECT * FROM tasks WHERE id = ?")
        .bind(id.to_string())
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(rows::task).transpose()
}

pub async fn tasks(pool: &SqlitePool, filter: &TaskFilter) -> Result<Vec<TaskRecord>, StoreError> {
    let found = sqlx::query(
        "SELECT * FROM tasks WHERE (?1 IS NULL OR state = ?1)
         ORDER BY created_at DESC, id DESC LIMIT ?2",
    )
    .bind(filter.state.map(|s| s.as_str()))
    .bind(i64::from(filter.limit))
    .fetch_all(pool)
    .await?;
    found.iter().map(rows::task).collect()
}

pub async fn queued_tasks(pool: &SqlitePool, limit: u32) -> Result<Vec<TaskRecord>, StoreError> {
    let found = sqlx::query(
        "SELECT * FROM tasks WHERE state = 'queued'
         ORDER BY priority DESC, created_at, id LIMIT ?",
    )
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    found.iter().map(rows::task).collect()
}

pub async fn assign(
    pool: &SqlitePool,
    task: TaskId,
    runner: RunnerId,
    now: UnixMillis,
) -> Result<Option<AttemptRecord>, StoreError> {
    let mut tx = pool.begin().await?;
    let attempt: Option<i64> = sqlx::query_scalar(
        "UPDATE tasks SET state = 'assigned', attempt = attempt + 1, updated_at = ?
         WHERE id = ? AND state = 'queued' RETURNING attempt",
    )
    .bind(now)
    .bind(task.to_string())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(attempt) = attempt else {
        return Ok(None);
    };
    sqlx::query(
        "INSERT INTO attempts (task_id, attempt, runner_id, state, assigned_at)
         VALUES (?, ?, ?, 'assigned', ?)",
    )
    .bind(task.to_string())
    .bind(attempt)
    .bind(runner.to_string())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(AttemptRecord {
        task_id: task,
        attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
        runner_id: runner,
        state: AttemptState::Assigned,
        acked_seq: 0,
        outcome: None,
        assigned_at: now,
        started_at: None,
        finished_at: None,
    }))
}

pub async fn start_attempt(
    pool: &SqlitePool,
    task: TaskId,
    attempt: u32,
    runner: RunnerId,
    now: UnixMillis,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    let updated = sqlx::query(
        "UPDATE attempts SET state = 'running', started_at = ?
         WHERE task_id = ? AND attempt = ? AND runner_id = ? AND state = 'assigned'",
    )
    .bind(now)
    .bind(task.to_string())
    .bind(i64::from(attempt))
    .bind(runner.to_string())
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 1 {
        sqlx::query(
            "UPDATE tasks SET state = 'running', updated_at = ?
             WHERE id = ? AND attempt = ? AND state = 'assigned'",
        )
        .bind(now)
        .bind(task.to_string())
        .bind(i64::from(attempt))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub async fn reject_attempt(
    pool: &SqlitePool,
    task: TaskId,
    attempt: u32,
    runner: RunnerId,
    now: UnixMillis,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    let updated = sqlx::query(
        "UPDATE attempts SET state = 'rejected', finished_at = ?
         WHERE task_id = ? AND attempt = ? AND runner_id = ? AND state = 'assigned'",
    )
    .bind(now)
    .bind(task.to_string())
    .bind(i64::from(attempt))
    .bind(runner.to_string())
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 1 {
        sqlx::query(
            "UPDATE tasks SET state = 'queued', updated_at = ?
             WHERE id = ? AND attempt = ? AND state = 'assigned'",
        )
        .bind(now)
        .bind(task.to_string())
        .bind(i64::from(attempt))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub async fn lose_attempt(
    pool: &SqlitePool,
    task: TaskId,
    attempt: u32,
    runner: RunnerId,
    now: UnixMillis,
) -> Result<Option<TaskState>, StoreError> {
    let mut tx = pool.begin().await?;
    let lost = sqlx::query(
        "UPDATE attempts SET state = 'lost', finished_at = ?
         WHERE task_id = ? AND attempt = ? AND runner_id = ? AND state IN ('assigned', 'running')",
    )
    .bind(now)
    .bind(task.to_string())
    .bind(i64::from(attempt))
    .bind(runner.to_string())
    .execute(&mut *tx)
    .await?;
    if lost.rows_affected() == 0 {
        return Ok(None);
    }
    let next: Option<String> = sqlx::query_scalar(
        "WITH started AS (
             SELECT COUNT(*) AS n FROM attempts WHERE task_id = ?2 AND started_at IS NOT NULL
         )
         UPDATE tasks
         SET state = CASE WHEN cancel_requested_at IS NOT NULL THEN 'cancelled'
                          WHEN (SELECT n FROM started) < max_attempts THEN 'queued'
                          ELSE 'lost' END,
             finished_at = CASE WHEN cancel_requested_at IS NULL
                                 AND (SELECT n FROM started) < max_attempts THEN NULL ELSE ?1 END,
             updated_at = ?1
         WHERE id = ?2 AND attempt = ?3 AND state IN ('assigned', 'running')
         RETURNING state",
    )
    .bind(now)
    .bind(task.to_string())
    .bind(i64::from(attempt))
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    next.map(|s| {
        s.parse().map_err(|detail| StoreError::Corrupt {
            table: "tasks",
            detail,
        })
    })
    .transpose()
}

pub async fn request_cancel(
    pool: &SqlitePool,
    task: TaskId,
    now: UnixMillis,
) -> Result<CancelEffect, StoreError> {
    let mut tx = pool.begin().await?;
    let found: Option<(String, i64)> =
        sqlx::query_as("SELECT state, attempt FROM tasks WHERE id = ?")
            .bind(task.to_string())
            .fetch_optional(&mut *tx)
            .await?;
    let Some((state, attempt)) = found else {
        return Err(StoreError::NotFound {
            what: "task",
            id: task.to_string(),
        });
    };
    let state: TaskState = state.parse().map_err(|detail| StoreError::Corrupt {
        table: "tasks",
        detail,
    })?;
    let attempt = u32::try_from(attempt).unwrap_or(0);
    let effect = match state {
        TaskState::Queued => {
            let outcome = Outcome {
                status: OutcomeStatus::Cancelled,
                exit_code: None,
                signal: None,
                message: "cancelled before it started".into(),
                result: None,
            };
            sqlx::query(
                "UPDATE tasks SET state = 'cancelled', outcome = ?, cancel_requested_at = ?,
                                  finished_at = ?, updated_at = ? WHERE id = ?",
            )
            .bind(to_json(&outcome))
            .bind(now)
            .bind(now)
            .bind(now)
            .bind(task.to_string())
            .execute(&mut *tx)
            .await?;
            CancelEffect::Cancelled
        }
        TaskState::Assigned | TaskState::Running => {
            sqlx::query("UPDATE tasks SET cancel_requested_at = COALESCE(cancel_requested_at, ?), updated_at = ? WHERE id = ?")
                .bind(now)
                .bind(now)
                .bind(task.to_string())
                .execute(&mut *tx)
                .await?;
            let runner: String = sqlx::query_scalar(
                "SELECT runner_id FROM attempts WHERE task_id = ? AND attempt = ?",
            )
            .bind(task.to_string())
            .bind(i64::from(attempt))
            .fetch_one(&mut *tx)
            .await?;
            let runner = runner
                .parse()
                .map_err(|e: uuid::Error| StoreError::Corrupt {
                    table: "attempts",
                    detail: e.to_string(),
                })?;
            CancelEffect::StopAttempt { runner, attempt }
        }
        ended => CancelEffect::AlreadyEnded(ended),
    };
    tx.commit().await?;
    Ok(effect)
}

pub async fn attempt(
    pool: &SqlitePool,
    task: TaskId,
    attempt: u32,
) -> Result<Option<AttemptRecord>, StoreError> {
    let row = sqlx::query("SELECT * FROM attempts WHERE task_id = ? AND attempt = ?")
        .bind(task.to_string())
        .bind(i64::from(attempt))
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(rows::attempt).transpose()
}

pub async fn attempts(pool: &SqlitePool, task: TaskId) -> Result<Vec<AttemptRecord>, StoreError> {
    let found = sqlx::query("SELECT * FROM attempts WHERE task_id = ? ORDER BY attempt")
        .bind(task.to_string())
        .fetch_all(pool)
        .await?;
    found.iter().map(rows::attempt).collect()
}

pub async fn runners_with_open_attempts(pool: &SqlitePool) -> Result<Vec<RunnerId>, StoreError> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT runner_id FROM attempts WHERE state IN ('assigned', 'running')",
    )
    .fetch_all(pool)
    .await?;
    ids.iter()
        .map(|id| {
            id.parse().map_err(|e: uuid::Error| StoreError::Corrupt {
                table: "attempts",
                detail: format!("runner_id {id:?}: {e}"),
            })
        })
        .collect()
}

pub async fn open_attempts(
    pool: &SqlitePool,
    runner: RunnerId,
) -> Result<Vec<AttemptRecord>, StoreError> {
    let found = sqlx::query(
        "SELECT * FROM attempts WHERE runner_id = ? AND state IN ('assigned', 'running')
         ORDER BY assigned_at",
    )
    .bind(runner.to_string())
    .fetch_all(pool)
    .await?;
    found.iter().map(rows::attempt).collect()
}
