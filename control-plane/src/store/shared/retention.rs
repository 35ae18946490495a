//! Retention's query written once for both backends; the two places where the dialects
//! differ are the macro's arguments: how a locked row is skipped (PostgreSQL's
//! `FOR UPDATE SKIP LOCKED`; SQLite has one writer and needs nothing) and how a blob's size
//! is summed.

/// `prune_finished` over the pool type `$pool`, with the dialect's row-skipping clause and
/// artifacts' total size.
macro_rules! retention_queries {
    ($pool:ty, skip_locked: $skip_locked:literal, total_size: $total_size:literal) => {
        /// Prunes the events and artifacts of up to `limit` tasks that are terminal and finished
        /// before `before`, in one transaction. A task that is queued, assigned or running is
        /// never touched: only terminal states have a `finished_at`. On PostgreSQL rows another
        /// replica is pruning (or retrying) are skipped, so two replicas never count the same task.
        pub async fn prune_finished(
            pool: &$pool,
            before: kiln_protocol::UnixMillis,
            now: kiln_protocol::UnixMillis,
            limit: u32,
        ) -> Result<crate::store::Pruned, crate::store::StoreError> {
            let mut tx = pool.begin().await?;
            let ids: Vec<String> = sqlx::query_scalar(
                concat!(
                    "SELECT id FROM tasks
                     WHERE pruned_at IS NULL AND finished_at IS NOT NULL AND finished_at < $1
                       AND state IN ('succeeded', 'failed', 'cancelled', 'timed_out', 'error', 'lost')
                     ORDER BY finished_at LIMIT $2 ",
                    $skip_locked
                ),
            )
            .bind(before)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
            let mut pruned = crate::store::Pruned::default();
            for id in &ids {
                let chunks = sqlx::query("DELETE FROM event_chunks WHERE task_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                pruned.event_chunks += chunks.rows_affected();
                let bytes: Option<i64> = sqlx::query_scalar(
                    concat!("SELECT ", $total_size, " FROM artifacts WHERE task_id = $1"),
                )
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
                pruned.artifact_bytes += u64::try_from(bytes.unwrap_or(0)).unwrap_or(0);
                sqlx::query("DELETE FROM artifacts WHERE task_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("UPDATE tasks SET pruned_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            pruned.tasks = ids.len() as u64;
            Ok(pruned)
        }
    };
}

pub(crate) use retention_queries;
