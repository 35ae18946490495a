//! SQLite queries for workspace sessions: the shared ones (`store/shared/workspaces.rs`)
//! and ending a session, which is SQLite's own.

use kiln_protocol::{TaskId, UnixMillis, WorkspaceId};
use sqlx::SqlitePool;

use crate::model::WorkspaceState;
use crate::store::outcomes::queued_of_ended_workspace;
use crate::store::rows::{self, to_json};
use crate::store::StoreError;

crate::store::shared::workspaces::workspace_queries!(sqlx::SqlitePool);

/// Ends a workspace (closed or lost) and ends its queued tasks.
pub async fn end_workspace(
    pool: &SqlitePool,
    id: WorkspaceId,
    state: WorkspaceState,
    now: UnixMillis,
) -> Result<Option<Vec<TaskId>>, StoreError> {
    let mut tx = pool.begin().await?;
    let ended = sqlx::query(
        "UPDATE workspaces SET state = ?, closed_at = ? WHERE id = ? AND state = 'open'",
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
        "UPDATE tasks SET state = ?, outcome = ?, finished_at = ?, updated_at = ?
         WHERE workspace_id = ? AND state = 'queued' RETURNING id",
    )
    .bind(task_state.as_str())
    .bind(to_json(&outcome))
    .bind(now)
    .bind(now)
    .bind(id.to_string())
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    rows::ids("tasks", "id", &ended_tasks).map(Some)
}
