//! Agent presets: how to run each known agent CLI headless, how the prompt reaches it, and
//! how to read its JSON stream. One table; operators add more in runner.yaml.

mod claude;
mod codex;
mod gemini;

use std::collections::BTreeMap;
use std::path::Path;

use kiln_protocol::{AgentEvent, TaskSpec};
use serde::Deserialize;

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
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The presets kiln knows out of the box.
pub fn builtin() -> Vec<Preset> {
    vec![
        Preset {
            name: "claude-code".into(),
            program: "claude".into(),
            args: strings(&["-p", "--output-format", "stream-json", "--verbose"]),
            model_flag: Some("--model".into()),
            tail: vec![],
            prompt: PromptVia::Stdin,
            format: Format::ClaudeCode,
        },
        Preset {
            name: "codex".into(),
            program: "codex".into(),
            args: strings(&["exec", "--json"]),
            model_flag: Some("--model".into()),
            tail: strings(&["-"]),
            prompt: PromptVia::Stdin,
            format: Format::Codex,
        },
        Preset {
            name: "gemini".into(),
            program: "gemini".into(),
            args: strings(&["--output-format", "stream-json"]),
            model_flag: Some("--model".into()),
            tail: vec![],
            prompt: PromptVia::Flag("--prompt".into()),
            format: Format::Gemini,
        },
    ]
}

/// A preset defined in runner.yaml under `presets:`.
#[derive(Clone, Debug, Deserialize)]
pub struct PresetConfig {
    /// The program.
    pub program: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Flag that selects the model.
    #[serde(default)]
    pub model_flag: Option<String>,
    /// `stdin` (default) or `flag:--name`.
    #[serde(default)]
    pub prompt: Option<String>,
    /// `plain` (default), `claude-code`, `codex` or `gemini`.
    #[serde(default)]
    pub format: Format,
}

/// The built-in presets plus the operator's (which win on a name clash).
pub fn all(configured: &BTreeMap<String, PresetConfig>) -> Result<Vec<Preset>, String> {
    let mut presets: Vec<Preset> = builtin()
        .into_iter()
        .filter(|p| !configured.contains_key(&p.name))
        .collect();
    for (name, config) in configured {
        if name == COMMAND {
            return Err("presets.command is reserved for the task's own command".into());
        }
        let prompt = match config.prompt.as_deref() {
            None | Some("stdin") => PromptVia::Stdin,
            Some(other) => match other.strip_prefix("flag:") {
                Some(flag) if !flag.is_empty() => PromptVia::Flag(flag.to_owned()),
                _ => {
                    return Err(format!(
                        "presets.{name}.prompt {other:?} is not `stdin` or `flag:--NAME`"
                    ))
                }
            },
        };
        presets.push(Preset {
            name: name.clone(),
            program: config.program.clone(),
            args: config.args.clone(),
            model_flag: config.model_flag.clone(),
            tail: vec![],
            prompt,
            format: config.format,
        });
    }
    Ok(presets)
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

/// How one task's agent is started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    /// The argv.
    pub argv: Vec<String>,
    /// Whether the prompt goes to stdin.
    pub prompt_on_stdin: bool,
    /// How to read its output.
    pub format: Format,
}

/// The invocation for `spec`'s agent.
pub fn invocation(spec: &TaskSpec, presets: &[Preset]) -> Result<Invocation, String> {
    let agent = match &spec.agent {
        Some(agent) if agent.preset != COMMAND => agent,
        _ => {
            if spec.command.is_empty() {
                return Err("the task has no command".into());
            }
            return Ok(Invocation {
                argv: spec.command.clone(),
                prompt_on_stdin: true,
                format: Format::Plain,
            });
        }
    };
    let preset = presets
        .iter()
        .find(|p| p.name == agent.preset)
        .ok_or_else(|| format!("this runner has no agent preset {:?}", agent.preset))?;
    let mut argv = vec![preset.program.clone()];
    argv.extend(preset.args.iter().cloned());
    if let Some(model) = &agent.model {
        let flag = preset
            .model_flag
            .as_ref()
            .ok_or_else(|| format!("preset {:?} cannot select a model", preset.name))?;
        argv.extend([flag.clone(), model.clone()]);
    }
    argv.extend(agent.args.iter().cloned());
    if let PromptVia::Flag(flag) = &preset.prompt {
        argv.extend([flag.clone(), spec.prompt.clone()]);
    }
    argv.extend(preset.tail.iter().cloned());
    Ok(Invocation {
        argv,
        prompt_on_stdin: preset.prompt == PromptVia::Stdin,
        format: preset.format,
    })
}

/// What one line of an agent's output was.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Parsed {
    /// The events it held.
    pub events: Vec<AgentEvent>,
    /// True when it starts a new turn (for the turn budget).
    pub new_turn: bool,
}

/// Parses one line in `format`. `None` means "not an event this parser knows": the line is
/// kept as a plain log line.
pub fn parse(format: Format, line: &str) -> Option<Parsed> {
    if format == Format::Plain || !line.trim_start().starts_with('{') {
        return None;
    }
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    match format {
        Format::Plain => None,
        Format::ClaudeCode => claude::parse(&value),
        Format::Codex => codex::parse(&value),
        Format::Gemini => gemini::parse(&value),
    }
}

/// Cuts tool output to the line limit for its event.
fn clip(text: &str) -> String {
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

fn text_of(value: &serde_json::Value) -> String {
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

#[cfg(test)]
mod tests;
