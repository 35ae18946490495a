//! PostgreSQL queries for workspace sessions: the shared ones (`store/shared/workspaces.rs`)
//! and ending a session, which is PostgreSQL's own.

use kiln_protocol::{TaskId, UnixMillis, WorkspaceId};
use sqlx::PgPool;

use crate::model::WorkspaceState;
use crate::store::outcomes::queued_of_ended_workspace;
use crate::store::rows::{self, to_json};
use crate::store::StoreError;

crate::store::shared::workspaces::workspace_queries!(sqlx::PgPool);

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
