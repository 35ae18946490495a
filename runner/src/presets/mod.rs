//! Agent presets: how to run each known agent CLI headless, how the prompt reaches it, what
//! each autonomy level means to it, how it resumes a conversation, and how to read its JSON
//! stream. One table (`table.rs`); operators add more in runner.yaml (`config.rs`).

mod claude;
mod codex;
mod config;
mod gemini;
mod invocation;
mod limits;
mod parser;
mod table;

use std::collections::BTreeMap;
use std::path::Path;

use kiln_protocol::Autonomy;
use serde::Deserialize;

pub use config::{all, PresetConfig};
pub use invocation::{invocation, Enclosure, Invocation, RunArgs};
pub use parser::{Parsed, Parser, RateLimit, UsageReport};
pub use table::builtin;

/// The preset that runs the task's own argv.
pub const COMMAND: &str = "command";

/// How an agent's output is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Plain text: every line is a log line.
    #[default]
    Plain,
    /// Claude Code `--output-format stream-json`.
    ClaudeCode,
    /// Codex `exec --json`.
    Codex,
    /// Gemini CLI `--output-format stream-json`.
    Gemini,
}

/// How the prompt reaches the agent (it is always in `KILN_PROMPT_FILE` too).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PromptVia {
    /// On standard input.
    Stdin,
    /// As the value of this flag.
    Flag(String),
}

/// How a run continues an earlier conversation, given its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resume {
    /// The CLI cannot.
    Unsupported,
    /// This flag with the id among the arguments (`claude --resume ID`).
    Flag(String),
    /// This word and the id just before the tail (`codex exec ... resume ID -`).
    Subcommand(String),
}

/// One agent CLI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preset {
    /// Name used in `kiln submit --agent NAME`.
    pub name: String,
    /// The program.
    pub program: String,
    /// Arguments that make it run headless with machine-readable output.
    pub args: Vec<String>,
    /// Flag that selects the model, if the CLI has one.
    pub model_flag: Option<String>,
    /// Arguments after everything else (such as `-` for "prompt on stdin").
    pub tail: Vec<String>,
    /// How the prompt is given.
    pub prompt: PromptVia,
    /// How its output is read.
    pub format: Format,
    /// Arguments for each autonomy level; a level not named adds none.
    pub autonomy: BTreeMap<Autonomy, Vec<String>>,
    /// Arguments for a level when the agent runs in a box (a kiln sandbox or the docker
    /// executor's container), where the box is its fence and the CLI's own sandbox may not
    /// work: they replace `autonomy`'s.
    pub autonomy_in_box: BTreeMap<Autonomy, Vec<String>>,
    /// Environment for a level in a box (Claude refuses full autonomy as root unless told
    /// it is sandboxed).
    pub env_in_box: BTreeMap<Autonomy, Vec<(String, String)>>,
    /// Flag that caps a run's cost in US dollars, so the CLI stops at the budget itself.
    pub budget_flag: Option<String>,
    /// How a run continues a conversation.
    pub resume: Resume,
    /// Environment the CLI always needs headless (Gemini's workspace trust).
    pub env: Vec<(String, String)>,
}

/// Capabilities for the presets whose program is installed: `agent:<name>`.
pub fn capabilities(presets: &[Preset]) -> Vec<String> {
    presets
        .iter()
        .filter(|p| on_path(&p.program))
        .map(|p| format!("agent:{}", p.name))
        .collect()
}

fn on_path(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).is_file();
    }
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests;
