//! PostgreSQL queries for attempts: assignment, acceptance, refusal, loss.

use kiln_protocol::{RunnerId, TaskId, UnixMillis};
use std::collections::HashMap;

use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};

use crate::model::{AttemptRecord, TaskState};
use crate::store::outcomes;
use crate::store::rows::{self, to_json};
use crate::store::StoreError;

/// Placements persisted per statement: a round trip to the server costs more than the row
/// work, so many rows share one statement (5 parameters a row, far below PostgreSQL's
/// 65,535).
const ASSIGN_CHUNK: usize = 500;

/// Records the attempts of a dispatch round in `tx`'s open transaction; tasks no longer
/// queued are skipped. Tasks are claimed with `FOR UPDATE SKIP LOCKED`: when two replicas
/// race for a task, one claims it and the other moves on without waiting or deadlocking.
pub async fn assign(
    pool: &PgPool,
    placements: &[(TaskId, RunnerId)],
    now: UnixMillis,
) -> Result<Vec<AttemptRecord>, StoreError> {
    let mut tx = pool.begin().await?;
    let assigned = assign_in(&mut tx, placements, now).await?;
    let changed: Vec<String> = assigned.iter().map(|a| a.task_id.to_string()).collect();
    super::notify::tasks_changed(&mut tx, &changed).await?;
    tx.commit().await?;
    Ok(assigned)
}

pub(super) async fn assign_in(
    tx: &mut PgConnection,
    placements: &[(TaskId, RunnerId)],
    now: UnixMillis,
) -> Result<Vec<AttemptRecord>, StoreError> {
    let mut assigned = Vec::with_capacity(placements.len());
    for chunk in placements.chunks(ASSIGN_CHUNK) {
        let wanted: Vec<String> = chunk.iter().map(|(task, _)| task.to_string()).collect();
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "UPDATE tasks SET state = 'assigned', attempt = attempt + 1, updated_at = $1
             WHERE id IN (SELECT t.id FROM tasks AS t
                          WHERE t.id = ANY($2) AND t.state = 'queued'
                            AND NOT EXISTS (SELECT 1 FROM tasks AS busy
                                            WHERE busy.workspace_id = t.workspace_id
                                              AND busy.state IN ('assigned', 'running'))
                          ORDER BY t.id FOR UPDATE OF t SKIP LOCKED)
             RETURNING id, attempt",
        )
        .bind(now)
        .bind(&wanted)
        .fetch_all(&mut *tx)
        .await?;
        let numbers: HashMap<String, i64> = rows.into_iter().collect();
        let taken: Vec<(TaskId, RunnerId, i64)> = chunk
            .iter()
            .filter_map(|(task, runner)| {
                numbers.get(&task.to_string()).map(|n| (*task, *runner, *n))
            })
            .collect();
        if taken.is_empty() {
            continue;
        }
        let mut insert = QueryBuilder::<Postgres>::new(
            "INSERT INTO attempts (task_id, attempt, runner_id, state, assigned_at) ",
        );
        insert.push_values(&taken, |mut row, (task, runner, attempt)| {
            row.push_bind(task.to_string())
                .push_bind(*attempt)
                .push_bind(runner.to_string())
                .push_bind("assigned")
                .push_bind(now);
        });
        insert.build().execute(&mut *tx).await?;
        // A session's first assigned task binds the session to its runner.
        let mut bind = QueryBuilder::<Postgres>::new(
            "UPDATE workspaces SET runner_id = (
                 SELECT a.runner_id FROM tasks t JOIN attempts a ON a.task_id = t.id AND a.attempt = t.attempt
                 WHERE t.workspace_id = workspaces.id AND t.state = 'assigned' LIMIT 1)
             WHERE runner_id IS NULL AND id IN (SELECT workspace_id FROM tasks WHERE id IN (",
        );
        let mut ids = bind.separated(", ");
        for (task, _, _) in &taken {
            ids.push_bind(task.to_string());
        }
        bind.push("))");
        bind.build().execute(&mut *tx).await?;
        assigned.extend(
            taken
                .into_iter()
                .map(|(task, runner, attempt)| rows::assigned_attempt(task, attempt, runner, now)),
        );
    }
    Ok(assigned)
}

