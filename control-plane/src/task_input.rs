//! Turns a submit request into a task, or says exactly which field is wrong and why.

use std::fmt;

use kiln_protocol::limits::MAX_PROMPT_BYTES;
use kiln_protocol::{validate, TaskId, UnixMillis};

use crate::api_types::SubmitRequest;
use crate::model::{NewTask, SecretEnv, WorkspaceRecord, WorkspaceState};

/// The preset name that means "the task's own command".
const COMMAND_PRESET: &str = "command";

/// Attempts a task gets when the submitter does not say: one retry after a lost runner.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 2;

/// Most attempts a task may ask for; more would hide a task that can never succeed.
pub const MAX_ATTEMPTS_LIMIT: u32 = 10;

/// A field of a submit request that cannot be accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidField {
    /// The field, as named in the API.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for InvalidField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.field, self.reason)
    }
}

fn check(field: &str, result: Result<(), String>) -> Result<(), InvalidField> {
    result.map_err(|reason| InvalidField {
        field: field.to_owned(),
        reason,
    })
}

fn positive(field: &str, value: Option<u64>) -> Result<(), InvalidField> {
    check(
        field,
        match value {
            Some(0) => Err("must be greater than zero".into()),
            _ => Ok(()),
        },
    )
}

/// Most iterations a task may ask for.
pub const MAX_ITERATIONS_LIMIT: u32 = 100;

/// Longest completion signal.
pub const MAX_SIGNAL_BYTES: usize = 1000;

/// Capability of runners that run agents in containers (the docker executor).
pub const DOCKER_CAPABILITY: &str = "docker";

/// Validates `request` (run in `workspace`, if given) and makes the task it describes.
pub fn new_task(
    mut request: SubmitRequest,
    workspace: Option<&WorkspaceRecord>,
    now: UnixMillis,
) -> Result<NewTask, InvalidField> {
    let id = TaskId::new();
    if let Some(workspace) = workspace {
        if workspace.state != WorkspaceState::Open {
            check(
                "workspace_id",
                Err(format!("{} is {}", workspace.id, workspace.state)),
            )?;
        }
        if !request.repo.is_empty() && request.repo != workspace.repo {
            check(
                "repo",
                Err(format!(
                    "differs from the session's repository {}",
                    workspace.repo
                )),
            )?;
        }
        request.repo = workspace.repo.clone();
        request.base_ref = workspace.base_ref.clone();
        request.branch = Some(workspace.branch.clone());
    }
    check("repo", validate::repo(&request.repo))?;
    if let Some(base_ref) = &request.base_ref {
        check("base_ref", validate::git_ref(base_ref))?;
    }
    check_options(&mut request)?;
    let branch = request.branch.unwrap_or_else(|| format!("kiln/{id}"));
    check("branch", validate::git_ref(&branch))?;
    if request.prompt.len() > MAX_PROMPT_BYTES {
        check(
            "prompt",
            Err(format!(
                "is {} bytes; the limit is {MAX_PROMPT_BYTES}",
                request.prompt.len()
            )),
        )?;
    }
    if let Some(at) = request.prompt.find('\0') {
        // No text store keeps NUL (PostgreSQL refuses it), and no agent wants one.
        check("prompt", Err(format!("has a NUL character at byte {at}")))?;
    }
    let own_command = request
        .options
        .agent
        .as_ref()
        .is_none_or(|a| a.preset == COMMAND_PRESET);
    match request.command.first() {
        None if own_command => check(
            "command",
            Err("is empty: give the agent's program and arguments, or an --agent preset".into()),
        )?,
        Some(program) if program.is_empty() => {
            check("command", Err("has an empty program".into()))?
        }
        _ => {}
    }
    for key in request.env.keys().chain(request.secret_env.keys()) {
        check(&format!("env.{key}"), validate::env_name(key))?;
    }
    for capability in &request.requires {
        check("requires", validate::name(capability))?;
    }
    for (key, value) in &request.labels {
        check(&format!("labels.{key}"), validate::name(key))?;
        check(&format!("labels.{key}"), validate::name(value))?;
    }
    positive("timeout_ms", request.timeout_ms)?;
    positive("idle_timeout_ms", request.idle_timeout_ms)?;
    let max_attempts = request.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
    if !(1..=MAX_ATTEMPTS_LIMIT).contains(&max_attempts) {
        check(
            "max_attempts",
            Err(format!(
                "is {max_attempts}; it must be 1 to {MAX_ATTEMPTS_LIMIT}"
            )),
        )?;
    }
    let task = NewTask {
        id,
        repo: request.repo,
        base_ref: request.base_ref,
        branch,
        prompt: request.prompt,
        command: request.command,
        env: request.env,
        secret_env: SecretEnv(request.secret_env),
        requires: request.requires,
        labels: request.labels,
        priority: request.priority,
        timeout_ms: request.timeout_ms,
        idle_timeout_ms: request.idle_timeout_ms,
        max_attempts,
        created_at: now,
        options: request.options,
        workspace_id: workspace.map(|w| w.id),
        sandbox_id: None,
    };
    crate::assignment::check_fits(&task, workspace)?;
    Ok(task)
}

