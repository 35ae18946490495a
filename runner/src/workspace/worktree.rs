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
    for stale in earlier.iter().map(PathBuf::as_path).chain([path]) {
        if stale.exists() {
            remove(mirror, stale).await;
        }
    }
    git::run(mirror, &["worktree", "prune"]).await?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| GitError::io("create worktree dir", e))?;
    }
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

/// Removes a worktree and its git metadata. Never fails: a leftover directory is pruned on
/// the next checkout.
pub async fn remove(mirror: &Path, path: &Path) {
    let path_text = path.to_string_lossy();
    if git::run(mirror, &["worktree", "remove", "--force", "--", &path_text])
        .await
        .is_err()
    {
        let _ = std::fs::remove_dir_all(path);
        let _ = git::run(mirror, &["worktree", "prune"]).await;
    }
}
