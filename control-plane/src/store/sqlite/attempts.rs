//! SQLite queries for attempts: refusal, loss, cancels (assignment and acceptance are hot
//! writes, in `writer/attempts.rs`).

use kiln_protocol::{RunnerId, TaskId, UnixMillis};
use sqlx::SqlitePool;

use crate::model::{AttemptRecord, TaskState};
use crate::store::outcomes;
use crate::store::rows::{self, to_json};
use crate::store::StoreError;

pub async fn reject_attempt(
    pool: &SqlitePool,
    task: TaskId,
    attempt: u32,
    runner: RunnerId,
    now: UnixMillis,
) -> Result<Option<TaskState>, StoreError> {
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
    if updated.rows_affected() != 1 {
        tx.commit().await?;
        return Ok(None);
    }
    let untaken: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM attempts WHERE task_id = ? AND state = 'rejected'",
    )
    .bind(task.to_string())
    .fetch_one(&mut *tx)
    .await?;
    let (next, outcome) = outcomes::after_untaken(untaken);
    let finished_at = outcome.is_some().then_some(now);
    let changed = sqlx::query(
        "UPDATE tasks SET state = ?, outcome = COALESCE(?, outcome),
                          finished_at = COALESCE(?, finished_at), updated_at = ?
         WHERE id = ? AND attempt = ? AND state = 'assigned'",
    )
    .bind(next.as_str())
    .bind(outcome.as_ref().map(to_json))
    .bind(finished_at)
    .bind(now)
    .bind(task.to_string())
    .bind(i64::from(attempt))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((changed.rows_affected() == 1).then_some(next))
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
             SELECT COUNT(*) AS n FROM attempts
             WHERE task_id = ?2 AND started_at IS NOT NULL
               AND attempt > (SELECT retry_base FROM tasks WHERE id = ?2)
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
    rows::ids("attempts", "runner_id", &ids)
}

pub async fn silent_runners_with_open_attempts(
    pool: &SqlitePool,
    heard_before: UnixMillis,
) -> Result<Vec<RunnerId>, StoreError> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT a.runner_id FROM attempts a JOIN runners r ON r.id = a.runner_id
         WHERE a.state IN ('assigned', 'running')
           AND (r.last_seen_at IS NULL OR r.last_seen_at <= ?)",
    )
    .bind(heard_before)
    .fetch_all(pool)
    .await?;
    rows::ids("attempts", "runner_id", &ids)
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

pub async fn cancels_unheeded(
    pool: &SqlitePool,
    requested_before: UnixMillis,
) -> Result<Vec<AttemptRecord>, StoreError> {
    let found = sqlx::query(
        "SELECT a.* FROM attempts a JOIN tasks t ON t.id = a.task_id AND t.attempt = a.attempt
         WHERE a.state IN ('assigned', 'running') AND t.cancel_requested_at < ?
         ORDER BY a.assigned_at",
    )
    .bind(requested_before)
    .fetch_all(pool)
    .await?;
    found.iter().map(rows::attempt).collect()
}

pub async fn timeouts_unheeded(
    pool: &SqlitePool,
    due_before: UnixMillis,
) -> Result<Vec<AttemptRecord>, StoreError> {
    let found = sqlx::query(
        "SELECT a.* FROM attempts a JOIN tasks t ON t.id = a.task_id AND t.attempt = a.attempt
         WHERE a.state IN ('assigned', 'running') AND t.timeout_ms IS NOT NULL
           AND COALESCE(a.started_at, a.assigned_at) + t.timeout_ms < ?
         ORDER BY a.assigned_at",
    )
    .bind(due_before)
    .fetch_all(pool)
    .await?;
    found.iter().map(rows::attempt).collect()
}