/// Marks an assigned attempt (and its task) running, in `tx`'s open transaction. False if it is no longer assigned to this runner and does not run there.
pub async fn start_attempt(
    pool: &PgPool,
    task: TaskId,
    attempt: u32,
    runner: RunnerId,
    now: UnixMillis,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    let started = start_attempt_in(&mut tx, task, attempt, runner, now).await?;
    if started {
        super::notify::task_changed(&mut tx, task).await?;
    }
    tx.commit().await?;
    Ok(started)
}

async fn start_attempt_in(
    tx: &mut PgConnection,
    task: TaskId,
    attempt: u32,
    runner: RunnerId,
    now: UnixMillis,
) -> Result<bool, StoreError> {
    let updated = sqlx::query(
        "UPDATE attempts SET state = 'running', started_at = $1
         WHERE task_id = $2 AND attempt = $3 AND runner_id = $4 AND state = 'assigned'",
    )
    .bind(now)
    .bind(task.to_string())
    .bind(i64::from(attempt))
    .bind(runner.to_string())
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 1 {
        sqlx::query(
            "UPDATE tasks SET state = 'running', updated_at = $1
             WHERE id = $2 AND attempt = $3 AND state = 'assigned'",
        )
        .bind(now)
        .bind(task.to_string())
        .bind(i64::from(attempt))
        .execute(&mut *tx)
        .await?;
        return Ok(true);
    }
    // Not assigned any more: fine if it already runs here (a repeated accept).
    let state: Option<String> = sqlx::query_scalar(
        "SELECT state FROM attempts WHERE task_id = $1 AND attempt = $2 AND runner_id = $3",
    )
    .bind(task.to_string())
    .bind(i64::from(attempt))
    .bind(runner.to_string())
    .fetch_optional(&mut *tx)
    .await?;
    Ok(state.as_deref() == Some("running"))
}

pub async fn reject_attempt(
    pool: &PgPool,
    task: TaskId,
    attempt: u32,
    runner: RunnerId,
    now: UnixMillis,
) -> Result<Option<TaskState>, StoreError> {
    let mut tx = pool.begin().await?;
    let updated = sqlx::query(
        "UPDATE attempts SET state = 'rejected', finished_at = $1
         WHERE task_id = $2 AND attempt = $3 AND runner_id = $4 AND state = 'assigned'",
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
        "SELECT COUNT(*) FROM attempts WHERE task_id = $1 AND state = 'rejected'",
    )
    .bind(task.to_string())
    .fetch_one(&mut *tx)
    .await?;
    let (next, outcome) = outcomes::after_untaken(untaken);
    let finished_at = outcome.is_some().then_some(now);
    let changed = sqlx::query(
        "UPDATE tasks SET state = $1, outcome = COALESCE($2, outcome),
                          finished_at = COALESCE($3, finished_at), updated_at = $4
         WHERE id = $5 AND attempt = $6 AND state = 'assigned'",
    )
    .bind(next.as_str())
    .bind(outcome.as_ref().map(to_json))
    .bind(finished_at)
    .bind(now)
    .bind(task.to_string())
    .bind(i64::from(attempt))
    .execute(&mut *tx)
    .await?;
    super::notify::queue_changed(&mut tx).await?;
    super::notify::task_changed(&mut tx, task).await?;
    tx.commit().await?;
    Ok((changed.rows_affected() == 1).then_some(next))
}

