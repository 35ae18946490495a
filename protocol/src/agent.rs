//! What an agent does, as kiln understands it from the agent's own JSON stream: the typed
//! events presets parse, and the usage the agent reports (kiln never prices tokens).

use serde::{Deserialize, Serialize};

/// Which agent to run and how.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSpec {
    /// Preset name: `claude-code`, `codex`, `gemini`, `command`, or one the runner defines.
    pub preset: String,
    /// Model to ask the agent for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Extra arguments appended to the preset's invocation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
}

/// Token usage and cost, as the agent reports them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Turns (model round trips).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turns: Option<u64>,
    /// Input tokens.
    #[serde(default)]
    pub input_tokens: u64,
    /// Input tokens served from a cache (a part of, or in addition to, `input_tokens`, as
    /// the agent counts them).
    #[serde(default)]
    pub cached_input_tokens: u64,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Cost in US dollars, only when the agent reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

impl Usage {
    /// Adds `other` to this total.
    pub fn add(&mut self, other: &Usage) {
        self.turns = match (self.turns, other.turns) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
        };
        self.input_tokens += other.input_tokens;
        self.cached_input_tokens += other.cached_input_tokens;
        self.output_tokens += other.output_tokens;
        self.cost_usd = match (self.cost_usd, other.cost_usd) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
        };
    }
}

/// One step of an agent's work, parsed from its JSON stream. Tagged by `event`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AgentEvent {
    /// Text the assistant wrote.
    Text {
        /// The text.
        text: String,
    },
    /// The agent called a tool.
    ToolCall {
        /// The call's id, to match its result.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// Tool name, such as `Bash` or `command_execution`.
        name: String,
        /// The call's input, as the agent gave it.
        input: serde_json::Value,
    },
    /// A tool returned.
    ToolResult {
        /// The call this answers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// Its output (cut to the line limit).
        output: String,
        /// True when the tool failed.
        #[serde(default)]
        is_error: bool,
    },
    /// The agent changed a file.
    FileChange {
        /// The file, relative to the worktree.
        path: String,
        /// `add`, `update`, `delete`, ...
        change: String,
    },
    /// The agent reported an error.
    Error {
        /// What it said.
        message: String,
    },
    /// The agent's final report of a run.
    Result {
        /// Its final answer, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        /// True when the agent says the run failed.
        #[serde(default)]
        is_error: bool,
        /// Usage of the run.
        usage: Usage,
    },
}
