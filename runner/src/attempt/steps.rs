//! The runner's git steps on a worktree (`workspace/step.rs`), run in the agent's view: a
//! `worktree-step` of this executable through a shim, fenced as the agent was. Its one
//! line of JSON on stdout is the answer; its stderr, the error.

use std::path::{Path, PathBuf};

use super::agent::AgentEnd;
use super::launch::{Program, Role};
use super::watch::Verdict;
use super::Attempt;
use crate::workspace::step::{self, Answer, Job, Step};

/// The running executable: the step is this program, whatever its path on disk.
const SELF_EXE: &str = "/proc/self/exe";

/// Bytes of a failed step's stderr kept in its error.
const MAX_ERROR_BYTES: usize = 1000;

/// A step's answer, and the bundle it wrote (if it was a save that bundled).
#[derive(Debug)]
pub struct Stepped {
    /// What it found.
    pub answer: Answer,
    /// The bundle, to read before the run directory goes.
    pub bundle: Option<Vec<u8>>,
}

impl Attempt {
    /// Runs `step` on the worktree at `path` in its agent's view.
    pub(super) async fn step(&self, path: &Path, step: Step) -> Result<Stepped, String> {
        let run_dir = self.run_dir(path)?;
        let bundle_path: PathBuf = run_dir.path.join("result.bundle");
        let step = match step {
            Step::Save {
                message,
                max_file_bytes,
                branch,
                bundle_base,
                ..
            } => Step::Save {
                message,
                max_file_bytes,
                branch,
                bundle_base,
                bundle: bundle_path.clone(),
            },
            other => other,
        };
        let job = Job {
            worktree: path.to_path_buf(),
            step,
        };
        let job = serde_json::to_string(&job).map_err(|e| e.to_string())?;
        let argv = vec![SELF_EXE.to_owned(), step::SUBCOMMAND.to_owned(), job];
        let program = Program {
            role: Role::Step,
            argv: &argv,
            env: &[],
            stdin: None,
            prompt_file: None,
            name: "step",
        };
        let command = self.command(program, path, run_dir);
        let (mut stdout, mut stderr) = (Vec::new(), String::new());
        let mut bundle = None;
        let end = {
            let (command, launched) = command?;
            // Neither the attempt's cancel nor the runner's abort stops a step: a cancelled
            // attempt still saves what its agent left, and a step is short (bounded by its
            // own time limit, and by the lifeline if the runner dies).
            let never = tokio_util::sync::CancellationToken::new();
            let end = super::agent::run(command, &never, |line| {
                match line.stream {
                    kiln_protocol::Stream::Stdout => stdout.push(line.line),
                    _ if stderr.len() < MAX_ERROR_BYTES => {
                        stderr.push_str(&line.line);
                        stderr.push(' ');
                    }
                    _ => {}
                }
                Verdict::Continue
            })
            .await;
            if bundle_path.exists() {
                bundle = Some(
                    std::fs::read(&bundle_path)
                        .map_err(|e| format!("cannot read the result bundle: {e}"))?,
                );
            }
            launched.clean_up().await;
            end
        };
        match end {
            AgentEnd::SpawnFailed(reason) => Err(format!("cannot run the git step: {reason}")),
            AgentEnd::Exited { status, .. } if status.code == Some(0) => {
                let line = stdout.first().map(String::as_str).unwrap_or_default();
                let answer = serde_json::from_str(line)
                    .map_err(|e| format!("the git step answered {line:?}: {e}"))?;
                Ok(Stepped { answer, bundle })
            }
            AgentEnd::Exited { status, .. } => Err(format!(
                "{} ({status:?})",
                stderr
                    .trim()
                    .chars()
                    .take(MAX_ERROR_BYTES)
                    .collect::<String>()
            )),
        }
    }
}
