//! Hot writes of attempt events: each batch becomes one NDJSON chunk row, and `finished`
//! ends the attempt and its task.

use kiln_protocol::{Event, EventBody, Outcome, RunnerId, TaskId, UnixMillis};
use rusqlite::{params, Connection, OptionalExtension as _};

use crate::model::{AttemptState, TaskState};
use crate::store::event_batches::{self, AttemptRow};
use crate::store::rows::{int, to_json};
use crate::store::{Appended, StoreError};

/// Stores the contiguous new events of an attempt. Refusals (not found, not this
/// runner's) come before any write.
pub fn append_events(
    conn: &Connection,
    key: (TaskId, u32),
    runner: RunnerId,
    events: Vec<Event>,
    log_cap: u64,
    now: UnixMillis,
) -> Result<Appended, StoreError> {
    let (task, attempt) = (key.0.to_string(), i64::from(key.1));
    let row: Option<AttemptRow> = conn
        .prepare_cached(
            "SELECT runner_id, acked_seq, log_bytes, reported_at IS NOT NULL FROM attempts
             WHERE task_id = ? AND attempt = ?",
        )?
        .query_row(params![task, attempt], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .optional()?;
    let accepted = event_batches::accept_from(key, runner, row, events, log_cap)?;
    let (appended, log_bytes) = (accepted.appended, accepted.log_bytes);
    let (Some(first), Some(last)) = (appended.stored.first(), appended.stored.last()) else {
        return Ok(appended);
    };
    conn.prepare_cached(
        "INSERT INTO event_chunks (task_id, attempt, first_seq, last_seq, body)
         VALUES (?, ?, ?, ?, ?)",
    )?
    .execute(params![
        task,
        attempt,
        int(first.seq),
        int(last.seq),
        event_batches::encode(&appended.stored),
    ])?;
    if let EventBody::Finished { outcome } = &last.body {
        finish_attempt(conn, &task, attempt, outcome, now)?;
    }
    let waiting = event_batches::rate_limit_change(&appended.stored);
    conn.prepare_cached(
        "UPDATE attempts SET acked_seq = ?, log_bytes = ?, reported_at = COALESCE(reported_at, ?),
                             rate_limited_until = CASE WHEN ? THEN ? ELSE rate_limited_until END
         WHERE task_id = ? AND attempt = ?",
    )?
    .execute(params![
        int(appended.acked_seq),
        int(log_bytes),
        appended.finished.then_some(now),
        waiting.is_some(),
        waiting.flatten(),
        task,
        attempt
    ])?;
    Ok(appended)
}

/// Ends the attempt as its runner reported, and the task with it when this attempt is the
/// task's current one. An attempt already ended (lost, say) keeps its state: late events
/// are stored but change nothing.
fn finish_attempt(
    conn: &Connection,
    task: &str,
    attempt: i64,
    outcome: &Outcome,
    now: UnixMillis,
) -> Result<(), StoreError> {
    let outcome_json = to_json(outcome);
    let ended = conn
        .prepare_cached(
            "UPDATE attempts SET state = ?, outcome = ?, finished_at = ?
             WHERE task_id = ? AND attempt = ? AND state IN ('assigned', 'running')",
        )?
        .execute(params![
            AttemptState::from(outcome.status).as_str(),
            outcome_json,
            now,
            task,
            attempt,
        ])?;
    if ended == 0 {
        return Ok(());
    }
    conn.prepare_cached(
        "UPDATE tasks SET state = ?, outcome = ?, finished_at = ?, updated_at = ?
         WHERE id = ? AND attempt = ? AND state IN ('assigned', 'running')",
    )?
    .execute(params![
        TaskState::from(outcome.status).as_str(),
        outcome_json,
        now,
        now,
        task,
        attempt,
    ])?;
    Ok(())
}
