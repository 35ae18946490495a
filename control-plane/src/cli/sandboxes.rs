//! `kiln sandboxes` and `kiln sandboxes burn ID`.

use std::process::ExitCode;

use super::client::ApiClient;
use super::{render, SandboxesArgs, SandboxesCommand};
use crate::api_types::SandboxView;
use crate::model::SandboxRecord;

/// `kiln sandboxes ...`.
pub async fn sandboxes(
    client: &ApiClient,
    args: SandboxesArgs,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let Some(SandboxesCommand::Burn { id }) = args.action else {
        return list(client, json).await;
    };
    let sandbox: SandboxRecord = client
        .post(
            &format!("/v1/sandboxes/{id}/burn"),
            &serde_json::Value::Null,
        )
        .await?;
    if json {
        println!("{}", serde_json::to_string(&sandbox)?);
    } else {
        let reason = sandbox.reason.as_deref().unwrap_or("-");
        println!("sandbox {} is {} ({reason})", sandbox.id, sandbox.state);
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(client: &ApiClient, json: bool) -> anyhow::Result<ExitCode> {
    let live: Vec<SandboxView> = client.get("/v1/sandboxes").await?;
    if json {
        println!("{}", serde_json::to_string(&live)?);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = live
        .iter()
        .map(|view| {
            let sandbox = &view.sandbox;
            vec![
                sandbox.id.to_string(),
                sandbox.task_id.to_string(),
                sandbox.state.to_string(),
                sandbox.provider.clone(),
                sandbox.image.clone(),
                sandbox.handle.clone().unwrap_or_else(|| "-".into()),
                render::remaining(view.remaining_ms),
            ]
        })
        .collect();
    render::table(
        &[
            "ID", "TASK", "STATE", "PROVIDER", "IMAGE", "HANDLE", "TTL LEFT",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}
