//! `kiln submit`, `kiln tasks`, `kiln task`.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::process::ExitCode;

use super::client::ApiClient;
use super::exit::{self, Exit};
use kiln_protocol::limits::MAX_PROMPT_BYTES;
use kiln_protocol::{AgentSpec, ContainerSpec};

use super::{logs, render, AgentArgs, CancelArgs, SubmitArgs, TaskArgs, TasksArgs};
use crate::api_types::{SandboxRequest, SubmitRequest, TaskDetail, TaskPage};
use crate::model::{RunOptions, TaskRecord, TaskState};

/// `kiln submit`.
pub async fn submit(client: &ApiClient, args: SubmitArgs, json: bool) -> anyhow::Result<ExitCode> {
    let request = submit_request(&args)?;
    let task: TaskRecord = client.post("/v1/tasks", &request).await?;
    let id = task.spec.id.to_string();
    if !args.wait && !args.follow {
        if json {
            println!("{}", serde_json::to_string(&task)?);
        } else {
            println!("{id}");
            eprintln!(
                "task {id} {}; follow it with: kiln logs -f {id}",
                task.state
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let print = if args.follow {
        logs::Print::Human
    } else {
        logs::Print::Nothing
    };
    let print = if args.follow && json {
        logs::Print::Json
    } else {
        print
    };
    logs::stream(client, &id, None, 0, true, print).await?;
    let detail: TaskDetail = client.get(&format!("/v1/tasks/{id}")).await?;
    if json && !args.follow {
        println!("{}", serde_json::to_string(&detail)?);
    } else if !json {
        eprintln!("{}", summary(&detail.task));
    }
    Ok(task_exit(detail.task.state))
}

fn task_exit(state: TaskState) -> ExitCode {
    match state {
        TaskState::Succeeded => ExitCode::SUCCESS,
        _ => ExitCode::from(exit::TASK_FAILED),
    }
}

fn summary(task: &TaskRecord) -> String {
    let message = task.outcome.as_ref().map_or("", |o| o.message.as_str());
    let mut line = format!("task {} {}", task.spec.id, task.state);
    if !message.is_empty() {
        line.push_str(&format!(": {message}"));
    }
    if let Some(result) = task.outcome.as_ref().and_then(|o| o.result.as_ref()) {
        let stat = result.diffstat;
        line.push_str(&format!(
            "\n  branch {} at {} ({} commit(s), {} file(s), +{} -{})",
            result.branch,
            &result.head_commit[..12.min(result.head_commit.len())],
            result.commits.len(),
            stat.files_changed,
            stat.insertions,
            stat.deletions
        ));
        if result.pushed {
            line.push_str(" pushed");
        }
    }
    if let Some(outcome) = &task.outcome {
        if let Some(stop) = outcome.stop {
            let stop = serde_json::to_value(stop)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let iterations = outcome
                .iterations
                .map_or(String::new(), |n| format!(" after {n} run(s)"));
            line.push_str(&format!("\n  stopped   {stop}{iterations}"));
        }
        if let Some(usage) = &outcome.usage {
            line.push_str(&format!("\n  usage     {}", render::usage(usage)));
        }
    }
    line
}

fn usage(message: impl std::fmt::Display) -> anyhow::Error {
    Exit::with(exit::USAGE, message)
}

fn submit_request(args: &SubmitArgs) -> anyhow::Result<SubmitRequest> {
    let own_command = args.agent.agent.as_deref().is_none_or(|a| a == "command");
    if own_command && args.command.is_empty() {
        return Err(usage(
            "no agent command: put it after `--`, for example: kiln submit --repo . -- sh -c 'make fix'",
        ));
    }
    let prompt = match (&args.prompt, &args.prompt_file) {
        (Some(text), _) => text.clone(),
        (None, Some(path)) if path.as_os_str() == "-" => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| usage(format!("cannot read prompt from stdin: {e}")))?;
            text
        }
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| usage(format!("cannot read prompt file {}: {e}", path.display())))?,
        (None, None) => String::new(),
    };
    if prompt.len() > MAX_PROMPT_BYTES {
        let source = match &args.prompt_file {
            Some(path) if args.prompt.is_none() => format!("prompt file {}", path.display()),
            _ => "--prompt".to_owned(),
        };
        return Err(usage(format!(
            "{source} is {} bytes; a task's prompt may be at most {MAX_PROMPT_BYTES}",
            prompt.len()
        )));
    }
    let env = key_values("--env", &args.env)?;
    let labels = key_values("--label", &args.labels)?;
    let secret_env = args
        .secret_env
        .iter()
        .map(|item| match item.split_once('=') {
            Some((name, value)) => Ok((name.to_owned(), value.to_owned())),
            None => std::env::var(item)
                .map(|value| (item.clone(), value))
                .map_err(|_| {
                    usage(format!(
                        "--secret-env {item}: no such variable in this shell"
                    ))
                }),
        })
        .collect::<anyhow::Result<BTreeMap<_, _>>>()?;
    let millis = |d: Option<std::time::Duration>| {
        d.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    };
    Ok(SubmitRequest {
        repo: match &args.repo {
            Some(repo) => normalize_repo(repo)?,
            None => String::new(),
        },
        base_ref: args.base_ref.clone(),
        branch: args.branch.clone(),
        prompt,
        command: args.command.clone(),
        env,
        secret_env,
        requires: args.requires.clone(),
        labels,
        priority: args.priority,
        timeout_ms: millis(args.timeout),
        idle_timeout_ms: millis(args.idle_timeout),
        max_attempts: args.max_attempts,
        options: run_options(&args.agent),
        workspace_id: args
            .session
            .as_deref()
            .map(|s| {
                s.parse()
                    .map_err(|_| usage(format!("--session {s:?} is not a session id")))
            })
            .transpose()?,
        sandbox: args.sandbox.as_ref().map(|provider| SandboxRequest {
            provider: provider.clone(),
            image: args.image.clone(),
            ttl_ms: millis(args.sandbox_ttl),
        }),
    })
}

