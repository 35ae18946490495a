//! Reading an agent's output line by line: one stateful parser per run, for the formats
//! presets name. Each line becomes events, and what the run loop must know: a turn began,
//! the agent's own words (not a subagent's, not the CLI's echo of the prompt), usage, a
//! failure the agent reported, the provider's rate limit.

use kiln_protocol::{AgentEvent, StopReason, UnixMillis, Usage};

use super::{claude, codex, gemini, Format};

/// What one line of an agent's output was.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Parsed {
    /// The events it held.
    pub events: Vec<AgentEvent>,
    /// True when it starts a new turn of the top-level agent (for the turn budget).
    pub new_turn: bool,
    /// True for what is not the top-level agent speaking (a subagent's lines, the CLI's
    /// echo of the prompt): its text never counts as the completion signal.
    pub aside: bool,
    /// Usage the agent reported.
    pub usage: Option<UsageReport>,
    /// The agent says its run failed, in these words.
    pub failure: Option<String>,
    /// The agent stopped at its provider's rate or usage limit.
    pub rate_limit: Option<RateLimit>,
    /// The agent stopped itself at a budget it was given (Claude's `--max-budget-usd`).
    pub exhausted: Option<StopReason>,
}

impl Parsed {
    /// A line with these events and nothing else to say.
    pub fn events(events: Vec<AgentEvent>) -> Self {
        Self {
            events,
            ..Self::default()
        }
    }

    /// A line understood and deliberately not shown (a CLI's bookkeeping).
    pub fn quiet() -> Self {
        Self::default()
    }
}

/// How a line's usage relates to what the run reported before.
#[derive(Clone, Debug, PartialEq)]
pub enum UsageReport {
    /// The run's usage so far, replacing what it reported before (Claude's and Gemini's
    /// final results).
    Total(Usage),
    /// Usage on top of what the run reported before (a Codex turn).
    Increment(Usage),
}

/// The provider refused the agent more requests for now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// When the limit resets, if the agent said.
    pub resets_at: Option<UnixMillis>,
    /// What the agent said.
    pub message: String,
}

impl RateLimit {
    /// The limit `message` speaks of, if it is one, with its reset time if it gives one.
    pub fn detect(message: &str) -> Option<Self> {
        super::limits::is_rate_limit(message).then(|| Self {
            resets_at: super::limits::reset_time(message, jiff::Timestamp::now()),
            message: message.to_owned(),
        })
    }
}

/// The parser of one run of an agent.
#[derive(Debug)]
pub enum Parser {
    /// Every line is a log line.
    Plain,
    /// Claude Code `stream-json`.
    Claude(claude::Stream),
    /// Codex `exec --json`.
    Codex(codex::Stream),
    /// Gemini CLI `stream-json`.
    Gemini(gemini::Stream),
}

impl Parser {
    /// A parser for one run in `format`, of an agent working in `worktree` (Codex names
    /// changed files by absolute path; events name them relative to it).
    pub fn new(format: Format, worktree: &std::path::Path) -> Self {
        match format {
            Format::Plain => Self::Plain,
            Format::ClaudeCode => Self::Claude(claude::Stream::default()),
            Format::Codex => Self::Codex(codex::Stream::new(worktree)),
            Format::Gemini => Self::Gemini(gemini::Stream::default()),
        }
    }

    /// True when lines of this format are the agent's JSON: a line it does not parse is
    /// not the agent's own words.
    pub fn is_structured(&self) -> bool {
        !matches!(self, Self::Plain)
    }

    /// Parses one line. `None` means "not an event this parser knows": the line is kept as
    /// a plain log line.
    pub fn line(&mut self, line: &str) -> Option<Parsed> {
        if matches!(self, Self::Plain) || !line.trim_start().starts_with('{') {
            return None;
        }
        let value: serde_json::Value = serde_json::from_str(line).ok()?;
        match self {
            Self::Plain => None,
            Self::Claude(stream) => stream.line(&value),
            Self::Codex(stream) => stream.line(&value),
            Self::Gemini(stream) => stream.line(&value),
        }
    }

    /// What the end of the output means, once the agent has exited (a Codex turn that
    /// errored and never completed failed).
    pub fn end(&mut self) -> Option<Parsed> {
        match self {
            Self::Codex(stream) => stream.end(),
            _ => None,
        }
    }
}

/// Parses one line in `format` with a fresh parser.
#[cfg(test)]
pub fn parse(format: Format, line: &str) -> Option<Parsed> {
    Parser::new(format, std::path::Path::new("/")).line(line)
}

/// Cuts tool output to the line limit for its event.
pub fn clip(text: &str) -> String {
    let limit = kiln_protocol::limits::MAX_LINE_BYTES;
    if text.len() <= limit {
        return text.to_owned();
    }
    let cut = (0..=limit)
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    format!(
        "{}{}",
        &text[..cut],
        kiln_protocol::limits::TRUNCATION_MARKER
    )
}

/// The text of a string, or of the `text` parts of an array of content blocks.
pub fn text_of(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
            .collect::<Vec<_>>()
            .join("\n"),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A count in `object` at `key`, 0 when absent.
pub fn count(object: Option<&serde_json::Value>, key: &str) -> u64 {
    object
        .and_then(|o| o.get(key))
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0)
}

/// A string in `value` at `key`.
pub fn string<'a>(value: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(serde_json::Value::as_str)
}
