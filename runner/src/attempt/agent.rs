//! Running the agent through the shim: its own process group, output streamed line by line,
//! and a stop sequence of SIGTERM, a grace period that keeps draining output, then SIGKILL,
//! applied by the shim to the agent's whole process tree.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kiln_protocol::{LogLine, StopReason, Stream};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use super::gate::Gate;
use super::lines;
use super::redact::{Redactor, MIN_SECRET_LEN};
use super::shims::Shims;
use super::watch::Verdict;
use crate::outbox::{AttemptKey, Outbox};
use crate::shim::{AgentStatus, Launch};

/// Time an agent has to exit after SIGTERM before SIGKILL. Ten seconds lets an agent save
/// its work and exit cleanly, and is short enough that a cancel feels prompt.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(10);

/// Time an agent that printed its completion signal has to exit by itself.
pub const DEFAULT_COMPLETION_GRACE: Duration = Duration::from_secs(30);

/// Beyond the grace, how long the shim has to finish killing before the runner SIGKILLs
/// the whole group itself.
const SHIM_MARGIN: Duration = Duration::from_secs(5);

/// After the agent exits, how long output still held open by its leftovers is read.
const OUTPUT_DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// Batches of lines (each what one read of a pipe completed, at most 64 KiB) buffered
/// between the pipe readers and the stream: with the pipe's own 64 KiB, an agent gets
/// about 300 KiB ahead of the runner before its writes block.
const LINE_BATCHES: usize = 4;

/// How to run one agent.
#[derive(Debug)]
pub struct AgentCommand<'a> {
    /// Where the agent's shim comes from.
    pub shims: &'a Shims,
    /// argv; the first element is the program.
    pub argv: Vec<String>,
    /// Working directory: the worktree.
    pub workdir: &'a Path,
    /// Variables to set (the runner's own `KILN_*` are removed first).
    pub env: Vec<(String, String)>,
    /// File given to the agent as stdin (none: empty stdin).
    pub stdin_file: Option<&'a Path>,
    /// Where the shim reports the agent's exit status (inside the fence's run directory
    /// when there is a fence).
    pub status_file: PathBuf,
    /// The fence the agent runs in, if this runner can make one.
    pub fence: Option<crate::fence::FencePlan>,
    /// The task's overall limit: when it runs out (counted from the attempt's start, so
    /// the fetch and checkout used some of it), and how long it is.
    pub timeout: Option<(Instant, Duration)>,
    /// Limit on silence.
    pub idle_timeout: Option<Duration>,
    /// SIGTERM-to-SIGKILL grace.
    pub kill_grace: Duration,
    /// Values to redact from every line.
    pub secrets: Vec<String>,
    /// Time to exit after the completion signal.
    pub completion_grace: Duration,
    /// Where the agent's events go: its output is not read while its attempt has no room
    /// there (backpressure, see `outbox/room.rs`).
    pub outbox: &'a Outbox,
    /// The attempt, in the outbox.
    pub key: AttemptKey,
}

/// Why kiln stopped an agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Halt {
    /// A cancel arrived.
    Cancelled,
    /// The overall timeout passed.
    Timeout(Duration),
    /// No output for this long.
    IdleTimeout(Duration),
    /// A budget (turns, cost) ran out.
    Budget(StopReason),
    /// It printed the completion signal but did not exit within the grace period.
    CompletionGrace,
}

/// How an agent run ended.
#[derive(Debug)]
pub enum AgentEnd {
    /// The program could not be started.
    SpawnFailed(String),
    /// It exited (by itself, or after kiln halted it).
    Exited {
        /// Its exit status.
        status: AgentStatus,
        /// Set when kiln stopped it.
        halted: Option<Halt>,
    },
}