fn run_options(agent: &AgentArgs) -> RunOptions {
    RunOptions {
        agent: agent.agent.as_ref().map(|preset| AgentSpec {
            preset: preset.clone(),
            model: agent.model.clone(),
            args: agent.agent_args.clone(),
            autonomy: agent.autonomy.map(Into::into),
            continue_conversation: agent.continue_conversation,
        }),
        max_iterations: agent.max_iterations,
        completion_signal: agent.completion_signal.clone(),
        completion_grace_ms: agent
            .completion_grace
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        max_turns: agent.max_turns,
        max_cost_usd: agent.max_cost,
        push: agent.push,
        container: agent.container_image.as_ref().map(|image| ContainerSpec {
            image: image.clone(),
        }),
    }
}

fn key_values(flag: &str, pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|pair| {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| usage(format!("{flag} {pair:?} is not KEY=VALUE")))?;
            Ok((key.to_owned(), value.to_owned()))
        })
        .collect()
}

/// URLs (and scp-style `host:path`) pass through; anything else is a local path, made
/// absolute so that a runner on this machine finds it.
pub fn normalize_repo(repo: &str) -> anyhow::Result<String> {
    let is_url = repo.contains("://")
        || (repo.contains(':') && !repo.starts_with('/') && !repo.starts_with('.'));
    if is_url {
        return Ok(repo.to_owned());
    }
    let path = std::fs::canonicalize(repo).map_err(|e| {
        usage(format!(
            "--repo {repo:?} is not a URL and not a readable path: {e}"
        ))
    })?;
    Ok(path.to_string_lossy().into_owned())
}

