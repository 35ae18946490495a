//! The agent shim: a small supervisor between the runner and the agent, run as
//! `kiln-runner agent-shim` (or `kiln agent-shim` under `kiln dev`).
//!
//! It exists so that no agent process outlives its attempt, even if the runner is killed
//! with SIGKILL. The runner starts shims ahead of work; each waits for one [`Launch`] line
//! on its stdin, starts that agent, and from then on treats stdin as the lifeline: the
//! runner holds its write end and writes nothing more. When the lifeline closes (the runner
//! stopped the attempt, or died), the shim sends SIGTERM to its whole process tree, waits
//! the grace period, then SIGKILLs whatever is left. As a child subreaper it also catches
//! descendants that detach with `setsid` or double-forking. When the agent exits on its own, its leftovers are killed.
//! The agent's exit status is written to a status file for the runner.

mod tree;

use std::ffi::OsString;
use std::io::{BufRead as _, Read as _};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

/// The hidden subcommand both binaries answer to.
pub const SUBCOMMAND: &str = "agent-shim";

/// Attempts at killing a tree that keeps forking before giving up.
const MAX_KILL_ROUNDS: usize = 50;

/// Pause between SIGKILL rounds, so killed processes can vanish from /proc.
const KILL_ROUND_PAUSE: Duration = Duration::from_millis(20);

/// How the agent ended, as the shim saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// Exit code, when it exited.
    pub code: Option<i32>,
    /// Signal, when one killed it.
    pub signal: Option<i32>,
    /// The agent could not be started.
    #[serde(default)]
    pub spawn_failed: Option<String>,
}

/// What the runner sends a waiting shim: the agent to start, as one JSON line on the
/// shim's stdin. The runner starts shims before it has work for them, so the shim's own
/// start-up is off the path from assignment to agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Launch {
    /// SIGTERM-to-SIGKILL grace for the agent's tree, in milliseconds.
    pub grace_ms: u64,
    /// Where the shim reports how the agent ended.
    pub status_file: PathBuf,
    /// File given to the agent as stdin (none: empty stdin).
    pub stdin_file: Option<PathBuf>,
    /// The agent's working directory.
    pub workdir: PathBuf,
    /// Variables set for the agent on top of the shim's environment.
    pub env: Vec<(String, String)>,
    /// The agent's argv; the first element is the program.
    pub argv: Vec<String>,
    /// The fence the agent runs in (`None`: as the runner's user, seeing what it sees).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence: Option<crate::fence::FencePlan>,
}

/// Longest launch line read: environments and argv of a few MiB at most.
const MAX_LAUNCH_BYTES: u64 = 8 << 20;

enum Happened {
    AgentExited(std::process::ExitStatus),
    LifelineClosed,
}

/// Runs the shim with the arguments after the subcommand (there are none).
pub fn main(args: Vec<OsString>) -> ExitCode {
    let fences = match args.as_slice() {
        [] => None,
        [flag, dir] if flag == crate::fence::FENCED_FLAG => Some(std::path::PathBuf::from(dir)),
        _ => {
            eprintln!("kiln agent-shim: unexpected arguments {args:?}");
            return ExitCode::from(2);
        }
    };
    // Orphaned descendants are re-parented to us rather than to init.
    let _ = nix::sys::prctl::set_child_subreaper(true);
    // SIGTERM and SIGINT to our group are for the agent; we stop on the lifeline instead.
    // A handler (not SIG_IGN) so that the agent, after exec, has the default disposition.
    let ignored = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        let _ = signal_hook::flag::register(signal, Arc::clone(&ignored));
    }
    // A fenced shim enters its fence while it waits, off the path from assignment to
    // agent.
    let ahead = fences.as_deref().map(crate::fence::Ahead::enter);
    let launch = match read_launch() {
        Ok(Some(launch)) => launch,
        // The runner closed the lifeline before it had work for us.
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kiln agent-shim: {e}");
            return ExitCode::from(2);
        }
    };
    match (ahead, &launch.fence) {
        (None, None) => {}
        (Some(Ok(ahead)), Some(plan)) => return ahead.run(&launch, plan),
        (Some(Err(reason)), Some(_)) => return crate::fence::failed(&launch, &reason),
        (Some(_), None) => {
            return crate::fence::failed(&launch, "a fenced shim got a launch without a fence")
        }
        (None, Some(_)) => {
            return crate::fence::failed(&launch, "an unfenced shim got a fenced launch")
        }
    }
    let status = supervise(&launch);
    report(&launch.status_file, &status)
}