/// Checks the agent preset, loop and budgets; a preset adds `agent:<name>` to `requires`.
fn check_options(request: &mut SubmitRequest) -> Result<(), InvalidField> {
    let options = &request.options;
    if let Some(agent) = &options.agent {
        check("agent", validate::name(&agent.preset))?;
        if let Some(model) = &agent.model {
            check("model", validate::name(model))?;
        }
        let capability = format!("agent:{}", agent.preset);
        if agent.preset != COMMAND_PRESET && !request.requires.contains(&capability) {
            request.requires.push(capability);
        }
    }
    if let Some(iterations) = options.max_iterations {
        if !(1..=MAX_ITERATIONS_LIMIT).contains(&iterations) {
            check(
                "max_iterations",
                Err(format!(
                    "is {iterations}; it must be 1 to {MAX_ITERATIONS_LIMIT}"
                )),
            )?;
        }
        if options.completion_signal.is_none() {
            check(
                "max_iterations",
                Err("needs a completion_signal to know when to stop".into()),
            )?;
        }
    }
    if let Some(signal) = &options.completion_signal {
        if signal.is_empty() || signal.len() > MAX_SIGNAL_BYTES {
            check(
                "completion_signal",
                Err(format!("must be 1 to {MAX_SIGNAL_BYTES} bytes")),
            )?;
        }
    }
    if let Some(container) = &options.container {
        check("container.image", validate::image(&container.image))?;
        if !request.requires.iter().any(|c| c == DOCKER_CAPABILITY) {
            request.requires.push(DOCKER_CAPABILITY.to_owned());
        }
    }
    positive("completion_grace_ms", options.completion_grace_ms)?;
    positive("max_turns", options.max_turns)?;
    if let Some(cost) = options.max_cost_usd {
        if !(cost.is_finite() && cost > 0.0) {
            check(
                "max_cost_usd",
                Err(format!("is {cost}; it must be a positive amount")),
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> SubmitRequest {
        SubmitRequest {
            repo: "/srv/app".into(),
            command: vec!["true".into()],
            ..SubmitRequest::default()
        }
    }

    fn refusal(request: SubmitRequest) -> String {
        new_task(request, None, 0).unwrap_err().to_string()
    }

    #[test]
    fn defaults_fill_branch_and_attempts() {
        let task = new_task(request(), None, 7).unwrap();
        assert_eq!(task.branch, format!("kiln/{}", task.id));
        assert_eq!(task.max_attempts, DEFAULT_MAX_ATTEMPTS);
        assert_eq!(task.created_at, 7);
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases: Vec<(SubmitRequest, &str)> = vec![
            (
                SubmitRequest {
                    repo: "--upload-pack=x".into(),
                    ..request()
                },
                "repo starts with '-'",
            ),
            (
                SubmitRequest {
                    base_ref: Some("a..b".into()),
                    ..request()
                },
                "base_ref",
            ),
            (
                SubmitRequest {
                    branch: Some("-x".into()),
                    ..request()
                },
                "branch starts with '-'",
            ),
            (
                SubmitRequest {
                    command: vec![],
                    ..request()
                },
                "command is empty",
            ),
            (
                SubmitRequest {
                    prompt: "x".repeat(MAX_PROMPT_BYTES + 1),
                    ..request()
                },
                "prompt is",
            ),
            (
                SubmitRequest {
                    prompt: "fix\0it".into(),
                    ..request()
                },
                "prompt has a NUL character at byte 3",
            ),
            (
                SubmitRequest {
                    timeout_ms: Some(0),
                    ..request()
                },
                "timeout_ms must be",
            ),
            (
                SubmitRequest {
                    max_attempts: Some(0),
                    ..request()
                },
                "max_attempts is 0",
            ),
            (
                SubmitRequest {
                    env: [("A-B".to_string(), "1".to_string())].into(),
                    ..request()
                },
                "env.A-B",
            ),
        ];
        for (bad, expected) in cases {
            let message = refusal(bad);
            assert!(
                message.starts_with(expected),
                "{message:?} should start with {expected:?}"
            );
        }
    }
}
