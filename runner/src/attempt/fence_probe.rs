//! Finding out at start whether agents can be fenced here: a fence like an attempt's (the
//! runner's directories hidden, a worktree shown, a repository's metadata under an
//! overlay) made around this executable's `--version`. A kernel without unprivileged user
//! namespaces, a container engine's seccomp profile or masked `/proc`, or a file system
//! without overlay support make it fail; the reason is kept for the warning.

use std::path::Path;
use std::time::Duration;

use super::fencing::{self, Fencing};
use super::shims::Shims;
use crate::shim::{AgentStatus, Launch};

/// Longest the probe may take: it is one short process.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// The probe's worktree and mirror, under the worktree base: a worktree sits directly
/// under it, so that its fence's directories are where every fence's are.
const PROBE_WORKTREE: &str = ".fence-probe";
const PROBE_MIRROR: &str = ".fence-probe-mirror";

/// Makes a fence around `--version` of this executable; `Err` says why it cannot be made.
pub async fn probe(shims: &Shims, fencing: &Fencing, worktree_base: &Path) -> Result<(), String> {
    let (worktree, mirror) = (
        worktree_base.join(PROBE_WORKTREE),
        worktree_base.join(PROBE_MIRROR),
    );
    for dir in [&worktree, &mirror] {
        fencing::remove_all(dir);
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
    }
    let result = launch(shims, fencing, &worktree, &mirror).await;
    fencing.remove(&worktree);
    for dir in [&worktree, &mirror] {
        fencing::remove_all(dir);
    }
    result
}

async fn launch(
    shims: &Shims,
    fencing: &Fencing,
    worktree: &Path,
    mirror: &Path,
) -> Result<(), String> {
    let dirs = fencing.dirs(worktree, mirror).map_err(|e| e.to_string())?;
    let run = fencing.run_dir(&dirs).map_err(|e| e.to_string())?;
    let plan = fencing.plan(&dirs, &run, worktree, Some(mirror), &[], &[]);
    let launch = Launch {
        grace_ms: 1000,
        status_file: run.status_file.clone(),
        stdin_file: None,
        workdir: worktree.to_path_buf(),
        env: Vec::new(),
        argv: vec!["/proc/self/exe".to_owned(), "--version".to_owned()],
        fence: Some(plan),
    };
    let mut child = shims
        .launch(&launch)
        .await
        .map_err(|e| format!("cannot start a shim: {e}"))?;
    // The lifeline stays open until the shim is done; closing it stops a probe that hangs.
    let lifeline = child.stdin.take();
    let waited = tokio::time::timeout(PROBE_TIMEOUT, child.wait_with_output()).await;
    drop(lifeline);
    let Ok(output) = waited else {
        return Err(format!(
            "the fenced probe did not end within {PROBE_TIMEOUT:?}"
        ));
    };
    let status: AgentStatus = std::fs::read(&run.status_file)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| {
            let said = output
                .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_owned())
                .unwrap_or_default();
            format!("the fenced probe reported nothing (its shim said {said:?})")
        })?;
    match (status.spawn_failed, status.code) {
        (Some(reason), _) => Err(reason),
        (None, Some(0)) => Ok(()),
        (None, code) => Err(format!(
            "the fenced probe exited with {code:?} (signal {:?})",
            status.signal
        )),
    }
}
