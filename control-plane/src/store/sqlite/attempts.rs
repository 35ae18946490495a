//! SQLite queries for attempts: assignment, acceptance, refusal, loss.

use kiln_protocol::{RunnerId, TaskId, UnixMillis};
use std::collections::HashMap;

use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};

use crate::model::{AttemptRecord, AttemptState, TaskState};
use crate::store::rows;
use crate::store::StoreError;

/// Placements persisted per statement: each round trip to SQLite's worker thread costs more
/// than the row work, so many rows share one statement (within SQLite's variable limit).
const ASSIGN_CHUNK: usize = 500;

/// Records the attempts of a dispatch round in `tx`'s open transaction (the group
/// commit's); tasks no longer queued are skipped.
pub async fn assign(
    tx: &mut SqliteConnection,
    placements: &[(TaskId, RunnerId)],
    now: UnixMillis,
) -> Result<Vec<AttemptRecord>, StoreError> {
    let mut assigned = Vec::with_capacity(placements.len());
    for chunk in placements.chunks(ASSIGN_CHUNK) {
        let mut update = QueryBuilder::<Sqlite>::new(
            "UPDATE tasks SET state = 'assigned', attempt = attempt + 1, updated_at = ",
        );
        update.push_bind(now);
        update.push(" WHERE state = 'queued' AND id IN (");
        let mut ids = update.separated(", ");
        for (task, _) in chunk {
            ids.push_bind(task.to_string());
        }
        update.push(") RETURNING id, attempt");
        let rows: Vec<(String, i64)> = update.build_query_as().fetch_all(&mut *tx).await?;
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
        let mut insert = QueryBuilder::<Sqlite>::new(
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
        let mut bind = QueryBuilder::<Sqlite>::new(
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
                .map(|(task, runner, attempt)| AttemptRecord {
                    task_id: task,
                    attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
                    runner_id: runner,
                    state: AttemptState::Assigned,
                    acked_seq: 0,
                    outcome: None,
                    assigned_at: now,
                    started_at: None,
                    finished_at: None,
                }),
        );
    }
    Ok(assigned)
}

/// Marks an assigned attempt (and its task) running, in `tx`'s open transaction (the group
/// commit's). False if it is no longer assigned to this runner and does not run there.
pub async fn start_attempt(
    tx: &mut SqliteConnection,
    task: TaskId,
    attempt: u32,
    runner: RunnerId,
    now: UnixMillis,
) -> Result<bool, StoreError> {
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
        return Ok(true);
    }
    // Not assigned any more: fine if it already runs here (a repeated accept).
    let state: Option<String> = sqlx::query_scalar(
        "SELECT state FROM attempts WHERE task_id = ? AND attempt = ? AND runner_id = ?",
    )
    .bind(task.to_string())
    .bind(i64::from(attempt))
    .bind(runner.to_string())
    .fetch_optional(&mut *tx)
    .await?;
    Ok(state.as_deref() == Some("running"))
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
    rows::runner_ids(&ids)
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
    rows::runner_ids(&ids)
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