/// Writes `status` where the runner reads it.
pub fn report(status_file: &std::path::Path, status: &AgentStatus) -> ExitCode {
    let text = serde_json::to_vec(status).unwrap_or_default();
    // Read by the runner as soon as the shim exits; a machine crash makes it moot, so it
    // is not synced.
    if let Err(e) =
        crate::atomic_file::write_scratch(status_file, &text, crate::atomic_file::SECRET_MODE)
    {
        eprintln!(
            "kiln agent-shim: cannot write {}: {e}",
            status_file.display()
        );
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// Waits for the launch line; `None` if stdin closes first.
fn read_launch() -> Result<Option<Launch>, String> {
    let mut line = Vec::new();
    std::io::stdin()
        .lock()
        .take(MAX_LAUNCH_BYTES)
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("cannot read the launch line: {e}"))?;
    if line.is_empty() {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(format!(
            "launch line cut short or over {MAX_LAUNCH_BYTES} bytes"
        ));
    }
    serde_json::from_slice(&line)
        .map(Some)
        .map_err(|e| format!("bad launch line: {e}"))
}

/// Starts the agent and stops its whole tree when it exits or the lifeline closes.
pub fn supervise(launch: &Launch) -> AgentStatus {
    let me = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
    let stdin = match &launch.stdin_file {
        Some(path) => match std::fs::File::open(path) {
            Ok(file) => Stdio::from(file),
            Err(e) => {
                return AgentStatus {
                    spawn_failed: Some(format!("cannot open its stdin {}: {e}", path.display())),
                    ..AgentStatus::default()
                }
            }
        },
        None => Stdio::null(),
    };
    let Some((program, rest)) = launch.argv.split_first() else {
        return AgentStatus {
            spawn_failed: Some("empty command".into()),
            ..AgentStatus::default()
        };
    };
    let spawned = Command::new(program)
        .args(rest)
        .current_dir(&launch.workdir)
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .stdin(stdin)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            return AgentStatus {
                spawn_failed: Some(format!("cannot start {program:?}: {e}")),
                ..AgentStatus::default()
            }
        }
    };
    let (events, happened) = mpsc::channel();
    let lifeline = events.clone();
    std::thread::spawn(move || {
        let mut sink = [0u8; 64];
        let mut stdin = std::io::stdin();
        // Returns on EOF or error: the runner closed its end, or died.
        while matches!(std::io::Read::read(&mut stdin, &mut sink), Ok(n) if n > 0) {}
        let _ = lifeline.send(Happened::LifelineClosed);
    });
    let waiter = std::thread::spawn(move || {
        if let Ok(status) = child.wait() {
            let _ = events.send(Happened::AgentExited(status));
        }
    });
    let exit = match happened.recv() {
        Ok(Happened::AgentExited(status)) => Some(status),
        _ => None,
    };
    let exit = exit.or_else(|| {
        tree::signal_all(me, Signal::SIGTERM);
        let deadline = std::time::Instant::now() + Duration::from_millis(launch.grace_ms);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match happened.recv_timeout(left) {
                Ok(Happened::AgentExited(status)) => return Some(status),
                Ok(Happened::LifelineClosed) => continue,
                Err(_) => return None,
            }
        }
    });
    kill_everything(me);
    let exit = exit.or_else(|| match happened.recv() {
        Ok(Happened::AgentExited(status)) => Some(status),
        _ => None,
    });
    let _ = waiter.join();
    kill_everything(me);
    use std::os::unix::process::ExitStatusExt as _;
    match exit {
        Some(status) => AgentStatus {
            code: status.code(),
            signal: status.signal(),
            spawn_failed: None,
        },
        // Reaped by the final sweep after our SIGKILL.
        None => AgentStatus {
            signal: Some(Signal::SIGKILL as i32),
            ..AgentStatus::default()
        },
    }
}

/// SIGKILLs the whole tree until nothing is left, reaping as it goes.
fn kill_everything(me: i32) {
    for _ in 0..MAX_KILL_ROUNDS {
        let remaining = tree::signal_all(me, Signal::SIGKILL);
        tree::reap_exited();
        if remaining == 0 {
            return;
        }
        std::thread::sleep(KILL_ROUND_PAUSE);
    }
}
