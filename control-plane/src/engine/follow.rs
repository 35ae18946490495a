//! Following a task's events: catch up from the store, then forward live events straight
//! from memory, going back to the store on a gap, lag or an attempt's end, and on to the
//! next attempt, until the task ends (`kiln logs -f`, the dashboard's live log).

use bytes::Bytes;
use kiln_protocol::{Event, TaskId};
use tokio::sync::{broadcast, mpsc};

use super::Engine;
use crate::model::{AttemptState, TaskRecord};
use crate::store::StoreError;
use crate::watchers::TaskUpdate;

/// Events read from the store per query while catching up.
const PAGE: u32 = 1000;

/// Bytes of NDJSON gathered into one chunk of the response body.
const CHUNK_BYTES: usize = 64 * 1024;

/// [`crate::api_types::AttemptEvent`] borrowing its event, to encode without a copy.
#[derive(serde::Serialize)]
struct AttemptEventRef<'a> {
    attempt: u32,
    #[serde(flatten)]
    event: &'a Event,
}

/// Where a follower is in the task's event streams.
#[derive(Debug)]
pub struct Cursor {
    /// The attempt followed.
    pub attempt: u32,
    /// The last seq sent.
    pub after_seq: u64,
    /// The attempt's `finished` event was sent.
    pub finished: bool,
}

/// One client following one task.
#[derive(Debug)]
pub struct Follower {
    /// The engine whose store and watchers it reads.
    pub engine: Engine,
    /// The task followed.
    pub task_id: TaskId,
    /// Keep going until the task ends (otherwise stop after the catch-up).
    pub follow: bool,
    /// Where NDJSON chunks go.
    pub lines: mpsc::Sender<Bytes>,
}

/// Why a follower stopped: the client left or the server is stopping.
#[derive(Debug)]
struct Stopped;

impl Follower {
    /// Streams from `cursor` on. `known` is the task as read after `updates` was
    /// subscribed: any later change is in `updates`, so it is as good as a read made after
    /// the first catch-up, and saves one.
    pub async fn run(
        self,
        mut cursor: Cursor,
        mut updates: broadcast::Receiver<TaskUpdate>,
        known: TaskRecord,
    ) -> Result<(), StoreError> {
        let mut known = Some(known);
        loop {
            if self.catch_up(&mut cursor).await?.is_err() || !self.follow {
                return Ok(());
            }
            let task = match known.take() {
                Some(task) => task,
                None => match self.engine.store.task(self.task_id).await? {
                    Some(task) => task,
                    None => return Ok(()),
                },
            };
            let moved_on = task.attempt > cursor.attempt
                && (cursor.finished
                    || task.state.is_terminal()
                    || self.ended_unfinished(cursor.attempt).await?);
            if moved_on {
                // One more read: the attempt's last events were stored before it ended,
                // and that may have been after the catch-up above.
                if self.catch_up(&mut cursor).await?.is_err() {
                    return Ok(());
                }
                cursor = Cursor {
                    attempt: cursor.attempt + 1,
                    after_seq: 0,
                    finished: false,
                };
                continue;
            }
            if task.state.is_terminal() && task.attempt <= cursor.attempt {
                // One more read: the final events are stored before the state changes.
                let _ = self.catch_up(&mut cursor).await?;
                return Ok(());
            }
            // Live: forward contiguous events straight from memory, and read the task alone
            // when only its state changed; anything else (a gap, lag, an unknown change,
            // the attempt's or the task's end) goes back to the store.
            loop {
                tokio::select! {
                    update = updates.recv() => match update {
                        Ok(TaskUpdate::Events { attempt, events }) if attempt == cursor.attempt => {
                            if !self.send_live(&mut cursor, &events).await? {
                                break;
                            }
                        }
                        Ok(TaskUpdate::StateChanged) => {
                            let Some(task) = self.engine.store.task(self.task_id).await? else {
                                return Ok(());
                            };
                            if task.state.is_terminal() || task.attempt > cursor.attempt {
                                known = Some(task);
                                break;
                            }
                        }
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => break,
                        Err(broadcast::error::RecvError::Closed) => return Ok(()),
                    },
                    () = self.lines.closed() => return Ok(()),
                    () = self.engine.shutdown.cancelled() => return Ok(()),
                }
            }
        }
    }

    /// True when `attempt` is over though no `finished` event of it was seen: lost with its
    /// runner, or rejected. Its successor is then the attempt to follow.
    async fn ended_unfinished(&self, attempt: u32) -> Result<bool, StoreError> {
        let record = self.engine.store.attempt(self.task_id, attempt).await?;
        Ok(record
            .is_some_and(|r| !matches!(r.state, AttemptState::Assigned | AttemptState::Running)))
    }

    /// Sends every stored event after the cursor.
    async fn catch_up(&self, cursor: &mut Cursor) -> Result<Result<(), Stopped>, StoreError> {
        loop {
            let page = self
                .engine
                .store
                .events(self.task_id, cursor.attempt, cursor.after_seq, PAGE)
                .await?;
            if self.send(cursor, &page).await.is_err() {
                return Ok(Err(Stopped));
            }
            if page.len() < PAGE as usize {
                return Ok(Ok(()));
            }
        }
    }

    /// Sends live events that continue the cursor exactly. Ok(false) means "read the
    /// store": there was a gap, or the attempt finished.
    async fn send_live(&self, cursor: &mut Cursor, events: &[Event]) -> Result<bool, StoreError> {
        // Events come in seq order: the fresh ones are a suffix.
        let fresh = &events[events.partition_point(|e| e.seq <= cursor.after_seq)..];
        match fresh.first() {
            None => Ok(true),
            Some(first) if first.seq == cursor.after_seq + 1 => {
                if self.send(cursor, fresh).await.is_err() {
                    return Ok(false);
                }
                Ok(!cursor.finished)
            }
            Some(_) => Ok(false),
        }
    }

    /// Sends `events` to the client as NDJSON, many lines per chunk: one channel send and
    /// one body write per chunk, not per line.
    async fn send(&self, cursor: &mut Cursor, events: &[Event]) -> Result<(), Stopped> {
        let mut chunk = Vec::with_capacity(CHUNK_BYTES);
        for event in events {
            let line = AttemptEventRef {
                attempt: cursor.attempt,
                event,
            };
            if serde_json::to_writer(&mut chunk, &line).is_err() {
                continue;
            }
            chunk.push(b'\n');
            cursor.after_seq = event.seq;
            cursor.finished |= event.is_finished();
            if chunk.len() >= CHUNK_BYTES {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_BYTES));
                self.lines
                    .send(Bytes::from(full))
                    .await
                    .map_err(|_| Stopped)?;
            }
        }
        if !chunk.is_empty() {
            self.lines
                .send(Bytes::from(chunk))
                .await
                .map_err(|_| Stopped)?;
        }
        Ok(())
    }
}
