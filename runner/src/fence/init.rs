//! The fence's init (`kiln-runner agent-init`, also `kiln agent-init`): pid 1 of the
//! agent's PID namespace, started by a fenced shim while it waits for work. Once the shim
//! has made the launch's mounts and handed it the agent (one line on a pipe), it mounts a
//! `/proc` that shows only the agent's own processes, enters a second user and mount
//! namespace (which locks every mount: the agent cannot unmount a cover to see what it
//! hides), then supervises the agent as the shim does outside a fence, its stdin the
//! lifeline. When it exits, the kernel kills whatever is left in the namespace.

use std::ffi::OsString;
use std::io::BufRead as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use serde::{Deserialize, Serialize};

use super::ids;
use crate::shim::{AgentStatus, Launch};

/// The hidden subcommand both binaries answer to.
pub const SUBCOMMAND: &str = "agent-init";

/// What the shim hands its init, one JSON line on the init's own pipe.
#[derive(Debug, Serialize, Deserialize)]
pub struct InitLaunch {
    /// The agent to run.
    pub launch: Launch,
    /// The runner's uid and gid, which the agent runs as.
    pub uid: u32,
    /// See `uid`.
    pub gid: u32,
}

/// Runs the init with the arguments after the subcommand (the launch pipe's descriptor):
/// waits for the agent on that pipe, which the shim writes once it has made the launch's
/// mounts. Stdin, shared with the shim, is the runner's lifeline.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let Some(pipe) = (match args.as_slice() {
        [fd] => fd.to_str().and_then(|fd| fd.parse::<i32>().ok()),
        _ => None,
    }) else {
        eprintln!("kiln agent-init: expected the launch pipe's descriptor, got {args:?}");
        return ExitCode::from(2);
    };
    // Signals from inside the namespace reach pid 1 only through a handler: the agent
    // stops on the lifeline, not on a signal it sends.
    let ignored = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        let _ = signal_hook::flag::register(signal, Arc::clone(&ignored));
    }
    let line = read_launch(pipe);
    // The inherited descriptor must not reach the agent.
    let _ = nix::unistd::close(pipe);
    let line = match line {
        Ok(line) if !line.is_empty() => line,
        // The shim went away (its runner did, or the fence could not be made).
        _ => return ExitCode::SUCCESS,
    };
    let init: InitLaunch = match serde_json::from_slice(&line) {
        Ok(init) => init,
        Err(e) => {
            eprintln!("kiln agent-init: bad launch: {e}");
            return ExitCode::from(2);
        }
    };
    // Only now: the shim, in this mount namespace but outside the PID namespace, names the
    // sources of its mounts through its own `/proc/self`, which the new `/proc` lacks.
    let status = match mount_proc().and_then(|()| lock_in(&init)) {
        Ok(()) => crate::shim::supervise(&init.launch),
        Err(reason) => AgentStatus {
            spawn_failed: Some(format!("cannot fence the agent: {reason}")),
            ..AgentStatus::default()
        },
    };
    crate::shim::report(&init.launch.status_file, &status)
}

/// The launch line from the shim's pipe, inherited as descriptor `pipe` (reopened by
/// name: the old `/proc` is still mounted).
fn read_launch(pipe: i32) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(format!("/proc/self/fd/{pipe}"))?;
    let mut line = Vec::new();
    std::io::BufReader::new(file).read_until(b'\n', &mut line)?;
    Ok(line)
}

/// A `/proc` of this PID namespace.
fn mount_proc() -> Result<(), String> {
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| format!("cannot mount /proc: {}", e.desc()))
}

/// The second user and mount namespace, which locks every mount made before it.
fn lock_in(init: &InitLaunch) -> Result<(), String> {
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("cannot lock the mounts: {}", e.desc()))?;
    ids::map_self(init.uid, 0, init.gid, 0)?;
    // Nothing in the namespace may read this process's memory, descriptors or environment.
    nix::sys::prctl::set_dumpable(false)
        .map_err(|e| format!("cannot protect pid 1: {}", e.desc()))?;
    // No set-uid program lifts the agent above the runner's user.
    nix::sys::prctl::set_no_new_privs()
        .map_err(|e| format!("cannot set no_new_privs: {}", e.desc()))?;
    if !Path::new("/proc/self").exists() {
        return Err("the new /proc is not usable".into());
    }
    Ok(())
}
