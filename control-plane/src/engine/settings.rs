//! The control plane's tunables, with the defaults and why each has its value.

use std::time::Duration;

/// Heartbeat period runners are told to keep: often enough to notice a dead link within
/// seconds, rare enough to cost nothing with thousands of runners.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

/// Heartbeat periods a runner may miss before its socket is considered dead. Three
/// tolerates one lost or late beat and a slow network without false alarms.
pub const HEARTBEAT_MISSES_ALLOWED: u32 = 3;

/// How long a runner may stay away before its attempts are declared lost and retried.
/// Two minutes rides out a network blip or a runner restart without giving work away, and
/// is short next to the hours an agent task can take.
pub const DEFAULT_LOST_AFTER: Duration = Duration::from_secs(120);

/// Time a runner has to accept an assignment. A healthy runner answers in milliseconds;
/// thirty seconds covers a very slow link without leaving a task stuck for long.
pub const DEFAULT_ACCEPT_DEADLINE: Duration = Duration::from_secs(30);

/// Time a runner has, past a task's timeout or its cancel, to report that the attempt
/// ended before the control plane ends the task itself: the agent's SIGTERM grace (10 s by
/// default), then saving and uploading what it left, fit easily.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(60);

/// Log text kept per attempt: 1 GiB is hours of a very chatty agent, and bounds what one
/// runaway attempt can put in the database.
pub const DEFAULT_MAX_LOG_BYTES: u64 = 1 << 30;

/// Largest artifact (bundle or diff) a runner may upload.
pub const DEFAULT_MAX_UPLOAD_BYTES: usize = 256 * 1024 * 1024;

/// Tunables of a control plane.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    /// Heartbeat period given to runners in `welcome`.
    pub heartbeat_interval: Duration,
    /// Largest artifact accepted.
    pub max_upload_bytes: usize,
    /// Absence after which a runner's attempts are lost.
    pub lost_after: Duration,
    /// Time a runner has to accept an assignment before it goes back to the queue.
    pub accept_deadline: Duration,
    /// Time a runner has past a timeout or cancel before the control plane ends the task.
    pub stop_grace: Duration,
    /// Log text stored per attempt; beyond it lines keep their place but lose their text.
    pub max_log_bytes: u64,
    /// Served over TLS: the dashboard's cookie is marked `Secure`.
    pub secure_cookies: bool,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            lost_after: DEFAULT_LOST_AFTER,
            accept_deadline: DEFAULT_ACCEPT_DEADLINE,
            stop_grace: DEFAULT_STOP_GRACE,
            max_log_bytes: DEFAULT_MAX_LOG_BYTES,
            secure_cookies: false,
        }
    }
}

impl ServerSettings {
    /// Silence after which a runner is not offered new work (before its socket is closed).
    pub fn stale_after(&self) -> Duration {
        self.heartbeat_interval * 2
    }

    /// Silence after which a runner's socket is closed.
    pub fn heartbeat_timeout(&self) -> Duration {
        self.heartbeat_interval * HEARTBEAT_MISSES_ALLOWED
    }
}
