//! The runner's outbox: every event of every attempt until the control plane acknowledges
//! it. Events get their seq here; after a reconnect everything unacknowledged is sent
//! again, so nothing produced by an agent is lost to a dropped connection.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use kiln_protocol::limits::{MAX_BATCH_BYTES, MAX_EVENTS_PER_BATCH};
use kiln_protocol::{now_millis, Event, EventBody, RunningAttempt, TaskId};
use tokio::sync::Notify;

/// An attempt, by task and number.
pub type AttemptKey = (TaskId, u32);

/// One attempt's stream.
#[derive(Debug, Default)]
struct Stream {
    /// Seq of the last event produced.
    last_seq: u64,
    /// Highest seq the control plane stored.
    acked: u64,
    /// Highest seq sent on the current connection.
    sent: u64,
    /// Events with `acked < seq <= last_seq`, in order.
    unacked: VecDeque<Event>,
    /// The `finished` event has been produced.
    finished: bool,
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
    discarded: Mutex<std::collections::BTreeSet<AttemptKey>>,
    /// Signalled when there is something new to send, or a stream was fully acked.
    changed: Notify,
    /// Signalled when a stream is gone (fully acked or forgotten).
    drained: Notify,
}

impl Outbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<AttemptKey, Stream>> {
        self.streams
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts an attempt's stream, so that it is announced from now on.
    pub fn open(&self, key: AttemptKey) {
        self.lock().entry(key).or_default();
    }

    /// Appends an event to an attempt's stream and returns its seq.
    pub fn push(&self, key: AttemptKey, body: EventBody) -> u64 {
        if self
            .discarded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&key)
        {
            return 0;
        }
        let seq = {
            let mut streams = self.lock();
            let stream = streams.entry(key).or_default();
            stream.last_seq += 1;
            stream.finished |= matches!(body, EventBody::Finished { .. });
            let event = Event {
                seq: stream.last_seq,
                ts: now_millis(),
                body,
            };
            stream.unacked.push_back(event);
            stream.last_seq
        };
        self.changed.notify_one();
        seq
    }

    /// The control plane stored everything up to `seq`. A finished stream that is fully
    /// acknowledged is forgotten.
    pub fn ack(&self, key: AttemptKey, seq: u64) {
        let mut streams = self.lock();
        let Some(stream) = streams.get_mut(&key) else {
            return;
        };
        let seq = seq.min(stream.last_seq);
        if seq > stream.acked {
            stream.acked = seq;
            stream.sent = stream.sent.max(seq);
            while stream.unacked.front().is_some_and(|e| e.seq <= seq) {
                stream.unacked.pop_front();
            }
        }
        if stream.finished && stream.acked == stream.last_seq {
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
        self.lock().remove(&key);
        self.drained.notify_waiters();
    }

    /// A new connection starts: everything unacknowledged is unsent again.
    pub fn rewind(&self) {
        for stream in self.lock().values_mut() {
            stream.sent = stream.acked;
        }
        self.changed.notify_one();
    }

    /// Takes up to `max_batches` batches to send (each within the protocol's batch limits)
    /// and marks them sent. If more remain, `changed` fires again.
    pub fn take_unsent(&self, max_batches: usize) -> Vec<Batch> {
        let mut batches = Vec::new();
        let mut more = false;
        for (key, stream) in self.lock().iter_mut() {
            while stream.sent < stream.last_seq {
                if batches.len() == max_batches {
                    more = true;
                    break;
                }
                let mut events = Vec::new();
                let mut bytes = 0;
                for event in stream.unacked.iter().filter(|e| e.seq > stream.sent) {
                    let size = event_size(event);
                    if !events.is_empty()
                        && (events.len() == MAX_EVENTS_PER_BATCH || bytes + size > MAX_BATCH_BYTES)
                    {
                        break;
                    }
                    bytes += size;
                    events.push(event.clone());
                }
                let Some(last) = events.last() else { break };
                stream.sent = last.seq;
                batches.push(Batch { key: *key, events });
            }
        }
        if more {
            self.changed.notify_one();
        }
        batches
    }

    /// The attempts to announce in hello, with the last seq of each.
    pub fn announce(&self) -> Vec<RunningAttempt> {
        self.lock()
            .iter()
            .map(|((task_id, attempt), stream)| RunningAttempt {
                task_id: *task_id,
                attempt: *attempt,
                last_seq: stream.last_seq,
            })
            .collect()
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

/// Approximate encoded size: the line text dominates.
fn event_size(event: &Event) -> usize {
    match &event.body {
        EventBody::Log(line) => line.line.len() * 2 + 64,
        _ => 512,
    }
}

#[cfg(test)]
mod tests {
    use kiln_protocol::{LogLine, Outcome, OutcomeStatus};

    use super::*;

    fn log(text: &str) -> EventBody {
        EventBody::Log(LogLine::system(text))
    }

    fn finished() -> EventBody {
        EventBody::Finished {
            outcome: Outcome {
                status: OutcomeStatus::Succeeded,
                exit_code: Some(0),
                signal: None,
                message: String::new(),
                result: None,
            },
        }
    }

    fn seqs(batches: &[Batch]) -> Vec<u64> {
        batches
            .iter()
            .flat_map(|b| b.events.iter().map(|e| e.seq))
            .collect()
    }

    #[test]
    fn seqs_count_from_one_and_are_sent_once_per_connection() {
        let outbox = Outbox::default();
        let key = (TaskId::new(), 1);
        assert_eq!(outbox.push(key, log("a")), 1);
        assert_eq!(outbox.push(key, log("b")), 2);
        assert_eq!(seqs(&outbox.take_unsent(usize::MAX)), [1, 2]);
        assert!(outbox.take_unsent(usize::MAX).is_empty());
    }

    #[test]
    fn rewind_resends_exactly_the_unacked() {
        let outbox = Outbox::default();
        let key = (TaskId::new(), 1);
        for text in ["a", "b", "c"] {
            outbox.push(key, log(text));
        }
        outbox.take_unsent(usize::MAX);
        outbox.ack(key, 1);
        outbox.rewind();
        assert_eq!(seqs(&outbox.take_unsent(usize::MAX)), [2, 3]);
    }

    #[test]
    fn finished_stream_is_forgotten_once_fully_acked() {
        let outbox = Outbox::default();
        let key = (TaskId::new(), 2);
        outbox.push(key, log("a"));
        outbox.push(key, finished());
        outbox.ack(key, 1);
        assert_eq!(outbox.announce().len(), 1);
        outbox.ack(key, 2);
        assert!(outbox.is_empty());
    }

    #[test]
    fn batches_respect_the_event_limit() {
        let outbox = Outbox::default();
        let key = (TaskId::new(), 1);
        for _ in 0..(MAX_EVENTS_PER_BATCH + 5) {
            outbox.push(key, log("x"));
        }
        let batches = outbox.take_unsent(usize::MAX);
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].events.len(), MAX_EVENTS_PER_BATCH);
        assert_eq!(
            seqs(&batches),
            (1..=(MAX_EVENTS_PER_BATCH as u64 + 5)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn announce_lists_open_streams_with_last_seq() {
        let outbox = Outbox::default();
        let key = (TaskId::new(), 1);
        outbox.open(key);
        assert_eq!(outbox.announce()[0].last_seq, 0);
        outbox.push(key, log("a"));
        assert_eq!(outbox.announce()[0].last_seq, 1);
    }
}
