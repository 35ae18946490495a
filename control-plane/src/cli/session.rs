//! `kiln session create|show|close` and `kiln exec`.

use std::process::ExitCode;

use super::client::ApiClient;
use super::{logs, render, ExecArgs, SessionCommand};
use crate::api_types::{CreateWorkspace, SubmitRequest, TaskDetail};
use crate::model::{TaskRecord, TaskState, WorkspaceRecord};

/// `kiln session ...`.
pub async fn session(
    client: &ApiClient,
    command: SessionCommand,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let record: WorkspaceRecord = match command {
        SessionCommand::Create {
            repo,
            base_ref,
            branch,
            setup,
        } => {
            let request = CreateWorkspace {
                repo: super::tasks::normalize_repo(&repo)?,
                base_ref,
                branch,
                setup: setup
                    .into_iter()
                    .map(|cmd| vec!["sh".into(), "-c".into(), cmd])
                    .collect(),
            };
            let record: WorkspaceRecord = client.post("/v1/workspaces", &request).await?;
            if !json {
                println!("{}", record.id);
                eprintln!(
                    "session {} open on {}; run in it with: kiln submit --session {} ...",
                    record.id, record.branch, record.id
                );
                return Ok(ExitCode::SUCCESS);
            }
            record
        }
        SessionCommand::Show { id } => client.get(&format!("/v1/workspaces/{id}")).await?,
        SessionCommand::Close { id } => {
            client
                .post(
                    &format!("/v1/workspaces/{id}/close"),
                    &serde_json::Value::Null,
                )
                .await?
        }
    };
    if json {
        println!("{}", serde_json::to_string(&record)?);
    } else {
        println!("session {} {}", record.id, record.state);
        println!("  repo      {}", record.repo);
        println!("  branch    {}", record.branch);
        let runner = record
            .runner_id
            .map_or("(not yet bound)".to_owned(), |r| r.to_string());
        println!("  runner    {runner}");
        println!("  created   {}", render::time(Some(record.created_at)));
    }
    Ok(ExitCode::SUCCESS)
}

/// `kiln exec SESSION -- CMD`: a task in the session that runs `CMD`, followed live; exits
/// with the command's status (3 when it failed).
pub async fn exec(client: &ApiClient, args: ExecArgs, json: bool) -> anyhow::Result<ExitCode> {
    let request = SubmitRequest {
        command: args.command,
        workspace_id: Some(args.session.parse().map_err(|_| {
            super::exit::Exit::with(
                super::exit::USAGE,
                format!("{:?} is not a session id", args.session),
            )
        })?),
        max_attempts: Some(1),
        ..SubmitRequest::default()
    };
    let task: TaskRecord = client.post("/v1/tasks", &request).await?;
    let id = task.spec.id.to_string();
    let print = if json {
        logs::Print::Json
    } else {
        logs::Print::Human
    };
    logs::stream(client, &id, None, 0, true, print).await?;
    let detail: TaskDetail = client.get(&format!("/v1/tasks/{id}")).await?;
    Ok(match detail.task.state {
        TaskState::Succeeded => ExitCode::SUCCESS,
        _ => ExitCode::from(super::exit::TASK_FAILED),
    })
}
