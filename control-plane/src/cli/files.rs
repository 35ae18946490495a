//! `kiln files ID ls|get|put|rm`: files in a live worktree, through its runner.

use std::io::Write as _;
use std::process::ExitCode;

use base64::Engine as _;
use kiln_protocol::limits::MAX_FILE_BYTES;
use kiln_protocol::{FileOp, FileResult};

use super::client::ApiClient;
use super::exit::{self, Exit};
use super::{render, FilesArgs, FilesCommand};

/// `kiln files`.
pub async fn files(client: &ApiClient, args: FilesArgs, json: bool) -> anyhow::Result<ExitCode> {
    let engine = base64::engine::general_purpose::STANDARD;
    let op = match &args.action {
        FilesCommand::Ls { path } => FileOp::List { path: path.clone() },
        FilesCommand::Get { path, .. } => FileOp::Read { path: path.clone() },
        FilesCommand::Rm { path } => FileOp::Delete { path: path.clone() },
        FilesCommand::Put { local, path } => {
            let bytes = std::fs::read(local).map_err(|e| {
                Exit::with(exit::USAGE, format!("cannot read {}: {e}", local.display()))
            })?;
            if bytes.len() > MAX_FILE_BYTES {
                return Err(Exit::with(
                    exit::USAGE,
                    format!(
                        "{} is {} bytes; a file sent to a worktree may be at most {MAX_FILE_BYTES}",
                        local.display(),
                        bytes.len()
                    ),
                ));
            }
            FileOp::Write {
                path: path.clone(),
                data: engine.encode(bytes),
            }
        }
    };
    let result: FileResult = client.post(&format!("/v1/files/{}", args.id), &op).await?;
    if json {
        println!("{}", serde_json::to_string(&result)?);
        if let FileResult::Failed { .. } = result {
            return Ok(ExitCode::from(exit::ERROR));
        }
        return Ok(ExitCode::SUCCESS);
    }
    match (result, &args.action) {
        (FileResult::Failed { error }, _) => return Err(Exit::with(exit::ERROR, error)),
        (FileResult::Listed { entries }, _) => {
            let rows: Vec<Vec<String>> = entries
                .iter()
                .map(|e| vec![e.kind.clone(), e.size.to_string(), e.name.clone()])
                .collect();
            render::table(&["KIND", "SIZE", "NAME"], &rows);
        }
        (FileResult::Read { data }, FilesCommand::Get { output, path }) => {
            let bytes = engine.decode(data).map_err(|e| {
                Exit::with(exit::ERROR, format!("unreadable contents of {path}: {e}"))
            })?;
            match output {
                Some(file) => std::fs::write(file, bytes).map_err(|e| {
                    Exit::with(exit::ERROR, format!("cannot write {}: {e}", file.display()))
                })?,
                None => std::io::stdout().write_all(&bytes)?,
            }
        }
        (FileResult::Written, FilesCommand::Put { path, .. }) => eprintln!("wrote {path}"),
        (FileResult::Deleted, FilesCommand::Rm { path }) => eprintln!("deleted {path}"),
        (other, _) => eprintln!("unexpected answer: {other:?}"),
    }
    Ok(ExitCode::SUCCESS)
}
