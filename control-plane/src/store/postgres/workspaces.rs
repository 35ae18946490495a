//! PostgreSQL queries for workspace sessions.

use kiln_protocol::{RunnerId, TaskId, UnixMillis, WorkspaceId};
use sqlx::PgPool;

use crate::model::{WorkspaceRecord, WorkspaceState};
use crate::store::outcomes::queued_of_ended_workspace;
use crate::store::rows::{self, to_json};
use crate::store::StoreError;

pub async fn create_workspace(pool: &PgPool, record: &WorkspaceRecord) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO workspaces (id, repo, base_ref, branch, setup, runner_id, state, created_at, closed_at)
         VALUES ($1, $2, $3, $4, $5, NULL, 'open', $6, NULL)",
    )
    .bind(record.id.to_string())
    .bind(&record.repo)
    .bind(&record.base_ref)
    .bind(&record.branch)
    .bind(to_json(&record.setup))
    .bind(record.created_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn workspace(
    pool: &PgPool,
    id: WorkspaceId,
) -> Result<Option<WorkspaceRecord>, StoreError> {
    let row = sqlx::query("SELECT * FROM workspaces WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(rows::workspace).transpose()
}

/// Ends a workspace (closed or lost) and ends its queued tasks.
pub async fn end_workspace(
    pool: &PgPool,
    id: WorkspaceId,
    state: WorkspaceState,
    now: UnixMillis,
) -> Result<Option<Vec<TaskId>>, StoreError> {
    let mut tx = pool.begin().await?;
    // The session's queued tasks before the session, as an assignment takes them: no
    // lock-order deadlock with a replica assigning one of them.
    sqlx::query(
        "SELECT id FROM tasks WHERE workspace_id = $1 AND state = 'queued' ORDER BY id FOR UPDATE",
    )
    .bind(id.to_string())
    .fetch_all(&mut *tx)
    .await?;
    let ended = sqlx::query(
        "UPDATE workspaces SET state = $1, closed_at = $2 WHERE id = $3 AND state = 'open'",
    )
    .bind(state.as_str())
    .bind(now)
    .bind(id.to_string())
    .execute(&mut *tx)
    .await?;
    if ended.rows_affected() == 0 {
        return Ok(None);
    }
    let (task_state, outcome) = queued_of_ended_workspace(state);
    let ended_tasks: Vec<String> = sqlx::query_scalar(
        "UPDATE tasks SET state = $1, outcome = $2, finished_at = $3, updated_at = $4
         WHERE workspace_id = $5 AND state = 'queued' RETURNING id",
    )
    .bind(task_state.as_str())
    .bind(to_json(&outcome))
    .bind(now)
    .bind(now)
    .bind(id.to_string())
    .fetch_all(&mut *tx)
    .await?;
    super::notify::tasks_changed(&mut tx, &ended_tasks).await?;
    tx.commit().await?;
    rows::ids("tasks", "id", &ended_tasks).map(Some)
}

pub async fn open_workspaces_of(
    pool: &PgPool,
    runner: RunnerId,
) -> Result<Vec<WorkspaceRecord>, StoreError> {
    let found = sqlx::query("SELECT * FROM workspaces WHERE runner_id = $1 AND state = 'open'")
        .bind(runner.to_string())
        .fetch_all(pool)
        .await?;
    found.iter().map(rows::workspace).collect()
}

/// Workspaces with a task assigned or running right now.
pub async fn busy_workspaces(pool: &PgPool) -> Result<Vec<WorkspaceId>, StoreError> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT workspace_id FROM tasks
         WHERE workspace_id IS NOT NULL AND state IN ('assigned', 'running')",
    )
    .fetch_all(pool)
    .await?;
    ids.iter()
        .map(|id| {
            id.parse().map_err(|e: uuid::Error| StoreError::Corrupt {
                table: "tasks",
                detail: format!("workspace_id {id:?}: {e}"),
            })
        })
        .collect()
}
