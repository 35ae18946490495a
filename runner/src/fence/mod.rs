//! The fence: what an agent sees of the runner's machine. The agent runs in its own user,
//! mount, PID and IPC namespaces, where the runner's config, cache, spool, mirrors and
//! every other task's worktree are covered by empty read-only mounts; only its own
//! worktree and prompt are shown back; its repository's git metadata is seen through an
//! overlay (its writes go to a private layer, so it can never change the mirror the runner
//! and other tasks use); its home is an overlay too; `/tmp` is private; everything else is
//! read-only; and `/proc` shows only its own processes. See SECURITY.md.
//!
//! A fenced shim enters its namespaces and starts the fence's init while it waits for
//! work (`Ahead::enter`), so that a launch only makes its own mounts and hands the init
//! its agent (`Ahead::run`). `plan.rs` is the data the runner sends; `enter.rs` the shim's
//! namespaces and mounts; `init.rs` pid 1 inside (a fresh `/proc`, the mounts locked, the
//! agent supervised).

mod enter;
mod ids;
pub mod init;
mod plan;

use std::io::Write as _;
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode};

use nix::fcntl::{FcntlArg, FdFlag, OFlag};

pub use plan::{FencePlan, Mount, Overlay, Shown};

use crate::shim::{report, AgentStatus, Launch};

/// Name of the status file inside the fence's run directory (where the runner reads it).
pub const STATUS_FILE: &str = "status.json";

/// The flag that makes `agent-shim` a fenced shim, followed by the fences' directory.
pub const FENCED_FLAG: &str = "--fenced";

/// The running executable: the init is this program, whatever its path on disk.
const SELF_EXE: &str = "/proc/self/exe";

/// A shim inside its namespaces, its init waiting for the launch.
#[derive(Debug)]
pub struct Ahead {
    init: Child,
    to_init: std::fs::File,
    uid: u32,
    gid: u32,
}

impl Ahead {
    /// Enters the namespaces (`fences` stays writable) and starts the init. The init shares
    /// the shim's stdin, the runner's lifeline, and reads its launch from a pipe of its own
    /// (a process that entered a new PID namespace cannot start threads, so the shim could
    /// not relay one).
    pub fn enter(fences: &Path) -> Result<Self, String> {
        let (uid, gid) = enter::enter_ahead(fences)?;
        let (from_shim, to_init) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
            .map_err(|e| format!("cannot make a pipe for the fence's init: {}", e.desc()))?;
        // The init's end, and only it, survives the exec.
        nix::fcntl::fcntl(&from_shim, FcntlArg::F_SETFD(FdFlag::empty()))
            .map_err(|e| format!("cannot hand the fence's init its pipe: {}", e.desc()))?;
        let init = std::process::Command::new(SELF_EXE)
            .arg(init::SUBCOMMAND)
            .arg(from_shim.as_raw_fd().to_string())
            .current_dir("/")
            .spawn()
            .map_err(|e| format!("cannot start the fence's init: {e}"))?;
        drop(from_shim);
        Ok(Self {
            init,
            to_init: std::fs::File::from(to_init),
            uid,
            gid,
        })
    }

    /// Runs `launch` in the fence `plan` describes: its mounts, then the agent handed to the
    /// init, which writes the status (this writes it only if the fence could not be made).
    pub fn run(self, launch: &Launch, plan: &FencePlan) -> ExitCode {
        let Self {
            mut init,
            mut to_init,
            uid,
            gid,
        } = self;
        // The run directory may be covered before it is shown again: a failure is written
        // through its descriptor.
        let run_dir = match nix::fcntl::open(
            &plan.run_dir,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(e) => {
                let _ = init.kill();
                let reason = format!("cannot open {}: {}", plan.run_dir.display(), e.desc());
                return failed(launch, &reason);
            }
        };
        let status_here = PathBuf::from(format!(
            "/proc/self/fd/{}/{STATUS_FILE}",
            run_dir.as_raw_fd()
        ));
        if let Err(reason) = enter::mount_plan(plan) {
            let _ = init.kill();
            return failed_at(&status_here, &reason);
        }
        let line = init::InitLaunch {
            launch: Launch {
                fence: None,
                ..launch.clone()
            },
            uid,
            gid,
        };
        let sent = serde_json::to_vec(&line)
            .map_err(|e| e.to_string())
            .and_then(|mut bytes| {
                bytes.push(b'\n');
                to_init.write_all(&bytes).map_err(|e| e.to_string())
            });
        drop(to_init);
        if let Err(reason) = sent {
            let _ = init.kill();
            let reason = format!("cannot hand the agent to the fence's init: {reason}");
            return failed_at(&status_here, &reason);
        }
        let _ = init.wait();
        ExitCode::SUCCESS
    }
}

/// Reports that the fence could not be made for `launch`.
pub fn failed(launch: &Launch, reason: &str) -> ExitCode {
    failed_at(&launch.status_file, reason)
}

fn failed_at(status_file: &Path, reason: &str) -> ExitCode {
    let status = AgentStatus {
        spawn_failed: Some(format!("cannot fence the agent: {reason}")),
        ..AgentStatus::default()
    };
    report(status_file, &status)
}
