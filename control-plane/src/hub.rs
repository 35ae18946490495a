//! The runners connected to this control plane right now, and the channel to each.
//!
//! The hub is memory only: the store says what runners exist, the hub says which are on
//! the line, how many slots each has free, and how to reach its socket. Sessions are keyed
//! by their own id so that an old socket's cleanup never removes a newer connection.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use kiln_protocol::{RunnerId, ServerMessage, SessionId, TaskId, UnixMillis};
use tokio::sync::{mpsc, Notify};

/// Frames queued for one runner's socket. A runner that lets this many pile up is stuck
/// and its session is closed rather than buffering without bound.
pub const OUTBOUND_QUEUE: usize = 1024;

/// An attempt, by task and number.
pub type AttemptKey = (TaskId, u32);

/// What the hub knows of one connected runner.
#[derive(Debug)]
pub struct Connection {
    /// This socket's session.
    pub session_id: SessionId,
    /// Name from hello.
    pub name: String,
    /// Capabilities from hello.
    pub capabilities: BTreeSet<String>,
    /// Labels from hello.
    pub labels: BTreeMap<String, String>,
    /// Slots from hello.
    pub max_concurrent: u32,
    /// Repositories the runner holds mirrors of.
    pub cached_projects: BTreeSet<String>,
    /// Attempts assigned to it and not yet ended.
    pub active: BTreeSet<AttemptKey>,
    /// When it last had no active attempt.
    pub idle_since: UnixMillis,
    /// It takes no new work.
    pub draining: bool,
    /// Queue to its socket.
    pub outbound: mpsc::Sender<ServerMessage>,
}

/// A connected runner as the scheduler sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunnerSlots {
    /// The runner.
    pub id: RunnerId,
    /// Its capabilities.
    pub capabilities: BTreeSet<String>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Attempts it runs now.
    pub running: u32,
    /// Slots it has free.
    pub free: u32,
    /// Repositories it has mirrors of.
    pub cached_projects: BTreeSet<String>,
    /// When it last became idle.
    pub idle_since: UnixMillis,
}

/// Live view of one connected runner, for the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveRunner {
    /// Current session.
    pub session_id: SessionId,
    /// Attempts it runs now.
    pub running: u32,
    /// It takes no new work.
    pub draining: bool,
}

