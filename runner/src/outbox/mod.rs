//! The runner's outbox: every event of every attempt until the control plane acknowledges
//! it. Events get their seq here; after a reconnect everything unacknowledged is sent
//! again, so nothing an agent prints is lost to a dropped connection.
//!
//! Unacknowledged events stay in memory up to a bound per attempt; beyond it they spill to
//! segment files in the spool directory (written atomically). At exit, whatever is still
//! unacknowledged is spilled too, and a restarted runner recovers it and delivers it.

mod batch;
mod room;
mod spool;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use kiln_protocol::{now_millis, Event, EventBody, HeldState, RunningAttempt, TaskId};
use tokio::sync::Notify;

use batch::{event_size, next_batch};
pub use room::LinkUp;
use spool::Segment;

/// An attempt, by task and number.
pub type AttemptKey = (TaskId, u32);

/// Unacknowledged events an attempt keeps in memory before spilling to disk: a quarter
/// second of the fastest agent output the control plane takes (250k lines/s), and
/// minutes of a chatty agent while it is unreachable. A connected runner gets here only if
/// acks stop for 30 s: its agents wait at half this (`room.rs`, `attempt/gate.rs`).
const MEMORY_EVENTS_PER_ATTEMPT: usize = 64 * 1024;

/// Unacknowledged bytes (estimated encoded size) an attempt keeps in memory before spilling.
const MEMORY_BYTES_PER_ATTEMPT: usize = 16 * 1024 * 1024;

/// Batches of one attempt sent and not yet acknowledged. While the window is full, new
/// events wait and join the next batch: an agent printing fast gets large batches (one
/// store commit each) and a quiet one gets each line sent at once. Four batches of up to
/// 4,096 events keep a 100 ms link carrying ~160k lines/s per attempt.
pub const BATCHES_IN_FLIGHT: usize = 4;

/// One attempt's stream. Unacked events are `segments` (older) then `memory` (newer).
#[derive(Debug)]
struct Stream {
    last_seq: u64,
    acked: u64,
    sent: u64,
    segments: VecDeque<Segment>,
    memory: VecDeque<Event>,
    memory_bytes: usize,
    held: HeldState,
    /// The parsed events of the segment being sent, so that a segment is read once, not
    /// once per batch.
    loaded: Option<Loaded>,
    /// Last seq of each batch sent and not yet acknowledged, oldest first.
    in_flight: VecDeque<u64>,
}

/// A segment read back from disk.
#[derive(Debug)]
struct Loaded {
    last: u64,
    events: Vec<Event>,
}

impl Default for Stream {
    fn default() -> Self {
        Self {
            last_seq: 0,
            acked: 0,
            sent: 0,
            segments: VecDeque::new(),
            memory: VecDeque::new(),
            memory_bytes: 0,
            held: HeldState::Running,
            loaded: None,
            in_flight: VecDeque::new(),
        }
    }
}

impl Stream {
    /// True once nothing remains to deliver and nothing more will come.
    fn is_done(&self) -> bool {
        self.held != HeldState::Running && self.acked == self.last_seq
    }
}

/// A batch ready to send: the events of one attempt.
#[derive(Debug, PartialEq)]
pub struct Batch {
    /// The attempt.
    pub key: AttemptKey,
    /// Its next unsent events.
    pub events: Vec<Event>,
}

/// Unacknowledged events of all attempts.
#[derive(Debug, Default)]
pub struct Outbox {
    streams: Mutex<BTreeMap<AttemptKey, Stream>>,
    /// Attempts the control plane will never accept: their events are dropped.
    discarded: Mutex<BTreeSet<AttemptKey>>,
    /// Where spilled segments go; `None` keeps everything in memory.
    spool: Option<PathBuf>,
    /// Signalled when there is something new to send.
    changed: Notify,
    /// Signalled when a stream is gone (fully acked or forgotten).
    drained: Notify,
    /// True while a session with the control plane is up (see `room.rs`).
    link_up: AtomicBool,
    /// Signalled when an ack makes room or the link goes down.
    room: Notify,
    /// Events written to spool files since start.
    spilled: AtomicU64,
}

