//! One bare mirror per repository in the runner's cache, fetched under a per-repository
//! lock so that concurrent tasks on one repository never corrupt it.
//!
//! The mirror keeps the remote's branches under `refs/remotes/origin/*`, so a pruning fetch
//! never touches the `kiln/*` branches that task worktrees have checked out.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

use super::git::{self, GitError};

/// File inside a mirror that records which repository it mirrors.
const ORIGIN_FILE: &str = "kiln-origin";

/// The runner's mirror cache.
#[derive(Debug)]
pub struct Mirrors {
    root: PathBuf,
    locks: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
}

/// A mirror, locked for the holder's exclusive use.
#[derive(Debug)]
pub struct LockedMirror {
    /// The bare repository.
    pub path: PathBuf,
    _guard: OwnedMutexGuard<()>,
}

impl Mirrors {
    /// A cache rooted at `cache_dir/mirrors`.
    pub fn new(cache_dir: &Path) -> Self {
        Self {
            root: cache_dir.join("mirrors"),
            locks: Mutex::default(),
        }
    }

    /// Where `repo`'s mirror lives: readable slug plus a stable hash of the full string.
    pub fn path_for(&self, repo: &str) -> PathBuf {
        let slug: String = repo
            .rsplit(['/', ':'])
            .find(|part| !part.is_empty())
            .unwrap_or("repo")
            .trim_end_matches(".git")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        self.root
            .join(format!("{slug}-{:016x}.git", fnv1a(repo.as_bytes())))
    }

    /// Locks `repo`'s mirror, waiting for any other task using it.
    pub async fn lock(&self, repo: &str) -> LockedMirror {
        let path = self.path_for(repo);
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(locks.entry(path.clone()).or_default())
        };
        LockedMirror {
            _guard: lock.lock_owned().await,
            path,
        }
    }

    /// Creates or updates the locked mirror of `repo` from its remote.
    pub async fn fetch(&self, mirror: &LockedMirror, repo: &str) -> Result<(), GitError> {
        if mirror.path.join("HEAD").exists() {
            return update(&mirror.path).await;
        }
        // Build the mirror in a temp dir and rename it into place: a failed first fetch
        // never leaves a half-made mirror behind.
        std::fs::create_dir_all(&self.root).map_err(|e| io_error("create mirror dir", e))?;
        let temp = tempfile::Builder::new()
            .prefix(".new-mirror-")
            .tempdir_in(&self.root)
            .map_err(|e| io_error("create temp mirror", e))?;
        git::run(temp.path(), &["init", "--bare", "--quiet"]).await?;
        git::run(temp.path(), &["remote", "add", "origin", repo]).await?;
        std::fs::write(temp.path().join(ORIGIN_FILE), repo)
            .map_err(|e| io_error("write origin", e))?;
        update(temp.path()).await?;
        let _ = std::fs::remove_dir_all(&mirror.path);
        std::fs::rename(temp.keep(), &mirror.path)
            .map_err(|e| io_error("move mirror into place", e))?;
        Ok(())
    }

    /// Repositories with a mirror in the cache, for affinity.
    pub fn cached_projects(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut projects: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| std::fs::read_to_string(entry.path().join(ORIGIN_FILE)).ok())
            .collect();
        projects.sort();
        projects
    }
}

async fn update(mirror: &Path) -> Result<(), GitError> {
    git::run(mirror, &["fetch", "--quiet", "--prune", "--tags", "origin"]).await?;
    // An empty remote has no HEAD to point at; the base ref check reports that later.
    let _ = git::run(mirror, &["remote", "set-head", "origin", "--auto"]).await;
    Ok(())
}

fn io_error(what: &str, error: std::io::Error) -> GitError {
    GitError::io(what, error)
}

/// FNV-1a: a tiny hash that stays the same across Rust versions, so mirror paths do too.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_paths_are_readable_distinct_and_stable() {
        let mirrors = Mirrors::new(Path::new("/cache"));
        let a = mirrors.path_for("https://example.com/acme/app.git");
        let b = mirrors.path_for("/srv/other/app");
        assert!(
            a.to_string_lossy().starts_with("/cache/mirrors/app-"),
            "{}",
            a.display()
        );
        assert_ne!(a, b);
        assert_eq!(a, mirrors.path_for("https://example.com/acme/app.git"));
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
