//! The control plane's records: tasks, attempts, runners and tokens, as stored and as the
//! HTTP API returns them. The CLI reads the same types, so there is one definition.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use kiln_protocol::{
    AgentSpec, ContainerSpec, Outcome, OutcomeStatus, RunnerId, SandboxId, TaskId, UnixMillis,
    WorkspaceId,
};
use serde::{Deserialize, Serialize};

/// Where a task is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Waiting for a runner.
    Queued,
    /// Sent to a runner that has not yet accepted it.
    Assigned,
    /// A runner is running it.
    Running,
    /// The agent succeeded and its result was saved.
    Succeeded,
    /// The agent failed.
    Failed,
    /// Cancelled on request.
    Cancelled,
    /// Ran past a timeout.
    TimedOut,
    /// kiln could not run it.
    Error,
    /// Its runner vanished and no attempts remain.
    Lost,
}

/// Where one attempt of a task is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptState {
    /// Sent to the runner, not yet accepted.
    Assigned,
    /// Accepted and running.
    Running,
    /// The runner refused it; the task went back to the queue.
    Rejected,
    /// Ended as its runner reported.
    Succeeded,
    /// Ended with a failing agent.
    Failed,
    /// Ended by a cancel.
    Cancelled,
    /// Ended by a timeout.
    TimedOut,
    /// kiln could not run it.
    Error,
    /// Its runner stayed away too long; it ended without a report.
    Lost,
}

macro_rules! text_enum {
    ($ty:ty { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            /// The name used in the store, the API and the CLI.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    other => Err(format!("unknown {} {other:?}", stringify!($ty))),
                }
            }
        }
    };
}

impl TaskState {
    /// Every state, in the order a task passes through them.
    pub const ALL: [TaskState; 9] = [
        TaskState::Queued,
        TaskState::Assigned,
        TaskState::Running,
        TaskState::Succeeded,
        TaskState::Failed,
        TaskState::Cancelled,
        TaskState::TimedOut,
        TaskState::Error,
        TaskState::Lost,
    ];
}

text_enum!(TaskState {
    Queued => "queued", Assigned => "assigned", Running => "running",
    Succeeded => "succeeded", Failed => "failed", Cancelled => "cancelled",
    TimedOut => "timed_out", Error => "error", Lost => "lost",
});

text_enum!(WorkspaceState {
    Open => "open", Closed => "closed", Lost => "lost",
});

text_enum!(SandboxState {
    Forging => "forging", Running => "running", Burned => "burned", Failed => "failed",
});

text_enum!(AttemptState {
    Assigned => "assigned", Running => "running", Rejected => "rejected",
    Succeeded => "succeeded", Failed => "failed", Cancelled => "cancelled",
    TimedOut => "timed_out", Error => "error", Lost => "lost",
});

impl TaskState {
    /// True once the task will change no more.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Queued | Self::Assigned | Self::Running)
    }
}

impl AttemptState {
    /// True once the attempt is over.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Assigned | Self::Running)
    }
}

impl From<OutcomeStatus> for AttemptState {
    fn from(status: OutcomeStatus) -> Self {
        match status {
            OutcomeStatus::Succeeded => Self::Succeeded,
            OutcomeStatus::Failed => Self::Failed,
            OutcomeStatus::Cancelled => Self::Cancelled,
            OutcomeStatus::TimedOut => Self::TimedOut,
            OutcomeStatus::Error => Self::Error,
        }
    }
}

impl From<OutcomeStatus> for TaskState {
    fn from(status: OutcomeStatus) -> Self {
        match status {
            OutcomeStatus::Succeeded => Self::Succeeded,
            OutcomeStatus::Failed => Self::Failed,
            OutcomeStatus::Cancelled => Self::Cancelled,
            OutcomeStatus::TimedOut => Self::TimedOut,
            OutcomeStatus::Error => Self::Error,
        }
    }
}