/// `kiln tasks`.
pub async fn tasks(client: &ApiClient, args: TasksArgs, json: bool) -> anyhow::Result<ExitCode> {
    if let Some(state) = &args.state {
        state.parse::<TaskState>().map_err(usage)?;
    }
    let mut query: Vec<(&str, String)> = vec![("limit", args.limit.to_string())];
    let filters = [
        ("state", &args.state),
        ("repo", &args.repo),
        ("runner", &args.runner),
    ];
    for (name, value) in filters {
        if let Some(value) = value {
            query.push((name, value.clone()));
        }
    }
    if let Some(label) = &args.label {
        query.push(("label", label.clone()));
    }
    if let Some(before) = &args.before {
        query.push(("before", before.clone()));
    }
    let encoded: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    let page: TaskPage = client
        .get(&format!("/v1/tasks?{}", encoded.join("&")))
        .await?;
    if json {
        println!("{}", serde_json::to_string(&page)?);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = page
        .tasks
        .iter()
        .map(|t| {
            vec![
                t.spec.id.to_string(),
                t.state.to_string(),
                t.attempt.to_string(),
                t.spec.priority.to_string(),
                render::ago(Some(t.spec.created_at)),
                render::clip(&t.spec.repo, 40),
                render::clip(&t.spec.command.join(" "), 40),
            ]
        })
        .collect();
    render::table(
        &[
            "ID", "STATE", "ATTEMPT", "PRIORITY", "CREATED", "REPO", "COMMAND",
        ],
        &rows,
    );
    if let Some(next) = page.next_before {
        eprintln!("more: kiln tasks --before {next}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `kiln retry ID`.
pub async fn retry(client: &ApiClient, args: TaskArgs, json: bool) -> anyhow::Result<ExitCode> {
    let task: TaskRecord = client
        .post(
            &format!("/v1/tasks/{}/retry", args.id),
            &serde_json::Value::Null,
        )
        .await?;
    if json {
        println!("{}", serde_json::to_string(&task)?);
    } else {
        println!(
            "task {} queued again; attempt {} comes next",
            task.spec.id,
            task.attempt + 1
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `kiln task ID`.
pub async fn show(client: &ApiClient, args: TaskArgs, json: bool) -> anyhow::Result<ExitCode> {
    let detail: TaskDetail = client.get(&format!("/v1/tasks/{}", args.id)).await?;
    if json {
        println!("{}", serde_json::to_string(&detail)?);
        return Ok(ExitCode::SUCCESS);
    }
    let task = &detail.task;
    println!("{}", summary(task));
    if let Some(reason) = &detail.waiting_reason {
        println!("  waiting   {reason}");
    }
    println!("  repo      {}", task.spec.repo);
    println!(
        "  ref       {}",
        task.spec.base_ref.as_deref().unwrap_or("(default branch)")
    );
    println!("  command   {}", task.spec.command.join(" "));
    println!(
        "  priority  {}   max attempts {}",
        task.spec.priority, task.spec.max_attempts
    );
    println!("  created   {}", render::time(Some(task.spec.created_at)));
    println!("  finished  {}", render::time(task.finished_at));
    if !detail.attempts.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = detail
            .attempts
            .iter()
            .map(|a| {
                vec![
                    a.attempt.to_string(),
                    a.runner_id.to_string(),
                    a.state.to_string(),
                    render::time(a.started_at.or(Some(a.assigned_at))),
                    render::time(a.finished_at),
                    a.outcome
                        .as_ref()
                        .map_or(String::new(), |o| o.message.clone()),
                ]
            })
            .collect();
        render::table(
            &[
                "ATTEMPT", "RUNNER", "STATE", "STARTED", "FINISHED", "OUTCOME",
            ],
            &rows,
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `kiln cancel ID`.
pub async fn cancel(client: &ApiClient, args: CancelArgs, json: bool) -> anyhow::Result<ExitCode> {
    let body = serde_json::json!({ "reason": args.reason });
    let task: TaskRecord = client
        .post(&format!("/v1/tasks/{}/cancel", args.id), &body)
        .await?;
    if json {
        println!("{}", serde_json::to_string(&task)?);
    } else if task.state.is_terminal() {
        println!("task {} is {}", task.spec.id, task.state);
    } else {
        println!(
            "task {} is stopping (its agent gets SIGTERM, then SIGKILL after the grace period)",
            task.spec.id
        );
    }
    Ok(ExitCode::SUCCESS)
}
