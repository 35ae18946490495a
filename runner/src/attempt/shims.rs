//! Agent shims started ahead of work: one waits at all times, so that starting an agent
//! is one line written to a running shim rather than a new process of this large program
//! (whose start-up was the biggest step between an assignment and the agent, see
//! docs/performance.md). A shim that waits holds no task data; it exits when its stdin
//! closes, so a runner that dies leaves none behind. On a runner that fences its agents,
//! the waiting shim has entered its fence's namespaces already (see `fence/`); a launch
//! that needs the other kind (an agent in a container, which is its own fence) gets a
//! shim of its own.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;

use tokio::io::AsyncWriteExt as _;
use tokio::process::{Child, Command};

use crate::shim::{self, Launch};

/// The running executable, even after a package upgrade replaces the file on disk: shims
/// are always the same version as the runner that launches them.
const SELF_EXE: &str = "/proc/self/exe";

/// Whether shims enter a fence while they wait.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShimKind {
    /// The agent runs as the shim does.
    Plain,
    /// The shim enters its namespaces ahead of work; the fences' private directories (the
    /// one writable place) are under this directory.
    Fenced(PathBuf),
}

/// Where shims come from, and the one waiting for the next agent.
#[derive(Debug)]
pub struct Shims {
    program: PathBuf,
    kind: ShimKind,
    waiting: Mutex<Option<Child>>,
}

impl Shims {
    /// Shims of this executable (`program` names it in messages). None is started yet.
    pub fn new(program: PathBuf, kind: ShimKind) -> Self {
        Self {
            program,
            kind,
            waiting: Mutex::default(),
        }
    }

    /// The executable shims run.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// Starts a shim to wait for the next launch, unless one is waiting already.
    pub fn prepare(&self) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if waiting.as_mut().is_some_and(is_alive) {
            return;
        }
        *waiting = match spawn(&self.kind) {
            Ok(child) => Some(child),
            Err(error) => {
                tracing::warn!(program = %self.program.display(), %error, "cannot start an agent shim ahead of work");
                None
            }
        };
    }

    /// Hands `launch` to the waiting shim (or to a new one if none is waiting, it has gone,
    /// or it is of the wrong kind) and returns that shim, now running the agent.
    pub async fn launch(&self, launch: &Launch) -> io::Result<Child> {
        let mut line = serde_json::to_vec(launch).map_err(io::Error::other)?;
        line.push(b'\n');
        match (&self.kind, &launch.fence) {
            (ShimKind::Fenced(_), None) => return spawn_with(&ShimKind::Plain, &line).await,
            (ShimKind::Plain, Some(_)) => {
                return Err(io::Error::other(
                    "a fenced launch on a runner whose shims are not fenced",
                ))
            }
            _ => {}
        }
        let waiting = self
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(mut shim) = waiting {
            if is_alive(&mut shim) && send(&mut shim, &line).await.is_ok() {
                return Ok(shim);
            }
            let _ = shim.start_kill();
        }
        spawn_with(&self.kind, &line).await
    }
}

/// A new shim of `kind`, handed `line`.
async fn spawn_with(kind: &ShimKind, line: &[u8]) -> io::Result<Child> {
    let mut shim = spawn(kind)?;
    send(&mut shim, line).await?;
    Ok(shim)
}

fn is_alive(shim: &mut Child) -> bool {
    matches!(shim.try_wait(), Ok(None))
}

async fn send(shim: &mut Child, line: &[u8]) -> io::Result<()> {
    let stdin = shim
        .stdin
        .as_mut()
        .ok_or_else(|| io::Error::other("the shim has no stdin"))?;
    stdin.write_all(line).await
}

/// Starts a shim in its own process group, without the runner's `KILN_*` variables (the
/// token among them), its stdio piped to the runner.
fn spawn(kind: &ShimKind) -> io::Result<Child> {
    let mut process = Command::new(SELF_EXE);
    process.arg(shim::SUBCOMMAND);
    if let ShimKind::Fenced(fences) = kind {
        process.arg(crate::fence::FENCED_FLAG).arg(fences);
    }
    process
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("KILN_") {
            process.env_remove(key);
        }
    }
    process.spawn()
}