/// Runs the agent to its end, handing each (redacted) output line to `handle`, whose
/// verdict can start the completion grace or stop the agent.
pub async fn run(
    command: AgentCommand<'_>,
    cancel: &CancellationToken,
    mut handle: impl FnMut(LogLine) -> Verdict,
) -> AgentEnd {
    let launch = Launch {
        grace_ms: u64::try_from(command.kill_grace.as_millis()).unwrap_or(u64::MAX),
        status_file: command.status_file.clone(),
        stdin_file: command.stdin_file.map(Path::to_path_buf),
        workdir: command.workdir.to_path_buf(),
        env: command.env.clone(),
        argv: command.argv.clone(),
        fence: command.fence.clone(),
    };
    let _ = std::fs::remove_file(&command.status_file);
    let mut child = match command.shims.launch(&launch).await {
        Ok(child) => child,
        Err(e) => {
            return AgentEnd::SpawnFailed(format!(
                "cannot start the agent shim {}: {e}",
                command.shims.program().display()
            ))
        }
    };
    let group = child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .map(Pid::from_raw);
    // The lifeline: the shim stops the agent when this closes, including when we die.
    let mut lifeline = child.stdin.take();
    let (line_tx, mut line_rx) = mpsc::channel(LINE_BATCHES);
    let mut readers = tokio::task::JoinSet::new();
    if let Some(stdout) = child.stdout.take() {
        readers.spawn(lines::forward(stdout, Stream::Stdout, line_tx.clone()));
    }
    if let Some(stderr) = child.stderr.take() {
        readers.spawn(lines::forward(stderr, Stream::Stderr, line_tx));
    }
    let (mut redactor, too_short) = Redactor::new(&command.secrets);
    if !too_short.is_empty() {
        handle(LogLine::system(format!(
            "{} secret value(s) shorter than {MIN_SECRET_LEN} characters are not redacted",
            too_short.len()
        )));
    }

    let start = Instant::now();
    let far = start + Duration::from_secs(100 * 365 * 24 * 3600);
    let overall = command.timeout.map_or(far, |(at, _)| at);
    let mut idle = command.idle_timeout.map_or(far, |t| start + t);
    let mut halted: Option<Halt> = None;
    let mut grace_until = far;
    let mut backstop = far;
    let mut exited = false;
    let mut drain_until = far;
    let mut output_open = true;
    let mut gate = Gate::new(command.outbox, command.key);

    loop {
        if exited && !output_open {
            break;
        }
        // An agent being stopped, or given its grace to exit, is read regardless: its last
        // words must not wait on the control plane.
        let reading = gate.is_open() || halted.is_some() || grace_until != far;
        tokio::select! {
            batch = line_rx.recv(), if output_open && reading => match batch {
                Some(batch) => {
                    for line in batch.into_iter().flat_map(|line| redactor.push(line)) {
                        match handle(line) {
                            Verdict::Continue => {}
                            Verdict::Completed if grace_until == far => {
                                grace_until = Instant::now() + command.completion_grace;
                            }
                            Verdict::Completed => {}
                            Verdict::Stop(reason) => {
                                halted.get_or_insert(Halt::Budget(reason));
                            }
                        }
                    }
                    if let Some(limit) = command.idle_timeout {
                        idle = Instant::now() + limit;
                    }
                    gate.after_push();
                }
                None => output_open = false,
            },
            () = gate.reopened(), if output_open && !reading => {
                // Waiting on the control plane is neither the agent being silent nor
                // output that stopped coming after its exit.
                if let Some(limit) = command.idle_timeout {
                    idle = Instant::now() + limit;
                }
                if exited {
                    drain_until = Instant::now() + OUTPUT_DRAIN_AFTER_EXIT;
                }
            }
            () = sleep_until(redactor.release_at().unwrap_or(far)), if redactor.release_at().is_some() => {
                for line in redactor.flush() {
                    handle(line);
                }
            }
            _ = child.wait(), if !exited => {
                // The shim is gone; so must be anything left in its group.
                signal_group(group, Signal::SIGKILL);
                exited = true;
                drain_until = Instant::now() + OUTPUT_DRAIN_AFTER_EXIT;
            }
            () = cancel.cancelled(), if halted.is_none() && !exited => {
                halted = Some(Halt::Cancelled);
            }
            () = sleep_until(overall), if halted.is_none() && !exited => {
                halted = command.timeout.map(|(_, limit)| Halt::Timeout(limit));
            }
            () = sleep_until(idle), if halted.is_none() && !exited && reading => {
                halted = command.idle_timeout.map(Halt::IdleTimeout);
            }
            () = sleep_until(grace_until), if halted.is_none() && !exited => {
                halted = Some(Halt::CompletionGrace);
            }
            () = sleep_until(backstop), if !exited => {
                signal_group(group, Signal::SIGKILL);
                backstop = far;
            }
            () = sleep_until(drain_until), if exited && reading => break,
        }
        if halted.is_some() && lifeline.is_some() && !exited {
            drop(lifeline.take());
            backstop = Instant::now() + command.kill_grace + SHIM_MARGIN;
        }
    }
    readers.abort_all();
    // The next agent gets a shim that is already running.
    command.shims.prepare();
    for line in redactor.flush() {
        handle(line);
    }
    let status = read_status(&command.status_file);
    let _ = std::fs::remove_file(&command.status_file);
    match status.spawn_failed {
        Some(reason) => AgentEnd::SpawnFailed(reason),
        None => AgentEnd::Exited { status, halted },
    }
}

/// The shim's report; a shim that died without one means the agent was killed with it.
fn read_status(path: &Path) -> AgentStatus {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(AgentStatus {
            code: None,
            signal: Some(Signal::SIGKILL as i32),
            spawn_failed: None,
        })
}

fn signal_group(group: Option<Pid>, signal: Signal) {
    if let Some(group) = group {
        // ESRCH (the group is already gone) is the expected case after exit.
        let _ = killpg(group, signal);
    }
}
