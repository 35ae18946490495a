//! What a runner needs to know to run a task.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::TaskId;

/// A task as sent to a runner in `assign`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The agent's argv; the first element is the program.
    pub command: Vec<String>,
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
}
