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
