//! Backpressure: while the control plane is connected, an agent whose unacknowledged
//! events fill the outbox's room waits (its output is not read) until acks make room,
//! instead of its events being spilled to disk and read back. Writing and re-reading
//! spilled events cost more than the rest of the runner's work per line (NOTES: logs
//! ran 30% faster without spilling). While the link is down nothing waits: the agent
//! never stalls on an absent control plane, and its events spill as before.

use std::sync::atomic::Ordering;

use super::{AttemptKey, Outbox, Stream};

/// Unacknowledged in-memory events of one attempt beyond which its agent waits: twice
/// what the window has in flight (4 batches of 4,096), so a full batch is always ready,
/// and half the spill bound, so lines that arrive while the agent waits never spill.
pub const ROOM_EVENTS: usize = 32 * 1024;

/// The same in bytes (estimated encoded size): half the spill bound, as for events.
pub const ROOM_BYTES: usize = 8 * 1024 * 1024;

/// While held, the outbox's link is up: agents wait for room. Dropped when the session
/// ends, however it ends.
#[derive(Debug)]
#[must_use = "the link is down again when this is dropped"]
pub struct LinkUp<'a> {
    outbox: &'a Outbox,
}

impl Drop for LinkUp<'_> {
    fn drop(&mut self) {
        self.outbox.link_up.store(false, Ordering::Release);
        self.outbox.room.notify_waiters();
    }
}

impl Stream {
    fn has_room(&self) -> bool {
        self.memory.len() < ROOM_EVENTS && self.memory_bytes < ROOM_BYTES
    }
}

impl Outbox {
    /// Marks the link to the control plane up until the guard is dropped.
    pub fn link_up(&self) -> LinkUp<'_> {
        self.link_up.store(true, Ordering::Release);
        LinkUp { outbox: self }
    }

    /// True when the attempt may add events now: the link is down, or its unacknowledged
    /// events are under the room bounds.
    pub fn has_room(&self, key: AttemptKey) -> bool {
        !self.link_up.load(Ordering::Acquire) || self.lock().get(&key).is_none_or(Stream::has_room)
    }

    /// Waits until [`Outbox::has_room`] holds for the attempt.
    pub async fn room(&self, key: AttemptKey) {
        loop {
            let made = self.room.notified();
            tokio::pin!(made);
            made.as_mut().enable();
            if self.has_room(key) {
                return;
            }
            made.await;
        }
    }

    /// Wakes waiting agents if an ack left `stream` with room.
    pub(super) fn after_ack(&self, stream: &Stream) {
        if stream.has_room() {
            self.room.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests;