/// The set of connected runners.
#[derive(Debug, Default)]
pub struct Hub {
    runners: Mutex<HashMap<RunnerId, Connection>>,
    /// When each disconnected runner that may still hold attempts left.
    departures: Mutex<HashMap<RunnerId, tokio::time::Instant>>,
    dispatch: Notify,
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RunnerId, Connection>> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.runners
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes `connection` the runner's live session, replacing (and so closing) any older.
    pub fn attach(&self, runner: RunnerId, connection: Connection) {
        self.lock().insert(runner, connection);
        self.departures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&runner);
        self.wake_dispatcher();
    }

    /// Forgets the runner's session, but only if `session` is still the live one.
    pub fn detach(&self, runner: RunnerId, session: SessionId) -> bool {
        let mut runners = self.lock();
        let is_live = runners
            .get(&runner)
            .is_some_and(|c| c.session_id == session);
        if is_live {
            runners.remove(&runner);
            self.mark_departed(runner, tokio::time::Instant::now());
        }
        is_live
    }

    /// Records that `runner` is away since `at` (unless already recorded earlier).
    pub fn mark_departed(&self, runner: RunnerId, at: tokio::time::Instant) {
        self.departures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(runner)
            .or_insert(at);
    }

    /// Since when `runner` has been away, if it is away.
    pub fn departed_at(&self, runner: RunnerId) -> Option<tokio::time::Instant> {
        self.departures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&runner)
            .copied()
    }

    /// Forgets a departure once its consequences were dealt with.
    pub fn forget_departure(&self, runner: RunnerId) {
        self.departures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&runner);
    }

    /// Queues a frame for a runner's socket. False if it is not connected or is stuck.
    pub fn send(&self, runner: RunnerId, message: ServerMessage) -> bool {
        let outbound = self.lock().get(&runner).map(|c| c.outbound.clone());
        outbound.is_some_and(|tx| tx.try_send(message).is_ok())
    }

    /// Counts an attempt against the runner's slots.
    pub fn reserve(&self, runner: RunnerId, attempt: AttemptKey) {
        if let Some(connection) = self.lock().get_mut(&runner) {
            connection.active.insert(attempt);
        }
    }

    /// Marks a runner as taking no new work.
    pub fn set_draining(&self, runner: RunnerId) {
        if let Some(connection) = self.lock().get_mut(&runner) {
            connection.draining = true;
        }
    }

    /// Frees the slot an attempt held, and wakes the dispatcher.
    pub fn release(&self, runner: RunnerId, attempt: AttemptKey, now: UnixMillis) {
        if let Some(connection) = self.lock().get_mut(&runner) {
            connection.active.remove(&attempt);
            if connection.active.is_empty() {
                connection.idle_since = now;
            }
        }
        self.wake_dispatcher();
    }

    /// Connected runners with their free slots.
    pub fn slots(&self) -> Vec<RunnerSlots> {
        self.lock()
            .iter()
            .map(|(id, c)| {
                let running = u32::try_from(c.active.len()).unwrap_or(u32::MAX);
                RunnerSlots {
                    id: *id,
                    capabilities: c.capabilities.clone(),
                    labels: c.labels.clone(),
                    running,
                    free: match c.draining {
                        true => 0,
                        false => c.max_concurrent.saturating_sub(running),
                    },
                    cached_projects: c.cached_projects.clone(),
                    idle_since: c.idle_since,
                }
            })
            .collect()
    }

    /// The live session of a runner, if connected.
    pub fn live(&self, runner: RunnerId) -> Option<LiveRunner> {
        self.lock().get(&runner).map(|c| LiveRunner {
            session_id: c.session_id,
            running: u32::try_from(c.active.len()).unwrap_or(u32::MAX),
            draining: c.draining,
        })
    }

    /// Asks the dispatcher to look at the queue. Wakes it at most once however often it is
    /// called before it runs.
    pub fn wake_dispatcher(&self) {
        self.dispatch.notify_one();
    }

    /// Waits until someone asks for a dispatch.
    pub async fn dispatch_wanted(&self) {
        self.dispatch.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(session_id: SessionId) -> (Connection, mpsc::Receiver<ServerMessage>) {
        let (outbound, rx) = mpsc::channel(4);
        let connection = Connection {
            session_id,
            name: "r".into(),
            capabilities: BTreeSet::new(),
            labels: BTreeMap::new(),
            max_concurrent: 2,
            cached_projects: BTreeSet::new(),
            active: BTreeSet::new(),
            idle_since: 0,
            draining: false,
            outbound,
        };
        (connection, rx)
    }

    #[test]
    fn old_session_cleanup_never_removes_a_newer_connection() {
        let hub = Hub::default();
        let runner = RunnerId::new();
        let (old_session, new_session) = (SessionId::new(), SessionId::new());
        let (old, _old_rx) = connection(old_session);
        let (new, _new_rx) = connection(new_session);
        hub.attach(runner, old);
        hub.attach(runner, new);
        assert!(!hub.detach(runner, old_session));
        assert_eq!(hub.live(runner).map(|l| l.session_id), Some(new_session));
        assert!(hub.detach(runner, new_session));
        assert!(hub.live(runner).is_none());
    }

    #[test]
    fn reserved_attempts_use_up_slots_until_released() {
        let hub = Hub::default();
        let runner = RunnerId::new();
        let (c, _rx) = connection(SessionId::new());
        hub.attach(runner, c);
        let task = TaskId::new();
        hub.reserve(runner, (task, 1));
        assert_eq!(hub.slots()[0].free, 1);
        hub.release(runner, (task, 1), 5);
        assert_eq!(hub.slots()[0].free, 2);
        assert_eq!(hub.slots()[0].idle_since, 5);
    }
}
