//! Bodies of the HTTP API under `/v1`, shared by the server and the CLI that calls it.

use std::collections::BTreeMap;

use kiln_protocol::Event;
use serde::{Deserialize, Serialize};

use kiln_protocol::WorkspaceId;

use crate::model::{AttemptRecord, RegistrationTokenRecord, RunOptions, RunnerRecord, TaskRecord};

/// `POST /v1/tasks`: a task to queue.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SubmitRequest {
    /// Repository URL, or a path on the runner's machine (taken from the session when
    /// `workspace_id` is given).
    #[serde(default)]
    pub repo: String,
    /// Ref to start from; default: the remote's HEAD.
    #[serde(default)]
    pub base_ref: Option<String>,
    /// Result branch; default `kiln/<task-id>`.
    #[serde(default)]
    pub branch: Option<String>,
    /// The prompt.
    #[serde(default)]
    pub prompt: String,
    /// The agent's argv.
    pub command: Vec<String>,
    /// Extra environment for the agent.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Secret environment for the agent: redacted from its log, never shown by the API.
    #[serde(default)]
    pub secret_env: BTreeMap<String, String>,
    /// Capabilities a runner must have.
    #[serde(default)]
    pub requires: Vec<String>,
    /// Labels a runner must have.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Higher runs first; default 0.
    #[serde(default)]
    pub priority: i64,
    /// Overall limit in milliseconds.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// No-output limit in milliseconds.
    #[serde(default)]
    pub idle_timeout_ms: Option<u64>,
    /// Most attempts; default 2.
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Agent preset, loop, budgets, push.
    #[serde(flatten)]
    pub options: RunOptions,
    /// Run in this workspace session (its repo, ref and branch).
    #[serde(default)]
    pub workspace_id: Option<WorkspaceId>,
    /// Forge a fresh sandbox for this task.
    #[serde(default)]
    pub sandbox: Option<SandboxRequest>,
}

/// A sandbox asked for in `SubmitRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxRequest {
    /// Provider, such as `docker`.
    pub provider: String,
    /// Image to forge it from; default the control plane's sandbox image.
    #[serde(default)]
    pub image: Option<String>,
    /// Lifetime in milliseconds; default 30 minutes.
    #[serde(default)]
    pub ttl_ms: Option<u64>,
}

/// `GET /v1/sandboxes`: a live sandbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxView {
    /// The sandbox.
    #[serde(flatten)]
    pub sandbox: crate::model::SandboxRecord,
    /// Milliseconds until its TTL burns it.
    pub remaining_ms: i64,
}

/// `POST /v1/workspaces`: a workspace session to open.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateWorkspace {
    /// Repository URL or path.
    pub repo: String,
    /// Ref to start from.
    #[serde(default)]
    pub base_ref: Option<String>,
    /// Branch for the session's commits; default `kiln/session-<id>`.
    #[serde(default)]
    pub branch: Option<String>,
    /// Commands run once, before the session's first task.
    #[serde(default)]
    pub setup: Vec<Vec<String>>,
}

/// `GET /v1/tasks/{id}`: a task with all of its attempts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskDetail {
    /// The task.
    #[serde(flatten)]
    pub task: TaskRecord,
    /// Its attempts, first to last.
    pub attempts: Vec<AttemptRecord>,
    /// While queued: why no runner has taken it yet; while its agent waits for its
    /// provider's rate limit: until when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_reason: Option<String>,
}

/// `POST /v1/tasks/batch`: tasks to queue together, all or none.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchSubmitRequest {
    /// The tasks, as for `POST /v1/tasks` (without `sandbox`).
    pub tasks: Vec<SubmitRequest>,
}

/// `GET /v1/tasks`: one page of tasks, newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskPage {
    /// The tasks.
    pub tasks: Vec<TaskRecord>,
    /// Pass as `before` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before: Option<kiln_protocol::TaskId>,
}

/// `POST /v1/runners/{id}/drain`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainRequest {
    /// Cancel what is still running after this many milliseconds.
    #[serde(default)]
    pub deadline_ms: Option<u64>,
}

/// `POST /v1/runners/{id}/update`: what an operator gives a runner; a field left out keeps
/// its value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateRunner {
    /// The runner's capabilities, all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
    /// The runner's labels, all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

/// Whether a runner is reachable now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunnerState {
    /// Connected to this control plane.
    Online,
    /// Connected, finishing its work, taking no more.
    Draining,
    /// Connected, paused by an operator: no new work.
    Paused,
    /// Registered, not connected.
    Offline,
    /// Its token was revoked.
    Revoked,
}

impl RunnerState {
    /// Every state.
    pub const ALL: [RunnerState; 5] = [
        RunnerState::Online,
        RunnerState::Draining,
        RunnerState::Paused,
        RunnerState::Offline,
        RunnerState::Revoked,
    ];

    /// The name used in the API (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            RunnerState::Online => "online",
            RunnerState::Draining => "draining",
            RunnerState::Paused => "paused",
            RunnerState::Offline => "offline",
            RunnerState::Revoked => "revoked",
        }
    }
}

/// `GET /v1/runners`: one runner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerView {
    /// The registered runner.
    #[serde(flatten)]
    pub runner: RunnerRecord,
    /// Reachable now?
    pub state: RunnerState,
    /// Attempts it runs now, as far as this control plane knows.
    pub running: u32,
    /// Repositories it holds mirrors of (while connected).
    #[serde(default)]
    pub cached_projects: Vec<String>,
}

/// `POST /v1/registration-tokens`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRegistrationToken {
    /// Registrations allowed; default unlimited.
    #[serde(default)]
    pub uses: Option<u32>,
    /// Lifetime in milliseconds; default forever.
    #[serde(default)]
    pub ttl_ms: Option<u64>,
}

/// A registration token, shown once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationTokenCreated {
    /// What is stored about it.
    #[serde(flatten)]
    pub record: RegistrationTokenRecord,
    /// The token itself (`kiln_reg_...`).
    pub token: String,
}

/// One line of `GET /v1/tasks/{id}/events`: an event and its attempt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttemptEvent {
    /// The attempt it belongs to.
    pub attempt: u32,
    /// The event.
    #[serde(flatten)]
    pub event: Event,
}

/// Body of every error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, as a lowercase fragment.
    pub error: String,
}
