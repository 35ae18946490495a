//! What a runner needs to know to run a task.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::agent::AgentSpec;
use crate::ids::{TaskId, WorkspaceId};

/// A task as sent to a runner in `assign`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// The task's id.
    pub task_id: TaskId,
    /// Repository to work on: a URL or a path on the runner's machine.
    pub repo: String,
    /// Ref to start from; absent means the remote's default branch (its HEAD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ref: Option<String>,
    /// Branch that receives the result, such as `kiln/<task-id>`.
    pub branch: String,
    /// The prompt, given to the agent as a file (`KILN_PROMPT_FILE`) and on stdin.
    pub prompt: String,
    /// The agent's argv for the `command` preset; the first element is the program.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// The agent preset; absent means `command`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentSpec>,
    /// Extra environment variables for the agent.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Environment variables whose values are secret: set for the agent, and redacted from
    /// every line it prints.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_env: BTreeMap<String, String>,
    /// Overall time limit for the agent, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Limit on time without any output from the agent, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_ms: Option<u64>,
    /// Run the agent again in the same worktree until it prints the completion signal, up
    /// to this many times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_iterations: Option<u32>,
    /// Text whose appearance in the agent's output (parsed text, not raw JSON) means done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_signal: Option<String>,
    /// Time an agent that printed the signal has to exit before it is stopped, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_grace_ms: Option<u64>,
    /// Most turns (as the agent reports them) over all iterations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_turns: Option<u64>,
    /// Most cost in US dollars (as the agent reports it) over all iterations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost_usd: Option<f64>,
    /// Push the result branch to the repository's remote with the runner's credentials.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub push: bool,
    /// The workspace session this task runs in, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<WorkspaceSpec>,
    /// Run the agent in a container (the docker executor) instead of on the runner itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerSpec>,
}

/// The docker executor: the agent runs in a container that sees only its worktree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// Image to run the agent in; it must hold the agent's program.
    pub image: String,
}

/// A workspace session: one worktree on one runner shared by a series of tasks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceSpec {
    /// The session.
    pub workspace_id: WorkspaceId,
    /// Commands run once, before the session's first task (for example, install dependencies).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub setup: Vec<Vec<String>>,
}
