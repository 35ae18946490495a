//! Running the agent: its own process group, output streamed line by line, and a stop
//! sequence of SIGTERM, a grace period that keeps draining output, then SIGKILL.

use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use kiln_protocol::{LogLine, Stream};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use super::lines;

/// Time an agent has to exit after SIGTERM before SIGKILL. Ten seconds lets an agent save
/// its work and exit cleanly, and is short enough that a cancel feels prompt.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(10);

/// After the agent exits, how long output still held open by its leftovers is read.
const OUTPUT_DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// Lines buffered between the pipe readers and the stream.
const LINE_BUFFER: usize = 256;

/// How to run one agent.
#[derive(Debug)]
pub struct AgentCommand<'a> {
    /// argv; the first element is the program.
    pub argv: &'a [String],
    /// Working directory: the worktree.
    pub workdir: &'a Path,
    /// Variables to set (the runner's own `KILN_*` are removed first).
    pub env: Vec<(String, String)>,
    /// Written to the agent's stdin, which is then closed.
    pub stdin: String,
    /// Overall limit.
    pub timeout: Option<Duration>,
    /// Limit on silence.
    pub idle_timeout: Option<Duration>,
    /// SIGTERM-to-SIGKILL grace.
    pub kill_grace: Duration,
}

/// Why kiln stopped an agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// A cancel arrived.
    Cancelled,
    /// The overall timeout passed.
    Timeout(Duration),
    /// No output for this long.
    IdleTimeout(Duration),
}

/// How an agent run ended.
#[derive(Debug)]
pub enum AgentEnd {
    /// The program could not be started.
    SpawnFailed(String),
    /// It exited (by itself, or after kiln stopped it for `stopped`).
    Exited {
        /// Its exit status.
        status: ExitStatus,
        /// Set when kiln stopped it.
        stopped: Option<StopReason>,
    },
}

/// Runs the agent to its end, handing each output line to `emit`.
pub async fn run(
    command: AgentCommand<'_>,
    cancel: &CancellationToken,
    mut emit: impl FnMut(LogLine),
) -> AgentEnd {
    let Some((program, args)) = command.argv.split_first() else {
        return AgentEnd::SpawnFailed("empty command".into());
    };
    let mut process = Command::new(program);
    process
        .args(args)
        .current_dir(command.workdir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("KILN_") {
            process.env_remove(key);
        }
    }
    process.envs(command.env.iter().map(|(k, v)| (k, v)));
    let mut child = match process.spawn() {
        Ok(child) => child,
        Err(e) => return AgentEnd::SpawnFailed(format!("cannot start {program:?}: {e}")),
    };
    let group = child.id().map(|pid| Pid::from_raw(pid as i32));
    if let Some(mut stdin) = child.stdin.take() {
        let prompt = command.stdin;
        tokio::spawn(async move {
            // An agent that never reads its stdin is fine: ignore the broken pipe.
            let _ = stdin.write_all(prompt.as_bytes()).await;
        });
    }
    let (line_tx, mut line_rx) = mpsc::channel(LINE_BUFFER);
    let mut readers = tokio::task::JoinSet::new();
    if let Some(stdout) = child.stdout.take() {
        readers.spawn(lines::forward(stdout, Stream::Stdout, line_tx.clone()));
    }
    if let Some(stderr) = child.stderr.take() {
        readers.spawn(lines::forward(stderr, Stream::Stderr, line_tx));
    }

    let start = Instant::now();
    let far = start + Duration::from_secs(100 * 365 * 24 * 3600);
    let overall = command.timeout.map_or(far, |t| start + t);
    let mut idle = command.idle_timeout.map_or(far, |t| start + t);
    let mut stopped: Option<StopReason> = None;
    let mut terminating = false;
    let mut kill_at = far;
    let mut exited: Option<ExitStatus> = None;
    let mut drain_until = far;
    let mut output_open = true;

    loop {
        if exited.is_some() && !output_open {
            break;
        }
        tokio::select! {
            line = line_rx.recv(), if output_open => match line {
                Some(line) => {
                    emit(line);
                    if let Some(limit) = command.idle_timeout {
                        idle = Instant::now() + limit;
                    }
                }
                None => output_open = false,
            },
            status = child.wait(), if exited.is_none() => {
                // Whatever is left of the agent's group goes with it: no orphans.
                signal_group(group, Signal::SIGKILL);
                exited = Some(status.unwrap_or_else(|_| ExitStatus::from_raw(0x7f00)));
                drain_until = Instant::now() + OUTPUT_DRAIN_AFTER_EXIT;
            }
            () = cancel.cancelled(), if stopped.is_none() && exited.is_none() => {
                stopped = Some(StopReason::Cancelled);
            }
            () = sleep_until(overall), if stopped.is_none() && exited.is_none() => {
                stopped = command.timeout.map(StopReason::Timeout);
            }
            () = sleep_until(idle), if stopped.is_none() && exited.is_none() => {
                stopped = command.idle_timeout.map(StopReason::IdleTimeout);
            }
            () = sleep_until(kill_at), if terminating && exited.is_none() => {
                signal_group(group, Signal::SIGKILL);
                kill_at = far;
            }
            () = sleep_until(drain_until), if exited.is_some() => break,
        }
        if stopped.is_some() && !terminating && exited.is_none() {
            signal_group(group, Signal::SIGTERM);
            kill_at = Instant::now() + command.kill_grace;
            terminating = true;
        }
    }
    readers.abort_all();
    match exited {
        Some(status) => AgentEnd::Exited { status, stopped },
        None => AgentEnd::SpawnFailed("agent vanished".into()),
    }
}

fn signal_group(group: Option<Pid>, signal: Signal) {
    if let Some(group) = group {
        // ESRCH (the group is already gone) is the expected case after exit.
        let _ = killpg(group, signal);
    }
}