/// A task as submitted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewTask {
    /// The task's id.
    pub id: TaskId,
    /// Repository URL or path.
    pub repo: String,
    /// Ref to start from; `None` means the remote's default branch.
    pub base_ref: Option<String>,
    /// Branch that receives the result.
    pub branch: String,
    /// The prompt.
    pub prompt: String,
    /// The agent's argv.
    pub command: Vec<String>,
    /// Extra environment for the agent.
    pub env: BTreeMap<String, String>,
    /// Secret environment for the agent; only the names ever leave the control plane's API.
    #[serde(default)]
    pub secret_env: SecretEnv,
    /// Capabilities a runner must have.
    pub requires: Vec<String>,
    /// Labels a runner must have (key and value); also used to filter task lists.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Higher runs first.
    pub priority: i64,
    /// Overall limit, milliseconds.
    pub timeout_ms: Option<u64>,
    /// No-output limit, milliseconds.
    pub idle_timeout_ms: Option<u64>,
    /// Most attempts before the task gives up.
    pub max_attempts: u32,
    /// Submission time.
    pub created_at: UnixMillis,
    /// Agent preset, loop and budgets.
    #[serde(flatten)]
    pub options: RunOptions,
    /// The workspace session it runs in, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<WorkspaceId>,
    /// The sandbox forged for it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_id: Option<SandboxId>,
}

/// How the agent of a task runs: preset, loop, budgets, push.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunOptions {
    /// Agent preset; absent means the task's own command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentSpec>,
    /// Re-run the agent until the completion signal, at most this many times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_iterations: Option<u32>,
    /// Text that means the agent is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_signal: Option<String>,
    /// Time an agent that printed the signal has to exit, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_grace_ms: Option<u64>,
    /// Most turns over all iterations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_turns: Option<u64>,
    /// Most reported cost over all iterations, in US dollars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost_usd: Option<f64>,
    /// Push the result branch to the repository's remote.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub push: bool,
    /// Run the agent in a container from this image (on a runner with capability `docker`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerSpec>,
}

/// Where a workspace session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceState {
    /// Takes tasks.
    Open,
    /// Closed by an operator; its worktree is removed.
    Closed,
    /// Its runner lost it (it restarted or was lost).
    Lost,
}

/// A workspace session: one worktree on one runner for a series of tasks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceRecord {
    /// Its id.
    pub id: WorkspaceId,
    /// Repository.
    pub repo: String,
    /// Ref it starts from.
    pub base_ref: Option<String>,
    /// Branch its tasks commit on.
    pub branch: String,
    /// Commands run once before its first task.
    pub setup: Vec<Vec<String>>,
    /// The runner holding it, once its first task was assigned.
    pub runner_id: Option<RunnerId>,
    /// Where it stands.
    pub state: WorkspaceState,
    /// Creation time.
    pub created_at: UnixMillis,
    /// When it was closed or lost.
    pub closed_at: Option<UnixMillis>,
}

/// Secret environment variables: names and values inside the control plane; names only in
/// JSON and in `Debug`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretEnv(pub BTreeMap<String, String>);

impl fmt::Debug for SecretEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl Serialize for SecretEnv {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.keys())
    }
}

impl<'de> Deserialize<'de> for SecretEnv {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(deserializer)?;
        Ok(Self(
            names.into_iter().map(|n| (n, String::new())).collect(),
        ))
    }
}

/// A task and where it stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// What was submitted.
    #[serde(flatten)]
    pub spec: NewTask,
    /// Where it stands.
    pub state: TaskState,
    /// Number of its latest attempt; 0 before the first.
    pub attempt: u32,
    /// How the deciding attempt ended, once terminal.
    pub outcome: Option<Outcome>,
    /// Last change.
    pub updated_at: UnixMillis,
    /// When it became terminal.
    pub finished_at: Option<UnixMillis>,
    /// When an operator asked to cancel it.
    #[serde(default)]
    pub cancel_requested_at: Option<UnixMillis>,
    /// When retention deleted its events and artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pruned_at: Option<UnixMillis>,
}

impl TaskRecord {
    /// The record of a task just queued.
    pub fn queued(task: NewTask) -> Self {
        Self {
            updated_at: task.created_at,
            spec: task,
            state: TaskState::Queued,
            attempt: 0,
            outcome: None,
            finished_at: None,
            cancel_requested_at: None,
            pruned_at: None,
        }
    }
}

/// What a cancel request did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CancelEffect {
    /// The task was queued and is now cancelled.
    Cancelled,
    /// The task runs: its runner must be told to stop this attempt.
    StopAttempt {
        /// The runner.
        runner: RunnerId,
        /// The attempt.
        attempt: u32,
    },
    /// The task had already ended in this state.
    AlreadyEnded(TaskState),
}

