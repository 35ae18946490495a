//! Running the git CLI: for fetching (it honours the operator's credential helpers and SSH
//! setup), worktree checkout (faster than libgit2 here, see docs/performance.md) and bundles
//! (which libgit2 cannot write).

use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

/// Most bytes of git's stderr kept in an error: enough for its message, not for a flood.
const MAX_ERROR_DETAIL: usize = 1000;

/// git failed; the message carries its stderr.
#[derive(Debug, thiserror::Error)]
#[error("git {command} failed: {detail}")]
pub struct GitError {
    command: String,
    detail: String,
}

impl GitError {
    /// A filesystem step around git failed.
    pub fn io(what: &str, error: std::io::Error) -> Self {
        Self {
            command: what.to_owned(),
            detail: error.to_string(),
        }
    }
}

/// Runs `git -C dir args...` without a terminal prompt and returns its stdout.
pub async fn run(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    // The subcommand, after any `-c key=value` settings.
    let mut words = args.iter().copied();
    let mut command = words.next().unwrap_or_default();
    while command == "-c" {
        let _setting = words.next();
        command = words.next().unwrap_or_default();
    }
    let command = command.to_owned();
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "true")
        .env_remove("KILN_RUNNER_TOKEN")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| GitError {
            command: command.clone(),
            detail: format!("cannot run git: {e}"),
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let mut detail: String = stderr.trim().lines().collect::<Vec<_>>().join("; ");
        if detail.len() > MAX_ERROR_DETAIL {
            let cut = (0..=MAX_ERROR_DETAIL)
                .rev()
                .find(|i| detail.is_char_boundary(*i))
                .unwrap_or(0);
            detail.truncate(cut);
        }
        return Err(GitError {
            command,
            detail: format!("{detail} ({})", output.status),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
