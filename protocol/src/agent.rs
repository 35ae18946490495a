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
    /// What the agent may do without asking (it runs headless: it cannot ask). Absent
    /// means [`Autonomy::Edit`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autonomy: Option<Autonomy>,
    /// Continue the agent's conversation: each iteration of the loop after the first, and
    /// each task of a workspace session after the first, resumes the conversation the
    /// last one recorded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continue_conversation: bool,
}

/// How much an agent may do on its own, mapped by each preset to its CLI's flags.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Autonomy {
    /// Read files and answer; no edits, no commands that change anything.
    ReadOnly,
    /// Edit files in the worktree and run commands the CLI's own sandbox allows.
    #[default]
    Edit,
    /// Everything the runner's user may do, without the CLI's own sandbox or prompts.
    Full,
}

impl Autonomy {
    /// The wire name, such as `read-only`.
    pub fn as_str(self) -> &'static str {
        match self {
            Autonomy::ReadOnly => "read-only",
            Autonomy::Edit => "edit",
            Autonomy::Full => "full",
        }
    }
}

/// Token usage and cost, as the agent reports them, in one shape for every agent: the
/// four token counts do not overlap, so their sum is every token the run used (presets
/// convert: Claude reports cache reads and writes on top of its input, Codex and Gemini
/// count cached tokens inside theirs).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Turns (model round trips).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turns: Option<u64>,
    /// Input tokens not served from the provider's prompt cache.
    #[serde(default)]
    pub input_tokens: u64,
    /// Input tokens read from the prompt cache.
    #[serde(default, alias = "cached_input_tokens")]
    pub cache_read_tokens: u64,
    /// Input tokens written to the prompt cache (Claude reports them; billed above input).
    #[serde(default)]
    pub cache_write_tokens: u64,
    /// Output tokens, reasoning included.
    #[serde(default)]
    pub output_tokens: u64,
    /// The part of `output_tokens` spent on reasoning, where the agent reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
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
        self.cache_read_tokens += other.cache_read_tokens;
        self.cache_write_tokens += other.cache_write_tokens;
        self.output_tokens += other.output_tokens;
        self.reasoning_tokens = match (self.reasoning_tokens, other.reasoning_tokens) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
        };
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
    /// The agent reported a problem it works around (a retried request, say).
    Warning {
        /// What it said.
        message: String,
    },
    /// The agent named its conversation (Claude's session, Codex's thread), which a later
    /// run can resume.
    Session {
        /// The conversation's id, as the agent's CLI takes it back.
        id: String,
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
