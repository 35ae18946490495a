//! The fence: what an agent sees of the runner's machine. The agent runs in its own user,
//! mount, PID and IPC namespaces, where the runner's config, cache, spool, mirrors and
//! every other task's worktree are covered by empty read-only mounts; only its own
//! worktree and prompt are shown back; its repository's git metadata is seen through an
//! overlay (its writes go to a private layer, so it can never change the mirror the runner
//! and other tasks use); its home is an overlay too; `/tmp` is private; everything else is
//! read-only; and `/proc` shows only its own processes. See SECURITY.md.
//!
//! `plan.rs` is the data the runner sends; `enter.rs` the shim's side (namespaces and
//! mounts); `init.rs` pid 1 inside (a fresh `/proc`, the mounts locked, the agent
//! supervised).

mod enter;
mod ids;
pub mod init;
mod plan;

use std::path::Path;
use std::process::ExitCode;

pub use plan::{FencePlan, Mount, Overlay, Shown};

use crate::shim::{report, AgentStatus, Launch};

/// Name of the status file inside the fence's run directory (where the runner reads it).
pub const STATUS_FILE: &str = "status.json";

/// Name of the file the shim hands its init the launch in.
const LAUNCH_FILE: &str = "launch.json";

/// The running executable: the init is this program, whatever its path on disk.
const SELF_EXE: &str = "/proc/self/exe";

/// Runs `launch` in the fence `plan` describes: the shim's side. The status is written
/// in the run directory, by the init, or here if the fence could not be made.
pub fn run(launch: &Launch, plan: &FencePlan) -> ExitCode {
    // The run directory may be covered before it is shown again: write through its
    // descriptor.
    let run_dir = match nix::fcntl::open(
        &plan.run_dir,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!(
                "kiln agent-shim: cannot open {}: {}",
                plan.run_dir.display(),
                e.desc()
            );
            return ExitCode::from(1);
        }
    };
    let status_here = format!(
        "/proc/self/fd/{}/{STATUS_FILE}",
        std::os::fd::AsRawFd::as_raw_fd(&run_dir)
    );
    let failed = |reason: String| {
        let status = AgentStatus {
            spawn_failed: Some(format!("cannot fence the agent: {reason}")),
            ..AgentStatus::default()
        };
        report(Path::new(&status_here), &status)
    };
    let (uid, gid) = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    if let Err(reason) = enter::enter(plan) {
        return failed(reason);
    }
    let init = init::InitLaunch {
        launch: Launch {
            fence: None,
            ..launch.clone()
        },
        uid,
        gid,
    };
    let file = plan.run_dir.join(LAUNCH_FILE);
    let written = serde_json::to_vec(&init)
        .map_err(|e| e.to_string())
        .and_then(|bytes| {
            crate::atomic_file::write_scratch(&file, &bytes, crate::atomic_file::SECRET_MODE)
                .map_err(|e| format!("cannot write {}: {e}", file.display()))
        });
    if let Err(reason) = written {
        return failed(reason);
    }
    let started = std::process::Command::new(SELF_EXE)
        .arg(init::SUBCOMMAND)
        .arg(&file)
        .current_dir("/")
        .spawn();
    match started.and_then(|mut child| child.wait()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => failed(format!("cannot start the fence's init: {e}")),
    }
}
