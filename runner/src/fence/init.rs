//! The fence's init (`kiln-runner agent-init`, also `kiln agent-init`): pid 1 of the
//! agent's PID namespace, started by the shim once the fence's mounts are made. It mounts
//! a `/proc` that shows only the agent's own processes, enters a second user and mount
//! namespace (which locks every mount above: the agent cannot unmount a cover to see
//! what it hides), then supervises the agent as the shim does outside a fence. When it
//! exits, the kernel kills whatever is left in the namespace.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
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

/// What the shim hands its init, in a file of the fence's run directory.
#[derive(Debug, Serialize, Deserialize)]
pub struct InitLaunch {
    /// The agent to run.
    pub launch: Launch,
    /// The runner's uid and gid, which the agent runs as.
    pub uid: u32,
    /// See `uid`.
    pub gid: u32,
}

/// Runs the init with the arguments after the subcommand: the launch file.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let [file] = args.as_slice() else {
        eprintln!("kiln agent-init: expected one argument, the launch file");
        return ExitCode::from(2);
    };
    let file = PathBuf::from(file);
    // Signals from inside the namespace reach pid 1 only through a handler: the agent
    // stops on the lifeline, not on a signal it sends.
    let ignored = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        let _ = signal_hook::flag::register(signal, Arc::clone(&ignored));
    }
    let init: InitLaunch = match std::fs::read(&file)
        .map_err(|e| e.to_string())
        .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()))
    {
        Ok(init) => init,
        Err(e) => {
            eprintln!("kiln agent-init: cannot read {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let _ = std::fs::remove_file(&file);
    let status = match lock_in(&init) {
        Ok(()) => crate::shim::supervise(&init.launch),
        Err(reason) => AgentStatus {
            spawn_failed: Some(format!("cannot fence the agent: {reason}")),
            ..AgentStatus::default()
        },
    };
    crate::shim::report(&init.launch.status_file, &status)
}

/// A `/proc` of this PID namespace, then the second user and mount namespace.
fn lock_in(init: &InitLaunch) -> Result<(), String> {
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| format!("cannot mount /proc: {}", e.desc()))?;
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