/// What a retry request did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryEffect {
    /// The task is queued for a new attempt.
    Queued,
    /// The task has not ended; there is nothing to retry.
    StillLive(TaskState),
}

/// One attempt of a task on one runner.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// The task.
    pub task_id: TaskId,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// The runner it was given to.
    pub runner_id: RunnerId,
    /// Where it stands.
    pub state: AttemptState,
    /// Highest contiguous event seq stored.
    pub acked_seq: u64,
    /// The runner's final report.
    pub outcome: Option<Outcome>,
    /// When it was given to the runner.
    pub assigned_at: UnixMillis,
    /// When the runner accepted it.
    pub started_at: Option<UnixMillis>,
    /// When it ended.
    pub finished_at: Option<UnixMillis>,
    /// Until when its agent waits for its provider's rate limit, while it does.
    #[serde(default)]
    pub rate_limited_until: Option<UnixMillis>,
}

/// A registered runner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerRecord {
    /// The runner's id.
    pub id: RunnerId,
    /// Its name.
    pub name: String,
    /// Capabilities it last announced.
    pub capabilities: Vec<String>,
    /// Labels it last announced.
    pub labels: BTreeMap<String, String>,
    /// Its slot count.
    pub max_concurrent: u32,
    /// Its software version, from its last hello.
    pub version: Option<String>,
    /// Registration time.
    pub created_at: UnixMillis,
    /// Last hello or heartbeat.
    pub last_seen_at: Option<UnixMillis>,
    /// When its token was revoked.
    pub revoked_at: Option<UnixMillis>,
    /// When an operator paused it (no new work).
    #[serde(default)]
    pub paused_at: Option<UnixMillis>,
    /// A drain requested while it was away, to deliver when it connects.
    #[serde(default)]
    pub drain_requested_at: Option<UnixMillis>,
    /// A token rotation not yet confirmed by the runner.
    #[serde(default)]
    pub rotation_requested_at: Option<UnixMillis>,
    /// The sandbox this runner lives in, for sandbox runners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_id: Option<SandboxId>,
}

impl RunnerRecord {
    /// True when some control plane heard from it after `at` (it heartbeats into the store).
    pub fn heard_since(&self, at: UnixMillis) -> bool {
        self.last_seen_at.is_some_and(|seen| seen > at)
    }
}

/// Where a sandbox is in its short life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxState {
    /// Being made.
    Forging,
    /// Up; its runner connects from inside.
    Running,
    /// Destroyed.
    Burned,
    /// Could not be made.
    Failed,
}

/// A box forged for one task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxRecord {
    /// Its id.
    pub id: SandboxId,
    /// The task it runs.
    pub task_id: TaskId,
    /// The runner identity it boots with.
    pub runner_id: RunnerId,
    /// Provider name, such as `docker`.
    pub provider: String,
    /// Image it is forged from.
    pub image: String,
    /// The provider's name for it, once forged.
    pub handle: Option<String>,
    /// Where it stands.
    pub state: SandboxState,
    /// When its TTL burns it.
    pub expires_at: UnixMillis,
    /// Creation time.
    pub created_at: UnixMillis,
    /// When it was burned.
    pub burned_at: Option<UnixMillis>,
    /// Why it was burned or failed.
    pub reason: Option<String>,
}

impl SandboxRecord {
    /// True while it is being forged or runs.
    pub fn is_live(&self) -> bool {
        matches!(self.state, SandboxState::Forging | SandboxState::Running)
    }
}

/// A registration token's stored facts (never its clear text).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationTokenRecord {
    /// The token's id, for listing and revoking.
    pub id: String,
    /// Registrations left; `None` means unlimited.
    pub uses_left: Option<u32>,
    /// Expiry time; `None` means never.
    pub expires_at: Option<UnixMillis>,
    /// Creation time.
    pub created_at: UnixMillis,
}

/// What a runner announces about itself on each hello.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunnerAnnouncement {
    /// Its name.
    pub name: String,
    /// Slots now.
    pub max_concurrent: u32,
    /// Software version.
    pub version: String,
}

/// What a task whose agent waits for its provider's rate limit until `until` is doing.
pub fn rate_limit_wait(until: UnixMillis) -> String {
    let at = u64::try_from(until).unwrap_or(0);
    let time = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(at),
    );
    format!("waiting for the agent's rate limit until {time}")
}
