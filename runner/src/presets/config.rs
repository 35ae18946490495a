//! Presets an operator defines in runner.yaml under `presets:`, checked as they are read.

use std::collections::BTreeMap;

use kiln_protocol::Autonomy;
use serde::Deserialize;

use super::{builtin, Format, Preset, PromptVia, Resume, COMMAND};

/// A preset defined in runner.yaml under `presets:`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// Arguments for `read-only`, `edit` and `full` (`kiln submit --autonomy`).
    #[serde(default)]
    pub autonomy: BTreeMap<Autonomy, Vec<String>>,
    /// Flag that caps a run's cost in US dollars (given `--max-cost`).
    #[serde(default)]
    pub budget_flag: Option<String>,
    /// `flag:--resume` (the id follows the flag) or `subcommand:resume` (the word and the
    /// id go last); absent, `--continue` has no conversation to resume.
    #[serde(default)]
    pub resume: Option<String>,
    /// Environment the CLI needs.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

impl PresetConfig {
    fn preset(&self, name: &str) -> Result<Preset, String> {
        let prompt = match self.prompt.as_deref() {
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
        let resume = match self.resume.as_deref() {
            None => Resume::Unsupported,
            Some(other) => match other.split_once(':') {
                Some(("flag", flag)) if !flag.is_empty() => Resume::Flag(flag.to_owned()),
                Some(("subcommand", word)) if !word.is_empty() => {
                    Resume::Subcommand(word.to_owned())
                }
                _ => {
                    return Err(format!(
                        "presets.{name}.resume {other:?} is not `flag:--NAME` or `subcommand:WORD`"
                    ))
                }
            },
        };
        if self.program.trim().is_empty() {
            return Err(format!("presets.{name}.program is empty"));
        }
        Ok(Preset {
            name: name.to_owned(),
            program: self.program.clone(),
            args: self.args.clone(),
            model_flag: self.model_flag.clone(),
            tail: vec![],
            prompt,
            format: self.format,
            autonomy: self.autonomy.clone(),
            autonomy_in_box: BTreeMap::new(),
            env_in_box: BTreeMap::new(),
            budget_flag: self.budget_flag.clone(),
            resume,
            env: self.env.clone().into_iter().collect(),
        })
    }
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
        presets.push(config.preset(name)?);
    }
    Ok(presets)
}
