//! PostgreSQL queries for attempt events and uploaded artifacts.

use kiln_protocol::{Event, EventBody, Outcome, RunnerId, TaskId, UnixMillis};
use sqlx::{PgConnection, PgPool};

use crate::model::{AttemptState, TaskState};
use crate::store::event_batches::{self, AttemptRow};
use crate::store::rows::{int, to_json};
use crate::store::{Appended, StoreError};

/// Stores the contiguous new events of an attempt in `conn`'s open transaction, holding the
/// attempt's row so that two replicas never store the same seq twice. Refusals (not found,
/// not this runner's) come before any write.
pub async fn append_events(
    pool: &PgPool,
    task: TaskId,
    attempt: u32,
    runner: RunnerId,
    events: Vec<Event>,
    log_cap: u64,
    now: UnixMillis,
) -> Result<Appended, StoreError> {
    let mut tx = pool.begin().await?;
    let appended = append_in(&mut tx, task, attempt, runner, events, log_cap, now).await?;
    if !appended.stored.is_empty() {
        super::notify::task_changed(&mut tx, task).await?;
    }
    tx.commit().await?;
    Ok(appended)
}

async fn append_in(
    conn: &mut PgConnection,
    task: TaskId,
    attempt: u32,
    runner: RunnerId,
    events: Vec<Event>,
    log_cap: u64,
    now: UnixMillis,
) -> Result<Appended, StoreError> {
    let tx = conn;
    let row: Option<AttemptRow> = sqlx::query_as(
        "SELECT runner_id, acked_seq, log_bytes, reported_at IS NOT NULL FROM attempts
         WHERE task_id = $1 AND attempt = $2 FOR UPDATE",
    )
    .bind(task.to_string())
    .bind(i64::from(attempt))
    .fetch_optional(&mut *tx)
    .await?;
    let accepted = event_batches::accept_from((task, attempt), runner, row, events, log_cap)?;
    let (appended, log_bytes) = (accepted.appended, accepted.log_bytes);
    if let (Some(first), Some(last)) = (appended.stored.first(), appended.stored.last()) {
        let body = event_batches::encode(&appended.stored);
        sqlx::query(
            "INSERT INTO event_chunks (task_id, attempt, first_seq, last_seq, body)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(task.to_string())
        .bind(i64::from(attempt))
        .bind(int(first.seq))
        .bind(int(last.seq))
        .bind(body)
        .execute(&mut *tx)
        .await?;
    }
    if let Some(EventBody::Finished { outcome }) = appended.stored.last().map(|e| &e.body) {
        finish_attempt(&mut *tx, task, attempt, outcome, now).await?;
    }
    if !appended.stored.is_empty() {
        let waiting = event_batches::rate_limit_change(&appended.stored);
        sqlx::query(
            "UPDATE attempts SET acked_seq = $1, log_bytes = $2,
                                 reported_at = COALESCE(reported_at, $3),
                                 rate_limited_until = CASE WHEN $6 THEN $7
                                                      ELSE rate_limited_until END
             WHERE task_id = $4 AND attempt = $5",
        )
        .bind(int(appended.acked_seq))
        .bind(int(log_bytes))
        .bind(appended.finished.then_some(now))
        .bind(task.to_string())
        .bind(i64::from(attempt))
        .bind(waiting.is_some())
        .bind(waiting.flatten())
        .execute(&mut *tx)
        .await?;
    }
    Ok(appended)
}

/// Ends the attempt as its runner reported, and the task with it when this attempt is the
/// task's current one. An attempt already ended (lost, say) keeps its state: late events
/// are stored but change nothing.
async fn finish_attempt(
    tx: &mut PgConnection,
    task: TaskId,
    attempt: u32,
    outcome: &Outcome,
    now: UnixMillis,
) -> Result<(), StoreError> {
    let attempt_state = AttemptState::from(outcome.status);
    let outcome_json = to_json(outcome);
    let ended = sqlx::query(
        "UPDATE attempts SET state = $1, outcome = $2, finished_at = $3
         WHERE task_id = $4 AND attempt = $5 AND state IN ('assigned', 'running')",
    )
    .bind(attempt_state.as_str())
    .bind(&outcome_json)
    .bind(now)
    .bind(task.to_string())
    .bind(i64::from(attempt))
    .execute(&mut *tx)
    .await?;
    if ended.rows_affected() == 0 {
        return Ok(());
    }
    sqlx::query(
        "UPDATE tasks SET state = $1, outcome = $2, finished_at = $3, updated_at = $4
         WHERE id = $5 AND attempt = $6 AND state IN ('assigned', 'running')",
    )
    .bind(TaskState::from(outcome.status).as_str())
    .bind(&outcome_json)
    .bind(now)
    .bind(now)
    .bind(task.to_string())
    .bind(i64::from(attempt))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Up to `limit` events of an attempt after `after_seq`, in order, read from the chunks
/// that hold them.
pub async fn events(
    pool: &PgPool,
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
             WHERE task_id = $1 AND attempt = $2 AND last_seq > $3
             ORDER BY first_seq LIMIT $4",
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
    pool: &PgPool,
    task: TaskId,
    attempt: u32,
    kind: &str,
    data: &[u8],
    now: UnixMillis,
) -> Result<(), StoreError> {
    let stored = sqlx::query(
        "INSERT INTO artifacts (task_id, attempt, kind, data, created_at)
         SELECT $1, $2, $3, $4, $5 WHERE EXISTS (
             SELECT 1 FROM attempts WHERE task_id = $1 AND attempt = $2
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
    pool: &PgPool,
    task: TaskId,
    attempt: u32,
    kind: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    let data = sqlx::query_scalar(
        "SELECT data FROM artifacts WHERE task_id = $1 AND attempt = $2 AND kind = $3",
    )
    .bind(task.to_string())
    .bind(i64::from(attempt))
    .bind(kind)
    .fetch_optional(pool)
    .await?;
    Ok(data)
}
