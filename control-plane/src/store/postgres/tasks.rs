//! PostgreSQL queries for tasks: submit, list, cancel, retry.

use kiln_protocol::{OutcomeStatus, TaskId, UnixMillis};
use sqlx::PgPool;

use crate::model::{CancelEffect, NewTask, RetryEffect, TaskRecord, TaskState};
use crate::store::outcomes::{ended_as, ended_unrun};
use crate::store::rows::{self, int, to_json};
use crate::store::{StoreError, StoreStats, TaskFilter};

/// Saves new queued tasks in one transaction, all or none, and wakes every replica's
/// dispatcher when it commits.
pub async fn insert_tasks(pool: &PgPool, tasks: &[NewTask]) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    for task in tasks {
        insert_task(&mut *tx, task).await?;
    }
    super::notify::queue_changed(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn insert_task<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Postgres>,
    task: &NewTask,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO tasks (id, repo, base_ref, branch, prompt, command, env, secret_env, requires,
                            labels, priority, timeout_ms, idle_timeout_ms, max_attempts, state,
                            attempt, created_at, updated_at, options, workspace_id, sandbox_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 0, $16, $17, $18, $19, $20)",
    )
    .bind(task.id.to_string())
    .bind(&task.repo)
    .bind(&task.base_ref)
    .bind(&task.branch)
    .bind(&task.prompt)
    .bind(to_json(&task.command))
    .bind(to_json(&task.env))
    .bind(to_json(&task.secret_env.0))
    .bind(to_json(&task.requires))
    .bind(to_json(&task.labels))
    .bind(task.priority)
    .bind(task.timeout_ms.map(int))
    .bind(task.idle_timeout_ms.map(int))
    .bind(i64::from(task.max_attempts))
    .bind(TaskState::Queued.as_str())
    .bind(task.created_at)
    .bind(task.created_at)
    .bind(to_json(&task.options))
    .bind(task.workspace_id.map(|w| w.to_string()))
    .bind(task.sandbox_id.map(|s| s.to_string()))
    .execute(executor)
    .await?;
    Ok(())
}

pub async fn task(pool: &PgPool, id: TaskId) -> Result<Option<TaskRecord>, StoreError> {
    let row = sqlx::query("SELECT * FROM tasks WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(rows::task).transpose()
}

pub async fn tasks(pool: &PgPool, filter: &TaskFilter) -> Result<Vec<TaskRecord>, StoreError> {
    let (label_key, label_value) = filter.label.clone().unzip();
    let found = sqlx::query(
        "SELECT * FROM tasks t
         WHERE ($1::TEXT IS NULL OR t.state = $1::TEXT)
           AND ($2::TEXT IS NULL OR t.repo = $2::TEXT)
           AND ($3::TEXT IS NULL OR EXISTS (SELECT 1 FROM attempts a WHERE a.task_id = t.id AND a.runner_id = $3::TEXT))
           AND ($4::TEXT IS NULL OR (t.labels::jsonb ->> $4::TEXT) = $5::TEXT)
           AND ($6::TEXT IS NULL OR t.id < $6::TEXT)
         ORDER BY t.id DESC LIMIT $7",
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
    pool: &PgPool,
    task: TaskId,
    now: UnixMillis,
) -> Result<RetryEffect, StoreError> {
    let mut tx = pool.begin().await?;
    let state: Option<String> =
        sqlx::query_scalar("SELECT state FROM tasks WHERE id = $1 FOR UPDATE")
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
                          retry_base = attempt, updated_at = $1
         WHERE id = $2",
    )
    .bind(now)
    .bind(task.to_string())
    .execute(&mut *tx)
    .await?;
    super::notify::queue_changed(&mut tx).await?;
    super::notify::task_changed(&mut tx, task).await?;
    tx.commit().await?;
    Ok(RetryEffect::Queued)
}

pub async fn queued_tasks(pool: &PgPool, limit: u32) -> Result<Vec<TaskRecord>, StoreError> {
    let found = sqlx::query(
        "SELECT * FROM tasks WHERE state = 'queued'
         ORDER BY priority DESC, created_at, id LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    found.iter().map(rows::task).collect()
}

pub async fn request_cancel(
    pool: &PgPool,
    task: TaskId,
    now: UnixMillis,
) -> Result<CancelEffect, StoreError> {
    let mut tx = pool.begin().await?;
    let found: Option<(String, i64)> =
        sqlx::query_as("SELECT state, attempt FROM tasks WHERE id = $1 FOR UPDATE")
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
                "UPDATE tasks SET state = 'cancelled', outcome = $1, cancel_requested_at = $2,
                                  finished_at = $3, updated_at = $4 WHERE id = $5",
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
            sqlx::query("UPDATE tasks SET cancel_requested_at = COALESCE(cancel_requested_at, $1), updated_at = $2 WHERE id = $3")
                .bind(now)
                .bind(now)
                .bind(task.to_string())
                .execute(&mut *tx)
                .await?;
            let runner: String = sqlx::query_scalar(
                "SELECT runner_id FROM attempts WHERE task_id = $1 AND attempt = $2",
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
    super::notify::task_changed(&mut tx, task).await?;
    tx.commit().await?;
    Ok(effect)
}

/// Ends a task that has not ended (its open attempts are lost): for tasks whose box or
/// session is gone. False if it had already ended.
pub async fn end_task(
    pool: &PgPool,
    task: TaskId,
    state: TaskState,
    message: &str,
    now: UnixMillis,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    // Attempts before their task, as every other write takes them: no lock-order deadlock
    // with a replica storing the attempt's last events.
    sqlx::query(
        "SELECT attempt FROM attempts
         WHERE task_id = $1 AND state IN ('assigned', 'running') ORDER BY attempt FOR UPDATE",
    )
    .bind(task.to_string())
    .fetch_all(&mut *tx)
    .await?;
    let ended = sqlx::query(
        "UPDATE tasks SET state = $1, outcome = $2, finished_at = $3, updated_at = $4
         WHERE id = $5 AND state IN ('queued', 'assigned', 'running')",
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
        "UPDATE attempts SET state = 'lost', finished_at = $1
         WHERE task_id = $2 AND state IN ('assigned', 'running')",
    )
    .bind(now)
    .bind(task.to_string())
    .execute(&mut *tx)
    .await?;
    super::notify::task_changed(&mut tx, task).await?;
    tx.commit().await?;
    Ok(true)
}

/// Tasks per state, the oldest queued task and the database's size.
pub async fn stats(pool: &PgPool) -> Result<StoreStats, StoreError> {
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
    let bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
        .fetch_one(pool)
        .await?;
    Ok(StoreStats {
        tasks_by_state,
        oldest_queued_at,
        bytes: u64::try_from(bytes).unwrap_or(0),
    })
}
