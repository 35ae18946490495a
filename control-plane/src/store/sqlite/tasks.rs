//! SQLite queries for tasks: submit, list, cancel, retry.

use kiln_protocol::{OutcomeStatus, TaskId, UnixMillis};
use sqlx::SqlitePool;

use crate::model::{CancelEffect, RetryEffect, TaskRecord, TaskState};
use crate::store::outcomes::{ended_as, ended_unrun};
use crate::store::rows::{self, to_json};
use crate::store::{StoreError, StoreStats, TaskFilter};

pub async fn task(pool: &SqlitePool, id: TaskId) -> Result<Option<TaskRecord>, StoreError> {
    let row = sqlx::query("SELECT * FROM tasks WHERE id = ?")
        .bind(id.to_string())
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(rows::task).transpose()
}

pub async fn tasks(pool: &SqlitePool, filter: &TaskFilter) -> Result<Vec<TaskRecord>, StoreError> {
    let (label_key, label_value) = filter.label.clone().unzip();
    let found = sqlx::query(
        "SELECT * FROM tasks t
         WHERE (?1 IS NULL OR t.state = ?1)
           AND (?2 IS NULL OR t.repo = ?2)
           AND (?3 IS NULL OR EXISTS (SELECT 1 FROM attempts a WHERE a.task_id = t.id AND a.runner_id = ?3))
           AND (?4 IS NULL OR EXISTS (SELECT 1 FROM json_each(t.labels) WHERE key = ?4 AND value = ?5))
           AND (?6 IS NULL OR t.id < ?6)
         ORDER BY t.id DESC LIMIT ?7",
    )
    .bind(filter.state.map(|s| s.as_str()))
    .bind(&filter.repo)
    .bind(filter.runner.map(|r| r.to_string()))
    .bind(label_key)
    .bind(label_value)
    .bind(filter.before.map(|id| id.to_string()))
    .bind(i64::from(filter.limit))
    .fetch_all(pool)
    .await?;
    found.iter().map(rows::task).collect()
}

pub async fn retry_task(
    pool: &SqlitePool,
    task: TaskId,
    now: UnixMillis,
) -> Result<RetryEffect, StoreError> {
    let mut tx = pool.begin().await?;
    let state: Option<String> = sqlx::query_scalar("SELECT state FROM tasks WHERE id = ?")
        .bind(task.to_string())
        .fetch_optional(&mut *tx)
        .await?;
    let Some(state) = state else {
        return Err(StoreError::NotFound {
            what: "task",
            id: task.to_string(),
        });
    };
    let state: TaskState = state.parse().map_err(|detail| StoreError::Corrupt {
        table: "tasks",
        detail,
    })?;
    if !state.is_terminal() {
        return Ok(RetryEffect::StillLive(state));
    }
    sqlx::query(
        "UPDATE tasks SET state = 'queued', outcome = NULL, finished_at = NULL,
                          cancel_requested_at = NULL, pruned_at = NULL,
                          retry_base = attempt, updated_at = ?
         WHERE id = ?",
    )
    .bind(now)
    .bind(task.to_string())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(RetryEffect::Queued)
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
            let outcome = ended_unrun(OutcomeStatus::Cancelled, "cancelled before it started");
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

/// Ends a task that has not ended (its open attempts are lost): for tasks whose box or
/// session is gone. False if it had already ended.
pub async fn end_task(
    pool: &SqlitePool,
    task: TaskId,
    state: TaskState,
    message: &str,
    now: UnixMillis,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    let ended = sqlx::query(
        "UPDATE tasks SET state = ?, outcome = ?, finished_at = ?, updated_at = ?
         WHERE id = ? AND state IN ('queued', 'assigned', 'running')",
    )
    .bind(state.as_str())
    .bind(to_json(&ended_as(state, message)))
    .bind(now)
    .bind(now)
    .bind(task.to_string())
    .execute(&mut *tx)
    .await?;
    if ended.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE attempts SET state = 'lost', finished_at = ?
         WHERE task_id = ? AND state IN ('assigned', 'running')",
    )
    .bind(now)
    .bind(task.to_string())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Tasks per state, the oldest queued task and the database's size.
pub async fn stats(pool: &SqlitePool) -> Result<StoreStats, StoreError> {
    let counts: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, COUNT(*) FROM tasks GROUP BY state")
            .fetch_all(pool)
            .await?;
    let mut tasks_by_state = Vec::with_capacity(counts.len());
    for (state, count) in counts {
        let state: TaskState = state.parse().map_err(|detail| StoreError::Corrupt {
            table: "tasks",
            detail,
        })?;
        tasks_by_state.push((state, u64::try_from(count).unwrap_or(0)));
    }
    let oldest_queued_at: Option<i64> =
        sqlx::query_scalar("SELECT MIN(created_at) FROM tasks WHERE state = 'queued'")
            .fetch_one(pool)
            .await?;
    let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
        .fetch_one(pool)
        .await?;
    let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
        .fetch_one(pool)
        .await?;
    Ok(StoreStats {
        tasks_by_state,
        oldest_queued_at,
        bytes: u64::try_from(pages.saturating_mul(page_size)).unwrap_or(0),
    })
}