impl Outbox {
    /// An outbox that spills to `dir`, recovering what an earlier run left there. Recovered
    /// attempts whose `finished` never came are `abandoned`: their agent died with the
    /// earlier runner process.
    pub fn with_spool(dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let mut streams: BTreeMap<AttemptKey, Stream> = BTreeMap::new();
        for (key, segment) in spool::scan(&dir)? {
            let stream = streams.entry(key).or_default();
            if stream.segments.is_empty() {
                stream.acked = segment.first.saturating_sub(1);
                stream.sent = stream.acked;
            }
            stream.last_seq = segment.last;
            stream.segments.push_back(segment);
        }
        for (key, stream) in &mut streams {
            let finished = stream
                .segments
                .back()
                .and_then(|s| spool::read(s).ok())
                .and_then(|events| events.last().map(Event::is_finished))
                .unwrap_or(false);
            stream.held = if finished {
                HeldState::Finished
            } else {
                HeldState::Abandoned
            };
            tracing::info!(task = %key.0, attempt = key.1, last_seq = stream.last_seq,
                held = ?stream.held, "recovered undelivered events from the spool");
        }
        Ok(Self {
            streams: Mutex::new(streams),
            spool: Some(dir),
            ..Self::default()
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<AttemptKey, Stream>> {
        self.streams
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts an attempt's stream, so that it is announced from now on.
    pub fn open(&self, key: AttemptKey) {
        self.lock().entry(key).or_default();
    }

    /// Appends an event to an attempt's stream and returns its seq (0 if the attempt's
    /// events are discarded).
    pub fn push(&self, key: AttemptKey, body: EventBody) -> u64 {
        if self
            .discarded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&key)
        {
            return 0;
        }
        let (seq, sendable) = {
            let mut streams = self.lock();
            let stream = streams.entry(key).or_default();
            stream.last_seq += 1;
            if matches!(body, EventBody::Finished { .. }) {
                stream.held = HeldState::Finished;
            }
            let event = Event {
                seq: stream.last_seq,
                ts: now_millis(),
                body,
            };
            stream.memory_bytes += event_size(&event);
            stream.memory.push_back(event);
            if stream.memory.len() > MEMORY_EVENTS_PER_ATTEMPT
                || stream.memory_bytes > MEMORY_BYTES_PER_ATTEMPT
            {
                self.spill(key, stream);
            }
            (stream.last_seq, stream.in_flight.len() < BATCHES_IN_FLIGHT)
        };
        // With the window full, the sender has nothing to take: the ack that opens the
        // window wakes it (a wake per event would spin it while a fast agent prints).
        if sendable {
            self.changed.notify_one();
        }
        seq
    }

    /// Moves a stream's in-memory events to a segment file. On a write failure they stay
    /// in memory: better to use memory than to lose events.
    fn spill(&self, key: AttemptKey, stream: &mut Stream) {
        let Some(dir) = &self.spool else { return };
        if stream.memory.is_empty() {
            return;
        }
        let events: Vec<Event> = stream.memory.iter().cloned().collect();
        match spool::write(dir, key, &events) {
            Ok(segment) => {
                self.spilled
                    .fetch_add(events.len() as u64, Ordering::Relaxed);
                stream.segments.push_back(segment);
                stream.memory.clear();
                stream.memory_bytes = 0;
            }
            Err(e) => {
                tracing::error!(dir = %dir.display(), error = %e, "cannot spill events to disk; keeping them in memory")
            }
        }
    }

    /// Writes every unacknowledged event to disk, for a restarted runner to deliver.
    pub fn persist(&self) {
        let mut streams = self.lock();
        for (key, stream) in streams.iter_mut() {
            self.spill(*key, stream);
        }
    }

    /// The control plane stored everything up to `seq`. A finished or abandoned stream that
    /// is fully acknowledged is forgotten, with its segment files.
    pub fn ack(&self, key: AttemptKey, seq: u64) {
        let mut streams = self.lock();
        let Some(stream) = streams.get_mut(&key) else {
            return;
        };
        let seq = seq.min(stream.last_seq);
        if seq > stream.acked {
            stream.acked = seq;
            stream.sent = stream.sent.max(seq);
            while stream.memory.front().is_some_and(|e| e.seq <= seq) {
                if let Some(event) = stream.memory.pop_front() {
                    stream.memory_bytes = stream.memory_bytes.saturating_sub(event_size(&event));
                }
            }
            while stream.segments.front().is_some_and(|s| s.last <= seq) {
                if let Some(segment) = stream.segments.pop_front() {
                    let _ = std::fs::remove_file(&segment.path);
                }
            }
            if stream.loaded.as_ref().is_some_and(|l| l.last <= seq) {
                stream.loaded = None;
            }
            let window_was_full = stream.in_flight.len() >= BATCHES_IN_FLIGHT;
            while stream.in_flight.front().is_some_and(|&last| last <= seq) {
                stream.in_flight.pop_front();
            }
            if window_was_full && stream.sent < stream.last_seq {
                self.changed.notify_one();
            }
            self.after_ack(stream);
        }
        if stream.is_done() {
            streams.remove(&key);
            drop(streams);
            self.drained.notify_waiters();
        }
    }

    /// Drops an attempt's stream that the control plane will never accept, now and later.
    pub fn forget(&self, key: AttemptKey) {
        self.discarded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key);
        if let Some(stream) = self.lock().remove(&key) {
            for segment in stream.segments {
                let _ = std::fs::remove_file(&segment.path);
            }
        }
        self.drained.notify_waiters();
        self.room.notify_waiters();
    }

    /// A new connection starts: everything unacknowledged is unsent again.
    pub fn rewind(&self) {
        for stream in self.lock().values_mut() {
            stream.sent = stream.acked;
            stream.in_flight.clear();
        }
        self.changed.notify_one();
    }

    /// Takes up to `max_batches` batches to send (each within the protocol's batch limits,
    /// and at most [`BATCHES_IN_FLIGHT`] unacknowledged per attempt) and marks them sent.
    /// If more could be sent now, `changed` fires again; an ack that opens the window
    /// fires it too.
    pub fn take_unsent(&self, max_batches: usize) -> Vec<Batch> {
        let mut batches = Vec::new();
        let mut more = false;
        for (key, stream) in self.lock().iter_mut() {
            while stream.sent < stream.last_seq && stream.in_flight.len() < BATCHES_IN_FLIGHT {
                if batches.len() == max_batches {
                    more = true;
                    break;
                }
                let events = next_batch(stream);
                let Some(last) = events.last() else { break };
                stream.sent = last.seq;
                stream.in_flight.push_back(last.seq);
                batches.push(Batch { key: *key, events });
            }
        }
        if more {
            self.changed.notify_one();
        }
        batches
    }

    /// The attempts to announce in hello: last seq and whether each still runs.
    pub fn announce(&self) -> Vec<RunningAttempt> {
        self.lock()
            .iter()
            .map(|((task_id, attempt), stream)| RunningAttempt {
                task_id: *task_id,
                attempt: *attempt,
                last_seq: stream.last_seq,
                state: stream.held,
            })
            .collect()
    }

    /// Events written to spool files since start: while the control plane was away, after
    /// 30 s without an ack (`attempt/gate.rs`), or at exit.
    pub fn spilled(&self) -> u64 {
        self.spilled.load(Ordering::Relaxed)
    }

    /// True when no attempt has events waiting for acknowledgement.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Waits until there may be something new to send.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Waits until every stream is fully acknowledged.
    pub async fn wait_empty(&self) {
        loop {
            let drained = self.drained.notified();
            if self.is_empty() {
                return;
            }
            drained.await;
        }
    }
}

#[cfg(test)]
mod tests;
