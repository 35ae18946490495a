//! The runners connected to this control plane right now, and the channel to each.
//!
//! The hub is memory only: the store says what runners exist, the hub says which are on
//! the line, how many slots each has free, and how to reach its socket. Connections are keyed
//! by their own id so that an old socket's cleanup never removes a newer connection.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kiln_protocol::{CloseCode, ConnectionId, RunnerId, ServerMessage, TaskId, UnixMillis};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use crate::scheduler::RunnerSlots;

/// Frames queued for one runner's socket. A runner that lets this many pile up is stuck
/// and its connection is closed rather than buffering without bound.
pub const OUTBOUND_QUEUE: usize = 1024;

/// How long a runner that rejected a task is passed over for that task. Long enough that a
/// runner with a full disk is not offered the task again and again; short enough that it
/// gets another chance once an operator fixed it.
pub const REJECTION_MEMORY: Duration = Duration::from_secs(300);

/// An attempt, by task and number.
pub type AttemptKey = (TaskId, u32);

/// What a connection is asked to do by the rest of the control plane.
#[derive(Clone, Debug, PartialEq)]
pub enum Outbound {
    /// Send this frame.
    Message(ServerMessage),
    /// Close the socket with this code and reason.
    Close(CloseCode, String),
}

/// What the hub knows of one connected runner.
#[derive(Debug)]
pub struct Connection {
    /// This socket's connection.
    pub connection_id: ConnectionId,
    /// Name from hello.
    pub name: String,
    /// Capabilities it was registered with, or an operator gave it (never its hello's).
    pub capabilities: BTreeSet<String>,
    /// Labels it was registered with, or an operator gave it (never its hello's).
    pub labels: BTreeMap<String, String>,
    /// Slots from hello.
    pub max_concurrent: u32,
    /// Repositories the runner holds mirrors of.
    pub cached_projects: BTreeSet<String>,
    /// Attempts assigned to it and not yet ended.
    pub active: BTreeSet<AttemptKey>,
    /// When it last had no active attempt.
    pub idle_since: UnixMillis,
    /// It takes no new work (it said so).
    pub draining: bool,
    /// An operator paused it.
    pub paused: bool,
    /// It lives in a sandbox: it runs only its sandbox's task.
    pub sandbox: bool,
    /// When its last frame arrived.
    pub last_frame: Instant,
    /// Queue to its socket.
    pub outbound: mpsc::Sender<Outbound>,
}

/// Live view of one connected runner, for the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveRunner {
    /// Current connection.
    pub connection_id: ConnectionId,
    /// Attempts it runs now.
    pub running: u32,
    /// It takes no new work.
    pub draining: bool,
    /// An operator paused it.
    pub paused: bool,
    /// Repositories it mirrors.
    pub cached_projects: BTreeSet<String>,
}

