//! Live fan-out of stored events to everyone following a task's log.
//!
//! Followers subscribe first, then read what is stored, then take live updates, skipping
//! seqs they already sent; a follower that lags re-reads from the store. So no line is
//! missed or repeated however the two race.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kiln_protocol::{Event, TaskId};
use tokio::sync::broadcast;

/// Updates buffered per task for slow followers before they must re-read the store.
const FOLLOWER_BUFFER: usize = 256;

/// Something that happened to a followed task.
#[derive(Clone, Debug)]
pub enum TaskUpdate {
    /// Events of an attempt were stored.
    Events {
        /// The attempt.
        attempt: u32,
        /// The events, in seq order.
        events: Arc<Vec<Event>>,
    },
    /// The task changed state on this replica (assigned, started, ended, requeued). Every
    /// event stored here was published as well, so followers need not re-read events.
    StateChanged,
    /// Anything may have changed, events too, without being published here (another
    /// replica's write, or notifications lost): followers re-read the store.
    Unknown,
}

/// Broadcast channels per followed task.
#[derive(Debug, Default)]
pub struct Watchers {
    channels: Mutex<HashMap<TaskId, broadcast::Sender<TaskUpdate>>>,
}

impl Watchers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TaskId, broadcast::Sender<TaskUpdate>>> {
        self.channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts following a task.
    pub fn subscribe(&self, task: TaskId) -> broadcast::Receiver<TaskUpdate> {
        self.lock()
            .entry(task)
            .or_insert_with(|| broadcast::channel(FOLLOWER_BUFFER).0)
            .subscribe()
    }

    /// Tells a task's followers, if any; drops channels nobody listens to.
    pub fn publish(&self, task: TaskId, update: TaskUpdate) {
        let mut channels = self.lock();
        if let Some(sender) = channels.get(&task) {
            if sender.send(update).is_err() {
                channels.remove(&task);
            }
        }
    }

    /// Tells every followed task's followers that it changed, so that they re-read the
    /// store: for updates that may have been missed (another replica's, while its
    /// notifications could not be heard).
    pub fn publish_all_changed(&self) {
        let mut channels = self.lock();
        channels.retain(|_, sender| sender.send(TaskUpdate::Unknown).is_ok());
    }
}
