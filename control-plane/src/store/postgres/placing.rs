//! Placing a task as it is stored: one transaction stores it and assigns it, when nothing
//! queued goes before it and its session is free.

use kiln_protocol::{RunnerId, UnixMillis};
use sqlx::{PgConnection, PgPool};

use crate::model::{AttemptRecord, NewTask};
use crate::store::StoreError;

use super::{attempts, notify, tasks};

/// Stores `task` and assigns it to `runner` unless something must go first; the attempt
/// made, if any. Replicas hear of a queued task, or of an assigned one, at the commit.
pub async fn insert_and_assign(
    pool: &PgPool,
    task: &NewTask,
    runner: RunnerId,
    now: UnixMillis,
) -> Result<Option<AttemptRecord>, StoreError> {
    let mut tx = pool.begin().await?;
    if let Some(session) = task.workspace_id {
        // Two replicas placing tasks of one session take turns here: the later one then
        // sees the earlier one's task, and waits.
        sqlx::query("SELECT 1 FROM workspaces WHERE id = $1 FOR UPDATE")
            .bind(session.to_string())
            .execute(&mut *tx)
            .await?;
    }
    let waits = waits_its_turn(&mut tx, task, runner).await?;
    tasks::insert_task(&mut *tx, task).await?;
    let attempt = if waits {
        None
    } else {
        attempts::assign_in(&mut tx, &[(task.id, runner)], now)
            .await?
            .pop()
    };
    match &attempt {
        Some(_) => notify::task_changed(&mut tx, task.id).await?,
        None => notify::queue_changed(&mut tx).await?,
    }
    tx.commit().await?;
    Ok(attempt)
}

/// True when a queued task of the same or a higher priority goes first, or the task's
/// session has a task queued, assigned or running, or belongs to another runner. (The
/// dispatcher relies on the queued case: it reads a session's queued tasks before it
/// takes the placement turn.)
async fn waits_its_turn(
    conn: &mut PgConnection,
    task: &NewTask,
    runner: RunnerId,
) -> Result<bool, StoreError> {
    let waits = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM tasks WHERE state = 'queued' AND priority >= $1)
             OR EXISTS (SELECT 1 FROM tasks WHERE workspace_id = $2
                                              AND state IN ('queued', 'assigned', 'running'))
             OR EXISTS (SELECT 1 FROM workspaces WHERE id = $2 AND runner_id <> $3)",
    )
    .bind(task.priority)
    .bind(task.workspace_id.map(|w| w.to_string()))
    .bind(runner.to_string())
    .fetch_one(conn)
    .await?;
    Ok(waits)
}
