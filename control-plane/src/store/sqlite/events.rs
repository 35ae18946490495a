//! SQLite queries for attempt events and uploaded artifacts.

use kiln_protocol::{Event, TaskId, UnixMillis};
use sqlx::SqlitePool;

use crate::store::rows::int;
use crate::store::{event_batches, StoreError};

/// Up to `limit` events of an attempt after `after_seq`, in order, read from the chunks
/// that hold them.
pub async fn events(
    pool: &SqlitePool,
    task: TaskId,
    attempt: u32,
    after_seq: u64,
    limit: u32,
) -> Result<Vec<Event>, StoreError> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut events = Vec::new();
    let mut after = after_seq;
    while events.len() < limit {
        // Chunks are contiguous and do not overlap: read a few at a time in seq order.
        let chunks: Vec<(i64, String)> = sqlx::query_as(
            "SELECT last_seq, body FROM event_chunks
             WHERE task_id = ? AND attempt = ? AND last_seq > ?
             ORDER BY first_seq LIMIT ?",
        )
        .bind(task.to_string())
        .bind(i64::from(attempt))
        .bind(int(after))
        .bind(event_batches::CHUNKS_PER_READ)
        .fetch_all(pool)
        .await?;
        let Some((last, _)) = chunks.last() else {
            break;
        };
        let last = u64::try_from(*last).unwrap_or(0);
        for (_, body) in &chunks {
            event_batches::decode_into(body, after_seq, limit, &mut events)?;
        }
        after = last;
    }
    Ok(events)
}

pub async fn put_artifact(
    pool: &SqlitePool,
    task: TaskId,
    attempt: u32,
    kind: &str,
    data: &[u8],
    now: UnixMillis,
) -> Result<(), StoreError> {
    let stored = sqlx::query(
        "INSERT INTO artifacts (task_id, attempt, kind, data, created_at)
         SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (
             SELECT 1 FROM attempts WHERE task_id = ?1 AND attempt = ?2
                                      AND state IN ('assigned', 'running') AND reported_at IS NULL)
         ON CONFLICT (task_id, attempt, kind) DO UPDATE SET data = excluded.data,
                                                           created_at = excluded.created_at",
    )
    .bind(task.to_string())
    .bind(i64::from(attempt))
    .bind(kind)
    .bind(data)
    .bind(now)
    .execute(pool)
    .await?;
    if stored.rows_affected() == 0 {
        return Err(StoreError::Ended {
            task: task.to_string(),
            attempt,
            what: kind.to_owned(),
        });
    }
    Ok(())
}

pub async fn artifact(
    pool: &SqlitePool,
    task: TaskId,
    attempt: u32,
    kind: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    let data = sqlx::query_scalar(
        "SELECT data FROM artifacts WHERE task_id = ? AND attempt = ? AND kind = ?",
    )
    .bind(task.to_string())
    .bind(i64::from(attempt))
    .bind(kind)
    .fetch_optional(pool)
    .await?;
    Ok(data)
}
