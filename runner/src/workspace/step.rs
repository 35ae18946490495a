//! Git steps on a worktree taken in its agent's view (`kiln-runner worktree-step`, also
//! `kiln worktree-step`): the runner runs them through a shim, fenced as the agent was, so
//! that the agent's git metadata (its commits, index and config, in the fence's private
//! overlay) is read only there. What comes out is a JSON answer on stdout and, for a save,
//! a git bundle in the launch's run directory: plain data the runner checks and imports.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use serde::{Deserialize, Serialize};

use super::result;

/// The hidden subcommand both binaries answer to.
pub const SUBCOMMAND: &str = "worktree-step";

/// Files left out of a commit named in an answer at most: the rest are counted.
const MAX_NAMED_SKIPS: usize = 100;

/// A step and the worktree it is taken in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// The worktree.
    pub worktree: PathBuf,
    /// What to do.
    pub step: Step,
}

/// What a step does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Say which commit HEAD is.
    Head,
    /// Commit what the agent left uncommitted.
    Commit {
        /// The commit message.
        message: String,
        /// Larger files are left out.
        max_file_bytes: u64,
    },
    /// Commit what the agent left, point `branch` at HEAD, and bundle `branch` without
    /// what `bundle_base` holds into `bundle` (no file when HEAD is `bundle_base`).
    Save {
        /// The commit message.
        message: String,
        /// Larger files are left out.
        max_file_bytes: u64,
        /// The task's branch.
        branch: String,
        /// The oldest commit the bundle's receiver has.
        bundle_base: String,
        /// Where the bundle goes.
        bundle: PathBuf,
    },
}

/// What a step found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The commit HEAD points at, after the step.
    pub head: String,
    /// The commit the step made, if it made one.
    pub committed: Option<String>,
    /// Files left out of that commit for their size (at most 100 named).
    pub skipped: Vec<String>,
    /// Whether a bundle was written.
    pub bundled: bool,
}

/// Runs the step given as JSON in the one argument after the subcommand.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let [job] = args.as_slice() else {
        eprintln!("kiln {SUBCOMMAND}: expected one argument, the job as JSON");
        return ExitCode::from(2);
    };
    let job: Job = match serde_json::from_str(&job.to_string_lossy()) {
        Ok(job) => job,
        Err(e) => {
            eprintln!("kiln {SUBCOMMAND}: bad job: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&job) {
        Ok(answer) => {
            println!("{}", serde_json::to_string(&answer).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

fn run(job: &Job) -> Result<Answer, String> {
    let worktree = &job.worktree;
    let commit = |message: &str, limit: u64| {
        result::commit_leftovers(worktree, message, limit).map_err(|e| e.to_string())
    };
    let mut answer = Answer::default();
    match &job.step {
        Step::Head => {}
        Step::Commit {
            message,
            max_file_bytes,
        } => (answer.committed, answer.skipped) = commit(message, *max_file_bytes)?,
        Step::Save {
            message,
            max_file_bytes,
            branch,
            bundle_base,
            bundle,
        } => {
            (answer.committed, answer.skipped) = commit(message, *max_file_bytes)?;
            let head = result::pin_branch(worktree, branch).map_err(|e| e.to_string())?;
            if head != *bundle_base {
                write_bundle(job, branch, bundle_base, bundle)?;
                answer.bundled = true;
            }
        }
    }
    answer.skipped.truncate(MAX_NAMED_SKIPS);
    answer.head = result::head(worktree).map_err(|e| e.to_string())?;
    Ok(answer)
}

fn write_bundle(
    job: &Job,
    branch: &str,
    base: &str,
    bundle: &std::path::Path,
) -> Result<(), String> {
    let output = std::process::Command::new("git")
        .arg("-C")
        .arg(&job.worktree)
        .args(["bundle", "create", "--quiet"])
        .arg(bundle)
        .arg(format!("refs/heads/{branch}"))
        .arg(format!("^{base}"))
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run git bundle: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "git bundle failed: {} ({})",
        String::from_utf8_lossy(&output.stderr).trim(),
        output.status
    ))
}
