//! One worktree per task attempt, on the task's own branch, never shared with another task.

use std::path::{Path, PathBuf};

use super::git::{self, GitError};

/// Where attempt `attempt` of `task` gets its worktree under `base`.
pub fn path_for(base: &Path, task: &str, attempt: u32) -> PathBuf {
    base.join(format!("{task}-{attempt}"))
}

/// Checks out `base_commit` into a fresh worktree at `path` on `branch` (reset to the base
/// if it exists from an earlier attempt). Worktrees of earlier attempts of the same task
/// are removed first: they are not running, or this attempt would not exist.
pub async fn add(
    mirror: &Path,
    path: &Path,
    branch: &str,
    base_commit: &str,
    earlier: &[PathBuf],
) -> Result<(), GitError> {
    clear_the_way(mirror, path, earlier).await?;
    git::run(mirror, &["worktree", "prune"]).await?;
    let path_text = path.to_string_lossy();
    git::run(
        mirror,
        &[
            "worktree",
            "add",
            "--quiet",
            "--no-track",
            "-B",
            branch,
            "--",
            &path_text,
            base_commit,
        ],
    )
    .await?;
    Ok(())
}

/// Turns the spare worktree `spare` into the one `add` would have made at `path`: a rename,
/// a forced switch to `branch` reset to `base_commit`, and untracked files cleaned away.
/// Only the files that differ between the spare's commit and the base are written.
pub async fn adopt(
    mirror: &Path,
    spare: &Path,
    path: &Path,
    branch: &str,
    base_commit: &str,
    earlier: &[PathBuf],
) -> Result<(), GitError> {
    clear_the_way(mirror, path, earlier).await?;
    // A rename and `worktree repair` rather than `worktree move`, which refuses worktrees of
    // repositories with submodules.
    std::fs::rename(spare, path).map_err(|e| GitError::io("move the spare into place", e))?;
    let path_text = path.to_string_lossy();
    git::run(mirror, &["worktree", "repair", "--", &path_text]).await?;
    git::run(
        path,
        &[
            "checkout",
            "--quiet",
            "--force",
            "--no-track",
            "-B",
            branch,
            base_commit,
        ],
    )
    .await?;
    git::run(path, &["clean", "-q", "-f", "-d", "-x"]).await?;
    Ok(())
}

/// Removes earlier attempts' worktrees and anything at `path`, and makes its parent.
async fn clear_the_way(mirror: &Path, path: &Path, earlier: &[PathBuf]) -> Result<(), GitError> {
    for stale in earlier.iter().map(PathBuf::as_path).chain([path]) {
        if stale.exists() {
            remove(mirror, stale).await;
        }
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| GitError::io("create worktree dir", e))?;
    }
    Ok(())
}

/// Where the private directories of every worktree's fence live, beside the worktrees.
const FENCES_DIR: &str = ".fences";

/// The directory that holds every fence's private directories on a runner whose worktrees
/// are under `base`: the one place a fenced shim keeps writable while it waits.
pub fn fences_dir(base: &Path) -> PathBuf {
    base.join(FENCES_DIR)
}

/// The private directories of the fence of the worktree at `path` (its agents' git overlay,
/// home overlay and `/tmp`): `<worktree base>/.fences/<name>`.
pub fn fence_dir_of(path: &Path) -> PathBuf {
    fences_dir(path.parent().unwrap_or(Path::new("/"))).join(path.file_name().unwrap_or_default())
}

/// Removes a directory tree, even one holding a directory with no permissions (an
/// overlay's work directory holds one the kernel made). Never fails.
pub fn remove_tree(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if std::fs::remove_dir_all(path).is_ok() || !path.exists() {
        return;
    }
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(entry.path());
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(path);
}

/// Removes the fence directories of worktrees that are gone (a runner killed before its
/// cleanup) and the run directories of launches outside a fence. Called at start.
pub fn clear_orphan_fences(base: &Path) {
    remove_tree(&base.join(".runs"));
    let Ok(entries) = std::fs::read_dir(base.join(FENCES_DIR)) else {
        return;
    };
    for entry in entries.flatten() {
        if !base.join(entry.file_name()).exists() {
            remove_tree(&entry.path());
        }
    }
}

/// Removes a worktree, its git metadata and its fence's private directories. Never fails:
/// a leftover directory is pruned on the next checkout.
pub async fn remove(mirror: &Path, path: &Path) {
    let fence = fence_dir_of(path);
    let _ = tokio::task::spawn_blocking(move || remove_tree(&fence)).await;
    let path_text = path.to_string_lossy();
    if git::run(mirror, &["worktree", "remove", "--force", "--", &path_text])
        .await
        .is_err()
    {
        let _ = std::fs::remove_dir_all(path);
        let _ = git::run(mirror, &["worktree", "prune"]).await;
    }
}
