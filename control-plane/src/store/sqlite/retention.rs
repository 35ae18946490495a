//! SQLite queries for retention: delete the output of tasks that finished long ago.

use kiln_protocol::UnixMillis;
use sqlx::SqlitePool;

use crate::store::{Pruned, StoreError};

/// Prunes the events and artifacts of up to `limit` tasks that are terminal and finished
/// before `before`, in one transaction. A task that is queued, assigned or running is
/// never touched: only terminal states have a `finished_at`.
pub async fn prune_finished(
    pool: &SqlitePool,
    before: UnixMillis,
    now: UnixMillis,
    limit: u32,
) -> Result<Pruned, StoreError> {
    let mut tx = pool.begin().await?;
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM tasks
         WHERE pruned_at IS NULL AND finished_at IS NOT NULL AND finished_at < ?
           AND state IN ('succeeded', 'failed', 'cancelled', 'timed_out', 'error', 'lost')
         ORDER BY finished_at LIMIT ?",
    )
    .bind(before)
    .bind(i64::from(limit))
    .fetch_all(&mut *tx)
    .await?;
    let mut pruned = Pruned::default();
    for id in &ids {
        let chunks = sqlx::query("DELETE FROM event_chunks WHERE task_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        pruned.event_chunks += chunks.rows_affected();
        let bytes: Option<i64> =
            sqlx::query_scalar("SELECT SUM(LENGTH(data)) FROM artifacts WHERE task_id = ?")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        pruned.artifact_bytes += u64::try_from(bytes.unwrap_or(0)).unwrap_or(0);
        sqlx::query("DELETE FROM artifacts WHERE task_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE tasks SET pruned_at = ? WHERE id = ?")
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    pruned.tasks = ids.len() as u64;
    Ok(pruned)
}