/// The set of connected runners.
#[derive(Debug, Default)]
pub struct Hub {
    runners: Mutex<HashMap<RunnerId, Connection>>,
    /// When each disconnected runner that may still hold attempts left.
    departures: Mutex<HashMap<RunnerId, Instant>>,
    /// Runners that rejected a task, and when.
    rejections: Mutex<HashMap<TaskId, Vec<(RunnerId, Instant)>>>,
    dispatch: Notify,
    /// Held by whoever places tasks on free slots (the dispatcher, or a submit placing its
    /// own task) from reading the slots until the attempts are reserved, so that two
    /// placers never fill the same slot.
    placing: Arc<tokio::sync::Mutex<()>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep serving.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Hub {
    /// Makes `connection` the runner's live connection, replacing (and so closing) any older.
    pub fn attach(&self, runner: RunnerId, connection: Connection) {
        lock(&self.runners).insert(runner, connection);
        lock(&self.departures).remove(&runner);
        self.wake_dispatcher();
    }

    /// Forgets the runner's connection, but only if `connection` is still the live one.
    pub fn detach(&self, runner: RunnerId, connection: ConnectionId) -> bool {
        let mut runners = lock(&self.runners);
        let is_live = runners
            .get(&runner)
            .is_some_and(|c| c.connection_id == connection);
        if is_live {
            runners.remove(&runner);
            self.mark_departed(runner, Instant::now());
        }
        is_live
    }

    /// Records that `runner` is away since `at` (unless already recorded earlier).
    pub fn mark_departed(&self, runner: RunnerId, at: Instant) {
        lock(&self.departures).entry(runner).or_insert(at);
    }

    /// Since when `runner` has been away, if it is away.
    pub fn departed_at(&self, runner: RunnerId) -> Option<Instant> {
        lock(&self.departures).get(&runner).copied()
    }

    /// Forgets a departure once its consequences were dealt with.
    pub fn forget_departure(&self, runner: RunnerId) {
        lock(&self.departures).remove(&runner);
    }

    fn queue(&self, runner: RunnerId, outbound: Outbound) -> bool {
        let sender = lock(&self.runners).get(&runner).map(|c| c.outbound.clone());
        sender.is_some_and(|tx| tx.try_send(outbound).is_ok())
    }

    /// Queues a frame for a runner's socket. False if it is not connected or is stuck.
    pub fn send(&self, runner: RunnerId, message: ServerMessage) -> bool {
        self.queue(runner, Outbound::Message(message))
    }

    /// Asks a runner's connection to close with `code`.
    pub fn close(&self, runner: RunnerId, code: CloseCode, reason: &str) -> bool {
        self.queue(runner, Outbound::Close(code, reason.to_owned()))
    }

    /// Records that a frame arrived from the runner.
    pub fn touch(&self, runner: RunnerId) {
        if let Some(connection) = lock(&self.runners).get_mut(&runner) {
            connection.last_frame = Instant::now();
        }
    }

    /// Counts an attempt against the runner's slots.
    pub fn reserve(&self, runner: RunnerId, attempt: AttemptKey) {
        if let Some(connection) = lock(&self.runners).get_mut(&runner) {
            connection.active.insert(attempt);
        }
    }

    /// Marks a runner as taking no new work.
    pub fn set_draining(&self, runner: RunnerId) {
        if let Some(connection) = lock(&self.runners).get_mut(&runner) {
            connection.draining = true;
        }
    }

    /// Connected runners that are paused.
    pub fn paused(&self) -> Vec<RunnerId> {
        lock(&self.runners)
            .iter()
            .filter(|(_, c)| c.paused)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Pauses or resumes a connected runner.
    pub fn set_paused(&self, runner: RunnerId, paused: bool) {
        if let Some(connection) = lock(&self.runners).get_mut(&runner) {
            connection.paused = paused;
        }
        self.wake_dispatcher();
    }

    /// Gives a connected runner the capabilities and labels an operator set.
    pub fn set_tags(
        &self,
        runner: RunnerId,
        capabilities: &[String],
        labels: &BTreeMap<String, String>,
    ) {
        if let Some(connection) = lock(&self.runners).get_mut(&runner) {
            connection.capabilities = capabilities.iter().cloned().collect();
            connection.labels = labels.clone();
        }
        self.wake_dispatcher();
    }

    /// Adds a repository to the runner's mirrors, for affinity.
    pub fn add_cached_project(&self, runner: RunnerId, repo: String) {
        if let Some(connection) = lock(&self.runners).get_mut(&runner) {
            connection.cached_projects.insert(repo);
        }
    }

    /// Frees the slot an attempt held, and wakes the dispatcher.
    pub fn release(&self, runner: RunnerId, attempt: AttemptKey, now: UnixMillis) {
        if let Some(connection) = lock(&self.runners).get_mut(&runner) {
            connection.active.remove(&attempt);
            if connection.active.is_empty() {
                connection.idle_since = now;
            }
        }
        self.wake_dispatcher();
    }

    /// Remembers that `runner` refused `task`, so it is passed over for it for a while.
    pub fn note_rejection(&self, task: TaskId, runner: RunnerId) {
        lock(&self.rejections)
            .entry(task)
            .or_default()
            .push((runner, Instant::now()));
    }

    /// Runners that refused `task` recently.
    pub fn rejected_by(&self, task: TaskId) -> Vec<RunnerId> {
        let mut rejections = lock(&self.rejections);
        let Some(list) = rejections.get_mut(&task) else {
            return Vec::new();
        };
        list.retain(|(_, at)| at.elapsed() < REJECTION_MEMORY);
        let runners = list.iter().map(|(runner, _)| *runner).collect();
        if list.is_empty() {
            rejections.remove(&task);
        }
        runners
    }

    /// Every connected runner as the scheduler sees it. A runner silent for longer than
    /// `stale_after` is marked stale.
    pub fn slots(&self, stale_after: Duration) -> Vec<RunnerSlots> {
        lock(&self.runners)
            .iter()
            .map(|(id, c)| {
                let running = u32::try_from(c.active.len()).unwrap_or(u32::MAX);
                RunnerSlots {
                    id: *id,
                    capabilities: c.capabilities.clone(),
                    labels: c.labels.clone(),
                    running,
                    free: c.max_concurrent.saturating_sub(running),
                    cached_projects: c.cached_projects.clone(),
                    idle_since: c.idle_since,
                    draining: c.draining,
                    paused: c.paused,
                    stale: c.last_frame.elapsed() > stale_after,
                    sandbox: c.sandbox,
                }
            })
            .collect()
    }

    /// The live connection of a runner, if connected.
    pub fn live(&self, runner: RunnerId) -> Option<LiveRunner> {
        lock(&self.runners).get(&runner).map(|c| LiveRunner {
            connection_id: c.connection_id,
            running: u32::try_from(c.active.len()).unwrap_or(u32::MAX),
            draining: c.draining,
            paused: c.paused,
            cached_projects: c.cached_projects.clone(),
        })
    }

    /// Attempts a connected runner holds.
    pub fn active(&self, runner: RunnerId) -> Vec<AttemptKey> {
        lock(&self.runners)
            .get(&runner)
            .map(|c| c.active.iter().copied().collect())
            .unwrap_or_default()
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

    /// Waits for the right to place tasks on free slots.
    pub async fn placement_turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.placing.lock().await
    }

    /// The right to place tasks on free slots, if no one holds it now; owned, so that a
    /// task spawned to finish a placement can hold it.
    pub fn try_placement_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        Arc::clone(&self.placing).try_lock_owned().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(connection_id: ConnectionId) -> (Connection, mpsc::Receiver<Outbound>) {
        let (outbound, rx) = mpsc::channel(4);
        let connection = Connection {
            connection_id,
            name: "r".into(),
            capabilities: BTreeSet::new(),
            labels: BTreeMap::new(),
            max_concurrent: 2,
            cached_projects: BTreeSet::new(),
            active: BTreeSet::new(),
            idle_since: 0,
            draining: false,
            paused: false,
            sandbox: false,
            last_frame: Instant::now(),
            outbound,
        };
        (connection, rx)
    }

    const FRESH: Duration = Duration::from_secs(60);

    #[test]
    fn old_connection_cleanup_never_removes_a_newer_connection() {
        let hub = Hub::default();
        let runner = RunnerId::new();
        let (old_connection, new_connection) = (ConnectionId::new(), ConnectionId::new());
        let (old, _old_rx) = connection(old_connection);
        let (new, _new_rx) = connection(new_connection);
        hub.attach(runner, old);
        hub.attach(runner, new);
        assert!(!hub.detach(runner, old_connection));
        assert_eq!(
            hub.live(runner).map(|l| l.connection_id),
            Some(new_connection)
        );
        assert!(hub.detach(runner, new_connection));
        assert!(hub.live(runner).is_none());
        assert!(hub.departed_at(runner).is_some());
    }

    #[test]
    fn reserved_attempts_use_up_slots_until_released() {
        let hub = Hub::default();
        let runner = RunnerId::new();
        let (c, _rx) = connection(ConnectionId::new());
        hub.attach(runner, c);
        let task = TaskId::new();
        hub.reserve(runner, (task, 1));
        assert_eq!(hub.slots(FRESH)[0].free, 1);
        hub.release(runner, (task, 1), 5);
        assert_eq!(hub.slots(FRESH)[0].free, 2);
        assert_eq!(hub.slots(FRESH)[0].idle_since, 5);
    }

    #[test]
    fn rejections_are_remembered_per_task() {
        let hub = Hub::default();
        let (task, runner) = (TaskId::new(), RunnerId::new());
        hub.note_rejection(task, runner);
        assert_eq!(hub.rejected_by(task), [runner]);
        assert!(hub.rejected_by(TaskId::new()).is_empty());
    }

    #[test]
    fn a_silent_runner_is_stale() {
        let hub = Hub::default();
        let (c, _rx) = connection(ConnectionId::new());
        hub.attach(RunnerId::new(), c);
        assert!(hub.slots(Duration::ZERO)[0].stale);
        assert!(!hub.slots(FRESH)[0].stale);
    }
}