pub async fn lose_attempt(
    pool: &PgPool,
    task: TaskId,
    attempt: u32,
    runner: RunnerId,
    now: UnixMillis,
) -> Result<Option<TaskState>, StoreError> {
    let mut tx = pool.begin().await?;
    let lost = sqlx::query(
        "UPDATE attempts SET state = 'lost', finished_at = $1
         WHERE task_id = $2 AND attempt = $3 AND runner_id = $4 AND state IN ('assigned', 'running')",
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
             WHERE task_id = $2 AND started_at IS NOT NULL
               AND attempt > (SELECT retry_base FROM tasks WHERE id = $2)
         )
         UPDATE tasks
         SET state = CASE WHEN cancel_requested_at IS NOT NULL THEN 'cancelled'
                          WHEN (SELECT n FROM started) < max_attempts THEN 'queued'
                          ELSE 'lost' END,
             finished_at = CASE WHEN cancel_requested_at IS NULL
                                 AND (SELECT n FROM started) < max_attempts THEN NULL ELSE $1 END,
             updated_at = $1
         WHERE id = $2 AND attempt = $3 AND state IN ('assigned', 'running')
         RETURNING state",
    )
    .bind(now)
    .bind(task.to_string())
    .bind(i64::from(attempt))
    .fetch_optional(&mut *tx)
    .await?;
    if next.as_deref() == Some("queued") {
        super::notify::queue_changed(&mut tx).await?;
    }
    super::notify::task_changed(&mut tx, task).await?;
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
    pool: &PgPool,
    task: TaskId,
    attempt: u32,
) -> Result<Option<AttemptRecord>, StoreError> {
    let row = sqlx::query("SELECT * FROM attempts WHERE task_id = $1 AND attempt = $2")
        .bind(task.to_string())
        .bind(i64::from(attempt))
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(rows::attempt).transpose()
}

pub async fn attempts(pool: &PgPool, task: TaskId) -> Result<Vec<AttemptRecord>, StoreError> {
    let found = sqlx::query("SELECT * FROM attempts WHERE task_id = $1 ORDER BY attempt")
        .bind(task.to_string())
        .fetch_all(pool)
        .await?;
    found.iter().map(rows::attempt).collect()
}

pub async fn runners_with_open_attempts(pool: &PgPool) -> Result<Vec<RunnerId>, StoreError> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT runner_id FROM attempts WHERE state IN ('assigned', 'running')",
    )
    .fetch_all(pool)
    .await?;
    rows::ids("attempts", "runner_id", &ids)
}

pub async fn silent_runners_with_open_attempts(
    pool: &PgPool,
    heard_before: UnixMillis,
) -> Result<Vec<RunnerId>, StoreError> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT a.runner_id FROM attempts a JOIN runners r ON r.id = a.runner_id
         WHERE a.state IN ('assigned', 'running')
           AND (r.last_seen_at IS NULL OR r.last_seen_at <= $1)",
    )
    .bind(heard_before)
    .fetch_all(pool)
    .await?;
    rows::ids("attempts", "runner_id", &ids)
}

pub async fn open_attempts(
    pool: &PgPool,
    runner: RunnerId,
) -> Result<Vec<AttemptRecord>, StoreError> {
    let found = sqlx::query(
        "SELECT * FROM attempts WHERE runner_id = $1 AND state IN ('assigned', 'running')
         ORDER BY assigned_at",
    )
    .bind(runner.to_string())
    .fetch_all(pool)
    .await?;
    found.iter().map(rows::attempt).collect()
}

pub async fn cancels_unheeded(
    pool: &PgPool,
    requested_before: UnixMillis,
) -> Result<Vec<AttemptRecord>, StoreError> {
    let found = sqlx::query(
        "SELECT a.* FROM attempts a JOIN tasks t ON t.id = a.task_id AND t.attempt = a.attempt
         WHERE a.state IN ('assigned', 'running') AND t.cancel_requested_at < $1
         ORDER BY a.assigned_at",
    )
    .bind(requested_before)
    .fetch_all(pool)
    .await?;
    found.iter().map(rows::attempt).collect()
}

pub async fn timeouts_unheeded(
    pool: &PgPool,
    due_before: UnixMillis,
) -> Result<Vec<AttemptRecord>, StoreError> {
    let found = sqlx::query(
        "SELECT a.* FROM attempts a JOIN tasks t ON t.id = a.task_id AND t.attempt = a.attempt
         WHERE a.state IN ('assigned', 'running') AND t.timeout_ms IS NOT NULL
           AND COALESCE(a.started_at, a.assigned_at) + t.timeout_ms < $1
         ORDER BY a.assigned_at",
    )
    .bind(due_before)
    .fetch_all(pool)
    .await?;
    found.iter().map(rows::attempt).collect()
}
