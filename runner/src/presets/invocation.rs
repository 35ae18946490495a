//! How one task's agent is started: the argv its preset, model, autonomy and extra
//! arguments make, the environment it needs, and what each run adds (the conversation it
//! resumes, the budget left).

use kiln_protocol::TaskSpec;

use super::{Format, Preset, PromptVia, Resume, COMMAND};

/// Where the agent runs, which changes what some autonomy levels mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enclosure {
    /// On the runner's machine (fenced when the runner can).
    Host,
    /// In a box that is its fence: a kiln sandbox, or the docker executor's container.
    Box,
}

/// What one run of the agent adds to the invocation.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunArgs<'a> {
    /// The conversation to continue.
    pub resume: Option<&'a str>,
    /// The cost budget left, in US dollars, for a CLI that stops at a budget itself.
    pub budget_usd: Option<f64>,
}

/// How one task's agent is started.
#[derive(Clone, Debug, PartialEq)]
pub struct Invocation {
    /// The preset's name.
    pub preset: String,
    /// The argv up to where a run's own arguments go.
    head: Vec<String>,
    /// The argv after them.
    tail: Vec<String>,
    resume: Resume,
    budget_flag: Option<String>,
    /// Environment the CLI needs, on top of the task's.
    pub env: Vec<(String, String)>,
    /// Whether the prompt goes to stdin.
    pub prompt_on_stdin: bool,
    /// How to read its output.
    pub format: Format,
}

impl Invocation {
    /// The argv of one run.
    pub fn argv(&self, run: RunArgs<'_>) -> Vec<String> {
        let mut argv = self.head.clone();
        if let (Some(flag), Some(budget)) = (&self.budget_flag, run.budget_usd) {
            argv.extend([flag.clone(), format!("{:.4}", budget.max(0.0))]);
        }
        match (&self.resume, run.resume) {
            (Resume::Flag(flag), Some(id)) => argv.extend([flag.clone(), id.to_owned()]),
            (Resume::Subcommand(word), Some(id)) => argv.extend([word.clone(), id.to_owned()]),
            _ => {}
        }
        argv.extend(self.tail.iter().cloned());
        argv
    }

    /// True when a run can continue an earlier conversation.
    pub fn can_resume(&self) -> bool {
        self.resume != Resume::Unsupported
    }
}

/// The invocation for `spec`'s agent, run in `enclosure`.
pub fn invocation(
    spec: &TaskSpec,
    presets: &[Preset],
    enclosure: Enclosure,
) -> Result<Invocation, String> {
    let agent = match &spec.agent {
        Some(agent) if agent.preset != COMMAND => agent,
        _ => return own_command(spec),
    };
    let preset = presets
        .iter()
        .find(|p| p.name == agent.preset)
        .ok_or_else(|| format!("this runner has no agent preset {:?}", agent.preset))?;
    let level = agent.autonomy.unwrap_or_default();
    let boxed = enclosure == Enclosure::Box;
    let level_args = boxed
        .then(|| preset.autonomy_in_box.get(&level))
        .flatten()
        .or_else(|| preset.autonomy.get(&level));
    if level_args.is_none() && agent.autonomy.is_some() {
        return Err(format!(
            "preset {:?} does not say what autonomy {} means (presets.{}.autonomy in runner.yaml)",
            preset.name,
            level.as_str(),
            preset.name
        ));
    }
    if agent.continue_conversation && preset.resume == Resume::Unsupported {
        return Err(format!(
            "preset {:?} cannot resume a conversation (presets.{}.resume in runner.yaml)",
            preset.name, preset.name
        ));
    }
    let mut head = vec![preset.program.clone()];
    head.extend(preset.args.iter().cloned());
    if let Some(model) = &agent.model {
        let flag = preset
            .model_flag
            .as_ref()
            .ok_or_else(|| format!("preset {:?} cannot select a model", preset.name))?;
        head.extend([flag.clone(), model.clone()]);
    }
    head.extend(level_args.into_iter().flatten().cloned());
    head.extend(agent.args.iter().cloned());
    if let PromptVia::Flag(flag) = &preset.prompt {
        head.extend([flag.clone(), spec.prompt.clone()]);
    }
    let mut env = preset.env.clone();
    if boxed {
        env.extend(preset.env_in_box.get(&level).into_iter().flatten().cloned());
    }
    Ok(Invocation {
        preset: preset.name.clone(),
        head,
        tail: preset.tail.clone(),
        resume: preset.resume.clone(),
        budget_flag: preset.budget_flag.clone(),
        env,
        prompt_on_stdin: preset.prompt == PromptVia::Stdin,
        format: preset.format,
    })
}

/// The task's own argv, its prompt on stdin.
fn own_command(spec: &TaskSpec) -> Result<Invocation, String> {
    if spec.command.is_empty() {
        return Err("the task has no command".into());
    }
    if let Some(level) = spec.agent.as_ref().and_then(|a| a.autonomy) {
        return Err(format!(
            "autonomy {} applies to agent presets, not the task's own command",
            level.as_str()
        ));
    }
    Ok(Invocation {
        preset: COMMAND.to_owned(),
        head: spec.command.clone(),
        tail: vec![],
        resume: Resume::Unsupported,
        budget_flag: None,
        env: vec![],
        prompt_on_stdin: true,
        format: Format::Plain,
    })
}
