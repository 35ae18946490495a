//! Backend-neutral rules for storing events: which of a batch are new, the per-attempt log
//! cap, and the NDJSON chunk that holds them.

use kiln_protocol::{Event, EventBody, LineEncoding, LogLine, RunnerId, TaskId, UnixMillis};

use super::rows::to_json;
use super::{Appended, StoreError};

/// The new events of a batch, given what the attempt has stored so far.
#[derive(Debug)]
pub struct Accepted {
    /// What the caller is told.
    pub appended: Appended,
    /// Log bytes stored for the attempt, these events included.
    pub log_bytes: u64,
}

/// An attempt's row as read before appending to it: its runner, the last seq stored, the
/// log bytes stored, and whether its `finished` event is stored (`reported_at IS NOT
/// NULL`).
pub type AttemptRow = (String, i64, i64, bool);

/// The new events of a batch from `runner` for the attempt `key`, whose row is `row`:
/// refused when the attempt does not exist, is another runner's, or has reported
/// `finished` already (resends of what is stored are still acknowledged).
pub fn accept_from(
    key: (TaskId, u32),
    runner: RunnerId,
    row: Option<AttemptRow>,
    events: Vec<Event>,
    log_cap: u64,
) -> Result<Accepted, StoreError> {
    let (task, attempt) = key;
    let Some((owner, acked, log_bytes, reported)) = row else {
        return Err(StoreError::NotFound {
            what: "attempt",
            id: format!("{task}/{attempt}"),
        });
    };
    if owner != runner.to_string() {
        return Err(StoreError::NotYours {
            task: task.to_string(),
            attempt,
            runner: runner.to_string(),
        });
    }
    let acked = u64::try_from(acked).unwrap_or(0);
    if reported && events.iter().any(|event| event.seq > acked) {
        return Err(StoreError::Ended {
            task: task.to_string(),
            attempt,
            what: "events".to_owned(),
        });
    }
    Ok(accept(
        events,
        acked,
        u64::try_from(log_bytes).unwrap_or(0),
        log_cap,
    ))
}

/// Takes the events that extend the stored prefix (`1..=acked`) contiguously: resends are
/// skipped, a gap stops the batch (the runner resends the rest), and nothing follows
/// `finished`. Log text beyond `log_cap` bytes per attempt is replaced by a marker.
pub fn accept(events: Vec<Event>, acked: u64, log_bytes: u64, log_cap: u64) -> Accepted {
    let mut accepted = Accepted {
        appended: Appended {
            acked_seq: acked,
            ..Appended::default()
        },
        log_bytes,
    };
    let appended = &mut accepted.appended;
    appended.stored.reserve(events.len());
    for event in events {
        if event.seq <= appended.acked_seq {
            continue; // already stored: a resend after reconnect
        }
        if event.seq != appended.acked_seq + 1 {
            break; // a gap: keep the stored prefix contiguous; the runner resends the rest
        }
        appended.acked_seq = event.seq;
        let finished = event.is_finished();
        appended
            .stored
            .push(capped(event, &mut accepted.log_bytes, log_cap));
        if finished {
            appended.finished = true;
            break; // nothing follows `finished`
        }
    }
    accepted
}

/// The event as stored: a log line past the attempt's byte cap keeps its place (seq) but
/// not its text.
fn capped(mut event: Event, log_bytes: &mut u64, cap: u64) -> Event {
    let EventBody::Log(line) = &event.body else {
        return event;
    };
    let size = line.line.len() as u64;
    if *log_bytes + size <= cap {
        *log_bytes += size;
        return event;
    }
    event.body = EventBody::Log(LogLine {
        stream: line.stream,
        line: format!("[kiln: line dropped: the attempt's log is over {cap} bytes]"),
        encoding: LineEncoding::Utf8,
        truncated: true,
    });
    event
}

/// One chunk's body: the events as NDJSON, one per line.
pub fn encode(events: &[Event]) -> String {
    let mut body = String::with_capacity(events.len() * 160);
    for event in events {
        body.push_str(&to_json(event));
        body.push('\n');
    }
    body
}

/// Adds the events of a chunk with `seq > after_seq` to `out`, up to `limit` in all.
pub fn decode_into(
    body: &str,
    after_seq: u64,
    limit: usize,
    out: &mut Vec<Event>,
) -> Result<(), StoreError> {
    for line in body.lines() {
        let event: Event = serde_json::from_str(line).map_err(|e| StoreError::Corrupt {
            table: "event_chunks",
            detail: format!("column body: {e}"),
        })?;
        if event.seq > after_seq && out.len() < limit {
            out.push(event);
        }
    }
    Ok(())
}

/// Chunks read per query while collecting events.
pub const CHUNKS_PER_READ: i64 = 16;

/// What `stored` says of the agent's rate-limit wait: `Some(until)` when its last status
/// event changes it (`Some(None)`: it no longer waits), `None` when it says nothing.
pub fn rate_limit_change(stored: &[Event]) -> Option<Option<UnixMillis>> {
    stored.iter().rev().find_map(|event| match &event.body {
        EventBody::Status { phase, until } => Some(match phase {
            kiln_protocol::Phase::RateLimited => *until,
            _ => None,
        }),
        EventBody::Finished { .. } => Some(None),
        _ => None,
    })
}
